// Gradient checks of ops/rotary.h's training form: backward_t is the exact transpose of forward_t
// (float64 finite differences and <R x, g> = <x, R^T g>), partial / odd rotary dims, several heads,
// strided rows; float forward_t == apply.
#include <gtest/gtest.h>

#include "core/error.h"
#include "ops/rotary.h"
#include "test_grad_common.h"

using namespace jrt::ops;
using namespace jrt::test;

namespace {

TEST(RotaryGrad, BackwardIsTranspose) {
  struct Case {
    int64_t rd, hd;
  };
  for (const Case c : {Case{8, 8}, Case{5, 8}, Case{4, 10}}) {
    const int64_t N = 6, H = 3, ld = H * c.hd + 2;
    const Rotary r(c.rd, 10000.0);
    const std::vector<int64_t> pos{0, 1, 7, 100, 2047, 5};
    Vec x = randv(size_t(N * ld), 1);
    const Vec R = randv(size_t(N * ld), 2);
    auto loss = [&] {
      Vec y = x;
      r.forward_t<double>(y.data(), ld, N, H, c.hd, pos);
      return dot(y, R);
    };
    Vec g = R;
    r.backward_t<double>(g.data(), ld, N, H, c.hd, pos);
    // tol 1e-6: test_grad_common.h (linear map).
    expect_grad("rotary dx", x, g, loss, 1e-6);
    EXPECT_NEAR(loss(), dot(x, g), 1e-11 * std::fabs(loss()) + 1e-12);
    // backward after forward is the identity only if c^2 + s^2 == 1, true to fp32 table precision.
    Vec y = x;
    r.forward_t<double>(y.data(), ld, N, H, c.hd, pos);
    r.backward_t<double>(y.data(), ld, N, H, c.hd, pos);
    EXPECT_LE(rel_err(y, x), 1e-6);
  }
}

TEST(RotaryGrad, FloatForwardEqualsApplyAndChecks) {
  const int64_t N = 9, H = 2, hd = 12;
  const Rotary r(12, 10000.0);
  std::vector<int64_t> pos(N);
  for (int64_t i = 0; i < N; ++i) pos[size_t(i)] = 3 * i + 1;
  auto x1 = to_float(randv(size_t(N * H * hd), 3)), x2 = x1;
  r.apply(x1.data(), H * hd, N, H, hd, pos);
  r.forward_t<float>(x2.data(), H * hd, N, H, hd, pos);
  EXPECT_EQ(x1, x2);
  EXPECT_THROW(Rotary(14, 10000.0).backward_t<float>(x2.data(), H * hd, N, H, hd, pos), jrt::Error);
}

}  // namespace
