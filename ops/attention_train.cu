// ops/attention_train.cu — the training form of causal (optionally windowed) softmax attention on the GPU
// (cuda_train_ops.h): a flash-attention-2 forward that also saves the row log-sum-exp, and the FA2
// backward. Both run on bf16 tensor cores (mma.sync m16n8k16, fp32 accumulators); softmax statistics,
// probabilities and their gradients are fp32 in registers and rounded to bf16 only as mma operands
// (as FlashAttention does). The softmax runs in base 2 (scores times scale * log2(e)).
//
// Every operand of an mma is read from shared memory as bf16 pairs: A [m][k] row-major, B [k][n] stored
// n-major ([n][k]); so each tile is staged in the orientation(s) its products need (K and V row-major
// and / or transposed). Rows of the staged tiles are padded by 8 bf16, which makes the fragment loads
// (8 rows x 4 words per instruction) free of bank conflicts.
//
// Forward: grid (ceil(L / 64), H, B), 4 warps; warp w owns 16 query rows of the CTA's 64. Key tiles of 64
// from the first key of the block's window to its last query; a warp skips the tiles it cannot see.
// Backward (FlashAttention-2's): Di = rowsum(dO * O) (one warp per (row, head)); then two kernels, grid
// (ceil(L / 64), H, B), 4 warps each, that recompute P = exp2(scale log2(e) S - lse log2(e)) and
// dS = P (dP - Di). The first owns a block of 64 keys (warp w: 16 of them) and accumulates their dK, dV in
// registers over the query tiles that see the block; the second owns 64 query rows (warp w: 16 of them) and
// accumulates their dQ = scale dS K over the key tiles they see. Every gradient element has one writer and a
// fixed summation order (no atomics), so the backward is bitwise deterministic (cuda_train_ops.h).
// dq slots (when they fit under dq_slot_cap_bytes()): the dK / dV kernel also forms each (key block, query
// tile)'s share of dQ = dS K from the dS it already holds, and stores it (fp32, unscaled) to a slot of its
// own; attn_dq_reduce_kernel then adds a row's slots in increasing key-block order. That saves the dQ
// kernel's recomputation of S and dP, and stays deterministic (plain stores, fixed order).
#include <cuda_bf16.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>

#include "core/cuda_util.h"
#include "ops/cuda_common.cuh"
#include "ops/cuda_train_ops.h"
#include "ops/mma.cuh"

