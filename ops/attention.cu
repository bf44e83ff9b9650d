// ops/attention.cu — causal (optionally windowed) softmax attention on the GPU (see cuda_ops.h):
// the flash-style prefill of packed fresh sequences, the K/V ring-cache write and the one-token
// decode step. fp32 FMA arithmetic (no tensor cores), fp32 online-softmax statistics; the softmax
// runs in base 2 with q pre-scaled by scale * log2(e).
//
// Prefill: grid (ceil(max_len / 64), H, B); a CTA of 4 warps owns 64 query rows of one (sequence,
// head), each warp 16 of them. Per tile of 32 keys staged in shared memory (bf16): scores with
// lane = key (16 accumulators per lane), online softmax per row (warp max), P V with lanes over
// column pairs (16 rows x up to 4 columns of fp32 accumulators per lane).
// Decode: grid (H, B), 4 warps; the CTA first stores its head's k, v in the ring, then each warp
// takes chunks of 32 keys (K staged in shared memory, lane = key; V read straight from global with
// lanes over columns) and the warps' (max, sum, accumulator) are merged in shared memory.
#include <cuda_bf16.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>

#include "core/cuda_util.h"
#include "ops/cuda_common.cuh"
#include "ops/cuda_ops.h"

namespace jrt::ops::cuda {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr int kMaxHd = 128;
constexpr unsigned kFull = 0xffffffffu;

// Prefill tiling.
constexpr int kBM = 64;     // query rows per CTA
constexpr int kWarps = 4;   // warps per CTA
constexpr int kRows = 16;   // query rows per warp
constexpr int kBN = 32;     // keys per tile (one per lane in the score step)
static_assert(kWarps * kRows == kBM, "every query row of the CTA belongs to one warp");

// Decode tiling.
constexpr int kDecWarps = 4;
constexpr int kDecKeys = 32;  // keys per warp chunk (one per lane)
constexpr int kDecKs = kMaxHd + 4;  // largest staged K row stride (hd8 + 4)

// bf16 pair at an address aligned to 4 bytes -> two floats (the lower address is the low half).
__device__ __forceinline__ float2 bf2_to_f2(uint32_t u) {
  return make_float2(__uint_as_float(u << 16), __uint_as_float(u & 0xffff0000u));
}
__device__ __forceinline__ uint32_t ld_u32(const bf16* p) { return *reinterpret_cast<const uint32_t*>(p); }
__device__ __forceinline__ void st_f2(bf16* p, float a, float b) {
  *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(a, b);
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(kFull, x, o));
  return x;
}

// Shared memory of the prefill CTA for a padded head dim hd8 (multiple of 8), in bytes:
//   Qs [kBM][hd8] fp32 (pre-scaled), Ks [kBN][hd8 + 4] bf16 (the +4 makes the lanes' 8-byte row
//   reads conflict-free), Vs [kBN][64 * kPairs] bf16, Ps [kWarps][kRows][kBN] fp32.
// Every part is a multiple of 16 bytes, so each starts 16-byte aligned.
constexpr size_t prefill_smem(int hd8, int pairs) {
  return size_t(kBM) * hd8 * 4 + size_t(kBN) * (hd8 + 4) * 2 + size_t(kBN) * 64 * pairs * 2 +
         size_t(kWarps) * kRows * kBN * 4;
}

