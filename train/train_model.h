// train/train_model.h — the training model: the inference block stack (embedding, pre-norm blocks of
// mixer [+ SwiGLU MLP], final norm, tied head; models-spec §2) with a hand-written backward, llm.c style:
// parameters and gradients live in one arena each, tensor by tensor in parameter_specs(config) order;
// every layer's saved activations live in one arena sized up front for batches of up to (max_batch,
// max_len). The tied LM head IS the embedding tensor: its gradient is the lookup part plus the head
// part, accumulated into the same buffer.
//
// Objectives (models-spec §9): plain next-token / masked-label cross-entropy (mean over the rows whose
// label is not -100), or JRT's combined objective when Objective::enc_length > 0:
//   loss = CE_mean(rows t >= E, labels) + mlm_weight * CE_mean(rows t < E with label > 0)
// (each term a mean over its own rows of the whole batch; a term with no rows contributes 0).
//
// T = float is the trainer; T = double exists so that tests can check the whole backward against
// finite differences.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/arena.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "io/weights.h"
#include "models/params.h"

namespace jrt {

struct Objective {
  int64_t enc_length = 0;  // > 0: JRT's combined NTP + MLM objective with prefix length E
  double mlm_weight = 0.25;
};

struct LossParts {
  double loss = 0;               // the objective
  double ntp = 0, mlm = 0;       // the two means (mlm unweighted; 0 when not JRT)
  int64_t n_ntp = 0, n_mlm = 0;  // rows in each term
};

namespace train_detail {
template <class T>
class TrainMixer;
}

template <class T>
class TrainModel {
 public:
  TrainModel(const ModelConfig& c, int64_t max_batch, int64_t max_len);
  ~TrainModel();
  TrainModel(const TrainModel&) = delete;
  TrainModel& operator=(const TrainModel&) = delete;

  const ModelConfig& config() const { return cfg_; }
  int64_t max_batch() const { return Bmax_; }
  int64_t max_len() const { return Lmax_; }

  // Tensors in parameter_specs order (Based's decay buffer included: it is loaded and saved, never
  // trained; its gradient stays 0).
  const std::vector<ParamSpec>& specs() const { return specs_; }
  int64_t offset(size_t i) const { return offsets_[i]; }  // element offset of tensor i in params()/grads()
  std::span<T> params() { return {pbase_, size_t(span_)}; }
  std::span<T> grads() { return {gbase_, size_t(span_)}; }
  std::span<const T> params() const { return {pbase_, size_t(span_)}; }
  std::span<const T> grads() const { return {gbase_, size_t(span_)}; }
  std::span<T> param(size_t i) { return {pbase_ + offsets_[i], size_t(shape_numel(specs_[i].shape))}; }
  std::span<T> grad(size_t i) { return {gbase_ + offsets_[i], size_t(shape_numel(specs_[i].shape))}; }
  int64_t find(const std::string& name) const;  // index of a tensor, -1 when absent
  int64_t num_parameters() const;               // trainable elements (buffers excluded)

  // Copies every tensor from a checkpoint (any float dtype; the legacy BaseConv "conv1." naming is
  // accepted). Throws naming the missing tensor or the shape mismatch.
  void load(const WeightStore& ws);
  // f32 copies of every tensor under its checkpoint name (buffers included): for model.safetensors and
  // for building an inference Model.
  WeightStore weights() const;

  void zero_grad();

  // Forward of B sequences of L tokens (ids, labels: [B*L] row-major; labels -100 = ignored);
  // B <= max_batch, L <= max_len. Keeps what backward needs.
  LossParts forward(const int64_t* ids, const int64_t* labels, int64_t B, int64_t L, const Objective& obj);
  // grads += scale * d(loss of the last forward)/d(params). Overwrites the logits.
  void backward(double scale = 1.0);
  // Logits [B*L, V] of the last forward (valid until backward).
  const T* logits() const { return logits_; }

 private:
  struct Layer;
  ModelConfig cfg_;
  int64_t Bmax_, Lmax_;
  std::vector<ParamSpec> specs_;
  std::vector<int64_t> offsets_;
  Arena params_arena_, grads_arena_, acts_arena_;
  T *pbase_ = nullptr, *gbase_ = nullptr;
  int64_t span_ = 0;
  std::vector<std::unique_ptr<Layer>> layers_;
  // Embedding / final norm.
  const T *E_ = nullptr, *lnf_w_ = nullptr, *lnf_b_ = nullptr;
  T *dE_ = nullptr, *dlnf_w_ = nullptr, *dlnf_b_ = nullptr;
  // Activations.
  T *res_final_ = nullptr, *hf_ = nullptr, *mean_f_ = nullptr, *rstd_f_ = nullptr, *logits_ = nullptr, *lse_ = nullptr;
  T *y_ = nullptr, *dr_ = nullptr, *dh_ = nullptr, *res0_ = nullptr;
  T *da_ = nullptr, *du_ = nullptr;
  std::vector<int64_t> ids_, labels_;
  // Last forward.
  int64_t B_ = 0, L_ = 0;
  Objective obj_;
  double scale_ntp_ = 0, scale_mlm_ = 0;
  bool have_forward_ = false;
};

extern template class TrainModel<float>;
extern template class TrainModel<double>;

}  // namespace jrt
