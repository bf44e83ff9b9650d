// ops/cuda_train_ops.h — the GPU training forms of the ops: forward with the saved activations their
// backward needs, and the backward (llm.c's contract: activation gradients written (=), parameter
// gradients accumulated (+=)). Each is implemented in the .cu file next to its CPU op and checked
// against the CPU training form (ops/*_train.cpp, T = float) by tests/test_cuda_train_*.cpp.
//
// Mixed precision (as torch autocast + fp32 master weights): activations that feed GEMMs and the
// GEMM weights are bf16; every kernel computes in fp32; statistics (norm mean/rstd, softmax lse,
// linear-attention denominators), the residual stream and its gradient, recurrent/scan state and all
// parameter gradients are fp32.
//
// Training batches are B sequences of L tokens, row n = b * L + t (N = B * L rows), every sequence
// starting from a fresh state at position 0. Row strides ("ld") are in elements. Everything is
// asynchronous on `stream`; no host synchronisation. The only memory an op takes itself is the scratch
// of its fixed-order reductions (core/cuda_util.h StreamScratch: a stream-ordered pool that reuses its
// blocks after the first step).
//
// Determinism: no op sums floats with atomics. Where many CTAs contribute to one gradient element, each
// writes its partial sums and one kernel adds them in a fixed order (column_sum_add_cuda; the attention
// backwards' dq slots), or the element gets a CTA of its own; so the same inputs give bitwise the same
// gradients on every run.
#pragma once
#ifdef JRT_HAVE_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace jrt::ops::cuda {

using bf16 = __nv_bfloat16;

// ---- fixed-order reduction (ops/reduce.cu) ------------------------------------------------------------
// dst[c] += sum_{r < rows} part[r, c] for c < cols, the rows added in increasing order (part contiguous).
void column_sum_add_cuda(const float* part, int64_t rows, int64_t cols, float* dst, cudaStream_t stream);
// The largest workspace the attention backwards (softmax and Taylor linear attention) may spend on dq slots:
// the key-owning kernel writes each (key block, query block) tile of dq to a slot of its own and a reduction
// adds the slots in key-block order, deterministic and without recomputing dS; past the cap (long sequences)
// a query-owning dq kernel recomputes it instead. The *_bwd_workspace_bytes functions read the cap, so set it
// before sizing workspaces. Default 256 MiB; 0 forces the dq kernels (tests cover both paths this way).
size_t dq_slot_cap_bytes();
void set_dq_slot_cap_bytes(size_t bytes);

// ---- GEMM backward (ops/linear.cu); the forward is linear_bf16 / linear_f32 of cuda_ops.h ----------
// dx[N, in] = dy[N, out] W[out, in]  (fp32 result, += when accumulate; or bf16 result, =).
void linear_dx_f32(const bf16* dy, int64_t lddy, const bf16* W, int64_t N, int64_t in, int64_t out, float* dx,
                   int64_t lddx, bool accumulate, cudaStream_t stream);
void linear_dx_bf16(const bf16* dy, int64_t lddy, const bf16* W, int64_t N, int64_t in, int64_t out, bf16* dx,
                    int64_t lddx, cudaStream_t stream);
// dW[out, in] += dy[N, out]^T x[N, in]  (fp32, contiguous rows of `in`).
void linear_dw(const bf16* dy, int64_t lddy, const bf16* x, int64_t ldx, int64_t N, int64_t in, int64_t out, float* dW,
               cudaStream_t stream);
// db[c] += sum_n dy[n, c]  (c < C).
void bias_grad_cuda(const bf16* dy, int64_t lddy, int64_t N, int64_t C, float* db, cudaStream_t stream);

// ---- rows, elementwise, loss, optimizer (ops/norm.cu, ops/embedding.cu, ops/activation.cu,
//      ops/cross_entropy.cu, ops/optimizer.cu) -------------------------------------------------------
// dtable[ids[n], :] += dout[n, :]  (fp32; the rows of an id added in order n; a thread per column walking
// all N rows: the simple form, for tests).
void embedding_bwd_cuda(const int32_t* ids, const float* dout, int64_t N, int64_t d, float* dtable,
                        cudaStream_t stream);
