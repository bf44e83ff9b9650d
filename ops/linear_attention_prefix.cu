// ops/linear_attention_prefix.cu — the JRT prefix-state path of Taylor linear attention on the GPU
// (ops/linear_attention_prefix.h; public entry points la_state_fwd_train_cuda / la_state_bwd_train_cuda in
// ops/cuda_train_ops.h): the encoder summary S0 = Phi(K)^T V, its read Phi(Q) S0 by the decoder, and their
// backwards, as cuBLAS strided-batched GEMMs over the B H (sequence, head) pairs on TF32 tensor cores.
//
// Why GEMMs: each product is (rows) x (D = 1 + fd + fd^2) x (d_v) per pair, ~2 D d_v FLOPs per row and product;
// JRT has six of them per layer and step. The fp32 CUDA-core kernels this replaces spent ~1.1 ms of a 3.4 ms
// training step on them (ncu, d_model 128, L 512, batch 64). Here phi is written out per row (fp32, rows padded
// to Dp = D rounded up to 4 so every row starts 16-byte aligned), and the value / gradient rows are gathered
// into [rows, dvp] with one extra column: 1 for V, dden for R = rinv dy. The extra column makes the
// denominator's terms (z0, dz0, dden z0^T, 1 dz0^T) part of the same GEMMs.
//
// Numerics: fp32 storage, TF32 operands (10-bit mantissa, 2^-11 relative rounding), fp32 accumulation. That is
// finer than the bf16 operands of every other GEMM of the training step. Every output element is written by
// exactly one thread or GEMM tile: deterministic.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/cuda_util.h"
#include "ops/cuda_ops.h"
#include "ops/cuda_train_ops.h"
#include "ops/linear_attention_prefix.h"

