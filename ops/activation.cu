// ops/activation.cu — GPU elementwise activations (SwiGLU, GELU, gated SiLU) and the greedy argmax
// over logits rows; bf16 in memory, fp32 math with the same formulas as ops/activation.h. Training:
// SiLU forward, the SiLU / gated SiLU / SwiGLU backwards and the fp32 -> bf16 row cast.
#include <cfloat>

#include "core/cuda_util.h"
#include "ops/cuda_common.cuh"
#include "ops/cuda_ops.h"
#include "ops/cuda_train_ops.h"

namespace jrt::ops::cuda {

__device__ __forceinline__ float silu_f(float x) { return x / (1.0f + expf(-x)); }

// u [N, 2F] -> y [N, F]; grid (N, column tiles of 1024), four columns per thread (no 64-bit divisions:
// this runs once per layer in every decode step).
__global__ void swiglu_kernel(const bf16* u, int64_t F, bf16* y) {
  pdl_wait();
  pdl_launch_dependents();
  const int64_t n = blockIdx.x;
  const bf16* un = u + n * 2 * F;
  bf16* yn = y + n * F;
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int64_t f = int64_t(blockIdx.y) * 1024 + r * 256 + threadIdx.x;
    if (f < F) yn[f] = __float2bfloat16(__bfloat162float(un[f]) * silu_f(__bfloat162float(un[F + f])));
  }
}

__global__ void gelu_kernel(bf16* x, int64_t n, bool tanh_approx) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float v = __bfloat162float(x[i]);
  float r;
  if (tanh_approx)
    r = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
  else
    r = 0.5f * v * (1.0f + erff(v * 0.7071067811865476f));
  x[i] = __float2bfloat16(r);
}

// a, g, y [N, F] with row strides; one thread per element.
__global__ void gated_silu_kernel(const bf16* a, int64_t lda, const bf16* g, int64_t ldg, int64_t N, int64_t F, bf16* y,
                                  int64_t ldy) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= N * F) return;
  const int64_t n = i / F, f = i % F;
  const float av = __bfloat162float(a[n * lda + f]), gv = __bfloat162float(g[n * ldg + f]);
  y[n * ldy + f] = __float2bfloat16(av * silu_f(gv));
}

// One CTA (1024 threads) per row: logits [N, V] -> out [N] (first index of the maximum; NaN never wins).
// Eight loads in flight per thread before the compares: at batch 1 a single CTA reads the whole row.
__global__ void __launch_bounds__(1024) argmax_kernel(const float* logits, int64_t V, int32_t* out) {
  pdl_wait();
  pdl_launch_dependents();
  const float* row = logits + int64_t(blockIdx.x) * V;
  float best = -FLT_MAX;
  int32_t bi = 0x7fffffff;
  const int nt = int(blockDim.x), iv = int(V);
  for (int i0 = int(threadIdx.x); i0 < iv; i0 += 8 * nt) {
    float v[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) v[u] = i0 + u * nt < iv ? row[i0 + u * nt] : -FLT_MAX;
#pragma unroll
    for (int u = 0; u < 8; ++u)  // indices ascend within a thread: '>' keeps the first of equal values
      if (v[u] > best) best = v[u], bi = i0 + u * nt;
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (ov > best || (ov == best && oi < bi)) best = ov, bi = oi;
  }
  __shared__ float sv[32];
  __shared__ int32_t si[32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) sv[warp] = best, si[warp] = bi;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < int(blockDim.x / 32); ++w)
      if (sv[w] > best || (sv[w] == best && si[w] < bi)) best = sv[w], bi = si[w];
    out[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;
  }
}

static unsigned blocks(int64_t n) { return unsigned((n + 255) / 256); }

void swiglu_cuda(const bf16* u, int64_t N, int64_t F, bf16* y, cudaStream_t stream) {
  if (N * F == 0) return;
  launch_pdl(swiglu_kernel, dim3(unsigned(N), unsigned((F + 1023) / 1024)), 256, 0, stream, u, F, y);
  JRT_CUDA_CHECK(cudaGetLastError());
}

void gelu_cuda(bf16* x, int64_t n, bool tanh_approx, cudaStream_t stream) {
  if (n == 0) return;
  gelu_kernel<<<blocks(n), 256, 0, stream>>>(x, n, tanh_approx);
  JRT_CUDA_CHECK(cudaGetLastError());
}

void gated_silu_cuda(const bf16* a, int64_t lda, const bf16* g, int64_t ldg, int64_t N, int64_t F, bf16* y,
                     int64_t ldy, cudaStream_t stream) {
  if (N * F == 0) return;
  gated_silu_kernel<<<blocks(N * F), 256, 0, stream>>>(a, lda, g, ldg, N, F, y, ldy);
  JRT_CUDA_CHECK(cudaGetLastError());
}

