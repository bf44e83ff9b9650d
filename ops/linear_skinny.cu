// ops/linear_skinny.cu — the decode-shaped GEMM y[M, N] (+)= x[M, K] W[N, K]^T (+ bias) for M <= 128 rows
// (one row per sequence in a batched decode step), on sm_90a warpgroup MMA. cuBLAS reads the weight of such
// a product at 1.2-2.8 TB/s and pays a ~5 us floor per call (plus split-K reduction kernels at M = 1); this
// kernel streams W once per product:
//   - swapped operands: W rows are wgmma's M side (64 per warpgroup, 128 per CTA), the batch is its N side
//     (8 .. 128, a template parameter), so one CTA holds the whole batch and reads each weight byte once;
//   - K split over a thread-block cluster of S CTAs (S <= 8, chosen to fill the SMs), the partial tiles
//     summed through distributed shared memory in a fixed rank order (deterministic, no workspace, no
//     atomics), each rank finishing 1/S of the tile with the fused epilogue (bias, bf16 store, fp32 store
//     or fp32 accumulate into the residual);
//   - a TMA pipeline of up to 8 stages (W tile 128 x 64, x tile BM x 64, both K-major with the 128-byte
//     swizzle; one mbarrier per stage; W with an L2 evict-first hint). The first version of this kernel
//     (dev/skinny_gemm_v1_cpasync.cu in commit f24899e) fed wgmma with cp.async and streamed only ~18 GB/s per SM;
//   - programmatic dependent launch: the weight tiles of the first stages are requested before
//     griddepcontrol.wait, i.e. while the kernel before it (norm, conv, ...) still runs.
//   - the MLP activation in the epilogue (skinny_gemm_act): GELU, or SwiGLU with each CTA pairing 64 value
//     rows with the 64 gate rows F further (two TMA boxes per stage), so fc1's output never reaches memory.
// Measured on the H200 (docs/perf.md): faster than cuBLAS up to 32 rows on all but the widest projections
// (up to 1.9x on small weights, 1.3x on the 3584 -> 1792 ones); at 64 and 128 rows on outputs up to 2048
// wide, with 64 weight rows per CTA (skinny_gemm_linear holds the rule and its measurements).
// Shapes: x [M, K] row stride ldx, W [N, K] dense, y [M, N] row stride ldy; K % 8 == 0, N % 4 == 0 and
// 16-byte aligned rows are required (skinny_gemm returns false otherwise and the caller uses cuBLAS).
#include <cooperative_groups.h>
#include <cuda.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>

#include "core/cuda_util.h"
#include "core/error.h"
#include "ops/cuda_common.cuh"
#include "ops/cuda_ops.h"
#include "ops/linear_skinny_lab.h"

