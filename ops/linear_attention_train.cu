// ops/linear_attention_train.cu — Taylor linear attention, training form, on the GPU (cuda_train_ops.h):
// the exact quadratic form of ops/linear_attention_train.cpp through the polynomial kernel
// w_tj = 1 + s + s^2/2 (s = q_t.k_j / sqrt(fd)), flash style: (64 queries) x (64 keys) tiles in shared
// memory, the L x L matrix never stored. The initial state's share goes through the 1 + fd + fd^2 feature
// map, built on the fly in chunks of 64 features. All arithmetic is fp32 (CUDA cores); bf16 is storage.
//
// Every product is one 64 x 64 (or 64 x fd) tile product in shared memory (tile_mac): 256 threads as a
// 16 x 16 grid, thread (ty, tx) owning rows ty + 16 i and columns tx + 16 j; row strides are odd so the
// strided reads are free of bank conflicts.
//
//   forward    grid (B H, d_v tiles, query blocks): num tile = S0 share + sum over key blocks of W V
//   backward   prep: one warp per (row, head): dden, dt / den, ddt
//              dq:   grid (B H, query blocks), loops key blocks (+ the S0 / z0 share through phi's backward)
//              dk:   grid (B H, key blocks), loops query blocks (and dv when d_v <= 64)
//              dv:   grid (B H, key blocks, d_v tiles) when d_v > 64
//              dS0 / dz0: grid (B H, d_v tiles, feature blocks), loops query blocks
// No atomics: every output element is owned by one CTA, so results are deterministic.
// The JRT encoder summary S0 = Phi(K)^T V and its backward are TF32 GEMMs in ops/linear_attention_prefix.cu.
//
// The common case fd = 16, d_v % 16 == 0 (d_v <= 512) takes the bf16 tensor-core kernels further down
// (kUseTensorCores), without atomics as well: the dk kernel (keys' view of ds) also writes each (key block, query
// block) tile of dq to a slot of its own, added in key-block order by a reduction; past the slot cap
// (dq_slot_cap_bytes) a dq kernel (queries' view) recomputes ds instead.
// There, with an initial state and no decay (JRT), the state's share of num / den and of dq, and dS0 / dz0, are
// TF32 GEMMs as well (state_gemm below).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/cuda_util.h"
#include "ops/cuda_train_ops.h"
#include "ops/dispatch.h"
#include "ops/linear_attention_prefix.h"
#include "ops/mma.cuh"

namespace jrt::ops::cuda {
namespace {

constexpr int BT = 64;       // tile: queries, keys, features and d_v columns
constexpr int NT = 256;      // threads per CTA (16 x 16, 4 x 4 outputs each)
constexpr int LDT = BT + 1;  // row stride of the 64-wide tiles
constexpr int kMaxFd = 64;
constexpr unsigned kFull = 0xffffffffu;

// Row stride of the fd-wide tiles (q, k): NJ column groups of 16, plus one (odd).
template <int NJ>
constexpr int ldx() {
  return 16 * NJ + 1;
}

// Feature-map constants: 1 / sqrt(fd), 1 / fd^(1/4), 1 / (sqrt(2) sqrt(fd)) (as ops/taylor.h, rounded once).
struct Consts {
  float rs, r1, r2;
};

Consts consts(int fd) {
  return {float(1.0 / std::sqrt(double(fd))), float(1.0 / std::sqrt(std::sqrt(double(fd)))),
          float(1.0 / (std::sqrt(2.0) * std::sqrt(double(fd))))};
}

// Rows of a BT-row tile that hold data when n rows remain (0 .. BT).
__device__ __forceinline__ int tile_rows(int64_t n) { return n <= 0 ? 0 : n < BT ? int(n) : BT; }

__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f(float x) { return x; }

// log2(gamma_h) (0: no decay); gamma^n = exp2(n log2 gamma) stays exact for gamma = 1.
__device__ __forceinline__ float log2_gamma(const float* gamma, int h) {
  return gamma ? float(log2(double(gamma[h]))) : 0.0f;
}

// dst[r * ldd + c] = src[r * ld + c] * scale[r] (scale null: 1) for r < rows, c < cols; zero elsewhere up to
// BT rows and cpad columns.
template <class T>
__device__ void load_tile(float* dst, int ldd, const T* __restrict__ src, int64_t ld, int rows, int cols, int cpad,
                          const float* scale = nullptr) {
  for (int idx = threadIdx.x; idx < BT * cpad; idx += NT) {
    const int r = idx / cpad, c = idx - r * cpad;
    float x = 0.0f;
    if (r < rows && c < cols) {
      x = to_f(src[int64_t(r) * ld + c]);
      if (scale) x *= scale[r];
    }
    dst[r * ldd + c] = x;
  }
}

// acc[i][j] += sum_{k < K} A(ty + 16 i, k) B(k, tx + 16 j),  A(r, k) = a[r sai + k sak], B(k, c) = b[k sbk + c sbj].
template <int NJ>
__device__ __forceinline__ void tile_mac(float (&acc)[4][NJ], const float* a, int sai, int sak, const float* b, int sbk,
                                         int sbj, int K) {
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const float* ap = a + ty * sai;
  const float* bp = b + tx * sbj;
#pragma unroll 4
  for (int k = 0; k < K; ++k) {
    float av[4], bv[NJ];
#pragma unroll
    for (int i = 0; i < 4; ++i) av[i] = ap[16 * i * sai + k * sak];
#pragma unroll
    for (int j = 0; j < NJ; ++j) bv[j] = bp[k * sbk + 16 * j * sbj];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < NJ; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
  }
}

// fs[r * LDT + i] = phi(x_r)[f0 + i] for r < rows, i < BT (zero rows past `rows`, zero features past D); x rows
// in shared memory with row stride lx. phi = [1, x / fd^(1/4), x_a x_b / (sqrt(2) sqrt(fd))] (ops/taylor.h).
__device__ void build_features(float* fs, const float* xs, int lx, int rows, int f0, int fd, int D, Consts kc) {
  for (int idx = threadIdx.x; idx < BT * BT; idx += NT) {
    const int r = idx / BT, i = idx - r * BT, f = f0 + i;
    float val = 0.0f;
    if (r < rows && f < D) {
      const float* x = xs + r * lx;
      if (f == 0) {
        val = 1.0f;
      } else if (f <= fd) {
        val = x[f - 1] * kc.r1;
      } else {
        const int p = f - 1 - fd, a = p / fd, b = p - a * fd;
        val = x[a] * x[b] * kc.r2;
      }
    }
    fs[r * LDT + i] = val;
  }
}

// dxs[r][a] += sum_i P[r][i] d phi(x_r)[f0 + i] / d x_a for r < rows: taylor_features_bwd_t restricted to the
// chunk of features [f0, f0 + BT) (P in ps, row stride LDT). Each (r, a) is owned by one thread.
__device__ void fold_features(float* dxs, const float* ps, const float* xs, int lx, int rows, int f0, int fd,
                              Consts kc) {
  const int f1 = f0 + BT;
  for (int idx = threadIdx.x; idx < BT * fd; idx += NT) {
    const int r = idx / fd, a = idx - r * fd;
    if (r >= rows) continue;
    const float* p = ps + r * LDT;
    const float* x = xs + r * lx;
    float lin = 0.0f, quad = 0.0f;
    if (1 + a >= f0 && 1 + a < f1) lin = p[1 + a - f0];
    // Pairs (a, b): f = 1 + fd + a fd + b.
    const int base1 = 1 + fd + a * fd;
    const int b1lo = max(0, f0 - base1), b1hi = min(fd, f1 - base1);
    for (int b = b1lo; b < b1hi; ++b) quad += p[base1 + b - f0] * x[b];
    // Pairs (b, a): f = 1 + fd + b fd + a.
    const int base2 = 1 + fd + a;
    const int b2lo = f0 > base2 ? (f0 - base2 + fd - 1) / fd : 0;
    const int b2hi = f1 > base2 ? min(fd, (f1 - base2 + fd - 1) / fd) : 0;
    for (int b = b2lo; b < b2hi; ++b) quad += p[base2 + b * fd - f0] * x[b];
    dxs[r * lx + a] += kc.r1 * lin + kc.r2 * quad;
  }
}

// acc[i][j] += phi(x_r) . S[:, c] (r = ty + 16 i, c = tx + 16 j < nc) and zden[r] += phi(x_r) . z for r < rows.
// S [D, dv] fp32 (row stride dv) already offset to the tile's first column; S or z may be null. Scratch
// tiles fs, st (BT x LDT). Starts and ends with a barrier.
__device__ void phi_times_state(float (&acc)[4][4], float* zden, const float* xs, int lx, int rows, const float* S,
                                int dv, int nc, const float* z, int D, int fd, Consts kc, float* fs, float* st) {
  for (int f0 = 0; f0 < D; f0 += BT) {
    const int nf = min(BT, D - f0);
    __syncthreads();
    build_features(fs, xs, lx, rows, f0, fd, D, kc);
    if (S) load_tile(st, LDT, S + int64_t(f0) * dv, dv, nf, nc, BT);
    __syncthreads();
    if (S) tile_mac<4>(acc, fs, LDT, 1, st, LDT, 1, nf);
    if (z && threadIdx.x < BT) {
      float d = 0.0f;
      for (int i = 0; i < nf; ++i) d += fs[threadIdx.x * LDT + i] * z[f0 + i];
      zden[threadIdx.x] += d;
    }
  }
  __syncthreads();
}

// dxs[r] += J_phi(x_r)^T p_r for r < rows, p_r = S (scale_r R_r) + zw_r z: R [rows, dv] bf16 rows (row stride ldr),
// scale / zw [BT] in shared memory (null: 1), S [D, dv] fp32, z [D] (either may be null). Scratch tiles rt, st,
// ps (BT x LDT). Starts and ends with a barrier.
__device__ void state_grad(float* dxs, const float* xs, int lx, int rows, const bf16* R, int64_t ldr,
                           const float* scale, const float* S, const float* z, const float* zw, int D, int dv, int fd,
                           Consts kc, float* rt, float* st, float* ps) {
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  for (int f0 = 0; f0 < D; f0 += BT) {
    const int nf = min(BT, D - f0);
    float p[4][4] = {};
    if (S)
      for (int c0 = 0; c0 < dv; c0 += BT) {
        const int nc = min(BT, dv - c0);
        __syncthreads();
        load_tile(rt, LDT, R + c0, ldr, rows, nc, BT, scale);
        load_tile(st, LDT, S + int64_t(f0) * dv + c0, dv, nf, nc, BT);
        __syncthreads();
        tile_mac<4>(p, rt, LDT, 1, st, 1, LDT, nc);  // p[r][f] = sum_c R'[r][c] S[f][c]
      }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int r = ty + 16 * i, fi = tx + 16 * j;
        float v = p[i][j];
        if (z && fi < nf && r < rows) v += z[f0 + fi] * (zw ? zw[r] : 1.0f);
        ps[r * LDT + fi] = v;
      }
    __syncthreads();
    fold_features(dxs, ps, xs, lx, rows, f0, fd, kc);
  }
  __syncthreads();
}

// ---- forward -------------------------------------------------------------------------------------

template <int NJ>
constexpr size_t fwd_smem() {
  return sizeof(float) * (2 * BT * ldx<NJ>() + 2 * BT * LDT + 2 * BT);
}

// grid (B H, ceil(dv / 64), ceil(L / 64)); CTA = (b, h) x 64 queries x 64 d_v columns.
//   num = gamma^(t+1) Phi(Q) S0 + sum_{j <= t} gamma^(t-j) w_tj v_j,  den = Phi(Q) z0 + sum_{j <= t} w_tj + eps
// q, k [N, H fd], v, y, u [N, H dv] bf16; den [B, H, L] fp32.
template <int NJ>
__global__ void __launch_bounds__(NT) la_fwd_kernel(LaTrainCuda a, int D, Consts kc) {
  constexpr int lq = ldx<NJ>();
  extern __shared__ float smem[];
  float* qs = smem;
  float* ks = qs + BT * lq;
  float* vs = ks + BT * lq;
  float* as = vs + BT * LDT;
  float* zden = as + BT * LDT;
  float* wden = zden + BT;
  const int bh = blockIdx.x, b = bh / a.H, h = bh % a.H, fd = a.fd, dv = a.dv;
  const int c0 = blockIdx.y * BT, nc = min(BT, dv - c0);
  const int qb = gridDim.z - 1 - blockIdx.z;  // the longest query blocks start first
  const int64_t L = a.L, t0 = int64_t(qb) * BT, row0 = int64_t(b) * L + t0;
  const int nq = tile_rows(L - t0);
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const float log2g = log2_gamma(a.gamma, h);
  const bool decay = log2g != 0.0f;

  load_tile(qs, lq, a.q + row0 * a.ldq + int64_t(h) * fd, a.ldq, nq, fd, 16 * NJ);
  if (threadIdx.x < BT) zden[threadIdx.x] = 0.0f;
  float acc[4][4] = {};
  if (a.S0 || a.z0) {
    const float* S0 = a.S0 ? a.S0 + int64_t(bh) * D * dv + c0 : nullptr;
    const float* z0 = a.z0 ? a.z0 + int64_t(bh) * D : nullptr;
    phi_times_state(acc, zden, qs, lq, nq, S0, dv, nc, z0, D, fd, kc, as, vs);
    if (decay)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float g = exp2f(float(t0 + ty + 16 * i + 1) * log2g);
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] *= g;
      }
  }

  float wsum[4] = {};
  for (int kb = 0; kb <= qb; ++kb) {
    const int64_t j0 = int64_t(kb) * BT, krow = int64_t(b) * L + j0;
    const int nk = tile_rows(L - j0);
    __syncthreads();
    load_tile(ks, lq, a.k + krow * a.ldk + int64_t(h) * fd, a.ldk, nk, fd, 16 * NJ);
    load_tile(vs, LDT, a.v + krow * a.ldv + int64_t(h) * dv + c0, a.ldv, nk, nc, BT);
    __syncthreads();
    float s[4][4] = {};
    tile_mac<4>(s, qs, lq, 1, ks, 1, lq, fd);
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int ti = ty + 16 * i, tj = tx + 16 * j;
        const int64_t t = t0 + ti, jg = j0 + tj;
        float w = 0.0f;
        if (jg <= t && ti < nq) {
          const float x = s[i][j] * kc.rs;
          w = 1.0f + x + 0.5f * x * x;
          wsum[i] += w;
          if (decay) w *= exp2f(float(t - jg) * log2g);
        }
        as[ti * LDT + tj] = w;
      }
    __syncthreads();
    tile_mac<4>(acc, as, LDT, 1, vs, LDT, 1, nk);
  }

  // Row sums of w over the 16 column threads of each row (one half-warp).
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) wsum[i] += __shfl_xor_sync(kFull, wsum[i], o);
    if (tx == 0) wden[ty + 16 * i] = wsum[i];
  }
  __syncthreads();
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int ti = ty + 16 * i;
    if (ti >= nq) continue;
    const int64_t n = row0 + ti;
    const float den = zden[ti] + wden[ti] + a.eps;
    const float sc = a.dt ? a.dt[n * a.lddt + h] : 1.0f;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int c = tx + 16 * j;
      if (c >= nc) continue;
      const float u = acc[i][j] / den;
      const int64_t col = int64_t(h) * dv + c0 + c;
      if (a.dt) a.u[n * a.ldu + col] = __float2bfloat16(u);
      a.y[n * a.ldy + col] = __float2bfloat16(sc * u);
    }
  }
  if (blockIdx.y == 0 && threadIdx.x < nq)
    a.den[int64_t(bh) * L + t0 + threadIdx.x] = zden[threadIdx.x] + wden[threadIdx.x] + a.eps;
}

