// ops/linear_train.cpp — training form of the dense projection: forward and backward GEMMs for float
// and double (ops/gemm.h).
#include <algorithm>

#include "core/threads.h"
#include "ops/gemm.h"
#include "ops/linear.h"

namespace jrt::ops {

template <class T>
void linear_fwd_t(const T* x, int64_t N, int64_t in, const T* W, const T* b, int64_t out, T* y, int64_t ldx,
                  int64_t ldy) {
  if (N <= 0 || out <= 0) return;
  if (ldx < 0) ldx = in;
  if (ldy < 0) ldy = out;
  if (b)
    for (int64_t n = 0; n < N; ++n) std::copy(b, b + out, y + n * ldy);
  gemm<T>(false, true, N, out, in, T(1), x, ldx, W, in, b ? T(1) : T(0), y, ldy);
}

template <class T>
void linear_bwd_t(const T* dy, const T* x, const T* W, int64_t N, int64_t in, int64_t out, T* dx, T* dW, T* db,
                  int64_t lddy, int64_t ldx, int64_t lddx, bool accumulate_dx) {
  if (lddy < 0) lddy = out;
  if (ldx < 0) ldx = in;
  if (lddx < 0) lddx = in;
  if (N <= 0) return;
  // dx [N, in] = dy [N, out] @ W [out, in]
  if (dx) gemm<T>(false, false, N, in, out, T(1), dy, lddy, W, in, accumulate_dx ? T(1) : T(0), dx, lddx);
  // dW [out, in] += dy^T [out, N] @ x [N, in]
  if (dW) gemm<T>(true, false, out, in, N, T(1), dy, lddy, x, ldx, T(1), dW, in);
  if (db) {
    // Column sums, split over columns; each thread sums its columns over all rows in row order.
    parallel_for(out, 256, [&](int64_t o0, int64_t o1) {
      for (int64_t n = 0; n < N; ++n) {
        const T* r = dy + n * lddy;
        for (int64_t o = o0; o < o1; ++o) db[o] += r[o];
      }
    });
  }
}

#define JRT_INST(T)                                                                                                    \
  template void linear_fwd_t<T>(const T*, int64_t, int64_t, const T*, const T*, int64_t, T*, int64_t, int64_t);        \
  template void linear_bwd_t<T>(const T*, const T*, const T*, int64_t, int64_t, int64_t, T*, T*, T*, int64_t, int64_t, \
                                int64_t, bool);
JRT_INST(float)
JRT_INST(double)
#undef JRT_INST

}  // namespace jrt::ops
