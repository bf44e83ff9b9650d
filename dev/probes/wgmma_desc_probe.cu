// dev/probes/wgmma_desc_probe.cu — which way round the wgmma shared-memory descriptor's two byte offsets
// go for no-swizzle (core-matrix) layouts, K-major and MN-major, A from shared memory or registers, for
// m64n64k16 bf16. Not part of the CMake build (it needs an sm_90 GPU):
//   nvcc -O2 -std=c++17 -gencode arch=compute_90a,code=sm_90a dev/probes/wgmma_desc_probe.cu -o probe && ./probe
// H200, 2026-11-28: the passing rows were modes 0, 4, 9, 18, 22, 27, i.e. the leading byte offset is the
// stride between core matrices along K and the stride byte offset the stride along M / N, for both
// majors (ops/linear_attention.cu, namespace v4::wg, relies on it).
#include <cuda_bf16.h>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>
typedef __nv_bfloat16 bf16;

__device__ __forceinline__ uint64_t desc(const void* p, uint32_t lbo, uint32_t sbo) {
  uint64_t a = (uint64_t)((__cvta_generic_to_shared(p) & 0x3FFFF) >> 4);
  a |= (uint64_t)((lbo >> 4) & 0x3FFF) << 16;
  a |= (uint64_t)((sbo >> 4) & 0x3FFF) << 32;
  return a;  // swizzle 0, base offset 0
}
#define R8(i)                                                                                                 \
  "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), \
      "+f"(d[i + 7])
template <int TA, int TB>
__device__ void mma_ss(float (&d)[32], uint64_t da, uint64_t db) {
  asm volatile(
      "{\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%"
      "30,%31}, "
      "%32, %33, 1, 1, 1, %34, %35;\n}\n"
      : R8(0), R8(8), R8(16), R8(24)
      : "l"(da), "l"(db), "n"(TA), "n"(TB));
}
template <int TB>
__device__ void mma_rs(float (&d)[32], const uint32_t (&a)[4], uint64_t db) {
  asm volatile(
      "{\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%"
      "30,%31}, "
      "{%32,%33,%34,%35}, %36, 1, 1, 1, %37;\n}\n"
      : R8(0), R8(8), R8(16), R8(24)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "n"(TB));
}

// Core-matrix placement: operand with "outer" dim (rows for K-major, k for MN-major) etc.
// Kmajor: element (r, k) -> (r/8)*S_r + (k/8)*S_k + (r%8)*16 + (k%8)*2 bytes.
// MNmajor: element (r, k) -> (r/8)*S_r + (k/8)*S_k + (k%8)*16 + (r%8)*2 bytes.
__device__ int off(int r, int k, bool kmajor, int Sr, int Sk) {
  return (r / 8) * Sr + (k / 8) * Sk + (kmajor ? (r % 8) * 16 + (k % 8) * 2 : (k % 8) * 16 + (r % 8) * 2);
}

