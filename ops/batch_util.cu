// ops/batch_util.cu — small device-side bookkeeping for packed batches and decode loops (row gathers,
// masked-row zeroing, position counters), so a decode step needs no host work and can be replayed
// as a CUDA graph.
#include "core/cuda_util.h"
#include "ops/cuda_ops.h"
#include "ops/cuda_train_ops.h"

namespace jrt::ops::cuda {

// grid (n), block 128: row rows[i] of x [*, width] set to zero.
__global__ void zero_rows_kernel(bf16* x, int64_t ld, int64_t width, const int32_t* rows) {
  bf16* r = x + int64_t(rows[blockIdx.x]) * ld;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) r[i] = __float2bfloat16(0.0f);
}

// grid (n), block 128: y [n, width] = x [rows[i], width].
__global__ void gather_rows_kernel(const bf16* x, int64_t ldx, const int32_t* rows, int64_t width, bf16* y,
                                   int64_t ldy) {
  const bf16* s = x + int64_t(rows[blockIdx.x]) * ldx;
  bf16* d = y + int64_t(blockIdx.x) * ldy;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) d[i] = s[i];
}

__global__ void add_i32_kernel(int32_t* p, int64_t n, int32_t inc) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) p[i] += inc;
}

__global__ void copy_i32_kernel(const int32_t* s, int32_t* d, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) d[i] = s[i];
}

void zero_rows_cuda(bf16* x, int64_t ld, int64_t width, const int32_t* rows, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  zero_rows_kernel<<<unsigned(n), 128, 0, stream>>>(x, ld, width, rows);
  JRT_CUDA_CHECK(cudaGetLastError());
}

void gather_rows_cuda(const bf16* x, int64_t ldx, const int32_t* rows, int64_t n, int64_t width, bf16* y, int64_t ldy,
                      cudaStream_t stream) {
  if (n <= 0) return;
  gather_rows_kernel<<<unsigned(n), 128, 0, stream>>>(x, ldx, rows, width, y, ldy);
  JRT_CUDA_CHECK(cudaGetLastError());
}

void add_i32_cuda(int32_t* p, int64_t n, int32_t inc, cudaStream_t stream) {
  if (n <= 0) return;
  add_i32_kernel<<<unsigned((n + 255) / 256), 256, 0, stream>>>(p, n, inc);
  JRT_CUDA_CHECK(cudaGetLastError());
}

void copy_i32_cuda(const int32_t* src, int32_t* dst, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  copy_i32_kernel<<<unsigned((n + 255) / 256), 256, 0, stream>>>(src, dst, n);
  JRT_CUDA_CHECK(cudaGetLastError());
}

// grid (n), block 128: y [rows[i], width] = x [i, width] (fp32).
__global__ void scatter_rows_f32_kernel(const float* x, int64_t ldx, const int32_t* rows, int64_t width, float* y,
                                       int64_t ldy) {
  const float* s = x + int64_t(blockIdx.x) * ldx;
  float* d = y + int64_t(rows[blockIdx.x]) * ldy;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) d[i] = s[i];
}

void scatter_rows_f32_cuda(const float* x, int64_t ldx, const int32_t* rows, int64_t n, int64_t width, float* y,
                           int64_t ldy, cudaStream_t stream) {
  if (n <= 0 || width <= 0) return;
  scatter_rows_f32_kernel<<<unsigned(n), 128, 0, stream>>>(x, ldx, rows, width, y, ldy);
  JRT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace jrt::ops::cuda
