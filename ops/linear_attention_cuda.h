// ops/linear_attention_cuda.h — Based / JRT Taylor linear attention prefill on the GPU (bf16 in/out,
// fp32 accumulation and state). Same function as ops/linear_attention.h, for all heads of a
// variable-length batch (cu_seqlens), continuing from an optional initial state and returning the
// final state.
//
// The kernel never materialises the 273-wide feature map: the state uses the equivalent symmetric map
// (models-spec §3 / perf-anchors §2.6) of 1 + 16 + 16 + 120 = 153 features, padded to 160:
//   f(x) = [1, x/2, x_i^2/sqrt(32), x_i x_j / 4 (i < j)],  f(q).f(k) = 1 + s + s^2/2, s = q.k/4,
// so the state S [160, dv] and normaliser z [160] are 44% smaller than the reference's [273, dv].
// la_state_to_273 / la_state_from_273 convert to and from the CPU layout (exact, linear maps).
//
// Work split: a head's d_v is cut into 64-column slices (32 with decay) and, when the batch is small,
// its sequence into segments: a first pass computes each segment's local state, a scan turns them into
// initial states, and the chunk pass (64-token chunks on tensor cores) runs all segments in parallel.
#pragma once
#include <cstdint>
#include <vector>

#ifdef JRT_HAVE_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#endif

namespace jrt::ops {

constexpr int kLaFeat = 160;  // padded symmetric feature count (153 used)

// Converts one head's state between layouts. S273 [273, dv] (+ z273 [273]) <-> S160 [160, dv] (+ z160).
void la_state_to_273(const float* S160, const float* z160, int64_t dv, float* S273, float* z273);
void la_state_from_273(const float* S273, const float* z273, int64_t dv, float* S160, float* z160);

#ifdef JRT_HAVE_CUDA
struct LaCudaArgs {
  const __nv_bfloat16* q = nullptr;  // [T, H, 16]  (row stride ldq elements, head h at h*16)
  const __nv_bfloat16* k = nullptr;  // [T, H, 16]
  const __nv_bfloat16* v = nullptr;  // [T, H, dv]
  __nv_bfloat16* o = nullptr;        // [T, H, dv]
  int64_t ldq = 0, ldk = 0, ldv = 0, ldo = 0;  // row strides in elements (0 = packed H*16 / H*dv);
                                               // q / k / v rows 16-byte aligned (strides multiples of 8)
  const int32_t* cu_seqlens = nullptr;  // [B + 1] device, token offsets of the sequences
  int B = 0, H = 0, dv = 0;
  int max_len = 0;                       // longest sequence (host side, for the grid)
  const float* gamma = nullptr;          // [H] device: numerator decay per step, or null
  const float* dt = nullptr;             // [T, H] device: output scale per token-head, or null
  const float* S0 = nullptr;             // [B, H, 160, dv] initial state or null
  const float* z0 = nullptr;             // [B, H, 160]
  float* S_out = nullptr;                // [B, H, 160, dv] final state or null
  float* z_out = nullptr;                // [B, H, 160]
  float eps = 1e-12f;
  int segment_len = 0;                   // tokens per segment (multiple of 64); 0 = choose from the grid size
  cudaStream_t stream = nullptr;
};

// Kernel family of the prefill / encoder passes without decay (process-wide, not thread-safe):
// kRoles, the default everywhere (v7: mma.sync; readout warps and update warps, the F(Q) operand built in
// registers); kMmaSync (v5: mma.sync, the chunk's tiles over all warps); kWgmma / kWgmma1Cta (v6,
// warpgroup MMA, sm_90 only, 2 or 1 CTAs per SM; v7 elsewhere). The non-default ones are kernel-lab
// variants that tests and bench_cuda_prefill --kernel select (dev/README.md has their measurements).
enum class LaPrefillKernel { kRoles, kMmaSync, kWgmma, kWgmma1Cta };
void la_prefill_set_kernel(LaPrefillKernel k);
bool la_prefill_wgmma_available();

// Bytes of device scratch needed for these sizes (segment states); call with the same args.
size_t la_prefill_cuda_workspace(const LaCudaArgs& a);
void la_prefill_cuda(const LaCudaArgs& a, void* workspace);

// One decode step for B sequences x H heads (the recurrence of ops/linear_attention.h la_step, in the
// 160-feature state layout): S = gamma S + f(k) v^T, z += f(k), y = dt (f(q)^T S) / (f(q).z + eps).
// q, k [B, H, 16] bf16, v [B, H, dv] bf16, y [B, H, dv] bf16; S [B, H, 160, dv], z [B, H, 160] fp32 in
// place; gamma [H] and dt [B, H] optional. Bandwidth-bound by design (the state is read and written once);
// the kernels below.
// rows: the row strides (elements) of q, k and v per sequence, 0 = packed (H 16, H 16, H dv); strides let them
// be column ranges of one fused projection's output.
struct LaDecodeRows {
  int64_t ldq = 0, ldk = 0, ldv = 0;
};
void la_decode_step_cuda(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* y,
                         float* S, float* z, int B, int H, int dv, const float* gamma, const float* dt, float eps,
                         cudaStream_t stream, LaDecodeRows rows = {});

// Kernel of la_decode_step_cuda (process-wide, not thread-safe; tests and A/B runs): kAuto picks kStream
// on sm_90 when d_v % 8 == 0, d_v <= 128 and the q / k / v rows are 16-byte aligned, else kPerHead.
// kPerHead: one CTA per (sequence, head), the state read from global memory into registers.
// kStream: persistent CTAs (as many per SM as their two state slots allow, or max_ctas in all when > 0) loop
// over the items; each item's state comes in one bulk copy (TMA, 1-D) into a double-buffered shared-memory
// slot while the previous item is updated, so every SM has a read in flight while it stores (dev/README.md,
// "v8"), together with its z, q, k and v since v9. The environment variable JRT_LA_DECODE=perhead|stream
// overrides kAuto.
enum class LaDecodeKernel { kAuto, kPerHead, kStream };
void la_decode_set_kernel(LaDecodeKernel k, int max_ctas = 0);

// Encoder pass of JRT's prefix attention: S_out += sum_j f(k_j) v_j^T, z_out += sum_j f(k_j) over each
// sequence's rows (non-causal; cu_seqlens delimit the prefixes). S_out/z_out must be initialised.
// With a workspace of la_accumulate_cuda_workspace(a) bytes (non-zero when the batch is small), the
// prefixes are cut into segments summed in parallel and then added in order (deterministic).
size_t la_accumulate_cuda_workspace(const LaCudaArgs& a);
void la_accumulate_state_cuda(const LaCudaArgs& a, void* workspace = nullptr);
#endif

}  // namespace jrt::ops
