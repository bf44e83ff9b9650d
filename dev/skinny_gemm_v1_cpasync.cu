// dev/skinny_gemm_v1_cpasync.cu — first version of ops/linear_skinny.cu (kernel lab record, not built): cp.async
// stages feeding wgmma through the no-swizzle core-matrix layout. Correct, but ~18 GB/s per SM (dev/README.md
// "skinny GEMM"). Was: ops/linear_skinny.cu — the decode-shaped GEMM y[M, N] (+)= x[M, K] W[N, K]^T (+ bias) for M <=
// 128 rows (one row per sequence in a batched decode step), on sm_90a warpgroup MMA. cuBLAS reads the weight of such a
// product at 1.3-2.4 TB/s (64 x 32 / 112 x 64 tiles, ~10 us for a 3584 -> 1792 projection at M = 128); this kernel is
// built to stream W once at close to HBM rate:
//   - swapped operands: W rows are wgmma's M side (64 per warpgroup, 128 per CTA), the batch is its N side
//     (8 .. 128, a template parameter), so one CTA holds the whole batch and reads each weight byte once;
//   - K split over a thread-block cluster of S CTAs (S <= 8, chosen to fill the SMs), the partial tiles
//     summed through distributed shared memory in a fixed rank order (deterministic, no workspace, no
//     atomics), each rank finishing 1/S of the tile with the fused epilogue (bias, bf16 store, fp32 store
//     or fp32 accumulate into the residual);
//   - a cp.async pipeline of up to 8 stages (W tile 128 x 64, x tile BM x 64, both K-major in the
//     no-swizzle core-matrix layout of dev/probes/wgmma_desc_probe.cu), W with an L2 evict-first hint.
// Shapes: x [M, K] row stride ldx, W [N, K] dense, y [M, N] row stride ldy; K % 8 == 0, N % 4 == 0 and
// 16-byte aligned rows are required (skinny_gemm returns false otherwise and the caller uses cuBLAS).
#include <cooperative_groups.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "core/cuda_util.h"
#include "ops/cuda_ops.h"

