// ops/causal_conv1d.h — depthwise causal 1-D convolution over time, continuing from a tail state.
// BaseConv uses K = 3 without bias (models-spec §5.2), Mamba K = 4 with bias (§5.6).
//   y_t[c] = b[c] + sum_{i=0}^{K-1} w[c, i] * x_{t-K+1+i}[c]    (tap K-1 multiplies the current input;
//   PyTorch Conv1d is cross-correlation), with x_{<0} taken from the tail.
// Shapes: x [L, C] (row stride ldx), y [L, C] (row stride ldy), w [C, K] (= conv.weight [C, 1, K]),
// b [C] or null, tail [K-1, C]: the previous K-1 inputs, oldest first (zeros for a fresh sequence);
// updated to the last K-1 inputs (incl. older tail rows when L < K-1).
#pragma once
#include <cstdint>

namespace jrt::ops {

void causal_conv1d_fwd(const float* x, int64_t ldx, int64_t L, int64_t C, const float* w, int64_t K, const float* b,
                       float* tail, float* y, int64_t ldy);

// ---- training form (T = float / double): one sequence from a ZERO tail (x_{<0} = 0) -------------
// Saved-activation contract: the backward reads the forward's input x (caller keeps it) and w.
template <class T>
void causal_conv1d_fwd_t(const T* x, int64_t ldx, int64_t L, int64_t C, const T* w, int64_t K, const T* b, T* y,
                         int64_t ldy);
// dy [L, C] (row stride lddy) ->
//   dx [L, C] (row stride lddx) (=):  dx_s[c] = sum_i w[c, i] dy_{s+K-1-i}[c]   (null: skipped)
//   dw [C, K] (+=): dw[c, i] += sum_t dy_t[c] x_{t-K+1+i}[c];  db [C] (+=) (null: skipped)
// Threaded over channels.
template <class T>
void causal_conv1d_bwd_t(const T* dy, int64_t lddy, const T* x, int64_t ldx, int64_t L, int64_t C, const T* w,
                         int64_t K, T* dx, int64_t lddx, T* dw, T* db);

}  // namespace jrt::ops