namespace jrt::ops::cuda {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr int kMaxHd = 128;
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kBlock = 64;  // forward: query rows per CTA and keys per tile; backward: keys per CTA
constexpr int kPad = 8;     // bf16 padding of every staged row (row stride = 4 words mod 32)
constexpr unsigned kFull = 0xffffffffu;

// Stages rows [0, R) x columns [0, kHd) of one head's tile (row r at src + r * ld; rows >= nrows and
// columns >= hd are zero) into xs [R][kHd + kPad] (row-major; null: skipped) and / or xt [kHd][R + kPad]
// (transposed; null: skipped). A thread moves 2 rows x 1 column pair; a warp covers 16 rows x 4 pairs,
// which keeps the transposed stores conflict-free (the row-major ones 2-way).
template <int kHd, int R>
__device__ __forceinline__ void stage(const bf16* __restrict__ src, int64_t ld, int nrows, int hd, bf16* xs, bf16* xt) {
  static_assert(R % 16 == 0 && kHd % 8 == 0, "whole warp groups of 16 rows x 4 pairs");
  constexpr int kGroupsD = kHd / 8;  // groups of 4 column pairs
  constexpr int kItems = (R / 2) * (kHd / 2);
  for (int e = threadIdx.x; e < kItems; e += kThreads) {
    const int grp = e >> 5;
    const int dp = (e & 3) + 4 * (grp % kGroupsD);
    const int r = 2 * (((e >> 2) & 7) + 8 * (grp / kGroupsD));
    uint32_t u0 = 0u, u1 = 0u;
    if (2 * dp < hd) {
      if (r < nrows) u0 = ld32(src + int64_t(r) * ld + 2 * dp);
      if (r + 1 < nrows) u1 = ld32(src + int64_t(r + 1) * ld + 2 * dp);
    }
    if (xs) {
      st32(xs + r * (kHd + kPad) + 2 * dp, u0);
      st32(xs + (r + 1) * (kHd + kPad) + 2 * dp, u1);
    }
    if (xt) {
      st32(xt + (2 * dp) * (R + kPad) + r, __byte_perm(u0, u1, 0x5410));      // low halves: column 2 dp
      st32(xt + (2 * dp + 1) * (R + kPad) + r, __byte_perm(u0, u1, 0x7632));  // high halves: column 2 dp + 1
    }
  }
}

// ---- forward ---------------------------------------------------------------------------------------

template <int kHd>
constexpr size_t fwd_smem() {
  return (size_t(kBlock) * (kHd + kPad) + size_t(kHd) * (kBlock + kPad)) * sizeof(bf16);
}

// qkv [B*L, ldqkv] (q | k | v blocks of H*hd), o [B*L, ldo], lse [B, H, L]; grid (ceil(L / 64), H, B).
// Shared memory: Ks [64][kHd + 8] (first Q, then each key tile), Vt [kHd][64 + 8] (V tile transposed).
template <int kHd>
__global__ void __launch_bounds__(kThreads)
    attn_fwd_kernel(const bf16* __restrict__ qkv, int64_t ldqkv, int L, int H, int hd, int lw, float qscale,
                    bf16* __restrict__ o, int64_t ldo, float* __restrict__ lse) {
  constexpr int kS = kHd + kPad, kVS = kBlock + kPad, kNT = kBlock / 8, kKC = kHd / 16, kDT = kHd / 8;
  const int q0 = (int(gridDim.x) - 1 - int(blockIdx.x)) * kBlock;  // the longest rows first
  const int h = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c2 = 2 * (lane & 3);
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* Ks = reinterpret_cast<bf16*>(smem);
  bf16* Vt = Ks + kBlock * kS;

  const int64_t inner = int64_t(H) * hd;
  const bf16* qg = qkv + int64_t(b) * L * ldqkv + int64_t(h) * hd;  // row t of this (sequence, head): + t ldqkv
  const bf16* kg = qg + inner;
  const bf16* vg = qg + 2 * inner;

  // The warp's Q fragments, staged through Ks (the first key tile overwrites it after a barrier).
  stage<kHd, kBlock>(qg + int64_t(q0) * ldqkv, ldqkv, L - q0, hd, Ks, nullptr);
  __syncthreads();
  uint32_t qf[kKC][4];
#pragma unroll
  for (int kc = 0; kc < kKC; ++kc) load_a(qf[kc], Ks, kS, 16 * warp, 16 * kc, lane);

  const int wq0 = q0 + 16 * warp;             // the warp's first query row
  const int qlast = min(q0 + kBlock, L) - 1;  // the CTA's last row, and last key
  const int kstart = lw < 0 ? 0 : max(0, q0 - lw);
  float acc[kDT][4];
#pragma unroll
  for (int n = 0; n < kDT; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // rows g, g + 8: running max (base 2), lane's sum

  for (int k0 = kstart; k0 <= qlast; k0 += kBlock) {
    __syncthreads();  // the previous tile (first pass: the Q fragments) is read
    stage<kHd, kBlock>(kg + int64_t(k0) * ldqkv, ldqkv, qlast + 1 - k0, hd, Ks, nullptr);
    stage<kHd, kBlock>(vg + int64_t(k0) * ldqkv, ldqkv, qlast + 1 - k0, hd, nullptr, Vt);
    __syncthreads();
    // No row of the warp sees a key of the tile (right of the diagonal, or left of every window):
    // warp-uniform, no barrier inside.
    if (wq0 > qlast || k0 > wq0 + 15 || (lw >= 0 && k0 + kBlock - 1 + lw < wq0)) continue;

    float s[kNT][4];
#pragma unroll
    for (int n = 0; n < kNT; ++n) {
      s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
      for (int kc = 0; kc < kKC; ++kc) {
        uint32_t bf[2];
        load_b(bf, Ks, kS, 8 * n, 16 * kc, lane);
        mma_bf16_16816(s[n], qf[kc], bf);
      }
    }
    // Mask, online softmax; s becomes P (unnormalised, relative to the new running max).
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int t = wq0 + g + 8 * r;
      float mx = -INFINITY;
#pragma unroll
      for (int n = 0; n < kNT; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int j = k0 + 8 * n + c2 + e;
          const bool ok = j <= t && (lw < 0 || j + lw >= t);
          const float v = ok ? s[n][2 * r + e] * qscale : -INFINITY;
          s[n][2 * r + e] = v;
          mx = fmaxf(mx, v);
        }
      mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 2));
      const float mnew = fmaxf(m[r], mx);
      // A row without a visible key so far keeps mnew = -inf: subtract 0 then, so exp2 gives 0, not NaN.
      const float mref = mnew == -INFINITY ? 0.f : mnew;
      const float alpha = exp2f(m[r] - mref);
      float sum = 0.f;
#pragma unroll
      for (int n = 0; n < kNT; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float p = exp2f(s[n][2 * r + e] - mref);
          s[n][2 * r + e] = p;
          sum += p;
        }
      m[r] = mnew;
      l[r] = l[r] * alpha + sum;
#pragma unroll
      for (int n = 0; n < kDT; ++n) acc[n][2 * r] *= alpha, acc[n][2 * r + 1] *= alpha;
    }
    // acc += P V.
    mma_c_strip(acc, s, Vt, kVS, lane);
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float lsum = l[r];
    lsum += __shfl_xor_sync(kFull, lsum, 1);
    lsum += __shfl_xor_sync(kFull, lsum, 2);
    const int t = wq0 + g + 8 * r;
    if (t > qlast) continue;
    const float inv = 1.0f / lsum;  // >= 1: the row's maximum key contributes exp2(0)
    bf16* orow = o + (int64_t(b) * L + t) * ldo + int64_t(h) * hd;
#pragma unroll
    for (int n = 0; n < kDT; ++n)
      if (8 * n + c2 < hd) st32(orow + 8 * n + c2, pack_bf2(acc[n][2 * r] * inv, acc[n][2 * r + 1] * inv));
    if (c2 == 0) lse[(int64_t(b) * H + h) * L + t] = m[r] * kLn2 + logf(lsum);
  }
}

// ---- backward --------------------------------------------------------------------------------------

