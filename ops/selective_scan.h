// ops/selective_scan.h — Mamba's selective scan (models-spec §5.6) for one sequence continuing from
// its state h, fp32, computed term by term like the reference's `selective_scan_ref` /
// `selective_state_update`:
//   dA = exp(delta_t * A),  dBu = (delta_t * B_t) * x_t,  h_t = dA * h_{t-1} + dBu,
//   y_t[c] = sum_n h_t[c, n] * C_t[n] + D[c] * x_t[c]
// Shapes: x, delta, y [L, di] (row strides ldx, ldd, ldy; delta already softplus'ed), A [di, N]
// (= -exp(A_log)), B, C [L, N] (row strides ldb, ldc), D [di] or null, h [di, N] updated in place.
// Also the training form (T = float / double, below): the scan from a zero state saving checkpointed
// states, its backward, and delta = softplus(dt_proj(.) + bias) with its backward.
#pragma once
#include <cstdint>

namespace jrt::ops {

struct ScanParams {
  const float* A = nullptr;  // [di, N]
  const float* D = nullptr;  // [di] or null
  int64_t di = 0, N = 0;
};

struct ScanIO {
  const float* x = nullptr;
  int64_t ldx = 0;
  const float* delta = nullptr;
  int64_t ldd = 0;
  const float* B = nullptr;
  int64_t ldb = 0;
  const float* C = nullptr;
  int64_t ldc = 0;
  float* y = nullptr;
  int64_t ldy = 0;
  float* h = nullptr;  // [di, N]
  int64_t L = 0;
};

// Whole sequence, parallel over channels. chunk > 0 selects the time-blocked form: dA and dBu of
// `chunk` steps are materialised for a tile of channels (as the reference materialises them for all
// L) before the recurrence runs over them; chunk <= 0 is the direct per-step loop. Both give the same
// values (same operations in the same order). With scalar expf the direct loop measured ~2x faster
// (9 vs 16 ns per (t, c, n), one thread), so it is what the Mamba mixer uses.
void selective_scan_fwd(const ScanParams& p, const ScanIO& s, int64_t chunk = 0);

// Serial over channels [c0, c1) only (callers that parallelise over several sequences themselves).
void selective_scan_channels(const ScanParams& p, const ScanIO& s, int64_t c0, int64_t c1, int64_t chunk = 0);

// One token (decode): x, delta, y [di]; B, C [N]; h [di, N] updated. Parallel over channels.
void selective_scan_step(const ScanParams& p, const float* x, const float* delta, const float* B, const float* C,
                         float* h, float* y);

// ---- training form ---------------------------------------------------------------------------
// One sequence from h = 0, same operations as selective_scan_fwd (T = float gives the same y).
// Saved-activation contract: the forward writes y and hsave [scan_saved_states(L, ckpt), di, N], the
// state BEFORE steps 0, ckpt, 2*ckpt, ... (ckpt = 1 keeps every state; larger ckpt trades memory for a
// recomputation of ckpt steps per checkpoint in the backward). The backward reads x, delta, A, B, C, D,
// hsave. Both are threaded over channels.
// The chain to the parameters is the caller's: A = -exp(A_log) gives dA_log += dA * A.
inline int64_t scan_saved_states(int64_t L, int64_t ckpt) { return L <= 0 ? 0 : (L + ckpt - 1) / ckpt; }

template <class T>
struct ScanTrain {
  const T* x = nullptr;  // [L, di], row stride ldx
  int64_t ldx = 0;
  const T* delta = nullptr;  // [L, di], row stride ldd (already softplus'ed)
  int64_t ldd = 0;
  const T* A = nullptr;  // [di, N]
  const T* B = nullptr;  // [L, N], row stride ldb
  int64_t ldb = 0;
  const T* C = nullptr;  // [L, N], row stride ldc
  int64_t ldc = 0;
  const T* D = nullptr;  // [di] or null
  T* y = nullptr;        // [L, di], row stride ldy: written by the forward
  int64_t ldy = 0;
  T* hsave = nullptr;  // [scan_saved_states(L, ckpt), di, N]: written by the forward
  int64_t L = 0, di = 0, N = 0;
  int64_t ckpt = 64;  // >= 1
};

// Gradients of selective_scan_bwd_t. Activation grads (=): dx, ddelta [L, di], dB, dC [L, N] (row strides
// as named; none may be null). Parameter grads (+=): dA [di, N], dD [di] (null: skipped).
template <class T>
struct ScanGrads {
  T* dx = nullptr;
  int64_t lddx = 0;
  T* ddelta = nullptr;
  int64_t lddd = 0;
  T* dB = nullptr;
  int64_t lddb = 0;
  T* dC = nullptr;
  int64_t lddc = 0;
  T* dA = nullptr;
  T* dD = nullptr;
};

template <class T>
void selective_scan_fwd_t(const ScanTrain<T>& s);
// dy [L, di] (row stride lddy).
template <class T>
void selective_scan_bwd_t(const ScanTrain<T>& s, const T* dy, int64_t lddy, const ScanGrads<T>& g);

// delta = softplus(pre + bias) (torch threshold 20, as the inference path): pre [L, di] (row stride ldp,
// the dt_proj output without its bias), bias [di], delta [L, di] (row stride ldd). Saved-activation
// contract: the backward reads pre and bias. Backward: dpre [L, di] (row stride lddp) (=),
// dbias [di] (+=, null: skipped).
template <class T>
void delta_softplus_fwd_t(const T* pre, int64_t ldp, const T* bias, int64_t L, int64_t di, T* delta, int64_t ldd);
template <class T>
void delta_softplus_bwd_t(const T* ddelta, int64_t lddd, const T* pre, int64_t ldp, const T* bias, int64_t L,
                          int64_t di, T* dpre, int64_t lddp, T* dbias);

}  // namespace jrt::ops
