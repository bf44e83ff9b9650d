// ops/linear.cu — GPU GEMMs of the linear layers through cuBLAS (bf16 operands, fp32 accumulation),
// and the bias adds. The handle is per thread with a fixed workspace so the calls can be captured
// in a CUDA graph (cuBLAS must not allocate during capture). linear_act_bf16: the MLP's first layer with
// its activation (fused in the skinny kernel's epilogue where it applies).
#include <cublas_v2.h>

#include <algorithm>

#include "core/cuda_util.h"
#include "core/error.h"
#include "ops/cuda_common.cuh"
#include "ops/cuda_ops.h"
#include "ops/cuda_train_ops.h"

namespace jrt::ops::cuda {

namespace {
struct BlasHandle {
  cublasHandle_t h = nullptr;
  void* ws = nullptr;
  static constexpr size_t kWorkspace = size_t(32) << 20;
  BlasHandle() {
    JRT_CUBLAS_CHECK(cublasCreate(&h));
    JRT_CUDA_CHECK(cudaMalloc(&ws, kWorkspace));
    JRT_CUBLAS_CHECK(cublasSetWorkspace(h, ws, kWorkspace));
    JRT_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
  }
  ~BlasHandle() {
    if (h) cublasDestroy(h);
    if (ws) cudaFree(ws);
  }
};
}  // namespace

cublasHandle_t blas_handle() {
  thread_local BlasHandle handle;
  return handle.h;
}

// Row-major y[N, out] = x[N, in] W[out, in]^T is column-major y^T[out, N] = W^T... i.e. with cuBLAS's
// column-major view: C(out x N, ld ldy) = op(A) B where A = W seen as (in x out, ld in) transposed, and
// B = x seen as (in x N, ld ldx).
static void gemm(const bf16* x, int64_t ldx, const bf16* W, int64_t N, int64_t in, int64_t out, void* y, int64_t ldy,
                 cudaDataType_t ytype, float beta, cudaStream_t stream) {
  if (N <= 0 || out <= 0) return;
  cublasHandle_t h = blas_handle();
  JRT_CUBLAS_CHECK(cublasSetStream(h, stream));
  const float alpha = 1.0f;
  JRT_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, int(out), int(N), int(in), &alpha, W, CUDA_R_16BF,
                                int(in), x, CUDA_R_16BF, int(ldx), &beta, y, ytype, int(ldy), CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT));
}

void linear_bf16(const bf16* x, int64_t ldx, const bf16* W, int64_t N, int64_t in, int64_t out, bf16* y, int64_t ldy,
                 cudaStream_t stream, const float* bias) {
  if (N <= 0 || out <= 0) return;
  if (skinny_gemm_linear(x, ldx, W, N, in, out, y, ldy, false, false, bias, stream)) return;
  gemm(x, ldx, W, N, in, out, y, ldy, CUDA_R_16BF, 0.0f, stream);
  if (bias) add_bias_bf16(y, ldy, bias, N, out, stream);
}

void linear_f32(const bf16* x, int64_t ldx, const bf16* W, int64_t N, int64_t in, int64_t out, float* y, int64_t ldy,
                bool accumulate, cudaStream_t stream, const float* bias) {
  if (N <= 0 || out <= 0) return;
  if (skinny_gemm_linear(x, ldx, W, N, in, out, y, ldy, true, accumulate, bias, stream)) return;
  gemm(x, ldx, W, N, in, out, y, ldy, CUDA_R_32F, accumulate ? 1.0f : 0.0f, stream);
  if (bias) add_bias_f32(y, ldy, bias, N, out, stream);
}

