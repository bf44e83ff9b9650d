// ops/selective_scan_train.cpp — training form of Mamba's selective scan: forward from h = 0 with
// checkpointed states, backward by reverse sweeps that recompute each checkpoint interval's states,
// and the softplus of delta with its backward. Channels are independent: both run over fixed channel
// parts in parallel; dB / dC (shared by all channels) are summed per part and reduced in part order,
// so results do not depend on thread timing.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/threads.h"
#include "ops/activation.h"
#include "ops/selective_scan.h"

namespace jrt::ops {

namespace {

template <class T>
void check_scan(const ScanTrain<T>& s) {
  JRT_CHECK(s.L >= 0 && s.di > 0 && s.N > 0, "selective scan (training): bad shape L {} d_inner {} d_state {}", s.L,
            s.di, s.N);
  JRT_CHECK(s.ckpt >= 1, "selective scan (training): checkpoint interval must be >= 1, got {}", s.ckpt);
  JRT_CHECK(s.x && s.delta && s.A && s.B && s.C && s.y && (s.L == 0 || s.hsave),
            "selective scan (training): x, delta, A, B, C, y and hsave are required");
}

// Splits [0, n) into `parts` contiguous ranges; part p is [lo(p), lo(p + 1)).
inline int64_t part_lo(int64_t p, int64_t parts, int64_t n) { return p * n / parts; }

}  // namespace

template <class T>
void selective_scan_fwd_t(const ScanTrain<T>& s) {
  check_scan(s);
  if (s.L == 0) return;
  const int64_t N = s.N;
  parallel_for(s.di, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, s.L * N)), [&](int64_t c0, int64_t c1) {
    std::vector<T> h(static_cast<size_t>(N));
    for (int64_t c = c0; c < c1; ++c) {
      std::fill(h.begin(), h.end(), T(0));
      const T* a = s.A + c * N;
      for (int64_t t = 0; t < s.L; ++t) {
        if (t % s.ckpt == 0) std::copy(h.begin(), h.end(), s.hsave + ((t / s.ckpt) * s.di + c) * N);
        const T d = s.delta[t * s.ldd + c], u = s.x[t * s.ldx + c];
        const T* Bt = s.B + t * s.ldb;
        const T* Ct = s.C + t * s.ldc;
        T acc = 0;
        // Same operations, same order as selective_scan_fwd's direct loop.
        for (int64_t n = 0; n < N; ++n) {
          const T v = std::exp(d * a[n]) * h[size_t(n)] + (d * Bt[n]) * u;
          h[size_t(n)] = v;
          acc += v * Ct[n];
        }
        s.y[t * s.ldy + c] = s.D ? acc + u * s.D[c] : acc;
      }
    }
  });
}