// qkv [T, ldqkv] (q | k | v blocks of H*hd), o [T, ldo]; grid (ceil(max_len / kBM), H, B), block kWarps*32.
// kPairs = column pairs per lane in P V (1: hd <= 64, 2: hd <= 128); lane owns pairs lane + 32 i.
template <int kPairs>
__global__ void __launch_bounds__(kWarps * 32)
    prefill_kernel(const bf16* __restrict__ qkv, int64_t ldqkv, const int32_t* __restrict__ cu, int H, int hd,
                   int64_t left_window, float qscale, bf16* __restrict__ o, int64_t ldo) {
  const int b = blockIdx.z, h = blockIdx.y;
  const int64_t row0 = cu[b];
  const int len = cu[b + 1] - cu[b];
  const int q0 = blockIdx.x * kBM;
  if (q0 >= len) return;  // the grid is sized for the longest sequence

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int np = hd >> 1;          // real column pairs
  const int hd8 = (hd + 7) & ~7;   // padded head dim (zeros past hd)
  const int ks = hd8 + 4, vs = 64 * kPairs, pp = hd8 >> 1;
  extern __shared__ __align__(16) unsigned char smem[];
  float* Qs = reinterpret_cast<float*>(smem);
  bf16* Ks = reinterpret_cast<bf16*>(Qs + kBM * hd8);
  bf16* Vs = Ks + kBN * ks;
  float* Ps = reinterpret_cast<float*>(Vs + kBN * vs);

  const int64_t inner = int64_t(H) * hd;
  const bf16* qg = qkv + row0 * ldqkv + int64_t(h) * hd;  // row t of this sequence's head: + t * ldqkv
  const bf16* kg = qg + inner;
  const bf16* vg = qg + 2 * inner;

  // Q tile (rows past len and columns past hd are zero); one row per warp pass, lanes over pairs.
  for (int r = warp; r < kBM; r += kWarps) {
#pragma unroll
    for (int i = 0; i < kPairs; ++i) {
      const int pr = lane + 32 * i;
      if (pr < pp) {
        float2 f = make_float2(0.f, 0.f);
        if (q0 + r < len && pr < np) f = bf2_to_f2(ld_u32(qg + int64_t(q0 + r) * ldqkv + 2 * pr));
        Qs[r * hd8 + 2 * pr] = f.x * qscale;
        Qs[r * hd8 + 2 * pr + 1] = f.y * qscale;
      }
    }
  }

  const int w_first = q0 + warp * kRows;                 // this warp's first query position
  const int w_last = min(w_first + kRows, len) - 1;      // its last valid one (< w_first: none)
  const int kend = min(q0 + kBM, len) - 1;               // last key any row of the CTA sees
  const int kstart = left_window < 0 || left_window >= q0 ? 0 : int(q0 - left_window);

  float acc[kRows][2 * kPairs];
  float m[kRows], l[kRows];  // running max (base-2 units, warp-uniform), this lane's partial sum
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.f;
#pragma unroll
    for (int c = 0; c < 2 * kPairs; ++c) acc[r][c] = 0.f;
  }
  float* Pw = Ps + warp * kRows * kBN;
  const float* Qw = Qs + warp * kRows * hd8;

  for (int k0 = kstart; k0 <= kend; k0 += kBN) {
    __syncthreads();  // the previous tile's K / V are no longer read (first pass: Q is written)
    // K and V tiles: keys k0 .. k0 + kBN - 1 (zero past kend), one key row per warp pass.
    for (int j = warp; j < kBN; j += kWarps) {
      const bool kin = k0 + j <= kend;
      const int64_t off = int64_t(k0 + j) * ldqkv;
#pragma unroll
      for (int i = 0; i < kPairs; ++i) {
        const int pr = lane + 32 * i;
        const bool in = kin && pr < np;
        const uint32_t ku = in ? ld_u32(kg + off + 2 * pr) : 0u;
        const uint32_t vu = in ? ld_u32(vg + off + 2 * pr) : 0u;
        if (pr < pp) *reinterpret_cast<uint32_t*>(Ks + j * ks + 2 * pr) = ku;
        *reinterpret_cast<uint32_t*>(Vs + j * vs + 2 * pr) = vu;  // pr < 32 * kPairs = vs / 2
      }
    }
    __syncthreads();

    // Skip the tile when no row of this warp sees any of its keys (above the diagonal, or left of
    // every row's window). Warp-uniform, and no barrier inside.
    const bool active = w_first <= w_last && k0 <= w_last &&
                        (left_window < 0 || int64_t(k0) + (kBN - 1) + left_window >= w_first);
    if (active) {
      // Scores of key k0 + lane against the warp's 16 rows.
      float s[kRows];
#pragma unroll
      for (int r = 0; r < kRows; ++r) s[r] = 0.f;
      const bf16* kr = Ks + lane * ks;
      for (int d = 0; d < hd8; d += 4) {
        const uint2 ku = *reinterpret_cast<const uint2*>(kr + d);
        const float2 k01 = bf2_to_f2(ku.x), k23 = bf2_to_f2(ku.y);
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          const float4 qv = *reinterpret_cast<const float4*>(Qw + r * hd8 + d);  // broadcast
          s[r] = fmaf(qv.x, k01.x, s[r]);
          s[r] = fmaf(qv.y, k01.y, s[r]);
          s[r] = fmaf(qv.z, k23.x, s[r]);
          s[r] = fmaf(qv.w, k23.y, s[r]);
        }
      }
      // Mask, online softmax, P to shared memory (row r, key lane).
      const int kj = k0 + lane;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const int qi = w_first + r;
        const bool ok = kj <= qi && (left_window < 0 || int64_t(kj) + left_window >= qi);
        const float sv = ok ? s[r] : -INFINITY;
        const float mnew = fmaxf(m[r], warp_max(sv));
        // A row with no visible key yet keeps mnew = -inf; subtract 0 then so exp2 gives 0, not NaN.
        const float mref = mnew == -INFINITY ? 0.f : mnew;
        const float alpha = exp2f(m[r] - mref);
        const float p = exp2f(sv - mref);
        m[r] = mnew;
        l[r] = l[r] * alpha + p;
#pragma unroll
        for (int c = 0; c < 2 * kPairs; ++c) acc[r][c] *= alpha;
        Pw[r * kBN + lane] = p;
      }
      __syncwarp();
      // acc[r] += P[r, :] V over the tile, 4 keys at a time.