namespace jrt::ops::cuda {

namespace {

namespace cg = cooperative_groups;

constexpr int kBK = 64;       // K per stage: 8 core matrices of 16 bytes
constexpr int kMaxSplit = 8;  // portable cluster size

// BM: batch rows (wgmma's N); NWG warpgroups of m64 cover kBN = 64 NWG weight rows; MINB CTAs per SM (the
// stages share ~200 KB). The default is NWG = 2, MINB = 1; 256 weight rows per CTA (half the x traffic per
// weight byte) measured slower on every shape (dev/README.md). NWG = 1 and MINB = 2 are the variants for 64 /
// 128 rows (SkinnyVariant); NWG = 1 wins on outputs up to 2048 wide at 64 rows, MINB = 2 never clearly.
template <int BM, int NWG, int MINB = 1>
struct Cfg {
  static constexpr int kBN = 64 * NWG, kThreads = 128 * NWG;
  static constexpr int kRedLd = kBN + 4;  // fp32 partial tile row stride (bank spread, 16-byte rows)
  static constexpr int kWBytes = kBN * kBK * 2, kXBytes = BM * kBK * 2, kStage = kWBytes + kXBytes;
  static constexpr int kStages = std::max(2, std::min(8, (200 * 1024) / MINB / kStage));
  static constexpr int kBar = kStages * kStage;  // the stages' mbarriers follow the tiles
  // + 1024: the tiles start at the first 1024-byte boundary (the 128-byte swizzle's atom).
  static constexpr int kSmem = kBar + 8 * kStages + 1024;
  static_assert(kBN <= 256 && kSmem <= 227 * 1024, "TMA box and shared memory limits");
  // The fp32 partial tile goes over the stages after the main loop, never over the live mbarriers.
  static_assert(BM * kRedLd * 4 <= kBar, "partial tile larger than the stages");
};

struct SkinnyArgs {
  int M, N;  // N: output columns (with kGlu the weight has 2 N rows: values, then gates)
  void* y;
  int64_t ldy;
  const float* bias;
  int out_f32, accumulate;
  int nkb;  // k-blocks of kBK
  int act;  // Activation applied before the store (kGeluErf / kGeluTanh; SwiGLU is the kGlu kernel)
};

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define JRT_SKINNY 1
#endif

#ifdef JRT_SKINNY
__device__ __forceinline__ float silu_f(float x) { return x / (1.0f + expf(-x)); }
// The same formulas as ops/activation.h's (and gelu_cuda's), on the fp32 sum before its only rounding.
__device__ __forceinline__ float act_f(float v, int act) {
  if (act == int(Activation::kGeluErf)) return 0.5f * v * (1.0f + erff(v * 0.7071067811865476f));
  if (act == int(Activation::kGeluTanh))
    return 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
  return v;
}

// K-major tile [rows][64] bf16 as TMA writes it with the 128-byte swizzle: 128-byte rows in 8-row atoms of
// 1024 bytes (the stride byte offset), the leading byte offset unused; a k16 step is +32 bytes on the start.
__device__ __forceinline__ uint64_t sw128_desc(uint32_t addr) {
  return uint64_t((addr & 0x3FFFF) >> 4) | (uint64_t(1) << 16) | (uint64_t(1024 >> 4) << 32) | (uint64_t(1) << 62);
}

template <int N>
__device__ __forceinline__ void wgmma_ss(float (&d)[N / 2], uint64_t a, uint64_t b);
template <>
__device__ __forceinline__ void wgmma_ss<8>(float (&d)[4], uint64_t a, uint64_t b) {
  asm volatile("wgmma.mma_async.sync.aligned.m64n8k16.f32.bf16.bf16 {%0,%1,%2,%3}, %4, %5, 1, 1, 1, 0, 0;\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "l"(a), "l"(b));
}
template <>
__device__ __forceinline__ void wgmma_ss<16>(float (&d)[8], uint64_t a, uint64_t b) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7}, %8, %9, 1, 1, 1, 0, 0;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
      : "l"(a), "l"(b));
}
template <>
__device__ __forceinline__ void wgmma_ss<32>(float (&d)[16], uint64_t a, uint64_t b) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, "
      "%16, %17, 1, 1, 1, 0, 0;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
      : "l"(a), "l"(b));
}
template <>
__device__ __forceinline__ void wgmma_ss<64>(float (&d)[32], uint64_t a, uint64_t b) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%"
      "30,%31}, %32, %33, 1, 1, 1, 0, 0;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
        "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
        "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(a), "l"(b));
}
template <>
__device__ __forceinline__ void wgmma_ss<128>(float (&d)[64], uint64_t a, uint64_t b) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%"
      "30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%"
      "58,%59,%60,%61,%62,%63}, %64, %65, 1, 1, 1, 0, 0;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
        "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
        "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]),
        "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]),
        "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
        "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),
        "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(a), "l"(b));
}