// The same sum with the rows grouped by id on the host (order: row indices sorted by id; chunk k covers
// order[chunk_start[k] .. chunk_start[k+1]), all of id chunk_id[k]; the chunks of an id are consecutive):
// chunk sums, then each id's chunk sums added in chunk order. Scratch: up to nchunk x d floats.
void embedding_bwd_grouped_cuda(const int32_t* order, const int32_t* chunk_start, const int32_t* chunk_id,
                                int64_t nchunk, const float* dout, int64_t d, float* dtable, cudaStream_t stream);
// y[rows[i], :] = x[i, :] for i < n (fp32 rows; ops/batch_util.cu). The inverse of gather_rows_cuda.
void scatter_rows_f32_cuda(const float* x, int64_t ldx, const int32_t* rows, int64_t n, int64_t width, float* y,
                           int64_t ldy, cudaStream_t stream);
// Norm forward with saved statistics: y = norm(x) (bf16), rstd [N] and, for LayerNorm, mean [N] (fp32;
// mean may be null for RMSNorm). RMSNorm: rms = true, b ignored. Same math as norm_cuda.
void norm_fwd_train_cuda(const float* x, const float* w, const float* b, bool rms, float eps, int64_t N, int64_t d,
                         bf16* y, float* mean, float* rstd, cudaStream_t stream);
// dx[N, d] += d loss / d x given dy = d loss / d y (fp32 both: the residual stream's gradient; dx must not
// alias dy: the dw / db pass rereads dy after other rows' dx are written);
// dw [d] += , db [d] += (null: skipped; ignored for RMSNorm).
void norm_bwd_cuda(const float* dy, const float* x, const float* w, const float* mean, const float* rstd, bool rms,
                   int64_t N, int64_t d, float* dx, float* dw, float* db, cudaStream_t stream);
// Softmax cross-entropy over fp32 logits [N, V] (row stride ldl). labels [N] int32, < 0 = ignored.
// lse [N] (=, every row), row_loss [N] (=): lse - logits[label] for counted rows, 0 for ignored ones.
void cross_entropy_fwd_cuda(const float* logits, int64_t ldl, const int32_t* labels, int64_t N, int64_t V, float* lse,
                            float* row_loss, cudaStream_t stream);
// dlogits[n, :] = row_scale[n] * (softmax(logits[n]) - onehot(labels[n])) as bf16 (row stride lddl),
// all zero for ignored rows (the caller's row_scale is the objective's 1 / count, or 0).
void cross_entropy_bwd_cuda(const float* logits, int64_t ldl, const int32_t* labels, const float* lse,
                            const float* row_scale, int64_t N, int64_t V, bf16* dlogits, int64_t lddl,
                            cudaStream_t stream);
// y = silu(x) (bf16 -> bf16, contiguous n elements); backward dx = dy * silu'(x) with an fp32 dy.
void silu_fwd_cuda(const bf16* x, int64_t n, bf16* y, cudaStream_t stream);
void silu_bwd_cuda(const float* dy, const bf16* x, int64_t n, bf16* dx, cudaStream_t stream);
// Backward of y[r, i] = a[r, i] * silu(g[r, i]) (gated_silu_cuda): da = dy * silu(g), dg = dy * a * silu'(g).
void gated_silu_bwd_cuda(const bf16* dy, int64_t lddy, const bf16* a, int64_t lda, const bf16* g, int64_t ldg,
                         int64_t N, int64_t F, bf16* da, int64_t ldda, bf16* dg, int64_t lddg, cudaStream_t stream);
