// ops/mma.cuh — bf16 tensor-core building blocks shared by the flash-style training kernels
// (ops/attention_train.cu, ops/linear_attention_train.cu; included by .cu files only): the m16n8k16
// mma.sync, its fragment loads from shared memory, the accumulator-to-A-fragment reuse, bf16 pair packing,
// and the two tile products every kernel repeats (mma_row, mma_c_strip).
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

namespace jrt::ops::cuda {

__device__ __forceinline__ uint32_t ld32(const __nv_bfloat16* p) { return *reinterpret_cast<const uint32_t*>(p); }
__device__ __forceinline__ void st32(__nv_bfloat16* p, uint32_t u) { *reinterpret_cast<uint32_t*>(p) = u; }
// Two floats -> a bf16 pair (x at the lower address / lower half).
__device__ __forceinline__ uint32_t pack_bf2(float x, float y) {
  __nv_bfloat162 v = __floats2bfloat162_rn(x, y);
  return *reinterpret_cast<uint32_t*>(&v);
}

// d += a b for one m16n8k16 tile (bf16 in, fp32 accumulate). Lane = 4 g + c (g = lane / 4, c = lane % 4):
//   a[0] = A[g][2c..2c+1], a[1] = A[g+8][2c..], a[2] = A[g][2c+8..], a[3] = A[g+8][2c+8..];
//   b[0] = B[2c..2c+1][g], b[1] = B[2c+8..2c+9][g];   d[0..1] = D[g][2c..2c+1], d[2..3] = D[g+8][2c..2c+1].
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// A fragment of rows m0 .. m0+15, columns k0 .. k0+15 of a row-major [m][lda] bf16 array.
__device__ __forceinline__ void load_a(uint32_t (&f)[4], const __nv_bfloat16* a, int lda, int m0, int k0, int lane) {
  const __nv_bfloat16* p = a + (m0 + (lane >> 2)) * lda + k0 + 2 * (lane & 3);
  f[0] = ld32(p);
  f[1] = ld32(p + 8 * lda);
  f[2] = ld32(p + 8);
  f[3] = ld32(p + 8 * lda + 8);
}
// B fragment of B[k][n] (k0 .. k0+15, n0 .. n0+7) stored n-major: B[k][n] = b[n * ldb + k].
__device__ __forceinline__ void load_b(uint32_t (&f)[2], const __nv_bfloat16* b, int ldb, int n0, int k0, int lane) {
  const __nv_bfloat16* p = b + (n0 + (lane >> 2)) * ldb + k0 + 2 * (lane & 3);
  f[0] = ld32(p);
  f[1] = ld32(p + 8);
}
// The A fragment of k chunk j (columns 16j .. 16j+15) of a 16-row accumulator held as C tiles s[n] (8
// columns each): the C layout of tiles 2j, 2j+1 is the A layout (FlashAttention-2's register reuse).
template <int kN>
__device__ __forceinline__ void c_to_a(uint32_t (&f)[4], const float (&s)[kN][4], int j) {
  f[0] = pack_bf2(s[2 * j][0], s[2 * j][1]);
  f[1] = pack_bf2(s[2 * j][2], s[2 * j][3]);
  f[2] = pack_bf2(s[2 * j + 1][0], s[2 * j + 1][1]);
  f[3] = pack_bf2(s[2 * j + 1][2], s[2 * j + 1][3]);
}

// acc[n] += a B[k0 .. k0+15][8 (n0 + n) .. 8 (n0 + n) + 7] for n < kN: one k-step of a 16-row A fragment
// against kN n-tiles of B stored n-major (load_b's layout).
template <int kN>
__device__ __forceinline__ void mma_row(float (&acc)[kN][4], const uint32_t (&a)[4], const __nv_bfloat16* b, int ldb,
                                        int n0, int k0, int lane) {
#pragma unroll
  for (int n = 0; n < kN; ++n) {
    uint32_t bf[2];
    load_b(bf, b, ldb, 8 * (n0 + n), k0, lane);
    mma_bf16_16816(acc[n], a, bf);
  }
}
// acc += P B: P the 16 x 8 kP strip held as accumulator tiles p (reused as A fragments, c_to_a), B [8 kP][8 kN]
// stored n-major. The P V / P^T dO / dS^T Q products of the flash-style kernels.
template <int kN, int kP>
__device__ __forceinline__ void mma_c_strip(float (&acc)[kN][4], const float (&p)[kP][4], const __nv_bfloat16* b,
                                            int ldb, int lane) {
#pragma unroll
  for (int j = 0; j < kP / 2; ++j) {
    uint32_t pf[4];
    c_to_a(pf, p, j);
    mma_row(acc, pf, b, ldb, 0, 16 * j, lane);
  }
}

}  // namespace jrt::ops::cuda
