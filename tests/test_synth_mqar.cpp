// MQAR generation exactly as Zoology's multiquery_ar (synthetics-spec §4.1): key / value vocabulary
// halves, distinct keys and values, the key-value block, queries at even offsets of the query region
// with their value as the only labels, the power-law gap distribution (numpy's weighted choice without
// replacement), the random fill, seeds, and the parameter checks.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "core/error.h"
#include "synth/mqar.h"

using namespace jrt;
using namespace jrt::synth;

TEST(Mqar, StructureMatchesZoology) {
  MqarConfig c;
  c.vocab_size = 100;
  c.num_examples = 300;
  c.seq_len = 48;
  c.num_kv_pairs = 6;
  c.random_non_queries = false;
  Segment s = make_mqar(c, 17);
  ASSERT_EQ(s.n, 300);
  ASSERT_EQ(s.L, 48);
  EXPECT_EQ(s.slice_key, "num_kv_pairs");
  EXPECT_EQ(s.slice_value, "6");
  const int64_t C = 12;
  for (int64_t e = 0; e < s.n; ++e) {
    const int64_t* in = s.inputs.data() + e * s.L;
    const int64_t* lab = s.labels.data() + e * s.L;
    std::map<int64_t, int64_t> kv;
    std::set<int64_t> values;
    for (int64_t j = 0; j < 6; ++j) {
      const int64_t k = in[2 * j], v = in[2 * j + 1];
      EXPECT_GE(k, 1);  // token 0 is never a key
      EXPECT_LT(k, 50);
      EXPECT_GE(v, 50);
      EXPECT_LT(v, 100);
      EXPECT_TRUE(kv.emplace(k, v).second) << "keys distinct";
      EXPECT_TRUE(values.insert(v).second) << "values distinct";
      EXPECT_EQ(lab[2 * j], -100);
      EXPECT_EQ(lab[2 * j + 1], -100);
    }
    int64_t queries = 0;
    std::set<int64_t> queried;
    for (int64_t t = C; t < s.L; ++t) {
      if (lab[t] != -100) {
        ++queries;
        EXPECT_EQ((t - C) % 2, 0) << "queries sit at even offsets of the query region";
        ASSERT_TRUE(kv.count(in[t])) << "a labelled position holds a key";
        EXPECT_EQ(lab[t], kv.at(in[t])) << "the target is the key's value";
        queried.insert(in[t]);
      } else {
        EXPECT_EQ(in[t], 0) << "no random fill: every other query-region token is 0";
      }
    }
    EXPECT_EQ(queries, 6);
    EXPECT_EQ(queried.size(), 6u) << "every key is queried once";
    EXPECT_EQ(s.supervised(), 6 * 300);
  }
}

TEST(Mqar, PowerLawFavoursShortGaps) {
  MqarConfig c;
  c.vocab_size = 200;
  c.num_examples = 4000;
  c.seq_len = 64;
  c.num_kv_pairs = 2;
  c.random_non_queries = false;
  Segment s = make_mqar(c, 5);
  const int64_t C = 4, S = (64 - C) / 2;
  std::vector<int64_t> hist(static_cast<size_t>(S), 0);
  for (int64_t e = 0; e < s.n; ++e)
    for (int64_t t = C; t < s.L; ++t)
      if (s.labels[size_t(e * s.L + t)] != -100) ++hist[size_t((t - C) / 2)];
  // p_g ~ (g+1)^-0.99: slot 0 is the most frequent, and frequencies fall with the gap.
  EXPECT_GT(hist[0], hist[1]);
  EXPECT_GT(hist[1], hist[5]);
  EXPECT_GT(hist[5], hist[25]);
  EXPECT_GT(hist[0], 3 * hist[10]);
  for (int64_t h : hist) EXPECT_GT(h, 0);
}