// Backward of swiglu_cuda: u [N, 2F] -> du [N, 2F] (=) from dy [N, F].
void swiglu_bwd_cuda(const bf16* dy, const bf16* u, int64_t N, int64_t F, bf16* du, cudaStream_t stream);
// y[r, c] = bf16(x[r, c]) for r < N, c < C (strided rows).
void cast_f32_bf16_cuda(const float* x, int64_t ldx, int64_t N, int64_t C, bf16* y, int64_t ldy, cudaStream_t stream);
// out[0] += sum_i x[i]^2 (double accumulation; n elements).
void sum_squares_cuda(const float* x, int64_t n, double* out, cudaStream_t stream);
// AdamW over a flat buffer (torch.optim.AdamW, as train/optimizer.cpp): with g' = g * gscale,
//   p *= 1 - lr * wd * decay[i];  m = b1 m + (1 - b1) g';  v = b2 v + (1 - b2) g'^2;
//   p -= step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps);  p_bf16[i] = bf16(p)   (p_bf16 may be null)
// decay [n] uint8 (1: this element's tensor is decayed; null: all). step_size = lr / bc1, inv_sqrt_bc2 = 1/sqrt(bc2).
// Clipping on the device (no host round trip): with norm2 set (the gradients' squared global norm, from
// sum_squares_cuda) and max_norm > 0, gscale is replaced by torch clip_grad_norm_'s factor
// max_norm / (sqrt(norm2) + 1e-6) when that is < 1, else 1.
struct AdamCudaArgs {
  float* p = nullptr;
  const float* g = nullptr;
  float* m = nullptr;
  float* v = nullptr;
  const uint8_t* decay = nullptr;
  bf16* p_bf16 = nullptr;
  const double* norm2 = nullptr;
  float max_norm = 0;
  int64_t n = 0;
  float lr = 0, wd = 0, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, step_size = 0, inv_sqrt_bc2 = 1, gscale = 1;
};
void adamw_cuda(const AdamCudaArgs& a, cudaStream_t stream);

// ---- convolution and Mamba scan (ops/causal_conv1d.cu, ops/selective_scan.cu) ----------------------
// Depthwise causal conv of each sequence from a zero history (causal_conv1d_fwd_t):
//   y[b, t, c] = bias[c] + sum_i w[c, i] x[b, t - K + 1 + i, c]     (bf16 in/out, w [C, K] fp32, bias or null)
void conv1d_fwd_train_cuda(const bf16* x, int64_t ldx, int B, int64_t L, int64_t C, const float* w, int K,
                           const float* bias, bf16* y, int64_t ldy, cudaStream_t stream);
// dx (=, bf16, row stride lddx), dw [C, K] (+=), db [C] (+=, null: skipped) (causal_conv1d_bwd_t).
void conv1d_bwd_train_cuda(const bf16* dy, int64_t lddy, const bf16* x, int64_t ldx, int B, int64_t L, int64_t C,
                           const float* w, int K, bf16* dx, int64_t lddx, float* dw, float* db, cudaStream_t stream);
// delta = softplus(pre + bias) (torch threshold 20): pre, delta [N, di] fp32 contiguous.
void delta_softplus_fwd_cuda(const float* pre, const float* bias, int64_t N, int64_t di, float* delta,
                             cudaStream_t stream);
// dpre (=, bf16 [N, di] with row stride lddp) = ddelta * softplus'(pre + bias); dbias [di] (+=).
void delta_softplus_bwd_cuda(const float* ddelta, const float* pre, const float* bias, int64_t N, int64_t di,
                             bf16* dpre, int64_t lddp, float* dbias, cudaStream_t stream);
