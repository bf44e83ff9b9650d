// ops/norm_train.cpp — training forms of RMSNorm / LayerNorm (row statistics saved) and backwards.
// Row reductions run in double for both T, like the inference forward, so T = float matches it.
#include <cmath>

#include "core/threads.h"
#include "ops/norm.h"

namespace jrt::ops {

template <class T>
void rmsnorm_fwd_t(const T* x, const T* w, double eps, int64_t N, int64_t d, T* y, T* rstd) {
  parallel_for(N, 16, [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      const T* xr = x + n * d;
      T* yr = y + n * d;
      double ss = 0;
      for (int64_t i = 0; i < d; ++i) ss += double(xr[i]) * xr[i];
      const T r = T(1.0 / std::sqrt(ss / double(d) + eps));
      if (rstd) rstd[n] = r;
      for (int64_t i = 0; i < d; ++i) yr[i] = xr[i] * r * w[i];
    }
  });
}

// y_i = x_i r w_i, r = (mean(x^2) + eps)^-1/2:  dx_i = r (g_i - x_i r^2 mean_j(g_j x_j)), g = dy * w.
template <class T>
void rmsnorm_bwd_t(const T* dy, const T* x, const T* w, const T* rstd, int64_t N, int64_t d, T* dx, T* dw,
                   bool accumulate_dx) {
  if (N <= 0) return;
  parallel_for(N, 16, [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      const T* xr = x + n * d;
      const T* gr = dy + n * d;
      T* dr = dx + n * d;
      const T r = rstd[n];
      double dot = 0;
      for (int64_t i = 0; i < d; ++i) dot += double(gr[i]) * w[i] * xr[i];
      const T c = T(dot / double(d)) * r * r;
      for (int64_t i = 0; i < d; ++i) {
        const T v = r * (gr[i] * w[i] - xr[i] * c);
        dr[i] = accumulate_dx ? dr[i] + v : v;
      }
    }
  });
  if (dw)
    parallel_for(d, 64, [&](int64_t i0, int64_t i1) {
      for (int64_t n = 0; n < N; ++n) {
        const T* xr = x + n * d;
        const T* gr = dy + n * d;
        const T r = rstd[n];
        for (int64_t i = i0; i < i1; ++i) dw[i] += gr[i] * xr[i] * r;
      }
    });
}

template <class T>
void layernorm_fwd_t(const T* x, const T* w, const T* b, double eps, int64_t N, int64_t d, T* y, T* mean, T* rstd) {
  parallel_for(N, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) {
      const T* xr = x + n * d;
      T* yr = y + n * d;
      double s = 0, ss = 0;
      for (int64_t i = 0; i < d; ++i) s += xr[i];
      const double mu = s / double(d);
      for (int64_t i = 0; i < d; ++i) ss += (xr[i] - mu) * (xr[i] - mu);
      const T r = T(1.0 / std::sqrt(ss / double(d) + eps));
      if (mean) mean[n] = T(mu);
      if (rstd) rstd[n] = r;
      for (int64_t i = 0; i < d; ++i) yr[i] = T(xr[i] - mu) * r * w[i] + (b ? b[i] : T(0));
    }
  });
}

// xh = (x - mu) r, y = xh w + b:  dx = r (g - mean(g) - xh mean(g xh)), g = dy * w.
template <class T>
void layernorm_bwd_t(const T* dy, const T* x, const T* w, const T* mean, const T* rstd, int64_t N, int64_t d, T* dx,
                     T* dw, T* db, bool accumulate_dx) {
  if (N <= 0) return;
  parallel_for(N, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) {
      const T* xr = x + n * d;
      const T* gr = dy + n * d;
      T* dr = dx + n * d;
      const T mu = mean[n], r = rstd[n];
      double sg = 0, sgx = 0;
      for (int64_t i = 0; i < d; ++i) {
        const double g = double(gr[i]) * w[i];
        sg += g;
        sgx += g * double((xr[i] - mu) * r);
      }
      const T mg = T(sg / double(d)), mgx = T(sgx / double(d));
      for (int64_t i = 0; i < d; ++i) {
        const T v = r * (gr[i] * w[i] - mg - (xr[i] - mu) * r * mgx);
        dr[i] = accumulate_dx ? dr[i] + v : v;
      }
    }
  });
  if (dw || db)
    parallel_for(d, 64, [&](int64_t i0, int64_t i1) {
      for (int64_t n = 0; n < N; ++n) {
        const T* xr = x + n * d;
        const T* gr = dy + n * d;
        const T mu = mean[n], r = rstd[n];
        for (int64_t i = i0; i < i1; ++i) {
          if (dw) dw[i] += gr[i] * (xr[i] - mu) * r;
          if (db) db[i] += gr[i];
        }
      }
    });
}

#define JRT_INST(T)                                                                                                \
  template void rmsnorm_fwd_t<T>(const T*, const T*, double, int64_t, int64_t, T*, T*);                            \
  template void rmsnorm_bwd_t<T>(const T*, const T*, const T*, const T*, int64_t, int64_t, T*, T*, bool);          \
  template void layernorm_fwd_t<T>(const T*, const T*, const T*, double, int64_t, int64_t, T*, T*, T*);            \
  template void layernorm_bwd_t<T>(const T*, const T*, const T*, const T*, const T*, int64_t, int64_t, T*, T*, T*, \
                                   bool);
JRT_INST(float)
JRT_INST(double)
#undef JRT_INST

}  // namespace jrt::ops
