// ops/linear_attention_train.cpp — training form of causal Taylor linear attention (one head, one
// sequence, optional initial state, decay and output scale) in the exact quadratic form through the
// polynomial kernel, blocked over queries; its backward; and the JRT encoder summary with its backward.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "ops/gemm.h"
#include "ops/linear_attention.h"
#include "ops/taylor.h"

namespace jrt::ops {

namespace {

template <class T>
void check_head(const LaTrainHead<T>& h) {
  JRT_CHECK(h.L >= 0 && h.fd > 0 && h.dv > 0, "linear attention (training): bad shape L {} fd {} dv {}", h.L, h.fd,
            h.dv);
  JRT_CHECK(h.q && h.k && h.v && h.y && h.den, "linear attention (training): q, k, v, y and den are required");
  JRT_CHECK(!h.dt || h.u, "linear attention (training): an output scale dt needs the u buffer (output before dt)");
  JRT_CHECK(h.gamma > 0.0, "linear attention (training): decay gamma must be > 0, got {}", h.gamma);
}

// gamma^m for m = 0 .. n (double, rounded once to T).
template <class T>
std::vector<T> powers(double gamma, int64_t n) {
  std::vector<T> p(size_t(n + 1));
  for (int64_t m = 0; m <= n; ++m) p[size_t(m)] = T(gamma == 1.0 ? 1.0 : std::pow(gamma, double(m)));
  return p;
}

template <class T>
void features_rows(const T* x, int64_t ldx, int64_t n, int64_t fd, T* F) {
  const int64_t D = taylor_dim(fd);
  for (int64_t i = 0; i < n; ++i) taylor_features_t(x + i * ldx, fd, F + i * D);
}

}  // namespace

template <class T>
void la_fwd_t(const LaTrainHead<T>& h) {
  check_head(h);
  const int64_t fd = h.fd, dv = h.dv, D = taylor_dim(fd), B = std::max<int64_t>(1, h.block);
  const bool init = h.S0 || h.z0;
  const T rs = T(1.0 / std::sqrt(double(fd)));
  const std::vector<T> gp = powers<T>(h.gamma, h.L + 1);
  std::vector<T> A, num(size_t(B * dv)), Fq(init ? size_t(B * D) : 0), den(static_cast<size_t>(B));
  for (int64_t t0 = 0; t0 < h.L; t0 += B) {
    const int64_t t1 = std::min(h.L, t0 + B), lb = t1 - t0;
    const T* q = h.q + t0 * h.ldq;
    std::fill(num.begin(), num.end(), T(0));
    std::fill(den.begin(), den.end(), T(0));
    if (init) {
      // The initial state's share: num = gamma^(t+1) phi(q_t)^T S0, den = phi(q_t).z0.
      features_rows(q, h.ldq, lb, fd, Fq.data());
      if (h.S0) {
        gemm_st<T>(false, false, lb, dv, D, T(1), Fq.data(), D, h.S0, dv, T(0), num.data(), dv);
        for (int64_t i = 0; i < lb; ++i)
          for (int64_t e = 0; e < dv; ++e) num[size_t(i * dv + e)] *= gp[size_t(t0 + i + 1)];
      }
      if (h.z0)
        for (int64_t i = 0; i < lb; ++i) {
          T acc = 0;
          for (int64_t f = 0; f < D; ++f) acc += Fq[size_t(i * D + f)] * h.z0[f];
          den[size_t(i)] = acc;
        }
    }
    // Kernel weights against keys [0, t1): A_tj = gamma^(t-j) w_tj for j <= t, 0 after.
    A.resize(size_t(lb * t1));
    gemm_st<T>(false, true, lb, t1, fd, rs, q, h.ldq, h.k, h.ldk, T(0), A.data(), t1);
    for (int64_t i = 0; i < lb; ++i) {
      const int64_t t = t0 + i;
      T* a = A.data() + i * t1;
      T ws = 0;
      for (int64_t j = 0; j <= t; ++j) {
        const T s = a[j], w = T(1) + s + T(0.5) * s * s;
        ws += w;
        a[j] = w * gp[size_t(t - j)];
      }
      std::fill(a + t + 1, a + t1, T(0));
      den[size_t(i)] += ws;
    }
    gemm_st<T>(false, false, lb, dv, t1, T(1), A.data(), t1, h.v, h.ldv, T(1), num.data(), dv);
    for (int64_t i = 0; i < lb; ++i) {
      const int64_t t = t0 + i;
      const T dn = den[size_t(i)] + T(h.eps);
      h.den[t] = dn;
      const T sc = h.dt ? h.dt[t * h.lddt] : T(1);
      for (int64_t e = 0; e < dv; ++e) {
        const T uv = num[size_t(i * dv + e)] / dn;
        if (h.dt) h.u[t * h.ldu + e] = uv;
        h.y[t * h.ldy + e] = sc * uv;
      }
    }
  }
}

// With du_t = dt_t dy_t (dy_t without dt), r_t = 1 / den_t:
//   dnum_t = du_t r_t,  dden_t = -(du_t . u_t) r_t,  ddt_t = dy_t . u_t
//   dw_tj = gamma^(t-j) (dnum_t . v_j) + dden_t,  ds_tj = dw_tj (1 + s_tj)   (j <= t)
//   dq_t = sum_j ds_tj k_j / sqrt(fd) + J_phi(q_t)^T (gamma^(t+1) S0 dnum_t + z0 dden_t)
//   dk_j = sum_t ds_tj q_t / sqrt(fd),  dv_j = sum_t gamma^(t-j) w_tj dnum_t
//   dS0 = sum_t gamma^(t+1) phi(q_t) dnum_t^T,  dz0 = sum_t phi(q_t) dden_t
template <class T>
void la_bwd_t(const LaTrainHead<T>& h, const T* dy, int64_t lddy, const LaTrainGrads<T>& g) {
  check_head(h);
  JRT_CHECK(g.dq && g.dk && g.dv, "linear attention (training): dq, dk and dv are required");
  JRT_CHECK(!h.dt || g.ddt, "linear attention (training): an output scale dt needs its gradient buffer ddt");
  const int64_t fd = h.fd, dv = h.dv, D = taylor_dim(fd), B = std::max<int64_t>(1, h.block), L = h.L;
  const bool init = h.S0 || h.z0 || g.dS0 || g.dz0;
  const T rs = T(1.0 / std::sqrt(double(fd)));
  const std::vector<T> gp = powers<T>(h.gamma, L + 1);
  for (int64_t t = 0; t < L; ++t) {
    std::fill(g.dk + t * g.lddk, g.dk + t * g.lddk + fd, T(0));
    std::fill(g.dv + t * g.lddv, g.dv + t * g.lddv + dv, T(0));
  }
  if (g.dS0) std::fill(g.dS0, g.dS0 + D * dv, T(0));
  if (g.dz0) std::fill(g.dz0, g.dz0 + D, T(0));
  const T* u = h.dt ? h.u : h.y;
  const int64_t ldu = h.dt ? h.ldu : h.ldy;
  std::vector<T> A, DN, dnum(size_t(B * dv)), dden(static_cast<size_t>(B)), Fq, dnumg, dFq,
      dqi(static_cast<size_t>(fd));
  if (init) {
    Fq.resize(size_t(B * D));
    dnumg.resize(size_t(B * dv));
    dFq.resize(size_t(B * D));
  }
  for (int64_t t0 = 0; t0 < L; t0 += B) {
    const int64_t t1 = std::min(L, t0 + B), lb = t1 - t0;
    const T* q = h.q + t0 * h.ldq;
    for (int64_t i = 0; i < lb; ++i) {
      const int64_t t = t0 + i;
      const T* dyt = dy + t * lddy;
      const T* ut = u + t * ldu;
      const T sc = h.dt ? h.dt[t * h.lddt] : T(1), r = T(1) / h.den[t];
      T dot = 0;
      for (int64_t e = 0; e < dv; ++e) dot += dyt[e] * ut[e];
      if (h.dt) g.ddt[t * g.ldddt] = dot;
      dden[size_t(i)] = -sc * dot * r;
      for (int64_t e = 0; e < dv; ++e) dnum[size_t(i * dv + e)] = sc * dyt[e] * r;
    }
    A.resize(size_t(lb * t1));
    DN.resize(size_t(lb * t1));
    gemm_st<T>(false, true, lb, t1, fd, rs, q, h.ldq, h.k, h.ldk, T(0), A.data(), t1);
    gemm_st<T>(false, true, lb, t1, dv, T(1), dnum.data(), dv, h.v, h.ldv, T(0), DN.data(), t1);
    for (int64_t i = 0; i < lb; ++i) {
      const int64_t t = t0 + i;
      T* a = A.data() + i * t1;
      T* d = DN.data() + i * t1;
      for (int64_t j = 0; j <= t; ++j) {
        const T s = a[j], gj = gp[size_t(t - j)];
        const T dw = gj * d[j] + dden[size_t(i)];
        a[j] = (T(1) + s + T(0.5) * s * s) * gj;
        d[j] = dw * (T(1) + s) * rs;
      }
      std::fill(a + t + 1, a + t1, T(0));
      std::fill(d + t + 1, d + t1, T(0));
    }
    gemm_st<T>(false, false, lb, fd, t1, T(1), DN.data(), t1, h.k, h.ldk, T(0), g.dq + t0 * g.lddq, g.lddq);
    gemm_st<T>(true, false, t1, fd, lb, T(1), DN.data(), t1, q, h.ldq, T(1), g.dk, g.lddk);
    gemm_st<T>(true, false, t1, dv, lb, T(1), A.data(), t1, dnum.data(), dv, T(1), g.dv, g.lddv);
    if (!init) continue;
    features_rows(q, h.ldq, lb, fd, Fq.data());
    for (int64_t i = 0; i < lb; ++i)
      for (int64_t e = 0; e < dv; ++e) dnumg[size_t(i * dv + e)] = dnum[size_t(i * dv + e)] * gp[size_t(t0 + i + 1)];
    if (g.dS0) gemm_st<T>(true, false, D, dv, lb, T(1), Fq.data(), D, dnumg.data(), dv, T(1), g.dS0, dv);
    if (g.dz0)
      for (int64_t i = 0; i < lb; ++i)
        for (int64_t f = 0; f < D; ++f) g.dz0[f] += Fq[size_t(i * D + f)] * dden[size_t(i)];
    if (!h.S0 && !h.z0) continue;
    // dphi(q_t) = gamma^(t+1) S0 dnum_t + z0 dden_t  ->  dq_t through the feature map.
    if (h.S0)
      gemm_st<T>(false, true, lb, D, dv, T(1), dnumg.data(), dv, h.S0, dv, T(0), dFq.data(), D);
    else
      std::fill(dFq.begin(), dFq.end(), T(0));
    for (int64_t i = 0; i < lb; ++i) {
      T* df = dFq.data() + i * D;
      if (h.z0)
        for (int64_t f = 0; f < D; ++f) df[f] += h.z0[f] * dden[size_t(i)];
      taylor_features_bwd_t(q + i * h.ldq, fd, df, dqi.data());
      T* dq = g.dq + (t0 + i) * g.lddq;
      for (int64_t c = 0; c < fd; ++c) dq[c] += dqi[size_t(c)];
    }
  }
}

template <class T>
void la_accumulate_state_t(const T* k, int64_t ldk, const T* v, int64_t ldv, int64_t M, int64_t fd, int64_t dv, T* S,
                           T* z) {
  if (M <= 0) return;
  const int64_t D = taylor_dim(fd);
  std::vector<T> F(size_t(M * D));
  features_rows(k, ldk, M, fd, F.data());
  gemm_st<T>(true, false, D, dv, M, T(1), F.data(), D, v, ldv, T(1), S, dv);
  for (int64_t j = 0; j < M; ++j)
    for (int64_t i = 0; i < D; ++i) z[i] += F[size_t(j * D + i)];
}

// dv_j = dS^T phi(k_j);  dphi(k_j) = dS v_j + dz  ->  dk_j through the feature map.
template <class T>
void la_accumulate_state_bwd_t(const T* k, int64_t ldk, const T* v, int64_t ldv, int64_t M, int64_t fd, int64_t dv,
                               const T* dS, const T* dz, T* dk, int64_t lddk, T* dv_out, int64_t lddv) {
  if (M <= 0) return;
  const int64_t D = taylor_dim(fd);
  std::vector<T> F(size_t(M * D)), dF(size_t(M * D));
  features_rows(k, ldk, M, fd, F.data());
  gemm_st<T>(false, false, M, dv, D, T(1), F.data(), D, dS, dv, T(0), dv_out, lddv);
  gemm_st<T>(false, true, M, D, dv, T(1), v, ldv, dS, dv, T(0), dF.data(), D);
  for (int64_t j = 0; j < M; ++j) {
    T* df = dF.data() + j * D;
    for (int64_t f = 0; f < D; ++f) df[f] += dz[f];
    taylor_features_bwd_t(k + j * ldk, fd, df, dk + j * lddk);
  }
}

#define JRT_INST(T)                                                                                                \
  template void la_fwd_t<T>(const LaTrainHead<T>&);                                                                \
  template void la_bwd_t<T>(const LaTrainHead<T>&, const T*, int64_t, const LaTrainGrads<T>&);                     \
  template void la_accumulate_state_t<T>(const T*, int64_t, const T*, int64_t, int64_t, int64_t, int64_t, T*, T*); \
  template void la_accumulate_state_bwd_t<T>(const T*, int64_t, const T*, int64_t, int64_t, int64_t, int64_t,      \
                                             const T*, const T*, T*, int64_t, T*, int64_t);
JRT_INST(float)
JRT_INST(double)
#undef JRT_INST

}  // namespace jrt::ops