namespace jrt::ops::cuda {

namespace {

namespace cg = cooperative_groups;

constexpr int kBN = 128;  // W rows (outputs) per CTA: two warpgroups of m64
constexpr int kBK = 64;   // K per stage: 8 core matrices of 16 bytes
constexpr int kThreads = 256;
constexpr int kMaxSplit = 8;     // portable cluster size
constexpr int kRedLd = kBN + 4;  // fp32 partial tile row stride (bank spread, 16-byte rows)

template <int BM>
struct Cfg {
  static constexpr int kWBytes = kBN * kBK * 2, kXBytes = BM * kBK * 2, kStage = kWBytes + kXBytes;
  static constexpr int kStages = std::min(8, (200 * 1024) / kStage);
  static constexpr int kSmem = std::max(kStages * kStage, BM* kRedLd * 4);
};

struct SkinnyArgs {
  const bf16* x;
  int64_t ldx;
  const bf16* W;
  int M, K, N;
  void* y;
  int64_t ldy;
  const float* bias;
  int out_f32, accumulate;
  int nkb;  // k-blocks of kBK
};

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define JRT_SKINNY 1
#endif

#ifdef JRT_SKINNY
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// K-major core-matrix layout of a [rows][kBK] tile: element (r, k) at (r/8) 1024 + (k/8) 128 + (r%8) 16 +
// (k%8) 2 bytes. A k16 step covers two core matrices along K: leading byte offset 128 (K direction),
// stride byte offset 1024 (row blocks).
__device__ __forceinline__ uint64_t kdesc(uint32_t addr) {
  return uint64_t((addr & 0x3FFFF) >> 4) | (uint64_t(128 >> 4) << 16) | (uint64_t(1024 >> 4) << 32);
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

// Chunk i of a tile (16 bytes: row r, k-chunk c) -> its byte offset; consecutive i run down the 8 rows of a
// core-matrix column first, so a warp's 32 chunks fill whole 128-byte bank lines.
__device__ __forceinline__ void chunk_pos(int i, int& row, int& c, uint32_t& off) {
  const int rr = i & 7;
  c = (i >> 3) & 7;
  row = (i >> 6) * 8 + rr;
  off = uint32_t((i >> 6) * 1024 + c * 128 + rr * 16);
}

__device__ __forceinline__ void cp16(uint32_t dst, const void* src, int bytes, uint64_t policy) {
  asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2, %3;\n" ::"r"(dst), "l"(src), "r"(bytes),
               "l"(policy));
}
__device__ __forceinline__ void cp16(uint32_t dst, const void* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
#endif  // JRT_SKINNY

// Grid (N tiles, S), cluster (1, S, 1): CTA (t, s) multiplies W rows [128 t, 128 t + 128) by the batch over
// k-blocks [s nkb / S, (s + 1) nkb / S). Rows of W past N and rows of x past M are zeroed once and never
// loaded; the K tail (K % 64) is zero-filled by the copies.
template <int BM>
__global__ void __launch_bounds__(kThreads, 1) skinny_kernel(SkinnyArgs a) {
#ifdef JRT_SKINNY
  using C = Cfg<BM>;
  extern __shared__ __align__(1024) unsigned char smem[];
  cg::cluster_group cluster = cg::this_cluster();
  const int S = int(cluster.num_blocks()), rank = int(cluster.block_rank());
  const int tid = threadIdx.x, wg = tid >> 7;
  const int n0 = blockIdx.x * kBN;
  const int kb0 = int(int64_t(rank) * a.nkb / S), kb1 = int(int64_t(rank + 1) * a.nkb / S), nk = kb1 - kb0;
  const int nrows = min(kBN, a.N - n0), mrows = min(BM, a.M);
  const uint32_t base = smem_addr(smem);

  // Zero the rows that are never loaded (whole 16-byte chunks, every stage).
  for (int s = 0; s < C::kStages; ++s) {
    unsigned char* st = smem + s * C::kStage;
    for (int i = tid; i < kBN * 8; i += kThreads) {
      int row, c;
      uint32_t off;
      chunk_pos(i, row, c, off);
      if (row >= nrows) *reinterpret_cast<uint4*>(st + off) = make_uint4(0, 0, 0, 0);
    }
    for (int i = tid; i < BM * 8; i += kThreads) {
      int row, c;
      uint32_t off;
      chunk_pos(i, row, c, off);
      if (row >= mrows) *reinterpret_cast<uint4*>(st + C::kWBytes + off) = make_uint4(0, 0, 0, 0);
    }
  }

  uint64_t evict_first;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(evict_first));
  const bf16* W = a.W + int64_t(n0) * a.K;
  auto load = [&](int s, int kb) {
    const uint32_t st = base + uint32_t(s * C::kStage);
    const int k0 = kb * kBK;
#pragma unroll
    for (int j = 0; j < kBN * 8 / kThreads; ++j) {
      int row, c;
      uint32_t off;
      chunk_pos(tid + j * kThreads, row, c, off);
      const int k = k0 + c * 8;
      if (row < nrows) cp16(st + off, W + int64_t(row) * a.K + (k < a.K ? k : 0), k < a.K ? 16 : 0, evict_first);
    }
    for (int i = tid; i < BM * 8; i += kThreads) {
      int row, c;
      uint32_t off;
      chunk_pos(i, row, c, off);
      const int k = k0 + c * 8;
      if (row < mrows) cp16(st + C::kWBytes + off, a.x + int64_t(row) * a.ldx + (k < a.K ? k : 0), k < a.K ? 16 : 0);
    }
  };

  float acc[BM / 2];
#pragma unroll
  for (int i = 0; i < BM / 2; ++i) acc[i] = 0.0f;

#pragma unroll
  for (int s = 0; s < C::kStages - 1; ++s) {
    if (s < nk) load(s, kb0 + s);
    cp_commit();
  }
  for (int i = 0; i < nk; ++i) {
    cp_wait<C::kStages - 2>();
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();  // stage i landed for every thread; stage i - 1 is no longer read (wgmma waited below)
    if (i + C::kStages - 1 < nk) load((i + C::kStages - 1) % C::kStages, kb0 + i + C::kStages - 1);
    cp_commit();
    const uint32_t st = base + uint32_t((i % C::kStages) * C::kStage);
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk)
      wgmma_ss<BM>(acc, kdesc(st + uint32_t(wg * 8 * 1024 + kk * 256)), kdesc(st + uint32_t(C::kWBytes + kk * 256)));
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
  }
  cp_wait<0>();
  __syncthreads();  // the stages are free: the partial tile goes over them

  // Accumulator (m64nBM layout): warp w of the warpgroup, lane l holds W row 16 w + l/4 (+8) and batch
  // columns 8 j + 2 (l%4) (+1) in acc[4 j + e]. Stored batch-major: red[b][o].
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