void argmax_cuda(const float* logits, int64_t N, int64_t V, int32_t* out, cudaStream_t stream) {
  if (N <= 0) return;
  JRT_CHECK(V < (int64_t(1) << 31), "argmax_cuda: {} columns", V);
  launch_pdl(argmax_kernel, unsigned(N), 1024, 0, stream, logits, V, out);
  JRT_CUDA_CHECK(cudaGetLastError());
}

// ---- training (cuda_train_ops.h) --------------------------------------------------------------------

// d silu / dx = s (1 + x (1 - s)), s = sigmoid(x) (ops::silu_grad_t).
__device__ __forceinline__ float silu_grad_f(float x) {
  const float s = 1.0f / (1.0f + expf(-x));
  return s * (1.0f + x * (1.0f - s));
}

// x, y [n]; one thread per element.
__global__ void silu_fwd_kernel(const bf16* x, int64_t n, bf16* y) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = __float2bfloat16(silu_f(__bfloat162float(x[i])));
}

// dy fp32, x, dx bf16 [n]; one thread per element.
__global__ void silu_bwd_kernel(const float* dy, const bf16* x, int64_t n, bf16* dx) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) dx[i] = __float2bfloat16(dy[i] * silu_grad_f(__bfloat162float(x[i])));
}

// dy, a, g, da, dg [N, F] with their own row strides; one thread per element.
__global__ void gated_silu_bwd_kernel(const bf16* dy, int64_t lddy, const bf16* a, int64_t lda, const bf16* g,
                                      int64_t ldg, int64_t N, int64_t F, bf16* da, int64_t ldda, bf16* dg,
                                      int64_t lddg) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= N * F) return;
  const int64_t n = i / F, f = i - n * F;
  const float gy = __bfloat162float(dy[n * lddy + f]), av = __bfloat162float(a[n * lda + f]),
              gv = __bfloat162float(g[n * ldg + f]);
  da[n * ldda + f] = __float2bfloat16(gy * silu_f(gv));
  dg[n * lddg + f] = __float2bfloat16(gy * av * silu_grad_f(gv));
}

// x fp32 [N, C] (ldx) -> y bf16 [N, C] (ldy); one thread per element.
__global__ void cast_f32_bf16_kernel(const float* x, int64_t ldx, int64_t N, int64_t C, bf16* y, int64_t ldy) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= N * C) return;
  const int64_t n = i / C, c = i - n * C;
  y[n * ldy + c] = __float2bfloat16(x[n * ldx + c]);
}

void silu_fwd_cuda(const bf16* x, int64_t n, bf16* y, cudaStream_t stream) {
  if (n <= 0) return;
  silu_fwd_kernel<<<blocks(n), 256, 0, stream>>>(x, n, y);
  JRT_CUDA_CHECK(cudaGetLastError());
}

void silu_bwd_cuda(const float* dy, const bf16* x, int64_t n, bf16* dx, cudaStream_t stream) {
  if (n <= 0) return;
  silu_bwd_kernel<<<blocks(n), 256, 0, stream>>>(dy, x, n, dx);
  JRT_CUDA_CHECK(cudaGetLastError());
}

void gated_silu_bwd_cuda(const bf16* dy, int64_t lddy, const bf16* a, int64_t lda, const bf16* g, int64_t ldg,
                         int64_t N, int64_t F, bf16* da, int64_t ldda, bf16* dg, int64_t lddg, cudaStream_t stream) {
  if (N <= 0 || F <= 0) return;
  gated_silu_bwd_kernel<<<blocks(N * F), 256, 0, stream>>>(dy, lddy, a, lda, g, ldg, N, F, da, ldda, dg, lddg);
  JRT_CUDA_CHECK(cudaGetLastError());
}

// SwiGLU is the gated form with a = u[:, :F], g = u[:, F:] (ops::swiglu_bwd_t).
void swiglu_bwd_cuda(const bf16* dy, const bf16* u, int64_t N, int64_t F, bf16* du, cudaStream_t stream) {
  gated_silu_bwd_cuda(dy, F, u, 2 * F, u + F, 2 * F, N, F, du, 2 * F, du + F, 2 * F, stream);
}

void cast_f32_bf16_cuda(const float* x, int64_t ldx, int64_t N, int64_t C, bf16* y, int64_t ldy, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  cast_f32_bf16_kernel<<<blocks(N * C), 256, 0, stream>>>(x, ldx, N, C, y, ldy);
  JRT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace jrt::ops::cuda
