// ops/cuda_ops.h — the GPU forms of the inference ops (everything but the linear-attention kernels,
// which have ops/linear_attention_cuda.h). Each is implemented in the .cu file next to its CPU op
// (ops/<op>.cu beside ops/<op>.cpp) and checked against it by tests/test_cuda_*.cpp.
//
// Conventions: activations and weights bf16 in memory, fp32 arithmetic and accumulation, recurrent
// state (conv tails, SSM state) fp32; the residual stream is fp32. Packed variable-length batches:
// T rows in all, sequence b owns rows [cu_seqlens[b], cu_seqlens[b+1]) (int32, device). Row strides
// ("ld") are in elements. Every entry point is asynchronous on `stream` and capturable in a CUDA
// graph (no host synchronisation, no allocation): anything that changes per call (positions, ids)
// is read from device memory.
#pragma once
#ifdef JRT_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace jrt::ops::cuda {

using bf16 = __nv_bfloat16;

// ---- GEMM (ops/linear.cu) -------------------------------------------------------------------------
// A cuBLAS handle bound to this thread, with a fixed workspace so calls can be graph-captured.
cublasHandle_t blas_handle();
// y[N, out] = x[N, in] W[out, in]^T (+ bias[out], fp32, when given): bf16 operands, fp32 accumulation, bf16
// result. Decode-sized products on sm_90 run the skinny kernel where it is the faster (skinny_gemm_linear;
// ops/linear_skinny.cu, bias fused), else cuBLAS.
void linear_bf16(const bf16* x, int64_t ldx, const bf16* W, int64_t N, int64_t in, int64_t out, bf16* y, int64_t ldy,
                 cudaStream_t stream, const float* bias = nullptr);
// Same product with an fp32 result; accumulate = true adds it to y (y += x W^T + bias: the residual add).
void linear_f32(const bf16* x, int64_t ldx, const bf16* W, int64_t N, int64_t in, int64_t out, float* y, int64_t ldy,
                bool accumulate, cudaStream_t stream, const float* bias = nullptr);
// The skinny decode GEMM itself (ops/linear_skinny.cu): y[M, N] (+)= x[M, K] W[N, K]^T (+ bias) for
// M <= 128, bf16 or fp32 result. Returns false, doing nothing, where it does not apply (no sm_90 device,
// M > 128, K % 8, N % 4, unaligned rows, or JRT_SKINNY_GEMM=0 in the environment). split > 0 forces the
// cluster size (benchmarks); 0 takes skinny_gemm_split's. JRT_PDL=0 turns programmatic dependent launch off.
// variant picks the tiling for M > 32 (smaller M always run the default): 64 weight rows per CTA (taken by
// skinny_gemm_linear at 33-128 rows on outputs <= 2048 wide), or 128 rows with two CTAs per SM (fewer stages each;
// kernel lab), or kBatchSplit: the batch cut into tiles of 64 rows, one CTA each per weight tile, two CTAs per SM (the
// weight tile is read by both batch tiles, the second time from L2; kernel lab: measured ~1-6% faster than the
// default tiling at 64 / 128 rows, still 1.4-1.6x behind cuBLAS on wide outputs, so not used).
enum class SkinnyVariant { kDefault, kRows64, kTwoPerSm, kBatchSplit };
bool skinny_gemm(const bf16* x, int64_t ldx, const bf16* W, int64_t M, int64_t K, int64_t N, void* y, int64_t ldy,
                 bool out_f32, bool accumulate, const float* bias, cudaStream_t stream, int split = 0,
                 SkinnyVariant variant = SkinnyVariant::kDefault);
bool skinny_gemm_available();
// Activations fused into a GEMM's epilogue (the same formulas as ops/activation.h).
enum class Activation { kNone, kSwiGlu, kGeluErf, kGeluTanh };
// The skinny GEMM with the MLP activation applied before its only rounding: y[M, N] (bf16) =
// act(x W^T + bias). kSwiGlu: W [2N, K] and bias [2N] hold the values then the gates (as swiglu_cuda's u),
// y = value * silu(gate). Same conditions and return value as skinny_gemm.
bool skinny_gemm_act(const bf16* x, int64_t ldx, const bf16* W, int64_t M, int64_t K, int64_t N, bf16* y, int64_t ldy,
                     const float* bias, Activation act, cudaStream_t stream, int split = 0);
// The MLP's first layer and activation: y[N, out] = act(x W^T + bias), W [out or 2 out, in] as above. The
// skinny kernel does it in one launch where it applies (N <= skinny_gemm_act_preferred_rows()); otherwise
// linear_bf16 writes the pre-activation to u (only SwiGLU needs it: [N, 2 out] bf16; GELU works in place
// on y) and the activation kernel follows, as before the fusion.
void linear_act_bf16(const bf16* x, int64_t ldx, const bf16* W, int64_t N, int64_t in, int64_t out, bf16* y,
                     int64_t ldy, Activation act, bf16* u, cudaStream_t stream, const float* bias = nullptr);