// h_t = e_t h_{t-1} + d_t B_t x_t, e_t = exp(d_t A), y_t = C_t . h_t + D x_t. Reverse sweep with
// gh = dL/dh_t (all later steps):  gh += dy_t C_t;  dC_t += dy_t h_t;  dx_t = dy_t D + sum_n gh d_t B_t;
//   ddelta_t = sum_n gh (A e_t h_{t-1} + B_t x_t);  dA += gh d_t e_t h_{t-1};  dB_t += gh d_t x_t;
//   gh <- gh e_t (to step t-1).
template <class T>
void selective_scan_bwd_t(const ScanTrain<T>& s, const T* dy, int64_t lddy, const ScanGrads<T>& g) {
  check_scan(s);
  JRT_CHECK(g.dx && g.ddelta && g.dB && g.dC, "selective scan (training): dx, ddelta, dB and dC are required");
  if (s.L == 0) return;
  const int64_t N = s.N, L = s.L, K = s.ckpt;
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(num_threads(), s.di));
  std::vector<std::vector<T>> pB(static_cast<size_t>(parts)), pC(static_cast<size_t>(parts));
  parallel_for(parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      std::vector<T>& dB = pB[size_t(p)];
      std::vector<T>& dC = pC[size_t(p)];
      dB.assign(size_t(L * N), T(0));
      dC.assign(size_t(L * N), T(0));
      std::vector<T> hs(size_t((K + 1) * N)), ea(size_t(K * N)), gh(static_cast<size_t>(N)), dA(static_cast<size_t>(N));
      for (int64_t c = part_lo(p, parts, s.di); c < part_lo(p + 1, parts, s.di); ++c) {
        const T* a = s.A + c * N;
        std::fill(gh.begin(), gh.end(), T(0));
        std::fill(dA.begin(), dA.end(), T(0));
        T dD = 0;
        for (int64_t k0 = (L - 1) / K * K; k0 >= 0; k0 -= K) {
          const int64_t k1 = std::min(L, k0 + K);
          // Recompute the states of steps [k0, k1) from the checkpoint (same operations as the forward).
          std::copy(s.hsave + ((k0 / K) * s.di + c) * N, s.hsave + ((k0 / K) * s.di + c + 1) * N, hs.begin());
          for (int64_t t = k0; t < k1; ++t) {
            const T d = s.delta[t * s.ldd + c], u = s.x[t * s.ldx + c];
            const T* Bt = s.B + t * s.ldb;
            const T* hp = hs.data() + (t - k0) * N;
            T* hn = hs.data() + (t - k0 + 1) * N;
            T* e = ea.data() + (t - k0) * N;
            for (int64_t n = 0; n < N; ++n) {
              e[n] = std::exp(d * a[n]);
              hn[n] = e[n] * hp[n] + (d * Bt[n]) * u;
            }
          }
          for (int64_t t = k1 - 1; t >= k0; --t) {
            const T d = s.delta[t * s.ldd + c], u = s.x[t * s.ldx + c], gy = dy[t * lddy + c];
            const T* Bt = s.B + t * s.ldb;
            const T* Ct = s.C + t * s.ldc;
            const T* hp = hs.data() + (t - k0) * N;
            const T* hn = hs.data() + (t - k0 + 1) * N;
            const T* e = ea.data() + (t - k0) * N;
            T* dBt = dB.data() + t * N;
            T* dCt = dC.data() + t * N;
            T dx = s.D ? gy * s.D[c] : T(0), dd = 0;
            if (s.D) dD += gy * u;
            for (int64_t n = 0; n < N; ++n) {
              T gn = gh[size_t(n)] + gy * Ct[n];
              dCt[n] += gy * hn[n];
              const T ge = gn * e[n] * hp[n];  // dL/d(d a_n) through e
              dd += ge * a[n] + gn * Bt[n] * u;
              dA[size_t(n)] += ge * d;
              dBt[n] += gn * d * u;
              dx += gn * d * Bt[n];
              gh[size_t(n)] = gn * e[n];
            }
            g.dx[t * g.lddx + c] = dx;
            g.ddelta[t * g.lddd + c] = dd;
          }
        }
        if (g.dA)
          for (int64_t n = 0; n < N; ++n) g.dA[c * N + n] += dA[size_t(n)];
        if (g.dD) g.dD[c] += dD;
      }
    }
  });
  // dB, dC (=): the parts' sums in part order.
  parallel_for(L, 16, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      for (int64_t n = 0; n < N; ++n) {
        T b = 0, c = 0;
        for (int64_t p = 0; p < parts; ++p) {
          b += pB[size_t(p)][size_t(t * N + n)];
          c += pC[size_t(p)][size_t(t * N + n)];
        }
        g.dB[t * g.lddb + n] = b;
        g.dC[t * g.lddc + n] = c;
      }
  });
}

template <class T>
void delta_softplus_fwd_t(const T* pre, int64_t ldp, const T* bias, int64_t L, int64_t di, T* delta, int64_t ldd) {
  parallel_for(L, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, di)), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t)
      for (int64_t c = 0; c < di; ++c) delta[t * ldd + c] = softplus_t(pre[t * ldp + c] + bias[c]);
  });
}

template <class T>
void delta_softplus_bwd_t(const T* ddelta, int64_t lddd, const T* pre, int64_t ldp, const T* bias, int64_t L,
                          int64_t di, T* dpre, int64_t lddp, T* dbias) {
  parallel_for(L, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, di)), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t)
      for (int64_t c = 0; c < di; ++c)
        dpre[t * lddp + c] = ddelta[t * lddd + c] * softplus_grad_t(pre[t * ldp + c] + bias[c]);
  });
  if (dbias)
    parallel_for(di, 64, [&](int64_t c0, int64_t c1) {
      for (int64_t t = 0; t < L; ++t)
        for (int64_t c = c0; c < c1; ++c) dbias[c] += dpre[t * lddp + c];
    });
}

#define JRT_INST(T)                                                                                                    \
  template void selective_scan_fwd_t<T>(const ScanTrain<T>&);                                                          \
  template void selective_scan_bwd_t<T>(const ScanTrain<T>&, const T*, int64_t, const ScanGrads<T>&);                  \
  template void delta_softplus_fwd_t<T>(const T*, int64_t, const T*, int64_t, int64_t, T*, int64_t);                   \
  template void delta_softplus_bwd_t<T>(const T*, int64_t, const T*, int64_t, const T*, int64_t, int64_t, T*, int64_t, \
                                        T*);
JRT_INST(float)
JRT_INST(double)
#undef JRT_INST

}  // namespace jrt::ops