TEST(Mqar, WeightedChoiceWithoutReplacementHasNumpysDistribution) {
  // numpy's algorithm for size 2 of 3: P(i then j) = p_i p_j + p_i^2 p_j / (1 - p_i).
  const std::vector<double> p = {0.5, 0.3, 0.2};
  Rng rng(42);
  std::map<std::pair<int64_t, int64_t>, int64_t> count;
  const int64_t n = 200000;
  for (int64_t k = 0; k < n; ++k) {
    auto v = weighted_choice_without_replacement(p, 2, rng);
    ASSERT_EQ(v.size(), 2u);
    ASSERT_NE(v[0], v[1]);
    ++count[{v[0], v[1]}];
  }
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 3; ++j) {
      if (i == j) continue;
      const double want = p[size_t(i)] * p[size_t(j)] + p[size_t(i)] * p[size_t(i)] * p[size_t(j)] / (1 - p[size_t(i)]);
      const double got = double(count[{i, j}]) / double(n);
      EXPECT_NEAR(got, want, 4 * std::sqrt(want / double(n))) << i << "," << j;
    }
  // Zero-probability entries are never drawn; asking for more than the support is an error.
  const std::vector<double> q = {0.0, 1.0, 0.0, 1.0};
  for (int k = 0; k < 100; ++k) {
    auto v = weighted_choice_without_replacement(q, 2, rng);
    EXPECT_EQ(std::set<int64_t>(v.begin(), v.end()), (std::set<int64_t>{1, 3}));
  }
  EXPECT_THROW(weighted_choice_without_replacement(q, 3, rng), Error);
}

TEST(Mqar, RandomFillReplacesZerosOnlyOutsideTheSupervision) {
  MqarConfig c;
  c.vocab_size = 64;
  c.num_examples = 200;
  c.seq_len = 32;
  c.num_kv_pairs = 4;
  c.random_non_queries = false;
  Segment plain = make_mqar(c, 3);
  c.random_non_queries = true;
  Segment filled = make_mqar(c, 3);
  EXPECT_EQ(plain.labels, filled.labels);  // same stream up to the fill: same keys, values, gaps
  int64_t zeros = 0, changed = 0;
  for (size_t i = 0; i < plain.inputs.size(); ++i) {
    if (plain.inputs[i] != 0) {
      EXPECT_EQ(filled.inputs[i], plain.inputs[i]);
    } else {
      ++zeros;
      changed += filled.inputs[i] != 0;
      EXPECT_GE(filled.inputs[i], 0);
      EXPECT_LT(filled.inputs[i], 64);
    }
  }
  EXPECT_GT(changed, zeros * 9 / 10);  // uniform over [0, V): about 1/V stay 0
}

TEST(Mqar, SeedsAreDeterministicAndTrainTestSeedsDisjoint) {
  MqarConfig c;
  c.vocab_size = 64;
  c.num_examples = 20;
  c.seq_len = 16;
  c.num_kv_pairs = 2;
  EXPECT_EQ(make_mqar(c, 9).inputs, make_mqar(c, 9).inputs);
  EXPECT_NE(make_mqar(c, 9).inputs, make_mqar(c, 10).inputs);
  for (int64_t i = 0; i < 50; ++i)
    for (int64_t j = 0; j < 50; ++j) EXPECT_NE(train_segment_seed(123, i), test_segment_seed(123, j));
  EXPECT_NE(train_segment_seed(123, 0), train_segment_seed(124, 0));
}

TEST(Mqar, InvalidParametersAreClearErrors) {
  auto err = [](MqarConfig c) {
    try {
      validate(c);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  MqarConfig c;
  c.vocab_size = 256;
  c.seq_len = 64;
  c.num_kv_pairs = 17;  // 4 * 17 > 64
  EXPECT_NE(err(c).find("--kv-pairs 17 do not fit in --seq-len 64"), std::string::npos) << err(c);
  c.num_kv_pairs = 4;
  c.vocab_size = 64;  // vocab must exceed seq_len
  EXPECT_NE(err(c).find("--vocab 64 is too small"), std::string::npos) << err(c);
  c.vocab_size = 256;
  c.seq_len = 63;
  EXPECT_NE(err(c).find("--seq-len must be even"), std::string::npos) << err(c);
  c.seq_len = 2;
  EXPECT_NE(err(c).find("--seq-len"), std::string::npos) << err(c);
  c.seq_len = 64;
  c.num_kv_pairs = 0;
  EXPECT_NE(err(c).find("--kv-pairs must be >= 1"), std::string::npos) << err(c);
  c.num_kv_pairs = 16;
  c.seq_len = 64;
  c.vocab_size = 66;  // 32 keys do not fit... 16 keys need V/2 - 1 >= 16
  EXPECT_EQ(err(c), "no error");
  c.vocab_size = 2 * 16;  // V/2 - 1 = 15 < 16, and V <= L
  EXPECT_NE(err(c).find("too small"), std::string::npos) << err(c);
  c = MqarConfig{};
  EXPECT_EQ(err(c), "no error");
}
