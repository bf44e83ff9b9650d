// ops/linear.h — y = x W^T (+ b), PyTorch nn.Linear layout, through OpenBLAS sgemm.
// Shapes: x [N, in] (row stride ldx), W [out, in], b [out] or null, y [N, out] (row stride ldy).
#pragma once
#include <cstdint>

namespace jrt::ops {

void linear_fwd(const float* x, int64_t N, int64_t in, const float* W, const float* b, int64_t out, float* y,
                int64_t ldx = -1, int64_t ldy = -1, bool accumulate = false);

}  // namespace jrt::ops