// Di[b, h, t] = sum_d dO[n, h hd + d] O[n, h hd + d] (n = b L + t); one warp per (row, head).
__global__ void attn_dsum_kernel(const bf16* __restrict__ o, int64_t ldo, const bf16* __restrict__ dout, int64_t lddo,
                                 int64_t N, int L, int H, int hd, float* __restrict__ D) {
  const int lane = threadIdx.x & 31;
  const int64_t nw = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t w = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; w < N * H; w += nw) {
    const int64_t n = w / H;
    const int h = int(w % H);
    const bf16* orow = o + n * ldo + int64_t(h) * hd;
    const bf16* drow = dout + n * lddo + int64_t(h) * hd;
    float s = 0.f;
    for (int p = 2 * lane; p < hd; p += 64) {
      const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(orow + p));
      const float2 d = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(drow + p));
      s = fmaf(a.x, d.x, s);
      s = fmaf(a.y, d.y, s);
    }
    s = warp_sum(s);
    if (lane == 0) D[(n / L * H + h) * L + n % L] = s;
  }
}

// Query rows per tile of the dK / dV kernel: 64, or 32 for the widest heads (register budget of dK, dV).
template <int kHd>
constexpr int bwd_rows() {
  return kHd <= 64 ? 64 : 32;
}

// Ks, Vs [64][kHd + 8], Qs, dOs [kBr][kHd + 8], Qt, dOt [kHd][kBr + 8] (bf16), lse2 and Di of the tile [kBr]
// (fp32).
template <int kHd>
constexpr size_t bwd_smem() {
  constexpr int kBr = bwd_rows<kHd>();
  return (size_t(2) * kBlock * (kHd + kPad) + size_t(2) * kBr * (kHd + kPad) + size_t(2) * kHd * (kBr + kPad)) *
             sizeof(bf16) +
         size_t(2) * kBr * sizeof(float);
}

// The slots path adds Kt [kHd][64 + 8] (the key block transposed) and dSs [kBr][64 + 8] (dS of the tile,
// query-major), bf16, after the above.
template <int kHd, bool kSlots>
constexpr size_t bwd_smem() {
  constexpr int kBr = bwd_rows<kHd>();
  return bwd_smem<kHd>() + (kSlots ? (size_t(kHd) + kBr) * (kBlock + kPad) * sizeof(bf16) : 0);
}

// dq slots of one (sequence, head). Key block kb visits the query tiles (of kBr rows) qt = kb R .. nqt - 1
// (R = 64 / kBr, nqt = ceil(L / kBr); a window only cuts that run short), and the pair (kb, qt) gets slot
// slot_first(kb) + qt - kb R: the causal pairs numbered key block by key block, so slot_first(kb) =
// sum_{k < kb} (nqt - k R), and slot_first(ceil(L / 64)) slots per (sequence, head). A slot holds the pair's
// dS K [kBr rows][hd] (fp32, unscaled, row-major). With a window the pairs no CTA visits stay unwritten and
// unread; the layout (and the workspace) does not depend on the window.
__host__ __device__ constexpr int64_t slot_first(int64_t kb, int64_t nqt, int64_t R) {
  return kb * nqt - R * (kb * (kb - 1) / 2);
}

