// tests/test_grad_common.h — what the gradient tests (tests/test_grad_*.cpp) share: random tensors, the
// float64 central finite-difference check of an analytic gradient, buffer-semantics helpers.
//
// Method: every op is checked on the scalar loss  l = sum(out * R)  for a fixed random R, so the analytic
// backward is called with dout = R and each input / parameter gradient is compared, element by element,
// with (l(x + h e_i) - l(x - h e_i)) / 2h in double. Error measure: max_i |fd_i - an_i| / max_i |an_i|
// (relative to the tensor's largest gradient). With h = 1e-6 the truncation error is O(h^2 |l'''|) ~ 1e-12
// and the rounding error O(1e-16 |l| / h) ~ 1e-10 |l|; for l = O(1..100) that is <= 1e-8, so a tolerance
// of 1e-6 leaves a wide margin while a wrong term (an error of O(1) relative) can never pass.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace jrt::test {

using Vec = std::vector<double>;

inline Vec randv(size_t n, uint32_t seed, double sd = 1.0, double mean = 0.0) {
  std::mt19937 g(seed);
  std::normal_distribution<double> d(mean, sd);
  Vec v(n);
  for (auto& x : v) x = d(g);
  return v;
}

inline std::vector<float> to_float(const Vec& v) { return std::vector<float>(v.begin(), v.end()); }

inline double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// max |a - b| / max |b|
inline double rel_err(const Vec& a, const Vec& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num = std::max(num, std::fabs(a[i] - b[i]));
    den = std::max(den, std::fabs(b[i]));
  }
  return den > 0 ? num / den : num;
}

template <class A, class B>
inline double rel_err_f(const std::vector<A>& a, const std::vector<B>& b) {
  return rel_err(Vec(a.begin(), a.end()), Vec(b.begin(), b.end()));
}

// Central finite differences of loss() wrt every element of x (x is perturbed in place and restored).
inline Vec fd_grad(Vec& x, const std::function<double()>& loss, double h = 1e-6) {
  Vec g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const double lp = loss();
    x[i] = x0 - h;
    const double lm = loss();
    x[i] = x0;
    g[i] = (lp - lm) / (2 * h);
  }
  return g;
}

// Asserts that `analytic` is the gradient of loss() wrt x within tol (relative to max |analytic|), and
// that the gradient is not trivially zero (so the check can fail).
inline void expect_grad(const std::string& what, Vec& x, const Vec& analytic, const std::function<double()>& loss,
                        double tol, double h = 1e-6) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  const Vec fd = fd_grad(x, loss, h);
  double mx = 0;
  for (double v : fd) mx = std::max(mx, std::fabs(v));
  EXPECT_GT(mx, 1e-8) << what << ": the finite-difference gradient is zero; the check would prove nothing";
  const double e = rel_err(analytic, fd);
  if (std::getenv("JRT_GRAD_VERBOSE")) std::printf("  %-28s rel err %.2e (max |g| %.2e)\n", what.c_str(), e, mx);
  EXPECT_LE(e, tol) << what << ": analytic vs finite-difference gradient, relative error " << e;
}

// Buffer semantics: parameter gradients accumulate (+=) on top of `prefill`, activation gradients are
// written (=) whatever the buffer held (`garbage`).
inline Vec prefill(size_t n, uint32_t seed) { return randv(n, seed, 3.0); }
inline Vec garbage(size_t n) { return Vec(n, 777.0); }
inline Vec minus(const Vec& a, const Vec& b) {
  Vec r(a.size());
  for (size_t i = 0; i < a.size(); ++i) r[i] = a[i] - b[i];
  return r;
}

}  // namespace jrt::test