namespace jrt::ops::cuda {
namespace {

constexpr int kRowsPerCta = 8;  // one warp per row in the row kernels
constexpr int kMaxFd = 64;

struct Dims {
  int64_t D, Dp, dvp;
};
Dims dims(int fd, int dv) {
  const int64_t D = 1 + int64_t(fd) + int64_t(fd) * fd;
  return {D, (D + 3) / 4 * 4, (int64_t(dv) + 1 + 3) / 4 * 4};
}

// Feature-map constants as ops/taylor.h (rounded once from double).
struct Phi {
  float r1, r2;
};
Phi phi_consts(int fd) {
  return {float(1.0 / std::sqrt(std::sqrt(double(fd)))), float(1.0 / (std::sqrt(2.0) * std::sqrt(double(fd))))};
}

// Scratch carving: each piece starts 256-byte aligned.
size_t align256(size_t n) { return (n + 255) / 256 * 256; }
size_t fbytes(int64_t n) { return align256(sizeof(float) * size_t(n)); }
struct Carver {
  unsigned char* p;
  float* take(int64_t n) {
    float* r = reinterpret_cast<float*>(p);
    p += fbytes(n);
    return r;
  }
};

// ---- row kernels --------------------------------------------------------------------------------

// out [B H, rows, Dp] fp32: out[bh, t, f] = phi(x_t)[f] for f < D, 0 for D <= f < Dp. x row b L + t, columns
// h fd .. h fd + fd - 1 (bf16). One warp per row.
__global__ void phi_rows_kernel(const bf16* __restrict__ x, int64_t ldx, int H, int fd, int64_t L, int64_t rows,
                                int64_t D, int64_t Dp, Phi pc, float* __restrict__ out, int64_t nrows) {
  __shared__ float xs[kRowsPerCta][kMaxFd];
  const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t ri = int64_t(blockIdx.x) * kRowsPerCta + w;
  if (ri >= nrows) return;  // warp-uniform; only __syncwarp below
  const int64_t bh = ri / rows, t = ri - bh * rows, b = bh / H, h = bh - b * H;
  const bf16* xr = x + (b * L + t) * ldx + h * fd;
  for (int a = lane; a < fd; a += 32) xs[w][a] = __bfloat162float(xr[a]);
  __syncwarp();
  float* o = out + ri * Dp;
  for (int64_t f = lane; f < Dp; f += 32) {
    float val = 0.0f;
    if (f == 0) {
      val = 1.0f;
    } else if (f <= fd) {
      val = xs[w][f - 1] * pc.r1;
    } else if (f < D) {
      const int64_t p = f - 1 - fd, pa = p / fd, pb = p - pa * fd;
      val = xs[w][pa] * xs[w][pb] * pc.r2;
    }
    o[f] = val;
  }
}

// out [B H, rows, dvp] fp32: out[bh, t, c] = scale_t src[b L + t, h dv + c] (c < dv), extra_t (c = dv), 0 past
// it; scale_t = scale[bh L + t] (null: 1), extra_t = extra[bh L + t] (null: 1). One thread per element.
__global__ void rows_ext_kernel(const bf16* __restrict__ src, int64_t ld, int H, int dv, int64_t L, int64_t rows,
                                int64_t dvp, const float* __restrict__ scale, const float* __restrict__ extra,
                                float* __restrict__ out, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t ri = i / dvp, c = i - ri * dvp, bh = ri / rows, t = ri - bh * rows, b = bh / H, h = bh - b * H;
  float val = 0.0f;
  if (c < dv) {
    val = __bfloat162float(src[(b * L + t) * ld + h * dv + c]);
    if (scale) val *= scale[bh * L + t];
  } else if (c == dv) {
    val = extra ? extra[bh * L + t] : 1.0f;
  }
  out[i] = val;
}

// Sx [B H, Dp, dvp] = [S | z] padded with zeros (S [B H, D, dv], z [B H, D]; either null: zero).
__global__ void pack_state_kernel(const float* __restrict__ S, const float* __restrict__ z, int64_t D, int dv,
                                  int64_t Dp, int64_t dvp, float* __restrict__ Sx, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t r = i / dvp, c = i - r * dvp, bh = r / Dp, f = r - bh * Dp;
  float val = 0.0f;
  if (f < D) {
    if (c < dv && S) val = S[(bh * D + f) * dv + c];
    if (c == dv && z) val = z[bh * D + f];
  }
  Sx[i] = val;
}

// The inverse: S [B H, D, dv] and z [B H, D] (=, either null: skipped) from Sx [B H, Dp, dvp].
__global__ void split_state_kernel(const float* __restrict__ Sx, int64_t D, int dv, int64_t Dp, int64_t dvp,
                                   float* __restrict__ S, float* __restrict__ z, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;  // over B H D (dv + 1)
  if (i >= n) return;
  const int64_t r = i / (dv + 1), c = i - r * (dv + 1), bh = r / D, f = r - bh * D;
  const float val = Sx[(bh * Dp + f) * dvp + c];
  if (c < dv) {
    if (S) S[r * dv + c] = val;
  } else if (z) {
    z[r] = val;
  }
}

// dx [N, H fd] bf16 (=, row stride ldo): for each row t < L of pair bh,
//   dx_t = acc_t + J_phi(x_t)^T dPhi[bh, t]  (t < rows),  0 (rows <= t < L)
//   J^T g: dx_a = r1 g[1 + a] + r2 sum_b (g[1 + fd + a fd + b] + g[1 + fd + b fd + a]) x_b
// acc fp32 [N, H, fd] (row (b L + t) H + h) or null. One warp per row.
__global__ void phi_bwd_kernel(const bf16* __restrict__ x, int64_t ldx, int H, int fd, int64_t L, int64_t rows,
                               int64_t Dp, Phi pc, const float* __restrict__ dPhi, const float* __restrict__ acc,
                               bf16* __restrict__ out, int64_t ldo, int64_t nrows) {
  __shared__ float xs[kRowsPerCta][kMaxFd];
  const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t ri = int64_t(blockIdx.x) * kRowsPerCta + w;  // over B H L
  if (ri >= nrows) return;
  const int64_t bh = ri / L, t = ri - bh * L, b = bh / H, h = bh - b * H, n = b * L + t;
  const bf16* xr = x + n * ldx + h * fd;
  for (int a = lane; a < fd; a += 32) xs[w][a] = __bfloat162float(xr[a]);
  __syncwarp();
  const float* g = t < rows ? dPhi + (bh * rows + t) * Dp : nullptr;
  for (int a = lane; a < fd; a += 32) {
    float d = 0.0f;
    if (g) {
      const float* g2 = g + 1 + fd;
      float s = 0.0f;
      for (int bb = 0; bb < fd; ++bb) s += (g2[a * fd + bb] + g2[bb * fd + a]) * xs[w][bb];
      d = pc.r1 * g[1 + a] + pc.r2 * s;
    }
    if (acc) d += acc[(n * H + h) * fd + a];
    out[n * ldo + h * fd + a] = __float2bfloat16(d);
  }
}

// dst [N, H dv] bf16 (=): dst[b L + t, h dv + c] = src[bh, t, c] for t < rows, 0 for rows <= t < L (c < dv).
__global__ void scatter_rows_kernel(const float* __restrict__ src, int64_t dvp, int H, int dv, int64_t L, int64_t rows,
                                    bf16* __restrict__ dst, int64_t ld, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;  // over B H L dv
  if (i >= n) return;
  const int64_t ri = i / dv, c = i - ri * dv, bh = ri / L, t = ri - bh * L, b = bh / H, h = bh - b * H;
  const float val = t < rows ? src[(bh * rows + t) * dvp + c] : 0.0f;
  dst[(b * L + t) * ld + h * dv + c] = __float2bfloat16(val);
}

// ---- launches -----------------------------------------------------------------------------------

unsigned blocks(int64_t n, int per) { return unsigned((n + per - 1) / per); }

void phi_rows(const bf16* x, int64_t ldx, int64_t BH, int H, int fd, int64_t L, int64_t rows, const Dims& d, float* out,
              cudaStream_t s) {
  const int64_t nrows = BH * rows;
  if (nrows == 0) return;
  phi_rows_kernel<<<blocks(nrows, kRowsPerCta), 32 * kRowsPerCta, 0, s>>>(x, ldx, H, fd, L, rows, d.D, d.Dp,
                                                                          phi_consts(fd), out, nrows);
  JRT_CUDA_CHECK(cudaGetLastError());
}

void rows_ext(const bf16* src, int64_t ld, int64_t BH, int H, int dv, int64_t L, int64_t rows, const Dims& d,
              const float* scale, const float* extra, float* out, cudaStream_t s) {
  const int64_t n = BH * rows * d.dvp;
  if (n == 0) return;
  rows_ext_kernel<<<blocks(n, 256), 256, 0, s>>>(src, ld, H, dv, L, rows, d.dvp, scale, extra, out, n);
  JRT_CUDA_CHECK(cudaGetLastError());
}

void pack_state(const float* S, const float* z, int64_t BH, int dv, const Dims& d, float* Sx, cudaStream_t s) {
  const int64_t n = BH * d.Dp * d.dvp;
  pack_state_kernel<<<blocks(n, 256), 256, 0, s>>>(S, z, d.D, dv, d.Dp, d.dvp, Sx, n);
  JRT_CUDA_CHECK(cudaGetLastError());
}

void split_state(const float* Sx, int64_t BH, int dv, const Dims& d, float* S, float* z, cudaStream_t s) {
  const int64_t n = BH * d.D * (dv + 1);
  split_state_kernel<<<blocks(n, 256), 256, 0, s>>>(Sx, d.D, dv, d.Dp, d.dvp, S, z, n);
  JRT_CUDA_CHECK(cudaGetLastError());
}

void phi_bwd(const bf16* x, int64_t ldx, int64_t BH, int H, int fd, int64_t L, int64_t rows, const Dims& d,
             const float* dPhi, const float* acc, bf16* out, int64_t ldo, cudaStream_t s) {
  const int64_t nrows = BH * L;
  if (nrows == 0) return;
  phi_bwd_kernel<<<blocks(nrows, kRowsPerCta), 32 * kRowsPerCta, 0, s>>>(x, ldx, H, fd, L, rows, d.Dp, phi_consts(fd),
                                                                         dPhi, acc, out, ldo, nrows);
  JRT_CUDA_CHECK(cudaGetLastError());
}

void scatter_rows(const float* src, int64_t BH, int H, int dv, int64_t L, int64_t rows, const Dims& d, bf16* dst,
                  int64_t ld, cudaStream_t s) {
  const int64_t n = BH * L * dv;
  if (n == 0) return;
  scatter_rows_kernel<<<blocks(n, 256), 256, 0, s>>>(src, d.dvp, H, dv, L, rows, dst, ld, n);
  JRT_CUDA_CHECK(cudaGetLastError());
}

// Row-major C[m, n] (=, row stride ldc) = op(A) op(B) for each of `batch` pairs (strides sA, sB, sC elements),
// fp32 in and out on TF32 tensor cores. cuBLAS is column-major, so this is C^T = op(B)^T op(A)^T there. C must
// be contiguous per pair (ldc == n, sC == m n) when k == 0: it is then zeroed.
void gemm_tf32(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* A, int64_t lda, int64_t sA,
               const float* B, int64_t ldb, int64_t sB, float* C, int64_t ldc, int64_t sC, int64_t batch,
               cudaStream_t s) {
  if (m <= 0 || n <= 0 || batch <= 0) return;
  if (k <= 0) {
    JRT_CUDA_CHECK(cudaMemsetAsync(C, 0, sizeof(float) * size_t(batch) * size_t(sC), s));
    return;
  }
  cublasHandle_t h = blas_handle();
  JRT_CUBLAS_CHECK(cublasSetStream(h, s));
  const float one = 1.0f, zero = 0.0f;
  constexpr int64_t kMaxBatch = 32768;  // keep every launch's batch within the grid's z limit
  for (int64_t b0 = 0; b0 < batch; b0 += kMaxBatch) {
    const int64_t nb = std::min(kMaxBatch, batch - b0);
    JRT_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
        h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, int(n), int(m), int(k), &one, B + b0 * sB,
        CUDA_R_32F, int(ldb), sB, A + b0 * sA, CUDA_R_32F, int(lda), sA, &zero, C + b0 * sC, CUDA_R_32F, int(ldc), sC,
        int(nb), CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT));
  }
}

