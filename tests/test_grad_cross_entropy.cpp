// Checks of ops/cross_entropy.h: loss sum / count / lse against a direct double formula, the ignore
// label, the backward (softmax - onehot) * scale against float64 finite differences of scale * loss_sum,
// JRT's two-mean objective built from two calls, in-place backward, and label errors.
#include <gtest/gtest.h>

#include "core/error.h"
#include "ops/cross_entropy.h"
#include "test_grad_common.h"

using namespace jrt::ops;
using namespace jrt::test;

namespace {

TEST(CrossEntropyGrad, ForwardMatchesFormulaAndIgnores) {
  const int64_t N = 6, V = 11;
  const Vec logits = randv(size_t(N * V), 1, 3.0);
  const std::vector<int64_t> labels{4, kIgnoreIndex, 0, 10, kIgnoreIndex, 7};
  Vec lse(static_cast<size_t>(N)), rl(static_cast<size_t>(N));
  const CeSums s = cross_entropy_fwd_t<double>(logits.data(), N, V, labels.data(), lse.data(), rl.data());
  double want = 0;
  for (int64_t n = 0; n < N; ++n) {
    double z = 0;
    for (int64_t v = 0; v < V; ++v) z += std::exp(logits[size_t(n * V + v)]);
    EXPECT_NEAR(lse[size_t(n)], std::log(z), 1e-13);
    const double l = labels[size_t(n)] == kIgnoreIndex ? 0.0 : std::log(z) - logits[size_t(n * V + labels[size_t(n)])];
    EXPECT_NEAR(rl[size_t(n)], l, 1e-13);
    want += l;
  }
  EXPECT_EQ(s.count, 4);
  EXPECT_NEAR(s.loss_sum, want, 1e-12);
  // Huge logits: the max-shifted sum does not overflow.
  Vec big = logits;
  for (auto& v : big) v += 1000.0;
  const CeSums sb = cross_entropy_fwd_t<double>(big.data(), N, V, labels.data(), lse.data());
  EXPECT_NEAR(sb.loss_sum, want, 1e-9);
}

TEST(CrossEntropyGrad, BackwardFiniteDifferences) {
  const int64_t N = 5, V = 7, ld = 9;  // strided logits rows
  Vec logits = randv(size_t(N * ld), 2, 2.0);
  const std::vector<int64_t> labels{3, 6, kIgnoreIndex, 0, 3};
  Vec lse(static_cast<size_t>(N));
  const double scale = 0.37;
  auto loss = [&] {
    return scale * cross_entropy_fwd_t<double>(logits.data(), N, V, labels.data(), lse.data(), nullptr, ld).loss_sum;
  };
  loss();
  Vec dl = garbage(logits.size());
  cross_entropy_bwd_t<double>(logits.data(), N, V, labels.data(), lse.data(), scale, dl.data(), ld, ld);
  for (int64_t n = 0; n < N; ++n)  // padding columns untouched, ignored row all zero
    for (int64_t v = 0; v < ld; ++v) {
      double& g = dl[size_t(n * ld + v)];
      if (v >= V) {
        EXPECT_EQ(g, 777.0);
        g = 0;
      } else if (n == 2) {
        EXPECT_EQ(g, 0.0);
      }
    }
  // tol 1e-6: test_grad_common.h (smooth; loss O(10)).
  expect_grad("dlogits", logits, dl, loss, 1e-6);
}

// JRT objective (models-spec §9): CE_mean(decoder rows) + 0.25 * CE_mean(MLM prefix rows), each a mean
// over its own rows, from two calls with scale = weight / count.
TEST(CrossEntropyGrad, TwoMeansObjective) {
  const int64_t E = 4, Ld = 5, V = 6, N = E + Ld;
  Vec logits = randv(size_t(N * V), 3, 1.5);
  std::vector<int64_t> labels{kIgnoreIndex, 2, kIgnoreIndex, 5, 1, 0, 4, 4, 3};  // prefix: 2 MLM targets
  Vec lse(static_cast<size_t>(N));
  auto objective = [&](CeSums* pre, CeSums* dec) {
    *pre = cross_entropy_fwd_t<double>(logits.data(), E, V, labels.data(), lse.data());
    *dec = cross_entropy_fwd_t<double>(logits.data() + E * V, Ld, V, labels.data() + E, lse.data() + E);
    return dec->loss_sum / double(dec->count) + 0.25 * pre->loss_sum / double(pre->count);
  };
  CeSums pre, dec;
  objective(&pre, &dec);
  ASSERT_EQ(pre.count, 2);
  ASSERT_EQ(dec.count, 5);
  Vec dl(logits.size());
  cross_entropy_bwd_t<double>(logits.data(), E, V, labels.data(), lse.data(), 0.25 / double(pre.count), dl.data());
  cross_entropy_bwd_t<double>(logits.data() + E * V, Ld, V, labels.data() + E, lse.data() + E, 1.0 / double(dec.count),
                              dl.data() + E * V);
  expect_grad(
      "two-mean objective", logits, dl, [&] { return objective(&pre, &dec); }, 1e-6);
}

TEST(CrossEntropyGrad, FloatInPlaceAndErrors) {
  const int64_t N = 4, V = 9;
  const Vec ld = randv(size_t(N * V), 4);
  const std::vector<int64_t> labels{1, 8, kIgnoreIndex, 0};
  Vec lse(static_cast<size_t>(N)), dref(ld.size());
  cross_entropy_fwd_t<double>(ld.data(), N, V, labels.data(), lse.data());
  cross_entropy_bwd_t<double>(ld.data(), N, V, labels.data(), lse.data(), 0.5, dref.data());
  auto lf = to_float(ld);
  std::vector<float> lsef(static_cast<size_t>(N));
  const CeSums sf = cross_entropy_fwd_t<float>(lf.data(), N, V, labels.data(), lsef.data());
  EXPECT_EQ(sf.count, 3);
  cross_entropy_bwd_t<float>(lf.data(), N, V, labels.data(), lsef.data(), 0.5f, lf.data());  // in place
  EXPECT_LE(rel_err_f(lf, dref), 1e-6);  // float rounding of exp / lse
  const std::vector<int64_t> bad{1, 9, 0, 0};
  EXPECT_THROW(cross_entropy_fwd_t<double>(ld.data(), N, V, bad.data(), lse.data()), jrt::Error);
  const std::vector<int64_t> neg{1, -2, 0, 0};
  EXPECT_THROW(cross_entropy_bwd_t<double>(ld.data(), N, V, neg.data(), lse.data(), 1.0, dref.data()), jrt::Error);
}

}  // namespace
