// ops/reduce.cu — the fixed-order reductions behind the deterministic backward kernels: a kernel that
// would race on fp32 atomics instead writes one row of partial sums per CTA (into StreamScratch, see
// core/cuda_util.h), and column_sum_add_cuda adds the rows in index order. The float additions then
// happen in the same order on every run, so gradients are bitwise reproducible.
#include "core/cuda_util.h"
#include "ops/cuda_train_ops.h"

namespace jrt::ops::cuda {

// part [rows, cols] -> dst [cols] (+=). CTA = 32 columns x 8 row slices: slice y sums rows y, y + 8, ... in
// order (a warp reads 32 adjacent columns of a row: coalesced), then slice 0 adds the 8 slice sums in slice
// order. The order depends on `rows` only; 8 slices keep a few hundred partial rows cheap.
constexpr int kSumCols = 32, kSumSlices = 8;
__global__ void __launch_bounds__(kSumCols* kSumSlices)
    column_sum_add_kernel(const float* __restrict__ part, int64_t rows, int64_t cols, float* __restrict__ dst) {
  __shared__ float sl[kSumSlices][kSumCols];
  const int64_t c = int64_t(blockIdx.x) * kSumCols + threadIdx.x;
  float s = 0.0f;
  if (c < cols)
    for (int64_t r = threadIdx.y; r < rows; r += kSumSlices) s += part[r * cols + c];
  sl[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y != 0 || c >= cols) return;
  float t = sl[0][threadIdx.x];
#pragma unroll
  for (int y = 1; y < kSumSlices; ++y) t += sl[y][threadIdx.x];
  dst[c] += t;
}

void column_sum_add_cuda(const float* part, int64_t rows, int64_t cols, float* dst, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  const int64_t blocks = (cols + kSumCols - 1) / kSumCols;
  JRT_CHECK(blocks <= 0x7fffffff, "column_sum_add_cuda: {} columns is too many for the grid", cols);
  column_sum_add_kernel<<<unsigned(blocks), dim3(kSumCols, kSumSlices), 0, stream>>>(part, rows, cols, dst);
  JRT_CUDA_CHECK(cudaGetLastError());
}

namespace {
size_t g_dq_slot_cap = size_t(256) << 20;
}  // namespace

size_t dq_slot_cap_bytes() { return g_dq_slot_cap; }
void set_dq_slot_cap_bytes(size_t bytes) { g_dq_slot_cap = bytes; }

}  // namespace jrt::ops::cuda
