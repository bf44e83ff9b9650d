// ops/linear.cpp — dense projection via cblas_sgemm (row-major, W transposed).
#include "ops/linear.h"

#include <cblas.h>

#include <algorithm>

namespace jrt::ops {

void linear_fwd(const float* x, int64_t N, int64_t in, const float* W, const float* b, int64_t out, float* y,
                int64_t ldx, int64_t ldy, bool accumulate) {
  if (N <= 0 || out <= 0) return;
  if (ldx < 0) ldx = in;
  if (ldy < 0) ldy = out;
  float beta = accumulate ? 1.0f : 0.0f;
  if (b) {
    // Seed y with the bias and accumulate the product into it.
    if (!accumulate)
      for (int64_t n = 0; n < N; ++n) std::copy(b, b + out, y + n * ldy);
    else
      for (int64_t n = 0; n < N; ++n)
        for (int64_t o = 0; o < out; ++o) y[n * ldy + o] += b[o];
    beta = 1.0f;
  }
  if (N == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, int(out), int(in), 1.0f, W, int(in), x, 1, beta, y, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(N), int(out), int(in), 1.0f, x, int(ldx), W, int(in), beta,
              y, int(ldy));
}

}  // namespace jrt::ops