// Box {64 k, rows} of a 2-D tensor map at (k0, row0) into shared memory, completing on bar.
__device__ __forceinline__ void tma_load(uint32_t dst, const CUtensorMap* map, int k0, int row0, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          dst),
      "l"(map), "r"(k0), "r"(row0), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void tma_load(uint32_t dst, const CUtensorMap* map, int k0, int row0, uint32_t bar,
                                         uint64_t policy) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1, {%2, "
      "%3}], [%4], %5;\n" ::"r"(dst),
      "l"(map), "r"(k0), "r"(row0), "r"(bar), "l"(policy)
      : "memory");
}
#endif  // JRT_SKINNY

// Grid (N tiles, S), cluster (1, S, 1): CTA (t, s) multiplies W rows [BN t, BN t + BN) by the batch over
// k-blocks [s nkb / S, (s + 1) nkb / S). TMA zero-fills what lies outside W [N, K] and x [M, K] (the tail
// tile, the K tail, the batch rows past M), so the MMA loop has no edge cases.
// kGlu (SwiGLU fused, NWG = 2): CTA t loads value rows [64 t, 64 t + 64) for warpgroup 0 and the gate rows
// N + the same for warpgroup 1 (two 64-row boxes per stage), so output column n = 64 t + o has its value in
// partial-tile row o and its gate in row 64 + o; y = value * silu(gate). No weight reordering is needed.
template <int BM, int NWG, int MINB, bool kGlu>
__global__ void __launch_bounds__(128 * NWG, MINB)
    skinny_kernel(const __grid_constant__ CUtensorMap tw, const __grid_constant__ CUtensorMap tx, SkinnyArgs a) {
#ifdef JRT_SKINNY
  static_assert(!kGlu || NWG == 2, "the fused SwiGLU pairs two 64-row warpgroups");
  using C = Cfg<BM, NWG, MINB>;
  constexpr int kBN = C::kBN, kThreads = C::kThreads, kRedLd = C::kRedLd;
  constexpr int kOutN = kGlu ? 64 : kBN;  // output columns per CTA
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = smem_raw + ((1024 - (smem_addr(smem_raw) & 1023)) & 1023);
  cg::cluster_group cluster = cg::this_cluster();
  const int S = int(cluster.num_blocks()), rank = int(cluster.block_rank());
  const int tid = threadIdx.x, wg = tid >> 7;
  const int n0 = blockIdx.x * kOutN, m0 = blockIdx.z * BM;  // (batch tiles: SkinnyVariant::kBatchSplit)
  const int kb0 = int(int64_t(rank) * a.nkb / S), kb1 = int(int64_t(rank + 1) * a.nkb / S), nk = kb1 - kb0;
  const uint32_t base = smem_addr(smem), bars = base + C::kBar;

  if (tid == 0) {
    for (int s = 0; s < C::kStages; ++s) mbar_init(bars + 8 * s, 1);
    fence_mbarrier_init();
  }
  __syncthreads();
  uint64_t evict_first = 0;
  const int pro = min(C::kStages, nk);
  auto load_w = [&](uint32_t dst, int kb, uint32_t bar) {
    if constexpr (kGlu) {
      tma_load(dst, &tw, kb * kBK, n0, bar, evict_first);
      tma_load(dst + C::kWBytes / 2, &tw, kb * kBK, a.N + n0, bar, evict_first);
    } else {
      tma_load(dst, &tw, kb * kBK, n0, bar, evict_first);
    }
  };
  if (tid == 0) {
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(evict_first));
    // The weights do not depend on the previous kernel: request them before waiting for it.
    for (int s = 0; s < pro; ++s) {
      mbar_expect(bars + 8 * s, C::kStage);
      load_w(base + s * C::kStage, kb0 + s, bars + 8 * s);
    }
  }
  pdl_wait();
  if (tid == 0)
    for (int s = 0; s < pro; ++s) tma_load(base + s * C::kStage + C::kWBytes, &tx, (kb0 + s) * kBK, m0, bars + 8 * s);
  pdl_launch_dependents();

  float acc[BM / 2];