#pragma unroll 2
      for (int j = 0; j < kBN; j += 4) {
        float2 v[4][kPairs];
#pragma unroll
        for (int jj = 0; jj < 4; ++jj)
#pragma unroll
          for (int i = 0; i < kPairs; ++i) v[jj][i] = bf2_to_f2(ld_u32(Vs + (j + jj) * vs + 2 * (lane + 32 * i)));
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          const float4 p4 = *reinterpret_cast<const float4*>(Pw + r * kBN + j);  // broadcast
#pragma unroll
          for (int i = 0; i < kPairs; ++i) {
            float x = acc[r][2 * i], y = acc[r][2 * i + 1];
            x = fmaf(p4.x, v[0][i].x, x), y = fmaf(p4.x, v[0][i].y, y);
            x = fmaf(p4.y, v[1][i].x, x), y = fmaf(p4.y, v[1][i].y, y);
            x = fmaf(p4.z, v[2][i].x, x), y = fmaf(p4.z, v[2][i].y, y);
            x = fmaf(p4.w, v[3][i].x, x), y = fmaf(p4.w, v[3][i].y, y);
            acc[r][2 * i] = x, acc[r][2 * i + 1] = y;
          }
        }
      }
    }
  }

  if (w_first > w_last) return;  // no barrier follows
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const float lsum = warp_sum(l[r]);  // >= 1 for a valid row: its maximum key contributes exp2(0)
    const int qi = w_first + r;
    if (qi <= w_last) {
      const float inv = 1.0f / lsum;
      bf16* orow = o + (row0 + qi) * ldo + int64_t(h) * hd;
#pragma unroll
      for (int i = 0; i < kPairs; ++i) {
        const int pr = lane + 32 * i;
        if (pr < np) st_f2(orow + 2 * pr, acc[r][2 * i] * inv, acc[r][2 * i + 1] * inv);
      }
    }
  }
}

// kc, vc [B, C, H, hd]; one thread per (packed row t, column pair of the H*hd k / v row).
__global__ void kv_write_kernel(const bf16* __restrict__ qkv, int64_t ldqkv, const int32_t* __restrict__ cu,
                                const int32_t* __restrict__ pos0, int B, int64_t T, int H, int hd,
                                bf16* __restrict__ kc, bf16* __restrict__ vc, int64_t C) {
  const int64_t inner = int64_t(H) * hd, np = inner >> 1, total = T * np;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t pr = e % np, t = e / np;
    const int b = find_seq(cu, B, t);
    const int64_t tt = t - cu[b], len = cu[b + 1] - cu[b];
    if (tt < len - C) continue;  // overwritten later in the same segment: the ring keeps the last C
    const int64_t p = (pos0 ? int64_t(pos0[b]) : 0) + tt;
    const int64_t dst = (int64_t(b) * C + p % C) * inner + 2 * pr;
    const bf16* src = qkv + t * ldqkv + inner + 2 * pr;
    *reinterpret_cast<uint32_t*>(kc + dst) = ld_u32(src);
    *reinterpret_cast<uint32_t*>(vc + dst) = ld_u32(src + inner);
  }
}

