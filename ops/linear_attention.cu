// ops/linear_attention.cu — Taylor linear attention prefill kernels (see linear_attention_cuda.h).
// Shapes: q, k [T, H, 16], v, o [T, H, dv] bf16; state [B, H, 160, dv] + z [B, H, 160] fp32.
//
// Kernel families. v7 (namespace v4::v7, further down) runs every call without decay: 8-warp CTAs over
// 64-column d_v slices, raw mma.sync + ldmatrix, fp32 state in registers, four readout and four update
// warps; v5 (namespace v4: the same chunk cut into tiles over all eight warps) and v6 (namespace v4::wg,
// warpgroup MMA) are opt-in kernel-lab variants. The v3 kernels just below keep the decay variant (gamma): one
// CTA = (32-column slice of d_v, sequence b, head h,
// segment s); 4 warps; 64-token chunks:
//   scores  A = Q K^T                      (wmma bf16, fp32 acc)   -> w = 1 + s/4 + s^2/32, causal mask,
//                                                                    decay gamma^(i-j), row sums -> den
//   intra   Ob = P V                        (wmma)
//   inter   O += diag(gamma^(i+1)) F(Q) S   (wmma into the same accumulators; S as a bf16 copy)
//   den    += f(q_i) . z                    (fp32, while building the features)
//   out     y = dt * O / (den + eps)
//   state   S = gamma^Lc S + F(K)^T diag(gamma^(Lc-1-j)) V ;  z += sum_j f(k_j)
// The fp32 state slice lives in registers (wmma accumulator fragments, 5 tiles per warp) for the
// whole sequence; only its bf16 copy, the MMA operand of the readout, is in shared memory.
#include <cuda_bf16.h>
#include <mma.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>

#include "core/cuda_util.h"
#include "ops/cuda_common.cuh"
#include "ops/linear_attention_cuda.h"
#include "ops/mma.cuh"

namespace jrt::ops {
namespace {

using namespace nvcuda;
using bf16 = __nv_bfloat16;

constexpr int C = 64;        // chunk
constexpr int W = 32;        // d_v slice per CTA
constexpr int F = kLaFeat;   // 160 padded features
constexpr int NT = 128;      // threads
constexpr int LDQ = 24;      // smem leading dims (padded)
constexpr int LDV = W + 8;
constexpr int LDF = F + 8;
constexpr int LDSB = W + 8;  // bf16 state
constexpr int LDA = C + 4;   // fp32 scores
constexpr int LDP = C + 8;
constexpr int LDO = W + 4;

constexpr int kTilesPerWarp = (F / 16) * (W / 16) / (NT / 32);  // 5 state tiles per warp

struct __align__(128) Smem {
  bf16 q[C * LDQ];
  bf16 k[C * LDQ];
  bf16 v[C * LDV];
  bf16 feat[C * LDF];     // F(Q) for the readout, then F(K) for the update
  bf16 stb[F * LDSB];     // bf16 copy of the state slice (wmma operand)
  union {
    float a[C * LDA];     // scores
    float o[C * LDO];     // outputs
    float stage[NT / 32][256];  // per-warp 16x16 staging of state tiles
  } u;
  bf16 p[C * LDP];
  float z[F];
  float den[C];
  float dts[C];
};

using StateFrags = wmma::fragment<wmma::accumulator, 16, 16, 16, float>[kTilesPerWarp];

__device__ __forceinline__ void tile_of(int i, int* tr, int* tc) {
  const int t = int(threadIdx.x / 32) + (NT / 32) * i;
  *tr = t / (W / 16);
  *tc = t % (W / 16);
}

// f(x) for one 16-wide bf16 row into 160 bf16 features, times `scale`. Two threads per row: half 0
// writes the constant, linear, square and the pairs (i < 4, j > i); half 1 the pairs with i >= 4 and
// the zero padding. All indices are compile-time constants after unrolling, so x stays in registers.
// With z non-null, returns this thread's share of f(x) . z computed in fp32 from the unscaled features.
__device__ __forceinline__ float row_features(const bf16* xr, bf16* out, int half, bool valid, float scale,
                                              const float* z) {
  float x[16];
#pragma unroll
  for (int i = 0; i < 16; ++i) x[i] = valid ? __bfloat162float(xr[i]) : 0.0f;
  float dot = 0.0f;
  auto put = [&](int f, float val) {
    out[f] = __float2bfloat16(val * scale);
    if (z) dot += val * z[f];
  };
  if (half == 0) {
    put(0, valid ? 1.0f : 0.0f);
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      put(1 + i, 0.5f * x[i]);
      put(17 + i, x[i] * x[i] * 0.17677669529663687f);
    }
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = i + 1; j < 16; ++j) put(33 + i * (31 - i) / 2 + (j - i - 1), 0.25f * x[i] * x[j]);
  } else {
#pragma unroll
    for (int i = 4; i < 15; ++i)
#pragma unroll
      for (int j = i + 1; j < 16; ++j) put(33 + i * (31 - i) / 2 + (j - i - 1), 0.25f * x[i] * x[j]);
#pragma unroll
    for (int f = 153; f < F; ++f) out[f] = __float2bfloat16(0.0f);
  }
  return dot;
}

// Fills sm.feat with f(x_t) for the chunk's rows (zero rows past the valid length). For the queries
// (with_den): rows are scaled by gamma^(t+1) and sm.den[t] = f(q_t) . z (the inter-chunk denominator).
__device__ void build_features(Smem& sm, const bf16* x, int valid, bool with_den = false, float log2g = 0.0f) {
  const int t = threadIdx.x / 2, half = threadIdx.x % 2;  // NT == 2 * C
  const float scale = (with_den && log2g != 0.0f) ? exp2f(log2g * float(t + 1)) : 1.0f;
  float d = row_features(x + t * LDQ, sm.feat + t * LDF, half, t < valid, scale, with_den ? sm.z : nullptr);
  if (with_den) {
    d += __shfl_xor_sync(0xffffffffu, d, 1);
    if (half == 0) sm.den[t] = d;
  }
}

struct Seq {
  int start, len;
};

__device__ __forceinline__ float pow_gamma(float log2g, int n) { return exp2f(log2g * float(n)); }

// Loads q/k (16 wide) and the v slice of chunk rows [t0, t0 + valid) into smem (zero-filled tail).
__device__ void load_chunk(Smem& sm, const LaCudaArgs& a, int64_t row0, int valid, int h, int col0, bool want_q) {
  const int ldq = int(a.ldq ? a.ldq : int64_t(a.H) * 16), ldk = int(a.ldk ? a.ldk : int64_t(a.H) * 16);
  const int ldv = int(a.ldv ? a.ldv : int64_t(a.H) * a.dv);
  // q, k: 64 rows x 16 = 2 vectors of 8 bf16 per row.
  for (int idx = threadIdx.x; idx < C * 2 * 2; idx += NT) {
    const int which = idx / (C * 2), r = (idx / 2) % C, half = idx % 2;
    if (which == 0 && !want_q) continue;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r < valid) {
      const bf16* src = (which ? a.k : a.q) + (row0 + r) * (which ? ldk : ldq) + h * 16 + half * 8;
      val = *reinterpret_cast<const uint4*>(src);
    }
    *reinterpret_cast<uint4*>((which ? sm.k : sm.q) + r * LDQ + half * 8) = val;
  }
  for (int idx = threadIdx.x; idx < C * (W / 8); idx += NT) {
    const int r = idx / (W / 8), c8 = (idx % (W / 8)) * 8;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r < valid && col0 + c8 < a.dv)
      val = *reinterpret_cast<const uint4*>(a.v + (row0 + r) * ldv + int64_t(h) * a.dv + col0 + c8);
    *reinterpret_cast<uint4*>(sm.v + r * LDV + c8) = val;
  }
}

// Calls fn(row, column within the slice, value) for every element of this warp's state tiles, each
// tile moved from its fragment through the warp's shared-memory staging.
template <class Fn>
__device__ void each_state_value(Smem& sm, StateFrags& sf, Fn&& fn) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* stage = sm.u.stage[warp];
#pragma unroll
  for (int i = 0; i < kTilesPerWarp; ++i) {
    int tr, tc;
    tile_of(i, &tr, &tc);
    wmma::store_matrix_sync(stage, sf[i], 16, wmma::mem_row_major);
    __syncwarp();
    for (int e = lane; e < 256; e += 32) fn(tr * 16 + e / 16, tc * 16 + e % 16, stage[e]);
    __syncwarp();
  }
}

// Copies the register state to its bf16 shared-memory copy.
__device__ void state_to_stb(Smem& sm, StateFrags& sf) {
  each_state_value(sm, sf, [&](int r, int c, float v) { sm.stb[r * LDSB + c] = __float2bfloat16(v); });
}

// S = gamma^valid S + F(K)^T diag(gamma^(valid-1-j)) V; z += sum F(K). sm.feat must hold F(K); v is
// scaled in place when decaying.
__device__ void update_state(Smem& sm, StateFrags& sf, int valid, float log2g, bool decay) {
  if (decay) {
    for (int idx = threadIdx.x; idx < C * W; idx += NT) {
      const int r = idx / W, c = idx % W;
      float s = r < valid ? pow_gamma(log2g, valid - 1 - r) : 0.0f;
      sm.v[r * LDV + c] = __float2bfloat16(__bfloat162float(sm.v[r * LDV + c]) * s);
    }
    __syncthreads();
  }
  const float gC = decay ? pow_gamma(log2g, valid) : 1.0f;
#pragma unroll
  for (int i = 0; i < kTilesPerWarp; ++i) {
    int tr, tc;
    tile_of(i, &tr, &tc);
    if (decay)
      for (int e = 0; e < sf[i].num_elements; ++e) sf[i].x[e] *= gC;
#pragma unroll
    for (int kb = 0; kb < C / 16; ++kb) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::col_major> fa;  // F(K)^T
      wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb;  // V
      wmma::load_matrix_sync(fa, sm.feat + kb * 16 * LDF + tr * 16, LDF);
      wmma::load_matrix_sync(fb, sm.v + kb * 16 * LDV + tc * 16, LDV);
      wmma::mma_sync(sf[i], fa, fb, sf[i]);
    }
  }
  // z += column sums of F(K) (fp32 sums of the bf16 features).
  for (int f = threadIdx.x; f < F; f += NT) {
    float acc_z = 0.0f;
    for (int t = 0; t < valid; ++t) acc_z += __bfloat162float(sm.feat[t * LDF + f]);
    sm.z[f] += acc_z;
  }
  state_to_stb(sm, sf);
  __syncthreads();
}

__device__ Seq seq_of(const LaCudaArgs& a, int b) {
  Seq s;
  s.start = a.cu_seqlens[b];
  s.len = a.cu_seqlens[b + 1] - s.start;
  return s;
}

// Initial state (S [160, dv] fp32 at this head, or zero) into the fragments, the bf16 copy and z.
__device__ void load_state(Smem& sm, StateFrags& sf, const float* S, const float* z, int col0, int dv) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* stage = sm.u.stage[warp];
#pragma unroll
  for (int i = 0; i < kTilesPerWarp; ++i) {
    int tr, tc;
    tile_of(i, &tr, &tc);
    for (int e = lane; e < 256; e += 32) {
      const int r = tr * 16 + e / 16, c = col0 + tc * 16 + e % 16;
      const float val = (S && c < dv) ? S[int64_t(r) * dv + c] : 0.0f;
      stage[e] = val;
      sm.stb[r * LDSB + tc * 16 + e % 16] = __float2bfloat16(val);
    }
    __syncwarp();
    wmma::load_matrix_sync(sf[i], stage, 16, wmma::mem_row_major);
    __syncwarp();
  }
  for (int f = threadIdx.x; f < F; f += NT) sm.z[f] = z ? z[f] : 0.0f;
  __syncthreads();
}

__device__ void store_state(Smem& sm, StateFrags& sf, float* S, float* z, int col0, int dv, bool write_z) {
  each_state_value(sm, sf, [&](int r, int c, float v) {
    if (col0 + c < dv) S[int64_t(r) * dv + col0 + c] = v;
  });
  if (write_z)
    for (int f = threadIdx.x; f < F; f += NT) z[f] = sm.z[f];
}

// Pass 1 (segment split only): local state of each segment. grid (slices, B*H, nseg).
__global__ void __launch_bounds__(NT) seg_state_kernel(LaCudaArgs a, int seg_len, int nseg, float* segS, float* segZ) {
  extern __shared__ __align__(128) unsigned char raw[];
  Smem& sm = *reinterpret_cast<Smem*>(raw);
  const int col0 = blockIdx.x * W, b = blockIdx.y / a.H, h = blockIdx.y % a.H, s = blockIdx.z;
  const Seq sq = seq_of(a, b);
  const int beg = s * seg_len, end = min(sq.len, beg + seg_len);
  if (beg >= sq.len || s == nseg - 1) return;  // the last segment's local state is never needed
  const float log2g = a.gamma ? log2f(a.gamma[h]) : 0.0f;
  StateFrags sf;
  load_state(sm, sf, nullptr, nullptr, col0, a.dv);
  for (int t0 = beg; t0 < end; t0 += C) {
    const int valid = min(C, end - t0);
    load_chunk(sm, a, sq.start + t0, valid, h, col0, false);
    __syncthreads();
    build_features(sm, sm.k, valid);
    __syncthreads();
    update_state(sm, sf, valid, log2g, a.gamma != nullptr);
  }
  const int64_t base = (int64_t(blockIdx.y) * nseg + s);
  store_state(sm, sf, segS + base * F * a.dv, segZ + base * F, col0, a.dv, blockIdx.x == 0);
}

// Pass 2: exclusive scan over segments -> initial state of every segment. One thread per state element.
__global__ void seg_scan_kernel(LaCudaArgs a, int seg_len, int nseg, float* segS, float* segZ) {
  const int bh = blockIdx.y, b = bh / a.H, h = bh % a.H;
  const int per = F * a.dv + F;
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= per) return;
  const int len = a.cu_seqlens[b + 1] - a.cu_seqlens[b];
  const bool isz = e >= F * a.dv;
  const float log2g = (a.gamma && !isz) ? log2f(a.gamma[h]) : 0.0f;
  float run = 0.0f;
  if (isz)
    run = a.z0 ? a.z0[int64_t(bh) * F + (e - F * a.dv)] : 0.0f;
  else
    run = a.S0 ? a.S0[int64_t(bh) * F * a.dv + e] : 0.0f;
  for (int s = 0; s < nseg; ++s) {
    float* slot = isz ? segZ + (int64_t(bh) * nseg + s) * F + (e - F * a.dv) : segS + (int64_t(bh) * nseg + s) * F * a.dv + e;
    const int beg = s * seg_len;
    if (beg >= len) break;
    const float local = *slot;
    *slot = run;  // initial state of segment s
    const int l = min(len - beg, seg_len);
    run = (a.gamma && !isz ? exp2f(log2g * float(l)) : 1.0f) * run + local;
  }
}

