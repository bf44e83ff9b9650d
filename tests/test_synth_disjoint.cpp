// Set disjointness as the JRT repository defines it (synthetics-spec §3.1): [1] A [2] B [3], A and B from
// disjoint halves of a shuffled element vocabulary 4..V-1, exactly one element of A planted in B, the
// only label at the last position (the common element), and the parameter checks.
#include <gtest/gtest.h>

#include <set>

#include "core/error.h"
#include "synth/disjoint.h"

using namespace jrt;
using namespace jrt::synth;

TEST(Disjoint, StructureMatchesTheJrtGenerator) {
  DisjointConfig c;
  c.vocab_size = 24;
  c.num_examples = 500;
  c.short_length = 4;
  c.long_length = 8;
  Segment s = make_disjoint(c, 1);
  ASSERT_EQ(s.L, 4 + 8 + 3);
  EXPECT_EQ(s.slice_key, "short_length_long_length");
  EXPECT_EQ(s.slice_value, "4_8");
  std::set<int64_t> planted_at;
  for (int64_t e = 0; e < s.n; ++e) {
    const int64_t* in = s.inputs.data() + e * s.L;
    const int64_t* lab = s.labels.data() + e * s.L;
    EXPECT_EQ(in[0], 1);
    EXPECT_EQ(in[5], 2);
    EXPECT_EQ(in[14], 3);
    std::set<int64_t> A(in + 1, in + 5), B(in + 6, in + 14);
    EXPECT_EQ(A.size(), 4u) << "A has distinct elements";
    EXPECT_EQ(B.size(), 8u) << "B has distinct elements";
    for (int64_t x : A) EXPECT_GE(x, 4);
    for (int64_t x : B) EXPECT_GE(x, 4);
    for (int64_t x : B) EXPECT_LT(x, 24);
    std::set<int64_t> common;
    for (int64_t x : A)
      if (B.count(x)) common.insert(x);
    ASSERT_EQ(common.size(), 1u) << "exactly one common element";
    for (int64_t t = 0; t < s.L - 1; ++t) EXPECT_EQ(lab[t], -100);
    EXPECT_EQ(lab[s.L - 1], *common.begin()) << "the target is the common element";
    for (int64_t t = 6; t < 14; ++t)
      if (in[t] == *common.begin()) planted_at.insert(t - 6);
  }
  EXPECT_EQ(planted_at.size(), 8u) << "the planted slot of B is uniform";
  EXPECT_EQ(s.supervised(), 500);
}

TEST(Disjoint, SetsComeFromDisjointHalves) {
  // With |A| = V/2 every element of pool A is used, so B (from the other half) can only share the plant.
  DisjointConfig c;
  c.vocab_size = 20;  // elements 4..19 (16), half = 10: pool A 10 elements, pool B 6
  c.num_examples = 100;
  c.short_length = 10;
  c.long_length = 6;
  Segment s = make_disjoint(c, 2);
  for (int64_t e = 0; e < s.n; ++e) {
    const int64_t* in = s.inputs.data() + e * s.L;
    std::set<int64_t> all(in + 1, in + 11);
    for (int64_t t = 12; t < 18; ++t) all.insert(in[t]);
    EXPECT_EQ(all.size(), 15u);  // 16 elements in all, one of B overwritten by the plant
  }
}

TEST(Disjoint, DeterministicPerSeed) {
  DisjointConfig c;
  c.num_examples = 10;
  EXPECT_EQ(make_disjoint(c, 4).inputs, make_disjoint(c, 4).inputs);
  EXPECT_NE(make_disjoint(c, 4).inputs, make_disjoint(c, 5).inputs);
}

TEST(Disjoint, InvalidParametersAreClearErrors) {
  auto err = [](DisjointConfig c) {
    try {
      validate(c);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  DisjointConfig c;
  c.vocab_size = 24;
  c.short_length = 13;  // > V/2 = 12
  EXPECT_NE(err(c).find("--short-length 13"), std::string::npos) << err(c);
  c.short_length = 12;
  c.long_length = 9;  // > V - 4 - V/2 = 8
  EXPECT_NE(err(c).find("--long-length 9"), std::string::npos) << err(c);
  c.long_length = 8;
  EXPECT_EQ(err(c), "no error");
  c.vocab_size = 5;
  EXPECT_NE(err(c).find("--vocab must be >= 6"), std::string::npos) << err(c);
  c.vocab_size = 24;
  c.short_length = 0;
  EXPECT_NE(err(c).find("must be >= 1"), std::string::npos) << err(c);
}