// mode: bit0 A MN-major, bit1 B MN-major, bit2 A from registers, bit3 swap LBO/SBO for A, bit4 swap for B
__global__ void probe(const float* A, const float* B, float* D, int mode) {
  __shared__ __align__(1024) unsigned char sa[64 * 16 * 2 * 4], sb[64 * 16 * 2 * 4];
  const bool amn = mode & 1, bmn = mode & 2, areg = mode & 4, swa = mode & 8, swb = mode & 16;
  // A [64 m][16 k]; B as [64 n][16 k] (B^T). Strides: row-blocks 256 B apart, k-blocks 128 B apart for K-major;
  // for MN-major: r-blocks 128 B apart, k-blocks 1024 B apart (distinct so a swap shows).
  const int aSr = amn ? 128 : 256, aSk = amn ? 1024 : 128;
  const int bSr = bmn ? 128 : 256, bSk = bmn ? 1024 : 128;
  for (int i = threadIdx.x; i < 64 * 16; i += 128) {
    int r = i / 16, k = i % 16;
    *(bf16*)(sa + off(r, k, !amn, aSr, aSk)) = __float2bfloat16(A[i]);
    *(bf16*)(sb + off(r, k, !bmn, bSr, bSk)) = __float2bfloat16(B[i]);
  }
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
  __syncthreads();
  // Descriptor: K-major: LBO = k-block stride, SBO = row-block stride (hypothesis); MN-major: try the same naming.
  uint32_t alb = amn ? aSr : aSk,
           asb = amn ? aSk : aSr;  // hypothesis H0 for MN: LBO = MN-block stride, SBO = k-block stride
  uint32_t blb = bmn ? bSr : bSk, bsb = bmn ? bSk : bSr;
  if (swa) {
    uint32_t t = alb;
    alb = asb;
    asb = t;
  }
  if (swb) {
    uint32_t t = blb;
    blb = bsb;
    bsb = t;
  }
  uint64_t da = desc(sa, alb, asb), db = desc(sb, blb, bsb);
  float d[32];
  for (int i = 0; i < 32; ++i) d[i] = 0.f;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  uint32_t a[4];
  if (areg) {
    auto pk = [&](int r, int k) {
      __nv_bfloat162 v = __floats2bfloat162_rn(A[r * 16 + k], A[r * 16 + k + 1]);
      return *(uint32_t*)&v;
    };
    int r0 = 16 * warp + g;
    a[0] = pk(r0, 2 * c);
    a[1] = pk(r0 + 8, 2 * c);
    a[2] = pk(r0, 2 * c + 8);
    a[3] = pk(r0 + 8, 2 * c + 8);
  }
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
  if (areg) {
    if (bmn)
      mma_rs<1>(d, a, db);
    else
      mma_rs<0>(d, a, db);
  } else if (amn && bmn)
    mma_ss<1, 1>(d, da, db);
  else if (amn)
    mma_ss<1, 0>(d, da, db);
  else if (bmn)
    mma_ss<0, 1>(d, da, db);
  else
    mma_ss<0, 0>(d, da, db);
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
  for (int j = 0; j < 8; ++j)
    for (int e = 0; e < 4; ++e) {
      int r = 16 * warp + g + 8 * (e / 2), n = 8 * j + 2 * c + (e % 2);
      D[r * 64 + n] = d[4 * j + e];
    }
}

int main() {
  std::vector<float> A(64 * 16), B(64 * 16), ref(64 * 64);
  srand(1);
  for (auto& x : A) x = __bfloat162float(__float2bfloat16((rand() % 200 - 100) / 50.f));
  for (auto& x : B) x = __bfloat162float(__float2bfloat16((rand() % 200 - 100) / 50.f));
  for (int m = 0; m < 64; ++m)
    for (int n = 0; n < 64; ++n) {
      double s = 0;
      for (int k = 0; k < 16; ++k) s += A[m * 16 + k] * B[n * 16 + k];
      ref[m * 64 + n] = s;
    }
  float *dA, *dB, *dD;
  cudaMalloc(&dA, 4096 * 4);
  cudaMalloc(&dB, 4096 * 4);
  cudaMalloc(&dD, 4096 * 4);
  cudaMemcpy(dA, A.data(), A.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(dB, B.data(), B.size() * 4, cudaMemcpyHostToDevice);
  const char* names[] = {"A K-major", "A MN-major", "A regs"};
  for (int mode = 0; mode < 32; ++mode) {
    if ((mode & 4) && (mode & 1)) continue;
    if ((mode & 4) && (mode & 8)) continue;
    cudaMemset(dD, 0, 4096 * 4);
    probe<<<1, 128>>>(dA, dB, dD, mode);
    cudaError_t e = cudaDeviceSynchronize();
    std::vector<float> D(4096);
    cudaMemcpy(D.data(), dD, 4096 * 4, cudaMemcpyDeviceToHost);
    double err = 0;
    for (int i = 0; i < 4096; ++i) err = std::max(err, (double)std::fabs(D[i] - ref[i]));
    printf("mode %2d  %-10s B %-8s swapA %d swapB %d : max err %.3g %s %s\n", mode, names[(mode & 4) ? 2 : (mode & 1)],
           (mode & 2) ? "MN-major" : "K-major", (mode >> 3) & 1, (mode >> 4) & 1, err, err < 1e-3 ? "OK" : "",
           e ? cudaGetErrorString(e) : "");
  }
}
