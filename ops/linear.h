// ops/linear.h — y = x W^T (+ b), PyTorch nn.Linear layout, through OpenBLAS sgemm; plus the training
// form (templated on T = float / double) and its backward.
// Shapes: x [N, in] (row stride ldx), W [out, in], b [out] or null, y [N, out] (row stride ldy).
#pragma once
#include <cstdint>

namespace jrt::ops {

void linear_fwd(const float* x, int64_t N, int64_t in, const float* W, const float* b, int64_t out, float* y,
                int64_t ldx = -1, int64_t ldy = -1, bool accumulate = false);

// ---- training form ---------------------------------------------------------------------------
// Saved-activation contract: the backward reads the forward's input x (the caller keeps it) and W.
// Leading dims < 0 mean contiguous (in for x / dx, out for y / dy).

// y (=) [N, out] = x W^T + b.
template <class T>
void linear_fwd_t(const T* x, int64_t N, int64_t in, const T* W, const T* b, int64_t out, T* y, int64_t ldx = -1,
                  int64_t ldy = -1);

// dy [N, out] (row stride lddy) ->
//   dx [N, in] = dy W          (= ; += when accumulate_dx, for inputs with several consumers; null: skipped)
//   dW [out, in] += dy^T x     (+= ; null: skipped)
//   db [out]     += sum_n dy_n (+= ; null: skipped)
template <class T>
void linear_bwd_t(const T* dy, const T* x, const T* W, int64_t N, int64_t in, int64_t out, T* dx, T* dW, T* db,
                  int64_t lddy = -1, int64_t ldx = -1, int64_t lddx = -1, bool accumulate_dx = false);

}  // namespace jrt::ops
