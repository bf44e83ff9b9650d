// Linear attention: the three implementations (chunked for every chunk size, O(L^2) quadratic,
// one-step recurrence) are the same function, with and without decay and output scale, from zero
// and non-zero initial states; the Taylor kernel identity; the explicit feature map vs the kernel.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "ops/linear_attention.h"
#include "ops/taylor.h"

using namespace jrt::ops;

namespace {

struct Case {
  int64_t L, fd, dv;
  double gamma;
  bool with_dt;
  bool nonzero_state;
};

struct Data {
  std::vector<float> q, k, v, dt, S0, z0;
};

Data make(const Case& c, uint32_t seed) {
  std::mt19937 rng(seed);
  // q, k of unit-ish scale so the quadratic Taylor term matters (s = q.k/4 is O(1)).
  std::normal_distribution<float> n(0.0f, 0.7f);
  Data d;
  auto fill = [&](std::vector<float>& x, size_t sz) {
    x.resize(sz);
    for (auto& e : x) e = n(rng);
  };
  fill(d.q, size_t(c.L * c.fd));
  fill(d.k, size_t(c.L * c.fd));
  fill(d.v, size_t(c.L * c.dv));
  fill(d.dt, size_t(c.L));
  const int64_t D = taylor_dim(c.fd);
  d.S0.assign(size_t(D * c.dv), 0.0f);
  d.z0.assign(size_t(D), 0.0f);
  if (c.nonzero_state) {
    // A state that some earlier prefix of 5 tokens would have produced (z must stay positive-definite-ish).
    std::vector<float> kk(size_t(5 * c.fd)), vv(size_t(5 * c.dv));
    for (auto& e : kk) e = n(rng);
    for (auto& e : vv) e = n(rng);
    la_accumulate_state(kk.data(), c.fd, vv.data(), c.dv, 5, c.fd, c.dv, d.S0.data(), d.z0.data());
  }
  return d;
}

LaHead head(const Case& c, const Data& d, float* y) {
  LaHead h;
  h.q = d.q.data();
  h.ldq = c.fd;
  h.k = d.k.data();
  h.ldk = c.fd;
  h.v = d.v.data();
  h.ldv = c.dv;
  h.y = y;
  h.ldy = c.dv;
  h.dt = c.with_dt ? d.dt.data() : nullptr;
  h.lddt = 1;
  h.L = c.L;
  h.fd = c.fd;
  h.dv = c.dv;
  h.gamma = c.gamma;
  return h;
}

double max_rel(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0, r = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    m = std::max(m, std::fabs(double(a[i]) - b[i]));
    r = std::max(r, std::fabs(double(b[i])));
  }
  return m / std::max(r, 1e-30);
}

}  // namespace

TEST(Taylor, KernelIdentityAndFeatures) {
  std::mt19937 rng(1);
  std::normal_distribution<float> n(0, 1);
  for (int64_t fd : {4, 16}) {
    std::vector<float> q(static_cast<size_t>(fd)), k(static_cast<size_t>(fd)), fq(size_t(taylor_dim(fd))), fk(size_t(taylor_dim(fd)));
    for (int rep = 0; rep < 20; ++rep) {
      double dot = 0;
      for (int64_t i = 0; i < fd; ++i) {
        q[size_t(i)] = n(rng);
        k[size_t(i)] = n(rng);
        dot += double(q[size_t(i)]) * k[size_t(i)];
      }
      taylor_features(q.data(), fd, fq.data());
      taylor_features(k.data(), fd, fk.data());
      double f = 0;
      for (size_t i = 0; i < fq.size(); ++i) f += double(fq[i]) * fk[i];
      double s = dot / std::sqrt(double(fd));
      // fp32 features summed in double: relative agreement to ~1e-6.
      EXPECT_NEAR(f, 1 + s + s * s / 2, 1e-5 * (1 + s * s));
      EXPECT_NEAR(taylor_kernel_from_dot(float(dot), fd), 1 + s + s * s / 2, 1e-5 * (1 + s * s));
    }
  }
  // phi(0) = e_0: a zeroed (masked) key keeps weight exactly 1.
  std::vector<float> z(16, 0.0f), f(size_t(taylor_dim(16)));
  taylor_features(z.data(), 16, f.data());
  EXPECT_EQ(f[0], 1.0f);
  for (size_t i = 1; i < f.size(); ++i) EXPECT_EQ(f[i], 0.0f);
}