// A = -exp(A_log) (n elements); backward dA_log += dA * A.
void mamba_a_fwd_cuda(const float* A_log, int64_t n, float* A, cudaStream_t stream);
void mamba_a_bwd_cuda(const float* dA, const float* A, int64_t n, float* dA_log, cudaStream_t stream);
// Selective scan of B sequences from h = 0 (selective_scan_fwd_t, per sequence b, channel c, state s):
//   h[s] = exp(delta[t,c] A[c,s]) h[s] + delta[t,c] Bm[t,s] x[t,c];  y[t,c] = sum_s h[s] Cm[t,s] + D[c] x[t,c]
// x bf16 [N, di] (ldx), delta fp32 [N, di] contiguous, A fp32 [di, ns], Bm / Cm bf16 (row stride ldbc),
// D [di] or null, y bf16 (ldy). hsave: fp32 checkpoints of h every `ckpt` steps that the backward
// recomputes from, scan_train_saved_floats(B, L, di, ns, ckpt) floats. ns <= 64.
struct ScanTrainCuda {
  const bf16* x = nullptr;
  int64_t ldx = 0;
  const float* delta = nullptr;
  const float* A = nullptr;
  const bf16* Bm = nullptr;
  const bf16* Cm = nullptr;
  int64_t ldbc = 0;
  const float* D = nullptr;
  bf16* y = nullptr;
  int64_t ldy = 0;
  float* hsave = nullptr;
  int B = 0;
  int64_t L = 0, di = 0;
  int ns = 0, ckpt = 16;
};
int64_t scan_train_saved_floats(int B, int64_t L, int64_t di, int ns, int ckpt);
void selective_scan_fwd_train_cuda(const ScanTrainCuda& s, cudaStream_t stream);
// From dy bf16 [N, di] (lddy): dx fp32 [N, di] contiguous (=), ddelta fp32 [N, di] (=), dBC fp32 [N, 2 ns]
// (=: columns [0, ns) dB, [ns, 2 ns) dC), dA [di, ns] (+=), dD [di] (+=, null: skipped).
void selective_scan_bwd_train_cuda(const ScanTrainCuda& s, const bf16* dy, int64_t lddy, float* dx, float* ddelta,
                                   float* dBC, float* dA, float* dD, cudaStream_t stream);

// ---- softmax attention (ops/attention.cu, ops/rotary.cu) -------------------------------------------
// qkv bf16 [N, 3 H hd] (the inference layout of attention_prefill_cuda, rotary applied), B sequences of
// L rows; left_window < 0: causal, else keys t - left_window .. t. Forward: o bf16 [N, H hd] (ldo) and
// lse fp32 [B, H, L] (log-sum-exp of the scaled scores over the visible keys).
void attention_fwd_train_cuda(const bf16* qkv, int64_t ldqkv, int B, int64_t L, int H, int hd, int64_t left_window,
                              float scale, bf16* o, int64_t ldo, float* lse, cudaStream_t stream);
// Backward: dqkv bf16 [N, 3 H hd] (=, row stride lddqkv; q / k / v blocks as qkv) from dout [N, H hd].
// workspace: workspace_bytes of device memory, at least attention_bwd_workspace_bytes(B, L, H, hd) (a workspace
// sized for a larger shape works too; whether it holds the dq slots picks the dq path).
size_t attention_bwd_workspace_bytes(int B, int64_t L, int H, int hd);
void attention_bwd_train_cuda(const bf16* qkv, int64_t ldqkv, const bf16* o, int64_t ldo, const float* lse,
                              const bf16* dout, int64_t lddo, int B, int64_t L, int H, int hd, int64_t left_window,
                              float scale, bf16* dqkv, int64_t lddqkv, void* workspace, size_t workspace_bytes,
                              cudaStream_t stream);
// Backward of rotary_cuda (rotation by the negative angle, in place on the gradient rows; same arguments).
void rotary_bwd_cuda(bf16* dx, int64_t ld, const int32_t* cu_seqlens, const int32_t* pos0, int B, int64_t T, int heads,
                     int hd, const float* inv_freq, int nf, cudaStream_t stream);

