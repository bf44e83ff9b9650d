// ops/norm.cu — RMSNorm / LayerNorm on the GPU: fp32 residual rows in, bf16 normalised rows out, the
// statistics in fp32 exactly as ops/norm.h (mean of squares, eps inside the square root); and the
// training forms (saved mean / rstd, backward with dw / db column sums).
#include <algorithm>

#include "core/cuda_util.h"
#include "ops/cuda_ops.h"
#include "ops/cuda_train_ops.h"

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

// ---- training (cuda_train_ops.h) --------------------------------------------------------------------
// Two layouts of the same row math: for d <= kWarpRowMax a warp owns a row (8 rows per 256-thread block,
// shuffle-only reductions: d is 64..512 in these models, where a block per row would idle most
// threads); wider rows get a block each.
constexpr int64_t kWarpRowMax = 1024;
constexpr int kRowsPerBlock = 8;  // warp form: 256 threads
// Backward grid cap: about one wave on 132 SMs, so that each block's dw / db partial sums cover many rows.
constexpr unsigned kMaxBwdBlocks = 1024;

template <bool kWarp>
__device__ __forceinline__ float group_sum(float v, float* sh) {
  if constexpr (kWarp) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
  } else {
    return block_sum(v, sh);
  }
}

// x [N, d] fp32 -> y [N, d] bf16, mean [N] (LayerNorm; may be null), rstd [N]. Row n: warp or block.
template <bool kWarp>
__global__ void norm_fwd_train_kernel(const float* x, const float* w, const float* b, bool rms, float eps, int64_t N,
                                      int64_t d, bf16* y, float* mean, float* rstd) {
  __shared__ float sh[32];
  const int lanes = kWarp ? 32 : int(blockDim.x), lane = kWarp ? int(threadIdx.x % 32) : int(threadIdx.x);
  const int64_t n = kWarp ? int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32 : int64_t(blockIdx.x);
  if (n >= N) return;  // warp form only (whole warps; no block barrier follows)
  const float* xr = x + n * d;
  bf16* yr = y + n * d;
  float mu = 0.0f;
  if (!rms) {
    float s = 0.0f;
    for (int64_t i = lane; i < d; i += lanes) s += xr[i];
    mu = group_sum<kWarp>(s, sh) / float(d);
  }
  float s2 = 0.0f;
  for (int64_t i = lane; i < d; i += lanes) {
    const float c = xr[i] - mu;
    s2 += c * c;
  }
  const float r = rsqrtf(group_sum<kWarp>(s2, sh) / float(d) + eps);
  if (lane == 0) {
    if (mean) mean[n] = mu;
    if (rstd) rstd[n] = r;
  }
  for (int64_t i = lane; i < d; i += lanes) {
    float v = (xr[i] - mu) * r * w[i];
    if (b) v += b[i];
    yr[i] = __float2bfloat16(v);
  }
}

void norm_fwd_train_cuda(const float* x, const float* w, const float* b, bool rms, float eps, int64_t N, int64_t d,
                         bf16* y, float* mean, float* rstd, cudaStream_t stream) {
  if (N <= 0 || d <= 0) return;
  if (rms) b = nullptr;
  if (d <= kWarpRowMax) {
    const unsigned grid = unsigned((N + kRowsPerBlock - 1) / kRowsPerBlock);
    norm_fwd_train_kernel<true><<<grid, 32 * kRowsPerBlock, 0, stream>>>(x, w, b, rms, eps, N, d, y, mean, rstd);
  } else {
    norm_fwd_train_kernel<false>
        <<<unsigned(N), d >= 2048 ? 512 : 256, 0, stream>>>(x, w, b, rms, eps, N, d, y, mean, rstd);
  }
  JRT_CUDA_CHECK(cudaGetLastError());
}