// dK, dV. qkv, dqkv [B*L, 3 H hd] (row strides ldqkv, lddqkv), dout [B*L, H hd], lse / D [B, H, L]; grid
// (ceil(L / 64), H, B). The CTA owns 64 keys of one (sequence, head) and writes their rows of the k, v blocks
// of dqkv. Without slots dQ is left to attn_bwd_dq_kernel; with them (kSlots: dq_slot, nqt = ceil(L / kBr))
// the CTA stores dS K of every query tile it visits to that pair's slot (slot_first) and
// attn_dq_reduce_kernel sums them. Either way no two CTAs write one element.
template <int kHd, bool kSlots>
__global__ void __launch_bounds__(kThreads)
    attn_bwd_kernel(const bf16* __restrict__ qkv, int64_t ldqkv, const bf16* __restrict__ dout, int64_t lddo,
                    const float* __restrict__ lse, const float* __restrict__ D, int L, int H, int hd, int lw,
                    float qscale, float scale, bf16* __restrict__ dqkv, int64_t lddqkv, float* __restrict__ dq_slot,
                    int nqt) {
  constexpr int kBr = bwd_rows<kHd>();
  constexpr int kS = kHd + kPad, kRS = kBr + kPad, kKS = kBlock + kPad;
  constexpr int kKC = kHd / 16, kDT = kHd / 8, kQT = kBr / 8;
  // dQ of a tile (slots path): (kBr / 16) row tiles x kDT column tiles; warp w takes row tile w % kMT and a
  // kNW-wide run of column tiles.
  constexpr int kMT = kBr / 16, kNW = kDT * kMT / kWarps;
  static_assert(kWarps % kMT == 0 && kNW * kWarps == kDT * kMT, "dQ tiles spread evenly over the warps");

  const int k0 = blockIdx.x * kBlock, h = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c2 = 2 * (lane & 3);
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* Ks = reinterpret_cast<bf16*>(smem);
  bf16* Vs = Ks + kBlock * kS;
  bf16* Qs = Vs + kBlock * kS;
  bf16* dOs = Qs + kBr * kS;
  bf16* Qt = dOs + kBr * kS;
  bf16* dOt = Qt + kHd * kRS;
  float* lse2 = reinterpret_cast<float*>(dOt + kHd * kRS);
  float* Ds = lse2 + kBr;
  bf16* Kt = reinterpret_cast<bf16*>(Ds + kBr);  // slots path only
  bf16* dSs = Kt + kHd * kKS;

  const int64_t inner = int64_t(H) * hd;
  const int64_t row0 = int64_t(b) * L;
  const bf16* qg = qkv + row0 * ldqkv + int64_t(h) * hd;
  const bf16* dog = dout + row0 * lddo + int64_t(h) * hd;
  const float* lse_bh = lse + (int64_t(b) * H + h) * L;
  const float* D_bh = D + (int64_t(b) * H + h) * L;
  // The slot of the pair (this key block, query tile qs / kBr) starts (qs - k0) hd floats after this.
  float* slot0 = nullptr;
  if constexpr (kSlots) {
    constexpr int kR = kBlock / kBr;
    const int64_t per_bh = slot_first(gridDim.x, nqt, kR);
    slot0 = dq_slot + ((int64_t(b) * H + h) * per_bh + slot_first(blockIdx.x, nqt, kR)) * (int64_t(kBr) * hd);
  }

  stage<kHd, kBlock>(qg + inner + int64_t(k0) * ldqkv, ldqkv, L - k0, hd, Ks, kSlots ? Kt : nullptr);
  stage<kHd, kBlock>(qg + 2 * inner + int64_t(k0) * ldqkv, ldqkv, L - k0, hd, Vs, nullptr);

  const int wk0 = k0 + 16 * warp;  // the warp's first key
  // The last query that sees a key of the block.
  const int qend = lw < 0 ? L - 1 : min(L - 1, k0 + kBlock - 1 + lw);
  float dk[kDT][4], dv[kDT][4];
#pragma unroll
  for (int n = 0; n < kDT; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[n][e] = dv[n][e] = 0.f;

  for (int qs = k0; qs <= qend; qs += kBr) {
    __syncthreads();  // the previous tile's Q, dO (and dS) are read (first pass: nothing to wait for)
    stage<kHd, kBr>(qg + int64_t(qs) * ldqkv, ldqkv, L - qs, hd, Qs, Qt);
    stage<kHd, kBr>(dog + int64_t(qs) * lddo, lddo, L - qs, hd, dOs, dOt);
    for (int i = threadIdx.x; i < kBr; i += kThreads) {
      const bool in = qs + i < L;
      lse2[i] = in ? lse_bh[qs + i] * kLog2e : 0.f;
      Ds[i] = in ? D_bh[qs + i] : 0.f;
    }
    __syncthreads();

    // No key of the warp is seen by a query of the tile (warp-uniform). Without slots an idle warp moves on (no
    // barrier inside); with them it zeroes its keys' dS and still takes its share of the tile's dQ product.
    const bool idle = wk0 >= L || qs + kBr - 1 < wk0 || (lw >= 0 && qs > wk0 + 15 + lw);
    if constexpr (!kSlots) {
      if (idle) continue;
    }
    if (kSlots ? !idle : true) {
      // S^T [16 keys x kBr queries] = K Q^T, then P^T = exp2(qscale S^T - lse2) (0 where masked).
      float st[kQT][4];
#pragma unroll
      for (int n = 0; n < kQT; ++n) st[n][0] = st[n][1] = st[n][2] = st[n][3] = 0.f;
#pragma unroll
      for (int kc = 0; kc < kKC; ++kc) {
        uint32_t af[4];
        load_a(af, Ks, kS, 16 * warp, 16 * kc, lane);
        mma_row(st, af, Qs, kS, 0, 16 * kc, lane);
      }
#pragma unroll
      for (int n = 0; n < kQT; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int j = wk0 + g + 8 * (e >> 1), i = 8 * n + c2 + (e & 1), t = qs + i;
          const bool ok = j <= t && t < L && (lw < 0 || j + lw >= t);
          st[n][e] = ok ? exp2f(st[n][e] * qscale - lse2[i]) : 0.f;
        }
      // dV += P^T dO.
      mma_c_strip(dv, st, dOt, kRS, lane);
      // dP^T = V dO^T; dS^T = P^T (dP^T - Di), in place of P^T.
      float dp[kQT][4];
#pragma unroll
      for (int n = 0; n < kQT; ++n) dp[n][0] = dp[n][1] = dp[n][2] = dp[n][3] = 0.f;
#pragma unroll
      for (int kc = 0; kc < kKC; ++kc) {
        uint32_t af[4];
        load_a(af, Vs, kS, 16 * warp, 16 * kc, lane);
        mma_row(dp, af, dOs, kS, 0, 16 * kc, lane);
      }
#pragma unroll
      for (int n = 0; n < kQT; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) st[n][e] *= dp[n][e] - Ds[8 * n + c2 + (e & 1)];
      // dK += dS^T Q (scaled at the end).
      mma_c_strip(dk, st, Qt, kRS, lane);
      if constexpr (kSlots) {
        // dS [query][key] (bf16, the mma operand) for the dQ product.
#pragma unroll
        for (int n = 0; n < kQT; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            dSs[(8 * n + c2 + (e & 1)) * kKS + 16 * warp + g + 8 * (e >> 1)] = __float2bfloat16(st[n][e]);
      }
    } else if constexpr (kSlots) {
      for (int i = lane; i < kBr * 16; i += 32) dSs[(i >> 4) * kKS + 16 * warp + (i & 15)] = __float2bfloat16(0.f);
    }
    if constexpr (kSlots) {
      __syncthreads();  // dS of the tile is complete
      // The pair's slot [kBr x hd] = dS K over the block's 64 keys (unscaled); every row is stored (rows past
      // L hold zeros and are never read).
      const int mt = warp % kMT, n0 = (warp / kMT) * kNW;
      float dq[kNW][4];
#pragma unroll
      for (int n = 0; n < kNW; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.f;
#pragma unroll
      for (int kc = 0; kc < kBlock / 16; ++kc) {
        uint32_t af[4];
        load_a(af, dSs, kKS, 16 * mt, 16 * kc, lane);
        mma_row(dq, af, Kt, kKS, n0, 16 * kc, lane);
      }
      float* slot = slot0 + int64_t(qs - k0) * hd;
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float* dst = slot + (16 * mt + g + 8 * r) * hd;
#pragma unroll
        for (int n = 0; n < kNW; ++n) {
          const int col = 8 * (n0 + n) + c2;
          if (col < hd) *reinterpret_cast<float2*>(dst + col) = make_float2(dq[n][2 * r], dq[n][2 * r + 1]);
        }
      }
    }
  }

  // dK, dV rows of the warp's keys.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int j = wk0 + g + 8 * r;
    if (j >= L) continue;
    bf16* dkrow = dqkv + (row0 + j) * lddqkv + inner + int64_t(h) * hd;
    bf16* dvrow = dkrow + inner;
#pragma unroll
    for (int n = 0; n < kDT; ++n) {
      const int col = 8 * n + c2;
      if (col < hd) {
        st32(dkrow + col, pack_bf2(dk[n][2 * r] * scale, dk[n][2 * r + 1] * scale));
        st32(dvrow + col, pack_bf2(dv[n][2 * r], dv[n][2 * r + 1]));
      }
    }
  }
}

// Keys per tile of the dQ kernel: 64, or 32 for the widest heads (register budget: the warp holds its Q and
// dO fragments and dQ across the loop, plus S and dP of one tile).
template <int kHd>
constexpr int dq_keys() {
  return kHd <= 64 ? 64 : 32;
}

// Ks, Vs [64][kHd + 8] (first Q and dO of the CTA's rows, then each key tile's K and V, row-major),
// Kt [kHd][kBc + 8] (the K tile transposed).
template <int kHd>
constexpr size_t dq_smem() {
  return (size_t(2) * kBlock * (kHd + kPad) + size_t(kHd) * (dq_keys<kHd>() + kPad)) * sizeof(bf16);
}

// dQ (FlashAttention-2's separate pass). qkv, dqkv [B*L, 3 H hd] (row strides ldqkv, lddqkv), dout [B*L, H hd],
// lse / D [B, H, L]; grid (ceil(L / 64), H, B). The CTA owns 64 query rows of one (sequence, head), warp w
// 16 of them: it recomputes P and dS of every key tile its rows see, in increasing key order, sums
// dQ = dS K in registers and stores scale dQ into the q block of dqkv. One writer per element and a fixed
// summation order: the same inputs give bitwise the same dQ.
template <int kHd>
__global__ void __launch_bounds__(kThreads)
    attn_bwd_dq_kernel(const bf16* __restrict__ qkv, int64_t ldqkv, const bf16* __restrict__ dout, int64_t lddo,
                       const float* __restrict__ lse, const float* __restrict__ D, int L, int H, int hd, int lw,
                       float qscale, float scale, bf16* __restrict__ dqkv, int64_t lddqkv) {
  constexpr int kBc = dq_keys<kHd>();
  constexpr int kS = kHd + kPad, kCS = kBc + kPad, kKC = kHd / 16, kDT = kHd / 8, kNT = kBc / 8;
  const int q0 = (int(gridDim.x) - 1 - int(blockIdx.x)) * kBlock;  // the longest rows first
  const int h = blockIdx.y, b = blockIdx.z;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c2 = 2 * (lane & 3);
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* Ks = reinterpret_cast<bf16*>(smem);
  bf16* Vs = Ks + kBlock * kS;
  bf16* Kt = Vs + kBlock * kS;

  const int64_t inner = int64_t(H) * hd;
  const int64_t row0 = int64_t(b) * L;
  const bf16* qg = qkv + row0 * ldqkv + int64_t(h) * hd;  // row t of this (sequence, head): + t ldqkv
  const bf16* kg = qg + inner;
  const bf16* vg = qg + 2 * inner;
  const bf16* dog = dout + row0 * lddo + int64_t(h) * hd;
  const float* lse_bh = lse + (int64_t(b) * H + h) * L;
  const float* D_bh = D + (int64_t(b) * H + h) * L;

  // The warp's Q and dO fragments, staged through Ks and Vs (the first key tile overwrites them after a
  // barrier).
  stage<kHd, kBlock>(qg + int64_t(q0) * ldqkv, ldqkv, L - q0, hd, Ks, nullptr);
  stage<kHd, kBlock>(dog + int64_t(q0) * lddo, lddo, L - q0, hd, Vs, nullptr);
  __syncthreads();
  uint32_t qf[kKC][4], dof[kKC][4];
#pragma unroll
  for (int kc = 0; kc < kKC; ++kc) {
    load_a(qf[kc], Ks, kS, 16 * warp, 16 * kc, lane);
    load_a(dof[kc], Vs, kS, 16 * warp, 16 * kc, lane);
  }

  const int wq0 = q0 + 16 * warp;             // the warp's first query row
  const int qlast = min(q0 + kBlock, L) - 1;  // the CTA's last row, and last key
  const int kstart = lw < 0 ? 0 : max(0, q0 - lw);
  // lse (base 2) and Di of the lane's rows g, g + 8 (0 past the end: those rows are masked and not stored).
  float lse2[2], Di[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int t = wq0 + g + 8 * r;
    lse2[r] = t < L ? lse_bh[t] * kLog2e : 0.f;
    Di[r] = t < L ? D_bh[t] : 0.f;
  }
  float dq[kDT][4];
#pragma unroll
  for (int n = 0; n < kDT; ++n) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.f;

  for (int k0 = kstart; k0 <= qlast; k0 += kBc) {
    __syncthreads();  // the previous tile (first pass: the Q, dO fragments) is read
    stage<kHd, kBc>(kg + int64_t(k0) * ldqkv, ldqkv, qlast + 1 - k0, hd, Ks, Kt);
    stage<kHd, kBc>(vg + int64_t(k0) * ldqkv, ldqkv, qlast + 1 - k0, hd, Vs, nullptr);
    __syncthreads();
    // No row of the warp sees a key of the tile (warp-uniform, no barrier inside).
    if (wq0 > qlast || k0 > wq0 + 15 || (lw >= 0 && k0 + kBc - 1 + lw < wq0)) continue;

    // S = Q K^T and dP = dO V^T [16 queries x kBc keys].
    float s[kNT][4], dp[kNT][4];
#pragma unroll
    for (int n = 0; n < kNT; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[n][e] = dp[n][e] = 0.f;
#pragma unroll
    for (int kc = 0; kc < kKC; ++kc) {
      mma_row(s, qf[kc], Ks, kS, 0, 16 * kc, lane);
      mma_row(dp, dof[kc], Vs, kS, 0, 16 * kc, lane);
    }
    // P = exp2(qscale S - lse2) (0 where masked), dS = P (dP - Di), in place of S: the dK / dV kernel's
    // expressions.
#pragma unroll
    for (int n = 0; n < kNT; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e >> 1, t = wq0 + g + 8 * r, j = k0 + 8 * n + c2 + (e & 1);
        const bool ok = j <= t && t < L && (lw < 0 || j + lw >= t);
        const float p = ok ? exp2f(s[n][e] * qscale - lse2[r]) : 0.f;
        s[n][e] = p * (dp[n][e] - Di[r]);
      }
    // dQ += dS K (scaled at the end).
    mma_c_strip(dq, s, Kt, kCS, lane);
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int t = wq0 + g + 8 * r;
    if (t > qlast) continue;
    bf16* dqrow = dqkv + (row0 + t) * lddqkv + int64_t(h) * hd;
#pragma unroll
    for (int n = 0; n < kDT; ++n) {
      const int col = 8 * n + c2;
      if (col < hd) st32(dqrow + col, pack_bf2(dq[n][2 * r] * scale, dq[n][2 * r + 1] * scale));
    }
  }
}

// dQ from the slots (slot_first's layout; kBr query rows per tile, R = 64 / kBr, nqt = ceil(L / kBr),
// per_bh slots per (sequence, head)): the q block of dqkv, row t of (b, h), columns c, c + 1 =
// scale sum_kb slot(kb, t / kBr)[t mod kBr][c, c + 1] over the key blocks kb that visit the tile, in increasing
// order (the same fixed order on every run). One thread per column pair; consecutive threads take consecutive
// pairs of a row, then the next row (rows of a tile are contiguous in a slot).
__global__ void attn_dq_reduce_kernel(const float* __restrict__ slots, int64_t total, int L, int H, int hd, int lw,
                                      int kBr, int nqt, int64_t per_bh, float scale, bf16* __restrict__ dqkv,
                                      int64_t lddqkv) {
  const int pairs = hd >> 1, R = kBlock / kBr;
  const int64_t slot_floats = int64_t(kBr) * hd;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = e / pairs;  // (b H + h) L + t
    const int p = 2 * int(e - row * pairs);
    const int64_t bh = row / L;
    const int t = int(row - bh * L), qt = t / kBr;
    // The key blocks that visit tile qt (attn_bwd_kernel's loop bounds): kb R <= qt and, with a window,
    // qt kBr <= 64 kb + 63 + lw.
    const int kb_last = qt / R;
    int kb = 0;
    if (lw >= 0) {
      const int x = qt * kBr - (kBlock - 1) - lw;
      if (x > 0) kb = (x + kBlock - 1) / kBlock;
    }
    const float* s =
        slots + (bh * per_bh + slot_first(kb, nqt, R) + qt - int64_t(kb) * R) * slot_floats + (t - qt * kBr) * hd + p;
    float2 acc = make_float2(0.f, 0.f);
    for (;; ++kb) {
      const float2 v = *reinterpret_cast<const float2*>(s);
      acc.x += v.x;
      acc.y += v.y;
      if (kb == kb_last) break;
      s += int64_t(nqt - (kb + 1) * R) * slot_floats;  // slot(kb + 1, qt) - slot(kb, qt)
    }
    const int64_t b = bh / H, h = bh - b * H;
    st32(dqkv + (b * L + t) * lddqkv + h * hd + p, pack_bf2(acc.x * scale, acc.y * scale));
  }
}

bool aligned4(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 3u) == 0; }