void check_sizes(int fd, int dv, const char* what) {
  JRT_CHECK(fd >= 1 && fd <= kMaxFd, "{}: feature dim {} must be in [1, {}]", what, fd, kMaxFd);
  JRT_CHECK(dv >= 1, "{}: d_v {} must be positive", what, dv);
}

}  // namespace

// ---- decoder share (internal, ops/linear_attention_prefix.h) ---------------------------------------

namespace la_prefix {

size_t share_fwd_bytes(int64_t BH, int64_t L, int fd, int dv) {
  const Dims d = dims(fd, dv);
  return fbytes(BH * L * d.Dp) + fbytes(BH * d.Dp * d.dvp) + fbytes(BH * L * d.dvp);
}

size_t share_bwd_bytes(int64_t BH, int64_t L, int fd, int dv) {
  const Dims d = dims(fd, dv);
  // Phi(Q) (reused for dPhi(Q) once dS0x is formed), [R | dden], S0x, dS0x.
  return fbytes(BH * L * d.Dp) + fbytes(BH * L * d.dvp) + 2 * fbytes(BH * d.Dp * d.dvp);
}

int64_t share_fwd(const bf16* q, int64_t ldq, int B, int64_t L, int H, int fd, int dv, const float* S0, const float* z0,
                  void* ws, const float** share, cudaStream_t stream) {
  check_sizes(fd, dv, "la_prefix::share_fwd");
  const Dims d = dims(fd, dv);
  const int64_t BH = int64_t(B) * H;
  Carver cv{static_cast<unsigned char*>(ws)};
  float* phi = cv.take(BH * L * d.Dp);
  float* Sx = cv.take(BH * d.Dp * d.dvp);
  float* out = cv.take(BH * L * d.dvp);
  phi_rows(q, ldq, BH, H, fd, L, L, d, phi, stream);
  pack_state(S0, z0, BH, dv, d, Sx, stream);
  gemm_tf32(false, false, L, d.dvp, d.Dp, phi, d.Dp, L * d.Dp, Sx, d.dvp, d.Dp * d.dvp, out, d.dvp, L * d.dvp, BH,
            stream);
  *share = out;
  return d.dvp;
}

void share_bwd(const bf16* q, int64_t ldq, const bf16* dy, int64_t lddy, const float* rinv, const float* dden, int B,
               int64_t L, int H, int fd, int dv, const float* S0, const float* z0, const float* dq_acc, bf16* dq,
               int64_t lddq, float* dS0, float* dz0, void* ws, cudaStream_t stream) {
  check_sizes(fd, dv, "la_prefix::share_bwd");
  const Dims d = dims(fd, dv);
  const int64_t BH = int64_t(B) * H;
  Carver cv{static_cast<unsigned char*>(ws)};
  float* phi = cv.take(BH * L * d.Dp);
  float* Rx = cv.take(BH * L * d.dvp);
  float* Sx = cv.take(BH * d.Dp * d.dvp);
  float* dSx = cv.take(BH * d.Dp * d.dvp);
  phi_rows(q, ldq, BH, H, fd, L, L, d, phi, stream);
  rows_ext(dy, lddy, BH, H, dv, L, L, d, rinv, dden, Rx, stream);
  if (dS0 || dz0) {  // dS0x [Dp, dvp] = Phi(Q)^T [R | dden]
    gemm_tf32(true, false, d.Dp, d.dvp, L, phi, d.Dp, L * d.Dp, Rx, d.dvp, L * d.dvp, dSx, d.dvp, d.Dp * d.dvp, BH,
              stream);
    split_state(dSx, BH, dv, d, dS0, dz0, stream);
  }
  if (dq) {  // dPhi(Q) [L, Dp] = [R | dden] S0x^T, into Phi(Q)'s buffer
    pack_state(S0, z0, BH, dv, d, Sx, stream);
    gemm_tf32(false, true, L, d.Dp, d.dvp, Rx, d.dvp, L * d.dvp, Sx, d.dvp, d.Dp * d.dvp, phi, d.Dp, L * d.Dp, BH,
              stream);
    phi_bwd(q, ldq, BH, H, fd, L, L, d, phi, dq_acc, dq, lddq, stream);
  }
}

}  // namespace la_prefix