// Every chunk size, incl. 1 (the recurrence), non-divisors and chunk > L, against the quadratic form
// and the step loop. Tolerance: fp32 sums of O(L) positive terms in different orders, and the
// quadratic reference accumulates in double: max-rel 2e-5.
TEST(LinearAttention, ChunkedEqualsQuadraticEqualsRecurrent) {
  const std::vector<Case> cases = {
      {1, 16, 8, 1.0, false, false},   {2, 16, 8, 1.0, false, false}, {37, 16, 32, 1.0, false, false},
      {100, 16, 16, 1.0, false, true}, {64, 16, 8, 0.875, true, false}, {129, 16, 8, 0.9375, true, true},
      {50, 4, 5, 1.0, true, true},
  };
  uint32_t seed = 7;
  for (const Case& c : cases) {
    Data d = make(c, seed++);
    const int64_t D = taylor_dim(c.fd);
    // Quadratic reference.
    std::vector<float> yq(size_t(c.L * c.dv)), Sq = d.S0, zq = d.z0;
    la_quadratic(head(c, d, yq.data()), Sq.data(), zq.data());
    // Recurrence, one token at a time.
    std::vector<float> yr(size_t(c.L * c.dv)), Sr = d.S0, zr = d.z0;
    for (int64_t t = 0; t < c.L; ++t) {
      LaHead h = head(c, d, yr.data());
      h.q += t * c.fd;
      h.k += t * c.fd;
      h.v += t * c.dv;
      h.y += t * c.dv;
      if (h.dt) h.dt += t;
      h.L = 1;
      la_step(h, Sr.data(), zr.data());
    }
    EXPECT_LT(max_rel(yr, yq), 2e-5) << "recurrent L=" << c.L;
    EXPECT_LT(max_rel(Sr, Sq), 2e-5) << "recurrent state L=" << c.L;
    for (int64_t chunk : {1, 2, 7, 16, 63, 64, 65, 1000}) {
      std::vector<float> yc(size_t(c.L * c.dv)), Sc = d.S0, zc = d.z0;
      la_chunked(head(c, d, yc.data()), Sc.data(), zc.data(), chunk);
      EXPECT_LT(max_rel(yc, yq), 2e-5) << "chunk " << chunk << " L=" << c.L << " gamma=" << c.gamma;
      EXPECT_LT(max_rel(Sc, Sq), 2e-5) << "chunk state " << chunk << " L=" << c.L;
      EXPECT_LT(max_rel(zc, zq), 2e-6) << "chunk z " << chunk;
    }
    (void)D;
  }
}

// Splitting a sequence into pieces and continuing from the state equals one call.
TEST(LinearAttention, ContinuationFromStateEqualsOneCall) {
  Case c{90, 16, 16, 0.96875, true, false};
  Data d = make(c, 99);
  std::vector<float> y1(size_t(c.L * c.dv)), S1 = d.S0, z1 = d.z0;
  la_chunked(head(c, d, y1.data()), S1.data(), z1.data(), 64);
  std::vector<float> y2(size_t(c.L * c.dv)), S2 = d.S0, z2 = d.z0;
  int64_t t = 0;
  for (int64_t piece : {13, 1, 40, 36}) {
    LaHead h = head(c, d, y2.data());
    h.q += t * c.fd;
    h.k += t * c.fd;
    h.v += t * c.dv;
    h.y += t * c.dv;
    h.dt += t;
    h.L = piece;
    la_chunked(h, S2.data(), z2.data(), 7);
    t += piece;
  }
  ASSERT_EQ(t, c.L);
  EXPECT_LT(max_rel(y2, y1), 2e-5);
  EXPECT_LT(max_rel(S2, S1), 2e-5);
}