size_t round_up(size_t n) { return (n + 255) & ~size_t(255); }

// Shared, bounds and alignment checks of the two entry points; returns the effective window (-1 when it
// covers every earlier position, which also keeps the int sums in the kernels small).
int64_t check_args(const char* what, int B, int64_t L, int H, int hd, int64_t left_window) {
  JRT_CHECK(H > 0 && hd > 0 && hd <= kMaxHd && hd % 2 == 0, "{}: {} heads of dim {} (need an even dim <= {})", what, H,
            hd, kMaxHd);
  JRT_CHECK(B <= 65535 && H <= 65535 && L <= INT_MAX / 2, "{}: {} sequences x {} heads x {} rows exceed the grid", what,
            B, H, L);
  return left_window >= L ? -1 : left_window;
}

template <int kHd>
void launch_fwd(const bf16* qkv, int64_t ldqkv, int B, int L, int H, int hd, int lw, float scale, bf16* o, int64_t ldo,
                float* lse, cudaStream_t stream) {
  const dim3 grid(unsigned((L + kBlock - 1) / kBlock), unsigned(H), unsigned(B));
  attn_fwd_kernel<kHd>
      <<<grid, kThreads, fwd_smem<kHd>(), stream>>>(qkv, ldqkv, L, H, hd, lw, scale * kLog2e, o, ldo, lse);
  JRT_CUDA_CHECK(cudaGetLastError());
}