// ---- backward ------------------------------------------------------------------------------------

// One warp per (row n, head h):  d = dy_t . u_t,  ddt_t = d,  rinv_t = dt_t / den_t,  dden_t = -dt_t d / den_t
// (so dnum_t = rinv_t dy_t). rinv, dden [B, H, L].
__global__ void la_bwd_prep_kernel(LaTrainCuda a, const bf16* dy, int64_t lddy, bf16* ddt, int64_t ldddt, float* rinv,
                                   float* dden) {
  const int64_t w = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (w >= int64_t(a.B) * a.L * a.H) return;  // uniform per warp
  const int64_t n = w / a.H;
  const int h = int(w - n * a.H);
  const bf16* u = (a.dt ? a.u + n * a.ldu : a.y + n * a.ldy) + int64_t(h) * a.dv;
  const bf16* d = dy + n * lddy + int64_t(h) * a.dv;
  float dot = 0.0f;
  for (int c = lane; c < a.dv; c += 32) dot += to_f(d[c]) * to_f(u[c]);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(kFull, dot, o);
  if (lane == 0) {
    const int64_t b = n / a.L, t = n - b * a.L, idx = (b * a.H + h) * a.L + t;
    const float sc = a.dt ? a.dt[n * a.lddt + h] : 1.0f, r = 1.0f / a.den[idx];
    if (a.dt) ddt[n * ldddt + h] = __float2bfloat16(dot);
    rinv[idx] = sc * r;
    dden[idx] = -sc * dot * r;
  }
}

template <int NJ>
constexpr size_t bwd_smem() {
  return sizeof(float) * (2 * BT * ldx<NJ>() + 3 * BT * LDT + 2 * BT);
}

// grid (B H, ceil(L / 64)); CTA = (b, h) x 64 queries:
//   ds_tj = (gamma^(t-j) dnum_t.v_j + dden_t) (1 + s_tj) / sqrt(fd),  dq_t = sum_{j <= t} ds_tj k_j
//         + J_phi(q_t)^T (gamma^(t+1) S0 dnum_t + dden_t z0)
// dq_acc (fp32 [N, H, fd], or null): the key sum already accumulated by the tensor-core path; the kernel then
// only adds the S0 / z0 share and casts.
template <int NJ>
__global__ void __launch_bounds__(NT)
    la_bwd_dq_kernel(LaTrainCuda a, const bf16* dy, int64_t lddy, bf16* dq, int64_t lddq, const float* rinv,
                     const float* dden, int D, Consts kc, const float* dq_acc) {
  constexpr int lq = ldx<NJ>();
  extern __shared__ float smem[];
  float* qs = smem;
  float* ks = qs + BT * lq;
  float* dns = ks + BT * lq;
  float* vs = dns + BT * LDT;
  float* ps = vs + BT * LDT;
  float* rin = ps + BT * LDT;
  float* ddn = rin + BT;
  const int bh = blockIdx.x, b = bh / a.H, h = bh % a.H, fd = a.fd, dv = a.dv;
  const int qb = gridDim.y - 1 - blockIdx.y;
  const int64_t L = a.L, t0 = int64_t(qb) * BT, row0 = int64_t(b) * L + t0;
  const int nq = tile_rows(L - t0);
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const float log2g = log2_gamma(a.gamma, h);
  const bool decay = log2g != 0.0f;
  const bf16* dyb = dy + row0 * lddy + int64_t(h) * dv;

  load_tile(qs, lq, a.q + row0 * a.ldq + int64_t(h) * fd, a.ldq, nq, fd, 16 * NJ);
  if (threadIdx.x < BT) {
    const bool ok = int(threadIdx.x) < nq;
    rin[threadIdx.x] = ok ? rinv[int64_t(bh) * L + t0 + threadIdx.x] : 0.0f;
    ddn[threadIdx.x] = ok ? dden[int64_t(bh) * L + t0 + threadIdx.x] : 0.0f;
  }
  __syncthreads();
  const bool dn_once = dv <= BT;  // one d_v chunk: the dnum tile stays in shared memory for every key block
  if (dn_once && !dq_acc) load_tile(dns, LDT, dyb, lddy, nq, dv, BT, rin);

  float dqa[4][NJ] = {};
  for (int kb = 0; kb <= (dq_acc ? -1 : qb); ++kb) {
    const int64_t j0 = int64_t(kb) * BT, krow = int64_t(b) * L + j0;
    const int nk = tile_rows(L - j0);
    float dn[4][4] = {};  // dnum_t . v_j
    for (int c0 = 0; c0 < dv; c0 += BT) {
      const int nc = min(BT, dv - c0);
      __syncthreads();
      if (!dn_once) load_tile(dns, LDT, dyb + c0, lddy, nq, nc, BT, rin);
      load_tile(vs, LDT, a.v + krow * a.ldv + int64_t(h) * dv + c0, a.ldv, nk, nc, BT);
      if (c0 == 0) load_tile(ks, lq, a.k + krow * a.ldk + int64_t(h) * fd, a.ldk, nk, fd, 16 * NJ);
      __syncthreads();
      tile_mac<4>(dn, dns, LDT, 1, vs, 1, LDT, nc);
    }
    float s[4][4] = {};
    tile_mac<4>(s, qs, lq, 1, ks, 1, lq, fd);
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int ti = ty + 16 * i, tj = tx + 16 * j;
        const int64_t t = t0 + ti, jg = j0 + tj;
        float d = 0.0f;
        if (jg <= t && ti < nq) {
          const float x = s[i][j] * kc.rs, g = decay ? exp2f(float(t - jg) * log2g) : 1.0f;
          d = (g * dn[i][j] + ddn[ti]) * (1.0f + x) * kc.rs;
        }
        ps[ti * LDT + tj] = d;
      }
    __syncthreads();
    tile_mac<NJ>(dqa, ps, LDT, 1, ks, lq, 1, nk);
  }

  __syncthreads();
  float* dqs = ks;  // dq rows [BT, lq]
  if (dq_acc) {
    for (int idx = threadIdx.x; idx < BT * lq; idx += NT) {
      const int r = idx / lq, c = idx - r * lq;
      dqs[idx] = r < nq && c < fd ? dq_acc[((row0 + r) * a.H + h) * fd + c] : 0.0f;
    }
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < NJ; ++j) dqs[(ty + 16 * i) * lq + tx + 16 * j] = dqa[i][j];
  }
  if (a.S0 || a.z0) {
    // gamma^(t+1) folded into the dnum row scale (rin is not read again by the key loop).
    if (decay && threadIdx.x < BT) rin[threadIdx.x] *= exp2f(float(t0 + threadIdx.x + 1) * log2g);
    state_grad(dqs, qs, lq, nq, dyb, lddy, rin, a.S0 ? a.S0 + int64_t(bh) * D * dv : nullptr,
               a.z0 ? a.z0 + int64_t(bh) * D : nullptr, ddn, D, dv, fd, kc, dns, vs, ps);
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < nq * fd; idx += NT) {
    const int r = idx / fd, c = idx - r * fd;
    dq[(row0 + r) * lddq + int64_t(h) * fd + c] = __float2bfloat16(dqs[r * lq + c]);
  }
}