// The cluster size (K split) for an N x K weight on this device, for CTAs of rows_per_cta weight rows
// with ctas_per_sm resident per SM (the default kernel: 128, 1).
int skinny_gemm_split(int64_t N, int64_t K, int rows_per_cta = 128, int ctas_per_sm = 1);
// The linear layers' choice: runs the skinny kernel (returning true) where it measured faster than cuBLAS
// on the H200 — up to 32 rows; up to 128 rows for outputs <= 2048 wide, with 64 weight rows per CTA — else
// returns false. JRT_SKINNY_MAX_M=n replaces the rule by "up to n rows, default tiling" (benchmarks);
// JRT_SKINNY_WIDE128=0 restores the previous rule (at 65-128 rows only outputs <= 512 wide or with a bias).
bool skinny_gemm_linear(const bf16* x, int64_t ldx, const bf16* W, int64_t M, int64_t K, int64_t N, void* y,
                        int64_t ldy, bool out_f32, bool accumulate, const float* bias, cudaStream_t stream);
// Up to how many rows linear_act_bf16 fuses the activation (64; 0 without an sm_90 device;
// JRT_SKINNY_ACT_MAX_M overrides).
int64_t skinny_gemm_act_preferred_rows();
// y[n, :] += bias (bf16 rows or fp32 rows).
void add_bias_bf16(bf16* y, int64_t ldy, const float* bias, int64_t N, int64_t C, cudaStream_t stream);
void add_bias_f32(float* y, int64_t ldy, const float* bias, int64_t N, int64_t C, cudaStream_t stream);

// ---- elementwise and row ops (ops/norm.cu, ops/embedding.cu, ops/activation.cu) ------------------
// out[n, :] = table[ids[n], :] (fp32 rows from a bf16 table). ids are checked on the host beforehand.
void embedding_cuda(const int32_t* ids, const bf16* table, int64_t N, int64_t d, float* out, cudaStream_t stream);
// y[n] = norm(x[rows ? rows[n] : n]) over d: RMSNorm (b == nullptr and rms) or LayerNorm (w, b).
// x fp32 (the residual stream), y bf16.
void norm_cuda(const float* x, int64_t ldx, const int32_t* rows, const float* w, const float* b, bool rms, float eps,
               int64_t N, int64_t d, bf16* y, int64_t ldy, cudaStream_t stream);
// SwiGLU: u [N, 2F] -> y [N, F], y = u[:, :F] * silu(u[:, F:]) (value first, gate second).
void swiglu_cuda(const bf16* u, int64_t N, int64_t F, bf16* y, cudaStream_t stream);
// GELU in place: erf form, or the tanh approximation.
void gelu_cuda(bf16* x, int64_t n, bool tanh_approx, cudaStream_t stream);
// y[n, i] = a[n, i] * silu(g[n, i]) for i < F (BaseConv's gate, Mamba's y * silu(z)); y may alias a.
void gated_silu_cuda(const bf16* a, int64_t lda, const bf16* g, int64_t ldg, int64_t N, int64_t F, bf16* y,
                     int64_t ldy, cudaStream_t stream);
// Greedy next token: out[n] = argmax logits[n, :V] (lowest index on ties, as torch.argmax).
void argmax_cuda(const float* logits, int64_t N, int64_t V, int32_t* out, cudaStream_t stream);

// ---- rotary (ops/rotary.cu) -----------------------------------------------------------------------
// In place on the first 2*nf dims of each of `heads` heads (head stride hd) of T rows (row stride ld):
// flash-attn's non-interleaved pairs (j, j + nf). Row t of sequence b is at absolute position
// pos0[b] + (t - cu_seqlens[b]) (pos0 null = 0). inv_freq [nf] fp32 (device) is ops::Rotary's table;
// the angle is fp32(fp32(p) * inv_freq[i]) exactly as the CPU op, cos/sin in fp32.
void rotary_cuda(bf16* x, int64_t ld, const int32_t* cu_seqlens, const int32_t* pos0, int B, int64_t T, int heads,
                 int hd, const float* inv_freq, int nf, cudaStream_t stream);

// ---- softmax attention (ops/attention.cu) ---------------------------------------------------------
// qkv rows [T, 3*H*hd] (row stride ldqkv): q heads at columns [0, H*hd), k at [H*hd, 2H*hd), v at
// [2H*hd, 3H*hd), head h at h*hd inside its block, rotary already applied. o [T, H*hd] (row stride ldo).
// left_window < 0: full causal; else a query at position p sees keys p - left_window .. p.
// scale = 1/sqrt(hd). hd <= 128 and a multiple of 2.
//
// Prefill of fresh sequences (positions 0 .. len-1), flash-style (online softmax, K/V tiles in shared
// memory, fp32 statistics). max_len: the longest sequence (host side, for the grid).
void attention_prefill_cuda(const bf16* qkv, int64_t ldqkv, const int32_t* cu_seqlens, int B, int max_len, int H,
                            int hd, int64_t left_window, float scale, bf16* o, int64_t ldo, cudaStream_t stream);