// ---- Taylor linear attention, training form (ops/linear_attention_train.cu) ------------------------
// The parallel form of ops::la_fwd_t / la_bwd_t for every (sequence b, head h) at once, with
// w_tj = 1 + s + s^2/2, s = q_t.k_j / sqrt(fd):
//   num_t = gamma^(t+1) S0^T phi(q_t) + sum_{j<=t} gamma^(t-j) w_tj v_j
//   den_t = phi(q_t).z0 + sum_{j<=t} w_tj + eps;   u_t = num_t / den_t;   y_t = dt_t u_t (y = u without dt)
// q, k bf16 [N, H fd] (head h at columns h fd), v bf16 [N, H dv]; dt fp32 [N, H] or null; gamma fp32 [H]
// (device) or null (1); S0 fp32 [B, H, D, dv], z0 [B, H, D] (D = 1 + fd + fd^2) or null (zero).
// Saved: y bf16 [N, H dv], den fp32 [B, H, L], u bf16 [N, H dv] when dt is set.
struct LaTrainCuda {
  const bf16* q = nullptr;
  int64_t ldq = 0;
  const bf16* k = nullptr;
  int64_t ldk = 0;
  const bf16* v = nullptr;
  int64_t ldv = 0;
  const float* dt = nullptr;
  int64_t lddt = 0;
  const float* gamma = nullptr;
  const float* S0 = nullptr;
  const float* z0 = nullptr;
  bf16* y = nullptr;
  int64_t ldy = 0;
  float* den = nullptr;
  bf16* u = nullptr;
  int64_t ldu = 0;
  int B = 0;
  int64_t L = 0;
  int H = 0, fd = 16, dv = 0;
  float eps = 1e-12f;
};
// workspace: la_fwd_workspace_bytes(a) (0 unless an initial state meets the tensor-core path without decay: the
// state's share is then a TF32 GEMM, ops/linear_attention_prefix.cu); null when 0. The *_workspace_bytes
// functions test a's pointers only for null (S0 / z0 / gamma present or not).
size_t la_fwd_workspace_bytes(const LaTrainCuda& a);
void la_fwd_train_cuda(const LaTrainCuda& a, void* workspace, cudaStream_t stream);
// From dy bf16 [N, H dv] (lddy): dq, dk bf16 [N, H fd] (=), dv bf16 [N, H dv] (=), ddt bf16 [N, H] (=, iff
// dt), dS0 fp32 [B, H, D, dv] / dz0 [B, H, D] (=, when non-null). workspace: workspace_bytes of device memory,
// at least la_bwd_workspace_bytes(a) (sized for a larger shape works too; whether it holds the dq slots picks
// the dq path).
struct LaTrainGradsCuda {
  bf16* dq = nullptr;
  int64_t lddq = 0;
  bf16* dk = nullptr;
  int64_t lddk = 0;
  bf16* dv = nullptr;
  int64_t lddv = 0;
  bf16* ddt = nullptr;
  int64_t ldddt = 0;
  float* dS0 = nullptr;
  float* dz0 = nullptr;
};
size_t la_bwd_workspace_bytes(const LaTrainCuda& a);
void la_bwd_train_cuda(const LaTrainCuda& a, const bf16* dy, int64_t lddy, const LaTrainGradsCuda& g, void* workspace,
                       size_t workspace_bytes, cudaStream_t stream);
// JRT encoder summary of each sequence's first M rows (la_accumulate_state_t from zero), as TF32 GEMMs
// (ops/linear_attention_prefix.cu):
//   S0[b, h] = sum_{t<M} phi(k_t) v_t^T,  z0[b, h] = sum_{t<M} phi(k_t)     (=; ke/ve rows b * L + t)
// workspace: la_state_workspace_bytes(B, L, M, H, fd, dv), for the forward and the backward.
size_t la_state_workspace_bytes(int B, int64_t L, int64_t M, int H, int fd, int dv);
void la_state_fwd_train_cuda(const bf16* ke, int64_t ldk, const bf16* ve, int64_t ldv, int B, int64_t L, int64_t M,
                             int H, int fd, int dv, float* S0, float* z0, void* workspace, cudaStream_t stream);
// Backward: dke bf16 [N, H fd], dve bf16 [N, H dv] (=; rows t >= M of each sequence are zeroed).
void la_state_bwd_train_cuda(const bf16* ke, int64_t ldk, const bf16* ve, int64_t ldv, int B, int64_t L, int64_t M,
                             int H, int fd, int dv, const float* dS0, const float* dz0, bf16* dke, int64_t lddk,
                             bf16* dve, int64_t lddv, void* workspace, cudaStream_t stream);

}  // namespace jrt::ops::cuda
#endif
