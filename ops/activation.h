// ops/activation.h — SiLU, SwiGLU and GELU, elementwise.
// swiglu: u [N, 2F] -> y [N, F], y = u[:, :F] * silu(u[:, F:]) (first half value, second half gate;
// models-spec §2.1 and §10.15).
#pragma once
#include <cmath>
#include <cstdint>

namespace jrt::ops {

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }
inline float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }  // torch's threshold 20

void swiglu_fwd(const float* u, int64_t N, int64_t F, float* y);
// GELU: exact erf form (torch "gelu") or tanh approximation ("gelu_new" / gelu_pytorch_tanh).
void gelu_fwd(const float* x, int64_t n, float* y, bool tanh_approx);

}  // namespace jrt::ops