// grid (B H, ceil(L / 64)); CTA = (b, h) x 64 keys, over the query blocks that see them:
//   dk_j = sum_{t >= j} ds_tj q_t;  with_dv (d_v <= 64, the keys' v tile loaded once): also
//   dv_j = sum_{t >= j} gamma^(t-j) w_tj dnum_t.
template <int NJ>
__global__ void __launch_bounds__(NT)
    la_bwd_dk_kernel(LaTrainCuda a, const bf16* dy, int64_t lddy, bf16* dk, int64_t lddk, bf16* dvo, int64_t lddv,
                     bool with_dv, const float* rinv, const float* dden, Consts kc) {
  constexpr int lq = ldx<NJ>();
  extern __shared__ float smem[];
  float* ks = smem;
  float* qs = ks + BT * lq;
  float* dns = qs + BT * lq;
  float* vs = dns + BT * LDT;
  float* ps = vs + BT * LDT;
  float* rin = ps + BT * LDT;
  float* ddn = rin + BT;
  const int bh = blockIdx.x, b = bh / a.H, h = bh % a.H, fd = a.fd, dv = a.dv, kb = blockIdx.y;
  const int64_t L = a.L, j0 = int64_t(kb) * BT, krow = int64_t(b) * L + j0;
  const int nk = tile_rows(L - j0), nqb = int((L + BT - 1) / BT);
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const float log2g = log2_gamma(a.gamma, h);
  const bool decay = log2g != 0.0f;

  load_tile(ks, lq, a.k + krow * a.ldk + int64_t(h) * fd, a.ldk, nk, fd, 16 * NJ);
  if (with_dv) load_tile(vs, LDT, a.v + krow * a.ldv + int64_t(h) * dv, a.ldv, nk, dv, BT);  // the only chunk
  float dka[4][NJ] = {}, dva[4][4] = {};
  for (int qb = kb; qb < nqb; ++qb) {
    const int64_t t0 = int64_t(qb) * BT, qrow = int64_t(b) * L + t0;
    const int nq = tile_rows(L - t0);
    const bf16* dyb = dy + qrow * lddy + int64_t(h) * dv;
    __syncthreads();
    if (threadIdx.x < BT) {
      const bool ok = int(threadIdx.x) < nq;
      rin[threadIdx.x] = ok ? rinv[int64_t(bh) * L + t0 + threadIdx.x] : 0.0f;
      ddn[threadIdx.x] = ok ? dden[int64_t(bh) * L + t0 + threadIdx.x] : 0.0f;
    }
    load_tile(qs, lq, a.q + qrow * a.ldq + int64_t(h) * fd, a.ldq, nq, fd, 16 * NJ);
    __syncthreads();
    float dn[4][4] = {};  // [key][query]: v_j . dnum_t
    for (int c0 = 0; c0 < dv; c0 += BT) {
      const int nc = min(BT, dv - c0);
      if (c0 > 0) __syncthreads();
      load_tile(dns, LDT, dyb + c0, lddy, nq, nc, BT, rin);
      if (!with_dv) load_tile(vs, LDT, a.v + krow * a.ldv + int64_t(h) * dv + c0, a.ldv, nk, nc, BT);
      __syncthreads();
      tile_mac<4>(dn, vs, LDT, 1, dns, 1, LDT, nc);
    }
    float s[4][4] = {};  // [key][query]
    tile_mac<4>(s, ks, lq, 1, qs, 1, lq, fd);
    if (with_dv) {  // dns holds all of dnum's columns
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int tj = ty + 16 * i, ti = tx + 16 * j;
          const int64_t t = t0 + ti, jg = j0 + tj;
          float w = 0.0f;
          if (jg <= t && ti < nq) {
            const float x = s[i][j] * kc.rs;
            w = 1.0f + x + 0.5f * x * x;
            if (decay) w *= exp2f(float(t - jg) * log2g);
          }
          ps[tj * LDT + ti] = w;
        }
      __syncthreads();
      tile_mac<4>(dva, ps, LDT, 1, dns, LDT, 1, nq);
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int tj = ty + 16 * i, ti = tx + 16 * j;
        const int64_t t = t0 + ti, jg = j0 + tj;
        float d = 0.0f;
        if (jg <= t && ti < nq) {
          const float x = s[i][j] * kc.rs, g = decay ? exp2f(float(t - jg) * log2g) : 1.0f;
          d = (g * dn[i][j] + ddn[ti]) * (1.0f + x) * kc.rs;
        }
        ps[tj * LDT + ti] = d;
      }
    __syncthreads();
    tile_mac<NJ>(dka, ps, LDT, 1, qs, lq, 1, nq);
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = ty + 16 * i;
    if (r >= nk) continue;
    const int64_t n = krow + r;
#pragma unroll
    for (int j = 0; j < NJ; ++j) {
      const int c = tx + 16 * j;
      if (c < fd) dk[n * lddk + int64_t(h) * fd + c] = __float2bfloat16(dka[i][j]);
    }
    if (with_dv)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int c = tx + 16 * j;
        if (c < dv) dvo[n * lddv + int64_t(h) * dv + c] = __float2bfloat16(dva[i][j]);
      }
  }
}

template <int NJ>
constexpr size_t dv_smem() {
  return sizeof(float) * (2 * BT * ldx<NJ>() + 2 * BT * LDT + BT);
}

// grid (B H, ceil(L / 64), ceil(dv / 64)) for d_v > 64: dv_j = sum_{t >= j} gamma^(t-j) w_tj dnum_t.
template <int NJ>
__global__ void __launch_bounds__(NT) la_bwd_dv_kernel(LaTrainCuda a, const bf16* dy, int64_t lddy, bf16* dvo,
                                                       int64_t lddv, const float* rinv, Consts kc) {
  constexpr int lq = ldx<NJ>();
  extern __shared__ float smem[];
  float* ks = smem;
  float* qs = ks + BT * lq;
  float* dns = qs + BT * lq;
  float* ps = dns + BT * LDT;
  float* rin = ps + BT * LDT;
  const int bh = blockIdx.x, b = bh / a.H, h = bh % a.H, fd = a.fd, dv = a.dv, kb = blockIdx.y;
  const int c0 = blockIdx.z * BT, nc = min(BT, dv - c0);
  const int64_t L = a.L, j0 = int64_t(kb) * BT, krow = int64_t(b) * L + j0;
  const int nk = tile_rows(L - j0), nqb = int((L + BT - 1) / BT);
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const float log2g = log2_gamma(a.gamma, h);
  const bool decay = log2g != 0.0f;

  load_tile(ks, lq, a.k + krow * a.ldk + int64_t(h) * fd, a.ldk, nk, fd, 16 * NJ);
  float dva[4][4] = {};
  for (int qb = kb; qb < nqb; ++qb) {
    const int64_t t0 = int64_t(qb) * BT, qrow = int64_t(b) * L + t0;
    const int nq = tile_rows(L - t0);
    __syncthreads();
    if (threadIdx.x < BT) rin[threadIdx.x] = int(threadIdx.x) < nq ? rinv[int64_t(bh) * L + t0 + threadIdx.x] : 0.0f;
    load_tile(qs, lq, a.q + qrow * a.ldq + int64_t(h) * fd, a.ldq, nq, fd, 16 * NJ);
    __syncthreads();
    load_tile(dns, LDT, dy + qrow * lddy + int64_t(h) * dv + c0, lddy, nq, nc, BT, rin);
    float s[4][4] = {};  // [key][query]
    tile_mac<4>(s, ks, lq, 1, qs, 1, lq, fd);
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int tj = ty + 16 * i, ti = tx + 16 * j;
        const int64_t t = t0 + ti, jg = j0 + tj;
        float w = 0.0f;
        if (jg <= t && ti < nq) {
          const float x = s[i][j] * kc.rs;
          w = 1.0f + x + 0.5f * x * x;
          if (decay) w *= exp2f(float(t - jg) * log2g);
        }
        ps[tj * LDT + ti] = w;
      }
    __syncthreads();
    tile_mac<4>(dva, ps, LDT, 1, dns, LDT, 1, nq);
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = ty + 16 * i;
    if (r >= nk) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int c = tx + 16 * j;
      if (c < nc) dvo[(krow + r) * lddv + int64_t(h) * dv + c0 + c] = __float2bfloat16(dva[i][j]);
    }
  }
}

// ---- feature-map outer products (dS0 / dz0, the JRT summary) ---------------------------------------

// out[b, h] = sum_{t < M} phi(x_t) (rw_t R_t)^T [D, dv], outz[b, h] = sum_{t < M} zw_t phi(x_t) [D]   (=)
// with rw_t = rw[b, h, t] gamma^(t+1) (rw null: 1; gamma null: 1), zw_t = zw[b, h, t] (null: 1).
struct OuterArgs {
  const bf16* x = nullptr;  // [N, H fd]
  int64_t ldx = 0;
  const bf16* R = nullptr;  // [N, H dv]
  int64_t ldr = 0;
  const float* rw = nullptr;  // [B, H, L]
  const float* zw = nullptr;  // [B, H, L]
  const float* gamma = nullptr;
  float* out = nullptr;   // [B, H, D, dv]
  float* outz = nullptr;  // [B, H, D]
  int H = 0, fd = 0, dv = 0, D = 0;
  int64_t L = 0, M = 0;
};

