// ops/norm.cu — RMSNorm / LayerNorm on the GPU: fp32 residual rows in, bf16 normalised rows out, the
// statistics in fp32 exactly as ops/norm.h (mean of squares, eps inside the square root).
#include "core/cuda_util.h"
#include "ops/cuda_ops.h"

namespace jrt::ops::cuda {

// Block-wide sum of one float per thread (blockDim.x a multiple of 32, <= 1024).
__device__ float block_sum(float v, float* sh) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nw = blockDim.x / 32;
  __syncthreads();  // sh may still be read by a previous call
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  float t = 0.0f;
  for (int i = 0; i < nw; ++i) t += sh[i];
  return t;
}

// One CTA per output row n: x [rows[n] or n, d] fp32 -> y [n, d] bf16.
__global__ void norm_kernel(const float* x, int64_t ldx, const int32_t* rows, const float* w, const float* b, bool rms,
                            float eps, int64_t d, bf16* y, int64_t ldy) {
  __shared__ float sh[32];
  const int64_t n = blockIdx.x;
  const float* xr = x + (rows ? int64_t(rows[n]) : n) * ldx;
  bf16* yr = y + n * ldy;
  float mean = 0.0f;
  if (!rms) {
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) s += xr[i];
    mean = block_sum(s, sh) / float(d);
  }
  float s2 = 0.0f;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    const float c = xr[i] - mean;
    s2 += c * c;
  }
  const float inv = rsqrtf(block_sum(s2, sh) / float(d) + eps);
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    float v = (xr[i] - mean) * inv * w[i];
    if (b) v += b[i];
    yr[i] = __float2bfloat16(v);
  }
}

void norm_cuda(const float* x, int64_t ldx, const int32_t* rows, const float* w, const float* b, bool rms, float eps,
               int64_t N, int64_t d, bf16* y, int64_t ldy, cudaStream_t stream) {
  if (N <= 0) return;
  const int threads = d >= 1024 ? 512 : d >= 256 ? 256 : 128;
  norm_kernel<<<unsigned(N), threads, 0, stream>>>(x, ldx, rows, w, rms ? nullptr : b, rms, eps, d, y, ldy);
  JRT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace jrt::ops::cuda