// Opts a kernel into `bytes` of dynamic shared memory (needed above the default 48 KB).
template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  JRT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

// dq slots of one (sequence, head) of L rows with query tiles of kBr rows (slot_first).
int64_t slots_per_head(int64_t L, int kBr) {
  return slot_first((L + kBlock - 1) / kBlock, (L + kBr - 1) / kBr, kBlock / kBr);
}

// The dK / dV kernel's query rows per tile for head dim hd (the kernel the entry points dispatch to).
int bwd_rows_for(int hd) { return hd <= 32 ? bwd_rows<32>() : hd <= 64 ? bwd_rows<64>() : bwd_rows<128>(); }

// Bytes of the dq slots of a backward (SIZE_MAX when absurdly large).
size_t dq_slot_bytes(int B, int64_t L, int H, int hd) {
  const int kBr = bwd_rows_for(hd);
  const int64_t per = slots_per_head(L, kBr);
  const double est = double(B) * H * double(per) * kBr * hd * sizeof(float);
  if (est > 0x1p62) return SIZE_MAX;
  return size_t(B) * size_t(H) * size_t(per) * size_t(kBr) * size_t(hd) * sizeof(float);
}

// The backward takes the dq slots path iff this holds; attention_bwd_workspace_bytes then includes them.
bool use_dq_slots(int B, int64_t L, int H, int hd) { return dq_slot_bytes(B, L, H, hd) <= dq_slot_cap_bytes(); }

