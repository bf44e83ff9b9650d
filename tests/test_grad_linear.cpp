// Gradient checks of ops/linear.h's training form (float64 finite differences, tests/test_grad_common.h),
// its buffer semantics (dx written or accumulated, dW / db accumulated), strided rows, the float training
// forward against the inference linear_fwd, and ops/gemm.h's tiled gemm_st against plain gemm.
#include <gtest/gtest.h>

#include <ostream>

#include "ops/gemm.h"
#include "ops/linear.h"
#include "test_grad_common.h"

using namespace jrt::ops;
using namespace jrt::test;

namespace {

struct LinCase {
  int64_t N, in, out;
  bool bias;
};

std::ostream& operator<<(std::ostream& os, const LinCase& c) {
  return os << "N" << c.N << "_in" << c.in << "_out" << c.out << (c.bias ? "_bias" : "");
}

class LinearGrad : public ::testing::TestWithParam<LinCase> {};

TEST_P(LinearGrad, FiniteDifferences) {
  const auto c = GetParam();
  // Strided x / y / dx rows (ld > width) to cover the leading-dimension arguments.
  const int64_t ldx = c.in + 3, ldy = c.out + 2;
  Vec x = randv(size_t(c.N * ldx), 1), W = randv(size_t(c.out * c.in), 2), b = randv(size_t(c.out), 3);
  const Vec R = randv(size_t(c.N * ldy), 4);
  Vec Rm = R;  // R restricted to the used columns (the padding of y is not an output)
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t o = c.out; o < ldy; ++o) Rm[size_t(n * ldy + o)] = 0;
  auto loss = [&] {
    Vec y(size_t(c.N * ldy), 0.0);
    linear_fwd_t<double>(x.data(), c.N, c.in, W.data(), c.bias ? b.data() : nullptr, c.out, y.data(), ldx, ldy);
    return dot(y, Rm);
  };
  Vec dx = garbage(x.size()), dW0 = prefill(W.size(), 5), db0 = prefill(b.size(), 6);
  Vec dW = dW0, db = db0;
  linear_bwd_t<double>(Rm.data(), x.data(), W.data(), c.N, c.in, c.out, dx.data(), dW.data(),
                       c.bias ? db.data() : nullptr, ldy, ldx, ldx);
  // dx padding columns are not gradients of anything: they must be left untouched (garbage).
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t i = c.in; i < ldx; ++i) {
      EXPECT_EQ(dx[size_t(n * ldx + i)], 777.0);
      dx[size_t(n * ldx + i)] = 0;
    }
  // tol 1e-6: see test_grad_common.h (a linear loss: FD is exact up to rounding, ~1e-10).
  expect_grad("dx", x, dx, loss, 1e-6);
  expect_grad("dW (+=)", W, minus(dW, dW0), loss, 1e-6);
  if (c.bias) expect_grad("db (+=)", b, minus(db, db0), loss, 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Shapes, LinearGrad,
                         ::testing::Values(LinCase{5, 4, 3, true}, LinCase{1, 6, 2, false}, LinCase{7, 3, 9, true}));

TEST(LinearGrad, AccumulateDxAddsAndNullsSkip) {
  const int64_t N = 4, in = 5, out = 3;
  Vec x = randv(size_t(N * in), 11), W = randv(size_t(out * in), 12), dy = randv(size_t(N * out), 13);
  Vec dx1(x.size()), dx2 = prefill(x.size(), 14);
  const Vec base = dx2;
  linear_bwd_t<double>(dy.data(), x.data(), W.data(), N, in, out, dx1.data(), nullptr, nullptr);
  linear_bwd_t<double>(dy.data(), x.data(), W.data(), N, in, out, dx2.data(), nullptr, nullptr, -1, -1, -1, true);
  EXPECT_LE(rel_err(minus(dx2, base), dx1), 1e-14);  // the same product, added on top
  // dx null: only parameter grads.
  Vec dW(W.size(), 0.0);
  linear_bwd_t<double>(dy.data(), x.data(), W.data(), N, in, out, nullptr, dW.data(), nullptr);
  double s = 0;
  for (double v : dW) s += std::fabs(v);
  EXPECT_GT(s, 0.0);
}

TEST(LinearGrad, FloatForwardEqualsInference) {
  const int64_t N = 9, in = 17, out = 13;
  const auto x = to_float(randv(size_t(N * in), 21)), W = to_float(randv(size_t(out * in), 22)),
             b = to_float(randv(size_t(out), 23));
  std::vector<float> y1(size_t(N * out)), y2(size_t(N * out));
  linear_fwd(x.data(), N, in, W.data(), b.data(), out, y1.data());
  linear_fwd_t<float>(x.data(), N, in, W.data(), b.data(), out, y2.data());
  EXPECT_LE(rel_err_f(y2, y1), 1e-6);  // same sgemm call shape; tolerance for BLAS kernel choice
}

// gemm_st tiles along M, N and K (with beta applied once); it must equal one gemm for every transpose.
TEST(Gemm, TiledEqualsPlain) {
  const int64_t M = 150, N = 70, K = 300;  // M*N*K = 3.15M > the single-thread budget: tiles in all dims
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      const Vec A = randv(size_t(M * K), 31), B = randv(size_t(K * N), 32), C0 = randv(size_t(M * N), 33);
      const int64_t lda = ta ? M : K, ldb = tb ? K : N;
      Vec C1 = C0, C2 = C0;
      gemm<double>(ta, tb, M, N, K, 0.5, A.data(), lda, B.data(), ldb, 0.25, C1.data(), N);
      gemm_st<double>(ta, tb, M, N, K, 0.5, A.data(), lda, B.data(), ldb, 0.25, C2.data(), N);
      EXPECT_LE(rel_err(C2, C1), 1e-13) << "ta " << ta << " tb " << tb;
      std::vector<float> Af = to_float(A), Bf = to_float(B), Cf1 = to_float(C0), Cf2 = to_float(C0);
      gemm<float>(ta, tb, M, N, K, 0.5f, Af.data(), lda, Bf.data(), ldb, 0.0f, Cf1.data(), N);
      gemm_st<float>(ta, tb, M, N, K, 0.5f, Af.data(), lda, Bf.data(), ldb, 0.0f, Cf2.data(), N);
      EXPECT_LE(rel_err_f(Cf2, Cf1), 1e-5) << "float, ta " << ta << " tb " << tb;  // K split changes rounding
    }
}

}  // namespace
