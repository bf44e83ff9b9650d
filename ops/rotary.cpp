// ops/rotary.cpp — rotary tables (fp32 like flash-attn's RotaryEmbedding) and the in-place rotation.
#include "ops/rotary.h"

#include <cmath>

#include "core/error.h"
#include "core/threads.h"

namespace jrt::ops {

Rotary::Rotary(int64_t rotary_dim, double base) : rotary_dim_(rotary_dim) {
  JRT_CHECK(rotary_dim >= 0, "rotary: rotary_dim must be >= 0, got {}", rotary_dim);
  JRT_CHECK(rotary_dim == 0 || base > 0, "rotary: base must be > 0, got {}", base);
  // torch: 1.0 / (base ** (arange(0, dim, 2, fp32) / dim)) — every step rounded to fp32. The power is
  // taken in double and rounded once, i.e. the correctly rounded fp32 value.
  const float fb = float(base);
  for (int64_t i = 0; 2 * i < rotary_dim; ++i) {
    const float e = float(2 * i) / float(rotary_dim);
    const float p = float(std::pow(double(fb), double(e)));
    inv_freq_.push_back(1.0f / p);
  }
}

void Rotary::cos_sin(int64_t p, float* c, float* s) const {
  const float fp = float(p);  // torch.arange(seqlen, dtype=float32)
  for (size_t i = 0; i < inv_freq_.size(); ++i) {
    const float th = fp * inv_freq_[i];  // fp32 product, as torch.outer in fp32
    c[i] = float(std::cos(double(th)));
    s[i] = float(std::sin(double(th)));
  }
}

void Rotary::apply(float* x, int64_t ld, int64_t N, int64_t H, int64_t hd, std::span<const int64_t> pos) const {
  const int64_t half = int64_t(inv_freq_.size());
  if (half == 0 || N <= 0) return;
  JRT_CHECK(2 * half <= hd, "rotary: rotary_dim {} rotates {} dims, more than the head dim {}", rotary_dim_, 2 * half,
            hd);
  JRT_CHECK(int64_t(pos.size()) >= N, "rotary: {} positions for {} rows", pos.size(), N);
  parallel_for(N, 16, [&](int64_t b, int64_t e) {
    std::vector<float> c(static_cast<size_t>(half)), s(static_cast<size_t>(half));
    for (int64_t n = b; n < e; ++n) {
      cos_sin(pos[size_t(n)], c.data(), s.data());
      float* row = x + n * ld;
      for (int64_t h = 0; h < H; ++h) {
        float* x0 = row + h * hd;
        float* x1 = x0 + half;
        for (int64_t j = 0; j < half; ++j) {
          const float a = x0[j], bb = x1[j];
          x0[j] = a * c[size_t(j)] - bb * s[size_t(j)];
          x1[j] = a * s[size_t(j)] + bb * c[size_t(j)];
        }
      }
    }
  });
}

}  // namespace jrt::ops
