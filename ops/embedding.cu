// ops/embedding.cu — the token-embedding gather on the GPU (bf16 table -> fp32 residual rows) and its
// training backward (scatter-add into the fp32 table gradient, in a fixed order).
#include "core/cuda_util.h"
#include "ops/cuda_common.cuh"
#include "ops/cuda_ops.h"
#include "ops/cuda_train_ops.h"

namespace jrt::ops::cuda {

// grid (N), block 256: out [N, d] fp32 = table[ids[n], :].
__global__ void embedding_kernel(const int32_t* ids, const bf16* table, int64_t d, float* out) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t n = blockIdx.x;
  const bf16* src = table + int64_t(ids[n]) * d;
  float* dst = out + n * d;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) dst[i] = __bfloat162float(src[i]);
}

void embedding_cuda(const int32_t* ids, const bf16* table, int64_t N, int64_t d, float* out, cudaStream_t stream) {
  if (N <= 0) return;
  launch_pdl(embedding_kernel, unsigned(N), 256, 0, stream, ids, table, d, out);
  JRT_CUDA_CHECK(cudaGetLastError());
}

// ---- training: the scatter-add backward (cuda_train_ops.h) -----------------------------------------
// Repeated ids make rows of dout add into the same table row; instead of racing fp32 atomics, every table
// element gets exactly one writer that adds its rows in a fixed order (bitwise reproducible sums).

// The simple form (tests): one thread per column c, adding dout[n, c] into dtable[ids[n], c] for n in
// order. The thread owns column c of every table row, so nothing races; the walk over N is sequential.
__global__ void embedding_bwd_kernel(const int32_t* __restrict__ ids, const float* __restrict__ dout, int64_t N,
                                     int64_t d, float* dtable) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= d) return;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t id = ids[n];
    if (id < 0) continue;  // defensive: never scatter outside the table
    dtable[id * d + c] += dout[n * d + c];
  }
}

void embedding_bwd_cuda(const int32_t* ids, const float* dout, int64_t N, int64_t d, float* dtable,
                        cudaStream_t stream) {
  if (N <= 0 || d <= 0) return;
  embedding_bwd_kernel<<<unsigned((d + 127) / 128), 128, 0, stream>>>(ids, dout, N, d, dtable);
  JRT_CUDA_CHECK(cudaGetLastError());
}

// The grouped form, in two launches. Chunk k holds rows order[chunk_start[k] .. chunk_start[k+1]) that all
// look up table row chunk_id[k]; the chunks of one id are consecutive (a "run"), and MQAR batches repeat a
// few ids thousands of times (runs of hundreds of chunks).
//   chunk_sum_kernel  grid (nchunk), 128 threads: each thread sums its columns over the chunk's rows in
//                     order (coalesced). A run of one chunk adds its sum to the table row (its only
//                     writer); a chunk of a longer run stores it to part[k, :] (=).
//   run_sum_kernel    grid (nchunk / 32 windows, d / 32 column tiles), 32 x 8 threads: for each run of
//                     several chunks that starts in the window, thread (tx, ty) sums part[k, c] over the
//                     run's chunks k = k0 + ty, k0 + ty + 8, ... (c = the tile's column tx); the 8 slices
//                     are added in slice order and the total is added to the table row (its only writer).
//                     Most CTAs find no run start and exit (small CTAs: many fit on an SM at once).
__device__ __forceinline__ bool run_start(const int32_t* chunk_id, int64_t k) {
  return k == 0 || chunk_id[k - 1] != chunk_id[k];
}
__device__ __forceinline__ bool run_single(const int32_t* chunk_id, int64_t nchunk, int64_t k) {
  return run_start(chunk_id, k) && (k + 1 == nchunk || chunk_id[k + 1] != chunk_id[k]);
}

// dout [N, d]; dtable [V, d]; part [nchunk, d] (written for the chunks of runs longer than one chunk).
__global__ void chunk_sum_kernel(const int32_t* order, const int32_t* chunk_start, const int32_t* chunk_id,
                                 int64_t nchunk, const float* dout, int64_t d, float* dtable, float* part) {
  const int64_t k = blockIdx.x;
  const int32_t r0 = chunk_start[k], r1 = chunk_start[k + 1];
  float* dst = run_single(chunk_id, nchunk, k) ? dtable + int64_t(chunk_id[k]) * d : nullptr;
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
    float acc = 0.0f;
    for (int32_t r = r0; r < r1; ++r) acc += dout[int64_t(order[r]) * d + c];
    if (dst)
      dst[c] += acc;
    else
      part[k * d + c] = acc;
  }
}

constexpr int kRunWindow = 32;  // chunks whose runs one run_sum CTA finishes: one per lane (ballot)
constexpr int kRunSlices = 8;   // chunk slices of a run (threadIdx.y)

__global__ void __launch_bounds__(32 * kRunSlices)
    run_sum_kernel(const int32_t* chunk_id, int64_t nchunk, const float* part, int64_t d, float* dtable) {
  __shared__ float red[kRunSlices][32];
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 32 + tx;
  const int64_t c = int64_t(blockIdx.y) * 32 + tx;
  // Starts of multi-chunk runs in this window (every warp computes the same mask: uniform over the CTA).
  const int64_t kw = int64_t(blockIdx.x) * kRunWindow + tx;
  const bool multi = kw < nchunk && run_start(chunk_id, kw) && !run_single(chunk_id, nchunk, kw);
  unsigned starts = __ballot_sync(0xffffffffu, multi);
  while (starts) {
    const int64_t k0 = int64_t(blockIdx.x) * kRunWindow + __ffs(starts) - 1;
    starts &= starts - 1;
    const int32_t id = chunk_id[k0];
    // The run's end: count the matching ids kRunSlices * 32 at a time (an id's chunks are consecutive, so
    // a window holds a full count until it reaches the end).
    int64_t k1 = k0 + 1;
    for (;;) {
      const int64_t j = k1 + tid;
      const int n = __syncthreads_count(j < nchunk && chunk_id[j] == id);
      k1 += n;
      if (n < 32 * kRunSlices) break;
    }
    float acc = 0.0f;
    if (c < d)
      for (int64_t k = k0 + ty; k < k1; k += kRunSlices) acc += part[k * d + c];
    red[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && c < d) {
      float s = 0.0f;
#pragma unroll
      for (int i = 0; i < kRunSlices; ++i) s += red[i][tx];
      dtable[int64_t(id) * d + c] += s;
    }
    __syncthreads();  // red is reused by the next run
  }
}

void embedding_bwd_grouped_cuda(const int32_t* order, const int32_t* chunk_start, const int32_t* chunk_id,
                                int64_t nchunk, const float* dout, int64_t d, float* dtable, cudaStream_t stream) {
  if (nchunk <= 0 || d <= 0) return;
  // Chunk sums of multi-chunk runs: [nchunk, d] floats at most (only those chunks' rows are written). The
  // host cannot size it tighter: which chunks share an id is known on the device only.
  jrt::cuda::StreamScratch<float> part(size_t(nchunk) * size_t(d), stream);
  chunk_sum_kernel<<<unsigned(nchunk), 128, 0, stream>>>(order, chunk_start, chunk_id, nchunk, dout, d, dtable,
                                                         part.get());
  JRT_CUDA_CHECK(cudaGetLastError());
  const dim3 grid{unsigned((nchunk + kRunWindow - 1) / kRunWindow), unsigned((d + 31) / 32)};
  run_sum_kernel<<<grid, dim3(32, kRunSlices), 0, stream>>>(chunk_id, nchunk, part.get(), d, dtable);
  JRT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace jrt::ops::cuda