// Encoder split: S_out / z_out += the segments' local states, added in segment order. One thread per
// state element.
__global__ void seg_sum_kernel(LaCudaArgs a, int seg_len, int nseg, const float* segS, const float* segZ) {
  const int bh = blockIdx.y, b = bh / a.H;
  const int per = F * a.dv + F;
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= per) return;
  const int len = a.cu_seqlens[b + 1] - a.cu_seqlens[b];
  const bool isz = e >= F * a.dv;
  float* dst = isz ? a.z_out + int64_t(bh) * F + (e - F * a.dv) : a.S_out + int64_t(bh) * F * a.dv + e;
  float run = *dst;
  for (int s = 0; s < nseg && s * seg_len < len; ++s)
    run += isz ? segZ[(int64_t(bh) * nseg + s) * F + (e - F * a.dv)] : segS[(int64_t(bh) * nseg + s) * F * a.dv + e];
  *dst = run;
}

// Pass 3: outputs. grid (slices, B*H, nseg). With nseg == 1 the initial state is S0 (or zero).
__global__ void __launch_bounds__(NT) chunk_kernel(LaCudaArgs a, int seg_len, int nseg, const float* segS, const float* segZ) {
  extern __shared__ __align__(128) unsigned char raw[];
  Smem& sm = *reinterpret_cast<Smem*>(raw);
  const int col0 = blockIdx.x * W, b = blockIdx.y / a.H, h = blockIdx.y % a.H, s = blockIdx.z;
  const int warp = threadIdx.x / 32;
  const Seq sq = seq_of(a, b);
  const int beg = s * seg_len, end = min(sq.len, beg + seg_len);
  if (beg >= sq.len) return;
  const bool decay = a.gamma != nullptr;
  const float log2g = decay ? log2f(a.gamma[h]) : 0.0f;
  const int ldo = int(a.ldo ? a.ldo : int64_t(a.H) * a.dv);
  StateFrags sf;
  if (nseg > 1) {
    const int64_t base = int64_t(blockIdx.y) * nseg + s;
    load_state(sm, sf, segS + base * F * a.dv, segZ + base * F, col0, a.dv);
  } else {
    load_state(sm, sf, a.S0 ? a.S0 + int64_t(blockIdx.y) * F * a.dv : nullptr,
               a.z0 ? a.z0 + int64_t(blockIdx.y) * F : nullptr, col0, a.dv);
  }
  for (int t0 = beg; t0 < end; t0 += C) {
    const int valid = min(C, end - t0);
    load_chunk(sm, a, sq.start + t0, valid, h, col0, true);
    for (int r = threadIdx.x; r < C; r += NT)
      sm.dts[r] = (a.dt && r < valid) ? a.dt[(int64_t(sq.start) + t0 + r) * a.H + h] : 1.0f;
    __syncthreads();
    build_features(sm, sm.q, valid, true, log2g);
    // Scores: warp w owns query rows [16w, 16w+16); key tiles above the diagonal are skipped.
    for (int tc = 0; tc <= warp; ++tc) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fq;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fk;
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
      wmma::load_matrix_sync(fq, sm.q + warp * 16 * LDQ, LDQ);
      wmma::load_matrix_sync(fk, sm.k + tc * 16 * LDQ, LDQ);
      wmma::mma_sync(acc, fq, fk, acc);
      wmma::store_matrix_sync(sm.u.a + warp * 16 * LDA + tc * 16, acc, LDA, wmma::mem_row_major);
    }
    __syncthreads();
    // Weights, mask, decay, row sums: two threads per row, 32 columns each.
    {
      const int r = threadIdx.x / 2, half = threadIdx.x % 2;
      float rs = 0.0f;
      for (int c = half * 32; c < half * 32 + 32; ++c) {
        float w = 0.0f;
        if (c <= r && r < valid) {
          const float s = sm.u.a[r * LDA + c] * 0.25f;
          w = 1.0f + s + 0.5f * s * s;
          rs += w;
          if (decay) w *= pow_gamma(log2g, r - c);
        }
        sm.p[r * LDP + c] = __float2bfloat16(w);
      }
      rs += __shfl_xor_sync(0xffffffffu, rs, 1);
      if (half == 0) sm.den[r] += rs;
    }
    __syncthreads();
    // O = P V (lower-triangular P: k blocks <= row block) + F(Q) S, one accumulator per column tile.
    for (int tc = 0; tc < W / 16; ++tc) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
      for (int kb = 0; kb <= warp; ++kb) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fp;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fv;
        wmma::load_matrix_sync(fp, sm.p + warp * 16 * LDP + kb * 16, LDP);
        wmma::load_matrix_sync(fv, sm.v + kb * 16 * LDV + tc * 16, LDV);
        wmma::mma_sync(acc, fp, fv, acc);
      }
#pragma unroll
      for (int kb = 0; kb < F / 16; ++kb) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> ff;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fs;
        wmma::load_matrix_sync(ff, sm.feat + warp * 16 * LDF + kb * 16, LDF);
        wmma::load_matrix_sync(fs, sm.stb + kb * 16 * LDSB + tc * 16, LDSB);
        wmma::mma_sync(acc, ff, fs, acc);
      }
      // u.o overlaps u.a, whose scores every warp finished reading before the barrier above.
      wmma::store_matrix_sync(sm.u.o + warp * 16 * LDO + tc * 16, acc, LDO, wmma::mem_row_major);
    }
    __syncthreads();
    // Output rows.
    for (int idx = threadIdx.x; idx < valid * (W / 2); idx += NT) {
      const int r = idx / (W / 2), c = (idx % (W / 2)) * 2;
      if (col0 + c >= a.dv) continue;
      const float scale = sm.dts[r] / (sm.den[r] + a.eps);
      const float y0 = sm.u.o[r * LDO + c] * scale;
      const float y1 = sm.u.o[r * LDO + c + 1] * scale;
      *reinterpret_cast<__nv_bfloat162*>(a.o + (int64_t(sq.start) + t0 + r) * ldo + int64_t(h) * a.dv + col0 + c) =
          __floats2bfloat162_rn(y0, y1);
    }
    __syncthreads();
    // State update with F(K) (overwrites the F(Q) buffer).
    build_features(sm, sm.k, valid);
    __syncthreads();
    update_state(sm, sf, valid, log2g, decay);
  }
  if (a.S_out && end == sq.len)
    store_state(sm, sf, a.S_out + int64_t(blockIdx.y) * F * a.dv, a.z_out + int64_t(blockIdx.y) * F, col0, a.dv,
                blockIdx.x == 0);
}

// grid B*H, block 256: state column pairs x feature-row groups (each thread updates rows f = grp,
// grp + groups, ... of its column pair and keeps a partial readout; the groups are summed in shared
// memory). Features in shared memory, fp32: warp 0 builds f(q), warp 1 f(k), five features per lane.
// Bandwidth-bound by design: the state is read and written once. The first rows of each thread's state
// are loaded before the feature build, so the CTA has loads in flight while its prologue runs (a CTA
// lives a few microseconds; with the loads only after the features, its bytes in flight sat idle for
// the prologue's length).
constexpr int kDecThreads = 256, kDecMaxDv = 256;
// The canonical order of the 120 pair features x_i x_j (i < j) at 33 .. 152: feature pair_index(i, j),
// and back (pair_i / pair_j, compile time).
constexpr int pair_index(int i, int j) { return 33 + i * (31 - i) / 2 + (j - i - 1); }  // i < j
constexpr int pair_i(int f) {
  int p = f - 33, i = 0;
  while (p >= 15 - i) p -= 15 - i, ++i;
  return i;
}
constexpr int pair_j(int f) { return f - pair_index(pair_i(f), pair_i(f) + 1) + pair_i(f) + 1; }
struct DecPairs {
  uint8_t i[F], j[F];
};
constexpr DecPairs make_dec_pairs() {
  DecPairs t{};
  for (int f = 33; f < 153; ++f) t.i[f] = uint8_t(pair_i(f)), t.j[f] = uint8_t(pair_j(f));
  return t;
}
__constant__ DecPairs c_dec_pairs = make_dec_pairs();

// Feature f of x (fp32; the same products in the same order as ops/linear_attention.cpp's feature map).
__device__ __forceinline__ float dec_feature(const float (&xv)[16], int f) {
  if (f == 0) return 1.0f;
  if (f < 17) return 0.5f * xv[f - 1];
  if (f < 33) return xv[f - 17] * xv[f - 17] * 0.17677669529663687f;
  if (f < 153) return 0.25f * xv[c_dec_pairs.i[f]] * xv[c_dec_pairs.j[f]];
  return 0.0f;
}

// The decode step's inputs: item bh = (sequence b, head h) reads q at q + b ldq + 16 h, k likewise, v at
// v + b ldv + dv h (row strides let q, k and v be column ranges of one fused projection's output).
struct DecIn {
  const bf16 *q, *k, *v;
  int64_t ldq, ldk, ldv;
  int H;
  __device__ __forceinline__ const bf16* qrow(int bh) const { return q + int64_t(bh / H) * ldq + (bh % H) * 16; }
  __device__ __forceinline__ const bf16* krow(int bh) const { return k + int64_t(bh / H) * ldk + (bh % H) * 16; }
  __device__ __forceinline__ const bf16* vrow(int bh, int dv) const {
    return v + int64_t(bh / H) * ldv + int64_t(bh % H) * dv;
  }
};

// f(q) into fq and f(k) into fk (fp32) from the 16 values at q and k (global or shared memory): warp 0 builds
// f(q), warp 1 f(k), five features per lane.
__device__ __forceinline__ void dec_features(const bf16* q, const bf16* k, float* fq, float* fk) {
  if (threadIdx.x < 64) {
    const bf16* x = threadIdx.x < 32 ? q : k;
    float* out = threadIdx.x < 32 ? fq : fk;
    float xv[16];
#pragma unroll
    for (int i = 0; i < 16; ++i) xv[i] = __bfloat162float(x[i]);
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int r = 0; r < F / 32; ++r) out[lane + 32 * r] = dec_feature(xv, lane + 32 * r);
  }
}
// z_out = z_in + f(k) (the token attends to itself; z_in may be z_out or a copy) and each warp's share of
// f(q).z into red[warp].
__device__ __forceinline__ void dec_z_den(const float* z_in, float* z_out, const float* fq, const float* fk,
                                          float* red) {
  float d = 0.0f;
  for (int f = threadIdx.x; f < F; f += blockDim.x) {
    const float zf = z_in[f] + fk[f];
    z_out[f] = zf;
    d += fq[f] * zf;
  }
  d = cuda::warp_sum(d);
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = d;
}
// y = dts num / (den + eps), num summed over the row groups' partial readouts (after a barrier); dts: the
// item's output scale dt (1 without).
template <int kMaxDv>
__device__ __forceinline__ void dec_output(bf16* y, int64_t bh, int dv, int groups, const float (*part)[kMaxDv],
                                           const float* red, float dts, float eps) {
  float den = 0.0f;
  for (int w = 0; w < int(blockDim.x / 32); ++w) den += red[w];
  const float scale = dts / (den + eps);
  for (int e = threadIdx.x; e < dv; e += blockDim.x) {
    float num = 0.0f;
    for (int gi = 0; gi < groups; ++gi) num += part[gi][e];
    y[bh * dv + e] = __float2bfloat16(num * scale);
  }
}

// One state row of a column pair: S = g S + f_k v (stored to dst), num += f_q S.
__device__ __forceinline__ void dec_row(float2 sv, float2 ve, float g, float fkf, float fqf, float* dst, float2& num) {
  const float2 st = make_float2(g * sv.x + fkf * ve.x, g * sv.y + fkf * ve.y);
  *reinterpret_cast<float2*>(dst) = st;
  num.x += fqf * st.x;
  num.y += fqf * st.y;
}

__global__ void __launch_bounds__(kDecThreads)
    decode_step_kernel(DecIn in, bf16* y, float* S, float* z, int dv, const float* gamma, const float* dt,
                       float eps) {
  cuda::pdl_wait();
  cuda::pdl_launch_dependents();
  __shared__ float fq[F], fk[F], red[8], part[8][kDecMaxDv];
  const int bh = blockIdx.x, h = bh % in.H;
  float* Sb = S + int64_t(bh) * F * dv;
  // Each thread owns column pairs (8-byte state accesses): 32 pair-columns x 8 row groups for d_v <= 64,
  // else 64 x 4 (d_v = 112: 56 of 64 pair-columns busy, one pass, where single columns took two).
  const int pairs = dv / 2, cols = pairs <= 32 ? 32 : 64, groups = int(blockDim.x) / cols;
  const int col = threadIdx.x % cols, grp = threadIdx.x / cols;
  // Groups of kU state rows: every load of the group is issued before the first store. Interleaved, the
  // compiler cannot prove row f + groups (offset f * dv + e, dv a run-time value) does not alias the store
  // to row f, and keeps one load in flight per thread. Same order of sums as before.
  constexpr int kU = 8;
  float2 pre[kU];  // the first group of the first column pair, loaded before the features
#pragma unroll
  for (int u = 0; u < kU; ++u) {
    const int f = grp + u * groups;
    pre[u] = col < pairs && f < 153 ? *reinterpret_cast<const float2*>(Sb + int64_t(f) * dv + 2 * col)
                                    : make_float2(0.0f, 0.0f);
  }
  dec_features(in.qrow(bh), in.krow(bh), fq, fk);
  __syncthreads();
  dec_z_den(z + int64_t(bh) * F, z + int64_t(bh) * F, fq, fk, red);
  const float g = gamma ? gamma[h] : 1.0f;
  const bf16* vb = in.vrow(bh, dv);
  for (int p = col; p < pairs; p += cols) {
    const int e = 2 * p;
    const float2 ve = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(vb + e));
    float2 num = make_float2(0.0f, 0.0f);
    for (int f0 = grp; f0 < 153; f0 += kU * groups) {
      float2 sv[kU];
      if (p == col && f0 == grp) {
#pragma unroll
        for (int u = 0; u < kU; ++u) sv[u] = pre[u];
      } else {
#pragma unroll
        for (int u = 0; u < kU; ++u) {
          const int f = f0 + u * groups;
          sv[u] = f < 153 ? *reinterpret_cast<const float2*>(Sb + int64_t(f) * dv + e) : make_float2(0.0f, 0.0f);
        }
      }
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        const int f = f0 + u * groups;
        if (f < 153) dec_row(sv[u], ve, g, fk[f], fq[f], Sb + int64_t(f) * dv + e, num);
      }
    }
    part[grp][e] = num.x;
    part[grp][e + 1] = num.y;
  }
  __syncthreads();
  dec_output<kDecMaxDv>(y, bh, dv, groups, part, red, dt ? dt[bh] : 1.0f, eps);
}

