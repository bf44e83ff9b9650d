// ops/attention_train.cpp — training form of windowed causal softmax attention (one head, one sequence):
// blocked forward saving the row log-sum-exp, and the flash-attention style backward that recomputes the
// probabilities of each query block from it.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "ops/attention.h"
#include "ops/gemm.h"

namespace jrt::ops {

namespace {

constexpr int64_t kBlock = 64;

inline int64_t first_key(int64_t t, int64_t left_window) {
  return left_window < 0 ? 0 : std::max<int64_t>(0, t - left_window);
}

template <class T>
void check_head(const AttnTrainHead<T>& a) {
  JRT_CHECK(a.L >= 0 && a.hd > 0, "attention (training): bad shape L {} head dim {}", a.L, a.hd);
  JRT_CHECK(a.ldq >= a.hd && a.ldk >= a.hd && a.ldv >= a.hd,
            "attention (training): row strides q {} k {} v {} must be >= head dim {}", a.ldq, a.ldk, a.ldv, a.hd);
}

// Scores of queries [t0, t1) against keys [klo, t1): S [lb, nk] = scale * Q K^T, and for each row the
// visible key range [lo, hi] relative to klo.
template <class T>
void scores(const AttnTrainHead<T>& a, int64_t t0, int64_t t1, int64_t klo, std::vector<T>& S) {
  const int64_t lb = t1 - t0, nk = t1 - klo;
  S.resize(size_t(lb * nk));
  gemm_st<T>(false, true, lb, nk, a.hd, a.scale, a.q + t0 * a.ldq, a.ldq, a.k + klo * a.ldk, a.ldk, T(0), S.data(), nk);
}

}  // namespace

template <class T>
void attention_fwd_t(const AttnTrainHead<T>& a, T* y, int64_t ldy, T* lse) {
  check_head(a);
  std::vector<T> S;
  for (int64_t t0 = 0; t0 < a.L; t0 += kBlock) {
    const int64_t t1 = std::min(a.L, t0 + kBlock), lb = t1 - t0, klo = first_key(t0, a.left_window), nk = t1 - klo;
    scores(a, t0, t1, klo, S);
    for (int64_t i = 0; i < lb; ++i) {
      const int64_t t = t0 + i, lo = first_key(t, a.left_window) - klo, hi = t - klo;
      T* s = S.data() + i * nk;
      T mx = -std::numeric_limits<T>::infinity();
      for (int64_t j = lo; j <= hi; ++j) mx = std::max(mx, s[j]);
      T sum = 0;
      for (int64_t j = lo; j <= hi; ++j) {
        s[j] = std::exp(s[j] - mx);
        sum += s[j];
      }
      const T inv = T(1) / sum;
      for (int64_t j = lo; j <= hi; ++j) s[j] *= inv;
      std::fill(s, s + lo, T(0));
      std::fill(s + hi + 1, s + nk, T(0));
      lse[t] = mx + std::log(sum);
    }
    gemm_st<T>(false, false, lb, a.hd, nk, T(1), S.data(), nk, a.v + klo * a.ldv, a.ldv, T(0), y + t0 * ldy, ldy);
  }
}

// P_tj = exp(scale q_t.k_j - lse_t);  dP = dY V^T;  dS = P (dP - rowsum(dY * Y));
// dQ = scale dS K;  dK = scale dS^T Q;  dV = P^T dY.
template <class T>
void attention_bwd_t(const AttnTrainHead<T>& a, const T* y, int64_t ldy, const T* lse, const T* dy, int64_t lddy, T* dq,
                     int64_t lddq, T* dk, int64_t lddk, T* dv, int64_t lddv) {
  check_head(a);
  for (int64_t t = 0; t < a.L; ++t) {
    std::fill(dk + t * lddk, dk + t * lddk + a.hd, T(0));
    std::fill(dv + t * lddv, dv + t * lddv + a.hd, T(0));
  }
  std::vector<T> S, dP;
  for (int64_t t0 = 0; t0 < a.L; t0 += kBlock) {
    const int64_t t1 = std::min(a.L, t0 + kBlock), lb = t1 - t0, klo = first_key(t0, a.left_window), nk = t1 - klo;
    scores(a, t0, t1, klo, S);
    dP.resize(size_t(lb * nk));
    gemm_st<T>(false, true, lb, nk, a.hd, T(1), dy + t0 * lddy, lddy, a.v + klo * a.ldv, a.ldv, T(0), dP.data(), nk);
    for (int64_t i = 0; i < lb; ++i) {
      const int64_t t = t0 + i, lo = first_key(t, a.left_window) - klo, hi = t - klo;
      T* s = S.data() + i * nk;
      T* d = dP.data() + i * nk;
      T Di = 0;
      for (int64_t e = 0; e < a.hd; ++e) Di += dy[t * lddy + e] * y[t * ldy + e];
      for (int64_t j = lo; j <= hi; ++j) {
        s[j] = std::exp(s[j] - lse[t]);  // P
        d[j] = s[j] * (d[j] - Di);       // dS
      }
      std::fill(s, s + lo, T(0));
      std::fill(s + hi + 1, s + nk, T(0));
      std::fill(d, d + lo, T(0));
      std::fill(d + hi + 1, d + nk, T(0));
    }
    gemm_st<T>(false, false, lb, a.hd, nk, a.scale, dP.data(), nk, a.k + klo * a.ldk, a.ldk, T(0), dq + t0 * lddq,
               lddq);
    gemm_st<T>(true, false, nk, a.hd, lb, a.scale, dP.data(), nk, a.q + t0 * a.ldq, a.ldq, T(1), dk + klo * lddk, lddk);
    gemm_st<T>(true, false, nk, a.hd, lb, T(1), S.data(), nk, dy + t0 * lddy, lddy, T(1), dv + klo * lddv, lddv);
  }
}

template void attention_fwd_t<float>(const AttnTrainHead<float>&, float*, int64_t, float*);
template void attention_fwd_t<double>(const AttnTrainHead<double>&, double*, int64_t, double*);
template void attention_bwd_t<float>(const AttnTrainHead<float>&, const float*, int64_t, const float*, const float*,
                                     int64_t, float*, int64_t, float*, int64_t, float*, int64_t);
template void attention_bwd_t<double>(const AttnTrainHead<double>&, const double*, int64_t, const double*,
                                      const double*, int64_t, double*, int64_t, double*, int64_t, double*, int64_t);

}  // namespace jrt::ops