// ---- encoder summary (cuda_train_ops.h) ---------------------------------------------------------

size_t la_state_workspace_bytes(int B, int64_t L, int64_t M, int H, int fd, int dv) {
  (void)L;
  const Dims d = dims(fd, dv);
  const int64_t BH = int64_t(B) * H;
  // Phi(K) (reused for dPhi(K)), [V | 1], the state S0x / dS0x, d[V | 1].
  return fbytes(BH * M * d.Dp) + 2 * fbytes(BH * M * d.dvp) + fbytes(BH * d.Dp * d.dvp);
}

namespace {

// What the encoder's forward and backward share: argument checks, the workspace carving (Phi(K), [V | 1],
// d[V | 1], the state-sized piece; la_state_workspace_bytes) and the two row kernels.
struct EncoderRows {
  Dims d;
  int64_t BH;
  float *phi, *Vx, *dVx, *Sx;
};
EncoderRows encoder_rows(const bf16* ke, int64_t ldk, const bf16* ve, int64_t ldv, int B, int64_t L, int64_t M, int H,
                         int fd, int dv, void* workspace, const char* what, cudaStream_t stream) {
  check_sizes(fd, dv, what);
  JRT_CHECK(M >= 0 && M <= L, "{}: prefix length {} outside [0, {}]", what, M, L);
  JRT_CHECK(workspace, "{}: workspace required ({} bytes)", what, la_state_workspace_bytes(B, L, M, H, fd, dv));
  EncoderRows r;
  r.d = dims(fd, dv);
  r.BH = int64_t(B) * H;
  Carver cv{static_cast<unsigned char*>(workspace)};
  r.phi = cv.take(r.BH * M * r.d.Dp);
  r.Vx = cv.take(r.BH * M * r.d.dvp);
  r.dVx = cv.take(r.BH * M * r.d.dvp);
  r.Sx = cv.take(r.BH * r.d.Dp * r.d.dvp);
  phi_rows(ke, ldk, r.BH, H, fd, L, M, r.d, r.phi, stream);
  rows_ext(ve, ldv, r.BH, H, dv, L, M, r.d, nullptr, nullptr, r.Vx, stream);
  return r;
}

}  // namespace

