// ops/cross_entropy.cu — softmax cross-entropy over fp32 logits rows on the GPU (training form of
// ops/cross_entropy.h): forward (per-row log-sum-exp and loss) and backward (bf16
// row_scale * (softmax - onehot)). Labels < 0 are ignored rows; others must be < V (the caller checks).
#include <cmath>

#include "core/cuda_util.h"
#include "ops/cuda_train_ops.h"

namespace jrt::ops::cuda {

namespace {

unsigned ce_threads(int64_t V) { return V >= 8192 ? 512 : 256; }

// (m, s) stands for s * exp(m), a partial softmax denominator; m = -inf is the empty one.
__device__ __forceinline__ void lse_merge(float& m, float& s, float om, float os) {
  const float nm = fmaxf(m, om);
  if (nm == -INFINITY) return;  // both empty: exp(-inf - -inf) would be NaN
  s = s * expf(m - nm) + os * expf(om - nm);
  m = nm;
}

}  // namespace

// One block per row n of logits [N, V] (row stride ldl): a single online-softmax pass (running max and
// rescaled sum per thread), merged over warps then the block. lse [N], row_loss [N] (may be null).
__global__ void ce_fwd_kernel(const float* logits, int64_t ldl, const int32_t* labels, int64_t V, float* lse,
                              float* row_loss) {
  const int64_t n = blockIdx.x;
  const float* row = logits + n * ldl;
  float m = -INFINITY, s = 0.0f;
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
    const float x = row[v];
    if (x > m) {
      s = s * expf(m - x) + 1.0f;
      m = x;
    } else if (x > -INFINITY) {
      s += expf(x - m);
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float om = __shfl_xor_sync(0xffffffffu, m, o), os = __shfl_xor_sync(0xffffffffu, s, o);
    lse_merge(m, s, om, os);
  }
  __shared__ float sm[32], ss[32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) sm[warp] = m, ss[warp] = s;
  __syncthreads();
  if (threadIdx.x != 0) return;
  for (int w = 1; w < int(blockDim.x / 32); ++w) lse_merge(m, s, sm[w], ss[w]);
  const float l = m + logf(s);
  lse[n] = l;
  const int32_t lab = labels[n];
  if (row_loss) row_loss[n] = lab >= 0 ? l - row[lab] : 0.0f;
}

// One block per row n: dlogits[n, v] = bf16(exp(logits[n, v] - lse[n]) * scale - [v == label] * scale),
// scale = row_scale[n] (0 for ignored rows, whose row is all zeros).
__global__ void ce_bwd_kernel(const float* logits, int64_t ldl, const int32_t* labels, const float* lse,
                              const float* row_scale, int64_t V, bf16* dlogits, int64_t lddl) {
  const int64_t n = blockIdx.x;
  const int32_t lab = labels[n];
  const float sc = lab >= 0 ? row_scale[n] : 0.0f;
  bf16* d = dlogits + n * lddl;
  if (sc == 0.0f) {  // ignored row or zero weight: skip reading the logits
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) d[v] = __float2bfloat16(0.0f);
    return;
  }
  const float* row = logits + n * ldl;
  const float m = lse[n];
  for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
    float g = expf(row[v] - m) * sc;
    if (v == lab) g -= sc;
    d[v] = __float2bfloat16(g);
  }
}

void cross_entropy_fwd_cuda(const float* logits, int64_t ldl, const int32_t* labels, int64_t N, int64_t V, float* lse,
                            float* row_loss, cudaStream_t stream) {
  if (N <= 0 || V <= 0) return;
  ce_fwd_kernel<<<unsigned(N), ce_threads(V), 0, stream>>>(logits, ldl, labels, V, lse, row_loss);
  JRT_CUDA_CHECK(cudaGetLastError());
}

void cross_entropy_bwd_cuda(const float* logits, int64_t ldl, const int32_t* labels, const float* lse,
                            const float* row_scale, int64_t N, int64_t V, bf16* dlogits, int64_t lddl,
                            cudaStream_t stream) {
  if (N <= 0 || V <= 0) return;
  ce_bwd_kernel<<<unsigned(N), ce_threads(V), 0, stream>>>(logits, ldl, labels, lse, row_scale, V, dlogits, lddl);
  JRT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace jrt::ops::cuda