// v8/v9 of the decode step (dev/README.md): persistent CTAs over the (sequence, head) items, grid-stride. The
// per-head kernel above reads and writes each state in the same few microseconds of a short-lived CTA, so an
// SM's read traffic stops while its CTAs compute and store (ncu: DRAM 58% busy at B = 128). Here item n + 1
// arrives by bulk copies (TMA, 1-D) into the other shared-memory slot while item n is updated from its slot and
// stored: its state [153, dv] (contiguous) and, since v9, its inputs too (z [160], q, k [16], v [dv]), so an
// item's work waits on no global load (v8 read them from global memory in three dependent round trips, each
// ~1-2 us while the state stream loads the memory system). The same products and sums in the same order as
// the per-head kernel. Slot layout (every part 16-byte sized and aligned): state 153 dv floats, z 160 floats,
// q 16, k 16 and v dv bf16 (stream_slot_bytes); two slots, as many CTAs per SM as they allow.
constexpr int kStreamMaxDv = 128;
__host__ __device__ constexpr uint32_t stream_slot_bytes(int dv) {
  return uint32_t(153 * dv + 160) * 4u + uint32_t(32 + dv) * 2u;
}
__global__ void __launch_bounds__(kDecThreads, 1)
    decode_stream_kernel(DecIn in, bf16* y, float* S, float* z, int items, int dv, const float* gamma,
                         const float* dt, float eps) {
  extern __shared__ __align__(16) float slots[];  // [2][stream_slot_bytes(dv) / 4]
  __shared__ float fq[F], fk[F], red[8], part[8][kStreamMaxDv];
  __shared__ __align__(8) uint64_t bars[2];
  const uint32_t slot_bytes = stream_slot_bytes(dv), state_bytes = uint32_t(153 * dv) * 4u;
  const int slot_floats = int(slot_bytes / 4u);
  const uint32_t bar0 = cuda::smem_addr(&bars[0]);
  const int pairs = dv / 2, cols = pairs <= 32 ? 32 : 64, groups = kDecThreads / cols;
  const int col = threadIdx.x % cols, grp = threadIdx.x / cols;
  if (threadIdx.x == 0) {
    cuda::mbar_init(bar0, 1);
    cuda::mbar_init(bar0 + 8, 1);
    cuda::fence_mbarrier_init();
  }
  __syncthreads();
  // The states are written by this kernel's previous step and the inputs by the GEMM before it (the kernel
  // right before may also be a prefill that writes the states): nothing is read before the wait.
  cuda::pdl_wait();
  cuda::pdl_launch_dependents();
  auto fetch = [&](int item, int s) {
    float* base = slots + s * slot_floats;
    const uint32_t bar = bar0 + 8 * s;
    cuda::mbar_expect(bar, slot_bytes);
    cuda::bulk_load(cuda::smem_addr(base), S + int64_t(item) * F * dv, state_bytes, bar);
    cuda::bulk_load(cuda::smem_addr(base + 153 * dv), z + int64_t(item) * F, 160 * 4, bar);
    const uint32_t in0 = cuda::smem_addr(base + 153 * dv + 160);
    cuda::bulk_load(in0, in.qrow(item), 32, bar);
    cuda::bulk_load(in0 + 32, in.krow(item), 32, bar);
    cuda::bulk_load(in0 + 64, in.vrow(item, dv), uint32_t(dv) * 2u, bar);
  };
  if (threadIdx.x == 0 && int(blockIdx.x) < items) fetch(int(blockIdx.x), 0);
  int n = 0;
  for (int it = int(blockIdx.x); it < items; it += int(gridDim.x), ++n) {
    const int cur = n & 1;
    if (threadIdx.x == 0 && it + int(gridDim.x) < items) {
      cuda::fence_proxy_async();  // the other slot's reads (item n - 1, before the last barrier) come first
      fetch(it + int(gridDim.x), cur ^ 1);
    }
    const float g = gamma ? gamma[it % in.H] : 1.0f;
    const float dts = dt ? dt[it] : 1.0f;  // issued early: its latency overlaps the wait
    const float* Ss = slots + cur * slot_floats;
    const float* zs = Ss + 153 * dv;
    const bf16* ins = reinterpret_cast<const bf16*>(zs + 160);  // q [16], k [16], v [dv]
    cuda::mbar_wait(bar0 + 8 * cur, (n >> 1) & 1);
    dec_features(ins, ins + 16, fq, fk);
    __syncthreads();
    dec_z_den(zs, z + int64_t(it) * F, fq, fk, red);
    if (col < pairs) {
      const int e = 2 * col;
      float* Sg = S + int64_t(it) * F * dv + e;
      const float2 ve = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(ins + 32 + e));
      float2 num = make_float2(0.0f, 0.0f);
#pragma unroll 8
      for (int f = grp; f < 153; f += groups) {
        dec_row(*reinterpret_cast<const float2*>(Ss + f * dv + e), ve, g, fk[f], fq[f], Sg + int64_t(f) * dv, num);
      }
      part[grp][e] = num.x;
      part[grp][e + 1] = num.y;
    }
    __syncthreads();
    dec_output<kStreamMaxDv>(y, it, dv, groups, part, red, dts, eps);
    __syncthreads();  // fq, fk, red, part and this item's slot are free again
  }
}

// ---------------------------------------------------------------------------------------------------
// v4/v5 (the default when there is no decay; dev/README.md has the history): one CTA of 8 warps per
// (64-column d_v slice, sequence, head, segment), raw mma.sync m16n8k16 with ldmatrix operands, cp.async
// double-buffered q / k / v chunks of 64 tokens.
//   features warps 0-3 build F(Q), 4-7 F(K), a warp-uniform quarter of the 160 features each, two tokens
//            per thread, stored transposed [f][t] as bf16 pairs (one 128 B wavefront per warp store)
//   readout  warp (rg = w % 4, ch = w / 4): query rows 16 rg .., output columns 32 ch ..; per 16-key
//            block: s = Q K^T, w = 1 + s/4 + s^2/32 (causal mask on the diagonal block), den_intra =
//            rowsum(w) in fp32, O += P V with P from the accumulators; then O += F(Q) S_bf16 and
//            y = dt O / (den + eps)
//   update   warp (mh = w % 2, ng = w / 2): S^T[32 mh .., 40 ng ..] += V^T F(K), fp32 accumulators that
//            live in registers for the whole segment (40 per thread)
//   z        kept as the keys' exact fp32 Gram sums (Z0 = count, Z1 = sum k, Z2 = sum k k^T: warp 0, on
//            the tensor cores with a ones column for Z1); f(q).z = Z0 + q.Z1/4 + q^T Z2 q / 32 in fp32
// Two barriers per chunk: (1) chunk landed -> features built, the bf16 state copy written from the
// registers, den_inter computed; (2) readout + update. The state layout in and out is the canonical
// 160-feature one (S [160, dv], z [160]), converted at the segment's ends only.
// Segment length (a multiple of the 64-token chunk) and segment count for a.max_len: a.segment_len when
// set, else the count nseg_auto(SM count) gives (each kernel family has its own rule).
template <class Auto>
int segment_split(const LaCudaArgs& a, int* seg_len, Auto nseg_auto) {
  int sl = a.segment_len;
  if (sl <= 0) {
    const int64_t nseg = nseg_auto(int64_t(jrt::cuda::sm_count()));
    sl = int((a.max_len + nseg - 1) / nseg);
  }
  sl = std::max(C, (sl + C - 1) / C * C);
  *seg_len = sl;
  return std::max(1, (a.max_len + sl - 1) / sl);
}

namespace v4 {

constexpr int C = 64;
constexpr int DS = 64;           // d_v columns per CTA
constexpr int NT = 256;          // 8 warps
constexpr int LDX = 24;          // q / k rows: 48 B, an odd multiple of 16 B (ldmatrix rows on distinct banks)
constexpr int LDV = DS + 8;      // 144 B
constexpr int LDF = F + 8;       // 336 B
constexpr int LDT = C + 8;       // 144 B
constexpr int kQuarter = F / 4;  // features built per warp (40)
constexpr float kR2 = 0.17677669529663687f;  // 1 / sqrt(32): the square features' scale

struct __align__(128) Smem {
  bf16 q[2][C * LDX];
  bf16 k[2][C * LDX];
  bf16 v[2][C * LDV];
  bf16 fqt[F * LDT];   // F(Q) transposed [f][t]
  bf16 fkt[F * LDT];   // F(K) transposed [f][t]
  bf16 sbt[DS * LDF];  // bf16 copy of the state slice, transposed: [d][f]
  float z2[16 * 16];
  float z1[16];
  float den[4][C];  // f(q).z, one share per feature quarter
  float z0;
};

using cuda::smem_addr;
// A fragment of a 16 x 16 tile stored row-major [m][k].
__device__ __forceinline__ void ldsm_a(uint32_t (&f)[4], const bf16* base, int ld, int lane) {
  const bf16* p = base + ((lane & 7) + 8 * ((lane >> 3) & 1)) * ld + 8 * (lane >> 4);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(f[0]), "=r"(f[1]), "=r"(f[2]), "=r"(f[3])
               : "r"(smem_addr(p)));
}
// A fragment of a 16 x 16 tile stored transposed [k][m].
__device__ __forceinline__ void ldsm_at(uint32_t (&f)[4], const bf16* base, int ld, int lane) {
  const bf16* p = base + ((lane & 7) + 8 * (lane >> 4)) * ld + 8 * ((lane >> 3) & 1);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(f[0]), "=r"(f[1]), "=r"(f[2]), "=r"(f[3])
               : "r"(smem_addr(p)));
}
// B fragments of two n-tiles (n, n + 8) of a k16 x n16 block stored n-major [n][k]: f[0..1], f[2..3].
__device__ __forceinline__ void ldsm_b(uint32_t (&f)[4], const bf16* base, int ld, int lane) {
  const bf16* p = base + ((lane & 7) + 8 * (lane >> 4)) * ld + 8 * ((lane >> 3) & 1);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(f[0]), "=r"(f[1]), "=r"(f[2]), "=r"(f[3])
               : "r"(smem_addr(p)));
}
// One B fragment (one n-tile) of a k16 x n8 block stored n-major [n][k] (lanes 0-15 give the rows).
__device__ __forceinline__ void ldsm_b2(uint32_t (&f)[2], const bf16* base, int ld, int lane) {
  const bf16* p = base + (lane & 7) * ld + 8 * ((lane >> 3) & 1);
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(f[0]), "=r"(f[1]) : "r"(smem_addr(p)));
}
// The same two B fragments from a block stored k-major [k][n].
__device__ __forceinline__ void ldsm_bt(uint32_t (&f)[4], const bf16* base, int ld, int lane) {
  const bf16* p = base + ((lane & 7) + 8 * ((lane >> 3) & 1)) * ld + 8 * (lane >> 4);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(f[0]), "=r"(f[1]), "=r"(f[2]), "=r"(f[3])
               : "r"(smem_addr(p)));
}
// d += a [b0 b1] (ops/mma.cuh's m16n8k16 with the B fragment given as two registers) and bf16 pair packing.
__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  const uint32_t b[2] = {b0, b1};
  cuda::mma_bf16_16816(d, a, b);
}
using cuda::pack_bf2;
// 16-byte async copy, zero-filled when !ok (src must still be a mapped address).
__device__ __forceinline__ void cp16(void* dst, const void* src, bool ok) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(ok ? 16 : 0));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n"); }
__device__ __forceinline__ void cp_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// Chunk rows [row0, row0 + valid) of q (if want_q), k and the 64-column v slice into the tiles q, k, v of
// one buffer, 16 bytes at a time, zero-filled past `valid` and past d_v. Layout: the kernel family's element
// offsets, Layout::qk(row, half) and Layout::v(row, d8).
template <class Layout>
__device__ void issue_loads_to(bf16* q, bf16* k, bf16* v, const LaCudaArgs& a, int64_t row0, int valid, int h, int col0,
                               bool want_q) {
  const int64_t ldq = a.ldq ? a.ldq : int64_t(a.H) * 16, ldk = a.ldk ? a.ldk : int64_t(a.H) * 16;
  const int64_t ldv = a.ldv ? a.ldv : int64_t(a.H) * a.dv;
  for (int idx = threadIdx.x; idx < C * 2 * 2; idx += NT) {
    const int which = idx / (C * 2), r = (idx / 2) % C, half = idx % 2;
    if (which == 0 && !want_q) continue;
    const bf16* base = which ? a.k : a.q;
    const bool ok = r < valid;
    const bf16* src = ok ? base + (row0 + r) * (which ? ldk : ldq) + h * 16 + half * 8 : base;
    cp16((which ? k : q) + Layout::qk(r, half), src, ok);
  }
  for (int idx = threadIdx.x; idx < C * (DS / 8); idx += NT) {
    const int r = idx / (DS / 8), d8 = idx % (DS / 8);
    const bool ok = r < valid && col0 + 8 * d8 < a.dv;
    const bf16* src = ok ? a.v + (row0 + r) * ldv + int64_t(h) * a.dv + col0 + 8 * d8 : a.v;
    cp16(v + Layout::v(r, d8), src, ok);
  }
  cp_commit();
}
// The padded row-major tiles of v5 / v7.
struct RowTiles {
  static __device__ __forceinline__ int qk(int r, int half) { return r * LDX + half * 8; }
  static __device__ __forceinline__ int v(int r, int d8) { return r * LDV + 8 * d8; }
};
template <class Sm>
__device__ void issue_loads(Sm& sm, int buf, const LaCudaArgs& a, int64_t row0, int valid, int h, int col0,
                            bool want_q) {
  issue_loads_to<RowTiles>(sm.q[buf], sm.k[buf], sm.v[buf], a, row0, valid, h, col0, want_q);
}

