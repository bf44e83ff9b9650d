// ops/norm.cu — RMSNorm / LayerNorm on the GPU: fp32 residual rows in, bf16 normalised rows out, the
// statistics in fp32 exactly as ops/norm.h (mean of squares, eps inside the square root); and the
// training forms (saved mean / rstd, backward with dw / db column sums).
#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "core/cuda_util.h"
#include "ops/cuda_common.cuh"
#include "ops/cuda_ops.h"
#include "ops/cuda_train_ops.h"

namespace jrt::ops::cuda {

namespace {
// JRT_NORM_WARP=0: the CTA-per-row kernels for every shape (A/B runs of norm_warp_kernel).
bool warp_norms() {
  static const bool on = [] {
    const char* v = std::getenv("JRT_NORM_WARP");
    return !(v && v[0] == '0');
  }();
  return on;
}
// Warps (rows) per CTA of norm_warp_kernel for N rows: 8, unless that leaves SMs idle; then as few as spread
// the rows over all SMs (a decode step's 128 rows: 128 CTAs of one warp instead of 16 of eight, so no SM
// streams eight rows through its L1 while the others idle). JRT_NORM_SPREAD=0: always 8 (A/B runs).
int norm_rows_per_cta(int64_t N) {
  static const bool spread = [] {
    const char* v = std::getenv("JRT_NORM_SPREAD");
    return !(v && v[0] == '0');
  }();
  if (!spread) return 8;
  const int64_t nsm = jrt::cuda::sm_count();
  return int(std::clamp<int64_t>((N + nsm - 1) / nsm, 1, 8));
}
}  // namespace

// Block-wide sum of one float per thread (blockDim.x a multiple of 32, <= 1024).
__device__ float block_sum(float v, float* sh) {
  v = warp_sum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nw = blockDim.x / 32;
  __syncthreads();  // sh may still be read by a previous call
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  float t = 0.0f;
  for (int i = 0; i < nw; ++i) t += sh[i];
  return t;
}

// One CTA per output row n: x [rows[n] or n, d] fp32 -> y [n, d] bf16. The row is read once into
// registers (kPer values per thread, d <= kPer * blockDim.x), so the statistics and the output need no
// second pass over memory: the decode step's norms are latency-bound (a few hundred rows).
template <int kPer>
__global__ void norm_kernel(const float* x, int64_t ldx, const int32_t* rows, const float* w, const float* b, bool rms,
                            float eps, int64_t d, bf16* y, int64_t ldy) {
  __shared__ float sh[32];
  const int64_t n = blockIdx.x;
  const int nt = int(blockDim.x), id = int(d);
  // The weights (and bias) are loaded before the row, ahead of the reductions (issued after them, their
  // latency came on top of the two block sums), and ahead of pdl_wait: they are constants.
  float v[kPer], wv[kPer], bv[kPer];
#pragma unroll
  for (int u = 0; u < kPer; ++u) {
    const int i = int(threadIdx.x) + u * nt;
    wv[u] = i < id ? w[i] : 0.0f;
    bv[u] = b && i < id ? b[i] : 0.0f;
  }
  pdl_wait();
  pdl_launch_dependents();
  const float* xr = x + (rows ? int64_t(rows[n]) : n) * ldx;
  bf16* yr = y + n * ldy;
#pragma unroll
  for (int u = 0; u < kPer; ++u) {
    const int i = int(threadIdx.x) + u * nt;
    v[u] = i < id ? xr[i] : 0.0f;
  }
  float mean = 0.0f;
  if (!rms) {
    float s = 0.0f;
#pragma unroll
    for (int u = 0; u < kPer; ++u) s += v[u];
    mean = block_sum(s, sh) / float(d);
  }
  float s2 = 0.0f;
#pragma unroll
  for (int u = 0; u < kPer; ++u) {
    const int i = int(threadIdx.x) + u * nt;
    const float c = i < id ? v[u] - mean : 0.0f;
    s2 += c * c;
  }
  const float inv = rsqrtf(block_sum(s2, sh) / float(d) + eps);
#pragma unroll
  for (int u = 0; u < kPer; ++u) {
    const int i = int(threadIdx.x) + u * nt;
    if (i < id) {
      float o = (v[u] - mean) * inv * wv[u];
      if (b) o += bv[u];
      yr[i] = __float2bfloat16(o);
    }
  }
}

// Rows of d <= 2048 columns, d % 4 == 0, 16-byte aligned: one warp per row, 1-8 rows per CTA (norm_rows_per_cta:
// 8 unless that leaves SMs idle, then the rows spread over all SMs; Based-1B step at batch 128 2.752 / 2.771 ->
// 2.747 / 2.737 ms, batch 16 1.583 / 1.619 -> 1.573 / 1.561, JRT_NORM_SPREAD=0 / 1, H200). Lane l holds float4s
// l, l + 32, .. of the row (kVec of them) in registers; the statistics are warp shuffles, with no shared memory and
// no CTA barrier. The same formulas as norm_kernel (mean, then the mean of squared deviations, eps inside the root);
// only the order of the sums differs. Why: the decode step's norms are latency-bound (a few hundred rows), and at
// batch 128 most of them precede a cuBLAS GEMM, which waits for them (it has no programmatic dependent launch).
// Measured (H200, Based-1B, JRT_NORM_WARP=0 / 1 alternating): prefill of 128 x 512 tokens 352 -> 341-344 ms, decode
// step at batch 128 2.822 / 2.841 -> 2.814 / 2.832 ms, batch 1 unchanged.
template <int kVec, bool kBias>
__global__ void __launch_bounds__(256)
    norm_warp_kernel(const float* x, int64_t ldx, const int32_t* rows, const float* w, const float* b, bool rms,
                     float eps, int64_t d, bf16* y, int64_t ldy, int64_t N) {
  const int lane = int(threadIdx.x) & 31;
  const int64_t n = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int q4 = int(d / 4);
  const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  float4 wv[kVec], bv[kVec], v[kVec];
#pragma unroll
  for (int u = 0; u < kVec; ++u) {  // constants: loaded before the wait, as in norm_kernel
    const int i = lane + 32 * u;
    wv[u] = i < q4 ? reinterpret_cast<const float4*>(w)[i] : zero;
    bv[u] = kBias && i < q4 ? reinterpret_cast<const float4*>(b)[i] : zero;
  }
  pdl_wait();
  pdl_launch_dependents();
  if (n >= N) return;
  const float4* xr = reinterpret_cast<const float4*>(x + (rows ? int64_t(rows[n]) : n) * ldx);
#pragma unroll
  for (int u = 0; u < kVec; ++u) v[u] = lane + 32 * u < q4 ? xr[lane + 32 * u] : zero;
  float mean = 0.0f;
  if (!rms) {
    float t = 0.0f;
#pragma unroll
    for (int u = 0; u < kVec; ++u) t += (v[u].x + v[u].y) + (v[u].z + v[u].w);
    mean = warp_sum(t) / float(d);
  }
  float t2 = 0.0f;
#pragma unroll
  for (int u = 0; u < kVec; ++u) {
    if (lane + 32 * u >= q4) continue;
    const float a0 = v[u].x - mean, a1 = v[u].y - mean, a2 = v[u].z - mean, a3 = v[u].w - mean;
    t2 += (a0 * a0 + a1 * a1) + (a2 * a2 + a3 * a3);
  }
  const float inv = rsqrtf(warp_sum(t2) / float(d) + eps);
  bf16* yr = y + n * ldy;
#pragma unroll
  for (int u = 0; u < kVec; ++u) {
    const int i = lane + 32 * u;
    if (i >= q4) continue;
    float o0 = (v[u].x - mean) * inv * wv[u].x, o1 = (v[u].y - mean) * inv * wv[u].y;
    float o2 = (v[u].z - mean) * inv * wv[u].z, o3 = (v[u].w - mean) * inv * wv[u].w;
    if (kBias) o0 += bv[u].x, o1 += bv[u].y, o2 += bv[u].z, o3 += bv[u].w;
    const __nv_bfloat162 lo = __floats2bfloat162_rn(o0, o1), hi = __floats2bfloat162_rn(o2, o3);
    uint2 pk;
    pk.x = *reinterpret_cast<const uint32_t*>(&lo);
    pk.y = *reinterpret_cast<const uint32_t*>(&hi);
    *reinterpret_cast<uint2*>(yr + 4 * i) = pk;
  }
}

// Rows wider than the register form: three passes over the (cached) row.
__global__ void norm_wide_kernel(const float* x, int64_t ldx, const int32_t* rows, const float* w, const float* b,
                                 bool rms, float eps, int64_t d, bf16* y, int64_t ldy) {
  pdl_wait();
  pdl_launch_dependents();
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
  const float* bb = rms ? nullptr : b;
  const auto a16 = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; };
  const bool vec = warp_norms() && d % 4 == 0 && ldx % 4 == 0 && ldy % 4 == 0 && a16(x) && a16(w) &&
                   (!bb || a16(bb)) && (reinterpret_cast<uintptr_t>(y) & 7) == 0;
  if (vec && d <= 32 * 4 * 16) {
    const int per = norm_rows_per_cta(N);
    const unsigned grid = unsigned((N + per - 1) / per);
    auto go = [&](auto kern) {
      launch_pdl(kern, grid, 32 * per, 0, stream, x, ldx, rows, w, bb, rms, eps, d, y, ldy, N);
    };
    if (d <= 32 * 4 * 4)
      bb ? go(norm_warp_kernel<4, true>) : go(norm_warp_kernel<4, false>);
    else if (d <= 32 * 4 * 8)
      bb ? go(norm_warp_kernel<8, true>) : go(norm_warp_kernel<8, false>);
    else
      bb ? go(norm_warp_kernel<16, true>) : go(norm_warp_kernel<16, false>);
    JRT_CUDA_CHECK(cudaGetLastError());
    return;
  }
  if (d <= 256 * 2)
    launch_pdl(norm_kernel<2>, unsigned(N), 256, 0, stream, x, ldx, rows, w, bb, rms, eps, d, y, ldy);
  else if (d <= 512 * 4)
    launch_pdl(norm_kernel<4>, unsigned(N), 512, 0, stream, x, ldx, rows, w, bb, rms, eps, d, y, ldy);
  else if (d <= 1024 * 8)
    launch_pdl(norm_kernel<8>, unsigned(N), 1024, 0, stream, x, ldx, rows, w, bb, rms, eps, d, y, ldy);
  else
    launch_pdl(norm_wide_kernel, unsigned(N), 1024, 0, stream, x, ldx, rows, w, bb, rms, eps, d, y, ldy);
  JRT_CUDA_CHECK(cudaGetLastError());
}

