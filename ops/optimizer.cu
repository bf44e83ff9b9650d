// ops/optimizer.cu — the optimizer's GPU kernels: the squared gradient norm (double accumulation, as
// jrt::global_norm) and AdamW over the flat fp32 master buffers, bit-for-bit the float arithmetic of
// train/optimizer.cpp's AdamW::step (explicit _rn intrinsics: nvcc would otherwise fuse the multiply-adds
// into FMAs, which round once where the CPU rounds twice).
#include <algorithm>

#include "core/cuda_util.h"
#include "ops/cuda_train_ops.h"

namespace jrt::ops::cuda {

// Both kernels: 256 threads; a fixed shuffle tree within each warp, then the warps in order (thread 0).
constexpr int kSumThreads = 256;

__device__ __forceinline__ double block_sum_double(double s) {
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  __shared__ double sh[kSumThreads / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) sh[warp] = s;
  __syncthreads();
  for (int w = 1; w < kSumThreads / 32; ++w) s += sh[w];
  return s;  // the block's sum in thread 0
}

// Grid-stride over x [n]: per-thread double sums, reduced per block into part[blockIdx.x] (=). Squares of
// floats are exact in double, so only the summation order differs from the CPU; that order is fixed by n
// alone (the grid size depends on n only), so the result is bitwise reproducible.
__global__ void __launch_bounds__(kSumThreads) sum_squares_kernel(const float* x, int64_t n, double* part) {
  double s = 0.0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const double v = x[i];
    s += v * v;
  }
  s = block_sum_double(s);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}

// One block: out[0] += the sum of part [nblocks] (thread t adds parts t, t + 256, ... in order).
__global__ void __launch_bounds__(kSumThreads) sum_parts_kernel(const double* part, int nblocks, double* out) {
  double s = 0.0;
  for (int i = threadIdx.x; i < nblocks; i += kSumThreads) s += part[i];
  s = block_sum_double(s);
  if (threadIdx.x == 0) out[0] += s;
}

void sum_squares_cuda(const float* x, int64_t n, double* out, cudaStream_t stream) {
  if (n <= 0) return;
  // About two waves of 256-thread blocks on 132 SMs; their partial sums (<= 2048 doubles) are added by
  // one block.
  const unsigned grid = unsigned(std::min<int64_t>((n + kSumThreads - 1) / kSumThreads, 2048));
  jrt::cuda::StreamScratch<double> part(grid, stream);
  sum_squares_kernel<<<grid, kSumThreads, 0, stream>>>(x, n, part.get());
  JRT_CUDA_CHECK(cudaGetLastError());
  sum_parts_kernel<<<1, kSumThreads, 0, stream>>>(part.get(), int(grid), out);
  JRT_CUDA_CHECK(cudaGetLastError());
}

// One thread per element of the flat buffers [n]. keep: the decay factor of decayed elements; omb1 / omb2:
// 1 - beta1 / 1 - beta2 in float, as the CPU's (1.0f - fb1).
__global__ void adamw_kernel(AdamCudaArgs a, float keep, float omb1, float omb2) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.n) return;
  float gscale = a.gscale;
  if (a.norm2 && a.max_norm > 0) {  // as clip_grad_norm (train/optimizer.cpp): factor in double, applied as float
    const double f = double(a.max_norm) / (sqrt(*a.norm2) + 1e-6);
    gscale = f < 1.0 ? float(f) : 1.0f;
  }
  const float g = __fmul_rn(a.g[i], gscale);
  const float k = (a.decay == nullptr || a.decay[i]) ? keep : 1.0f;
  float p = __fmul_rn(a.p[i], k);
  const float m = __fadd_rn(__fmul_rn(a.beta1, a.m[i]), __fmul_rn(omb1, g));
  const float v = __fadd_rn(__fmul_rn(a.beta2, a.v[i]), __fmul_rn(__fmul_rn(omb2, g), g));
  const float denom = __fadd_rn(__fmul_rn(__fsqrt_rn(v), a.inv_sqrt_bc2), a.eps);
  p = __fsub_rn(p, __fdiv_rn(__fmul_rn(a.step_size, m), denom));
  a.p[i] = p;
  a.m[i] = m;
  a.v[i] = v;
  if (a.p_bf16) a.p_bf16[i] = __float2bfloat16(p);
}

// decay == null: every element is decayed (one group, as Zoology's decay_all).
void adamw_cuda(const AdamCudaArgs& a, cudaStream_t stream) {
  if (a.n <= 0) return;
  // The CPU forms keep in double from its double lr and wd, then rounds: identical whenever the caller's
  // lr and wd are floats (else keep may differ in its last bit).
  const float keep = float(1.0 - double(a.lr) * double(a.wd));
  const float omb1 = 1.0f - a.beta1, omb2 = 1.0f - a.beta2;
  adamw_kernel<<<unsigned((a.n + 255) / 256), 256, 0, stream>>>(a, keep, omb1, omb2);
  JRT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace jrt::ops::cuda