#pragma unroll
  for (int i = 0; i < BM / 2; ++i) acc[i] = 0.0f;
  // One k-block's wgmma group stays in flight while the next k-block's tiles are awaited; the slot of
  // k-block i - 1 is refilled (kStages - 1 ahead) once both warpgroups' groups for it have retired.
  for (int i = 0; i < nk; ++i) {
    const int slot = i % C::kStages;
    const uint32_t st = base + uint32_t(slot * C::kStage);
    mbar_wait(bars + 8 * slot, (i / C::kStages) & 1);
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk)
      wgmma_ss<BM>(acc, sw128_desc(st + uint32_t(wg * 64 * 128 + kk * 32)),
                   sw128_desc(st + uint32_t(C::kWBytes + kk * 32)));
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory");
    __syncthreads();
    const int kb = kb0 + i - 1 + C::kStages;
    if (tid == 0 && i >= 1 && kb < kb1) {
      const int ps = (i - 1) % C::kStages;
      const uint32_t pst = base + uint32_t(ps * C::kStage);
      mbar_expect(bars + 8 * ps, C::kStage);
      load_w(pst, kb, bars + 8 * ps);
      tma_load(pst + C::kWBytes, &tx, kb * kBK, m0, bars + 8 * ps);
    }
  }
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
  __syncthreads();  // every warpgroup's MMAs are done: the stages become the partial tile

  // Accumulator (m64nBM layout): warp w of the warpgroup, lane l holds W row 16 w + l/4 (+8) and batch
  // columns 8 j + 2 (l%4) (+1) in acc[4 j + e]. Stored batch-major over the (now idle) stages: red[b][o].
  float* red = reinterpret_cast<float*>(smem);
  {
    const int warp = (tid >> 5) & 3, lane = tid & 31;
    const int o = wg * 64 + warp * 16 + (lane >> 2);
#pragma unroll
    for (int j = 0; j < BM / 8; ++j) {
      const int b = 8 * j + 2 * (lane & 3);
      red[b * kRedLd + o] = acc[4 * j];
      red[(b + 1) * kRedLd + o] = acc[4 * j + 1];
      red[b * kRedLd + o + 8] = acc[4 * j + 2];
      red[(b + 1) * kRedLd + o + 8] = acc[4 * j + 3];
    }
  }
  cluster.sync();

  // Rank r finishes float4s [r per, (r + 1) per) of the valid (mrows x nrows) tile.
  const int nrows = min(kOutN, a.N - n0), mrows = min(BM, a.M - m0);
  const int q4 = nrows / 4, total = mrows * q4, per = (total + S - 1) / S;
  const int e1 = min(total, (rank + 1) * per);
  // The S partial float4s at row b, column o of the tile, all loaded before the first add (distributed
  // shared memory latency), summed in rank order.
  auto reduce = [&](int b, int o) {
    float4 part[kMaxSplit];
#pragma unroll
    for (int r = 0; r < kMaxSplit; ++r)
      if (r < S) part[r] = *reinterpret_cast<const float4*>(cluster.map_shared_rank(red, r) + b * kRedLd + o);
    float4 sum = part[0];
#pragma unroll
    for (int r = 1; r < kMaxSplit; ++r)
      if (r < S) {
        sum.x += part[r].x;
        sum.y += part[r].y;
        sum.z += part[r].z;
        sum.w += part[r].w;
      }
    return sum;
  };
  auto add_bias = [&](float4& v, int n) {
    if (a.bias) {
      const float4 bb = *reinterpret_cast<const float4*>(a.bias + n);
      v.x += bb.x;
      v.y += bb.y;
      v.z += bb.z;
      v.w += bb.w;
    }
  };
  // kU items per pass (idx = i0 + kThreads u), every load of the pass (the S partials through distributed
  // shared memory, the old fp32 values of a +=) issued before its first add or store. One item at a time,
  // each waited one DSMEM and one L2 round trip (fc1 at 128 rows, 8 items per thread: 13.60 -> 13.03 us;
  // dev/README.md, "Skinny decode GEMM" v4). kU is at most the items a thread has without a split (1 at 8
  // rows): passes past the thread's last item would only add predicated-off work.
  constexpr int kU = std::max(1, std::min(4, BM * kOutN / (4 * kThreads)));
  for (int i0 = rank * per + tid; i0 < e1; i0 += kThreads * kU) {
    float4 sum[kU], gate[kU], old[kU];
    int bb[kU], oo[kU];
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      const int idx = i0 + kThreads * u;
      bb[u] = idx / q4;
      oo[u] = (idx - bb[u] * q4) * 4;
      if (idx < e1) {
        sum[u] = reduce(bb[u], oo[u]);
        if constexpr (kGlu) gate[u] = reduce(bb[u], 64 + oo[u]);
      }
    }
    if (a.out_f32 && a.accumulate) {
#pragma unroll
      for (int u = 0; u < kU; ++u)
        if (i0 + kThreads * u < e1)
          old[u] = *reinterpret_cast<const float4*>(static_cast<const float*>(a.y) + (m0 + bb[u]) * a.ldy + n0 + oo[u]);
    }
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      if (i0 + kThreads * u >= e1) break;
      const int n = n0 + oo[u];
      const int64_t row = m0 + bb[u];
      float4 v = sum[u];
      add_bias(v, n);
      if constexpr (kGlu) {
        float4 gt = gate[u];
        add_bias(gt, a.N + n);
        v.x *= silu_f(gt.x);
        v.y *= silu_f(gt.y);
        v.z *= silu_f(gt.z);
        v.w *= silu_f(gt.w);
      } else if (a.act) {
        v.x = act_f(v.x, a.act);
        v.y = act_f(v.y, a.act);
        v.z = act_f(v.z, a.act);
        v.w = act_f(v.w, a.act);
      }
      if (a.out_f32) {
        if (a.accumulate) {
          v.x += old[u].x;
          v.y += old[u].y;
          v.z += old[u].z;
          v.w += old[u].w;
        }
        *reinterpret_cast<float4*>(static_cast<float*>(a.y) + row * a.ldy + n) = v;
      } else {
        __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
        uint2 w2;
        w2.x = *reinterpret_cast<uint32_t*>(&lo);
        w2.y = *reinterpret_cast<uint32_t*>(&hi);
        *reinterpret_cast<uint2*>(static_cast<bf16*>(a.y) + row * a.ldy + n) = w2;
      }
    }
  }
  cluster.sync();  // the peers' partial tiles stay alive until every rank has read them
