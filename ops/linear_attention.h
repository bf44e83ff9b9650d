// ops/linear_attention.h — causal Taylor linear attention for ONE head of ONE sequence, continuing
// from a state (S, z). Covers Based LinearAttention (optional fixed decay gamma and per-token output
// scale dt, models-spec §4.3) and the decoder half of JRT's prefix linear attention (§5.1).
//
//   S_t = gamma * S_{t-1} + phi(k_t) v_t^T      S: [D, dv], D = 1 + fd + fd^2
//   z_t = z_{t-1} + phi(k_t)                    z: [D]   (never decayed)
//   y_t = dt_t * (phi(q_t)^T S_t) / (phi(q_t).z_t + eps)
//
// Three implementations of the same function (tests prove them equal):
//   la_chunked   — chunks of C tokens: inter-chunk through S with GEMMs, intra-chunk by the
//                  polynomial kernel (C = 1 is the recurrence, C >= L the parallel form);
//   la_quadratic — the O(L^2) parallel form, independent code, the reference check;
//   la_step      — one token, the decode step.
// Strided views: q/k rows of stride ldq/ldk (fd used), v rows of stride ldv (dv used), y rows of stride ldy.
#pragma once
#include <cstdint>

namespace jrt::ops {

struct LaHead {
  const float* q;
  int64_t ldq;
  const float* k;
  int64_t ldk;
  const float* v;
  int64_t ldv;
  float* y;
  int64_t ldy;
  const float* dt = nullptr;  // per-token output scale (Based decay_proj), stride lddt, or null
  int64_t lddt = 1;
  int64_t L = 0, fd = 16, dv = 0;
  double gamma = 1.0;  // numerator decay per step (1 = none)
  float eps = 1e-12f;
};

void la_chunked(const LaHead& h, float* S, float* z, int64_t chunk);
void la_quadratic(const LaHead& h, float* S, float* z);
void la_step(const LaHead& h, float* S, float* z);  // h.L must be 1

// Adds a non-causal prefix summary (JRT encoder): S += sum_j phi(k_j) v_j^T, z += sum_j phi(k_j)
// over the M rows of k [M, fd] (stride ldk) and v [M, dv] (stride ldv).
void la_accumulate_state(const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t M, int64_t fd,
                         int64_t dv, float* S, float* z);

}  // namespace jrt::ops