// The canonical feature f (compile time) of x: [1, x/2, x_i^2/sqrt(32), x_i x_j/4 (i < j), 0 padding]
// (pair_i / pair_j above).
// Feature f (compile time) of two tokens at once, from xh = x / 2 as bf16 pairs (token t low, t + 1 high).
// The pair features xh_i xh_j = x_i x_j / 4 round once (the product of two bf16 is exact in the multiply);
// the squares x_i^2 / sqrt(32) = xh_i^2 / sqrt(2) go through fp32, as in row_features.
template <int f>
__device__ __forceinline__ __nv_bfloat162 feature(const __nv_bfloat162 (&xh)[16], __nv_bfloat162 one) {
  if constexpr (f == 0) {
    return one;
  } else if constexpr (f < 17) {
    return xh[f - 1];
  } else if constexpr (f < 33) {
    const float2 a = __bfloat1622float2(xh[f - 17]);
    return __floats2bfloat162_rn(0.70710678118654752f * a.x * a.x, 0.70710678118654752f * a.y * a.y);
  } else if constexpr (f < 153) {
    return __hmul2(xh[pair_i(f)], xh[pair_j(f)]);
  } else {
    return __floats2bfloat162_rn(0.0f, 0.0f);
  }
}
// Features [40 Q, 40 Q + 40) of tokens t, t + 1 into the transposed buffer: one bf16 pair per store, a warp
// writing 64 consecutive tokens of one feature (128 B, one wavefront).
template <int Q, int... I>
__device__ __forceinline__ void store_quarter(std::integer_sequence<int, I...>, const __nv_bfloat162 (&xh)[16],
                                              __nv_bfloat162 one, bf16* ft) {
  ((*reinterpret_cast<__nv_bfloat162*>(ft + (kQuarter * Q + I) * LDT) = feature<kQuarter * Q + I>(xh, one)), ...);
}
// Rows t and t + 1 of a q / k tile, halved, as bf16 pairs: xh[i] = (x_t[i] / 2, x_{t+1}[i] / 2) (exact).
__device__ __forceinline__ void load_pair_half(__nv_bfloat162 (&xh)[16], const bf16* tile, int t) {
  const uint4* p0 = reinterpret_cast<const uint4*>(tile + t * LDX);
  const uint4* p1 = reinterpret_cast<const uint4*>(tile + (t + 1) * LDX);
  uint4 u0[2] = {p0[0], p0[1]}, u1[2] = {p1[0], p1[1]};
  const bf16* e0 = reinterpret_cast<const bf16*>(u0);
  const bf16* e1 = reinterpret_cast<const bf16*>(u1);
  const __nv_bfloat162 half2v = __floats2bfloat162_rn(0.5f, 0.5f);
#pragma unroll
  for (int i = 0; i < 16; ++i) xh[i] = __hmul2(__halves2bfloat162(e0[i], e1[i]), half2v);
}
// Warp-uniform quarter Q of the features of tokens (t, t + 1) (rows past `valid` are zero in the tile);
// with den, also their share of f(q).z from the Gram sums: rows i in [4 Q, 4 Q + 4) of
// Z0 [Q == 0] + q.Z1 / 4 + q^T Z2 q / 32  =  Z0 + xh.Z1 / 2 + xh^T Z2 xh / 8.
template <int Q>
__device__ __forceinline__ void build_pair(Smem& sm, const bf16* tile, bf16* ft, int t, int valid, bool den) {
  __nv_bfloat162 xh[16];
  load_pair_half(xh, tile, t);
  store_quarter<Q>(std::make_integer_sequence<int, kQuarter>(), xh,
                   __floats2bfloat162_rn(t < valid ? 1.0f : 0.0f, t + 1 < valid ? 1.0f : 0.0f), ft + t);
  if (!den) return;
  float d0 = Q == 0 ? sm.z0 : 0.0f, d1 = d0;
#pragma unroll
  for (int ii = 0; ii < 4; ++ii) {
    const int i = 4 * Q + ii;
    const float4* zr = reinterpret_cast<const float4*>(sm.z2 + 16 * i);
    float a0 = 0.0f, a1 = 0.0f;
#pragma unroll
    for (int j4 = 0; j4 < 4; ++j4) {
      const float4 zz = zr[j4];
      const float zv[4] = {zz.x, zz.y, zz.z, zz.w};
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const float2 x = __bfloat1622float2(xh[4 * j4 + u]);
        a0 += zv[u] * x.x;
        a1 += zv[u] * x.y;
      }
    }
    const float2 xi = __bfloat1622float2(xh[i]);
    d0 += xi.x * (0.5f * sm.z1[i] + 0.125f * a0);
    d1 += xi.y * (0.5f * sm.z1[i] + 0.125f * a1);
  }
  sm.den[Q][t] = d0;
  sm.den[Q][t + 1] = d1;
}

// The Gram sums (Z0, Z1, Z2 in shared memory) from / to the canonical z [160] (null z_in: zero). Z2 is
// kept whole (both triangles); the canonical pair feature reads its upper triangle.
template <class Sm>
__device__ void load_gram(Sm& sm, const float* z_in) {
  for (int e = threadIdx.x; e < 16 * 16; e += NT) {
    const int i = e / 16, j = e % 16;
    sm.z2[e] = !z_in ? 0.0f : i == j ? z_in[17 + i] / kR2 : 4.0f * z_in[pair_index(min(i, j), max(i, j))];
  }
  if (threadIdx.x < 16) sm.z1[threadIdx.x] = z_in ? 2.0f * z_in[1 + threadIdx.x] : 0.0f;
  if (threadIdx.x == 0) sm.z0 = z_in ? z_in[0] : 0.0f;
}
template <class Sm>
__device__ void store_gram(const Sm& sm, float* z_out) {
  for (int f = threadIdx.x; f < F; f += NT) {
    float val = 0.0f;
    if (f == 0) {
      val = sm.z0;
    } else if (f < 17) {
      val = 0.5f * sm.z1[f - 1];
    } else if (f < 33) {
      val = kR2 * sm.z2[(f - 17) * 17];
    } else if (f < 153) {
      int i = 0, p = f - 33;
      while (p >= 15 - i) p -= 15 - i, ++i;
      val = 0.25f * sm.z2[i * 16 + i + 1 + p];
    }
    z_out[f] = val;
  }
}

// Sum over the 4 lanes of a quad (the lanes holding one row of an mma accumulator).
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}
// Output scale of chunk row r (sequence row `row`): dt / (den_inter + den_intra + eps), den_inter from the
// four quarter shares the feature builders left in shared memory.
template <class Sm>
__device__ __forceinline__ float out_scale(const Sm& sm, const LaCudaArgs& a, int r, float den_intra, int64_t row,
                                           int h) {
  const float den = sm.den[0][r] + sm.den[1][r] + sm.den[2][r] + sm.den[3][r] + den_intra;
  return (a.dt ? a.dt[row * a.H + h] : 1.0f) / (den + a.eps);
}
// Adds part `part` of one chunk's Gram tiles to the running sums in shared memory (rows g, g + 8 of the
// m16n8 tile zt): parts 0 and 1 the columns [8 part, 8 part + 8) of Z2 += K^T K, part 2 Z1 += K^T 1 (column
// 0) and Z0 += the chunk's row count. fn(i, j, x) sees each updated Z2 entry x = Z2[i][j].
template <class Sm, class Fn>
__device__ __forceinline__ void add_gram_part(Sm& sm, const float (&zt)[4], int part, int lane, int valid, Fn&& fn) {
  const int g = lane / 4, c4 = lane % 4;
  if (part < 2) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int i = g + 8 * (e / 2), j = 8 * part + 2 * c4 + (e % 2);
      const float x = sm.z2[i * 16 + j] + zt[e];
      sm.z2[i * 16 + j] = x;
      fn(i, j, x);
    }
  } else {
    if (c4 == 0) sm.z1[g] += zt[0], sm.z1[g + 8] += zt[2];
    if (lane == 0) sm.z0 += float(valid);
  }
}
// All three parts (zt[0..1] = K^T K, zt[2] column 0 = K^T 1).
template <class Sm>
__device__ __forceinline__ void add_gram(Sm& sm, const float (&zt)[3][4], int lane, int valid) {
#pragma unroll
  for (int part = 0; part < 3; ++part) add_gram_part(sm, zt[part], part, lane, valid, [](int, int, float) {});
}

// The Taylor weights of query block rg (A fragment qa) against key block j <= rg (16 keys from kblk):
// s = Q K^T (two m16n8k16), w = 1 + s/4 + s^2/32, masked above the diagonal when j == rg, packed as the
// A fragment pa of P V; the weights of rows g and g + 8 are added to rs0 and rs1 (fp32).
__device__ __forceinline__ void taylor_block(uint32_t (&pa)[4], const uint32_t (&qa)[4], const bf16* kblk, int j,
                                             int rg, int lane, float& rs0, float& rs1) {
  const int g = lane / 4, c4 = lane % 4;
  float s[2][4] = {};
  uint32_t kb[4];
  ldsm_b(kb, kblk, LDX, lane);
  mma(s[0], qa, kb[0], kb[1]);
  mma(s[1], qa, kb[2], kb[3]);
#pragma unroll
  for (int n = 0; n < 2; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int i = g + 8 * (e / 2), jj = 8 * n + 2 * c4 + (e % 2);  // within the 16 x 16 block
      const float x = s[n][e] * 0.25f;
      const float w = (j < rg || jj <= i) ? 1.0f + x + 0.5f * x * x : 0.0f;
      s[n][e] = w;
      if (e < 2)
        rs0 += w;
      else
        rs1 += w;
    }
  pa[0] = pack_bf2(s[0][0], s[0][1]);
  pa[1] = pack_bf2(s[0][2], s[0][3]);
  pa[2] = pack_bf2(s[1][0], s[1][1]);
  pa[3] = pack_bf2(s[1][2], s[1][3]);
}

// Intra-chunk part of query block rg for 16 kNN output columns (v: the chunk's V tile from the first of
// them): O = P V over the key blocks j <= rg, one block at a time (8 score registers live), from zero.
template <int kNN>
__device__ __forceinline__ void intra_chunk(float (&o)[2 * kNN][4], const uint32_t (&qa)[4], const bf16* k,
                                            const bf16* v, int rg, int lane, float& rs0, float& rs1) {
#pragma unroll
  for (int n = 0; n < 2 * kNN; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[n][e] = 0.0f;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    if (j <= rg) {
      uint32_t pa[4];
      taylor_block(pa, qa, k + 16 * j * LDX, j, rg, lane, rs0, rs1);
#pragma unroll
      for (int nn = 0; nn < kNN; ++nn) {
        uint32_t vb[4];
        ldsm_bt(vb, v + 16 * j * LDV + 16 * nn, LDV, lane);
        mma(o[2 * nn], pa, vb[0], vb[1]);
        mma(o[2 * nn + 1], pa, vb[2], vb[3]);
      }
    }
  }
}

// The chunk's Gram sums of the keys (one warp, k: the chunk's K tile), added to the running ones in shared
// memory: Z2 += K^T K (rows g, g + 8 of each tile), Z1 += K^T 1 (a ones column), Z0 += the valid rows.
template <class Sm>
__device__ __forceinline__ void chunk_gram(Sm& sm, const bf16* k, int lane, int valid) {
  const int g = lane / 4;
  const uint32_t ones = pack_bf2(g == 0 ? 1.0f : 0.0f, g == 0 ? 1.0f : 0.0f);
  float zt[3][4] = {};
#pragma unroll
  for (int ks = 0; ks < C / 16; ++ks) {
    uint32_t ka[4], kb[4];
    ldsm_at(ka, k + 16 * ks * LDX, LDX, lane);
    ldsm_bt(kb, k + 16 * ks * LDX, LDX, lane);
    mma(zt[0], ka, kb[0], kb[1]);
    mma(zt[1], ka, kb[2], kb[3]);
    mma(zt[2], ka, ones, ones);
  }
  add_gram(sm, zt, lane, valid);
}

// Calls fn(value, d, p) for each fp32 state value of a thread's 2 x kN accumulator tiles: row (d_v column)
// d = d0 + 16 m + g + 8 (e / 2), feature position p = p0 + 8 n + 2 c4 + (e % 2).
template <int kN, class Fn>
__device__ __forceinline__ void each_state(float (&st)[2][kN][4], int d0, int p0, int lane, Fn&& fn) {
  const int g = lane / 4, c4 = lane % 4;
#pragma unroll
  for (int m = 0; m < 2; ++m)
#pragma unroll
    for (int n = 0; n < kN; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) fn(st[m][n][e], d0 + 16 * m + g + 8 * (e / 2), p0 + 8 * n + 2 * c4 + (e % 2));
}

struct Ends {
  const float* S_in = nullptr;  // canonical [160, dv] at this head (or null: zero)
  const float* z_in = nullptr;  // [160]
  float* S_out = nullptr;
  float* z_out = nullptr;
};

// Runs chunks [beg, end) of sequence rows starting at `start`; kOut: outputs, else state only.
template <bool kOut>
__device__ void run_segment(Smem& sm, const LaCudaArgs& a, int start, int beg, int end, int h, int col0,
                            const Ends& ends) {
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, c4 = lane % 4;
  const int mh = warp % 2, ng = warp / 2;  // update: d rows 32 mh .. + 31, features 40 ng .. + 39
  const int rg = warp % 4, ch = warp / 4;  // readout: query rows 16 rg .., output columns 32 ch ..
  // State S^T[32 mh + 16 m + (g, g+8)][40 ng + 8 n + 2 c4 + (0, 1)] in fp32 registers.
  float st[2][5][4];
  each_state(st, col0 + 32 * mh, 40 * ng, lane,
             [&](float& x, int d, int f) { x = (ends.S_in && d < a.dv) ? ends.S_in[int64_t(f) * a.dv + d] : 0.0f; });
  // Gram sums in shared memory (fp32): Z2 = sum k k^T, Z1 = sum k, Z0 = count (from a canonical z_in).
  load_gram(sm, ends.z_in);
  const int ldo = int(a.ldo ? a.ldo : int64_t(a.H) * a.dv);

  if (beg < end) issue_loads(sm, 0, a, start + beg, min(C, end - beg), h, col0, kOut);
  int buf = 0;
  for (int t0 = beg; t0 < end; t0 += C, buf ^= 1) {
    const int valid = min(C, end - t0);
    cp_wait_all();
    __syncthreads();
    if (t0 + C < end) issue_loads(sm, buf ^ 1, a, start + t0 + C, min(C, end - t0 - C), h, col0, kOut);
    // Phase 1: the bf16 state copy, features (warps 0-3: F(Q) quarters, 4-7: F(K) quarters), den_inter.
    if (kOut) {
#pragma unroll
      for (int m = 0; m < 2; ++m)
#pragma unroll
        for (int n = 0; n < 5; ++n) {
          bf16* p = sm.sbt + (32 * mh + 16 * m + g) * LDF + 40 * ng + 8 * n + 2 * c4;
          *reinterpret_cast<uint32_t*>(p) = pack_bf2(st[m][n][0], st[m][n][1]);
          *reinterpret_cast<uint32_t*>(p + 8 * LDF) = pack_bf2(st[m][n][2], st[m][n][3]);
        }
    }
    if (warp >= 4 || kOut) {
      const bool isq = warp < 4;
      const bf16* tile = isq ? sm.q[buf] : sm.k[buf];
      bf16* ft = isq ? sm.fqt : sm.fkt;
      switch (warp % 4) {
        case 0:
          build_pair<0>(sm, tile, ft, 2 * lane, valid, isq);
          break;
        case 1:
          build_pair<1>(sm, tile, ft, 2 * lane, valid, isq);
          break;
        case 2:
          build_pair<2>(sm, tile, ft, 2 * lane, valid, isq);
          break;
        default:
          build_pair<3>(sm, tile, ft, 2 * lane, valid, isq);
          break;
      }
    }
    __syncthreads();
    // Phase 2a: readout.
    if (kOut) {
      // Intra-chunk part, one 16-key block at a time: s = Q K^T, w = 1 + s/4 + s^2/32 (masked on the
      // diagonal block), row sums in fp32, then O += P V with P taken from the accumulators.
      uint32_t qa[4];
      ldsm_a(qa, sm.q[buf] + 16 * rg * LDX, LDX, lane);
      float rs0 = 0.0f, rs1 = 0.0f;
      float o[4][4];
      intra_chunk<2>(o, qa, sm.k[buf], sm.v[buf] + 32 * ch, rg, lane, rs0, rs1);
#pragma unroll
      for (int ks = 0; ks < F / 16; ++ks) {
        uint32_t fa[4];
        ldsm_at(fa, sm.fqt + 16 * ks * LDT + 16 * rg, LDT, lane);
#pragma unroll
        for (int nn = 0; nn < 2; ++nn) {
          uint32_t sb[4];
          ldsm_b(sb, sm.sbt + (32 * ch + 16 * nn) * LDF + 16 * ks, LDF, lane);
          mma(o[2 * nn], fa, sb[0], sb[1]);
          mma(o[2 * nn + 1], fa, sb[2], sb[3]);
        }
      }
      rs0 = quad_sum(rs0), rs1 = quad_sum(rs1);
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const int r = 16 * rg + g + 8 * hr;
        if (r < valid) {
          const int64_t row = int64_t(start) + t0 + r;
          const float scale = out_scale(sm, a, r, hr ? rs1 : rs0, row, h);
          bf16* orow = a.o + row * ldo + int64_t(h) * a.dv + col0 + 32 * ch + 2 * c4;
#pragma unroll
          for (int n = 0; n < 4; ++n)
            if (col0 + 32 * ch + 8 * n + 2 * c4 < a.dv)
              *reinterpret_cast<uint32_t*>(orow + 8 * n) = pack_bf2(o[n][2 * hr] * scale, o[n][2 * hr + 1] * scale);
        }
      }
    }
    // Phase 2b: state update S^T += V^T F(K).
#pragma unroll
    for (int ks = 0; ks < C / 16; ++ks) {
      uint32_t va[2][4];
      ldsm_at(va[0], sm.v[buf] + 16 * ks * LDV + 32 * mh, LDV, lane);
      ldsm_at(va[1], sm.v[buf] + 16 * ks * LDV + 32 * mh + 16, LDV, lane);
      uint32_t fb[10];
      ldsm_b(*reinterpret_cast<uint32_t(*)[4]>(fb), sm.fkt + (40 * ng) * LDT + 16 * ks, LDT, lane);
      ldsm_b(*reinterpret_cast<uint32_t(*)[4]>(fb + 4), sm.fkt + (40 * ng + 16) * LDT + 16 * ks, LDT, lane);
      ldsm_b2(*reinterpret_cast<uint32_t(*)[2]>(fb + 8), sm.fkt + (40 * ng + 32) * LDT + 16 * ks, LDT, lane);
#pragma unroll
      for (int m = 0; m < 2; ++m)
#pragma unroll
        for (int n = 0; n < 5; ++n) mma(st[m][n], va[m], fb[2 * n], fb[2 * n + 1]);
    }
    if (warp == 0) {  // this chunk's Gram sums, added to the running ones (rows g, g + 8 of each tile)
      chunk_gram(sm, sm.k[buf], lane, valid);
    }
  }
  __syncthreads();
  if (ends.S_out)
    each_state(st, col0 + 32 * mh, 40 * ng, lane, [&](float& x, int d, int f) {
      if (d < a.dv) ends.S_out[int64_t(f) * a.dv + d] = x;
    });
  if (ends.z_out && col0 == 0) store_gram(sm, ends.z_out);
}

