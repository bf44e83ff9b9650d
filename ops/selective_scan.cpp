// ops/selective_scan.cpp — direct and time-blocked selective scan over a channel range; the public
// entry points split channels across threads (channels are independent; time is sequential).
#include "ops/selective_scan.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/threads.h"

namespace jrt::ops {

namespace {

// Channels per tile of the blocked form: small enough that a block's dA / dBu stay in L1/L2.
constexpr int64_t kTileC = 8;

void scan_direct(const ScanParams& p, const ScanIO& s, int64_t c0, int64_t c1) {
  const int64_t N = p.N;
  for (int64_t t = 0; t < s.L; ++t) {
    const float* xt = s.x + t * s.ldx;
    const float* dt = s.delta + t * s.ldd;
    const float* Bt = s.B + t * s.ldb;
    const float* Ct = s.C + t * s.ldc;
    float* yt = s.y + t * s.ldy;
    for (int64_t c = c0; c < c1; ++c) {
      const float d = dt[c], u = xt[c];
      const float* a = p.A + c * N;
      float* hc = s.h + c * N;
      float acc = 0.0f;
      for (int64_t n = 0; n < N; ++n) {
        const float v = std::exp(d * a[n]) * hc[n] + (d * Bt[n]) * u;
        hc[n] = v;
        acc += v * Ct[n];
      }
      yt[c] = p.D ? acc + u * p.D[c] : acc;
    }
  }
}

// Same operations as scan_direct, but the exponentials and input terms of `chunk` steps are computed
// first (they do not depend on h), so the dependent recurrence runs over ready operands.
void scan_blocked(const ScanParams& p, const ScanIO& s, int64_t c0, int64_t c1, int64_t chunk) {
  const int64_t N = p.N;
  std::vector<float> dA(size_t(chunk * kTileC * N)), dBu(dA.size());
  for (int64_t cb = c0; cb < c1; cb += kTileC) {
    const int64_t ce = std::min(c1, cb + kTileC), nc = ce - cb;
    for (int64_t t0 = 0; t0 < s.L; t0 += chunk) {
      const int64_t t1 = std::min(s.L, t0 + chunk);
      for (int64_t t = t0; t < t1; ++t) {
        const float* xt = s.x + t * s.ldx;
        const float* dt = s.delta + t * s.ldd;
        const float* Bt = s.B + t * s.ldb;
        float* ea = dA.data() + (t - t0) * nc * N;
        float* eb = dBu.data() + (t - t0) * nc * N;
        for (int64_t c = cb; c < ce; ++c) {
          const float d = dt[c], u = xt[c];
          const float* a = p.A + c * N;
          for (int64_t n = 0; n < N; ++n) {
            ea[(c - cb) * N + n] = std::exp(d * a[n]);
            eb[(c - cb) * N + n] = (d * Bt[n]) * u;
          }
        }
      }
      for (int64_t t = t0; t < t1; ++t) {
        const float* xt = s.x + t * s.ldx;
        const float* Ct = s.C + t * s.ldc;
        float* yt = s.y + t * s.ldy;
        const float* ea = dA.data() + (t - t0) * nc * N;
        const float* eb = dBu.data() + (t - t0) * nc * N;
        for (int64_t c = cb; c < ce; ++c) {
          float* hc = s.h + c * N;
          float acc = 0.0f;
          for (int64_t n = 0; n < N; ++n) {
            const float v = ea[(c - cb) * N + n] * hc[n] + eb[(c - cb) * N + n];
            hc[n] = v;
            acc += v * Ct[n];
          }
          yt[c] = p.D ? acc + xt[c] * p.D[c] : acc;
        }
      }
    }
  }
}

// Channels per task: enough work per thread to amortise the fork (an exp per (t, c, n)).
int64_t channel_grain(int64_t L, int64_t N) { return std::max<int64_t>(kTileC, 4096 / std::max<int64_t>(1, L * N)); }

}  // namespace

void selective_scan_channels(const ScanParams& p, const ScanIO& s, int64_t c0, int64_t c1, int64_t chunk) {
  if (s.L <= 0 || c0 >= c1) return;
  if (chunk > 0)
    scan_blocked(p, s, c0, c1, chunk);
  else
    scan_direct(p, s, c0, c1);
}

void selective_scan_fwd(const ScanParams& p, const ScanIO& s, int64_t chunk) {
  if (s.L <= 0) return;
  parallel_for(p.di, channel_grain(s.L, p.N),
               [&](int64_t c0, int64_t c1) { selective_scan_channels(p, s, c0, c1, chunk); });
}

void selective_scan_step(const ScanParams& p, const float* x, const float* delta, const float* B, const float* C,
                         float* h, float* y) {
  const int64_t N = p.N;
  // selective_state_update: dA = exp(dt * A), dB = B * dt, h = h * dA + dB * x, y = sum(h * C) + x * D.
  parallel_for(p.di, channel_grain(1, N), [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const float d = delta[c], u = x[c];
      const float* a = p.A + c * N;
      float* hc = h + c * N;
      float acc = 0.0f;
      for (int64_t n = 0; n < N; ++n) {
        const float v = hc[n] * std::exp(d * a[n]) + (B[n] * d) * u;
        hc[n] = v;
        acc += v * C[n];
      }
      y[c] = p.D ? acc + u * p.D[c] : acc;
    }
  });
}

}  // namespace jrt::ops
