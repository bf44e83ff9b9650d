// The `contains` metric (spec §3.1, §12.2): case-insensitive substring of any gold label with Python
// re.IGNORECASE per-character semantics, no normalisation; and its mean.
#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/metric.h"

using namespace jrt;
using namespace jrt::eval;

TEST(EvalMetric, CaseInsensitiveSubstring) {
  EXPECT_EQ(contains(" The answer is DENVER Broncos", {"Denver Broncos"}), 1);
  EXPECT_EQ(contains("denver broncos", {"DENVER BRONCOS"}), 1);
  EXPECT_EQ(contains(" Denver", {"Denver Broncos"}), 0);  // the whole label must occur
  EXPECT_EQ(contains("1983.", {"1983"}), 1);
}

TEST(EvalMetric, NoNormalisation) {
  EXPECT_EQ(contains("Smith , John", {"Smith, John"}), 0);  // spaces count (the decode clean-up fixes " ,")
  EXPECT_EQ(contains("Smith, John", {"Smith, John"}), 1);
  EXPECT_EQ(contains("the Beatles", {"Beatles."}), 0);  // punctuation counts
  EXPECT_EQ(contains("an apple", {"the apple"}), 0);    // articles count
  EXPECT_EQ(contains("a.b", {"a.b"}), 1);
  EXPECT_EQ(contains("aXb", {"a.b"}), 0);  // the label is regex-escaped: '.' is literal
  EXPECT_EQ(contains("x+y=z (1)", {"x+y=z (1)"}), 1);
}

TEST(EvalMetric, MultipleAnswersAnyMatches) {
  EXPECT_EQ(contains("It was three", {"3", "three"}), 1);
  EXPECT_EQ(contains("It was 3", {"three", "3"}), 1);
  EXPECT_EQ(contains("It was four", {"three", "3"}), 0);
}

TEST(EvalMetric, EmptyGenerationAndEmptyLabels) {
  EXPECT_EQ(contains("", {"Paris"}), 0);
  EXPECT_EQ(contains("", {""}), 1);  // an empty label matches everything, as re.search("") does
  EXPECT_EQ(contains("anything", {"nope", ""}), 1);
  EXPECT_THROW(contains("x", {}), Error);  // Python's max() over no labels raises
  EXPECT_THROW(contains("bad \xFF utf8", {"x"}), Error);
}

TEST(EvalMetric, UnicodeCasesOfPythonRe) {
  EXPECT_EQ(contains("\xC4\xB0stanbul", {"istanbul"}), 1);  // İ matches i
  EXPECT_EQ(contains("ISTANBUL", {"\xC4\xB0stanbul"}), 1);
  EXPECT_EQ(contains("100 \xE2\x84\xAA", {"100 k"}), 1);  // Kelvin sign matches k
  EXPECT_EQ(contains("STRASSE", {"Stra\xC3\x9F"
                                 "e"}),
            0);  // ß does not match SS
  EXPECT_EQ(contains("stra\xC3\x9F"
                     "e",
                     {"STRASSE"}),
            0);
  EXPECT_EQ(contains("STRA\xE1\xBA\x9E"
                     "E",
                     {"stra\xC3\x9F"
                      "e"}),
            1);  // ẞ lowers to ß
  EXPECT_EQ(contains("\xC3\x89"
                     "cole",
                     {"\xC3\xA9"
                      "cole"}),
            1);
}

TEST(EvalMetric, Mean) {
  EXPECT_DOUBLE_EQ(mean_score({1, 0, 1, 1}), 0.75);
  EXPECT_DOUBLE_EQ(mean_score({0}), 0.0);
  EXPECT_THROW(mean_score({}), Error);
}
