// ops/linear_attention.cu — Taylor linear attention prefill kernels (see linear_attention_cuda.h).
// Shapes: q, k [T, H, 16], v, o [T, H, dv] bf16; state [B, H, 160, dv] + z [B, H, 160] fp32.
//
// One CTA = (32-column slice of d_v, sequence b, head h, segment s); 4 warps; 64-token chunks:
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

#include "core/cuda_util.h"
#include "ops/linear_attention_cuda.h"

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

// Encoder accumulation: grid (slices, B*H); S_out/z_out += sum over the whole sequence.
__global__ void __launch_bounds__(NT) accumulate_kernel(LaCudaArgs a) {
  extern __shared__ __align__(128) unsigned char raw[];
  Smem& sm = *reinterpret_cast<Smem*>(raw);
  const int col0 = blockIdx.x * W, b = blockIdx.y / a.H, h = blockIdx.y % a.H;
  const Seq sq = seq_of(a, b);
  float* S = a.S_out + int64_t(blockIdx.y) * F * a.dv;
  float* z = a.z_out + int64_t(blockIdx.y) * F;
  StateFrags sf;
  load_state(sm, sf, S, z, col0, a.dv);
  for (int t0 = 0; t0 < sq.len; t0 += C) {
    const int valid = min(C, sq.len - t0);
    load_chunk(sm, a, sq.start + t0, valid, h, col0, false);
    __syncthreads();
    build_features(sm, sm.k, valid);
    __syncthreads();
    update_state(sm, sf, valid, 0.0f, false);
  }
  store_state(sm, sf, S, z, col0, a.dv, blockIdx.x == 0);
}

// grid B*H, block 256 = 64 state columns x 4 feature groups (each thread updates rows f = g, g+4, ...
// of its columns and keeps a partial readout; the groups are summed in shared memory). Features in
// shared memory, fp32.
constexpr int kDecCols = 64, kDecGroups = 4, kDecMaxDv = 256;
__global__ void __launch_bounds__(kDecCols * kDecGroups) decode_step_kernel(const bf16* q, const bf16* k, const bf16* v,
                                                                           bf16* y, float* S, float* z, int H, int dv,
                                                                           const float* gamma, const float* dt,
                                                                           float eps) {
  __shared__ float fq[F], fk[F], red[8], part[kDecGroups][kDecMaxDv];
  const int bh = blockIdx.x, h = bh % H;
  float* Sb = S + int64_t(bh) * F * dv;
  float* zb = z + int64_t(bh) * F;
  if (threadIdx.x < 2) {
    // Two threads build the two feature vectors in fp32 from the 16 inputs.
    const bf16* x = (threadIdx.x == 0 ? q : k) + int64_t(bh) * 16;
    float* out = threadIdx.x == 0 ? fq : fk;
    float xv[16];
#pragma unroll
    for (int i = 0; i < 16; ++i) xv[i] = __bfloat162float(x[i]);
    out[0] = 1.0f;
#pragma unroll
    for (int i = 0; i < 16; ++i) out[1 + i] = 0.5f * xv[i], out[17 + i] = xv[i] * xv[i] * 0.17677669529663687f;
#pragma unroll
    for (int i = 0; i < 15; ++i)
#pragma unroll
      for (int j = i + 1; j < 16; ++j) out[33 + i * (31 - i) / 2 + (j - i - 1)] = 0.25f * xv[i] * xv[j];
#pragma unroll
    for (int f = 153; f < F; ++f) out[f] = 0.0f;
  }
  __syncthreads();
  // z update and the denominator f(q).z (update first: the token attends to itself).
  float d = 0.0f;
  for (int f = threadIdx.x; f < F; f += blockDim.x) {
    const float zf = zb[f] + fk[f];
    zb[f] = zf;
    d += fq[f] * zf;
  }
  for (int o = 16; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = d;
  const float g = gamma ? gamma[h] : 1.0f;
  const bf16* vb = v + int64_t(bh) * dv;
  const int col = threadIdx.x % kDecCols, grp = threadIdx.x / kDecCols;
  for (int e = col; e < dv; e += kDecCols) {
    const float ve = __bfloat162float(vb[e]);
    float num = 0.0f;
    // Groups of kU state rows: every load of the group is issued before the first store. Interleaved,
    // the compiler cannot prove row f + kDecGroups (offset f * dv + e, dv a run-time value) does not
    // alias the store to row f, and keeps one load in flight per thread. Same order of sums as before.
    constexpr int kU = 8;
    for (int f0 = grp; f0 < 153; f0 += kU * kDecGroups) {
      float sv[kU];
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        const int f = f0 + u * kDecGroups;
        sv[u] = f < 153 ? Sb[int64_t(f) * dv + e] : 0.0f;
      }
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        const int f = f0 + u * kDecGroups;
        if (f < 153) {
          const float s = g * sv[u] + fk[f] * ve;
          Sb[int64_t(f) * dv + e] = s;
          num += fq[f] * s;
        }
      }
    }
    part[grp][e] = num;
  }
  __syncthreads();
  float den = 0.0f;
  for (int w = 0; w < int(blockDim.x / 32); ++w) den += red[w];
  const float scale = (dt ? dt[bh] : 1.0f) / (den + eps);
  for (int e = threadIdx.x; e < dv; e += blockDim.x) {
    float num = 0.0f;
#pragma unroll
    for (int gi = 0; gi < kDecGroups; ++gi) num += part[gi][e];
    y[int64_t(bh) * dv + e] = __float2bfloat16(num * scale);
  }
}

