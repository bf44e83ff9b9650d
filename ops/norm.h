// ops/norm.h — RMSNorm and LayerNorm over the last dim, fp32 (the reference computes norms in fp32
// with the residual stream in fp32: models-spec §2.1).
// Shapes: x, y [N, d]; w, b [d].
#pragma once
#include <cstdint>

namespace jrt::ops {

// y = x * rsqrt(mean(x^2) + eps) * w
void rmsnorm_fwd(const float* x, const float* w, float eps, int64_t N, int64_t d, float* y);
// y = (x - mean) * rsqrt(var + eps) * w + b   (b may be null)
void layernorm_fwd(const float* x, const float* w, const float* b, float eps, int64_t N, int64_t d, float* y);

}  // namespace jrt::ops
