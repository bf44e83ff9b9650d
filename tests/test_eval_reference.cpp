// The C++ cutting + templates against an independent Python transcription of the reference
// (tests/data/eval/reference_prompts.py -> prompts.jsonl): randomised rows of every task family with
// Unicode case traps (İ, Kelvin sign, ß, ſ, final sigma), non-ASCII whitespace, clean-up patterns
// (" ,", " 's", " ' "), TriviaQA markers, absent answers (the context[:-1] quirk), NQ tok_pos
// fallbacks, multi-byte characters split by window edges, and drops, at C = 60, 120 and 1000.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "eval/tasks.h"

using namespace jrt;
using nlohmann::json;

TEST(EvalReference, EveryRowMatchesThePythonTranscription) {
  std::ifstream f(test::data_path("eval/prompts.jsonl"));
  ASSERT_TRUE(f.good());
  const auto& tok = Gpt2Tokenizer::builtin();
  std::string line;
  int rows = 0, prompts = 0, drops = 0;
  while (std::getline(f, line)) {
    json rec = json::parse(line);
    const std::string base = rec["task"];
    const json& row = rec["row"];
    ++rows;
    for (bool twice : {false, true}) {
      const auto& spec = eval::find_task(twice ? base + "_twice" : base);
      if (rec.value("dropped", false)) {
        auto p = eval::prepare_row(spec, row, 1000, tok, "row " + std::to_string(rows));
        EXPECT_TRUE(p.dropped) << line;
        EXPECT_FALSE(p.drop_reason.empty());
        ++drops;
        continue;
      }
      for (const auto& [c, want] : rec["by_context_length"].items()) {
        auto p = eval::prepare_row(spec, row, std::stoll(c), tok, "row " + std::to_string(rows));
        ASSERT_FALSE(p.dropped) << line;
        EXPECT_EQ(p.prompt, want[twice ? "twice" : "default"].get<std::string>())
            << spec.name << " C=" << c << " row " << rows << ": " << row.dump();
        ++prompts;
      }
    }
  }
  EXPECT_GE(rows, 60);
  EXPECT_GE(prompts, 300);
  EXPECT_GE(drops, 4);
}
