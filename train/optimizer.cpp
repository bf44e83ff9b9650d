// train/optimizer.cpp — see optimizer.h.
#include "train/optimizer.h"

#include <cmath>

#include "core/error.h"
#include "core/threads.h"

namespace jrt {

bool role_decays(ParamRole r) { return r == ParamRole::Matrix || r == ParamRole::ConvWeight; }

AdamW::AdamW(AdamWConfig cfg, std::vector<Slot> slots) : cfg_(cfg), slots_(std::move(slots)) {
  int64_t n = 0;
  for (const auto& s : slots_) n = std::max(n, s.offset + s.numel);
  m_.assign(size_t(n), 0.0f);
  v_.assign(size_t(n), 0.0f);
}

void AdamW::step(std::span<float> params, std::span<const float> grads, double lr) {
  JRT_CHECK(params.size() == m_.size() && grads.size() == m_.size(), "AdamW: {} params / {} grads, state has {}",
            params.size(), grads.size(), m_.size());
  ++t_;
  const double b1 = cfg_.beta1, b2 = cfg_.beta2;
  const double bc1 = 1.0 - std::pow(b1, double(t_)), bc2 = 1.0 - std::pow(b2, double(t_));
  // torch: step_size = lr / bc1; denom = sqrt(v) / sqrt(bc2) + eps
  const float step_size = float(lr / bc1), inv_sqrt_bc2 = float(1.0 / std::sqrt(bc2));
  const float fb1 = float(b1), fb2 = float(b2), eps = float(cfg_.eps);
  for (const Slot& s : slots_) {
    const bool decay = cfg_.weight_decay != 0 && (cfg_.decay_all || role_decays(s.role));
    const float keep = decay ? float(1.0 - lr * cfg_.weight_decay) : 1.0f;
    float* p = params.data() + s.offset;
    const float* g = grads.data() + s.offset;
    float* m = m_.data() + s.offset;
    float* v = v_.data() + s.offset;
    parallel_for(s.numel, 1 << 14, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        p[i] *= keep;
        m[i] = fb1 * m[i] + (1.0f - fb1) * g[i];
        v[i] = fb2 * v[i] + (1.0f - fb2) * g[i] * g[i];
        p[i] -= step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
      }
    });
  }
}

double cosine_lr(int64_t t, int64_t warmup, int64_t total, double lr, double min_lr) {
  if (warmup > 0 && t < warmup) return lr * double(t + 1) / double(warmup);
  if (total <= warmup) return lr;
  double progress = double(t - warmup) / double(total - warmup);
  progress = std::min(1.0, std::max(0.0, progress));
  return min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(M_PI * progress));
}

double global_norm(std::span<const float> g) {
  // Fixed chunking so that the sum is the same for every thread count (bitwise resume / same seed).
  constexpr int64_t kChunk = 1 << 14;
  const int64_t n = int64_t(g.size()), nc = (n + kChunk - 1) / kChunk;
  std::vector<double> part(size_t(nc), 0.0);
  parallel_for(nc, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c) {
      double s = 0;
      for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) s += double(g[size_t(i)]) * g[size_t(i)];
      part[size_t(c)] = s;
    }
  });
  double s = 0;
  for (double p : part) s += p;
  return std::sqrt(s);
}

double clip_grad_norm(std::span<float> g, double max_norm) {
  const double norm = global_norm(g);
  if (max_norm > 0) {
    const double f = max_norm / (norm + 1e-6);
    if (f < 1.0) {
      const float ff = float(f);
      parallel_for(int64_t(g.size()), 1 << 14, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) g[size_t(i)] *= ff;
      });
    }
  }
  return norm;
}

}  // namespace jrt
