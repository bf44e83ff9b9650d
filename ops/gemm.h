// ops/gemm.h — row-major GEMM for float and double through OpenBLAS (cblas_sgemm / cblas_dgemm), the one
// matrix-multiply entry point of the training ops (which are templated on the scalar type T so that
// their gradients can be checked by finite differences in float64).
//   C[M, N] = alpha * op(A) op(B) + beta * C,   op(A) [M, K] (A^T when ta), op(B) [K, N] (B^T when tb).
// gemm_st tiles the product so that every BLAS call stays under OpenBLAS's single-thread size
// (m*n*k <= 4 * 65536): for kernels that run one (sequence, head) per thread, where a threaded BLAS
// call would nest parallelism.
#pragma once
#include <cblas.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace jrt::ops {

template <class T>
inline void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                 int64_t ldb, T beta, T* C, int64_t ldc) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "gemm: float or double");
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // BLAS would still scale C by beta; do it here so that K == 0 is well defined
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
    return;
  }
  const CBLAS_TRANSPOSE a = ta ? CblasTrans : CblasNoTrans, b = tb ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, a, b, int(M), int(N), int(K), alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
  else
    cblas_dgemm(CblasRowMajor, a, b, int(M), int(N), int(K), alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}

// Same contract as gemm, split into tiles of M, N (and K, accumulating) under the single-thread budget.
template <class T>
inline void gemm_st(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                    int64_t ldb, T beta, T* C, int64_t ldc) {
  constexpr int64_t kBudget = 4 * 65536;
  if (M <= 0 || N <= 0) return;
  if (M * N * std::max<int64_t>(K, 1) <= kBudget) return gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  const int64_t kt = std::min<int64_t>(std::max<int64_t>(K, 1), 256);
  const int64_t mt = std::min<int64_t>(M, 64);
  const int64_t nt = std::max<int64_t>(1, std::min<int64_t>(N, kBudget / (mt * kt)));
  for (int64_t i0 = 0; i0 < M; i0 += mt) {
    const int64_t mi = std::min(mt, M - i0);
    for (int64_t j0 = 0; j0 < N; j0 += nt) {
      const int64_t nj = std::min(nt, N - j0);
      T* c = C + i0 * ldc + j0;
      if (K <= 0) {
        gemm<T>(ta, tb, mi, nj, 0, alpha, A, lda, B, ldb, beta, c, ldc);
        continue;
      }
      for (int64_t k0 = 0; k0 < K; k0 += kt) {
        const int64_t kk = std::min(kt, K - k0);
        // op(A)[i0.., k0..] and op(B)[k0.., j0..] in memory.
        const T* a = ta ? A + k0 * lda + i0 : A + i0 * lda + k0;
        const T* b = tb ? B + j0 * ldb + k0 : B + k0 * ldb + j0;
        gemm<T>(ta, tb, mi, nj, kk, alpha, a, lda, b, ldb, k0 == 0 ? beta : T(1), c, ldc);
      }
    }
  }
}

}  // namespace jrt::ops