template <int NJ>
constexpr size_t outer_smem() {
  return sizeof(float) * (BT * ldx<NJ>() + 2 * BT * LDT + 2 * BT);
}

// grid (B H, ceil(dv / 64) (1 without out), ceil(D / 64)); CTA = 64 features x 64 columns, over t-blocks.
template <int NJ>
__global__ void __launch_bounds__(NT) la_outer_kernel(OuterArgs o, Consts kc) {
  constexpr int lq = ldx<NJ>();
  extern __shared__ float smem[];
  float* xs = smem;
  float* fs = xs + BT * lq;
  float* rt = fs + BT * LDT;
  float* rwv = rt + BT * LDT;
  float* zwv = rwv + BT;
  const int bh = blockIdx.x, b = bh / o.H, h = bh % o.H, fd = o.fd, dv = o.dv, D = o.D;
  const int c0 = blockIdx.y * BT, nc = min(BT, dv - c0);
  const int f0 = blockIdx.z * BT, nf = min(BT, D - f0);
  const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
  const bool do_z = o.outz && blockIdx.y == 0;
  const float log2g = log2_gamma(o.gamma, h);
  const bool decay = log2g != 0.0f;
  float acc[4][4] = {}, zacc = 0.0f;
  for (int64_t t0 = 0; t0 < o.M; t0 += BT) {
    const int nt = tile_rows(o.M - t0);
    const int64_t row0 = int64_t(b) * o.L + t0;
    __syncthreads();
    if (threadIdx.x < BT) {
      float r = 0.0f, z = 0.0f;
      if (int(threadIdx.x) < nt) {
        const int64_t idx = int64_t(bh) * o.L + t0 + threadIdx.x;
        r = o.rw ? o.rw[idx] : 1.0f;
        if (decay) r *= exp2f(float(t0 + threadIdx.x + 1) * log2g);
        z = o.zw ? o.zw[idx] : 1.0f;
      }
      rwv[threadIdx.x] = r;
      zwv[threadIdx.x] = z;
    }
    load_tile(xs, lq, o.x + row0 * o.ldx + int64_t(h) * fd, o.ldx, nt, fd, 16 * NJ);
    __syncthreads();
    build_features(fs, xs, lq, nt, f0, fd, D, kc);
    if (o.out) load_tile(rt, LDT, o.R + row0 * o.ldr + int64_t(h) * dv + c0, o.ldr, nt, nc, BT, rwv);
    __syncthreads();
    if (o.out) tile_mac<4>(acc, fs, 1, LDT, rt, LDT, 1, nt);  // [f][c] = sum_t Phi[t][f] R'[t][c]
    if (do_z && threadIdx.x < BT)
      for (int t = 0; t < nt; ++t) zacc += fs[t * LDT + threadIdx.x] * zwv[t];
  }
  if (o.out)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int fi = ty + 16 * i;
      if (fi >= nf) continue;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int c = tx + 16 * j;
        if (c < nc) o.out[(int64_t(bh) * D + f0 + fi) * dv + c0 + c] = acc[i][j];
      }
    }
  if (do_z && int(threadIdx.x) < nf) o.outz[int64_t(bh) * D + f0 + threadIdx.x] = zacc;
}

// ---- tensor-core path (fd == 16, d_v % 16 == 0) ---------------------------------------------------
//
// bf16 mma.sync m16n8k16 with fp32 accumulators, in the register layout of ops/attention_train.cu: operands
// are read from shared memory as bf16 pairs, A [m][k] row-major, B [k][n] stored n-major ([n][k]); staged
// rows are padded by 8 bf16 (conflict-free fragment loads). s = q.k is one k-step (fd = 16) and exact (bf16
// products summed in fp32); w, dw, ds are fp32 in registers and rounded to bf16 only as mma operands
// (as FlashAttention does with P); den and every sum are fp32. CTAs are 4 warps; warp w owns 16 rows.
//   forward   grid (B H, d_v tiles of <= 128, query blocks): S = Q K^T, W from the S registers, O += W V;
//             the S0 / z0 share (JRT) on CUDA cores, once per CTA.
//   backward  prep as above; dk: grid (B H, key blocks), loops the query blocks that see the block:
//             dP^T = V dY^T (all of d_v), dS^T -> dk = dS^T Q, and with dq slots each tile's dq = dS K into
//             its slot (reduced in key-block order into the fp32 workspace); without slots, dq: grid (B H,
//             query blocks), loops the key blocks: dP = dY V^T, dS -> dq = dS K (dP computed twice); dv: grid
//             (B H, key blocks, d_v tiles): dv += (W^T diag(dt / den)) dY; the fp32 dq kernel (or the state
//             GEMMs) then adds the S0 / z0 share and casts dq.

// The fast path: one file-level switch (false: every case takes the fp32 kernels above).
constexpr bool kUseTensorCores = true;
constexpr int kTcWarps = 4;
constexpr int kTcThreads = 32 * kTcWarps;
constexpr int kTcFd = 16;
constexpr int kTcMaxDv = 512;
constexpr int kQS = kTcFd + 8;  // row stride (bf16) of the staged [64][fd] tiles
constexpr int kTS = BT + 8;     // row stride (bf16) of the staged [*][64] tiles

bool use_tc(const LaTrainCuda& a) { return kUseTensorCores && a.fd == kTcFd && a.dv % 16 == 0 && a.dv <= kTcMaxDv; }
// The initial state's products as TF32 GEMMs (ops/linear_attention_prefix.cu): tensor-core path, no decay (the
// GEMMs carry no gamma^(t+1) row scale).
bool state_gemm(const LaTrainCuda& a) { return use_tc(a) && !a.gamma && (a.S0 || a.z0); }

// Two adjacent bf16 from global memory as one word (lower address in the low half); al: 4-byte aligned.
__device__ __forceinline__ uint32_t ld_pair(const bf16* p, bool al) {
  if (al) return ld32(p);
  return uint32_t(__bfloat16_as_ushort(p[0])) | (uint32_t(__bfloat16_as_ushort(p[1])) << 16);
}
__device__ __forceinline__ void st_pair(bf16* p, float x, float y) {  // any alignment (row strides may be odd)
  p[0] = __float2bfloat16(x);
  p[1] = __float2bfloat16(y);
}
// Stages rows [0, R) x columns [0, C) of a bf16 tile (row r at src + r ld; rows >= nrows and columns >= ncols
// zero, ncols even) into xs [R][lds] (row-major; null: skipped) and / or xt [C][ldt] (transposed; null:
// skipped). A thread moves 2 rows x 1 column pair, a warp 16 rows x 4 pairs (conflict-free transposed stores).
template <int C, int R>
__device__ __forceinline__ void stage(const bf16* __restrict__ src, int64_t ld, int nrows, int ncols, bool al, bf16* xs,
                                      int lds, bf16* xt, int ldt) {
  static_assert(R % 16 == 0 && C % 8 == 0, "whole warp groups of 16 rows x 4 pairs");
  constexpr int kGroupsD = C / 8;
  constexpr int kItems = (R / 2) * (C / 2);
  for (int e = threadIdx.x; e < kItems; e += kTcThreads) {
    const int grp = e >> 5;
    const int dp = (e & 3) + 4 * (grp % kGroupsD);
    const int r = 2 * (((e >> 2) & 7) + 8 * (grp / kGroupsD));
    uint32_t u0 = 0u, u1 = 0u;
    if (2 * dp < ncols) {
      if (r < nrows) u0 = ld_pair(src + int64_t(r) * ld + 2 * dp, al);
      if (r + 1 < nrows) u1 = ld_pair(src + int64_t(r + 1) * ld + 2 * dp, al);
    }
    if (xs) {
      st32(xs + r * lds + 2 * dp, u0);
      st32(xs + (r + 1) * lds + 2 * dp, u1);
    }
    if (xt) {
      st32(xt + (2 * dp) * ldt + r, __byte_perm(u0, u1, 0x5410));      // low halves: column 2 dp
      st32(xt + (2 * dp + 1) * ldt + r, __byte_perm(u0, u1, 0x7632));  // high halves: column 2 dp + 1
    }
  }
}

// Alignment bits of the tensor-core kernels' bf16 inputs: 4-byte aligned rows allow word loads.
enum : unsigned { kAlQ = 1u, kAlK = 2u, kAlV = 4u, kAlDy = 8u };

bool rows_aligned(const void* p, int64_t ld) { return (reinterpret_cast<uintptr_t>(p) & 3u) == 0 && ld % 2 == 0; }

// d_v columns of one CTA: the smallest of 16, 32, 64, 128 that holds d_v (d_v > 128: tiles of 128).
template <class F>
void with_dv_tile(int dv, F&& f) {
  dispatch_ge<16, 32, 64, 128>(dv, std::forward<F>(f));
}

// Qs, Ks [64][24], Vt [kDV][72] bf16, zden [64] fp32; with an initial state also phi [64][65], S0 chunk [64][kDV].
template <int kDV>
constexpr size_t tc_fwd_smem(bool state) {
  return sizeof(bf16) * (2 * BT * kQS + kDV * kTS) + sizeof(float) * BT +
         (state ? sizeof(float) * (BT * LDT + BT * kDV) : 0);
}

