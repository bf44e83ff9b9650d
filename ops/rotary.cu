// ops/rotary.cu — rotary_cuda (see cuda_ops.h): flash-attn's non-interleaved rotary embedding in place
// on bf16 rows, with ops::Rotary's fp32 angles (theta = fp32(fp32(p) * inv_freq[i])); and its backward
// rotary_bwd_cuda (cuda_train_ops.h), the transposed rotation (same cos, negated sin).
#include <cuda_bf16.h>

#include <algorithm>

#include "core/cuda_util.h"
#include "ops/cuda_common.cuh"
#include "ops/cuda_ops.h"
#include "ops/cuda_train_ops.h"

namespace jrt::ops::cuda {
namespace {

constexpr int kThreads = 256;

// x [T, ld] bf16, heads of hd columns side by side; one thread per (row t, head, pair i < nf):
// rotates (x[i], x[i + nf]) of that head by theta[p, i] (kInverse: by -theta, the backward). Consecutive
// threads take consecutive i so the row loads coalesce.
template <bool kInverse>
__global__ void rotary_kernel(bf16* __restrict__ x, int64_t ld, const int32_t* __restrict__ cu,
                              const int32_t* __restrict__ pos0, int B, int64_t T, int heads, int hd,
                              const float* __restrict__ inv_freq, int nf) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t total = T * heads * nf;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int i = int(e % nf);
    const int64_t rest = e / nf;
    const int h = int(rest % heads);
    const int64_t t = rest / heads;
    const int b = find_seq(cu, B, t);
    const int64_t p = (pos0 ? int64_t(pos0[b]) : 0) + (t - cu[b]);
    // Exactly the CPU's fp32 product (no FMA contraction possible here, but __fmul_rn makes it
    // explicit); precise sincosf, not __sinf: angles reach tens of thousands of radians.
    const float th = __fmul_rn(float(p), inv_freq[i]);
    float s, c;
    sincosf(th, &s, &c);
    if (kInverse) s = -s;  // R^T: the CPU's -sin of the same table value, exactly
    bf16* x0 = x + t * ld + int64_t(h) * hd + i;
    const float a = __bfloat162float(x0[0]), bb = __bfloat162float(x0[nf]);
    x0[0] = __float2bfloat16(a * c - bb * s);
    x0[nf] = __float2bfloat16(a * s + bb * c);
  }
}

template <bool kInverse>
void launch_rotary(const char* what, bf16* x, int64_t ld, const int32_t* cu_seqlens, const int32_t* pos0, int B,
                   int64_t T, int heads, int hd, const float* inv_freq, int nf, cudaStream_t stream) {
  if (T <= 0 || heads <= 0 || nf <= 0) return;
  JRT_CHECK(B > 0, "{}: {} rows but no sequences", what, T);
  JRT_CHECK(2 * nf <= hd, "{}: {} rotated dims exceed the head dim {}", what, 2 * nf, hd);
  const int64_t total = T * heads * nf;
  // Grid-stride loop: cap the grid, each thread then handles a few elements.
  const int64_t blocks = std::min<int64_t>((total + kThreads - 1) / kThreads, int64_t(1) << 16);
  launch_pdl(rotary_kernel<kInverse>, unsigned(blocks), kThreads, 0, stream, x, ld, cu_seqlens, pos0, B, T, heads, hd,
             inv_freq, nf);
  JRT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void rotary_cuda(bf16* x, int64_t ld, const int32_t* cu_seqlens, const int32_t* pos0, int B, int64_t T, int heads,
                 int hd, const float* inv_freq, int nf, cudaStream_t stream) {
  launch_rotary<false>("rotary_cuda", x, ld, cu_seqlens, pos0, B, T, heads, hd, inv_freq, nf, stream);
}

void rotary_bwd_cuda(bf16* dx, int64_t ld, const int32_t* cu_seqlens, const int32_t* pos0, int B, int64_t T, int heads,
                     int hd, const float* inv_freq, int nf, cudaStream_t stream) {
  launch_rotary<true>("rotary_bwd_cuda", dx, ld, cu_seqlens, pos0, B, T, heads, hd, inv_freq, nf, stream);
}

}  // namespace jrt::ops::cuda