// ---------------------------------------------------------------------------------------------------
// v6 (sm_90a, opt-in via la_prefill_set_kernel; measured slower than v5, dev/README.md "v6"): the same
// work split into two warpgroups on warpgroup MMA (wgmma), so that every shared operand is read once per
// warpgroup instead of once per warp.
//   warpgroup 0 (warps 0-3): F(Q) and den_inter in phase 1; in phase 2 S = Q K^T (m64n64k16), the Taylor
//     weights P in registers, O = P V (P as the register A operand) + F(Q) S_bf16 (10 x m64n64k16), the
//     outputs, then warp 0 adds the chunk's Gram sums (mma.sync).
//   warpgroup 1 (warps 4-7): F(K) and the bf16 state copy in phase 1; in phase 2 S^T += V^T F(K)
//     (4 x m64n160k16; the fp32 state is the 80 accumulator registers per thread).
// Operands sit in shared memory in the no-swizzle core-matrix layout (8 rows x 16 B blocks); from the
// probe dev/probes/wgmma_desc_probe.cu: the descriptor's leading byte offset is the stride between
// core matrices along K and the stride byte offset the stride along M / N, for K- and MN-major alike.
namespace wg {

constexpr int kQK = C * 16 * 2, kV = C * DS * 2, kFB = C * F * 2, kSB = DS * F * 2;

struct __align__(128) Smem {
  unsigned char q[2][kQK];  // (t, i) at (t/8) 256 + (i/8) 128 + (t%8) 16 + (i%8) 2
  unsigned char k[2][kQK];
  unsigned char v[2][kV];  // (d, t) at (d/8) 128 + (t/8) 1024 + (t%8) 16 + (d%8) 2
  unsigned char fq[kFB];   // (t, f) at (t/8) 2560 + (f/8) 128 + (t%8) 16 + (f%8) 2
  unsigned char fk[kFB];
  unsigned char sb[kSB];  // (d, f) at (d/8) 2560 + (f/8) 128 + (d%8) 16 + (f%8) 2
  float z2[16 * 16];
  float z1[16];
  float den[4][C];
  float z0;
};

__device__ __forceinline__ int qk_off(int t, int half) { return (t >> 3) * 256 + half * 128 + (t & 7) * 16; }
__device__ __forceinline__ int v_off(int t, int d8) { return d8 * 128 + (t >> 3) * 1024 + (t & 7) * 16; }
__device__ __forceinline__ int f_off(int t, int f8) { return (t >> 3) * 2560 + f8 * 128 + (t & 7) * 16; }
__device__ __forceinline__ int sb_off(int d, int f) {
  return (d >> 3) * 2560 + (f >> 3) * 128 + (d & 7) * 16 + (f & 7) * 2;
}

__device__ __forceinline__ uint64_t mdesc(const void* p, uint32_t lbo, uint32_t sbo) {
  uint64_t d = uint64_t((smem_addr(p) & 0x3FFFF) >> 4);
  d |= uint64_t((lbo >> 4) & 0x3FFF) << 16;
  d |= uint64_t((sbo >> 4) & 0x3FFF) << 32;
  return d;  // no swizzle, base offset 0
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define JRT_WG 1
#endif

__device__ __forceinline__ void wg_fence() {
#ifdef JRT_WG
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wg_commit_wait() {
#ifdef JRT_WG
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
#endif
}

#define JRT_F8(i)                                                                                             \
  "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), \
      "+f"(d[i + 7])
// d (64 x 64 fp32) += A B, both from shared memory; TA / TB: operand stored MN-major.
template <int TA, int TB>
__device__ __forceinline__ void mma64_ss(float (&d)[32], uint64_t a, uint64_t b) {
#ifdef JRT_WG
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,"
      "%28,%29,%30,%31}, %32, %33, 1, 1, 1, %34, %35;\n"
      : JRT_F8(0), JRT_F8(8), JRT_F8(16), JRT_F8(24)
      : "l"(a), "l"(b), "n"(TA), "n"(TB));
#else
  __trap();
#endif
}
// d (64 x 64) += A B with A from registers (the mma.sync A-fragment layout, warp w rows 16 w ..).
template <int TB>
__device__ __forceinline__ void mma64_rs(float (&d)[32], const uint32_t (&a)[4], uint64_t b) {
#ifdef JRT_WG
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,"
      "%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, 1, 1, 1, %37;\n"
      : JRT_F8(0), JRT_F8(8), JRT_F8(16), JRT_F8(24)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "n"(TB));
#else
  __trap();
#endif
}
// d (64 x 160) += A B, both from shared memory.
template <int TA, int TB>
__device__ __forceinline__ void mma160_ss(float (&d)[80], uint64_t a, uint64_t b) {
#ifdef JRT_WG
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n160k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,"
      "%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,"
      "%54,%55,%56,%57,%58,%59,%60,%61,%62,%63,%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79}, "
      "%80, %81, 1, 1, 1, %82, %83;\n"
      : JRT_F8(0), JRT_F8(8), JRT_F8(16), JRT_F8(24), JRT_F8(32), JRT_F8(40), JRT_F8(48), JRT_F8(56), JRT_F8(64),
        JRT_F8(72)
      : "l"(a), "l"(b), "n"(TA), "n"(TB));
#else
  __trap();
#endif
}
#undef JRT_F8

template <int f>
__device__ __forceinline__ float feat1(const float (&x)[16], float one) {
  if constexpr (f == 0)
    return one;
  else if constexpr (f < 17)
    return 0.5f * x[f - 1];
  else if constexpr (f < 33)
    return kR2 * x[f - 17] * x[f - 17];
  else if constexpr (f < 153)
    return 0.25f * x[pair_i(f)] * x[pair_j(f)];
  else
    return 0.0f;
}
// Features f0 .. f0 + 7 of one token: one 16-byte row of a core matrix.
template <int f0>
__device__ __forceinline__ uint4 group8(const float (&x)[16], float one) {
  uint4 r;
  r.x = pack_bf2(feat1<f0>(x, one), feat1<f0 + 1>(x, one));
  r.y = pack_bf2(feat1<f0 + 2>(x, one), feat1<f0 + 3>(x, one));
  r.z = pack_bf2(feat1<f0 + 4>(x, one), feat1<f0 + 5>(x, one));
  r.w = pack_bf2(feat1<f0 + 6>(x, one), feat1<f0 + 7>(x, one));
  return r;
}
// Quarter Q (features 40 Q .. 40 Q + 39) of token t's features; with den, its share of f(q).z.
template <int Q>
__device__ __forceinline__ void build_token(Smem& sm, const unsigned char* tile, unsigned char* fb, int t, bool ok,
                                            bool den) {
  const uint4 u[2] = {*reinterpret_cast<const uint4*>(tile + qk_off(t, 0)),
                      *reinterpret_cast<const uint4*>(tile + qk_off(t, 1))};
  const bf16* e = reinterpret_cast<const bf16*>(u);
  float x[16];
#pragma unroll
  for (int i = 0; i < 16; ++i) x[i] = __bfloat162float(e[i]);  // rows past the tail are zero-filled
  const float one = ok ? 1.0f : 0.0f;
  unsigned char* row = fb + f_off(t, 5 * Q);
  *reinterpret_cast<uint4*>(row) = group8<40 * Q>(x, one);
  *reinterpret_cast<uint4*>(row + 128) = group8<40 * Q + 8>(x, one);
  *reinterpret_cast<uint4*>(row + 256) = group8<40 * Q + 16>(x, one);
  *reinterpret_cast<uint4*>(row + 384) = group8<40 * Q + 24>(x, one);
  *reinterpret_cast<uint4*>(row + 512) = group8<40 * Q + 32>(x, one);
  if (!den) return;
  float d = Q == 0 ? sm.z0 : 0.0f;
#pragma unroll
  for (int ii = 0; ii < 4; ++ii) {
    const int i = 4 * Q + ii;
    const float4* zr = reinterpret_cast<const float4*>(sm.z2 + 16 * i);
    float acc = 0.0f;
#pragma unroll
    for (int j4 = 0; j4 < 4; ++j4) {
      const float4 zz = zr[j4];
      acc += zz.x * x[4 * j4] + zz.y * x[4 * j4 + 1] + zz.z * x[4 * j4 + 2] + zz.w * x[4 * j4 + 3];
    }
    d += x[i] * (0.25f * sm.z1[i] + 0.03125f * acc);
  }
  sm.den[Q][t] = d;
}

// v6's core-matrix tiles (qk_off / v_off are byte offsets).
struct CoreTiles {
  static __device__ __forceinline__ int qk(int r, int half) { return qk_off(r, half) / 2; }
  static __device__ __forceinline__ int v(int r, int d8) { return v_off(r, d8) / 2; }
};
__device__ void issue_loads(Smem& sm, int buf, const LaCudaArgs& a, int64_t row0, int valid, int h, int col0,
                            bool want_q) {
  issue_loads_to<CoreTiles>(reinterpret_cast<bf16*>(sm.q[buf]), reinterpret_cast<bf16*>(sm.k[buf]),
                            reinterpret_cast<bf16*>(sm.v[buf]), a, row0, valid, h, col0, want_q);
}

// One barrier for all 8 warps. The two warpgroups run separate loops (so that warpgroup 1's 80 state
// registers are not live in warpgroup 0's code), with the same barriers in the same order.
__device__ __forceinline__ void cta_barrier() { asm volatile("bar.sync 0;\n" ::: "memory"); }

// Per chunk, both warpgroups: wait for the chunk's loads, barrier, prefetch the next chunk.
__device__ __forceinline__ void chunk_top(Smem& sm, const LaCudaArgs& a, int start, int t0, int end, int buf, int h,
                                          int col0, bool want_q) {
  cp_wait_all();
  cuda::fence_proxy_async();
  cta_barrier();
  if (t0 + C < end) issue_loads(sm, buf ^ 1, a, start + t0 + C, min(C, end - t0 - C), h, col0, want_q);
}

__device__ __forceinline__ void build_quarter(Smem& sm, const unsigned char* tile, unsigned char* fb, int wq, int lane,
                                              int valid, bool den) {
#pragma unroll
  for (int tt = 0; tt < 2; ++tt) {
    const int t = lane + 32 * tt;
    switch (wq) {
      case 0:
        build_token<0>(sm, tile, fb, t, t < valid, den);
        break;
      case 1:
        build_token<1>(sm, tile, fb, t, t < valid, den);
        break;
      case 2:
        build_token<2>(sm, tile, fb, t, t < valid, den);
        break;
      default:
        build_token<3>(sm, tile, fb, t, t < valid, den);
        break;
    }
  }
}

// The chunk's Gram sums of the keys (one warp, mma.sync), added to the running ones in shared memory:
// Z2 += K^T K (rows g, g + 8 of each tile), Z1 += K^T 1 (a ones column), Z0 += the valid rows.
__device__ __forceinline__ void gram(Smem& sm, int buf, int lane, int valid) {
  const int g = lane / 4;
  const uint32_t ones = pack_bf2(g == 0 ? 1.0f : 0.0f, g == 0 ? 1.0f : 0.0f);
  float zt[3][4] = {};
#pragma unroll
  for (int ks = 0; ks < C / 16; ++ks) {
    uint32_t ka[4], kb[4];  // A = K^T (rows t of the tile), B = K
    const int ta = 16 * ks + (lane & 7) + 8 * (lane >> 4), tb = 16 * ks + (lane & 7) + 8 * ((lane >> 3) & 1);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(ka[0]), "=r"(ka[1]), "=r"(ka[2]), "=r"(ka[3])
                 : "r"(smem_addr(sm.k[buf] + qk_off(ta, (lane >> 3) & 1))));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(kb[0]), "=r"(kb[1]), "=r"(kb[2]), "=r"(kb[3])
                 : "r"(smem_addr(sm.k[buf] + qk_off(tb, lane >> 4))));
    mma(zt[0], ka, kb[0], kb[1]);
    mma(zt[1], ka, kb[2], kb[3]);
    mma(zt[2], ka, ones, ones);
  }
  add_gram(sm, zt, lane, valid);
}