  // Rank r finishes float4s [r per, (r + 1) per) of the valid (mrows x nrows) tile, summing the S partial
  // tiles in rank order.
  const int q4 = nrows / 4, total = mrows * q4, per = (total + S - 1) / S;
  const int e1 = min(total, (rank + 1) * per);
  for (int idx = rank * per + tid; idx < e1; idx += kThreads) {
    const int b = idx / q4, o = (idx - b * q4) * 4;
    // All S loads in flight before the first add (distributed shared memory latency), summed in rank order.
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
    const int n = n0 + o;
    if (a.bias) {
      const float4 bb = *reinterpret_cast<const float4*>(a.bias + n);
      sum.x += bb.x;
      sum.y += bb.y;
      sum.z += bb.z;
      sum.w += bb.w;
    }
    if (a.out_f32) {
      float4* p = reinterpret_cast<float4*>(static_cast<float*>(a.y) + int64_t(b) * a.ldy + n);
      if (a.accumulate) {
        const float4 old = *p;
        sum.x += old.x;
        sum.y += old.y;
        sum.z += old.z;
        sum.w += old.w;
      }
      *p = sum;
    } else {
      __nv_bfloat162 lo = __floats2bfloat162_rn(sum.x, sum.y), hi = __floats2bfloat162_rn(sum.z, sum.w);
      uint2 u;
      u.x = *reinterpret_cast<uint32_t*>(&lo);
      u.y = *reinterpret_cast<uint32_t*>(&hi);
      *reinterpret_cast<uint2*>(static_cast<bf16*>(a.y) + int64_t(b) * a.ldy + n) = u;
    }
  }
  cluster.sync();  // the peers' partial tiles stay alive until every rank has read them
#else
  __trap();
#endif
}

struct Device {
  int sm_major = 0, nsm = 0;
  bool enabled = false;
};
const Device& device() {
  static const Device d = [] {
    Device r;
    int dev = 0;
    JRT_CUDA_CHECK(cudaGetDevice(&dev));
    JRT_CUDA_CHECK(cudaDeviceGetAttribute(&r.sm_major, cudaDevAttrComputeCapabilityMajor, dev));
    JRT_CUDA_CHECK(cudaDeviceGetAttribute(&r.nsm, cudaDevAttrMultiProcessorCount, dev));
    const char* env = std::getenv("JRT_SKINNY_GEMM");
    r.enabled = r.sm_major == 9 && !(env && env[0] == '0');
    return r;
  }();
  return d;
}

template <int BM>
void launch(const SkinnyArgs& a, int split, cudaStream_t stream) {
  static std::once_flag once;
  std::call_once(once, [] {
    JRT_CUDA_CHECK(
        cudaFuncSetAttribute(skinny_kernel<BM>, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg<BM>::kSmem));
  });
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(unsigned((a.N + kBN - 1) / kBN), unsigned(split), 1);
  cfg.blockDim = dim3(kThreads, 1, 1);
  cfg.dynamicSmemBytes = Cfg<BM>::kSmem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = 1;
  attr[0].val.clusterDim.y = unsigned(split);
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  JRT_CUDA_CHECK(cudaLaunchKernelEx(&cfg, skinny_kernel<BM>, a));
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace

bool skinny_gemm_available() { return device().enabled; }

int skinny_gemm_split(int64_t N, int64_t K) {
  const int64_t tiles = (N + kBN - 1) / kBN, nkb = (K + kBK - 1) / kBK;
  return int(std::clamp<int64_t>(device().nsm / std::max<int64_t>(tiles, 1), 1, std::min<int64_t>(kMaxSplit, nkb)));
}

bool skinny_gemm(const bf16* x, int64_t ldx, const bf16* W, int64_t M, int64_t K, int64_t N, void* y, int64_t ldy,
                 bool out_f32, bool accumulate, const float* bias, cudaStream_t stream, int split) {
  if (M < 1 || M > 128 || K < 1 || N < 1 || !device().enabled) return false;
  if (K % 8 || N % 4 || ldx % 8 || ldy % 4 || K > (int64_t(1) << 30) || N > (int64_t(1) << 30)) return false;
  if (!aligned16(x) || !aligned16(W) || !aligned16(y) || (bias && !aligned16(bias))) return false;
  SkinnyArgs a{
      x, ldx, W, int(M), int(K), int(N), y, ldy, bias, out_f32 ? 1 : 0, accumulate ? 1 : 0, int((K + kBK - 1) / kBK)};
  if (split <= 0) split = skinny_gemm_split(N, K);
  split = int(std::min<int64_t>({split, kMaxSplit, a.nkb}));
  if (M <= 8)
    launch<8>(a, split, stream);
  else if (M <= 16)
    launch<16>(a, split, stream);
  else if (M <= 32)
    launch<32>(a, split, stream);
  else if (M <= 64)
    launch<64>(a, split, stream);
  else
    launch<128>(a, split, stream);
  return true;
}

}  // namespace jrt::ops::cuda
