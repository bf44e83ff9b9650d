// Gradient checks of ops/linear_attention.h's training form: dq, dk, dv, ddt, dS0, dz0 by float64 finite
// differences with and without decay / output scale / initial state, several query blocks; the JRT chain
// (encoder summary -> prefix LA) end to end; la_accumulate_state_t's backward; = semantics; the saved
// denominators; and the float training forward against la_chunked / la_accumulate_state.
#include <gtest/gtest.h>

#include <ostream>

#include "ops/linear_attention.h"
#include "ops/taylor.h"
#include "test_grad_common.h"

using namespace jrt::ops;
using namespace jrt::test;

namespace {

struct LaCase {
  int64_t L, fd, dv;
  double gamma;
  bool dt, init;
  int64_t block;
};

std::ostream& operator<<(std::ostream& os, const LaCase& c) {
  return os << "L" << c.L << "_fd" << c.fd << "_dv" << c.dv << "_gamma" << c.gamma << (c.dt ? "_dt" : "")
            << (c.init ? "_init" : "") << "_block" << c.block;
}

struct LaData {
  Vec q, k, v, dt, S0, z0;
};

// q, k of scale ~0.7 (s = q.k / sqrt(fd) is O(1), so the quadratic term matters); an initial state that
// a few random keys would have produced (den stays >= 1/2 per term), plus noise in S0.
LaData make(const LaCase& c, uint32_t seed) {
  LaData d;
  d.q = randv(size_t(c.L * c.fd), seed, 0.7);
  d.k = randv(size_t(c.L * c.fd), seed + 1, 0.7);
  d.v = randv(size_t(c.L * c.dv), seed + 2);
  d.dt = randv(size_t(c.L), seed + 3);
  const int64_t D = taylor_dim(c.fd);
  d.S0 = randv(size_t(D * c.dv), seed + 4, 0.1);
  d.z0.assign(size_t(D), 0.0);
  const Vec ke = randv(size_t(3 * c.fd), seed + 5, 0.7), ve = randv(size_t(3 * c.dv), seed + 6);
  la_accumulate_state_t<double>(ke.data(), c.fd, ve.data(), c.dv, 3, c.fd, c.dv, d.S0.data(), d.z0.data());
  return d;
}

struct LaBuffers {
  Vec y, den, u;
};

LaTrainHead<double> head(const LaCase& c, LaData& d, LaBuffers& b) {
  b.y.assign(size_t(c.L * c.dv), 0.0);
  b.den.assign(size_t(c.L), 0.0);
  b.u.assign(size_t(c.L * c.dv), 0.0);
  LaTrainHead<double> h;
  h.q = d.q.data();
  h.ldq = c.fd;
  h.k = d.k.data();
  h.ldk = c.fd;
  h.v = d.v.data();
  h.ldv = c.dv;
  if (c.dt) h.dt = d.dt.data();
  if (c.init) {
    h.S0 = d.S0.data();
    h.z0 = d.z0.data();
  }
  h.y = b.y.data();
  h.ldy = c.dv;
  h.den = b.den.data();
  h.u = c.dt ? b.u.data() : nullptr;
  h.ldu = c.dv;
  h.L = c.L;
  h.fd = c.fd;
  h.dv = c.dv;
  h.gamma = c.gamma;
  h.block = c.block;
  return h;
}

class LaGrad : public ::testing::TestWithParam<LaCase> {};

TEST_P(LaGrad, FiniteDifferences) {
  const auto c = GetParam();
  LaData d = make(c, 1);
  LaBuffers b;
  const Vec R = randv(size_t(c.L * c.dv), 9);
  auto loss = [&] {
    la_fwd_t<double>(head(c, d, b));
    return dot(b.y, R);
  };
  loss();
  const int64_t D = taylor_dim(c.fd);
  // Saved denominator: den_t = phi(q_t).z_t + eps, z_t = z0 + sum_{j<=t} phi(k_j).
  {
    Vec fq(static_cast<size_t>(D)), fk(static_cast<size_t>(D)), z = c.init ? d.z0 : Vec(size_t(D), 0.0);
    for (int64_t t = 0; t < c.L; ++t) {
      taylor_features_t(d.k.data() + t * c.fd, c.fd, fk.data());
      for (int64_t f = 0; f < D; ++f) z[size_t(f)] += fk[size_t(f)];
      taylor_features_t(d.q.data() + t * c.fd, c.fd, fq.data());
      EXPECT_NEAR(b.den[size_t(t)], dot(fq, z) + 1e-12, 1e-12 * std::fabs(b.den[size_t(t)])) << t;
    }
  }
  LaBuffers saved = b;
  LaData d0 = d;
  Vec dq = garbage(d.q.size()), dk = garbage(d.k.size()), dv = garbage(d.v.size()), ddt = garbage(d.dt.size()),
      dS0 = garbage(d.S0.size()), dz0 = garbage(d.z0.size());
  LaTrainGrads<double> g{dq.data(), c.fd,       dk.data(), c.fd, dv.data(), c.dv, c.dt ? ddt.data() : nullptr,
                         1,         dS0.data(), dz0.data()};
  LaTrainHead<double> h = head(c, d, b);
  h.y = saved.y.data();
  h.den = saved.den.data();
  h.u = c.dt ? saved.u.data() : nullptr;
  la_bwd_t<double>(h, R.data(), c.dv, g);
  // tol 1e-6: test_grad_common.h (smooth rational function; den >= 1/2 per term keeps it well conditioned).
  expect_grad("la dq", d.q, dq, loss, 1e-6);
  expect_grad("la dk", d.k, dk, loss, 1e-6);
  expect_grad("la dv", d.v, dv, loss, 1e-6);
  if (c.dt) expect_grad("la ddt", d.dt, ddt, loss, 1e-6);
  // dS0 / dz0: gradients wrt the initial state, also when the forward ran without one (then at S0 = 0,
  // z0 = 0), so compare with an explicit zero state in that case.
  LaCase ci = c;
  ci.init = true;
  LaData di = c.init ? d : d0;
  if (!c.init) {
    std::fill(di.S0.begin(), di.S0.end(), 0.0);
    std::fill(di.z0.begin(), di.z0.end(), 0.0);
  }
  LaBuffers bi;
  auto loss_i = [&] {
    la_fwd_t<double>(head(ci, di, bi));
    return dot(bi.y, R);
  };
  expect_grad("la dS0", di.S0, dS0, loss_i, 1e-6);
  expect_grad("la dz0", di.z0, dz0, loss_i, 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Cases, LaGrad,
                         ::testing::Values(LaCase{7, 2, 3, 1.0, false, false, 64},  // Based, one block
                                           LaCase{10, 3, 2, 1.0, false, true, 3},   // JRT decoder, 4 blocks
                                           LaCase{9, 2, 3, 0.8, true, false, 4},    // Based fixed decay + dt
                                           LaCase{8, 2, 2, 0.9, true, true, 5},     // everything at once
                                           LaCase{70, 2, 2, 1.0, false, true, 64}   // 2 blocks of 64
                                           ));

// JRT's prefix LA end to end: S0 = sum_j phi(ke_j) ve_j^T, z0 = sum_j phi(ke_j) (la_accumulate_state_t),
// then causal LA from (S0, z0); gradients wrt ke, ve through both backwards.
TEST(LaGrad, JrtEncoderChain) {
  const int64_t L = 8, M = 5, fd = 2, dv = 3, D = taylor_dim(fd);
  LaCase c{L, fd, dv, 1.0, false, true, 3};
  LaData d = make(c, 21);
  Vec ke = randv(size_t(M * fd), 31, 0.7), ve = randv(size_t(M * dv), 32);
  const Vec R = randv(size_t(L * dv), 33);
  LaBuffers b;
  auto loss = [&] {
    std::fill(d.S0.begin(), d.S0.end(), 0.0);
    std::fill(d.z0.begin(), d.z0.end(), 0.0);
    la_accumulate_state_t<double>(ke.data(), fd, ve.data(), dv, M, fd, dv, d.S0.data(), d.z0.data());
    la_fwd_t<double>(head(c, d, b));
    return dot(b.y, R);
  };
  loss();
  Vec dq(d.q.size()), dk(d.k.size()), dv_(d.v.size()), dS0(size_t(D * dv)), dz0(static_cast<size_t>(D));
  LaTrainGrads<double> g{dq.data(), fd, dk.data(), fd, dv_.data(), dv, nullptr, 1, dS0.data(), dz0.data()};
  LaBuffers b2;
  LaTrainHead<double> h = head(c, d, b2);
  la_fwd_t<double>(h);
  la_bwd_t<double>(h, R.data(), dv, g);
  Vec dke = garbage(ke.size()), dve = garbage(ve.size());
  la_accumulate_state_bwd_t<double>(ke.data(), fd, ve.data(), dv, M, fd, dv, dS0.data(), dz0.data(), dke.data(), fd,
                                    dve.data(), dv);
  expect_grad("jrt dke", ke, dke, loss, 1e-6);  // tol: test_grad_common.h
  expect_grad("jrt dve", ve, dve, loss, 1e-6);
  expect_grad("jrt dq", d.q, dq, loss, 1e-6);
}

// The float training forward equals the inference kernels from the same state.
TEST(LaGrad, FloatForwardEqualsInference) {
  struct FCase {
    int64_t L, fd, dv;
    double gamma;
    bool dt, init;
  };
  for (const FCase fc : {FCase{150, 16, 24, 1.0, false, false}, FCase{150, 16, 24, 1.0, false, true},
                         FCase{100, 8, 16, 0.875, true, false}}) {
    const int64_t D = taylor_dim(fc.fd);
    const auto q = to_float(randv(size_t(fc.L * fc.fd), 41, 0.7)), k = to_float(randv(size_t(fc.L * fc.fd), 42, 0.7)),
               v = to_float(randv(size_t(fc.L * fc.dv), 43)), dt = to_float(randv(size_t(fc.L), 44));
    const auto ke = to_float(randv(size_t(20 * fc.fd), 45, 0.7)), ve = to_float(randv(size_t(20 * fc.dv), 46));
    std::vector<float> S(size_t(D * fc.dv), 0.0f), z(size_t(D), 0.0f), St(S.size(), 0.0f), zt(z.size(), 0.0f);
    if (fc.init) {
      la_accumulate_state(ke.data(), fc.fd, ve.data(), fc.dv, 20, fc.fd, fc.dv, S.data(), z.data());
      la_accumulate_state_t<float>(ke.data(), fc.fd, ve.data(), fc.dv, 20, fc.fd, fc.dv, St.data(), zt.data());
      EXPECT_LE(rel_err_f(St, S), 1e-6);  // same GEMM, same sums
      EXPECT_EQ(zt, z);
    }
    const std::vector<float> S0 = S, z0 = z;
    std::vector<float> y1(size_t(fc.L * fc.dv)), y2(y1.size()), den(static_cast<size_t>(fc.L)), u(y1.size());
    LaHead a{q.data(), fc.fd, k.data(), fc.fd, v.data(), fc.dv, y1.data(), fc.dv};
    if (fc.dt) a.dt = dt.data();
    a.L = fc.L;
    a.fd = fc.fd;
    a.dv = fc.dv;
    a.gamma = fc.gamma;
    la_chunked(a, S.data(), z.data(), 64);
    LaTrainHead<float> t;
    t.q = q.data();
    t.ldq = fc.fd;
    t.k = k.data();
    t.ldk = fc.fd;
    t.v = v.data();
    t.ldv = fc.dv;
    if (fc.dt) t.dt = dt.data();
    if (fc.init) {
      t.S0 = S0.data();
      t.z0 = z0.data();
    }
    t.y = y2.data();
    t.ldy = fc.dv;
    t.den = den.data();
    t.u = u.data();
    t.ldu = fc.dv;
    t.L = fc.L;
    t.fd = fc.fd;
    t.dv = fc.dv;
    t.gamma = fc.gamma;
    la_fwd_t<float>(t);
    // Chunked (state GEMMs) vs quadratic kernel form in fp32: rounding differences of long sums only.
    EXPECT_LE(rel_err_f(y2, y1), 1e-5) << "L " << fc.L << " gamma " << fc.gamma;
  }
}

TEST(LaGrad, AccumulateStateBackward) {
  const int64_t M = 6, fd = 3, dv = 2, D = taylor_dim(fd);
  Vec k = randv(size_t(M * fd), 51, 0.7), v = randv(size_t(M * dv), 52);
  const Vec RS = randv(size_t(D * dv), 53), Rz = randv(size_t(D), 54);
  auto loss = [&] {
    Vec S(size_t(D * dv), 0.0), z(size_t(D), 0.0);
    la_accumulate_state_t<double>(k.data(), fd, v.data(), dv, M, fd, dv, S.data(), z.data());
    return dot(S, RS) + dot(z, Rz);
  };
  Vec dk = garbage(k.size()), dvv = garbage(v.size());
  la_accumulate_state_bwd_t<double>(k.data(), fd, v.data(), dv, M, fd, dv, RS.data(), Rz.data(), dk.data(), fd,
                                    dvv.data(), dv);
  expect_grad("accumulate dk", k, dk, loss, 1e-6);  // tol: test_grad_common.h
  expect_grad("accumulate dv", v, dvv, loss, 1e-6);
}

}  // namespace