// Warpgroup 0: F(Q), den_inter, the readout and the outputs.
__device__ void readout_loop(Smem& sm, const LaCudaArgs& a, int start, int beg, int end, int h, int col0) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c4 = lane % 4, wq = warp % 4;
  const int ldo = int(a.ldo ? a.ldo : int64_t(a.H) * a.dv);
  int buf = 0;
  for (int t0 = beg; t0 < end; t0 += C, buf ^= 1) {
    const int valid = min(C, end - t0);
    chunk_top(sm, a, start, t0, end, buf, h, col0, true);
    build_quarter(sm, sm.q[buf], sm.fq, wq, lane, valid, true);
    cuda::fence_proxy_async();
    cta_barrier();
    float s[32], o[32];
#pragma unroll
    for (int e = 0; e < 32; ++e) s[e] = o[e] = 0.0f;
    wg_fence();
    mma64_ss<0, 0>(s, mdesc(sm.q[buf], 128, 256), mdesc(sm.k[buf], 128, 256));
    wg_commit_wait();
    float rs0 = 0.0f, rs1 = 0.0f;
#pragma unroll
    for (int n = 0; n < 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = 16 * wq + g + 8 * (e / 2), j = 8 * n + 2 * c4 + (e % 2);
        const float x = s[4 * n + e] * 0.25f;
        const float w = j <= i ? 1.0f + x + 0.5f * x * x : 0.0f;
        s[4 * n + e] = w;
        if (e < 2)
          rs0 += w;
        else
          rs1 += w;
      }
    uint32_t pa[4][4];
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      pa[kk][0] = pack_bf2(s[8 * kk], s[8 * kk + 1]);
      pa[kk][1] = pack_bf2(s[8 * kk + 2], s[8 * kk + 3]);
      pa[kk][2] = pack_bf2(s[8 * kk + 4], s[8 * kk + 5]);
      pa[kk][3] = pack_bf2(s[8 * kk + 6], s[8 * kk + 7]);
    }
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) mma64_rs<1>(o, pa[kk], mdesc(sm.v[buf] + 2048 * kk, 1024, 128));
#pragma unroll
    for (int ks = 0; ks < F / 16; ++ks)
      mma64_ss<0, 0>(o, mdesc(sm.fq + 256 * ks, 128, 2560), mdesc(sm.sb + 256 * ks, 128, 2560));
    wg_commit_wait();
    rs0 = quad_sum(rs0), rs1 = quad_sum(rs1);
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int r = 16 * wq + g + 8 * hr;
      if (r < valid) {
        const int64_t row = int64_t(start) + t0 + r;
        const float scale = out_scale(sm, a, r, hr ? rs1 : rs0, row, h);
        bf16* orow = a.o + row * ldo + int64_t(h) * a.dv + col0 + 2 * c4;
#pragma unroll
        for (int n = 0; n < 8; ++n)
          if (col0 + 8 * n + 2 * c4 < a.dv)
            *reinterpret_cast<uint32_t*>(orow + 8 * n) =
                pack_bf2(o[4 * n + 2 * hr] * scale, o[4 * n + 2 * hr + 1] * scale);
      }
    }
    if (warp == 0) gram(sm, buf, lane, valid);
  }
}

// Warpgroup 1: F(K), the bf16 state copy and the state update; the fp32 state
// S^T[16 wq + g + 8 (e / 2)][8 j + 2 c4 + (e % 2)] = st[4 j + e] in registers.
template <bool kOut>
__device__ void update_loop(Smem& sm, const LaCudaArgs& a, int start, int beg, int end, int h, int col0,
                            const Ends& ends) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c4 = lane % 4, wq = warp % 4;
  float st[80];
#pragma unroll
  for (int j = 0; j < 20; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int d = col0 + 16 * wq + g + 8 * (e / 2), f = 8 * j + 2 * c4 + (e % 2);
      st[4 * j + e] = (ends.S_in && d < a.dv) ? ends.S_in[int64_t(f) * a.dv + d] : 0.0f;
    }
  int buf = 0;
  for (int t0 = beg; t0 < end; t0 += C, buf ^= 1) {
    const int valid = min(C, end - t0);
    chunk_top(sm, a, start, t0, end, buf, h, col0, kOut);
    if (kOut) {
#pragma unroll
      for (int j = 0; j < 20; ++j) {
        const int d = 16 * wq + g, f = 8 * j + 2 * c4;
        *reinterpret_cast<uint32_t*>(sm.sb + sb_off(d, f)) = pack_bf2(st[4 * j], st[4 * j + 1]);
        *reinterpret_cast<uint32_t*>(sm.sb + sb_off(d + 8, f)) = pack_bf2(st[4 * j + 2], st[4 * j + 3]);
      }
    }
    build_quarter(sm, sm.k[buf], sm.fk, wq, lane, valid, false);
    cuda::fence_proxy_async();
    cta_barrier();
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk)
      mma160_ss<1, 1>(st, mdesc(sm.v[buf] + 2048 * kk, 1024, 128), mdesc(sm.fk + 5120 * kk, 2560, 128));
    wg_commit_wait();
  }
  if (ends.S_out) {
#pragma unroll
    for (int j = 0; j < 20; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int d = col0 + 16 * wq + g + 8 * (e / 2), f = 8 * j + 2 * c4 + (e % 2);
        if (d < a.dv) ends.S_out[int64_t(f) * a.dv + d] = st[4 * j + e];
      }
  }
}

template <bool kOut>
__device__ void run_segment(Smem& sm, const LaCudaArgs& a, int start, int beg, int end, int h, int col0,
                            const Ends& ends) {
  const int tid = threadIdx.x;
  load_gram(sm, ends.z_in);
  if (beg < end) issue_loads(sm, 0, a, start + beg, min(C, end - beg), h, col0, kOut);
  if (tid >= 128) {
    update_loop<kOut>(sm, a, start, beg, end, h, col0, ends);
  } else if (kOut) {
    readout_loop(sm, a, start, beg, end, h, col0);
  } else {  // state only: warpgroup 0 just keeps the barriers (and the loads) going
    int buf = 0;
    for (int t0 = beg; t0 < end; t0 += C, buf ^= 1) {
      chunk_top(sm, a, start, t0, end, buf, h, col0, false);
      cta_barrier();
      if (threadIdx.x < 32) gram(sm, buf, threadIdx.x, min(C, end - t0));
    }
  }
  cta_barrier();
  if (ends.z_out && col0 == 0) store_gram(sm, ends.z_out);
}

}  // namespace wg

// ---------------------------------------------------------------------------------------------------
// v7 (mma.sync; dev/README.md "v7"): the chunk's work split by role instead of by tile, so that nothing
// is computed twice and F(Q) never goes through shared memory.
//   readout warps 0-3 (query rows 16 rg .. 16 rg + 15, all 64 output columns of the slice):
//     phase 1: S = Q K^T, the Taylor weights and O = P V (intra-chunk); den_inter = f(q).z from the Gram
//              sums on the tensor cores: Q (Z2 / 32) with Z2 / 32 as a bf16 hi + lo pair (~2^-17
//              relative), then the quad sums with Z1 and Z0 in fp32;
//     phase 2: O += F(Q) S_bf16, the F(Q) A fragments built in registers from the lane's own rows of q
//              (see canon()), then the outputs.
//   update warps 4-7 (state rows d 32 mh .. + 31, features 80 nf .. + 79: 80 fp32 registers):
//     phase 1: the bf16 state copy, F(K) (a quarter each) transposed into shared memory;
//     phase 2: S^T += V^T F(K); warps 4-6 add a third each of the chunk's Gram sums (gram_part: one
//              warp doing all of them kept the other seven waiting at the next chunk's barrier).
// The two roles run separate loops with the same barriers (two per chunk), so the state registers are
// never live in the readout warps' code. State-only passes: all 8 warps build F(K), the update warps
// update.
namespace v7 {

constexpr int LDZ = 24;  // rows of the Z2 hi / lo operands: 48 B (ldmatrix rows on distinct banks)

constexpr int sorted_pair(int u, int w) { return u < w ? pair_index(u, w) : pair_index(w, u); }
// The feature order of v7's state ("positions"). Position p = 16 ks + 8 hh + 2 r + e is component e of
// register j = 2 ks + hh of the m16n8k16 A fragment that lane r = lane % 4 holds for a row. With the row
// rotated by 4 r, xr[m] = x[(m + 4 r) % 16], every register is a compile-time function of xr:
//   j = 0: [1 (lane r = 0) | 0, padding];   j = 1: x_m x_{m+8}, m = 2 e + 4 r (r < 2) or 1 + 2 e + 4 r;
//   j = 2, 3: x_{a+e} (a = 2 j - 4);        j = 4, 5: the squares of the same;
//   j = 6 .. 19: x_{a+e} x_{a+e+d}, d = (j - 6) / 2 + 1 in 1..7, a = 2 ((j - 6) % 2)   (indices of xr).
// canon(p) is the canonical feature (row of the [160, dv] state) at position p; a bijection of [0, 160)
// (the 7 padding positions map to the zero rows 153 .. 159).
constexpr int canon(int p) {
  const int ks = p / 16, col = p % 16, hh = col / 8, r = (col % 8) / 2, e = col % 2, j = 2 * ks + hh;
  if (j == 0) return p == 0 ? 0 : 152 + p;
  if (j == 1) {
    const int m = (r < 2 ? 0 : 1) + 2 * e + 4 * r;
    return sorted_pair(m & 15, (m + 8) & 15);
  }
  if (j < 4) return 1 + ((2 * (j - 2) + e + 4 * r) & 15);
  if (j < 6) return 17 + ((2 * (j - 4) + e + 4 * r) & 15);
  const int d = (j - 6) / 2 + 1, m = 2 * ((j - 6) % 2) + e + 4 * r;
  return sorted_pair(m & 15, (m + d) & 15);
}
constexpr bool canon_is_bijection() {
  bool seen[F] = {};
  for (int p = 0; p < F; ++p) {
    const int c = canon(p);
    if (c < 0 || c >= F || seen[c]) return false;
    seen[c] = true;
  }
  return true;
}
static_assert(canon_is_bijection(), "v7 feature positions must be a permutation of the canonical features");
struct CanonTable {
  int16_t v[F];
};
constexpr CanonTable make_canon() {
  CanonTable t{};
  for (int p = 0; p < F; ++p) t.v[p] = int16_t(canon(p));
  return t;
}
__constant__ CanonTable c_canon = make_canon();

struct __align__(128) Smem {
  bf16 q[2][C * LDX];
  bf16 k[2][C * LDX];
  bf16 v[2][C * LDV];
  bf16 fkt[F * LDT];         // F(K) transposed [position][t]
  bf16 sbt[DS * LDF];        // bf16 copy of the state slice, [d][position]
  bf16 z2h[2][16 * LDZ];     // Z2 / 32 as bf16 hi and lo, [j][i]
  float z2[16 * 16];
  float z1[16];
  float z0;
};

__device__ __forceinline__ uint32_t hmul2u(uint32_t x, uint32_t y) {
  __nv_bfloat162 r = __hmul2(*reinterpret_cast<__nv_bfloat162*>(&x), *reinterpret_cast<__nv_bfloat162*>(&y));
  return *reinterpret_cast<uint32_t*>(&r);
}

// The bf16 hi / lo operands of Z2[i][j] / 32 (z2 = Z2[i][j], fp32), stored transposed [j][i].
__device__ __forceinline__ void split_entry(Smem& sm, int i, int j, float z2) {
  const float x = z2 * (1.0f / 32.0f);
  const bf16 hi = __float2bfloat16_rn(x);
  sm.z2h[0][j * LDZ + i] = hi;
  sm.z2h[1][j * LDZ + i] = __float2bfloat16_rn(x - __bfloat162float(hi));
}
// Entries [first, 256) step `step` of them from the Gram sums in shared memory.
__device__ __forceinline__ void split_gram(Smem& sm, int first, int step) {
  for (int e = first; e < 256; e += step) split_entry(sm, e / 16, e % 16, sm.z2[e]);
}

// Part `part` of the chunk's Gram sums (one warp each; k: the chunk's K tile), added to the running ones:
// 0 and 1 the columns [8 part, 8 part + 8) of Z2 += K^T K, 2 Z1 += K^T 1 and Z0 += the valid rows. With
// kSplit a Z2 part also writes the bf16 hi / lo operands of the entries it updated (its own registers: no
// other warp touches them), so no warp waits for another between the sums and the split.
template <bool kSplit>
__device__ __forceinline__ void gram_part(Smem& sm, const bf16* k, int part, int lane, int valid) {
  const int g = lane / 4;
  float zt[4] = {};
  if (part < 2) {
#pragma unroll
    for (int ks = 0; ks < C / 16; ++ks) {
      uint32_t ka[4], kb[4];
      ldsm_at(ka, k + 16 * ks * LDX, LDX, lane);
      ldsm_bt(kb, k + 16 * ks * LDX, LDX, lane);
      if (part == 0)
        mma(zt, ka, kb[0], kb[1]);
      else
        mma(zt, ka, kb[2], kb[3]);
    }
  } else {
    const uint32_t ones = pack_bf2(g == 0 ? 1.0f : 0.0f, g == 0 ? 1.0f : 0.0f);
#pragma unroll
    for (int ks = 0; ks < C / 16; ++ks) {
      uint32_t ka[4];
      ldsm_at(ka, k + 16 * ks * LDX, LDX, lane);
      mma(zt, ka, ones, ones);
    }
  }
  add_gram_part(sm, zt, part, lane, valid, [&](int i, int j, float x) {
    if (kSplit) split_entry(sm, i, j, x);
  });
}

// Positions [P0, P0 + N) of F(K) for keys (t, t + 1) into the transposed buffer (one bf16 pair per store;
// a warp writes 64 consecutive keys of one position).
template <int P0, int... I>
__device__ __forceinline__ void store_keys(std::integer_sequence<int, I...>, const __nv_bfloat162 (&xh)[16],
                                           __nv_bfloat162 one, bf16* ft) {
  ((*reinterpret_cast<__nv_bfloat162*>(ft + (P0 + I) * LDT) = feature<canon(P0 + I)>(xh, one)), ...);
}
template <int P0, int N>
__device__ __forceinline__ void build_keys(const bf16* tile, bf16* ft, int t, int valid) {
  __nv_bfloat162 xh[16];
  load_pair_half(xh, tile, t);
  store_keys<P0>(std::make_integer_sequence<int, N>(), xh,
                 __floats2bfloat162_rn(t < valid ? 1.0f : 0.0f, t + 1 < valid ? 1.0f : 0.0f), ft + t);
}
// Part `part` of `parts` (4: the update warps in output passes, 8: every warp in state-only passes).
template <int kParts>
__device__ __forceinline__ void build_part(const bf16* tile, bf16* ft, int part, int lane, int valid) {
  constexpr int N = F / kParts;
  const int t = 2 * lane;
  switch (part) {
#define JRT_V7_PART(P) \
  case P:              \
    if constexpr (P < kParts) build_keys<P * N, N>(tile, ft, t, valid); \
    break;
    JRT_V7_PART(0)
    JRT_V7_PART(1)
    JRT_V7_PART(2)
    JRT_V7_PART(3)
    JRT_V7_PART(4)
    JRT_V7_PART(5)
    JRT_V7_PART(6)
    JRT_V7_PART(7)
#undef JRT_V7_PART
  }
}

// The lane's row of q / 2, rotated by 4 (lane % 4): x[m] = (xr[2 m], xr[2 m + 1]) as bf16 pairs.
__device__ __forceinline__ void load_rotated(uint32_t (&x)[8], const bf16* row, int c4) {
  const uint32_t half2 = pack_bf2(0.5f, 0.5f);
#pragma unroll
  for (int m = 0; m < 4; ++m) {
    const uint2 w = *reinterpret_cast<const uint2*>(row + ((4 * m + 4 * c4) & 15));
    x[2 * m] = hmul2u(w.x, half2);
    x[2 * m + 1] = hmul2u(w.y, half2);
  }
}
// Register j of the lane's F(q) A fragment for one row (canon()'s table); cst = [1 | 0, 0], sel picks the
// low (r < 2) or high (r >= 2) halves for j = 1.
template <int j>
__device__ __forceinline__ uint32_t fq_reg(const uint32_t (&x)[8], uint32_t cst, uint32_t sel) {
  if constexpr (j == 0) {
    return cst;
  } else if constexpr (j == 1) {
    return hmul2u(__byte_perm(x[0], x[1], sel), __byte_perm(x[4], x[5], sel));
  } else if constexpr (j < 4) {
    return x[j - 2];
  } else if constexpr (j < 6) {
    const float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&x[j - 4]));
    return pack_bf2(0.70710678118654752f * f.x * f.x, 0.70710678118654752f * f.y * f.y);
  } else {
    constexpr int d = (j - 6) / 2 + 1, a = 2 * ((j - 6) % 2), b = a + d;
    if constexpr (b % 2 == 0)
      return hmul2u(x[a / 2], x[b / 2]);
    else
      return hmul2u(x[a / 2], __byte_perm(x[b / 2], x[((b + 1) & 15) / 2], 0x5432));
  }
}

