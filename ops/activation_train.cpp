// ops/activation_train.cpp — training forms of SiLU, gated SiLU / SwiGLU and GELU, and backwards.
#include <algorithm>
#include <cmath>

#include "core/threads.h"
#include "ops/activation.h"

namespace jrt::ops {

namespace {

constexpr double kSqrt2OverPi = 0.7978845608028654, kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;  // 1 / sqrt(2 pi)

template <class T>
T gelu_one(T v, bool tanh_approx) {
  // The float constants of gelu_fwd for T = float, full precision for double.
  const T c = T(kSqrt2OverPi), r2 = T(kInvSqrt2);
  return tanh_approx ? T(0.5) * v * (T(1) + std::tanh(c * (v + T(0.044715) * v * v * v)))
                     : T(0.5) * v * (T(1) + std::erf(v * r2));
}

template <class T>
T gelu_grad(T v, bool tanh_approx) {
  if (tanh_approx) {
    const T c = T(kSqrt2OverPi), a = T(0.044715);
    const T th = std::tanh(c * (v + a * v * v * v));
    return T(0.5) * (T(1) + th) + T(0.5) * v * (T(1) - th * th) * c * (T(1) + T(3) * a * v * v);
  }
  // Phi(v) + v phi(v)
  return T(0.5) * (T(1) + std::erf(v * T(kInvSqrt2))) + v * T(kInvSqrt2Pi) * std::exp(T(-0.5) * v * v);
}

}  // namespace

template <class T>
void silu_fwd_t(const T* x, int64_t n, T* y) {
  parallel_for(n, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = silu_t(x[i]);
  });
}

template <class T>
void silu_bwd_t(const T* dy, const T* x, int64_t n, T* dx) {
  parallel_for(n, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dx[i] = dy[i] * silu_grad_t(x[i]);
  });
}

template <class T>
void gated_silu_fwd_t(const T* a, int64_t lda, const T* g, int64_t ldg, int64_t N, int64_t F, T* y, int64_t ldy) {
  parallel_for(N, std::max<int64_t>(1, 4096 / std::max<int64_t>(F, 1)), [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n)
      for (int64_t i = 0; i < F; ++i) y[n * ldy + i] = a[n * lda + i] * silu_t(g[n * ldg + i]);
  });
}

template <class T>
void gated_silu_bwd_t(const T* dy, int64_t lddy, const T* a, int64_t lda, const T* g, int64_t ldg, int64_t N, int64_t F,
                      T* da, int64_t ldda, T* dg, int64_t lddg) {
  parallel_for(N, std::max<int64_t>(1, 4096 / std::max<int64_t>(F, 1)), [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n)
      for (int64_t i = 0; i < F; ++i) {
        const T gy = dy[n * lddy + i], gv = g[n * ldg + i], av = a[n * lda + i];
        da[n * ldda + i] = gy * silu_t(gv);
        dg[n * lddg + i] = gy * av * silu_grad_t(gv);
      }
  });
}

template <class T>
void swiglu_fwd_t(const T* u, int64_t N, int64_t F, T* y) {
  gated_silu_fwd_t(u, 2 * F, u + F, 2 * F, N, F, y, F);
}

template <class T>
void swiglu_bwd_t(const T* dy, const T* u, int64_t N, int64_t F, T* du) {
  gated_silu_bwd_t(dy, F, u, 2 * F, u + F, 2 * F, N, F, du, 2 * F, du + F, 2 * F);
}

template <class T>
void gelu_fwd_t(const T* x, int64_t n, T* y, bool tanh_approx) {
  parallel_for(n, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = gelu_one(x[i], tanh_approx);
  });
}

template <class T>
void gelu_bwd_t(const T* dy, const T* x, int64_t n, T* dx, bool tanh_approx) {
  parallel_for(n, 4096, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dx[i] = dy[i] * gelu_grad(x[i], tanh_approx);
  });
}

#define JRT_INST(T)                                                                                                \
  template void silu_fwd_t<T>(const T*, int64_t, T*);                                                              \
  template void silu_bwd_t<T>(const T*, const T*, int64_t, T*);                                                    \
  template void gated_silu_fwd_t<T>(const T*, int64_t, const T*, int64_t, int64_t, int64_t, T*, int64_t);          \
  template void gated_silu_bwd_t<T>(const T*, int64_t, const T*, int64_t, const T*, int64_t, int64_t, int64_t, T*, \
                                    int64_t, T*, int64_t);                                                         \
  template void swiglu_fwd_t<T>(const T*, int64_t, int64_t, T*);                                                   \
  template void swiglu_bwd_t<T>(const T*, const T*, int64_t, int64_t, T*);                                         \
  template void gelu_fwd_t<T>(const T*, int64_t, T*, bool);                                                        \
  template void gelu_bwd_t<T>(const T*, const T*, int64_t, T*, bool);
JRT_INST(float)
JRT_INST(double)
#undef JRT_INST

}  // namespace jrt::ops