// dq slots start at the first 16-byte boundary after the D buffer (the workspace need only be 4-byte aligned).
constexpr size_t kSlotAlign = 16;

template <int kHd>
void launch_bwd(const bf16* qkv, int64_t ldqkv, const bf16* dout, int64_t lddo, const float* lse, const float* D, int B,
                int L, int H, int hd, int lw, float scale, bf16* dqkv, int64_t lddqkv, float* dq_slot,
                cudaStream_t stream) {
  static const bool attr = [] {
    allow_smem(attn_bwd_kernel<kHd, false>, bwd_smem<kHd, false>());
    allow_smem(attn_bwd_kernel<kHd, true>, bwd_smem<kHd, true>());
    allow_smem(attn_bwd_dq_kernel<kHd>, dq_smem<kHd>());
    return true;
  }();
  (void)attr;
  const dim3 grid(unsigned((L + kBlock - 1) / kBlock), unsigned(H), unsigned(B));
  if (dq_slot) {
    constexpr int kBr = bwd_rows<kHd>();
    const int nqt = (L + kBr - 1) / kBr;
    attn_bwd_kernel<kHd, true><<<grid, kThreads, bwd_smem<kHd, true>(), stream>>>(
        qkv, ldqkv, dout, lddo, lse, D, L, H, hd, lw, scale * kLog2e, scale, dqkv, lddqkv, dq_slot, nqt);
    JRT_CUDA_CHECK(cudaGetLastError());
    const int64_t total = int64_t(B) * H * L * (hd / 2), threads = 256;
    const int64_t blocks = std::min<int64_t>((total + threads - 1) / threads, int64_t(1) << 20);
    attn_dq_reduce_kernel<<<unsigned(blocks), unsigned(threads), 0, stream>>>(
        dq_slot, total, L, H, hd, lw, kBr, nqt, slots_per_head(L, kBr), scale, dqkv, lddqkv);
    JRT_CUDA_CHECK(cudaGetLastError());
  } else {
    attn_bwd_kernel<kHd, false><<<grid, kThreads, bwd_smem<kHd, false>(), stream>>>(
        qkv, ldqkv, dout, lddo, lse, D, L, H, hd, lw, scale * kLog2e, scale, dqkv, lddqkv, nullptr, 0);
    JRT_CUDA_CHECK(cudaGetLastError());
    attn_bwd_dq_kernel<kHd><<<grid, kThreads, dq_smem<kHd>(), stream>>>(qkv, ldqkv, dout, lddo, lse, D, L, H, hd, lw,
                                                                        scale * kLog2e, scale, dqkv, lddqkv);
    JRT_CUDA_CHECK(cudaGetLastError());
  }
}