void linear_act_bf16(const bf16* x, int64_t ldx, const bf16* W, int64_t N, int64_t in, int64_t out, bf16* y,
                     int64_t ldy, Activation act, bf16* u, cudaStream_t stream, const float* bias) {
  if (N <= 0 || out <= 0) return;
  if (N <= skinny_gemm_act_preferred_rows() && skinny_gemm_act(x, ldx, W, N, in, out, y, ldy, bias, act, stream))
    return;
  switch (act) {
    case Activation::kSwiGlu:
      JRT_CHECK(u, "linear_act_bf16: SwiGLU needs the [N, 2 out] pre-activation buffer");
      JRT_CHECK(ldy == out, "linear_act_bf16: SwiGLU writes dense rows (ldy {} != {})", ldy, out);
      linear_bf16(x, ldx, W, N, in, 2 * out, u, 2 * out, stream, bias);
      swiglu_cuda(u, N, out, y, stream);
      return;
    case Activation::kGeluErf:
    case Activation::kGeluTanh:
      JRT_CHECK(ldy == out, "linear_act_bf16: GELU works on dense rows (ldy {} != {})", ldy, out);
      linear_bf16(x, ldx, W, N, in, out, y, ldy, stream, bias);
      gelu_cuda(y, N * out, act == Activation::kGeluTanh, stream);
      return;
    case Activation::kNone:
      linear_bf16(x, ldx, W, N, in, out, y, ldy, stream, bias);
      return;
  }
}

// y [N, C] (row stride ldy) += bias [C]; grid (N, column tiles of 1024), four columns per thread.
template <class T>
__global__ void add_bias_kernel(T* y, int64_t ldy, const float* bias, int64_t C) {
  pdl_wait();
  pdl_launch_dependents();
  T* row = y + int64_t(blockIdx.x) * ldy;
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int64_t c = int64_t(blockIdx.y) * 1024 + r * 256 + threadIdx.x;
    if (c < C) row[c] = T(float(row[c]) + bias[c]);
  }
}
static dim3 bias_grid(int64_t N, int64_t C) { return dim3(unsigned(N), unsigned((C + 1023) / 1024)); }

void add_bias_bf16(bf16* y, int64_t ldy, const float* bias, int64_t N, int64_t C, cudaStream_t stream) {
  if (N * C == 0) return;
  launch_pdl(add_bias_kernel<bf16>, bias_grid(N, C), 256, 0, stream, y, ldy, bias, C);
  JRT_CUDA_CHECK(cudaGetLastError());
}
void add_bias_f32(float* y, int64_t ldy, const float* bias, int64_t N, int64_t C, cudaStream_t stream) {
  if (N * C == 0) return;
  launch_pdl(add_bias_kernel<float>, bias_grid(N, C), 256, 0, stream, y, ldy, bias, C);
  JRT_CUDA_CHECK(cudaGetLastError());
}

// ---- training: the backward GEMMs (cuda_train_ops.h) ------------------------------------------------
// Row-major dx[N, in] = dy[N, out] W[out, in] is column-major dx^T (in x N) = W^T (in x out, ld in, as
// stored) times dy^T (out x N, ld lddy): no transposes.
static void gemm_dx(const bf16* dy, int64_t lddy, const bf16* W, int64_t N, int64_t in, int64_t out, void* dx,
                    int64_t lddx, cudaDataType_t type, float beta, cudaStream_t stream) {
  if (N <= 0 || in <= 0) return;
  cublasHandle_t h = blas_handle();
  JRT_CUBLAS_CHECK(cublasSetStream(h, stream));
  const float alpha = 1.0f;
  JRT_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, int(in), int(N), int(out), &alpha, W, CUDA_R_16BF,
                                int(in), dy, CUDA_R_16BF, int(lddy), &beta, dx, type, int(lddx), CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT));
}

void linear_dx_f32(const bf16* dy, int64_t lddy, const bf16* W, int64_t N, int64_t in, int64_t out, float* dx,
                   int64_t lddx, bool accumulate, cudaStream_t stream) {
  if (out <= 0) {  // an empty product: dx = 0 (or unchanged)
    if (!accumulate && N > 0 && in > 0)
      JRT_CUDA_CHECK(cudaMemset2DAsync(dx, size_t(lddx) * sizeof(float), 0, size_t(in) * sizeof(float), size_t(N),
                                       stream));
    return;
  }
  gemm_dx(dy, lddy, W, N, in, out, dx, lddx, CUDA_R_32F, accumulate ? 1.0f : 0.0f, stream);
}

