// ops/embedding.cu — the token-embedding gather on the GPU (bf16 table -> fp32 residual rows) and its
// training backward (scatter-add into the fp32 table gradient).
#include "core/cuda_util.h"
#include "ops/cuda_ops.h"
#include "ops/cuda_train_ops.h"

namespace jrt::ops::cuda {

// grid (N), block 256: out [N, d] fp32 = table[ids[n], :].
__global__ void embedding_kernel(const int32_t* ids, const bf16* table, int64_t d, float* out) {
  const int64_t n = blockIdx.x;
  const bf16* src = table + int64_t(ids[n]) * d;
  float* dst = out + n * d;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) dst[i] = __bfloat162float(src[i]);
}

void embedding_cuda(const int32_t* ids, const bf16* table, int64_t N, int64_t d, float* out, cudaStream_t stream) {
  if (N <= 0) return;
  embedding_kernel<<<unsigned(N), 256, 0, stream>>>(ids, table, d, out);
  JRT_CUDA_CHECK(cudaGetLastError());
}

// ---- training: the scatter-add backward (cuda_train_ops.h) -----------------------------------------

// One thread per element of dout [N, d]: dtable[ids[n], c] += dout[n, c]. Repeated ids make the rows
// race, hence the atomics (the order of the fp32 adds is not fixed).
__global__ void embedding_bwd_kernel(const int32_t* ids, const float* dout, int64_t N, int64_t d, float* dtable) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= N * d) return;
  const int64_t n = i / d, c = i - n * d;
  const int64_t id = ids[n];
  if (id < 0) return;  // defensive: never scatter outside the table
  atomicAdd(dtable + id * d + c, dout[i]);
}

void embedding_bwd_cuda(const int32_t* ids, const float* dout, int64_t N, int64_t d, float* dtable,
                        cudaStream_t stream) {
  if (N <= 0 || d <= 0) return;
  embedding_bwd_kernel<<<unsigned((N * d + 255) / 256), 256, 0, stream>>>(ids, dout, N, d, dtable);
  JRT_CUDA_CHECK(cudaGetLastError());
}

// grid (nchunk), block 128: chunk k holds rows order[chunk_start[k] .. chunk_start[k+1]) that all look up
// table row chunk_id[k]; each thread sums its columns over the chunk's rows (coalesced), then one atomic per
// (chunk, column) instead of one per (row, column): MQAR batches repeat a few ids thousands of times.
__global__ void embedding_bwd_grouped_kernel(const int32_t* order, const int32_t* chunk_start,
                                             const int32_t* chunk_id, const float* dout, int64_t d, float* dtable) {
  const int32_t r0 = chunk_start[blockIdx.x], r1 = chunk_start[blockIdx.x + 1];
  float* dst = dtable + int64_t(chunk_id[blockIdx.x]) * d;
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
    float acc = 0.0f;
    for (int32_t r = r0; r < r1; ++r) acc += dout[int64_t(order[r]) * d + c];
    atomicAdd(dst + c, acc);
  }
}

void embedding_bwd_grouped_cuda(const int32_t* order, const int32_t* chunk_start, const int32_t* chunk_id,
                                int64_t nchunk, const float* dout, int64_t d, float* dtable, cudaStream_t stream) {
  if (nchunk <= 0 || d <= 0) return;
  embedding_bwd_grouped_kernel<<<unsigned(nchunk), 128, 0, stream>>>(order, chunk_start, chunk_id, dout, d, dtable);
  JRT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace jrt::ops::cuda
