// train/optimizer.h — AdamW with decoupled weight decay over a flat fp32 parameter buffer split into
// tensors, the warmup + cosine learning-rate schedule, global-norm gradient clipping.
//
// Weight-decay groups follow the reference trainer's group_parameters_for_optimizer: no decay for
// biases, normalisation weights, embeddings (the tied head included) and Mamba's A_log / D
// (`_no_weight_decay`); decay for Linear and Conv1d weights. Zoology's synthetic trainer instead puts
// every parameter in one decayed group (synthetics-spec §1.2): AdamWConfig::decay_all.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "models/params.h"

namespace jrt {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.1;
  bool decay_all = false;  // Zoology: decay every parameter
};

// Whether the reference decays a parameter of this role.
bool role_decays(ParamRole r);

class AdamW {
 public:
  AdamW() = default;
  // One entry per tensor: its [offset, offset + numel) range in the flat buffers and its role.
  struct Slot {
    int64_t offset = 0, numel = 0;
    ParamRole role = ParamRole::Matrix;
  };
  AdamW(AdamWConfig cfg, std::vector<Slot> slots);

  // One update at learning rate lr: t += 1; m, v moments; p -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * p)
  // (torch.optim.AdamW: p *= 1 - lr * wd first, then the Adam step). grad is read, not modified.
  void step(std::span<float> params, std::span<const float> grads, double lr);

  int64_t t() const { return t_; }
  void set_t(int64_t t) { t_ = t; }
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }
  const std::vector<float>& m() const { return m_; }
  const std::vector<float>& v() const { return v_; }
  const AdamWConfig& config() const { return cfg_; }

 private:
  AdamWConfig cfg_;
  std::vector<Slot> slots_;
  std::vector<float> m_, v_;
  int64_t t_ = 0;
};

// lr at step (or epoch) `t` of `total`: linear warmup from lr/warmup to lr over the first `warmup`
// steps, then half a cosine from lr down to min_lr at t = total (Zoology's CosineAnnealingLR per epoch
// is warmup 0, min_lr 0, t = epoch, total = epochs).
double cosine_lr(int64_t t, int64_t warmup, int64_t total, double lr, double min_lr);

// L2 norm of all gradients (accumulated in double).
double global_norm(std::span<const float> g);
// Scales g so that its global norm is at most max_norm (torch clip_grad_norm_: factor
// max_norm / (norm + 1e-6), applied only when < 1). Returns the norm before clipping. max_norm <= 0: off.
double clip_grad_norm(std::span<float> g, double max_norm);

}  // namespace jrt