// k-step KS of O += F(Q) S_bf16: the A fragment from the rotated rows (xa: row g, xb: row g + 8), the B
// fragments of all 64 columns from the bf16 state copy [d][position].
template <int KS>
__device__ __forceinline__ void fq_step(float (&o)[8][4], const uint32_t (&xa)[8], const uint32_t (&xb)[8],
                                        uint32_t cst, uint32_t sel, const bf16* sbt, int lane) {
  const uint32_t fa[4] = {fq_reg<2 * KS>(xa, cst, sel), fq_reg<2 * KS>(xb, cst, sel), fq_reg<2 * KS + 1>(xa, cst, sel),
                          fq_reg<2 * KS + 1>(xb, cst, sel)};
#pragma unroll
  for (int nn = 0; nn < 4; ++nn) {
    uint32_t sb[4];
    ldsm_b(sb, sbt + 16 * nn * LDF + 16 * KS, LDF, lane);
    mma(o[2 * nn], fa, sb[0], sb[1]);
    mma(o[2 * nn + 1], fa, sb[2], sb[3]);
  }
}
template <int... KS>
__device__ __forceinline__ void fq_readout(std::integer_sequence<int, KS...>, float (&o)[8][4], const uint32_t (&xa)[8],
                                           const uint32_t (&xb)[8], uint32_t cst, uint32_t sel, const bf16* sbt,
                                           int lane) {
  (fq_step<KS>(o, xa, xb, cst, sel, sbt, lane), ...);
}

__device__ __forceinline__ void chunk_top(Smem& sm, const LaCudaArgs& a, int start, int t0, int end, int buf, int h,
                                          int col0, bool want_q) {
  cp_wait_all();
  __syncthreads();
  if (t0 + C < end) issue_loads(sm, buf ^ 1, a, start + t0 + C, min(C, end - t0 - C), h, col0, want_q);
}

// Readout warps (rg = warp 0..3): outputs of query rows 16 rg .. 16 rg + 15.
template <bool kOut>
__device__ void readout_loop(Smem& sm, const LaCudaArgs& a, int start, int beg, int end, int h, int col0) {
  const int rg = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c4 = lane % 4;
  const int ldo = int(a.ldo ? a.ldo : int64_t(a.H) * a.dv);
  const bool full = col0 + DS <= a.dv;  // a whole 64-column slice: no per-column check on the stores
  const uint32_t cst = pack_bf2(c4 == 0 ? 1.0f : 0.0f, 0.0f), sel = c4 < 2 ? 0x5410u : 0x7632u;
  int buf = 0;
  for (int t0 = beg; t0 < end; t0 += C, buf ^= 1) {
    const int valid = min(C, end - t0);
    chunk_top(sm, a, start, t0, end, buf, h, col0, kOut);
    if constexpr (!kOut) {
      build_part<8>(sm.k[buf], sm.fkt, rg, lane, valid);
      __syncthreads();
      // State-only passes: warps 0-2 add the chunk's Gram sums while the update warps run their MMAs (the readout
      // warps had nothing else to do until the next chunk); the same three MMA chains in the same chunk order as the
      // update warps' in output passes, so the sums are bitwise the same. JRT-RNN B = 16 N = 16k 1.345 / 1.344 ->
      // 1.331 / 1.326 ms, Based B = 2 N = 16k (segment states) 0.285 / 0.280 -> 0.275 / 0.276 (dev/README.md v7.2).
      if (rg < 3) gram_part<false>(sm, sm.k[buf], rg, lane, valid);
      continue;
    }
    // Phase 1: intra-chunk part, one 16-key block at a time (s = Q K^T, w = 1 + s/4 + s^2/32, masked on
    // the diagonal block; row sums in fp32; O += P V with P from the accumulators), then den_inter.
    uint32_t qa[4];
    ldsm_a(qa, sm.q[buf] + 16 * rg * LDX, LDX, lane);
    float rs0 = 0.0f, rs1 = 0.0f;
    float o[8][4];
    intra_chunk<4>(o, qa, sm.k[buf], sm.v[buf], rg, lane, rs0, rs1);
    // den_inter(row) = Z0 + sum_j q_j (Z1_j / 4 + (Q Z2 / 32)_j); the lane holds columns 8 n + 2 c4 + (0, 1)
    // of rows g (qa[2 n]) and g + 8 (qa[2 n + 1]).
    float y[2][4] = {};
#pragma unroll
    for (int part = 0; part < 2; ++part) {
      uint32_t zb[4];
      ldsm_b(zb, sm.z2h[part], LDZ, lane);
      mma(y[0], qa, zb[0], zb[1]);
      mma(y[1], qa, zb[2], zb[3]);
    }
    float d0 = 0.0f, d1 = 0.0f;
#pragma unroll
    for (int n = 0; n < 2; ++n) {
      const float2 z1 = *reinterpret_cast<const float2*>(sm.z1 + 8 * n + 2 * c4);
      const float2 qg = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&qa[2 * n]));
      const float2 qh = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&qa[2 * n + 1]));
      d0 += qg.x * (y[n][0] + 0.25f * z1.x) + qg.y * (y[n][1] + 0.25f * z1.y);
      d1 += qh.x * (y[n][2] + 0.25f * z1.x) + qh.y * (y[n][3] + 0.25f * z1.y);
    }
    const float den0 = quad_sum(d0) + sm.z0 + quad_sum(rs0), den1 = quad_sum(d1) + sm.z0 + quad_sum(rs1);
    __syncthreads();
    // Phase 2: O += F(Q) S_bf16, F(Q) built per k-step from the rotated rows g and g + 8.
    uint32_t xa[8], xb[8];
    load_rotated(xa, sm.q[buf] + (16 * rg + g) * LDX, c4);
    load_rotated(xb, sm.q[buf] + (16 * rg + g + 8) * LDX, c4);
    fq_readout(std::make_integer_sequence<int, F / 16>(), o, xa, xb, cst, sel, sm.sbt, lane);
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int r = 16 * rg + g + 8 * hr;
      if (r < valid) {
        const int64_t row = int64_t(start) + t0 + r;
        const float scale = (a.dt ? a.dt[row * a.H + h] : 1.0f) / ((hr ? den1 : den0) + a.eps);
        bf16* orow = a.o + row * ldo + int64_t(h) * a.dv + col0 + 2 * c4;
#pragma unroll
        for (int n = 0; n < 8; ++n)
          if (full || col0 + 8 * n + 2 * c4 < a.dv)
            *reinterpret_cast<uint32_t*>(orow + 8 * n) = pack_bf2(o[n][2 * hr] * scale, o[n][2 * hr + 1] * scale);
      }
    }
  }
}

// Update warps (u = warp - 4): the fp32 state S^T[32 mh + 16 m + g + 8 (e / 2)][80 nf + 8 n + 2 c4 + (e % 2)]
// (positions) = st[m][n][e], mh = u % 2, nf = u / 2.
template <bool kOut>
__device__ void update_loop(Smem& sm, const LaCudaArgs& a, int start, int beg, int end, int h, int col0,
                            const Ends& ends) {
  const int u = threadIdx.x / 32 - 4, lane = threadIdx.x % 32, g = lane / 4, c4 = lane % 4, mh = u % 2, nf = u / 2;
  float st[2][10][4];  // rows of the canonical state through the position order (c_canon)
  each_state(st, col0 + 32 * mh, 80 * nf, lane, [&](float& x, int d, int p) {
    x = (ends.S_in && d < a.dv) ? ends.S_in[int64_t(c_canon.v[p]) * a.dv + d] : 0.0f;
  });
  int buf = 0;
  for (int t0 = beg; t0 < end; t0 += C, buf ^= 1) {
    const int valid = min(C, end - t0);
    chunk_top(sm, a, start, t0, end, buf, h, col0, kOut);
    // Phase 1: the bf16 state copy (output passes) and F(K).
    if constexpr (kOut) {
#pragma unroll
      for (int m = 0; m < 2; ++m)
#pragma unroll
        for (int n = 0; n < 10; ++n) {
          bf16* p = sm.sbt + (32 * mh + 16 * m + g) * LDF + 80 * nf + 8 * n + 2 * c4;
          *reinterpret_cast<uint32_t*>(p) = pack_bf2(st[m][n][0], st[m][n][1]);
          *reinterpret_cast<uint32_t*>(p + 8 * LDF) = pack_bf2(st[m][n][2], st[m][n][3]);
        }
      build_part<4>(sm.k[buf], sm.fkt, u, lane, valid);
    } else {
      build_part<8>(sm.k[buf], sm.fkt, u + 4, lane, valid);
    }
    __syncthreads();
    // Phase 2: S^T += V^T F(K).
#pragma unroll
    for (int ks = 0; ks < C / 16; ++ks) {
      uint32_t va[2][4];
      ldsm_at(va[0], sm.v[buf] + 16 * ks * LDV + 32 * mh, LDV, lane);
      ldsm_at(va[1], sm.v[buf] + 16 * ks * LDV + 32 * mh + 16, LDV, lane);
#pragma unroll
      for (int np = 0; np < 5; ++np) {
        uint32_t fb[4];
        ldsm_b(fb, sm.fkt + (80 * nf + 16 * np) * LDT + 16 * ks, LDT, lane);
#pragma unroll
        for (int m = 0; m < 2; ++m) {
          mma(st[m][2 * np], va[m], fb[0], fb[1]);
          mma(st[m][2 * np + 1], va[m], fb[2], fb[3]);
        }
      }
    }
    // The chunk's Gram sums, added to the running ones (and their bf16 hi / lo operands), in three parts (output
    // passes; state-only passes add them in the readout warps).
    if constexpr (kOut)
      if (u < 3) gram_part<true>(sm, sm.k[buf], u, lane, valid);
  }
  if (ends.S_out)
    each_state(st, col0 + 32 * mh, 80 * nf, lane, [&](float& x, int d, int p) {
      if (d < a.dv) ends.S_out[int64_t(c_canon.v[p]) * a.dv + d] = x;
    });
}

template <bool kOut>
__device__ void run_segment(Smem& sm, const LaCudaArgs& a, int start, int beg, int end, int h, int col0,
                            const Ends& ends) {
  load_gram(sm, ends.z_in);
  __syncthreads();
  if (kOut) split_gram(sm, threadIdx.x, NT);
  if (beg < end) issue_loads(sm, 0, a, start + beg, min(C, end - beg), h, col0, kOut);
  if (threadIdx.x >= 128)
    update_loop<kOut>(sm, a, start, beg, end, h, col0, ends);
  else
    readout_loop<kOut>(sm, a, start, beg, end, h, col0);
  __syncthreads();
  if (ends.z_out && col0 == 0) store_gram(sm, ends.z_out);
}

}  // namespace v7

enum class Mode { kSegState, kOutput, kAccumulate, kSegLocal };

// The segment runner of a kernel family: 0 = v5 (mma.sync), 1 = v6 (wgmma, sm_90a), 2 = v7 (mma.sync).
template <int kFam, bool kOut>
__device__ __forceinline__ void run(unsigned char* raw, const LaCudaArgs& a, int start, int beg, int end, int h,
                                    int col0, const Ends& ends) {
  if constexpr (kFam == 1)
    wg::run_segment<kOut>(*reinterpret_cast<wg::Smem*>(raw), a, start, beg, end, h, col0, ends);
  else if constexpr (kFam == 2)
    v7::run_segment<kOut>(*reinterpret_cast<v7::Smem*>(raw), a, start, beg, end, h, col0, ends);
  else
    run_segment<kOut>(*reinterpret_cast<Smem*>(raw), a, start, beg, end, h, col0, ends);
}
template <int kFam>
constexpr size_t smem_bytes() {
  return kFam == 1 ? sizeof(wg::Smem) : kFam == 2 ? sizeof(v7::Smem) : sizeof(Smem);
}

// grid (slices, B*H, nseg).
template <Mode kMode, int kFam, int kMinBlocks = 2>
__global__ void __launch_bounds__(NT, kMinBlocks)
    kernel(LaCudaArgs a, int seg_len, int nseg, float* segS, float* segZ) {
  extern __shared__ __align__(128) unsigned char raw[];
  const int col0 = blockIdx.x * DS, bh = blockIdx.y, b = bh / a.H, h = bh % a.H, s = blockIdx.z;
  const int start = a.cu_seqlens[b], len = a.cu_seqlens[b + 1] - start;
  const int64_t SF = int64_t(F) * a.dv;
  Ends ends;
  // In the state-only modes only slice 0 reads and writes z: another slice could otherwise read a z
  // that slice 0 has already updated in place.
  const bool own_z = col0 == 0;
  if (kMode == Mode::kAccumulate) {
    ends.S_in = ends.S_out = a.S_out + bh * SF;
    if (own_z) ends.z_in = ends.z_out = a.z_out + int64_t(bh) * F;
    run<kFam, false>(raw, a, start, 0, len, h, col0, ends);
    return;
  }
  const int beg = s * seg_len, end = min(len, beg + seg_len);
  if (beg >= len && beg > 0) return;  // (an empty sequence still passes its initial state through)
  const int64_t seg = int64_t(bh) * nseg + s;
  if (kMode == Mode::kSegLocal) {  // every segment's local state (the encoder split; seg_sum_kernel adds them)
    if (beg >= len) return;
    ends.S_out = segS + seg * SF;
    if (own_z) ends.z_out = segZ + seg * F;
    run<kFam, false>(raw, a, start, beg, end, h, col0, ends);
    return;
  }
  if (kMode == Mode::kSegState) {
    if (s == nseg - 1 || beg >= len) return;  // the last segment's local state is never needed
    ends.S_out = segS + seg * SF;
    if (own_z) ends.z_out = segZ + seg * F;
    run<kFam, false>(raw, a, start, beg, end, h, col0, ends);
    return;
  }
  if (s > 0) {  // the scan left segment s's initial state in its slot (segment 0's is S0)
    ends.S_in = segS + seg * SF;
    ends.z_in = segZ + seg * F;
  } else {
    ends.S_in = a.S0 ? a.S0 + bh * SF : nullptr;
    ends.z_in = a.z0 ? a.z0 + int64_t(bh) * F : nullptr;
  }
  if (a.S_out && end == len) {
    ends.S_out = a.S_out + bh * SF;
    ends.z_out = a.z_out + int64_t(bh) * F;
  }
  run<kFam, true>(raw, a, start, beg, end, h, col0, ends);
}

