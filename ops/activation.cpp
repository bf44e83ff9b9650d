// ops/activation.cpp — elementwise activations.
#include "ops/activation.h"

#include "core/threads.h"

namespace jrt::ops {

void swiglu_fwd(const float* u, int64_t N, int64_t F, float* y) {
  parallel_for(N, 8, [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      const float* a = u + n * 2 * F;
      const float* g = a + F;
      float* yr = y + n * F;
      for (int64_t i = 0; i < F; ++i) yr[i] = a[i] * silu(g[i]);
    }
  });
}

void gelu_fwd(const float* x, int64_t n, float* y, bool tanh_approx) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f, kInvSqrt2 = 0.7071067811865476f;
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i];
    y[i] = tanh_approx ? 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)))
                       : 0.5f * v * (1.0f + std::erf(v * kInvSqrt2));
  }
}

}  // namespace jrt::ops