#else
  __trap();
#endif
}

// Read at first use and again on skinny_gemm_reload_env (kSkinnyReloadedKnobs).
struct Knobs {
  // The linear layers' policy (skinny_gemm_linear): measured per shape on the H200 (docs/perf.md,
  // bench_cuda_gemm). JRT_SKINNY_MAX_M=n replaces it by "every product of up to n rows" (benchmarks; -1:
  // not set); JRT_SKINNY_ACT_MAX_M=n sets how many rows the fused MLP activation takes (0: never fused).
  int64_t forced_max_m = -1;
  int64_t act_max_m = 64;
  // JRT_SKINNY_WIDE128=0: at 65 .. 128 rows the 64-row tiling only for outputs up to 512 wide or with a bias,
  // as before 2026-11-29 (A/B runs).
  bool wide128 = true;
  // JRT_SKINNY_VARIANT=rows64|twopersm|batchsplit: the tiling above 32 rows under JRT_SKINNY_MAX_M (lab).
  SkinnyVariant variant = SkinnyVariant::kDefault;
};
Knobs read_knobs() {
  Knobs r;
  if (const char* m = std::getenv("JRT_SKINNY_MAX_M")) r.forced_max_m = std::max<int64_t>(0, std::atoll(m));
  if (const char* m = std::getenv("JRT_SKINNY_ACT_MAX_M")) r.act_max_m = std::atoll(m);
  if (const char* w = std::getenv("JRT_SKINNY_WIDE128")) r.wide128 = w[0] != '0';
  if (const char* v = std::getenv("JRT_SKINNY_VARIANT")) {
    const std::string n = v;
    r.variant = n == "rows64"       ? SkinnyVariant::kRows64
                : n == "twopersm"   ? SkinnyVariant::kTwoPerSm
                : n == "batchsplit" ? SkinnyVariant::kBatchSplit
                                    : r.variant;
  }
  return r;
}
struct Device {
  int sm_major = 0;
  bool enabled = false, pdl = true;
  bool pdl_small = true;  // the small kernels' launch_pdl (JRT_PDL=gemm: the GEMM's only, for A/B runs)
  Knobs knobs;
};
Device& device_mut() {
  static Device d = [] {
    Device r;
    int dev = 0;
    JRT_CUDA_CHECK(cudaGetDevice(&dev));
    JRT_CUDA_CHECK(cudaDeviceGetAttribute(&r.sm_major, cudaDevAttrComputeCapabilityMajor, dev));
    const char* env = std::getenv("JRT_SKINNY_GEMM");
    r.enabled = r.sm_major == 9 && !(env && env[0] == '0');
    const char* pdl = std::getenv("JRT_PDL");
    r.pdl = r.sm_major >= 9 && !(pdl && pdl[0] == '0');
    r.pdl_small = r.pdl && !(pdl && std::string(pdl) == "gemm");
    r.knobs = read_knobs();
    return r;
  }();
  return d;
}
const Device& device() { return device_mut(); }

