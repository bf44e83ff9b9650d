// ops/activation.h — SiLU, SwiGLU, GELU and softplus, elementwise; training forms (T = float / double)
// and backwards.
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

// ---- training form ---------------------------------------------------------------------------
// Saved-activation contract: every backward reads the forward's INPUT (x, u, a / g), never its output.
// Input gradients are written (=), never accumulated. Threaded over rows / elements.

// Scalar forms (T = float / double); silu_t(float) == silu, softplus_t(float) == softplus.
template <class T>
inline T silu_t(T x) {
  return x / (T(1) + std::exp(-x));
}
template <class T>
inline T silu_grad_t(T x) {  // d silu / dx = s (1 + x (1 - s)), s = sigmoid(x)
  const T s = T(1) / (T(1) + std::exp(-x));
  return s * (T(1) + x * (T(1) - s));
}
template <class T>
inline T softplus_t(T x) {
  return x > T(20) ? x : std::log1p(std::exp(x));
}
template <class T>
inline T softplus_grad_t(T x) {  // torch: 1 above the threshold, sigmoid(x) below
  return x > T(20) ? T(1) : T(1) / (T(1) + std::exp(-x));
}

// y = silu(x); dx = dy * silu'(x). x, y, dy, dx [n].
template <class T>
void silu_fwd_t(const T* x, int64_t n, T* y);
template <class T>
void silu_bwd_t(const T* dy, const T* x, int64_t n, T* dx);

// Gated SiLU over strided rows: y[r, i] = a[r, i] * silu(g[r, i]), r < N, i < F.
// Covers SwiGLU (a = u, g = u + F, lda = ldg = 2F), BaseConv's silu(conv) * gate (a = gate, g = conv)
// and Mamba's y * silu(z) (a = y, g = z). Backward: da = dy * silu(g), dg = dy * a * silu'(g) (=).
// da and dg may have their own strides (lddA, lddg); they must not overlap the inputs.
template <class T>
void gated_silu_fwd_t(const T* a, int64_t lda, const T* g, int64_t ldg, int64_t N, int64_t F, T* y, int64_t ldy);
template <class T>
void gated_silu_bwd_t(const T* dy, int64_t lddy, const T* a, int64_t lda, const T* g, int64_t ldg, int64_t N, int64_t F,
                      T* da, int64_t ldda, T* dg, int64_t lddg);

// SwiGLU: u [N, 2F] -> y [N, F]; du [N, 2F] (=).
template <class T>
void swiglu_fwd_t(const T* u, int64_t N, int64_t F, T* y);
template <class T>
void swiglu_bwd_t(const T* dy, const T* u, int64_t N, int64_t F, T* du);

// GELU (erf or tanh form): x, y, dy, dx [n].
template <class T>
void gelu_fwd_t(const T* x, int64_t n, T* y, bool tanh_approx);
template <class T>
void gelu_bwd_t(const T* dy, const T* x, int64_t n, T* dx, bool tanh_approx);

}  // namespace jrt::ops
