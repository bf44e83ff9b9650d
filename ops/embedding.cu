// ops/embedding.cu — the token-embedding gather on the GPU (bf16 table -> fp32 residual rows).
#include "core/cuda_util.h"
#include "ops/cuda_ops.h"

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

}  // namespace jrt::ops::cuda
