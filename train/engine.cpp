// train/engine.cpp — the CPU engine and the engine factory (see engine.h).
#include "train/engine.h"

#include <algorithm>
#include <deque>
#include <utility>

#include "core/error.h"
#include "models/gpu_model.h"

namespace jrt {

TrainEngine::TrainEngine(std::unique_ptr<TrainModel<float>> host, const AdamWConfig& adam) : host_(std::move(host)) {
  std::vector<AdamW::Slot> slots;
  for (size_t i = 0; i < host_->specs().size(); ++i) {
    const ParamSpec& s = host_->specs()[i];
    if (s.role == ParamRole::Buffer) continue;
    slots.push_back({host_->offset(i), shape_numel(s.shape), s.role});
  }
  adam_ = AdamW(adam, std::move(slots));
  // AdamW sizes its moments to the last tensor's end; the model's flat span may have alignment padding after it.
  adam_.m().resize(host_->params().size(), 0.0f);
  adam_.v().resize(host_->params().size(), 0.0f);
}

namespace {

class CpuTrainEngine final : public TrainEngine {
 public:
  CpuTrainEngine(const ModelConfig& c, int64_t max_batch, int64_t max_len, const AdamWConfig& adam)
      : TrainEngine(std::make_unique<TrainModel<float>>(c, max_batch, max_len), adam) {}
  std::string device() const override { return "cpu"; }
  void zero_grad() override { host_->zero_grad(); }
  void forward(const int64_t* ids, const int64_t* labels, int64_t B, int64_t L, const Objective& obj) override {
    B_ = B, L_ = L;
    losses_.push_back(host_->forward(ids, labels, B, L, obj));
  }
  void backward(double scale) override { host_->backward(scale); }
  void step(double lr, double max_norm) override {
    JRT_CHECK(int64_t(steps_.size()) < kMaxUntakenSteps,
              "training engine: {} optimizer steps are untaken (take_step() each, or take_losses())", steps_.size());
    norm_ = clip_grad_norm(host_->grads(), max_norm);
    adam_.step(host_->params(), host_->grads(), lr);
    steps_.push_back({std::exchange(losses_, {}), norm_});
  }
  StepResult take_step() override {
    JRT_CHECK(!steps_.empty(), "training engine: take_step() without an untaken optimizer step");
    StepResult r = std::move(steps_.front());
    steps_.pop_front();
    return r;
  }
  std::vector<LossParts> take_losses() override {
    last_grad_norm();  // moves the untaken steps' losses to untaken_
    untaken_.insert(untaken_.end(), losses_.begin(), losses_.end());
    losses_.clear();
    return std::exchange(untaken_, {});
  }
  double last_grad_norm() override {
    for (StepResult& r : steps_) untaken_.insert(untaken_.end(), r.losses.begin(), r.losses.end());
    steps_.clear();
    return norm_;
  }
  void predictions(std::vector<int32_t>& out) override {
    const int64_t V = config().padded_vocab, N = B_ * L_;
    out.resize(size_t(N));
    const float* lg = host_->logits();
    for (int64_t n = 0; n < N; ++n) {
      const float* row = lg + n * V;
      out[size_t(n)] = int32_t(std::max_element(row, row + V) - row);  // first maximum, as torch.argmax
    }
  }

 private:
  int64_t B_ = 0, L_ = 0;
  double norm_ = 0;
  std::vector<LossParts> losses_;   // forwards since the last step()
  std::deque<StepResult> steps_;    // untaken steps, oldest first
  std::vector<LossParts> untaken_;  // losses of steps counted as taken by last_grad_norm(), not yet returned
};

}  // namespace

void check_train_device(const std::string& device, const ModelConfig& c) {
  if (!use_gpu(device)) return;
  for (MixerKind k : c.layers) {
    if (k == MixerKind::MHA || k == MixerKind::SlidingAttn) {
      const bool swa = k == MixerKind::SlidingAttn;
      const int64_t heads = swa ? c.swa.num_heads : c.attn.num_heads, given = swa ? c.swa.head_dim : c.attn.head_dim;
      const int64_t hd = given > 0 ? given : c.d_model / heads;  // as the attention mixers resolve it
      JRT_CHECK(hd <= 128 && hd % 2 == 0,
                "--device cuda: attention head dim {} must be even and <= 128 (d_model / heads; raise --heads)", hd);
    }
    if (k == MixerKind::Mamba)
      JRT_CHECK(c.mamba.d_state <= 64, "--device cuda: Mamba d_state {} must be <= 64", c.mamba.d_state);
  }
}

std::unique_ptr<TrainEngine> make_train_engine(const std::string& device, const ModelConfig& c, int64_t max_batch,
                                               int64_t max_len, const AdamWConfig& adam) {
  if (!use_gpu(device)) return std::make_unique<CpuTrainEngine>(c, max_batch, max_len, adam);
#ifdef JRT_HAVE_CUDA
  return make_cuda_train_engine(c, max_batch, max_len, adam);
#else
  fail("--device cuda: this build has no CUDA backend");
#endif
}

}  // namespace jrt