// grid (B H, ceil(dv / kDV), ceil(L / 64)); CTA = (b, h) x 64 queries x kDV d_v columns, 4 warps of 16 queries.
//   num = gamma^(t+1) Phi(Q) S0 + sum_{j <= t} gamma^(t-j) w_tj v_j,  den = Phi(Q) z0 + sum_{j <= t} w_tj + eps
// q, k [N, H 16], v, y, u [N, H dv] bf16; den [B, H, L] fp32.
template <int kDV>
// share (or null): the initial state's share precomputed by la_prefix::share_fwd, fp32 [B H, L, ldsh] with num's
// columns then den's; it replaces the CUDA-core S0 / z0 loop below.
__global__ void __launch_bounds__(kTcThreads)
    la_tc_fwd_kernel(LaTrainCuda a, int D, Consts kc, unsigned al, const float* __restrict__ share, int64_t ldsh) {
  constexpr int kNV = kDV / 8;
  extern __shared__ __align__(16) unsigned char smem_tc[];
  bf16* Qs = reinterpret_cast<bf16*>(smem_tc);
  bf16* Ks = Qs + BT * kQS;
  bf16* Vt = Ks + BT * kQS;
  float* zden = reinterpret_cast<float*>(Vt + kDV * kTS);
  float* ph = zden + BT;
  float* sc = ph + BT * LDT;
  const int bh = blockIdx.x, b = bh / a.H, h = bh % a.H, dv = a.dv;
  const int c0 = blockIdx.y * kDV, nc = min(kDV, dv - c0);
  const int qb = gridDim.z - 1 - blockIdx.z;  // the longest query blocks start first
  const int64_t L = a.L, t0 = int64_t(qb) * BT, row0 = int64_t(b) * L + t0;
  const int nq = tile_rows(L - t0);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c2 = 2 * (lane & 3);
  const float log2g = log2_gamma(a.gamma, h);
  const bool decay = log2g != 0.0f;

  stage<kTcFd, BT>(a.q + row0 * a.ldq + int64_t(h) * kTcFd, a.ldq, nq, kTcFd, al & kAlQ, Qs, kQS, nullptr, 0);
  if (threadIdx.x < BT)
    zden[threadIdx.x] = share && int(threadIdx.x) < nq ? share[(int64_t(bh) * L + t0 + threadIdx.x) * ldsh + dv] : 0.0f;
  __syncthreads();
  uint32_t qf[4];
  load_a(qf, Qs, kQS, 16 * warp, 0, lane);
  float acc[kNV][4];
#pragma unroll
  for (int n = 0; n < kNV; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;

  if (share) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int ti = 16 * warp + g + 8 * r;
      if (ti >= nq) continue;
      const float* srow = share + (int64_t(bh) * L + t0 + ti) * ldsh + c0;
#pragma unroll
      for (int n = 0; n < kNV; ++n) {
        const int c = 8 * n + c2;
        if (c < nc) acc[n][2 * r] = srow[c];
        if (c + 1 < nc) acc[n][2 * r + 1] = srow[c + 1];
      }
    }
  } else if (a.S0 || a.z0) {  // the initial state's share, fp32 on CUDA cores over chunks of 64 features
    const float* S0 = a.S0 ? a.S0 + int64_t(bh) * D * dv + c0 : nullptr;
    const float* z0 = a.z0 ? a.z0 + int64_t(bh) * D : nullptr;
    const int r0 = 16 * warp + g;
    for (int f0 = 0; f0 < D; f0 += BT) {
      const int nf = min(BT, D - f0);
      __syncthreads();  // the previous chunk is read
      for (int idx = threadIdx.x; idx < BT * BT; idx += kTcThreads) {
        const int r = idx / BT, i = idx - r * BT, f = f0 + i;
        float val = 0.0f;
        if (r < nq && f < D) {
          const bf16* x = Qs + r * kQS;
          if (f == 0) {
            val = 1.0f;
          } else if (f <= kTcFd) {
            val = __bfloat162float(x[f - 1]) * kc.r1;
          } else {
            const int p = f - 1 - kTcFd, pa = p / kTcFd, pb = p - pa * kTcFd;
            val = __bfloat162float(x[pa]) * __bfloat162float(x[pb]) * kc.r2;
          }
        }
        ph[r * LDT + i] = val;
      }
      if (S0)
        for (int idx = threadIdx.x; idx < BT * kDV; idx += kTcThreads) {
          const int f = idx / kDV, c = idx - f * kDV;
          sc[idx] = f < nf && c < nc ? S0[int64_t(f0 + f) * dv + c] : 0.0f;
        }
      __syncthreads();
      if (S0)
        for (int f = 0; f < nf; ++f) {
          const float p0 = ph[r0 * LDT + f], p1 = ph[(r0 + 8) * LDT + f];
          const float* srow = sc + f * kDV + c2;
#pragma unroll
          for (int n = 0; n < kNV; ++n) {
            const float s0 = srow[8 * n], s1 = srow[8 * n + 1];
            acc[n][0] = fmaf(p0, s0, acc[n][0]);
            acc[n][1] = fmaf(p0, s1, acc[n][1]);
            acc[n][2] = fmaf(p1, s0, acc[n][2]);
            acc[n][3] = fmaf(p1, s1, acc[n][3]);
          }
        }
      if (z0 && threadIdx.x < BT) {
        float d = 0.0f;
        for (int i = 0; i < nf; ++i) d += ph[threadIdx.x * LDT + i] * z0[f0 + i];
        zden[threadIdx.x] += d;
      }
    }
    if (decay)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const float gr = exp2f(float(t0 + r0 + 8 * r + 1) * log2g);
#pragma unroll
        for (int n = 0; n < kNV; ++n) acc[n][2 * r] *= gr, acc[n][2 * r + 1] *= gr;
      }
  }

  float wsum[2] = {0.0f, 0.0f};  // rows g, g + 8: the lane's share of sum_j w_tj (undecayed)
  for (int kb = 0; kb <= qb; ++kb) {
    const int64_t j0 = int64_t(kb) * BT, krow = int64_t(b) * L + j0;
    const int nk = tile_rows(L - j0);
    __syncthreads();  // the previous tile (first pass: the state share's scratch) is read
    stage<kTcFd, BT>(a.k + krow * a.ldk + int64_t(h) * kTcFd, a.ldk, nk, kTcFd, al & kAlK, Ks, kQS, nullptr, 0);
    stage<kDV, BT>(a.v + krow * a.ldv + int64_t(h) * dv + c0, a.ldv, nk, nc, al & kAlV, nullptr, 0, Vt, kTS);
    __syncthreads();
    if (16 * warp >= nq) continue;  // the warp's rows are past the sequence (warp-uniform, no barrier below)
    float s[8][4];
#pragma unroll
    for (int n = 0; n < 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
    mma_row(s, qf, Ks, kQS, 0, 0, lane);
    // t - j of the lane's row g and key column 0.
    const int dist0 = int(t0 - j0) + 16 * warp + g;
#pragma unroll
    for (int n = 0; n < 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int dist = dist0 + 8 * (e >> 1) - (8 * n + c2 + (e & 1));
        float w = 0.0f;
        if (dist >= 0) {
          const float x = s[n][e] * kc.rs;
          w = 1.0f + x + 0.5f * x * x;
          wsum[e >> 1] += w;
          if (decay) w *= exp2f(float(dist) * log2g);
        }
        s[n][e] = w;
      }
    mma_c_strip(acc, s, Vt, kTS, lane);
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float ws = wsum[r];
    ws += __shfl_xor_sync(kFull, ws, 1);
    ws += __shfl_xor_sync(kFull, ws, 2);
    const int ti = 16 * warp + g + 8 * r;
    if (ti >= nq) continue;
    const int64_t n = row0 + ti;
    const float den = zden[ti] + ws + a.eps;
    const float scl = a.dt ? a.dt[n * a.lddt + h] : 1.0f;
#pragma unroll
    for (int j = 0; j < kNV; ++j) {
      const int c = 8 * j + c2;
      if (c >= nc) continue;
      const float u0 = acc[j][2 * r] / den, u1 = acc[j][2 * r + 1] / den;
      const int64_t col = int64_t(h) * dv + c0 + c;
      if (a.dt) st_pair(a.u + n * a.ldu + col, u0, u1);
      st_pair(a.y + n * a.ldy + col, scl * u0, scl * u1);
    }
    if (blockIdx.y == 0 && c2 == 0) a.den[int64_t(bh) * L + t0 + ti] = den;
  }
}

// ds_tj of the tensor-core backward kernels from s = q_t.k_j, dp = dy_t.v_j, rinv_t, dden_t and dist = t - j >= 0:
// (gamma^dist rinv_t dp + dden_t) (1 + s / sqrt(fd)) / sqrt(fd). The dk kernel and the dq kernel (the keys' and the
// queries' view of the same ds) must agree to the bit, hence one definition.
__device__ __forceinline__ float tc_ds(float s, float dp, float rin, float ddn, int dist, float log2g, bool decay,
                                       const Consts& kc) {
  const float x = s * kc.rs, gm = decay ? exp2f(float(dist) * log2g) : 1.0f;
  return (gm * dp * rin + ddn) * (1.0f + x) * kc.rs;
}

// Ks, Qs [64][24], Qt [16][72], dYc [64][72], Vs [64][dvp + 8] bf16 (dvp: d_v rounded up to 64); rin, ddn [64] fp32;
// with dq slots also Kt [16][72] and dSs [64][72] bf16.
size_t tc_dkq_smem(int dv, bool slots) {
  const int dvp = (dv + BT - 1) / BT * BT;
  return sizeof(bf16) *
             (2 * BT * kQS + kTcFd * kTS + BT * kTS + size_t(BT) * (dvp + 8) + (slots ? kTcFd * kTS + BT * kTS : 0)) +
         sizeof(float) * 2 * BT;
}

// dq slots: per (b, h), the pairs (key block kb, query block qb >= kb) in kb-major order, 64 x 16 fp32 each.
__host__ __device__ __forceinline__ int64_t la_pair(int kb, int qb, int nqb) {
  return int64_t(kb) * nqb - int64_t(kb) * (kb - 1) / 2 + (qb - kb);
}
__host__ __device__ __forceinline__ int64_t la_pairs(int nqb) { return int64_t(nqb) * (nqb + 1) / 2; }

