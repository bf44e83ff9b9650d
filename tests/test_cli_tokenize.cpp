// Tests of `jrt tokenize` / `jrt detokenize`: ids on one line, raw text back, the fixture strings
// through both verbs, --split-special, --vocab, and errors that name the bad token.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>

#include "common/test_util.h"

using jrt::test::run_jrt;

namespace {
std::string join(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s += ' ';
    s += std::to_string(ids[i]);
  }
  return s;
}
}  // namespace

TEST(CliTokenize, TokenizePrintsOneLine) {
  auto r = run_jrt("tokenize", "Hello, world!");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "15496 11 995 0\n");
  r = run_jrt("tokenize", "line one\nline two\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1);
  r = run_jrt("tokenize", "");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "\n");
}

TEST(CliTokenize, DetokenizePrintsRawText) {
  auto r = run_jrt("detokenize", "15496 11 995 0");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Hello, world!");
  r = run_jrt("detokenize", "  15496\n11\t995   0\n\n");
  EXPECT_EQ(r.out, "Hello, world!");
  r = run_jrt("detokenize", "");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
}

TEST(CliTokenize, FixturesThroughBothVerbs) {
  std::ifstream f(jrt::test::data_path("tokenizer/gpt2.jsonl"));
  std::string line;
  int n = 0;
  while (std::getline(f, line) && n < 20) {
    auto j = nlohmann::json::parse(line);
    std::string text = j["text"].get<std::string>();
    auto ids = j["ids"].get<std::vector<int32_t>>();
    auto r = run_jrt("tokenize", text);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, join(ids) + "\n") << text;
    auto d = run_jrt("detokenize", r.out);
    ASSERT_EQ(d.exit_code, 0) << d.err;
    EXPECT_EQ(d.out, j["decoded"].get<std::string>());
    ++n;
  }
  EXPECT_EQ(n, 20);
}

TEST(CliTokenize, SplitSpecialAndVocabDir) {
  EXPECT_EQ(run_jrt("tokenize", "a<|endoftext|>").out, "64 50256\n");
  EXPECT_EQ(run_jrt("tokenize --split-special", "a<|endoftext|>").out, "64 27 91 437 1659 5239 91 29\n");
  std::string dir = std::string(JRT_SOURCE_DIR) + "/assets/gpt2";
  auto r = run_jrt("tokenize --vocab '" + dir + "'", "Hello, world!");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "15496 11 995 0\n");
  r = run_jrt("detokenize --vocab '" + dir + "'", "15496 11 995 0");
  EXPECT_EQ(r.out, "Hello, world!");
  r = run_jrt("tokenize --vocab /nonexistent/vocabdir", "x");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("/nonexistent/vocabdir"), std::string::npos) << r.err;
}

TEST(CliTokenize, BadInputIsAnErrorNamingTheToken) {
  for (std::string bad : {"abc", "60000", "-1", "12x", "99999999999999999999999", "50257"}) {
    auto r = run_jrt("detokenize", "15496 " + bad + " 0");
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_NE(r.err.find("'" + bad + "'"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << bad;
  }
  auto r = run_jrt("tokenize", "ok \xff");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("byte offset 3"), std::string::npos) << r.err;
}
