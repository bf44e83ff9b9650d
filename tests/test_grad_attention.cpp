// Gradient checks of ops/attention.h's training form: dq, dk, dv by float64 finite differences for full
// causal and sliding-window attention, across several query blocks (L > 64) and strided head slices;
// = semantics; the saved lse; the float training forward against the inference kernel `attend`.
#include <gtest/gtest.h>

#include <ostream>

#include "ops/attention.h"
#include "test_grad_common.h"

using namespace jrt::ops;
using namespace jrt::test;

namespace {

struct AttCase {
  int64_t L, hd, window;
};

std::ostream& operator<<(std::ostream& os, const AttCase& c) {
  return os << "L" << c.L << "_hd" << c.hd << "_window" << c.window;
}

class AttentionGrad : public ::testing::TestWithParam<AttCase> {};

TEST_P(AttentionGrad, FiniteDifferences) {
  const auto c = GetParam();
  // q, k, v as head 1 of 2 in a packed [L, 3 * 2 * hd] qkv buffer (the mixers' layout).
  const int64_t H = 2, ld = 3 * H * c.hd, ldo = H * c.hd, off = c.hd;
  Vec qkv = randv(size_t(c.L * ld), 1);
  Vec R(size_t(c.L * ldo), 0.0);
  const Vec Rr = randv(size_t(c.L * c.hd), 2);
  for (int64_t t = 0; t < c.L; ++t)
    for (int64_t e = 0; e < c.hd; ++e) R[size_t(t * ldo + off + e)] = Rr[size_t(t * c.hd + e)];
  auto head = [&] {
    AttnTrainHead<double> a;
    a.q = qkv.data() + off;
    a.k = qkv.data() + H * c.hd + off;
    a.v = qkv.data() + 2 * H * c.hd + off;
    a.ldq = a.ldk = a.ldv = ld;
    a.L = c.L;
    a.hd = c.hd;
    a.left_window = c.window;
    a.scale = 1.0 / std::sqrt(double(c.hd));
    return a;
  };
  Vec y(size_t(c.L * ldo), 0.0), lse(static_cast<size_t>(c.L));
  auto loss = [&] {
    attention_fwd_t<double>(head(), y.data() + off, ldo, lse.data());
    return dot(y, R);
  };
  loss();
  // lse_t is the log-normaliser over the visible keys.
  for (int64_t t = 0; t < c.L; t += 7) {
    const auto a = head();
    double z = 0;
    for (int64_t j = c.window < 0 ? 0 : std::max<int64_t>(0, t - c.window); j <= t; ++j) {
      double s = 0;
      for (int64_t e = 0; e < c.hd; ++e) s += a.q[t * ld + e] * a.k[j * ld + e];
      z += std::exp(s * a.scale);
    }
    EXPECT_NEAR(lse[size_t(t)], std::log(z), 1e-12) << t;
  }
  Vec dqkv = garbage(qkv.size());
  attention_bwd_t<double>(head(), y.data() + off, ldo, lse.data(), R.data() + off, ldo, dqkv.data() + off, ld,
                          dqkv.data() + H * c.hd + off, ld, dqkv.data() + 2 * H * c.hd + off, ld);
  // Columns of the other head are not touched; zero them for the comparison (their FD gradient is 0).
  for (int64_t t = 0; t < c.L; ++t)
    for (int64_t p = 0; p < 3; ++p)
      for (int64_t e = 0; e < c.hd; ++e) {
        double& g = dqkv[size_t(t * ld + p * H * c.hd + e)];
        EXPECT_EQ(g, 777.0);
        g = 0;
      }
  // tol 1e-6: test_grad_common.h (smooth; loss O(L)).
  expect_grad("attention dq, dk, dv", qkv, dqkv, loss, 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionGrad,
                         ::testing::Values(AttCase{9, 4, -1}, AttCase{9, 4, 2}, AttCase{11, 3, 0}, AttCase{70, 2, -1},
                                           AttCase{70, 2, 5}));

TEST(AttentionGrad, FloatForwardEqualsInference) {
  for (int64_t window : {-1, 16}) {
    const int64_t L = 150, hd = 32;
    const auto q = to_float(randv(size_t(L * hd), 3)), k = to_float(randv(size_t(L * hd), 4)),
               v = to_float(randv(size_t(L * hd), 5));
    std::vector<float> y1(size_t(L * hd)), y2(size_t(L * hd)), lse(static_cast<size_t>(L));
    AttnQuery a;
    a.q = q.data();
    a.ldq = hd;
    a.y = y1.data();
    a.ldy = hd;
    a.L = L;
    a.hd = hd;
    a.left_window = window;
    a.scale = float(1.0 / std::sqrt(double(hd)));
    const KvRun run{k.data(), v.data(), hd, L};
    attend(a, std::span<const KvRun>(&run, 1), 0);
    AttnTrainHead<float> t;
    t.q = q.data();
    t.k = k.data();
    t.v = v.data();
    t.ldq = t.ldk = t.ldv = hd;
    t.L = L;
    t.hd = hd;
    t.left_window = window;
    t.scale = a.scale;
    attention_fwd_t<float>(t, y2.data(), hd, lse.data());
    // Same math; the training form normalises P before the value GEMM, the inference kernel after it:
    // fp32 rounding differences only.
    EXPECT_LE(rel_err_f(y2, y1), 2e-6) << "window " << window;
  }
}

}  // namespace
