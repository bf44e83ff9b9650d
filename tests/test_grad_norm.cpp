// Gradient checks of ops/norm.h's training forms (RMSNorm, LayerNorm): float64 finite differences for
// dx, dw, db, the saved statistics, += / = semantics (incl. accumulate_dx), and the float training
// forwards against the inference forwards.
#include <gtest/gtest.h>

#include "ops/norm.h"
#include "test_grad_common.h"

using namespace jrt::ops;
using namespace jrt::test;

namespace {

constexpr double kEps = 1e-5;

TEST(NormGrad, RmsNorm) {
  const int64_t N = 6, d = 7;
  Vec x = randv(size_t(N * d), 1), w = randv(size_t(d), 2, 0.5, 1.0);
  const Vec R = randv(size_t(N * d), 3);
  Vec rstd(static_cast<size_t>(N));
  auto loss = [&] {
    Vec y(x.size());
    rmsnorm_fwd_t<double>(x.data(), w.data(), kEps, N, d, y.data(), rstd.data());
    return dot(y, R);
  };
  loss();
  for (int64_t n = 0; n < N; ++n) {  // the saved statistic is what its name says
    double ss = 0;
    for (int64_t i = 0; i < d; ++i) ss += x[size_t(n * d + i)] * x[size_t(n * d + i)];
    EXPECT_NEAR(rstd[size_t(n)], 1.0 / std::sqrt(ss / double(d) + kEps), 1e-14);
  }
  Vec dx = garbage(x.size()), dw0 = prefill(w.size(), 4), dw = dw0;
  rmsnorm_bwd_t<double>(R.data(), x.data(), w.data(), rstd.data(), N, d, dx.data(), dw.data());
  // tol 1e-6: test_grad_common.h (smooth op, loss O(10)).
  expect_grad("rmsnorm dx", x, dx, loss, 1e-6);
  expect_grad("rmsnorm dw (+=)", w, minus(dw, dw0), loss, 1e-6);
  // accumulate_dx adds the same dx on top of the buffer.
  Vec acc = prefill(x.size(), 5);
  const Vec base = acc;
  rmsnorm_bwd_t<double>(R.data(), x.data(), w.data(), rstd.data(), N, d, acc.data(), nullptr, true);
  EXPECT_LE(rel_err(minus(acc, base), dx), 1e-13);
}

TEST(NormGrad, LayerNorm) {
  const int64_t N = 5, d = 8;
  for (bool with_b : {true, false}) {
    Vec x = randv(size_t(N * d), 11, 1.0, 0.7), w = randv(size_t(d), 12, 0.5, 1.0), b = randv(size_t(d), 13);
    const Vec R = randv(size_t(N * d), 14);
    Vec mean(static_cast<size_t>(N)), rstd(static_cast<size_t>(N));
    auto loss = [&] {
      Vec y(x.size());
      layernorm_fwd_t<double>(x.data(), w.data(), with_b ? b.data() : nullptr, kEps, N, d, y.data(), mean.data(),
                              rstd.data());
      return dot(y, R);
    };
    loss();
    for (int64_t n = 0; n < N; ++n) {
      double s = 0, ss = 0;
      for (int64_t i = 0; i < d; ++i) s += x[size_t(n * d + i)];
      for (int64_t i = 0; i < d; ++i) ss += std::pow(x[size_t(n * d + i)] - s / double(d), 2);
      EXPECT_NEAR(mean[size_t(n)], s / double(d), 1e-14);
      EXPECT_NEAR(rstd[size_t(n)], 1.0 / std::sqrt(ss / double(d) + kEps), 1e-12);
    }
    Vec dx = garbage(x.size()), dw0 = prefill(w.size(), 15), db0 = prefill(b.size(), 16), dw = dw0, db = db0;
    layernorm_bwd_t<double>(R.data(), x.data(), w.data(), mean.data(), rstd.data(), N, d, dx.data(), dw.data(),
                            db.data());
    expect_grad("layernorm dx", x, dx, loss, 1e-6);  // tol: test_grad_common.h
    expect_grad("layernorm dw (+=)", w, minus(dw, dw0), loss, 1e-6);
    // db is the gradient of the bias (also meaningful when the forward had none: it is sum dy).
    Vec bb = b;
    auto loss_b = [&] {
      Vec y(x.size());
      layernorm_fwd_t<double>(x.data(), w.data(), bb.data(), kEps, N, d, y.data(), mean.data(), rstd.data());
      return dot(y, R);
    };
    expect_grad("layernorm db (+=)", bb, minus(db, db0), loss_b, 1e-6);
    Vec acc = prefill(x.size(), 17);
    const Vec base = acc;
    layernorm_bwd_t<double>(R.data(), x.data(), w.data(), mean.data(), rstd.data(), N, d, acc.data(), nullptr, nullptr,
                            true);
    EXPECT_LE(rel_err(minus(acc, base), dx), 1e-13);
  }
}

TEST(NormGrad, FloatForwardsEqualInference) {
  const int64_t N = 33, d = 48;
  const auto x = to_float(randv(size_t(N * d), 21, 2.0, 0.3)), w = to_float(randv(size_t(d), 22)),
             b = to_float(randv(size_t(d), 23));
  const float eps = 1e-5f;
  std::vector<float> y1(x.size()), y2(x.size()), st1(static_cast<size_t>(N)), st2(static_cast<size_t>(N));
  rmsnorm_fwd(x.data(), w.data(), eps, N, d, y1.data());
  rmsnorm_fwd_t<float>(x.data(), w.data(), double(eps), N, d, y2.data(), st1.data());
  EXPECT_EQ(y1, y2);  // same operations in the same order: bitwise equal
  layernorm_fwd(x.data(), w.data(), b.data(), eps, N, d, y1.data());
  layernorm_fwd_t<float>(x.data(), w.data(), b.data(), double(eps), N, d, y2.data(), st1.data(), st2.data());
  EXPECT_EQ(y1, y2);
}

}  // namespace
