// Gradient checks of ops/embedding.h's training form: scatter-add backward with repeated ids (float64
// finite differences), += semantics, id range errors, float training forward == inference forward.
#include <gtest/gtest.h>

#include "core/error.h"
#include "ops/embedding.h"
#include "test_grad_common.h"

using namespace jrt::ops;
using namespace jrt::test;

namespace {

TEST(EmbeddingGrad, ScatterAddWithRepeats) {
  const int64_t V = 6, d = 5;
  const std::vector<int64_t> ids{3, 0, 3, 5, 3, 1};  // id 3 three times, ids 2 and 4 never
  Vec E = randv(size_t(V * d), 1);
  const Vec R = randv(ids.size() * size_t(d), 2);
  auto loss = [&] {
    Vec y(ids.size() * size_t(d));
    embedding_fwd_t<double>(ids, E.data(), V, d, y.data());
    return dot(y, R);
  };
  Vec dE0 = prefill(E.size(), 3), dE = dE0;
  embedding_bwd_t<double>(ids, R.data(), V, d, dE.data());
  expect_grad("dE (+=)", E, minus(dE, dE0), loss, 1e-6);  // tol: test_grad_common.h (linear loss)
  // Rows never looked up keep exactly their previous content.
  for (int64_t r : {2, 4})
    for (int64_t c = 0; c < d; ++c) EXPECT_EQ(dE[size_t(r * d + c)], dE0[size_t(r * d + c)]);
}

TEST(EmbeddingGrad, BadIdsThrowAndFloatMatchesInference) {
  const int64_t V = 4, d = 3;
  const auto E = to_float(randv(size_t(V * d), 4));
  const std::vector<int64_t> ids{1, 3, 0, 1};
  std::vector<float> y1(ids.size() * d), y2(ids.size() * d), dE(size_t(V * d));
  embedding_fwd(ids, E.data(), V, d, y1.data());
  embedding_fwd_t<float>(ids, E.data(), V, d, y2.data());
  EXPECT_EQ(y1, y2);
  const std::vector<int64_t> bad{1, 4};
  EXPECT_THROW(embedding_fwd_t<float>(bad, E.data(), V, d, y2.data()), jrt::Error);
  EXPECT_THROW(embedding_bwd_t<float>(bad, y2.data(), V, d, dE.data()), jrt::Error);
  const std::vector<int64_t> neg{-1};
  EXPECT_THROW(embedding_bwd_t<float>(neg, y2.data(), V, d, dE.data()), jrt::Error);
}

}  // namespace