// grid (B H, ceil(L / 64)); CTA = (b, h) x 64 keys (4 warps of 16), over the query blocks that see them:
//   dw_tj = gamma^(t-j) rinv_t (dy_t . v_j) + dden_t,  ds_tj = dw_tj (1 + s_tj) / sqrt(fd) (t >= j),
//   dk_j = sum_t ds_tj q_t  (=).
// dq needs the same ds summed over keys. kSlots: each (key block, query block) tile dq = dS K goes to a slot of
// its own (dq_slot, la_pair's layout; =) and la_dq_slot_reduce_kernel adds the slots in key-block order;
// otherwise la_tc_bwd_dq_kernel recomputes dS per query block. Either way every gradient element has one
// writer (atomics here would make dq's float sums run-order dependent).
// rinv_t = dt_t / den_t and dden [B, H, L] from the prep kernel.
template <bool kSlots>
__global__ void __launch_bounds__(kTcThreads)
    la_tc_bwd_dk_kernel(LaTrainCuda a, const bf16* __restrict__ dy, int64_t lddy, bf16* __restrict__ dk, int64_t lddk,
                        const float* __restrict__ rinv, const float* __restrict__ dden, float* __restrict__ dq_slot,
                        Consts kc, unsigned al) {
  extern __shared__ __align__(16) unsigned char smem_tc[];
  const int dv = a.dv, dvp = (dv + BT - 1) / BT * BT, lvs = dvp + 8;
  bf16* Ks = reinterpret_cast<bf16*>(smem_tc);
  bf16* Qs = Ks + BT * kQS;
  bf16* Qt = Qs + BT * kQS;
  bf16* dYc = Qt + kTcFd * kTS;
  bf16* Vs = dYc + BT * kTS;
  float* rin = reinterpret_cast<float*>(Vs + BT * lvs);
  float* ddn = rin + BT;
  bf16* Kt = reinterpret_cast<bf16*>(ddn + BT);  // kSlots only
  bf16* dSs = Kt + kTcFd * kTS;
  const int bh = blockIdx.x, b = bh / a.H, h = bh % a.H, kb = blockIdx.y;
  const int64_t L = a.L, j0 = int64_t(kb) * BT, krow = int64_t(b) * L + j0;
  const int nk = tile_rows(L - j0), nqb = int((L + BT - 1) / BT);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c2 = 2 * (lane & 3);
  const float log2g = log2_gamma(a.gamma, h);
  const bool decay = log2g != 0.0f;
  const int jl0 = 16 * warp + g;  // the lane's first key (row g of the warp's 16) in the block

  stage<kTcFd, BT>(a.k + krow * a.ldk + int64_t(h) * kTcFd, a.ldk, nk, kTcFd, al & kAlK, Ks, kQS, kSlots ? Kt : nullptr,
                   kTS);
  for (int c0 = 0; c0 < dvp; c0 += BT)
    stage<BT, BT>(a.v + krow * a.ldv + int64_t(h) * dv + c0, a.ldv, nk, dv - c0, al & kAlV, Vs + c0, lvs, nullptr, 0);
  __syncthreads();
  uint32_t kf[4];
  load_a(kf, Ks, kQS, 16 * warp, 0, lane);
  float dka[2][4] = {};
  float* slots = kSlots ? dq_slot + int64_t(bh) * la_pairs(nqb) * BT * kTcFd : nullptr;
  for (int qb = kb; qb < nqb; ++qb) {
    const int64_t t0 = int64_t(qb) * BT, qrow = int64_t(b) * L + t0;
    const int nq = tile_rows(L - t0);
    const bf16* dyb = dy + qrow * lddy + int64_t(h) * dv;
    __syncthreads();  // the previous tile's Q, dY (and dS) are read
    stage<kTcFd, BT>(a.q + qrow * a.ldq + int64_t(h) * kTcFd, a.ldq, nq, kTcFd, al & kAlQ, Qs, kQS, Qt, kTS);
    if (threadIdx.x < BT) {
      const bool ok = int(threadIdx.x) < nq;
      rin[threadIdx.x] = ok ? rinv[int64_t(bh) * L + t0 + threadIdx.x] : 0.0f;
      ddn[threadIdx.x] = ok ? dden[int64_t(bh) * L + t0 + threadIdx.x] : 0.0f;
    }
    // dP^T [16 keys x 64 queries] = V dY^T over d_v in chunks of 64 columns.
    float dp[8][4];
#pragma unroll
    for (int n = 0; n < 8; ++n) dp[n][0] = dp[n][1] = dp[n][2] = dp[n][3] = 0.0f;
    for (int c0 = 0; c0 < dv; c0 += BT) {
      if (c0 > 0) __syncthreads();  // the previous chunk is read
      stage<BT, BT>(dyb + c0, lddy, nq, dv - c0, al & kAlDy, dYc, kTS, nullptr, 0);
      __syncthreads();
      const int nkc = min(BT, dv - c0) / 16;
#pragma unroll
      for (int kc4 = 0; kc4 < BT / 16; ++kc4) {
        if (kc4 >= nkc) break;
        uint32_t af[4];
        load_a(af, Vs, lvs, 16 * warp, c0 + 16 * kc4, lane);
        mma_row(dp, af, dYc, kTS, 0, 16 * kc4, lane);
      }
    }
    // S^T [16 keys x 64 queries] = K Q^T, then dS^T in place.
    float st[8][4];
#pragma unroll
    for (int n = 0; n < 8; ++n) st[n][0] = st[n][1] = st[n][2] = st[n][3] = 0.0f;
    mma_row(st, kf, Qs, kQS, 0, 0, lane);
    const int dist0 = int(t0 - j0) - jl0;  // t - j of query column 0 and the lane's key row g
#pragma unroll
    for (int n = 0; n < 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = 8 * n + c2 + (e & 1), dist = dist0 + i - 8 * (e >> 1);
        st[n][e] = dist >= 0 && i < nq ? tc_ds(st[n][e], dp[n][e], rin[i], ddn[i], dist, log2g, decay, kc) : 0.0f;
      }
    // dk += dS^T Q.
    mma_c_strip(dka, st, Qt, kTS, lane);
    if constexpr (kSlots) {
      // dS [query][key] as bf16 (the operand rounding of the dq kernel's c_to_a), then this pair's dq tile
      // [64 x 16] = dS K; warp w takes query rows 16 w .. 16 w + 15.
#pragma unroll
      for (int n = 0; n < 8; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) dSs[(8 * n + c2 + (e & 1)) * kTS + jl0 + 8 * (e >> 1)] = __float2bfloat16(st[n][e]);
      __syncthreads();
      if (16 * warp < nq) {
        float dq[2][4] = {};
#pragma unroll
        for (int kc4 = 0; kc4 < BT / 16; ++kc4) {
          uint32_t af[4];
          load_a(af, dSs, kTS, 16 * warp, 16 * kc4, lane);
          mma_row(dq, af, Kt, kTS, 0, 16 * kc4, lane);
        }
        float* slot = slots + la_pair(kb, qb, nqb) * BT * kTcFd;
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int ti = 16 * warp + g + 8 * r;
#pragma unroll
          for (int n = 0; n < 2; ++n)
            *reinterpret_cast<float2*>(slot + ti * kTcFd + 8 * n + c2) = make_float2(dq[n][2 * r], dq[n][2 * r + 1]);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int jl = jl0 + 8 * r;
    if (jl >= nk) continue;
    bf16* dst = dk + (krow + jl) * lddk + int64_t(h) * kTcFd;
#pragma unroll
    for (int n = 0; n < 2; ++n) st_pair(dst + 8 * n + c2, dka[n][2 * r], dka[n][2 * r + 1]);
  }
}

// dq_acc fp32 [N, H, 16] (=) from the slots of la_tc_bwd_dk_kernel<true>: row t of (b, h) sums the tiles of the
// key blocks kb = 0 .. t / 64 in that order (fixed: bitwise reproducible). One thread per (b, h, t, column),
// grid-stride; consecutive threads read consecutive floats of a slot.
__global__ void la_dq_slot_reduce_kernel(const float* __restrict__ dq_slot, int B, int H, int64_t L,
                                         float* __restrict__ dq_acc) {
  const int nqb = int((L + BT - 1) / BT);
  const int64_t n = int64_t(B) * H * L * kTcFd, pairs = la_pairs(nqb);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int c = int(i % kTcFd);
    const int64_t t = (i / kTcFd) % L, bh = i / (kTcFd * L);
    const int qb = int(t / BT), ti = int(t % BT);
    const float* base = dq_slot + bh * pairs * BT * kTcFd + ti * kTcFd + c;
    float sum = 0.0f;
    for (int kb = 0; kb <= qb; ++kb) sum += base[la_pair(kb, qb, nqb) * BT * kTcFd];
    const int64_t b = bh / H, h = bh % H;
    dq_acc[((b * L + t) * H + h) * kTcFd + c] = sum;
  }
}

// Qs, Ks [64][24], Kt [16][72], dYs, Vs [64][dvp + 8] bf16; rin, ddn [64] fp32.
size_t tc_dq_smem(int dv) {
  const int dvp = (dv + BT - 1) / BT * BT;
  return sizeof(bf16) * (2 * BT * kQS + kTcFd * kTS + 2 * size_t(BT) * (dvp + 8)) + sizeof(float) * 2 * BT;
}

// grid (B H, ceil(L / 64)); CTA = (b, h) x 64 queries (4 warps of 16), over the key blocks they see, in
// increasing order (the mirror of la_tc_bwd_dk_kernel, which owns keys):
//   dP = dY V^T over d_v, S = Q K^T, ds_tj as there,  dq_t = sum_{j <= t} ds_tj k_j.
// dq_acc fp32 [N, H, 16] (=): the key sum; la_bwd_dq_kernel<1> or la_prefix::share_bwd then add the initial
// state's share and cast. The dY tile is staged once; each key block stages K and all of V.
__global__ void __launch_bounds__(kTcThreads)
    la_tc_bwd_dq_kernel(LaTrainCuda a, const bf16* __restrict__ dy, int64_t lddy, const float* __restrict__ rinv,
                        const float* __restrict__ dden, float* __restrict__ dq_acc, Consts kc, unsigned al) {
  extern __shared__ __align__(16) unsigned char smem_tc[];
  const int dv = a.dv, dvp = (dv + BT - 1) / BT * BT, lvs = dvp + 8;
  bf16* Qs = reinterpret_cast<bf16*>(smem_tc);
  bf16* Ks = Qs + BT * kQS;
  bf16* Kt = Ks + BT * kQS;
  bf16* dYs = Kt + kTcFd * kTS;
  bf16* Vs = dYs + BT * lvs;
  float* rin = reinterpret_cast<float*>(Vs + BT * lvs);
  float* ddn = rin + BT;
  const int bh = blockIdx.x, b = bh / a.H, h = bh % a.H;
  const int qb = gridDim.y - 1 - blockIdx.y;  // the longest query blocks start first
  const int64_t L = a.L, t0 = int64_t(qb) * BT, qrow = int64_t(b) * L + t0;
  const int nq = tile_rows(L - t0);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c2 = 2 * (lane & 3);
  const float log2g = log2_gamma(a.gamma, h);
  const bool decay = log2g != 0.0f;

  stage<kTcFd, BT>(a.q + qrow * a.ldq + int64_t(h) * kTcFd, a.ldq, nq, kTcFd, al & kAlQ, Qs, kQS, nullptr, 0);
  const bf16* dyb = dy + qrow * lddy + int64_t(h) * dv;
  for (int c0 = 0; c0 < dvp; c0 += BT)
    stage<BT, BT>(dyb + c0, lddy, nq, dv - c0, al & kAlDy, dYs + c0, lvs, nullptr, 0);
  if (threadIdx.x < BT) {
    const bool ok = int(threadIdx.x) < nq;
    rin[threadIdx.x] = ok ? rinv[int64_t(bh) * L + t0 + threadIdx.x] : 0.0f;
    ddn[threadIdx.x] = ok ? dden[int64_t(bh) * L + t0 + threadIdx.x] : 0.0f;
  }
  __syncthreads();
  uint32_t qf[4];
  load_a(qf, Qs, kQS, 16 * warp, 0, lane);
  const int il0 = 16 * warp + g;  // the lane's first query (row g of the warp's 16) in the block
  const float rin0 = rin[il0], rin1 = rin[il0 + 8], ddn0 = ddn[il0], ddn1 = ddn[il0 + 8];
  float dq[2][4] = {};
  for (int kb = 0; kb <= qb; ++kb) {
    const int64_t j0 = int64_t(kb) * BT, krow = int64_t(b) * L + j0;
    const int nk = tile_rows(L - j0);
    __syncthreads();  // the previous key block is read
    stage<kTcFd, BT>(a.k + krow * a.ldk + int64_t(h) * kTcFd, a.ldk, nk, kTcFd, al & kAlK, Ks, kQS, Kt, kTS);
    for (int c0 = 0; c0 < dvp; c0 += BT)
      stage<BT, BT>(a.v + krow * a.ldv + int64_t(h) * dv + c0, a.ldv, nk, dv - c0, al & kAlV, Vs + c0, lvs, nullptr, 0);
    __syncthreads();
    if (16 * warp >= nq) continue;  // the warp's rows are past the sequence (warp-uniform, no barrier below)
    // dP [16 queries x 64 keys] = dY V^T over d_v.
    float dp[8][4];
#pragma unroll
    for (int n = 0; n < 8; ++n) dp[n][0] = dp[n][1] = dp[n][2] = dp[n][3] = 0.0f;
    for (int k0 = 0; k0 < dv; k0 += 16) {
      uint32_t af[4];
      load_a(af, dYs, lvs, 16 * warp, k0, lane);
      mma_row(dp, af, Vs, lvs, 0, k0, lane);
    }
    // S [16 queries x 64 keys] = Q K^T, then dS in place. Keys past the sequence only occur in the last block,
    // where causality (j <= t < L) masks them.
    float s[8][4];
#pragma unroll
    for (int n = 0; n < 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
    mma_row(s, qf, Ks, kQS, 0, 0, lane);
    const int dist0 = int(t0 - j0) + il0;  // t - j of the lane's query row g and key column 0
#pragma unroll
    for (int n = 0; n < 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int dist = dist0 + 8 * (e >> 1) - (8 * n + c2 + (e & 1));
        s[n][e] = dist >= 0
                      ? tc_ds(s[n][e], dp[n][e], (e >> 1) ? rin1 : rin0, (e >> 1) ? ddn1 : ddn0, dist, log2g, decay, kc)
                      : 0.0f;
      }
    // dq += dS K.
    mma_c_strip(dq, s, Kt, kTS, lane);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int ti = il0 + 8 * r;
    if (ti >= nq) continue;
    float* dst = dq_acc + ((qrow + ti) * a.H + h) * kTcFd;
#pragma unroll
    for (int n = 0; n < 2; ++n)
      *reinterpret_cast<float2*>(dst + 8 * n + c2) = make_float2(dq[n][2 * r], dq[n][2 * r + 1]);
  }
}

// Ks, Qs [64][24], dYt [kDV][72] bf16; rin [64] fp32.
template <int kDV>
constexpr size_t tc_dv_smem() {
  return sizeof(bf16) * (2 * BT * kQS + kDV * kTS) + sizeof(float) * BT;
}

// grid (B H, ceil(L / 64), ceil(dv / kDV)); CTA = (b, h) x 64 keys x kDV columns, over the query blocks:
//   dv_j = sum_{t >= j} gamma^(t-j) w_tj rinv_t dy_t  (=).
template <int kDV>
__global__ void __launch_bounds__(kTcThreads)
    la_tc_bwd_dv_kernel(LaTrainCuda a, const bf16* __restrict__ dy, int64_t lddy, bf16* __restrict__ dvo, int64_t lddv,
                        const float* __restrict__ rinv, Consts kc, unsigned al) {
  constexpr int kNV = kDV / 8;
  extern __shared__ __align__(16) unsigned char smem_tc[];
  bf16* Ks = reinterpret_cast<bf16*>(smem_tc);
  bf16* Qs = Ks + BT * kQS;
  bf16* dYt = Qs + BT * kQS;
  float* rin = reinterpret_cast<float*>(dYt + kDV * kTS);
  const int bh = blockIdx.x, b = bh / a.H, h = bh % a.H, kb = blockIdx.y, dv = a.dv;
  const int c0 = blockIdx.z * kDV, nc = min(kDV, dv - c0);
  const int64_t L = a.L, j0 = int64_t(kb) * BT, krow = int64_t(b) * L + j0;
  const int nk = tile_rows(L - j0), nqb = int((L + BT - 1) / BT);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, c2 = 2 * (lane & 3);
  const float log2g = log2_gamma(a.gamma, h);
  const bool decay = log2g != 0.0f;
  const int jl0 = 16 * warp + g;

  stage<kTcFd, BT>(a.k + krow * a.ldk + int64_t(h) * kTcFd, a.ldk, nk, kTcFd, al & kAlK, Ks, kQS, nullptr, 0);
  __syncthreads();
  uint32_t kf[4];
  load_a(kf, Ks, kQS, 16 * warp, 0, lane);
  float dva[kNV][4];
#pragma unroll
  for (int n = 0; n < kNV; ++n) dva[n][0] = dva[n][1] = dva[n][2] = dva[n][3] = 0.0f;
  for (int qb = kb; qb < nqb; ++qb) {
    const int64_t t0 = int64_t(qb) * BT, qrow = int64_t(b) * L + t0;
    const int nq = tile_rows(L - t0);
    __syncthreads();  // the previous tile is read
    stage<kTcFd, BT>(a.q + qrow * a.ldq + int64_t(h) * kTcFd, a.ldq, nq, kTcFd, al & kAlQ, Qs, kQS, nullptr, 0);
    stage<kDV, BT>(dy + qrow * lddy + int64_t(h) * dv + c0, lddy, nq, nc, al & kAlDy, nullptr, 0, dYt, kTS);
    if (threadIdx.x < BT) rin[threadIdx.x] = int(threadIdx.x) < nq ? rinv[int64_t(bh) * L + t0 + threadIdx.x] : 0.0f;
    __syncthreads();
    if (16 * warp >= nk) continue;  // the warp's keys are past the sequence (warp-uniform, no barrier below)
    // P^T [16 keys x 64 queries] = gamma^(t-j) w_tj rinv_t.
    float st[8][4];
#pragma unroll
    for (int n = 0; n < 8; ++n) st[n][0] = st[n][1] = st[n][2] = st[n][3] = 0.0f;
    mma_row(st, kf, Qs, kQS, 0, 0, lane);
    const int dist0 = int(t0 - j0) - jl0;
#pragma unroll
    for (int n = 0; n < 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = 8 * n + c2 + (e & 1), dist = dist0 + i - 8 * (e >> 1);
        float w = 0.0f;
        if (dist >= 0 && i < nq) {
          const float x = st[n][e] * kc.rs;
          w = (1.0f + x + 0.5f * x * x) * rin[i];
          if (decay) w *= exp2f(float(dist) * log2g);
        }
        st[n][e] = w;
      }
    mma_c_strip(dva, st, dYt, kTS, lane);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int jl = jl0 + 8 * r;
    if (jl >= nk) continue;
    bf16* dst = dvo + (krow + jl) * lddv + int64_t(h) * dv + c0;
#pragma unroll
    for (int n = 0; n < kNV; ++n)
      if (8 * n + c2 < nc) st_pair(dst + 8 * n + c2, dva[n][2 * r], dva[n][2 * r + 1]);
  }
}

// ---- host ----------------------------------------------------------------------------------------

// Calls f(std::integral_constant<int, NJ>) with NJ = ceil(fd / 16) column groups of 16.
template <class F>
void with_nj(int fd, F&& f) {
  dispatch_ge<1, 2, 3, 4>((fd + 15) / 16, std::forward<F>(f));
}

// Allows a kernel its dynamic shared memory above the 48 KB default (once per kernel).
template <class K>
void allow_smem(K* kernel, size_t bytes) {
  JRT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

unsigned blocks_of(int64_t n) { return unsigned((n + BT - 1) / BT); }

void check_la(const LaTrainCuda& a, const char* what) {
  JRT_CHECK(a.B >= 0 && a.L >= 0 && a.H >= 0, "{}: bad sizes B {} L {} H {}", what, a.B, a.L, a.H);
  JRT_CHECK(a.fd >= 1 && a.fd <= kMaxFd, "{}: feature dim {} must be in [1, {}]", what, a.fd, kMaxFd);
  JRT_CHECK(a.dv >= 1, "{}: d_v {} must be positive", what, a.dv);
  JRT_CHECK(a.q && a.k && a.v && a.y && a.den, "{}: q, k, v, y and den are required", what);
  JRT_CHECK(!a.dt || a.u, "{}: an output scale dt needs the u buffer (output before dt)", what);
  JRT_CHECK((a.L + BT - 1) / BT <= 65535, "{}: sequence length {} exceeds the grid", what, a.L);
}

void launch_outer(const OuterArgs& o, int B, cudaStream_t stream) {
  const Consts kc = consts(o.fd);
  const dim3 grid(unsigned(B * o.H), o.out ? blocks_of(o.dv) : 1u, blocks_of(o.D));
  with_nj(o.fd, [&](auto nj) {
    constexpr int NJ = decltype(nj)::value;
    static const bool once = (allow_smem(la_outer_kernel<NJ>, outer_smem<NJ>()), true);
    (void)once;
    la_outer_kernel<NJ><<<grid, NT, outer_smem<NJ>(), stream>>>(o, kc);
  });
  JRT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

size_t la_fwd_workspace_bytes(const LaTrainCuda& a) {
  if (a.B <= 0 || a.H <= 0 || a.L <= 0 || !state_gemm(a)) return 0;
  return la_prefix::share_fwd_bytes(int64_t(a.B) * a.H, a.L, a.fd, a.dv);
}

void la_fwd_train_cuda(const LaTrainCuda& a, void* workspace, cudaStream_t stream) {
  if (a.B <= 0 || a.H <= 0 || a.L <= 0) return;
  check_la(a, "la_fwd_train_cuda");
  const int D = 1 + a.fd + a.fd * a.fd;
  const Consts kc = consts(a.fd);
  if (use_tc(a)) {
    const unsigned al = (rows_aligned(a.q, a.ldq) ? kAlQ : 0u) | (rows_aligned(a.k, a.ldk) ? kAlK : 0u) |
                        (rows_aligned(a.v, a.ldv) ? kAlV : 0u);
    const float* share = nullptr;
    int64_t ldsh = 0;
    if (state_gemm(a)) {
      JRT_CHECK(workspace, "la_fwd_train_cuda: workspace required ({} bytes)", la_fwd_workspace_bytes(a));
      ldsh = la_prefix::share_fwd(a.q, a.ldq, a.B, a.L, a.H, a.fd, a.dv, a.S0, a.z0, workspace, &share, stream);
    }
    const bool cuda_core_state = (a.S0 || a.z0) && !share;
    with_dv_tile(a.dv, [&](auto tile) {
      constexpr int kDV = decltype(tile)::value;
      static const bool once = (allow_smem(la_tc_fwd_kernel<kDV>, tc_fwd_smem<kDV>(true)), true);
      (void)once;
      const dim3 grid(unsigned(a.B * a.H), unsigned((a.dv + kDV - 1) / kDV), blocks_of(a.L));
      la_tc_fwd_kernel<kDV><<<grid, kTcThreads, tc_fwd_smem<kDV>(cuda_core_state), stream>>>(a, D, kc, al, share, ldsh);
    });
    JRT_CUDA_CHECK(cudaGetLastError());
    return;
  }
  const dim3 grid(unsigned(a.B * a.H), blocks_of(a.dv), blocks_of(a.L));
  with_nj(a.fd, [&](auto nj) {
    constexpr int NJ = decltype(nj)::value;
    static const bool once = (allow_smem(la_fwd_kernel<NJ>, fwd_smem<NJ>()), true);
    (void)once;
    la_fwd_kernel<NJ><<<grid, NT, fwd_smem<NJ>(), stream>>>(a, D, kc);
  });
  JRT_CUDA_CHECK(cudaGetLastError());
}

namespace {

// The backward's workspace: rinv, dden [B, H, L]; on the tensor-core path dq_acc fp32 [N, H, 16] (8-byte aligned
// after them); with the state GEMMs their scratch (256-byte aligned after that); with dq slots the slots
// [B H, pairs, 64, 16] fp32 (256-byte aligned, last).
struct LaBwdLayout {
  size_t share = 0, slots = 0, total = 0;
  bool use_slots = false;
};
LaBwdLayout la_bwd_layout(const LaTrainCuda& a, bool slots) {
  LaBwdLayout w;
  if (a.B <= 0 || a.H <= 0 || a.L <= 0) return w;
  const size_t bhl = size_t(a.B) * size_t(a.H) * size_t(a.L);
  const auto up = [](size_t x) { return (x + 255) / 256 * 256; };
  w.total = sizeof(float) * (2 * bhl + (use_tc(a) ? size_t(kTcFd) * bhl : 0));
  if (state_gemm(a)) {
    w.share = up(w.total);
    w.total = w.share + la_prefix::share_bwd_bytes(int64_t(a.B) * a.H, a.L, a.fd, a.dv);
  }
  if (slots && use_tc(a)) {
    const int nqb = int((a.L + BT - 1) / BT);
    w.use_slots = true;
    w.slots = up(w.total);
    w.total = w.slots + sizeof(float) * size_t(a.B) * size_t(a.H) * size_t(la_pairs(nqb)) * BT * kTcFd;
  }
  return w;
}

}  // namespace

// With the dq slots when they fit under the cap (dq_slot_cap_bytes), else without.
size_t la_bwd_workspace_bytes(const LaTrainCuda& a) {
  const LaBwdLayout with = la_bwd_layout(a, true), without = la_bwd_layout(a, false);
  return with.total - without.total <= dq_slot_cap_bytes() ? with.total : without.total;
}

void la_bwd_train_cuda(const LaTrainCuda& a, const bf16* dy, int64_t lddy, const LaTrainGradsCuda& g, void* workspace,
                       size_t workspace_bytes, cudaStream_t stream) {
  if (a.B <= 0 || a.H <= 0) return;
  const int D = 1 + a.fd + a.fd * a.fd;
  if (a.L <= 0) {  // no tokens: the initial state's gradients are zero
    if (g.dS0) JRT_CUDA_CHECK(cudaMemsetAsync(g.dS0, 0, sizeof(float) * size_t(a.B) * a.H * D * a.dv, stream));
    if (g.dz0) JRT_CUDA_CHECK(cudaMemsetAsync(g.dz0, 0, sizeof(float) * size_t(a.B) * a.H * D, stream));
    return;
  }
  check_la(a, "la_bwd_train_cuda");
  JRT_CHECK(dy && g.dq && g.dk && g.dv, "la_bwd_train_cuda: dy, dq, dk and dv are required");
  JRT_CHECK(!a.dt || g.ddt, "la_bwd_train_cuda: an output scale dt needs its gradient buffer ddt");
  // The slots path whenever the workspace holds the slots (a caller may size it for a larger shape than this
  // call's, on either side of the cap).
  const LaBwdLayout with_slots = la_bwd_layout(a, true), without = la_bwd_layout(a, false);
  const LaBwdLayout lay = workspace_bytes >= with_slots.total ? with_slots : without;
  JRT_CHECK(workspace && workspace_bytes >= without.total,
            "la_bwd_train_cuda: workspace of {} bytes, at least {} needed", workspace ? workspace_bytes : 0,
            without.total);
  const int64_t BHL = int64_t(a.B) * a.H * a.L;
  float* rinv = static_cast<float*>(workspace);
  float* dden = rinv + BHL;
  const Consts kc = consts(a.fd);
  const unsigned BH = unsigned(a.B * a.H);

  const bool tc = use_tc(a), gemm_state = state_gemm(a);
  float* dq_acc = tc ? dden + BHL : nullptr;
  la_bwd_prep_kernel<<<unsigned((BHL * 32 + 255) / 256), 256, 0, stream>>>(a, dy, lddy, g.ddt, g.ldddt, rinv, dden);
  JRT_CUDA_CHECK(cudaGetLastError());
  if (tc) {
    const unsigned al = (rows_aligned(a.q, a.ldq) ? kAlQ : 0u) | (rows_aligned(a.k, a.ldk) ? kAlK : 0u) |
                        (rows_aligned(a.v, a.ldv) ? kAlV : 0u) | (rows_aligned(dy, lddy) ? kAlDy : 0u);
    static const bool once =
        (allow_smem(la_tc_bwd_dk_kernel<false>, tc_dkq_smem(kTcMaxDv, false)),
         allow_smem(la_tc_bwd_dk_kernel<true>, tc_dkq_smem(kTcMaxDv, true)),
         allow_smem(la_tc_bwd_dq_kernel, tc_dq_smem(kTcMaxDv)), allow_smem(la_bwd_dq_kernel<1>, bwd_smem<1>()), true);
    (void)once;
    const dim3 grid(BH, blocks_of(a.L));
    if (lay.use_slots) {  // dk and the dq tiles in one pass, then the tiles added in key-block order
      float* slots = reinterpret_cast<float*>(static_cast<unsigned char*>(workspace) + lay.slots);
      la_tc_bwd_dk_kernel<true>
          <<<grid, kTcThreads, tc_dkq_smem(a.dv, true), stream>>>(a, dy, lddy, g.dk, g.lddk, rinv, dden, slots, kc, al);
      JRT_CUDA_CHECK(cudaGetLastError());
      const int64_t n = BHL * kTcFd;
      la_dq_slot_reduce_kernel<<<unsigned(std::min<int64_t>((n + 255) / 256, 4096)), 256, 0, stream>>>(slots, a.B, a.H,
                                                                                                       a.L, dq_acc);
    } else {  // past the slot cap: dq recomputes dS per query block
      la_tc_bwd_dk_kernel<false><<<grid, kTcThreads, tc_dkq_smem(a.dv, false), stream>>>(a, dy, lddy, g.dk, g.lddk,
                                                                                         rinv, dden, nullptr, kc, al);
      JRT_CUDA_CHECK(cudaGetLastError());
      la_tc_bwd_dq_kernel<<<grid, kTcThreads, tc_dq_smem(a.dv), stream>>>(a, dy, lddy, rinv, dden, dq_acc, kc, al);
    }
    JRT_CUDA_CHECK(cudaGetLastError());
    with_dv_tile(a.dv, [&](auto tile) {
      constexpr int kDV = decltype(tile)::value;
      const dim3 grid(BH, blocks_of(a.L), unsigned((a.dv + kDV - 1) / kDV));
      la_tc_bwd_dv_kernel<kDV>
          <<<grid, kTcThreads, tc_dv_smem<kDV>(), stream>>>(a, dy, lddy, g.dv, g.lddv, rinv, kc, al);
    });
    JRT_CUDA_CHECK(cudaGetLastError());
    if (gemm_state) {  // dq = dq_acc + the state's share; dS0 / dz0
      la_prefix::share_bwd(a.q, a.ldq, dy, lddy, rinv, dden, a.B, a.L, a.H, a.fd, a.dv, a.S0, a.z0, dq_acc, g.dq,
                           g.lddq, g.dS0, g.dz0, static_cast<unsigned char*>(workspace) + lay.share, stream);
    } else {  // the S0 / z0 share of dq and the cast of dq_acc
      la_bwd_dq_kernel<1><<<dim3(BH, blocks_of(a.L)), NT, bwd_smem<1>(), stream>>>(a, dy, lddy, g.dq, g.lddq, rinv,
                                                                                   dden, D, kc, dq_acc);
      JRT_CUDA_CHECK(cudaGetLastError());
    }
  }
  const bool dv_fused = a.dv <= BT;
  if (!tc) {
    with_nj(a.fd, [&](auto nj) {
      constexpr int NJ = decltype(nj)::value;
      static const bool once =
          (allow_smem(la_bwd_dq_kernel<NJ>, bwd_smem<NJ>()), allow_smem(la_bwd_dk_kernel<NJ>, bwd_smem<NJ>()),
           allow_smem(la_bwd_dv_kernel<NJ>, dv_smem<NJ>()), true);
      (void)once;
      la_bwd_dq_kernel<NJ><<<dim3(BH, blocks_of(a.L)), NT, bwd_smem<NJ>(), stream>>>(a, dy, lddy, g.dq, g.lddq, rinv,
                                                                                     dden, D, kc, nullptr);
      JRT_CUDA_CHECK(cudaGetLastError());
      la_bwd_dk_kernel<NJ><<<dim3(BH, blocks_of(a.L)), NT, bwd_smem<NJ>(), stream>>>(a, dy, lddy, g.dk, g.lddk, g.dv,
                                                                                     g.lddv, dv_fused, rinv, dden, kc);
      JRT_CUDA_CHECK(cudaGetLastError());
      if (!dv_fused) {
        la_bwd_dv_kernel<NJ><<<dim3(BH, blocks_of(a.L), blocks_of(a.dv)), NT, dv_smem<NJ>(), stream>>>(
            a, dy, lddy, g.dv, g.lddv, rinv, kc);
        JRT_CUDA_CHECK(cudaGetLastError());
      }
    });
  }
  if ((g.dS0 || g.dz0) && !gemm_state) {
    // dS0 = sum_t gamma^(t+1) phi(q_t) dnum_t^T,  dz0 = sum_t phi(q_t) dden_t.
    OuterArgs o;
    o.x = a.q, o.ldx = a.ldq, o.R = dy, o.ldr = lddy, o.rw = rinv, o.zw = dden, o.gamma = a.gamma;
    o.out = g.dS0, o.outz = g.dz0;
    o.H = a.H, o.fd = a.fd, o.dv = a.dv, o.D = D, o.L = a.L, o.M = a.L;
    launch_outer(o, a.B, stream);
  }
}

}  // namespace jrt::ops::cuda
