// ops/optimizer.cu — the optimizer's GPU kernels: the squared gradient norm (double accumulation, as
// jrt::global_norm) and AdamW over the flat fp32 master buffers, bit-for-bit the float arithmetic of
// train/optimizer.cpp's AdamW::step (explicit _rn intrinsics: nvcc would otherwise fuse the multiply-adds
// into FMAs, which round once where the CPU rounds twice).
#include <algorithm>

#include "core/cuda_util.h"
#include "ops/cuda_train_ops.h"

namespace jrt::ops::cuda {

// Grid-stride over x [n]: per-thread double sums, a warp then block reduction, one atomicAdd(double)
// per block into out[0]. Squares of floats are exact in double, so only the summation order differs
// from the CPU.
__global__ void sum_squares_kernel(const float* x, int64_t n, double* out) {
  double s = 0.0;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const double v = x[i];
    s += v * v;
  }
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  __shared__ double sh[32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) sh[warp] = s;
  __syncthreads();
  if (threadIdx.x != 0) return;
  for (int w = 1; w < int(blockDim.x / 32); ++w) s += sh[w];
  atomicAdd(out, s);
}

void sum_squares_cuda(const float* x, int64_t n, double* out, cudaStream_t stream) {
  if (n <= 0) return;
  // About two waves of 256-thread blocks on 132 SMs; more would only add atomics.
  const unsigned grid = unsigned(std::min<int64_t>((n + 255) / 256, 2048));
  sum_squares_kernel<<<grid, 256, 0, stream>>>(x, n, out);
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