// Which kernels run (la_prefill_set_kernel): v7 (mma.sync, roles) by default; v5 (mma.sync, tiles) and the
// v6 wgmma kernels (sm_90 only) on request (dev/README.md).
LaPrefillKernel g_kernel = LaPrefillKernel::kRoles;
bool sm90() {
  static int major = -1;
  if (major < 0) {
    int dev = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  }
  return major == 9;
}

template <Mode kMode, int kFam, int kMinBlocks = 2>
void launch_fam(dim3 grid, const LaCudaArgs& a, int seg_len, int nseg, float* segS, float* segZ) {
  kernel<kMode, kFam, kMinBlocks><<<grid, NT, smem_bytes<kFam>(), a.stream>>>(a, seg_len, nseg, segS, segZ);
}
template <Mode kMode>
void launch(dim3 grid, const LaCudaArgs& a, int seg_len, int nseg, float* segS, float* segZ) {
  if (g_kernel == LaPrefillKernel::kWgmma1Cta && sm90())
    launch_fam<kMode, 1, 1>(grid, a, seg_len, nseg, segS, segZ);
  else if (g_kernel == LaPrefillKernel::kWgmma && sm90())
    launch_fam<kMode, 1>(grid, a, seg_len, nseg, segS, segZ);
  else if (g_kernel == LaPrefillKernel::kMmaSync)
    launch_fam<kMode, 0>(grid, a, seg_len, nseg, segS, segZ);
  else
    launch_fam<kMode, 2>(grid, a, seg_len, nseg, segS, segZ);
}

template <int kFam, int kMinBlocks = 2>
void allow_smem() {
  for (auto fn : {(const void*)kernel<Mode::kSegState, kFam, kMinBlocks>,
                  (const void*)kernel<Mode::kOutput, kFam, kMinBlocks>,
                  (const void*)kernel<Mode::kAccumulate, kFam, kMinBlocks>,
                  (const void*)kernel<Mode::kSegLocal, kFam, kMinBlocks>})
    JRT_CUDA_CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem_bytes<kFam>())));
}
void init() {
  static bool done = false;
  if (done) return;
  allow_smem<0>();
  allow_smem<1>();
  allow_smem<1, 1>();
  allow_smem<2>();
  done = true;
}

int choose_segments(const LaCudaArgs& a, int* seg_len) {
  return segment_split(a, seg_len, [&](int64_t sms) {
    const int64_t ctas = int64_t(a.B) * a.H * ((a.dv + DS - 1) / DS);
    // At most one wave of 2 CTAs per SM (a second, partial wave would cost a whole segment's time).
    // A split adds a state pass over all but the last segment and a scan: with s segments the passes
    // cover ~1.6 / s of the sequence each, so fewer than 4 segments never paid (measured at B = 4 / 8,
    // N = 2k / 4k: unsplit 0.117 / 0.121 ms against 0.140 / 0.213 split, dev/README.md "v7"); segments
    // of at least 1024 tokens, or 512 when the grid is very small (<= 1/8 of the CTA slots).
    const int64_t want = std::max<int64_t>(1, 2 * sms / ctas);
    const int64_t by_len = std::max<int64_t>(1, a.max_len / (want >= 8 ? 512 : 1024));
    const int64_t nseg = std::max<int64_t>(1, std::min(want, by_len));
    return nseg < 4 ? int64_t(1) : nseg;
  });
}

}  // namespace v4

void init_pairs() {
  static bool done = false;
  if (done) return;
  for (auto fn : {(const void*)seg_state_kernel, (const void*)chunk_kernel})
    JRT_CUDA_CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, int(sizeof(Smem))));
  done = true;
}

int choose_segments(const LaCudaArgs& a, int* seg_len) {
  return segment_split(a, seg_len, [&](int64_t sms) {
    const int64_t ctas = int64_t(a.B) * a.H * ((a.dv + W - 1) / W);
    // Enough CTAs for ~2 waves of 2 CTAs/SM; never segments shorter than 1024 tokens.
    const int64_t want = (4 * sms + ctas - 1) / ctas;
    const int64_t by_len = std::max<int64_t>(1, a.max_len / 1024);
    return std::max<int64_t>(1, std::min(want, by_len));
  });
}

}  // namespace

// The decay variant (gamma) keeps the v3 kernels; everything else runs v4.
static bool use_v4(const LaCudaArgs& a) { return a.gamma == nullptr; }

// The kernels move q / k / v rows in 16-byte pieces (cp.async / uint4): rows must start 16-byte aligned.
// Rows starting at p with a stride of ld bf16 elements all begin on 16-byte boundaries (what cp.async's 16-byte
// copies and the bulk copies need; a null p passes).
static bool rows16(const void* p, int64_t ld) { return reinterpret_cast<uintptr_t>(p) % 16 == 0 && ld % 8 == 0; }

static void check_rows(const LaCudaArgs& a, const char* who) {
  const int64_t ldq = a.ldq ? a.ldq : int64_t(a.H) * 16, ldk = a.ldk ? a.ldk : int64_t(a.H) * 16;
  const int64_t ldv = a.ldv ? a.ldv : int64_t(a.H) * a.dv;
  JRT_CHECK(rows16(a.q, ldq) && rows16(a.k, ldk) && rows16(a.v, ldv),
            "{}: q / k / v rows must be 16-byte aligned (row strides {}, {}, {} elements)", who, ldq, ldk, ldv);
}

size_t la_prefill_cuda_workspace(const LaCudaArgs& a) {
  int sl;
  const int nseg = use_v4(a) ? v4::choose_segments(a, &sl) : choose_segments(a, &sl);
  if (nseg <= 1) return 0;
  return size_t(a.B) * a.H * nseg * (size_t(F) * a.dv + F) * sizeof(float);
}

void la_prefill_cuda(const LaCudaArgs& a, void* workspace) {
  JRT_CHECK(a.dv % 8 == 0 && a.dv > 0, "la_prefill_cuda: d_v must be a positive multiple of 8, got {}", a.dv);
  JRT_CHECK(a.B > 0 && a.H > 0, "la_prefill_cuda: empty batch");
  JRT_CHECK((a.S_out == nullptr) == (a.z_out == nullptr), "la_prefill_cuda: S_out and z_out go together");
  check_rows(a, "la_prefill_cuda");
  if (use_v4(a)) {
    v4::init();
    int seg_len;
    const int nseg = v4::choose_segments(a, &seg_len);
    const dim3 grid((a.dv + v4::DS - 1) / v4::DS, a.B * a.H, nseg);
    float* segS = nullptr;
    float* segZ = nullptr;
    if (nseg > 1) {
      JRT_CHECK(workspace != nullptr, "la_prefill_cuda: workspace required ({} segments)", nseg);
      segS = static_cast<float*>(workspace);
      segZ = segS + size_t(a.B) * a.H * nseg * F * a.dv;
      v4::launch<v4::Mode::kSegState>(grid, a, seg_len, nseg, segS, segZ);
      const int per = F * a.dv + F;
      seg_scan_kernel<<<dim3((per + 255) / 256, a.B * a.H), 256, 0, a.stream>>>(a, seg_len, nseg, segS, segZ);
    }
    v4::launch<v4::Mode::kOutput>(grid, a, seg_len, nseg, segS, segZ);
    JRT_CUDA_CHECK(cudaGetLastError());
    return;
  }
  init_pairs();
  int seg_len;
  const int nseg = choose_segments(a, &seg_len);
  const int slices = (a.dv + W - 1) / W;
  const dim3 grid(slices, a.B * a.H, nseg);
  float* segS = nullptr;
  float* segZ = nullptr;
  if (nseg > 1) {
    JRT_CHECK(workspace != nullptr, "la_prefill_cuda: workspace required ({} segments)", nseg);
    segS = static_cast<float*>(workspace);
    segZ = segS + size_t(a.B) * a.H * nseg * F * a.dv;
    seg_state_kernel<<<grid, NT, sizeof(Smem), a.stream>>>(a, seg_len, nseg, segS, segZ);
    const int per = F * a.dv + F;
    seg_scan_kernel<<<dim3((per + 255) / 256, a.B * a.H), 256, 0, a.stream>>>(a, seg_len, nseg, segS, segZ);
  }
  chunk_kernel<<<grid, NT, sizeof(Smem), a.stream>>>(a, seg_len, nseg, segS, segZ);
  JRT_CUDA_CHECK(cudaGetLastError());
}

void la_prefill_set_kernel(LaPrefillKernel k) { v4::g_kernel = k; }
bool la_prefill_wgmma_available() { return v4::sm90(); }

namespace {
struct DecodeChoice {
  LaDecodeKernel kernel = LaDecodeKernel::kAuto;
  int max_ctas = 0;
  bool env_read = false;
};
DecodeChoice& decode_choice() {
  static DecodeChoice c;
  if (!c.env_read) {
    c.env_read = true;
    if (const char* e = std::getenv("JRT_LA_DECODE")) {
      const std::string n = e;
      c.kernel = n == "perhead" ? LaDecodeKernel::kPerHead : n == "stream" ? LaDecodeKernel::kStream : c.kernel;
    }
  }
  return c;
}
}  // namespace

void la_decode_set_kernel(LaDecodeKernel k, int max_ctas) {
  decode_choice().kernel = k;
  decode_choice().max_ctas = max_ctas;
}

void la_decode_step_cuda(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* y,
                         float* S, float* z, int B, int H, int dv, const float* gamma, const float* dt, float eps,
                         cudaStream_t stream, LaDecodeRows rows) {
  JRT_CHECK(B > 0 && H > 0 && dv > 0, "la_decode_step_cuda: empty batch");
  JRT_CHECK(dv <= kDecMaxDv && dv % 2 == 0, "la_decode_step_cuda: d_v {} is not supported (even, <= {})", dv,
            kDecMaxDv);
  const DecIn in{q,
                 k,
                 v,
                 rows.ldq ? rows.ldq : int64_t(H) * 16,
                 rows.ldk ? rows.ldk : int64_t(H) * 16,
                 rows.ldv ? rows.ldv : int64_t(H) * dv,
                 H};
  JRT_CHECK(in.ldq >= int64_t(H) * 16 && in.ldk >= int64_t(H) * 16 && in.ldv >= int64_t(H) * dv && in.ldv % 2 == 0,
            "la_decode_step_cuda: row strides (q {}, k {}, v {}) shorter than a row, or an odd v stride", in.ldq, in.ldk,
            in.ldv);
  const DecodeChoice& c = decode_choice();
  const int items = B * H, nsm = jrt::cuda::sm_count();
  // sm_90 only (its bulk copies and mbarriers are compiled for sm_90a alone). The bulk copies need 16-byte sizes
  // and addresses: d_v % 8 == 0 (the v row; the state's 153 d_v floats then too) and q / k / v rows 16-byte aligned.
  const bool can_stream = v4::sm90() && dv % 8 == 0 && dv <= kStreamMaxDv && rows16(q, in.ldq) &&
                          rows16(k, in.ldk) && rows16(v, in.ldv);
  if (can_stream && c.kernel != LaDecodeKernel::kPerHead) {
    const size_t smem = size_t(2) * stream_slot_bytes(dv);
    static std::atomic<uint64_t> raised{0};
    cuda::raise_smem_limit_once(decode_stream_kernel, int(size_t(2) * stream_slot_bytes(kStreamMaxDv)), raised);
    // As many CTAs per SM as the slots allow (d_v 64: 2, 112: 1), cached per d_v.
    static std::array<int, kStreamMaxDv + 1> per_sm{};
    if (per_sm[size_t(dv)] == 0) {
      int n = 0;
      JRT_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, decode_stream_kernel, kDecThreads, smem));
      per_sm[size_t(dv)] = std::max(1, n);
    }
    const int ctas = std::min(items, c.max_ctas > 0 ? c.max_ctas : nsm * per_sm[size_t(dv)]);
    cuda::launch_pdl(decode_stream_kernel, unsigned(ctas), kDecThreads, smem, stream, in, y, S, z, items, dv, gamma,
                     dt, eps);
  } else {
    cuda::launch_pdl(decode_step_kernel, unsigned(items), kDecThreads, 0, stream, in, y, S, z, dv, gamma, dt, eps);
  }
  JRT_CUDA_CHECK(cudaGetLastError());
}

size_t la_accumulate_cuda_workspace(const LaCudaArgs& a) {
  int sl;
  const int nseg = v4::choose_segments(a, &sl);
  if (nseg <= 1) return 0;
  return size_t(a.B) * a.H * nseg * (size_t(F) * a.dv + F) * sizeof(float);
}

void la_accumulate_state_cuda(const LaCudaArgs& a, void* workspace) {
  JRT_CHECK(a.dv % 8 == 0 && a.dv > 0, "la_accumulate_state_cuda: d_v must be a positive multiple of 8, got {}", a.dv);
  check_rows(a, "la_accumulate_state_cuda");
  v4::init();
  const int slices = (a.dv + v4::DS - 1) / v4::DS;
  int seg_len;
  const int nseg = v4::choose_segments(a, &seg_len);
  if (nseg > 1 && workspace) {  // small batch: local states of segments in parallel, then an ordered sum
    float* segS = static_cast<float*>(workspace);
    float* segZ = segS + size_t(a.B) * a.H * nseg * F * a.dv;
    v4::launch<v4::Mode::kSegLocal>(dim3(slices, a.B * a.H, nseg), a, seg_len, nseg, segS, segZ);
    const int per = F * a.dv + F;
    seg_sum_kernel<<<dim3((per + 255) / 256, a.B * a.H), 256, 0, a.stream>>>(a, seg_len, nseg, segS, segZ);
  } else {
    v4::launch<v4::Mode::kAccumulate>(dim3(slices, a.B * a.H), a, 0, 1, nullptr, nullptr);
  }
  JRT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace jrt::ops