// qkv [B, ldqkv] (one new token per sequence), kc / vc [B, C, H, hd], o [B, ldo]; grid (H, B),
// block kDecWarps * 32. kc / vc are written and then read back by this CTA, so they are plain
// (not __restrict__ const) pointers: their loads must not use the non-coherent read-only path.
template <int kPairs>
__global__ void __launch_bounds__(kDecWarps * 32)
    decode_kernel(const bf16* __restrict__ qkv, int64_t ldqkv, const int32_t* __restrict__ pos, int H, int hd,
                  int64_t left_window, float qscale, bf16* kc, bf16* vc, int64_t C, bf16* __restrict__ o,
                  int64_t ldo) {
  pdl_wait();
  pdl_launch_dependents();
  const int h = blockIdx.x, b = blockIdx.y;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int np = hd >> 1, hd8 = (hd + 7) & ~7, ks = hd8 + 4, pp = hd8 >> 1;
  const int64_t inner = int64_t(H) * hd;
  const int64_t p = pos[b];

  __shared__ __align__(16) float qs[kMaxHd];
  __shared__ __align__(16) bf16 kst[kDecWarps][kDecKeys * kDecKs];
  __shared__ float wm[kDecWarps], wl[kDecWarps];
  __shared__ __align__(16) float wo[kDecWarps][kMaxHd];

  const bf16* qrow = qkv + int64_t(b) * ldqkv + int64_t(h) * hd;
  bf16* kcb = kc + int64_t(b) * C * inner + int64_t(h) * hd;  // + slot * inner + d
  bf16* vcb = vc + int64_t(b) * C * inner + int64_t(h) * hd;

  // This token's k, v into its ring slot (this head's columns only: other heads are other CTAs);
  // q (pre-scaled, zero past hd) into shared memory.
  for (int pr = tid; pr < pp; pr += blockDim.x) {
    float2 qf = make_float2(0.f, 0.f);
    if (pr < np) {
      const int64_t dst = (p % C) * inner + 2 * pr;
      *reinterpret_cast<uint32_t*>(kcb + dst) = ld_u32(qrow + inner + 2 * pr);
      *reinterpret_cast<uint32_t*>(vcb + dst) = ld_u32(qrow + 2 * inner + 2 * pr);
      qf = bf2_to_f2(ld_u32(qrow + 2 * pr));
    }
    qs[2 * pr] = qf.x * qscale;
    qs[2 * pr + 1] = qf.y * qscale;
  }
  __syncthreads();  // the new row is visible to every warp of the CTA (global writes + barrier)

  // Visible keys lo .. p. Never reach back more than C - 1 positions: older slots hold newer rows
  // (only possible when the caller's C is too small for its window / context).
  int64_t lo = left_window < 0 ? 0 : (p > left_window ? p - left_window : 0);
  if (lo < p - C + 1) lo = p - C + 1;

  float m = -INFINITY, l = 0.f, acc[2 * kPairs];
#pragma unroll
  for (int c = 0; c < 2 * kPairs; ++c) acc[c] = 0.f;
  bf16* kw = kst[warp];

  for (int64_t c0 = lo + int64_t(warp) * kDecKeys; c0 <= p; c0 += int64_t(kDecKeys) * kDecWarps) {
    const int nv = p - c0 + 1 < kDecKeys ? int(p - c0 + 1) : kDecKeys;  // valid keys of the chunk (>= 1)
    const int64_t s0 = c0 % C;
    // Stage the chunk's K rows (zero past nv and past hd), lanes over pairs. All 32 rows are loaded
    // into registers before the first shared-memory store: interleaved, the compiler cannot prove the
    // (non-restrict) cache loads do not alias the stores and serialises load -> store -> load
    // (measured 116 us per layer at B=1, H=24, 576 keys).
    uint32_t kk[kDecKeys][kPairs];
#pragma unroll
    for (int j = 0; j < kDecKeys; ++j) {
      int64_t sl = s0 + j;
      if (sl >= C) sl -= C;
#pragma unroll
      for (int i = 0; i < kPairs; ++i) {
        const int pr = lane + 32 * i;
        kk[j][i] = (j < nv && pr < np) ? ld_u32(kcb + sl * inner + 2 * pr) : 0u;
      }
    }
#pragma unroll
    for (int j = 0; j < kDecKeys; ++j) {
#pragma unroll
      for (int i = 0; i < kPairs; ++i) {
        const int pr = lane + 32 * i;
        if (pr < pp) *reinterpret_cast<uint32_t*>(kw + j * ks + 2 * pr) = kk[j][i];
      }
    }
    __syncwarp();
    // Score of key c0 + lane.
    float s = 0.f;
    const bf16* kr = kw + lane * ks;
    for (int d = 0; d < hd8; d += 4) {
      const uint2 ku = *reinterpret_cast<const uint2*>(kr + d);
      const float4 qv = *reinterpret_cast<const float4*>(qs + d);
      const float2 k01 = bf2_to_f2(ku.x), k23 = bf2_to_f2(ku.y);
      s = fmaf(qv.x, k01.x, s);
      s = fmaf(qv.y, k01.y, s);
      s = fmaf(qv.z, k23.x, s);
      s = fmaf(qv.w, k23.y, s);
    }
    if (lane >= nv) s = -INFINITY;
    const float mnew = fmaxf(m, warp_max(s));  // finite: lane 0 holds a valid key
    const float alpha = exp2f(m - mnew);
    const float pj = exp2f(s - mnew);
    m = mnew;
    l = l * alpha + pj;
#pragma unroll
    for (int c = 0; c < 2 * kPairs; ++c) acc[c] *= alpha;
    // acc += sum_j p_j v_j, V rows from global (lanes over column pairs: coalesced), in groups of
    // kVGroup rows whose loads are all issued before the first FMA (latency hiding, as for K).
    constexpr int kVGroup = 16;
    for (int j0 = 0; j0 < nv; j0 += kVGroup) {
      uint32_t vv[kVGroup][kPairs];
#pragma unroll
      for (int jj = 0; jj < kVGroup; ++jj) {
        int64_t sl = s0 + j0 + jj;
        if (sl >= C) sl -= C;
#pragma unroll
        for (int i = 0; i < kPairs; ++i) {
          const int pr = lane + 32 * i;
          vv[jj][i] = (j0 + jj < nv && pr < np) ? ld_u32(vcb + sl * inner + 2 * pr) : 0u;
        }
      }
#pragma unroll
      for (int jj = 0; jj < kVGroup; ++jj) {
        const float w = __shfl_sync(kFull, pj, (j0 + jj) & 31);  // lanes >= nv hold p = 0 (s = -inf)
#pragma unroll
        for (int i = 0; i < kPairs; ++i) {
          const float2 v = bf2_to_f2(vv[jj][i]);
          acc[2 * i] = fmaf(w, v.x, acc[2 * i]);
          acc[2 * i + 1] = fmaf(w, v.y, acc[2 * i + 1]);
        }
      }
    }
    __syncwarp();  // every lane is done with kw before the next chunk restages it
  }

  // Merge the warps: a warp without keys has m = -inf, l = 0, acc = 0 and weighs 0.
  l = warp_sum(l);
  if (lane == 0) wm[warp] = m, wl[warp] = l;
#pragma unroll
  for (int i = 0; i < kPairs; ++i) {
    const int pr = lane + 32 * i;
    if (pr < np) wo[warp][2 * pr] = acc[2 * i], wo[warp][2 * pr + 1] = acc[2 * i + 1];
  }
  __syncthreads();
  for (int pr = tid; pr < np; pr += blockDim.x) {
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < kDecWarps; ++w) M = fmaxf(M, wm[w]);  // finite: warp 0 always has keys
    float L = 0.f, x = 0.f, y = 0.f;
#pragma unroll
    for (int w = 0; w < kDecWarps; ++w) {
      const float f = wm[w] == -INFINITY ? 0.f : exp2f(wm[w] - M);
      L += wl[w] * f;
      x += wo[w][2 * pr] * f;
      y += wo[w][2 * pr + 1] * f;
    }
    const float inv = 1.0f / L;
    st_f2(o + int64_t(b) * ldo + int64_t(h) * hd + 2 * pr, x * inv, y * inv);
  }
}