// dx [N, d] += the input gradient of row n (warp or block per row, grid-stride over rows); dw / db [d]
// += column sums: each block sums its rows in shared memory (acc [2 d]) and adds them with one global
// atomic per column, so the atomics are O(grid * d), not O(N * d).
//   RMSNorm:   dx = r (g w - x r^2 mean(g w x)),             dw += g x r
//   LayerNorm: dx = r (g w - mean(g w) - xh mean(g w xh)),    dw += g xh, db += g,   xh = (x - mu) r
template <bool kWarp>
__global__ void norm_bwd_kernel(const float* dy, const float* x, const float* w, const float* mean, const float* rstd,
                                bool rms, int64_t N, int64_t d, float* dx, float* dw, float* db) {
  extern __shared__ float acc[];  // [0, d): dw, [d, 2 d): db partial sums of this block
  __shared__ float sh[32];
  const bool cols = dw || db;
  if (cols) {
    for (int64_t i = threadIdx.x; i < 2 * d; i += blockDim.x) acc[i] = 0.0f;
    __syncthreads();
  }
  const int lanes = kWarp ? 32 : int(blockDim.x), lane = kWarp ? int(threadIdx.x % 32) : int(threadIdx.x);
  const int64_t rows = kWarp ? blockDim.x / 32 : 1;
  const int64_t first = kWarp ? int64_t(blockIdx.x) * rows + threadIdx.x / 32 : int64_t(blockIdx.x);
  const float inv_d = 1.0f / float(d);
  // Block form: n is uniform over the block, so every thread reaches block_sum's barriers.
  for (int64_t n = first; n < N; n += int64_t(gridDim.x) * rows) {
    const float* xr = x + n * d;
    const float* gr = dy + n * d;
    float* dr = dx + n * d;
    const float r = rstd[n], mu = rms ? 0.0f : mean[n];
    float s1 = 0.0f, s2 = 0.0f;
    for (int64_t i = lane; i < d; i += lanes) {
      const float g = gr[i] * w[i];
      if (rms) {
        s1 += g * xr[i];
      } else {
        s1 += g;
        s2 += g * ((xr[i] - mu) * r);
      }
    }
    s1 = group_sum<kWarp>(s1, sh) * inv_d;
    if (!rms) s2 = group_sum<kWarp>(s2, sh) * inv_d;
    const float c = s1 * r * r;  // RMSNorm's x coefficient
    for (int64_t i = lane; i < d; i += lanes) {
      const float g = gr[i], xv = xr[i], xh = (xv - mu) * r;
      dr[i] += rms ? r * (g * w[i] - xv * c) : r * (g * w[i] - s1 - xh * s2);
      if (cols) {
        if constexpr (kWarp) {  // the block's warps share the columns
          if (dw) atomicAdd(acc + i, g * xh);
          if (db) atomicAdd(acc + d + i, g);
        } else {  // a thread owns its columns
          if (dw) acc[i] += g * xh;
          if (db) acc[d + i] += g;
        }
      }
    }
  }
  if (!cols) return;
  __syncthreads();
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    if (dw) atomicAdd(dw + i, acc[i]);
    if (db) atomicAdd(db + i, acc[d + i]);
  }
}

void norm_bwd_cuda(const float* dy, const float* x, const float* w, const float* mean, const float* rstd, bool rms,
                   int64_t N, int64_t d, float* dx, float* dw, float* db, cudaStream_t stream) {
  if (N <= 0 || d <= 0) return;
  if (rms) db = nullptr;
  const size_t smem = (dw || db) ? size_t(2 * d) * sizeof(float) : 0;
  // 48 KiB of shared memory without an opt-in, less the reduction scratch: d <= 6128.
  JRT_CHECK(smem + 32 * sizeof(float) <= 48 * 1024, "norm_bwd_cuda: d = {} is too wide for the dw / db sums", d);
  if (d <= kWarpRowMax) {
    const unsigned grid = unsigned(std::min<int64_t>((N + kRowsPerBlock - 1) / kRowsPerBlock, kMaxBwdBlocks));
    norm_bwd_kernel<true><<<grid, 32 * kRowsPerBlock, smem, stream>>>(dy, x, w, mean, rstd, rms, N, d, dx, dw, db);
  } else {
    const unsigned grid = unsigned(std::min<int64_t>(N, kMaxBwdBlocks));
    const int threads = d >= 2048 ? 512 : 256;
    norm_bwd_kernel<false><<<grid, threads, smem, stream>>>(dy, x, w, mean, rstd, rms, N, d, dx, dw, db);
  }
  JRT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace jrt::ops::cuda