// ---- training (cuda_train_ops.h) --------------------------------------------------------------------
// Two layouts of the same row math: for d <= kWarpRowMax a warp owns a row (8 rows per 256-thread block,
// shuffle-only reductions: d is 64..512 in these models, where a block per row would idle most
// threads); wider rows get a block each.
constexpr int64_t kWarpRowMax = 1024;
constexpr int kRowsPerBlock = 8;  // warp form: 256 threads
// Backward: the warp form takes 32 rows per round (1024 threads, so that each thread owns at most one
// column of the dw / db sums); the grid is capped at 128 blocks (about one per SM, grid-stride over the
// rows). Each block's column sums are one partial row, so the cap also bounds the fixed-order reduction
// (column_sum_add_cuda over <= 128 rows) and its scratch (<= 128 x d floats per sum).
constexpr int kBwdWarpThreads = 1024;
constexpr int kBwdRows = kBwdWarpThreads / 32;
constexpr int kBwdBlockThreads = 512;  // block form (d > kWarpRowMax)
constexpr unsigned kMaxBwdBlocks = 128;

template <bool kWarp>
__device__ __forceinline__ float group_sum(float v, float* sh) {
  if constexpr (kWarp) {
    return warp_sum(v);
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

// dx [N, d] += the input gradient of row n (warp or block per row, grid-stride over rows). The dw / db
// column sums of block k go to pw[k, :] / pb[k, :] (=; null: not wanted), added up in block order by
// column_sum_add_cuda afterwards; inside a block they are summed in a fixed order too:
//   warp form: a round is kBwdRows rows, warp w computing dx of row w; the column sums are a second
//     pass over the round's rows (dy / x again, now from L1 / L2) in which thread t owns column t % d of
//     the rows t / d, t / d + S, ... (S = blockDim / d slices; S = 1 when d > blockDim / 2), in row
//     order, in registers; at the end the S slices are added in slice order through shared memory.
//   block form: thread t owns columns t, t + blockDim, ... of every row (acc [2 d] in shared memory).
//   RMSNorm:   dx = r (g w - x r^2 mean(g w x)),             dw += g x r
//   LayerNorm: dx = r (g w - mean(g w) - xh mean(g w xh)),    dw += g xh, db += g,   xh = (x - mu) r
template <bool kWarp>
__global__ void __launch_bounds__(kWarp ? kBwdWarpThreads : kBwdBlockThreads)
    norm_bwd_kernel(const float* dy, const float* x, const float* w, const float* mean, const float* rstd, bool rms,
                    int64_t N, int64_t d, float* dx, float* pw, float* pb) {
  extern __shared__ float acc[];  // block form: [0, d) dw, [d, 2 d) db sums of this block
  __shared__ float sh[32];
  const bool cols = pw || pb;
  if (!kWarp && cols) {
    for (int64_t i = threadIdx.x; i < 2 * d; i += blockDim.x) acc[i] = 0.0f;
    __syncthreads();
  }
  const int lanes = kWarp ? 32 : int(blockDim.x), lane = kWarp ? int(threadIdx.x % 32) : int(threadIdx.x);
  const int64_t rows = kWarp ? blockDim.x / 32 : 1;
  const int64_t stride = int64_t(gridDim.x) * rows;
  const float inv_d = 1.0f / float(d);
  // Warp form column pass: this thread's column and slice (d <= kWarpRowMax <= blockDim).
  const int64_t S = kWarp ? int64_t(blockDim.x) / d : 1;
  const int64_t cs = int64_t(threadIdx.x) % d, slice = int64_t(threadIdx.x) / d;
  float aw = 0.0f, ab = 0.0f;
  // Block form: row0 is uniform over the block, so every thread reaches block_sum's barriers.
  for (int64_t row0 = int64_t(blockIdx.x) * rows; row0 < N; row0 += stride) {
    const int64_t n = kWarp ? row0 + threadIdx.x / 32 : row0;
    if (n < N) {
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
        if (!kWarp && cols) {  // a thread owns its columns
          if (pw) acc[i] += g * xh;
          if (pb) acc[d + i] += g;
        }
      }
    }
    if (kWarp && cols && slice < S) {
      for (int64_t k = slice; k < rows && row0 + k < N; k += S) {
        const int64_t m = row0 + k;
        const float r = rstd[m], mu = rms ? 0.0f : mean[m];
        const float g = dy[m * d + cs], xh = (x[m * d + cs] - mu) * r;
        aw += g * xh;
        ab += g;
      }
    }
  }
  if (!cols) return;
  if constexpr (kWarp) {
    __shared__ float red[2][kBwdWarpThreads];
    red[0][threadIdx.x] = aw;  // threads of no slice hold 0
    red[1][threadIdx.x] = ab;
    __syncthreads();
    if (threadIdx.x < d) {
      float sw = 0.0f, sb = 0.0f;
      for (int64_t k = 0; k < S; ++k) sw += red[0][k * d + threadIdx.x], sb += red[1][k * d + threadIdx.x];
      if (pw) pw[int64_t(blockIdx.x) * d + threadIdx.x] = sw;
      if (pb) pb[int64_t(blockIdx.x) * d + threadIdx.x] = sb;
    }
  } else {
    __syncthreads();
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
      if (pw) pw[int64_t(blockIdx.x) * d + i] = acc[i];
      if (pb) pb[int64_t(blockIdx.x) * d + i] = acc[d + i];
    }
  }
}

