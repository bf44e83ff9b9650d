// train/engine.h — what the trainer drives: one model's forward / backward / optimizer step on one
// device. The CPU engine is TrainModel<float> (fp32 throughout) with the host AdamW; the CUDA engine
// (train/gpu_train_model.cpp) keeps fp32 master weights, gradients and moments on the GPU and runs the
// forward and backward in bf16 mixed precision. Both expose their parameters and moments on the host
// through host() / adam() (a CUDA engine copies them there on pull() and back on push()), so checkpoints,
// resume and model export are one code path for both.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "train/optimizer.h"
#include "train/train_model.h"

namespace jrt {

// What one optimizer step reports (TrainEngine::take_step).
struct StepResult {
  std::vector<LossParts> losses;  // one per forward of the step, in order
  double grad_norm = 0;           // before clipping
};

class TrainEngine {
 public:
  virtual ~TrainEngine() = default;
  virtual std::string device() const = 0;  // "cpu" or "cuda"
  const ModelConfig& config() const { return host_->config(); }
  // Parameters (and the spec / offset layout) and AdamW moments on the host. For a CUDA engine they are
  // current only after pull(); after changing them call push().
  TrainModel<float>& host() { return *host_; }
  AdamW& adam() { return adam_; }
  virtual void pull() {}
  virtual void push() {}
  // Makes host().grads() current (a CUDA engine copies its fp32 gradients there).
  virtual void pull_grads() {}

  virtual void zero_grad() = 0;
  // Forward of B sequences of L tokens (ids, labels [B*L], labels -100 ignored) with the loss. A CUDA engine
  // only enqueues the work: the loss comes from take_losses(), so a whole optimizer step (micro-batches,
  // clipping, AdamW) runs without waiting for the device.
  virtual void forward(const int64_t* ids, const int64_t* labels, int64_t B, int64_t L, const Objective& obj) = 0;
  // grads += scale * d(loss of the last forward) / d(params).
  virtual void backward(double scale) = 0;
  // Clips the gradients to a global norm of max_norm (<= 0: no clipping) and applies AdamW at lr.
  virtual void step(double lr, double max_norm) = 0;
  // The losses (one per forward) and the gradient norm before clipping of the oldest optimizer step not yet
  // taken. Steps come out in order and only that step is waited for, so a caller may enqueue step s + 1 before
  // taking step s: the host's work for the next step then overlaps the device's. step() refuses a step beyond
  // kMaxUntakenSteps untaken ones.
  static constexpr int64_t kMaxUntakenSteps = 4;
  virtual StepResult take_step() = 0;
  // The losses of every forward not yet taken, in order (waits for the device); every step counts as taken.
  virtual std::vector<LossParts> take_losses() = 0;
  // The gradient norm before clipping of the last step (waits for the device); every step counts as taken (their
  // losses stay for take_losses()).
  virtual double last_grad_norm() = 0;
  // argmax over the vocabulary of every row of the last forward: out[B*L]. Rows without a label may be -1 (the
  // CUDA engine runs the LM head on labelled rows only).
  virtual void predictions(std::vector<int32_t>& out) = 0;

 protected:
  TrainEngine(std::unique_ptr<TrainModel<float>> host, const AdamWConfig& adam);
  std::unique_ptr<TrainModel<float>> host_;
  AdamW adam_;
};

// Refuses, naming the reason, a device that cannot train model c: an unknown --device, "cuda" without a
// usable GPU (use_gpu), or a model outside the GPU kernels' limits (softmax-attention head dim even and
// <= 128, Mamba d_state <= 64). Cheap: callers validate whole sweeps with it before anything trains.
void check_train_device(const std::string& device, const ModelConfig& c);

// device "cpu" or "cuda" (the latter throws, saying why, in builds without CUDA or without a device).
// max_batch x max_len: the largest batch the engine will see. Parameters start at zero: load them through
// host().load(...) and then push().
std::unique_ptr<TrainEngine> make_train_engine(const std::string& device, const ModelConfig& c, int64_t max_batch,
                                               int64_t max_len, const AdamWConfig& adam);

#ifdef JRT_HAVE_CUDA
std::unique_ptr<TrainEngine> make_cuda_train_engine(const ModelConfig& c, int64_t max_batch, int64_t max_len,
                                                    const AdamWConfig& adam);
#endif

}  // namespace jrt