void init_pairs() {
  static bool done = false;
  if (done) return;
  for (auto fn : {(const void*)seg_state_kernel, (const void*)chunk_kernel, (const void*)accumulate_kernel})
    JRT_CUDA_CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, int(sizeof(Smem))));
  done = true;
}

int choose_segments(const LaCudaArgs& a, int* seg_len) {
  int sl = a.segment_len;
  if (sl <= 0) {
    int dev = 0, sms = 132;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    const int slices = (a.dv + W - 1) / W;
    const int64_t ctas = int64_t(a.B) * a.H * slices;
    // Enough CTAs for ~2 waves of 2 CTAs/SM; never segments shorter than 1024 tokens.
    int64_t want = (4 * int64_t(sms) + ctas - 1) / ctas;
    int64_t by_len = std::max<int64_t>(1, a.max_len / 1024);
    int64_t nseg = std::max<int64_t>(1, std::min(want, by_len));
    sl = int((a.max_len + nseg - 1) / nseg);
  }
  sl = std::max(C, (sl + C - 1) / C * C);
  *seg_len = sl;
  return std::max(1, (a.max_len + sl - 1) / sl);
}

}  // namespace

size_t la_prefill_cuda_workspace(const LaCudaArgs& a) {
  int sl;
  const int nseg = choose_segments(a, &sl);
  if (nseg <= 1) return 0;
  return size_t(a.B) * a.H * nseg * (size_t(F) * a.dv + F) * sizeof(float);
}

void la_prefill_cuda(const LaCudaArgs& a, void* workspace) {
  JRT_CHECK(a.dv % 8 == 0 && a.dv > 0, "la_prefill_cuda: d_v must be a positive multiple of 8, got {}", a.dv);
  JRT_CHECK(a.B > 0 && a.H > 0, "la_prefill_cuda: empty batch");
  JRT_CHECK((a.S_out == nullptr) == (a.z_out == nullptr), "la_prefill_cuda: S_out and z_out go together");
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

void la_decode_step_cuda(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* y,
                         float* S, float* z, int B, int H, int dv, const float* gamma, const float* dt, float eps,
                         cudaStream_t stream) {
  JRT_CHECK(B > 0 && H > 0 && dv > 0, "la_decode_step_cuda: empty batch");
  JRT_CHECK(dv <= kDecMaxDv, "la_decode_step_cuda: d_v {} > {} is not supported", dv, kDecMaxDv);
  decode_step_kernel<<<B * H, kDecCols * kDecGroups, 0, stream>>>(q, k, v, y, S, z, H, dv, gamma, dt, eps);
  JRT_CUDA_CHECK(cudaGetLastError());
}

void la_accumulate_state_cuda(const LaCudaArgs& a) {
  init_pairs();
  const int slices = (a.dv + W - 1) / W;
  accumulate_kernel<<<dim3(slices, a.B * a.H), NT, sizeof(Smem), a.stream>>>(a);
  JRT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace jrt::ops