void la_state_fwd_train_cuda(const bf16* ke, int64_t ldk, const bf16* ve, int64_t ldv, int B, int64_t L, int64_t M,
                             int H, int fd, int dv, float* S0, float* z0, void* workspace, cudaStream_t stream) {
  if (B <= 0 || H <= 0) return;
  JRT_CHECK(S0 && z0, "la_state_fwd_train_cuda: S0 and z0 are required");
  const EncoderRows r =
      encoder_rows(ke, ldk, ve, ldv, B, L, M, H, fd, dv, workspace, "la_state_fwd_train_cuda", stream);
  const Dims& d = r.d;
  // S0x [Dp, dvp] = Phi(K)^T [V | 1]: S0 and, in the last column, z0.
  gemm_tf32(true, false, d.Dp, d.dvp, M, r.phi, d.Dp, M * d.Dp, r.Vx, d.dvp, M * d.dvp, r.Sx, d.dvp, d.Dp * d.dvp, r.BH,
            stream);
  split_state(r.Sx, r.BH, dv, d, S0, z0, stream);
}

void la_state_bwd_train_cuda(const bf16* ke, int64_t ldk, const bf16* ve, int64_t ldv, int B, int64_t L, int64_t M,
                             int H, int fd, int dv, const float* dS0, const float* dz0, bf16* dke, int64_t lddk,
                             bf16* dve, int64_t lddv, void* workspace, cudaStream_t stream) {
  if (B <= 0 || H <= 0 || L <= 0) return;
  JRT_CHECK(dS0 && dz0 && dke && dve, "la_state_bwd_train_cuda: dS0, dz0, dke and dve are required");
  const EncoderRows r =
      encoder_rows(ke, ldk, ve, ldv, B, L, M, H, fd, dv, workspace, "la_state_bwd_train_cuda", stream);
  const Dims& d = r.d;
  pack_state(dS0, dz0, r.BH, dv, d, r.Sx, stream);
  // d[V | 1] [M, dvp] = Phi(K) dS0x; then dPhi(K) [M, Dp] = [V | 1] dS0x^T into Phi(K)'s buffer.
  gemm_tf32(false, false, M, d.dvp, d.Dp, r.phi, d.Dp, M * d.Dp, r.Sx, d.dvp, d.Dp * d.dvp, r.dVx, d.dvp, M * d.dvp,
            r.BH, stream);
  gemm_tf32(false, true, M, d.Dp, d.dvp, r.Vx, d.dvp, M * d.dvp, r.Sx, d.dvp, d.Dp * d.dvp, r.phi, d.Dp, M * d.Dp, r.BH,
            stream);
  scatter_rows(r.dVx, r.BH, H, dv, L, M, d, dve, lddv, stream);
  phi_bwd(ke, ldk, r.BH, H, fd, L, M, d, r.phi, nullptr, dke, lddk, stream);
}

}  // namespace jrt::ops::cuda