// cuTensorMapEncodeTiled from the driver, without linking libcuda.
PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q{};
    JRT_CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q));
    JRT_CHECK(q == cudaDriverEntryPointSuccess && p, "skinny GEMM: the driver has no cuTensorMapEncodeTiled");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
  }();
  return fn;
}

// 2-D bf16 tensor [rows][cols] (row stride ld elements), box {64, box_rows}, 128-byte swizzle, zero fill.
bool make_map(CUtensorMap& m, const bf16* p, int64_t rows, int64_t cols, int64_t ld, int box_rows) {
  const cuuint64_t dims[2] = {cuuint64_t(cols), cuuint64_t(rows)};
  const cuuint64_t strides[1] = {cuuint64_t(ld) * 2};
  const cuuint32_t box[2] = {cuuint32_t(kBK), cuuint32_t(box_rows)};
  const cuuint32_t estr[2] = {1, 1};
  return encode_fn()(&m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<bf16*>(p), dims, strides, box, estr,
                     CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                     CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

template <int BM, int NWG, int MINB = 1, bool kGlu = false>
bool launch(const bf16* x, int64_t ldx, const bf16* W, int64_t K, const SkinnyArgs& a, int split, cudaStream_t stream) {
  using C = Cfg<BM, NWG, MINB>;
  constexpr int kBN = C::kBN, kOutN = kGlu ? 64 : kBN;
  auto* kern = skinny_kernel<BM, NWG, MINB, kGlu>;
  static std::atomic<uint64_t> raised{0};
  raise_smem_limit_once(kern, C::kSmem, raised);
  // Batch tiles of BM rows (one unless kBatchSplit tiles M = 128 by 64) multiply the CTAs per weight tile.
  // (a fused SwiGLU CTA reads 128 weight rows for 64 output columns: the same tiles x S as 2 N rows)
  const int mtiles = (a.M + BM - 1) / BM;
  if (split <= 0) split = skinny_gemm_split(int64_t(a.N) * mtiles, K, kOutN, MINB);
  split = int(std::min<int64_t>({split, kMaxSplit, a.nkb}));
  CUtensorMap tw, tx;
  if (!make_map(tw, W, kGlu ? 2 * int64_t(a.N) : a.N, K, K, kGlu ? 64 : kBN) || !make_map(tx, x, a.M, K, ldx, BM))
    return false;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(unsigned((a.N + kOutN - 1) / kOutN), unsigned(split), unsigned(mtiles));
  cfg.blockDim = dim3(C::kThreads, 1, 1);
  cfg.dynamicSmemBytes = C::kSmem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[2];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = 1;
  attr[0].val.clusterDim.y = unsigned(split);
  attr[0].val.clusterDim.z = 1;
  // It may start while the kernel before it finishes: it waits (griddepcontrol.wait) before reading
  // anything that kernel wrote.
  attr[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[1].val.programmaticStreamSerializationAllowed = device().pdl ? 1 : 0;
  cfg.attrs = attr;
  cfg.numAttrs = 2;
  JRT_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kern, tw, tx, a));
  return true;
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// What the kernel takes (else the caller uses cuBLAS): an sm_90 device, 1 .. 128 rows, K % 8, N % 4, 16-byte
// aligned rows; rows_w: the weight's rows (N, or 2 N with the fused SwiGLU).
bool applies(const bf16* x, int64_t ldx, const bf16* W, int64_t M, int64_t K, int64_t N, const void* y, int64_t ldy,
             const float* bias, int64_t rows_w) {
  if (M < 1 || M > 128 || K < 1 || N < 1 || !device().enabled) return false;
  if (K % 8 || N % 4 || ldx % 8 || ldy % 4 || K > (int64_t(1) << 30) || rows_w > (int64_t(1) << 30)) return false;
  return aligned16(x) && aligned16(W) && aligned16(y) && (!bias || aligned16(bias));
}

// The default tiling (two warpgroups, one CTA per SM) with the smallest batch tile that holds the M rows.
template <bool kGlu = false>
bool launch_rows(const bf16* x, int64_t ldx, const bf16* W, int64_t K, const SkinnyArgs& a, int split,
                 cudaStream_t stream) {
  if (a.M <= 8) return launch<8, 2, 1, kGlu>(x, ldx, W, K, a, split, stream);
  if (a.M <= 16) return launch<16, 2, 1, kGlu>(x, ldx, W, K, a, split, stream);
  if (a.M <= 32) return launch<32, 2, 1, kGlu>(x, ldx, W, K, a, split, stream);
  if (a.M <= 64) return launch<64, 2, 1, kGlu>(x, ldx, W, K, a, split, stream);
  return launch<128, 2, 1, kGlu>(x, ldx, W, K, a, split, stream);
}

}  // namespace

bool pdl_enabled() { return device().pdl_small; }

void skinny_gemm_reload_env() { device_mut().knobs = read_knobs(); }

bool skinny_gemm_available() { return device().enabled; }

int64_t skinny_gemm_act_preferred_rows() { return device().enabled ? device().knobs.act_max_m : 0; }

// The largest power of two (<= 8, <= the k-blocks) with tiles x S CTAs fitting the SMs in one wave; cluster
// sizes of 3, 5, .. measured slower (they pack the GPCs worse).
int skinny_gemm_split(int64_t N, int64_t K, int rows_per_cta, int ctas_per_sm) {
  const int64_t tiles = (N + rows_per_cta - 1) / rows_per_cta, nkb = (K + kBK - 1) / kBK;
  int s = 1;
  while (s * 2 <= kMaxSplit && s * 2 <= nkb && tiles * s * 2 <= int64_t(jrt::cuda::sm_count()) * ctas_per_sm) s *= 2;
  return s;
}

bool skinny_gemm(const bf16* x, int64_t ldx, const bf16* W, int64_t M, int64_t K, int64_t N, void* y, int64_t ldy,
                 bool out_f32, bool accumulate, const float* bias, cudaStream_t stream, int split,
                 SkinnyVariant variant) {
  if (!applies(x, ldx, W, M, K, N, y, ldy, bias, N)) return false;
  SkinnyArgs a{int(M), int(N), y, ldy, bias, out_f32 ? 1 : 0, accumulate ? 1 : 0, int((K + kBK - 1) / kBK), 0};
  if (variant == SkinnyVariant::kDefault) variant = device().knobs.variant;
  if (M <= 32 || variant == SkinnyVariant::kDefault) return launch_rows(x, ldx, W, K, a, split, stream);
  if (variant == SkinnyVariant::kRows64) {
    if (M <= 64) return launch<64, 1>(x, ldx, W, K, a, split, stream);
    return launch<128, 1>(x, ldx, W, K, a, split, stream);
  }
  if (variant == SkinnyVariant::kTwoPerSm) {
    if (M <= 64) return launch<64, 2, 2>(x, ldx, W, K, a, split, stream);
    return launch<128, 2, 2>(x, ldx, W, K, a, split, stream);
  }
  return launch<64, 2, 2>(x, ldx, W, K, a, split, stream);  // kBatchSplit
}

bool skinny_gemm_act(const bf16* x, int64_t ldx, const bf16* W, int64_t M, int64_t K, int64_t N, bf16* y, int64_t ldy,
                     const float* bias, Activation act, cudaStream_t stream, int split) {
  const bool glu = act == Activation::kSwiGlu;
  if (!applies(x, ldx, W, M, K, N, y, ldy, bias, glu ? 2 * N : N)) return false;
  SkinnyArgs a{int(M), int(N), y, ldy, bias, 0, 0, int((K + kBK - 1) / kBK), glu ? 0 : int(act)};
  return glu ? launch_rows<true>(x, ldx, W, K, a, split, stream) : launch_rows(x, ldx, W, K, a, split, stream);
}

// The skinny kernel wins over cuBLAS (H200, bench_cuda_gemm, f32 += output, us): up to 32 rows on all but
// the widest products; at 64 rows with 64 weight rows per CTA on outputs up to 2048 wide (3584 -> 1792:
// 7.4 vs 8.4, 1792 -> 256: 3.4 vs 5.1; 1792 -> 1792: 5.7 vs 5.5, even) but not on wide ones (1792 -> 7168:
// 11.3 vs 9.7). At 128 rows it is even or behind alone on outputs of 1792 (3584 -> 1792: 8.6 vs 8.3, 1792 ->
// 1792: 6.8 vs 6.0) but wins inside the decode step, where it fetches its weights while the kernel before
// it finishes (programmatic dependent launch; cuBLAS's kernels wait): the Based-1B step at batch 128
// measured 2.873 / 2.887 -> 2.795 / 2.799 ms with the 64-row tiling up to 2048 outputs. A bias tips it
// further (cuBLAS needs the bias kernel after it, ~3.7 us at 128 rows).
bool skinny_gemm_linear(const bf16* x, int64_t ldx, const bf16* W, int64_t M, int64_t K, int64_t N, void* y,
                        int64_t ldy, bool out_f32, bool accumulate, const float* bias, cudaStream_t stream) {
  const Device& d = device();
  if (d.knobs.forced_max_m >= 0)
    return M <= d.knobs.forced_max_m && skinny_gemm(x, ldx, W, M, K, N, y, ldy, out_f32, accumulate, bias, stream);
  if (M <= 32) return skinny_gemm(x, ldx, W, M, K, N, y, ldy, out_f32, accumulate, bias, stream);
  if (M <= 128 && (N <= 512 || (N <= 2048 && (d.knobs.wide128 || bias || M <= 64))))
    return skinny_gemm(x, ldx, W, M, K, N, y, ldy, out_f32, accumulate, bias, stream, 0, SkinnyVariant::kRows64);
  return false;
}

}  // namespace jrt::ops::cuda