bool aligned4(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 3u) == 0; }

void check_head(const char* what, int H, int hd) {
  JRT_CHECK(H > 0, "{}: {} heads", what, H);
  JRT_CHECK(hd > 0 && hd <= kMaxHd && hd % 2 == 0, "{}: head dim {} must be even and in [2, {}]", what, hd, kMaxHd);
}

// Raises the dynamic shared memory limit of the prefill kernels once (the hd 128 tile needs ~56 KB).
void init_prefill() {
  static const bool done = [] {
    JRT_CUDA_CHECK(cudaFuncSetAttribute(prefill_kernel<1>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        int(prefill_smem(64, 1))));
    JRT_CUDA_CHECK(cudaFuncSetAttribute(prefill_kernel<2>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        int(prefill_smem(kMaxHd, 2))));
    return true;
  }();
  (void)done;
}

}  // namespace

void attention_prefill_cuda(const bf16* qkv, int64_t ldqkv, const int32_t* cu_seqlens, int B, int max_len, int H,
                            int hd, int64_t left_window, float scale, bf16* o, int64_t ldo, cudaStream_t stream) {
  if (B <= 0 || max_len <= 0) return;
  check_head("attention_prefill_cuda", H, hd);
  JRT_CHECK(B <= 65535 && H <= 65535, "attention_prefill_cuda: grid too large ({} sequences x {} heads)", B, H);
  JRT_CHECK(ldqkv % 2 == 0 && ldo % 2 == 0 && aligned4(qkv) && aligned4(o),
            "attention_prefill_cuda: rows must be 4-byte aligned (ldqkv {}, ldo {})", ldqkv, ldo);
  init_prefill();
  if (left_window >= max_len) left_window = -1;  // sees every earlier position anyway; keeps int64 sums small
  const int hd8 = (hd + 7) & ~7;
  const dim3 grid(unsigned((max_len + kBM - 1) / kBM), unsigned(H), unsigned(B));
  const float qscale = scale * kLog2e;
  if (hd <= 64)
    prefill_kernel<1><<<grid, kWarps * 32, prefill_smem(hd8, 1), stream>>>(qkv, ldqkv, cu_seqlens, H, hd, left_window,
                                                                            qscale, o, ldo);
  else
    prefill_kernel<2><<<grid, kWarps * 32, prefill_smem(hd8, 2), stream>>>(qkv, ldqkv, cu_seqlens, H, hd, left_window,
                                                                            qscale, o, ldo);
  JRT_CUDA_CHECK(cudaGetLastError());
}