static_assert(fwd_smem<kMaxHd>() <= 48 * 1024, "the forward fits the default shared memory limit");

}  // namespace

void attention_fwd_train_cuda(const bf16* qkv, int64_t ldqkv, int B, int64_t L, int H, int hd, int64_t left_window,
                              float scale, bf16* o, int64_t ldo, float* lse, cudaStream_t stream) {
  if (B <= 0 || L <= 0) return;
  const int lw = int(check_args("attention_fwd_train_cuda", B, L, H, hd, left_window));
  JRT_CHECK(ldqkv % 2 == 0 && ldo % 2 == 0 && aligned4(qkv) && aligned4(o),
            "attention_fwd_train_cuda: rows must be 4-byte aligned (ldqkv {}, ldo {})", ldqkv, ldo);
  if (hd <= 32)
    launch_fwd<32>(qkv, ldqkv, B, int(L), H, hd, lw, scale, o, ldo, lse, stream);
  else if (hd <= 64)
    launch_fwd<64>(qkv, ldqkv, B, int(L), H, hd, lw, scale, o, ldo, lse, stream);
  else
    launch_fwd<128>(qkv, ldqkv, B, int(L), H, hd, lw, scale, o, ldo, lse, stream);
}

// Workspace: D fp32 [B, H, L] (rounded up to 256 bytes), then, when they fit under dq_slot_cap_bytes(), the dq
// slots (slot_first's layout, from the first 16-byte boundary; rounded up to 256 bytes).
size_t attention_bwd_workspace_bytes(int B, int64_t L, int H, int hd) {
  if (B <= 0 || L <= 0 || H <= 0 || hd <= 0) return 0;
  size_t bytes = round_up(size_t(B) * size_t(L) * size_t(H) * sizeof(float));
  if (use_dq_slots(B, L, H, hd)) bytes += round_up(dq_slot_bytes(B, L, H, hd) + kSlotAlign);
  return bytes;
}

void attention_bwd_train_cuda(const bf16* qkv, int64_t ldqkv, const bf16* o, int64_t ldo, const float* lse,
                              const bf16* dout, int64_t lddo, int B, int64_t L, int H, int hd, int64_t left_window,
                              float scale, bf16* dqkv, int64_t lddqkv, void* workspace, size_t workspace_bytes,
                              cudaStream_t stream) {
  if (B <= 0 || L <= 0) return;
  const int lw = int(check_args("attention_bwd_train_cuda", B, L, H, hd, left_window));
  JRT_CHECK(ldqkv % 2 == 0 && ldo % 2 == 0 && lddo % 2 == 0 && lddqkv % 2 == 0 && aligned4(qkv) && aligned4(o) &&
                aligned4(dout) && aligned4(dqkv),
            "attention_bwd_train_cuda: rows must be 4-byte aligned (ldqkv {}, ldo {}, lddo {}, lddqkv {})", ldqkv, ldo,
            lddo, lddqkv);
  JRT_CHECK(workspace != nullptr && aligned4(workspace),
            "attention_bwd_train_cuda: the workspace must be a 4-byte aligned device buffer");
  const int64_t N = int64_t(B) * L;
  float* D = static_cast<float*>(workspace);
  // The slots path whenever the workspace holds the slots (a caller may size it for a larger shape than this
  // call's, on either side of the cap); at least D is required.
  const size_t d_bytes = round_up(size_t(N) * size_t(H) * sizeof(float));
  const size_t slot_bytes = dq_slot_bytes(B, L, H, hd);
  JRT_CHECK(workspace_bytes >= d_bytes, "attention_bwd_train_cuda: workspace of {} bytes, at least {} needed",
            workspace_bytes, d_bytes);
  float* dq_slot = nullptr;
  if (slot_bytes != SIZE_MAX && workspace_bytes >= d_bytes + round_up(slot_bytes + kSlotAlign)) {
    const uintptr_t p = reinterpret_cast<uintptr_t>(workspace) + round_up(size_t(N) * size_t(H) * sizeof(float));
    dq_slot = reinterpret_cast<float*>((p + kSlotAlign - 1) & ~uintptr_t(kSlotAlign - 1));
  }
  {
    const int64_t warps = N * H, per_block = 8;
    const int64_t blocks = std::min<int64_t>((warps + per_block - 1) / per_block, int64_t(1) << 16);
    attn_dsum_kernel<<<unsigned(blocks), unsigned(per_block * 32), 0, stream>>>(o, ldo, dout, lddo, N, int(L), H, hd,
                                                                                D);
    JRT_CUDA_CHECK(cudaGetLastError());
  }
  if (hd <= 32)
    launch_bwd<32>(qkv, ldqkv, dout, lddo, lse, D, B, int(L), H, hd, lw, scale, dqkv, lddqkv, dq_slot, stream);
  else if (hd <= 64)
    launch_bwd<64>(qkv, ldqkv, dout, lddo, lse, D, B, int(L), H, hd, lw, scale, dqkv, lddqkv, dq_slot, stream);
  else
    launch_bwd<128>(qkv, ldqkv, dout, lddo, lse, D, B, int(L), H, hd, lw, scale, dqkv, lddqkv, dq_slot, stream);
}

}  // namespace jrt::ops::cuda
