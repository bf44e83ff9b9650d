// ops/norm.h — RMSNorm and LayerNorm over the last dim, fp32 (the reference computes norms in fp32
// with the residual stream in fp32: models-spec §2.1); plus training forms (T = float / double) that
// save the per-row statistics, and their backwards.
// Shapes: x, y [N, d]; w, b [d].
#pragma once
#include <cstdint>

namespace jrt::ops {

// y = x * rsqrt(mean(x^2) + eps) * w
void rmsnorm_fwd(const float* x, const float* w, float eps, int64_t N, int64_t d, float* y);
// y = (x - mean) * rsqrt(var + eps) * w + b   (b may be null)
void layernorm_fwd(const float* x, const float* w, const float* b, float eps, int64_t N, int64_t d, float* y);

// ---- training form ---------------------------------------------------------------------------
// Saved-activation contract: the forward writes rstd [N] (and mean [N] for LayerNorm); the backward
// reads x (the caller keeps the forward's input), w and those statistics. Row statistics are
// accumulated in double for both T (the float forward equals rmsnorm_fwd / layernorm_fwd).
// Backwards: dx (= ; += when accumulate_dx, e.g. straight into the residual stream's gradient),
// dw, db (+= ; db / dw null: skipped; db is ignored by RMSNorm, which has no bias).

template <class T>
void rmsnorm_fwd_t(const T* x, const T* w, double eps, int64_t N, int64_t d, T* y, T* rstd);
template <class T>
void rmsnorm_bwd_t(const T* dy, const T* x, const T* w, const T* rstd, int64_t N, int64_t d, T* dx, T* dw,
                   bool accumulate_dx = false);

template <class T>
void layernorm_fwd_t(const T* x, const T* w, const T* b, double eps, int64_t N, int64_t d, T* y, T* mean, T* rstd);
template <class T>
void layernorm_bwd_t(const T* dy, const T* x, const T* w, const T* mean, const T* rstd, int64_t N, int64_t d, T* dx,
                     T* dw, T* db, bool accumulate_dx = false);

}  // namespace jrt::ops