void kv_cache_write_cuda(const bf16* qkv, int64_t ldqkv, const int32_t* cu_seqlens, const int32_t* pos0, int B,
                         int64_t T, int H, int hd, bf16* kc, bf16* vc, int64_t C, cudaStream_t stream) {
  if (B <= 0 || T <= 0) return;
  check_head("kv_cache_write_cuda", H, hd);
  JRT_CHECK(C > 0, "kv_cache_write_cuda: cache of {} rows", C);
  JRT_CHECK(ldqkv % 2 == 0 && aligned4(qkv) && aligned4(kc) && aligned4(vc),
            "kv_cache_write_cuda: rows must be 4-byte aligned (ldqkv {})", ldqkv);
  const int64_t total = T * (int64_t(H) * hd / 2);
  const int64_t blocks = std::min<int64_t>((total + 255) / 256, int64_t(1) << 16);
  kv_write_kernel<<<unsigned(blocks), 256, 0, stream>>>(qkv, ldqkv, cu_seqlens, pos0, B, T, H, hd, kc, vc, C);
  JRT_CUDA_CHECK(cudaGetLastError());
}

void attention_decode_cuda(const bf16* qkv, int64_t ldqkv, const int32_t* pos, int B, int H, int hd,
                           int64_t left_window, float scale, bf16* kc, bf16* vc, int64_t C, bf16* o, int64_t ldo,
                           cudaStream_t stream) {
  if (B <= 0) return;
  check_head("attention_decode_cuda", H, hd);
  JRT_CHECK(C > 0, "attention_decode_cuda: cache of {} rows", C);
  JRT_CHECK(B <= 65535, "attention_decode_cuda: {} sequences exceed the grid", B);
  JRT_CHECK(ldqkv % 2 == 0 && ldo % 2 == 0 && aligned4(qkv) && aligned4(o) && aligned4(kc) && aligned4(vc),
            "attention_decode_cuda: rows must be 4-byte aligned (ldqkv {}, ldo {})", ldqkv, ldo);
  if (left_window > INT32_MAX) left_window = -1;  // positions are int32: the same as full; keeps sums small
  const dim3 grid{unsigned(H), unsigned(B)};
  const float qscale = scale * kLog2e;
  if (hd <= 64)
    launch_pdl(decode_kernel<1>, grid, kDecWarps * 32, 0, stream, qkv, ldqkv, pos, H, hd, left_window, qscale, kc, vc,
               C, o, ldo);
  else
    launch_pdl(decode_kernel<2>, grid, kDecWarps * 32, 0, stream, qkv, ldqkv, pos, H, hd, left_window, qscale, kc, vc,
               C, o, ldo);
  JRT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace jrt::ops::cuda