void norm_bwd_cuda(const float* dy, const float* x, const float* w, const float* mean, const float* rstd, bool rms,
                   int64_t N, int64_t d, float* dx, float* dw, float* db, cudaStream_t stream) {
  if (N <= 0 || d <= 0) return;
  if (rms) db = nullptr;
  const bool warp = d <= kWarpRowMax;
  const int64_t rows = warp ? kBwdRows : 1;
  const unsigned grid = unsigned(std::min<int64_t>((N + rows - 1) / rows, kMaxBwdBlocks));
  // Partial column sums, [grid, d] each (<= 128 x d floats).
  jrt::cuda::StreamScratch<float> pw(dw ? size_t(grid) * size_t(d) : 0, stream);
  jrt::cuda::StreamScratch<float> pb(db ? size_t(grid) * size_t(d) : 0, stream);
  if (warp) {
    norm_bwd_kernel<true>
        <<<grid, kBwdWarpThreads, 0, stream>>>(dy, x, w, mean, rstd, rms, N, d, dx, pw.get(), pb.get());
  } else {
    const size_t smem = (dw || db) ? size_t(2 * d) * sizeof(float) : 0;
    // 48 KiB of shared memory without an opt-in, less the reduction scratch: d <= 6128.
    JRT_CHECK(smem + 32 * sizeof(float) <= 48 * 1024, "norm_bwd_cuda: d = {} is too wide for the dw / db sums", d);
    norm_bwd_kernel<false>
        <<<grid, kBwdBlockThreads, smem, stream>>>(dy, x, w, mean, rstd, rms, N, d, dx, pw.get(), pb.get());
  }
  JRT_CUDA_CHECK(cudaGetLastError());
  if (dw) column_sum_add_cuda(pw.get(), grid, d, dw, stream);
  if (db) column_sum_add_cuda(pb.get(), grid, d, db, stream);
}

}  // namespace jrt::ops::cuda