// KV cache: per sequence slot b, kc/vc [B, C, H, hd] bf16; position p lives in row p % C (a ring).
// A window needs C >= left_window + 1; full attention C > the last position.
// Writes the k/v rows of every sequence's segment (positions pos0[b] + t; pos0 null = 0) into the
// cache (only the last C rows of a longer segment are kept).
void kv_cache_write_cuda(const bf16* qkv, int64_t ldqkv, const int32_t* cu_seqlens, const int32_t* pos0, int B,
                         int64_t T, int H, int hd, bf16* kc, bf16* vc, int64_t C, cudaStream_t stream);
// One decode step for B sequences (row b of qkv is sequence b's new token at position pos[b]): writes
// its k/v into the cache row pos[b] % C, then attends over positions max(0, pos[b] - left_window)
// .. pos[b] (left_window < 0: from 0). o [B, H*hd].
void attention_decode_cuda(const bf16* qkv, int64_t ldqkv, const int32_t* pos, int B, int H, int hd,
                           int64_t left_window, float scale, bf16* kc, bf16* vc, int64_t C, bf16* o, int64_t ldo,
                           cudaStream_t stream);

// ---- short causal convolution (ops/causal_conv1d.cu) ----------------------------------------------
// Depthwise causal conv over each sequence's rows of x [T, C] (row stride ldx), continuing from
// tail [B, K-1, C] fp32 (the last K-1 inputs, oldest first; zeros for a fresh sequence):
//   c[t, ch] = sum_i w[ch, i] * x[t - K + 1 + i, ch] (+ bias[ch])
//   y = (silu ? silu(c) : c) * (gate ? gate[t, ch] : 1)     (bf16, row stride ldy)
// then tail <- the last K-1 inputs (from x and the old tail for short segments). w [C, K] fp32,
// bias [C] fp32 or null, gate bf16 (row stride ldg) or null. Serves prefill and decode (length-1
// segments). max_len: longest segment (host side). xbias / gbias [C] fp32 (or null) are added to x and
// gate as they are read (the input projection's bias, so that it needs no launch of its own; the tail
// keeps the biased inputs, as the conv sees them).
void causal_conv1d_cuda(const bf16* x, int64_t ldx, const int32_t* cu_seqlens, int B, int max_len, int64_t C,
                        const float* w, int K, const float* bias, bool silu, const bf16* gate, int64_t ldg, float* tail,
                        bf16* y, int64_t ldy, cudaStream_t stream, const float* xbias = nullptr,
                        const float* gbias = nullptr);

// ---- Mamba selective scan (ops/selective_scan.cu) -------------------------------------------------
// Per sequence b, channel c, state n (h [B, di, ns] fp32, continued and updated in place):
//   delta = softplus(dt[t, c] + dt_bias[c])           (torch threshold 20)
//   h[c, n] = exp(delta * A[c, n]) * h[c, n] + delta * Bm[t, n] * x[t, c]
//   y[t, c] = (sum_n h[c, n] * Cm[t, n] + D[c] * x[t, c]) * silu(z[t, c])
// x, z bf16 [T, di] (row strides ldx, ldz); dt fp32 [T, di] (stride lddt, the dt_proj output before
// its bias); Bm, Cm bf16 [T, ns] (strides ldbc; the x_proj output columns); A = -exp(A_log) [di, ns]
// fp32; D [di] fp32 or null; y bf16 [T, di] (stride ldy). ns <= 64.
struct ScanCudaArgs {
  const bf16* x = nullptr;
  int64_t ldx = 0;
  const float* dt = nullptr;
  int64_t lddt = 0;
  const float* dt_bias = nullptr;
  const bf16* Bm = nullptr;
  const bf16* Cm = nullptr;
  int64_t ldbc = 0;
  const bf16* z = nullptr;
  int64_t ldz = 0;
  const float* A = nullptr;
  const float* D = nullptr;
  bf16* y = nullptr;
  int64_t ldy = 0;
  float* h = nullptr;
  const int32_t* cu_seqlens = nullptr;
  int B = 0, max_len = 0;
  int64_t di = 0;
  int ns = 0;
};
void selective_scan_cuda(const ScanCudaArgs& a, cudaStream_t stream);

// ---- batch bookkeeping (ops/batch_util.cu) ---------------------------------------------------------
// x[rows[i], :width] = 0 for i < n (bf16 rows, row stride ld); rows device int32.
void zero_rows_cuda(bf16* x, int64_t ld, int64_t width, const int32_t* rows, int64_t n, cudaStream_t stream);
// y[i, :] = x[rows[i], :] for i < n (bf16, width columns).
void gather_rows_cuda(const bf16* x, int64_t ldx, const int32_t* rows, int64_t n, int64_t width, bf16* y, int64_t ldy,
                      cudaStream_t stream);
// p[i] += inc for i < n (decode positions).
void add_i32_cuda(int32_t* p, int64_t n, int32_t inc, cudaStream_t stream);
// dst[i] = src[i] (int32, device to device, n elements).
void copy_i32_cuda(const int32_t* src, int32_t* dst, int64_t n, cudaStream_t stream);

}  // namespace jrt::ops::cuda
#endif
