// Gradient checks of ops/activation.h's training forms: SiLU, gated SiLU on strided rows, SwiGLU, GELU
// (erf and tanh), the scalar softplus / silu derivatives; = semantics; float forwards == inference.
#include <gtest/gtest.h>

#include "ops/activation.h"
#include "test_grad_common.h"

using namespace jrt::ops;
using namespace jrt::test;

namespace {

// Inputs spread over [-6, 6] so both tails and the middle of each curve are exercised.
Vec inputs(size_t n, uint32_t seed) { return randv(n, seed, 2.5); }

TEST(ActivationGrad, Silu) {
  const int64_t n = 40;
  Vec x = inputs(size_t(n), 1);
  const Vec R = randv(size_t(n), 2);
  auto loss = [&] {
    Vec y(static_cast<size_t>(n));
    silu_fwd_t<double>(x.data(), n, y.data());
    return dot(y, R);
  };
  Vec dx = garbage(static_cast<size_t>(n));
  silu_bwd_t<double>(R.data(), x.data(), n, dx.data());
  expect_grad("silu dx", x, dx, loss, 1e-6);  // tol: test_grad_common.h
}

TEST(ActivationGrad, GatedSiluStrided) {
  const int64_t N = 5, F = 6, lda = 9, ldg = 8, ldy = 7;
  Vec a = inputs(size_t(N * lda), 3), g = inputs(size_t(N * ldg), 4);
  const Vec R = randv(size_t(N * ldy), 5);
  Vec Rm = R;
  for (int64_t r = 0; r < N; ++r)
    for (int64_t i = F; i < ldy; ++i) Rm[size_t(r * ldy + i)] = 0;
  auto loss = [&] {
    Vec y(size_t(N * ldy), 0.0);
    gated_silu_fwd_t<double>(a.data(), lda, g.data(), ldg, N, F, y.data(), ldy);
    return dot(y, Rm);
  };
  Vec da(size_t(N * lda), 0.0), dg(size_t(N * ldg), 0.0);
  for (int64_t r = 0; r < N; ++r)  // the used columns start as garbage: the backward must overwrite them
    for (int64_t i = 0; i < F; ++i) da[size_t(r * lda + i)] = dg[size_t(r * ldg + i)] = 777.0;
  gated_silu_bwd_t<double>(Rm.data(), ldy, a.data(), lda, g.data(), ldg, N, F, da.data(), lda, dg.data(), ldg);
  expect_grad("gated silu da", a, da, loss, 1e-6);
  expect_grad("gated silu dg", g, dg, loss, 1e-6);
}

TEST(ActivationGrad, SwiGlu) {
  const int64_t N = 4, F = 5;
  Vec u = inputs(size_t(N * 2 * F), 6);
  const Vec R = randv(size_t(N * F), 7);
  auto loss = [&] {
    Vec y(size_t(N * F));
    swiglu_fwd_t<double>(u.data(), N, F, y.data());
    return dot(y, R);
  };
  Vec du = garbage(u.size());
  swiglu_bwd_t<double>(R.data(), u.data(), N, F, du.data());
  expect_grad("swiglu du", u, du, loss, 1e-6);
}

TEST(ActivationGrad, Gelu) {
  const int64_t n = 50;
  for (bool tanh_approx : {false, true}) {
    Vec x = inputs(size_t(n), 8);
    const Vec R = randv(size_t(n), 9);
    auto loss = [&] {
      Vec y(static_cast<size_t>(n));
      gelu_fwd_t<double>(x.data(), n, y.data(), tanh_approx);
      return dot(y, R);
    };
    Vec dx = garbage(static_cast<size_t>(n));
    gelu_bwd_t<double>(R.data(), x.data(), n, dx.data(), tanh_approx);
    expect_grad(tanh_approx ? "gelu(tanh) dx" : "gelu(erf) dx", x, dx, loss, 1e-6);
  }
}

TEST(ActivationGrad, ScalarDerivatives) {
  // softplus' and silu' against central differences, both sides of softplus's threshold (20).
  for (double x : {-30.0, -3.0, -0.5, 0.0, 0.7, 4.0, 19.5, 25.0}) {
    const double h = 1e-6;
    EXPECT_NEAR(softplus_grad_t(x), (softplus_t(x + h) - softplus_t(x - h)) / (2 * h), 1e-8) << x;
    EXPECT_NEAR(silu_grad_t(x), (silu_t(x + h) - silu_t(x - h)) / (2 * h), 1e-8) << x;
  }
  for (float x : {-30.0f, -1.0f, 0.3f, 5.0f, 25.0f}) {
    EXPECT_EQ(softplus_t(x), softplus(x));
    EXPECT_EQ(silu_t(x), silu(x));
  }
}

TEST(ActivationGrad, FloatForwardsEqualInference) {
  const int64_t N = 7, F = 33;
  const auto u = to_float(inputs(size_t(N * 2 * F), 10));
  std::vector<float> y1(size_t(N * F)), y2(size_t(N * F));
  swiglu_fwd(u.data(), N, F, y1.data());
  swiglu_fwd_t<float>(u.data(), N, F, y2.data());
  EXPECT_EQ(y1, y2);
  std::vector<float> g1(u.size()), g2(u.size());
  for (bool t : {false, true}) {
    gelu_fwd(u.data(), int64_t(u.size()), g1.data(), t);
    gelu_fwd_t<float>(u.data(), int64_t(u.size()), g2.data(), t);
    EXPECT_EQ(g1, g2);
  }
}

}  // namespace