void linear_dx_bf16(const bf16* dy, int64_t lddy, const bf16* W, int64_t N, int64_t in, int64_t out, bf16* dx,
                    int64_t lddx, cudaStream_t stream) {
  gemm_dx(dy, lddy, W, N, in, out, dx, lddx, CUDA_R_16BF, 0.0f, stream);
}

// Row-major dW[out, in] += dy^T x is column-major dW^T (in x out, ld in) += x^T (in x N, ld ldx) times
// (dy^T)^T (N x out: dy^T seen column-major is out x N, ld lddy, transposed).
void linear_dw(const bf16* dy, int64_t lddy, const bf16* x, int64_t ldx, int64_t N, int64_t in, int64_t out,
               float* dW, cudaStream_t stream) {
  if (N <= 0 || in <= 0 || out <= 0) return;
  cublasHandle_t h = blas_handle();
  JRT_CUBLAS_CHECK(cublasSetStream(h, stream));
  const float alpha = 1.0f, beta = 1.0f;
  JRT_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_T, int(in), int(out), int(N), &alpha, x, CUDA_R_16BF,
                                int(ldx), dy, CUDA_R_16BF, int(lddy), &beta, dW, CUDA_R_32F, int(in),
                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// db[c] += sum_n dy[n, c]: dy [N, C] bf16. Grid (column tiles of 32, R row slices), 32 x 32 threads: lane
// tx reads column c of a row (a warp: 32 adjacent columns, coalesced); row group y = blockIdx.y * 32 + ty
// takes rows y, y + 32 R, ... in order; the CTA adds its 32 groups in group order into its partial row
// part[blockIdx.y, c] (=), which column_sum_add_cuda adds up over the R slices in a fixed order.
constexpr int kBiasGroups = 32;
// About 1024 CTAs in all (4 waves: enough loads in flight to stream dy), at most 128 row slices (the
// reduction's depth; scratch R x C floats).
constexpr int64_t kBiasCtas = 1024, kBiasMaxParts = 128;

__global__ void __launch_bounds__(32 * kBiasGroups)
    bias_grad_kernel(const bf16* dy, int64_t lddy, int64_t N, int64_t C, float* part) {
  __shared__ float red[kBiasGroups][33];
  const int lane = threadIdx.x, g = threadIdx.y;
  const int64_t c = int64_t(blockIdx.x) * 32 + lane, stride = int64_t(gridDim.y) * kBiasGroups;
  float acc = 0.0f;
  if (c < C)
    for (int64_t r = int64_t(blockIdx.y) * kBiasGroups + g; r < N; r += stride)
      acc += __bfloat162float(dy[r * lddy + c]);
  red[g][lane] = acc;
  __syncthreads();
  if (g == 0 && c < C) {
    float s = 0.0f;
    for (int k = 0; k < kBiasGroups; ++k) s += red[k][lane];
    part[int64_t(blockIdx.y) * C + c] = s;
  }
}

void bias_grad_cuda(const bf16* dy, int64_t lddy, int64_t N, int64_t C, float* db, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  const int64_t ctiles = (C + 31) / 32;
  // Row slices: fixed by the shape; no more than one per 32 rows (a row per row group).
  const int64_t R = std::min(std::clamp<int64_t>((kBiasCtas + ctiles - 1) / ctiles, 1, kBiasMaxParts),
                             (N + kBiasGroups - 1) / kBiasGroups);
  jrt::cuda::StreamScratch<float> part(size_t(R * C), stream);  // [R, C], <= 128 x C floats
  const dim3 grid{unsigned(ctiles), unsigned(R)};
  bias_grad_kernel<<<grid, dim3(32, kBiasGroups), 0, stream>>>(dy, lddy, N, C, part.get());
  JRT_CUDA_CHECK(cudaGetLastError());
  column_sum_add_cuda(part.get(), R, C, db, stream);
}

}  // namespace jrt::ops::cuda
