// Gradient checks of ops/selective_scan.h's training form: dx, ddelta, dA, dB, dC, dD by float64 finite
// differences for several checkpoint intervals (every state kept / recomputed intervals / one interval),
// strided rows as in the Mamba mixer; += / = semantics; the saved checkpoints; delta's softplus backward
// on both sides of the threshold; and the float training forward against selective_scan_fwd.
#include <gtest/gtest.h>

#include <ostream>

#include "ops/activation.h"
#include "ops/selective_scan.h"
#include "test_grad_common.h"

using namespace jrt::ops;
using namespace jrt::test;

namespace {

struct ScanCase {
  int64_t L, di, N, ckpt;
  bool withD;
};

std::ostream& operator<<(std::ostream& os, const ScanCase& c) {
  return os << "L" << c.L << "_di" << c.di << "_N" << c.N << "_ckpt" << c.ckpt << (c.withD ? "_D" : "");
}

class ScanGrad : public ::testing::TestWithParam<ScanCase> {};

TEST_P(ScanGrad, FiniteDifferences) {
  const auto c = GetParam();
  // B and C as column slices of one [L, r + 2N] buffer (x_proj's output), r = 2.
  const int64_t ldbc = 2 + 2 * c.N, ldx = c.di + 1;
  Vec x = randv(size_t(c.L * ldx), 1), bc = randv(size_t(c.L * ldbc), 2), D = randv(size_t(c.di), 3);
  Vec delta(size_t(c.L * c.di)), A(size_t(c.di * c.N));
  {
    const Vec r = randv(delta.size(), 4);
    for (size_t i = 0; i < r.size(); ++i) delta[i] = softplus_t(r[i]);  // positive, as in Mamba
    const Vec a = randv(A.size(), 5, 0.5);
    for (size_t i = 0; i < a.size(); ++i) A[i] = -std::exp(a[i]);  // negative, as -exp(A_log)
  }
  const Vec R = randv(size_t(c.L * c.di), 6);
  Vec y(size_t(c.L * c.di)), hs(size_t(scan_saved_states(c.L, c.ckpt) * c.di * c.N));
  auto io = [&] {
    ScanTrain<double> s;
    s.x = x.data();
    s.ldx = ldx;
    s.delta = delta.data();
    s.ldd = c.di;
    s.A = A.data();
    s.B = bc.data() + 2;
    s.ldb = ldbc;
    s.C = bc.data() + 2 + c.N;
    s.ldc = ldbc;
    s.D = c.withD ? D.data() : nullptr;
    s.y = y.data();
    s.ldy = c.di;
    s.hsave = hs.data();
    s.L = c.L;
    s.di = c.di;
    s.N = c.N;
    s.ckpt = c.ckpt;
    return s;
  };
  auto loss = [&] {
    selective_scan_fwd_t<double>(io());
    return dot(y, R);
  };
  loss();
  // Checkpoint k holds the state before step k * ckpt: compare with a direct recurrence.
  {
    Vec h(size_t(c.di * c.N), 0.0);
    for (int64_t t = 0; t < c.L; ++t) {
      if (t % c.ckpt == 0) {
        for (size_t i = 0; i < h.size(); ++i) EXPECT_EQ(hs[size_t(t / c.ckpt) * h.size() + i], h[i]) << t;
      }
      for (int64_t ch = 0; ch < c.di; ++ch)
        for (int64_t n = 0; n < c.N; ++n) {
          const double d = delta[size_t(t * c.di + ch)];
          double& hv = h[size_t(ch * c.N + n)];
          hv =
              std::exp(d * A[size_t(ch * c.N + n)]) * hv + (d * bc[size_t(t * ldbc + 2 + n)]) * x[size_t(t * ldx + ch)];
        }
    }
  }
  Vec dx(x.size(), 0.0), dd = garbage(delta.size()), dbc(bc.size(), 0.0), dA0 = prefill(A.size(), 7),
                         dD0 = prefill(D.size(), 8), dA = dA0, dD = dD0;
  for (int64_t t = 0; t < c.L; ++t) {
    for (int64_t ch = 0; ch < c.di; ++ch) dx[size_t(t * ldx + ch)] = 777.0;
    for (int64_t n = 0; n < 2 * c.N; ++n) dbc[size_t(t * ldbc + 2 + n)] = 777.0;
  }
  ScanGrads<double> g{dx.data(),
                      ldx,
                      dd.data(),
                      c.di,
                      dbc.data() + 2,
                      ldbc,
                      dbc.data() + 2 + c.N,
                      ldbc,
                      dA.data(),
                      c.withD ? dD.data() : nullptr};
  selective_scan_bwd_t<double>(io(), R.data(), c.di, g);
  for (int64_t t = 0; t < c.L; ++t) {  // columns outside the slices are untouched
    EXPECT_EQ(dx[size_t(t * ldx + c.di)], 0.0);
    EXPECT_EQ(dbc[size_t(t * ldbc)], 0.0);
  }
  // tol 1e-6: test_grad_common.h (smooth; |A delta| = O(1) so exp terms are well scaled).
  expect_grad("scan dx", x, dx, loss, 1e-6);
  expect_grad("scan ddelta", delta, dd, loss, 1e-6);
  expect_grad("scan dB, dC", bc, dbc, loss, 1e-6);
  expect_grad("scan dA (+=)", A, minus(dA, dA0), loss, 1e-6);
  if (c.withD) expect_grad("scan dD (+=)", D, minus(dD, dD0), loss, 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Cases, ScanGrad,
                         ::testing::Values(ScanCase{10, 3, 2, 1, true}, ScanCase{10, 3, 2, 3, true},
                                           ScanCase{10, 4, 3, 64, false}, ScanCase{7, 17, 2, 2, true}));

TEST(ScanGrad, CheckpointIntervalDoesNotChangeGradients) {
  const int64_t L = 37, di = 9, N = 4;
  const auto x = randv(size_t(L * di), 11), B = randv(size_t(L * N), 12), C = randv(size_t(L * N), 13),
             D = randv(size_t(di), 14), dy = randv(size_t(L * di), 15);
  Vec delta(size_t(L * di)), A(size_t(di * N));
  const Vec r = randv(delta.size(), 16), a = randv(A.size(), 17, 0.5);
  for (size_t i = 0; i < r.size(); ++i) delta[i] = softplus_t(r[i]);
  for (size_t i = 0; i < a.size(); ++i) A[i] = -std::exp(a[i]);
  Vec ref;
  for (int64_t ck : {1, 5, 37, 100}) {
    Vec y(size_t(L * di)), hs(size_t(scan_saved_states(L, ck) * di * N));
    ScanTrain<double> s{x.data(), di,       delta.data(), di,        A.data(), B.data(), N, C.data(), N,
                        D.data(), y.data(), di,           hs.data(), L,        di,       N, ck};
    selective_scan_fwd_t<double>(s);
    Vec dx(x.size()), dd(delta.size()), dB(B.size()), dC(C.size()), dA(A.size()), dDv(D.size());
    selective_scan_bwd_t<double>(
        s, dy.data(), di,
        ScanGrads<double>{dx.data(), di, dd.data(), di, dB.data(), N, dC.data(), N, dA.data(), dDv.data()});
    Vec all;
    for (const Vec* v : {&dx, &dd, &dB, &dC, &dA, &dDv}) all.insert(all.end(), v->begin(), v->end());
    if (ref.empty())
      ref = all;
    else
      EXPECT_EQ(all, ref) << "ckpt " << ck;  // the recomputation repeats the forward's exact operations
  }
}

TEST(ScanGrad, DeltaSoftplus) {
  const int64_t L = 6, di = 5, ldp = 7;
  Vec pre = randv(size_t(L * ldp), 21, 3.0), bias = randv(size_t(di), 22);
  pre[0] = 25.0;  // above torch's threshold 20: softplus is the identity there
  pre[1] = 19.0;
  const Vec R = randv(size_t(L * di), 23);
  auto loss = [&] {
    Vec d(size_t(L * di));
    delta_softplus_fwd_t<double>(pre.data(), ldp, bias.data(), L, di, d.data(), di);
    return dot(d, R);
  };
  Vec dpre(pre.size(), 0.0), db0 = prefill(bias.size(), 24), db = db0;
  for (int64_t t = 0; t < L; ++t)
    for (int64_t c = 0; c < di; ++c) dpre[size_t(t * ldp + c)] = 777.0;
  delta_softplus_bwd_t<double>(R.data(), di, pre.data(), ldp, bias.data(), L, di, dpre.data(), ldp, db.data());
  // tol 1e-6: test_grad_common.h; no input lies within h of the threshold kink.
  expect_grad("softplus dpre", pre, dpre, loss, 1e-6);
  expect_grad("softplus dbias (+=)", bias, minus(db, db0), loss, 1e-6);
}

TEST(ScanGrad, FloatForwardEqualsInference) {
  const int64_t L = 40, di = 33, N = 16;
  const auto x = to_float(randv(size_t(L * di), 31)), B = to_float(randv(size_t(L * N), 32)),
             C = to_float(randv(size_t(L * N), 33)), D = to_float(randv(size_t(di), 34)),
             pre = to_float(randv(size_t(L * di), 35)), bias = to_float(randv(size_t(di), 36));
  std::vector<float> A(size_t(di * N));
  const auto a = randv(A.size(), 37, 0.5);
  for (size_t i = 0; i < A.size(); ++i) A[i] = -std::exp(float(a[i]));
  // delta as the Mamba mixer computes it, and through the training form.
  std::vector<float> delta(size_t(L * di)), delta_t(delta.size());
  for (int64_t t = 0; t < L; ++t)
    for (int64_t c = 0; c < di; ++c) delta[size_t(t * di + c)] = softplus(pre[size_t(t * di + c)] + bias[size_t(c)]);
  delta_softplus_fwd_t<float>(pre.data(), di, bias.data(), L, di, delta_t.data(), di);
  EXPECT_EQ(delta, delta_t);
  std::vector<float> y1(size_t(L * di)), y2(y1.size()), h(size_t(di * N), 0.0f), hs(size_t(4 * di * N));
  selective_scan_fwd(ScanParams{A.data(), D.data(), di, N},
                     ScanIO{x.data(), di, delta.data(), di, B.data(), N, C.data(), N, y1.data(), di, h.data(), L});
  ScanTrain<float> s{x.data(), di,        delta.data(), di,        A.data(), B.data(), N, C.data(), N,
                     D.data(), y2.data(), di,           hs.data(), L,        di,       N, 10};
  selective_scan_fwd_t<float>(s);
  EXPECT_EQ(y1, y2);  // same operations in the same order
}

}  // namespace
