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
// Also the training form (T = float / double, below): the same function from an optional initial state,
// with its backward.
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
void la_accumulate_state(const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t M, int64_t fd, int64_t dv,
                         float* S, float* z);

// ---- training form ---------------------------------------------------------------------------
// One head of one sequence, from an optional initial state (S0, z0) (JRT's prefix summary; zero for
// Based), computed in the exact O(L^2 fd) parallel form through the polynomial kernel
//   w_tj = phi(q_t).phi(k_j) = 1 + s + s^2/2,  s = q_t.k_j / sqrt(fd):
//   num_t = gamma^(t+1) S0^T phi(q_t) + sum_{j<=t} gamma^(t-j) w_tj v_j
//   den_t = phi(q_t).z0 + sum_{j<=t} w_tj + eps
//   u_t = num_t / den_t,  y_t = dt_t * u_t (y = u without dt)
// which equals la_chunked / la_quadratic / la_step from the state (S0, z0) (D = 1 + fd + fd^2).
// Saved-activation contract: the forward writes y, den [L] (the full denominator above, eps included)
// and, when dt is set, u [L, dv] (the output before the dt scale; not needed without dt, where u = y).
// The backward reads q, k, v, dt, S0, z0, y, den, u. Work is done in blocks of `block` queries against
// their visible keys, with GEMMs sized to stay single-threaded in BLAS; single-threaded: callers run
// (sequence, head) pairs in parallel.
template <class T>
struct LaTrainHead {
  const T* q = nullptr;  // [L, fd], row stride ldq
  int64_t ldq = 0;
  const T* k = nullptr;  // [L, fd], row stride ldk
  int64_t ldk = 0;
  const T* v = nullptr;  // [L, dv], row stride ldv
  int64_t ldv = 0;
  const T* dt = nullptr;  // [L] per-token output scale (stride lddt) or null
  int64_t lddt = 1;
  const T* S0 = nullptr;  // [D, dv] contiguous initial numerator state, or null (zero)
  const T* z0 = nullptr;  // [D] initial denominator state, or null (zero)
  T* y = nullptr;         // [L, dv] output (row stride ldy): written by la_fwd_t, read by la_bwd_t
  int64_t ldy = 0;
  T* den = nullptr;  // [L] saved denominators: written by la_fwd_t, read by la_bwd_t
  T* u = nullptr;    // [L, dv] (row stride ldu) output before dt; required iff dt is set
  int64_t ldu = 0;
  int64_t L = 0, fd = 16, dv = 0;
  double gamma = 1.0;  // numerator decay per step (1 = none)
  double eps = 1e-12;
  int64_t block = 64;  // queries per block (performance only)
};

// Gradient outputs of la_bwd_t, all written (=). dq/dk/dv are required; ddt is required iff dt is set;
// dS0 [D, dv] / dz0 [D] are computed when non-null (whether or not S0 / z0 are set).
template <class T>
struct LaTrainGrads {
  T* dq = nullptr;  // [L, fd], row stride lddq
  int64_t lddq = 0;
  T* dk = nullptr;  // [L, fd], row stride lddk
  int64_t lddk = 0;
  T* dv = nullptr;  // [L, dv], row stride lddv
  int64_t lddv = 0;
  T* ddt = nullptr;  // [L], stride ldddt
  int64_t ldddt = 1;
  T* dS0 = nullptr;  // [D, dv]
  T* dz0 = nullptr;  // [D]
};

template <class T>
void la_fwd_t(const LaTrainHead<T>& h);
// dy [L, dv] (row stride lddy): the gradient of the loss wrt y.
template <class T>
void la_bwd_t(const LaTrainHead<T>& h, const T* dy, int64_t lddy, const LaTrainGrads<T>& g);

// JRT encoder summary, training form: S [D, dv] += sum_j phi(k_j) v_j^T, z [D] += sum_j phi(k_j) over the
// M rows of k [M, fd] (stride ldk), v [M, dv] (stride ldv); T = float equals la_accumulate_state.
// Saved-activation contract: the backward reads k and v. Padding masks zero k rows BEFORE phi (models-spec
// §5.1.3): the caller zeroes those k rows for the forward and zeroes the same rows of dk afterwards.
template <class T>
void la_accumulate_state_t(const T* k, int64_t ldk, const T* v, int64_t ldv, int64_t M, int64_t fd, int64_t dv, T* S,
                           T* z);
// dS [D, dv], dz [D] -> dk [M, fd] (row stride lddk) (=), dv [M, dv] (row stride lddv) (=).
template <class T>
void la_accumulate_state_bwd_t(const T* k, int64_t ldk, const T* v, int64_t ldv, int64_t M, int64_t fd, int64_t dv,
                               const T* dS, const T* dz, T* dk, int64_t lddk, T* dv_out, int64_t lddv);

}  // namespace jrt::ops
