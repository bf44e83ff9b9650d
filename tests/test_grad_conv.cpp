// Gradient checks of ops/causal_conv1d.h's training form (zero initial tail): dx, dw, db by float64
// finite differences for K = 3 (BaseConv) and K = 4 with bias (Mamba), L shorter than K, strided rows;
// += / = semantics; float training forward == inference forward from a zero tail.
#include <gtest/gtest.h>

#include <ostream>

#include "ops/causal_conv1d.h"
#include "test_grad_common.h"

using namespace jrt::ops;
using namespace jrt::test;

namespace {

struct ConvCase {
  int64_t L, C, K;
  bool bias;
};

std::ostream& operator<<(std::ostream& os, const ConvCase& c) {
  return os << "L" << c.L << "_C" << c.C << "_K" << c.K << (c.bias ? "_bias" : "");
}

class ConvGrad : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvGrad, FiniteDifferences) {
  const auto c = GetParam();
  const int64_t ldx = 2 * c.C, ldy = c.C + 1;  // x as the first half of Mamba's xz rows
  Vec x = randv(size_t(c.L * ldx), 1), w = randv(size_t(c.C * c.K), 2), b = randv(size_t(c.C), 3);
  Vec R = randv(size_t(c.L * ldy), 4);
  for (int64_t t = 0; t < c.L; ++t) R[size_t(t * ldy + c.C)] = 0;  // the padding column is no output
  auto loss = [&] {
    Vec y(size_t(c.L * ldy), 0.0);
    causal_conv1d_fwd_t<double>(x.data(), ldx, c.L, c.C, w.data(), c.K, c.bias ? b.data() : nullptr, y.data(), ldy);
    return dot(y, R);
  };
  Vec dx(x.size(), 0.0), dw0 = prefill(w.size(), 5), db0 = prefill(b.size(), 6), dw = dw0, db = db0;
  for (int64_t t = 0; t < c.L; ++t)
    for (int64_t ch = 0; ch < c.C; ++ch) dx[size_t(t * ldx + ch)] = 777.0;  // = semantics
  causal_conv1d_bwd_t<double>(R.data(), ldy, x.data(), ldx, c.L, c.C, w.data(), c.K, dx.data(), ldx, dw.data(),
                              c.bias ? db.data() : nullptr);
  // tol 1e-6: test_grad_common.h (linear in each argument).
  expect_grad("conv dx", x, dx, loss, 1e-6);
  expect_grad("conv dw (+=)", w, minus(dw, dw0), loss, 1e-6);
  if (c.bias) expect_grad("conv db (+=)", b, minus(db, db0), loss, 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvGrad,
                         ::testing::Values(ConvCase{9, 4, 3, false}, ConvCase{8, 3, 4, true}, ConvCase{2, 3, 4, true},
                                           ConvCase{1, 2, 3, false}));

TEST(ConvGrad, FloatForwardEqualsInference) {
  const int64_t L = 37, C = 70, K = 4;
  const auto x = to_float(randv(size_t(L * C), 7)), w = to_float(randv(size_t(C * K), 8)),
             b = to_float(randv(size_t(C), 9));
  std::vector<float> tail(size_t((K - 1) * C), 0.0f), y1(size_t(L * C)), y2(size_t(L * C));
  causal_conv1d_fwd(x.data(), C, L, C, w.data(), K, b.data(), tail.data(), y1.data(), C);
  causal_conv1d_fwd_t<float>(x.data(), C, L, C, w.data(), K, b.data(), y2.data(), C);
  EXPECT_EQ(y1, y2);  // same terms in the same order (zero tail)
}

}  // namespace
