// Task inventory, templates and cutting against hand-checked expected prompts for every task (default
// and twice), the drop rule, row validation errors, and what is fed to the model (left truncation to
// 2000 tokens, JRT-RNN left padding with token 220 under a 0 mask).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "eval/synthetic.h"
#include "eval/tasks.h"

using namespace jrt;
using namespace jrt::eval;
using nlohmann::json;

namespace {

const Gpt2Tokenizer& tok() { return Gpt2Tokenizer::builtin(); }

std::string prompt(const std::string& task, const json& row, int64_t c = 1000) {
  auto p = prepare_row(find_task(task), row, c, tok(), "test row");
  EXPECT_FALSE(p.dropped) << task << ": " << p.drop_reason;
  return p.prompt;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// The rows below are short, so at C = 1000 the window is the whole (stripped) document and only the
// decode clean-up (" ." -> ".", " ," -> ",") changes it.
const json kSwde = {
    {"doc_id", "1"},
    {"file_name", "movie.htm"},
    {"key", "year"},
    {"value", "1981"},
    {"text",
     "\nThe Evil Dead ( 1981 )\nDirected by Sam Raimi , who wrote it.\nYear:Year:Summary of information "
     "above...\ntitle: The Evil Dead\nyear:"}};
const json kFda = {{"doc_id", "2"},
                   {"file_name", "k123.txt"},
                   {"key", "purpose for submission"},
                   {"value", "New device"},
                   {"text",
                    "\n510(k) SUMMARY\nPurpose for submission: New device\nThe device is safe .\n..Purpose for "
                    "Submission:purpose for submission:"}};
const json kSquad = {
    {"doc_id", "3"},
    {"title", "Super_Bowl_50"},
    {"text",
     "Super Bowl 50 was an American football game . The Denver Broncos defeated the Carolina Panthers . The NFL team "
     "that represented the AFC at Super Bowl 50 was the "},
    {"value", "Denver Broncos"},
    {"context",
     "Super Bowl 50 was an American football game. The Denver Broncos defeated the Carolina Panthers. Question: Which "
     "NFL team represented the AFC at Super Bowl 50? Answer:"},
    {"question", "Which NFL team represented the AFC at Super Bowl 50?"}};
const json kTrivia = {
    {"context", "[DOC] [TLE] Lake Baikal [PAR] Lake Baikal is the deepest lake . It lies in Siberia . the lake is in"},
    {"question", " The lake is in "},
    {"answers", {"Siberia", "Russia"}},
    {"orig_question", "Where is Lake Baikal? "},
    {"doc_id", "4"}};
const json kDrop = {{"context", "The Bears scored 3 touchdowns . The Packers scored 2 . The Bears scored"},
                    {"question", "The Bears scored"},
                    {"answers", {"3", "three"}},
                    {"orig_question", "How many touchdowns did the Bears score:"}};
const json kNq = {{"id", "5"},
                  {"context", "The capital of France is Paris . The capital of France is"},
                  {"question", "the capital of France is"},
                  {"answers", {"Paris"}},
                  {"tok_pos", 3},
                  {"orig_question", "what is the capital of france"}};

}  // namespace

TEST(EvalTasks, InventoryAndDefaults) {
  for (std::string b : {"based_swde", "based_fda", "based_squad", "based_triviaqa", "based_drop", "based_nq_512",
                        "based_nq_1024", "based_nq_2048", "synth_fda", "synth_swde"}) {
    const auto& d = find_task(b);
    const auto& t = find_task(b + "_twice");
    EXPECT_FALSE(d.twice);
    EXPECT_TRUE(t.twice);
    EXPECT_EQ(d.dataset, b);
    EXPECT_EQ(t.dataset, b);
  }
  EXPECT_EQ(all_tasks().size(), 20u);
  EXPECT_EQ(find_task("based_fda").default_context_length, 1000);
  EXPECT_EQ(find_task("based_nq_1024").default_context_length, 1000);  // Table 1
  EXPECT_EQ(find_task("based_nq_512_twice").default_context_length, 2000);
  EXPECT_EQ(find_task("based_nq_2048").default_context_length, 2000);
  EXPECT_EQ(find_task("based_squad").context_key, "text");
  EXPECT_EQ(find_task("based_drop").context_key, "context");
  EXPECT_TRUE(find_task("based_triviaqa").answer_key.empty());
  EXPECT_EQ(find_task("based_nq_512").answer_key, std::vector<std::string>{"answers"});
  auto err = error_of([] { find_task("based_fdaa"); });
  EXPECT_NE(err.find("unknown task 'based_fdaa'"), std::string::npos) << err;
  EXPECT_NE(err.find("based_fda_twice"), std::string::npos) << err;
  EXPECT_EQ(expand_task_list("table1").size(), 12u);
  EXPECT_EQ(expand_task_list("table2").size(), 8u);
  EXPECT_EQ(expand_task_list(" synth , based_fda,synth_fda").size(), 5u);
  EXPECT_THROW(expand_task_list("based_fda,nope"), Error);
  EXPECT_THROW(expand_task_list(" , "), Error);
}

TEST(EvalTasks, SwdePrompts) {
  // The summary block is cut off, "Year:" removed from the end twice (case-insensitive), "." added.
  EXPECT_EQ(prompt("based_swde", kSwde), "The Evil Dead ( 1981 )\nDirected by Sam Raimi, who wrote it. Year:");
  EXPECT_EQ(prompt("based_swde_twice", kSwde),
            "Information about Year. The Evil Dead ( 1981 )\nDirected by Sam Raimi, who wrote it.\n"
            "The Evil Dead ( 1981 )\nDirected by Sam Raimi, who wrote it. Year:");
  EXPECT_EQ(prompt("synth_swde", kSwde), prompt("based_swde", kSwde));
  EXPECT_EQ(prompt("synth_swde_twice", kSwde), prompt("based_swde_twice", kSwde));
}

TEST(EvalTasks, FdaPrompts) {
  // FDA strips no whitespace: after the dots go, the text ends in "\n" and gets a "." after it.
  EXPECT_EQ(prompt("based_fda", kFda),
            "510(k) SUMMARY\nPurpose for submission: New device\nThe device is safe.\n. Purpose for submission:");
  EXPECT_EQ(prompt("based_fda_twice", kFda),
            "Information about Purpose for submission. 510(k) SUMMARY\nPurpose for submission: New device\nThe device "
            "is safe.\n.\n510(k) SUMMARY\nPurpose for submission: New device\nThe device is safe.\n. Purpose for "
            "submission:");
  EXPECT_EQ(prompt("synth_fda", kFda), prompt("based_fda", kFda));
  EXPECT_EQ(prompt("synth_fda_twice", kFda), prompt("based_fda_twice", kFda));
  // Q capitalises the first character with str.upper(): "ßize" -> "SSize:".
  json r = kFda;
  r["key"] = "\xC3\x9Fize";
  EXPECT_EQ(prompt("based_fda", r).substr(prompt("based_fda", r).size() - 7), " SSize:");
}

TEST(EvalTasks, SquadPrompts) {
  const std::string text =
      "Super Bowl 50 was an American football game. The Denver Broncos defeated the Carolina Panthers. The NFL team "
      "that represented the AFC at Super Bowl 50 was the";
  EXPECT_EQ(prompt("based_squad", kSquad), text);
  // Twice: question + the uncut paragraph before "Question:" (its trailing space kept) + "\n" + text.
  EXPECT_EQ(prompt("based_squad_twice", kSquad),
            "Which NFL team represented the AFC at Super Bowl 50? Super Bowl 50 was an American football game. The "
            "Denver Broncos defeated the Carolina Panthers. \n" +
                text);
}

TEST(EvalTasks, TriviaQaPrompts) {
  // Markers removed (their spaces stay), the trailing cloze removed case-insensitively, then re-added.
  EXPECT_EQ(prompt("based_triviaqa", kTrivia),
            "Lake Baikal  Lake Baikal is the deepest lake. It lies in Siberia. The lake is in");
  EXPECT_EQ(
      prompt("based_triviaqa_twice", kTrivia),
      "Where is Lake Baikal?  Lake Baikal  Lake Baikal is the deepest lake. It lies in Siberia.\nLake Baikal  Lake "
      "Baikal is the deepest lake. It lies in Siberia. The lake is in");
}

TEST(EvalTasks, DropPrompts) {
  EXPECT_EQ(prompt("based_drop", kDrop), "The Bears scored 3 touchdowns. The Packers scored 2. The Bears scored");
  // orig_question loses its ":"; a 1-character answer ("3") does not drop a DROP row (no answer_key).
  EXPECT_EQ(prompt("based_drop_twice", kDrop),
            "How many touchdowns did the Bears score The Bears scored 3 touchdowns. The Packers scored 2.\nThe Bears "
            "scored 3 touchdowns. The Packers scored 2. The Bears scored");
}

TEST(EvalTasks, NqPrompts) {
  for (std::string b : {"based_nq_512", "based_nq_1024", "based_nq_2048"}) {
    // Default removes the question once and case-sensitively: "the capital" != "The capital", so it stays.
    EXPECT_EQ(prompt(b, kNq), "The capital of France is Paris. The capital of France is. the capital of France is")
        << b;
    EXPECT_EQ(prompt(b + "_twice", kNq),
              "what is the capital of france The capital of France is Paris.\nThe capital of France is Paris. the "
              "capital of France is")
        << b;
  }
  json r = kNq;
  r["question"] = "The capital of France is";  // now the case matches: removed once
  EXPECT_EQ(prompt("based_nq_512", r), "The capital of France is Paris. The capital of France is");
}

TEST(EvalTasks, CuttingCentresTheWindowOnTheAnswer) {
  // Each word is one GPT-2 token: 505 734 1115 ... 8208 383 1271 318 (23 tokens).
  const std::string words =
      "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
      "eighteen nineteen twenty The number is";
  json row = {{"text", words}, {"value", "twelve"}, {"context", words}, {"question", "Q?"}};
  const auto& t = find_task("based_squad");
  // C = 60: 10 tokens, 5 before the anchor. The prefix "one ... eleven " ends in a space token (220), so the
  // anchor is token 12 and the window is [7, 17).
  auto cut = cut_context(t, row, 60, tok());
  EXPECT_EQ(cut.doc_tokens, 23);
  EXPECT_EQ(cut.answer_tok, 12);
  EXPECT_EQ(cut.start, 7);
  EXPECT_EQ(cut.end, 17);
  EXPECT_EQ(cut.text, " eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen");
  EXPECT_EQ(prompt("based_squad", row, 60), "eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen");
  // Near the head the window starts at 0 and takes the whole budget.
  row["value"] = "two";
  EXPECT_EQ(prompt("based_squad", row, 60), "one two three four five six seven eight nine ten");
  // Case-insensitive anchor.
  row["value"] = "TWENTY";
  EXPECT_EQ(prompt("based_squad", row, 60), "sixteen seventeen eighteen nineteen twenty The number is");
  // Answer absent: the reference tokenises context[:-1] ("... The number i", 23 tokens) as the anchor, which
  // leaves a window of only desired // 2 = 5 tokens at the end.
  row["value"] = "forty";
  cut = cut_context(t, row, 60, tok());
  EXPECT_EQ(cut.answer_pos, -1);
  EXPECT_EQ(cut.answer_tok, 23);
  EXPECT_EQ(prompt("based_squad", row, 60), "nineteen twenty The number is");
  // A large C keeps everything.
  EXPECT_EQ(prompt("based_squad", row, 1000), words);
}

TEST(EvalTasks, CuttingAnchorsSwdeFdaOnKeyOrValueWhicheverComesFirst) {
  const std::string words =
      "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
      "eighteen nineteen twenty";
  json row = {{"key", "four"}, {"value", "sixteen"}, {"text", words}};
  EXPECT_EQ(prompt("based_fda", row, 60), "one two three four five six seven eight nine ten. Four:");
  row["key"] = "eighteen";
  // The anchor is "sixteen" (token 16 with the prefix's trailing space): window [11, 20), FDA keeps its
  // leading space.
  EXPECT_EQ(prompt("based_fda", row, 60),
            " twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty. Eighteen:");
}

TEST(EvalTasks, CuttingNqTokPosFallbackAndTriviaHead) {
  const std::string words =
      "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
      "eighteen nineteen twenty The number is";
  json nq = {{"context", words},
             {"question", "The number is"},
             {"answers", {"forty"}},
             {"tok_pos", 3},
             {"orig_question", "which number"}};
  // Absent answer and more than C - 50 prefix tokens: the anchor is tok_pos (3): window [0, 10).
  EXPECT_EQ(prompt("based_nq_512", nq, 60), "one two three four five six seven eight nine ten. The number is");
  // With C = 1000 the prefix is short enough: tok_pos is not used.
  EXPECT_EQ(
      prompt("based_nq_512", nq, 1000),
      "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
      "eighteen nineteen twenty. The number is");
  // TriviaQA / DROP: the window is the head of the document.
  json tq = {{"context", words}, {"question", "The number is"}, {"answers", {"twenty"}}, {"orig_question", "Which?"}};
  EXPECT_EQ(prompt("based_triviaqa", tq, 60), "one two three four five six seven eight nine ten. The number is");
  EXPECT_EQ(prompt("based_drop", tq, 60), "one two three four five six seven eight nine ten. The number is");
}

TEST(EvalTasks, WindowEdgeSplittingACharacterGivesReplacementCharacter) {
  // "😀 smiles" is 47249 (F0 9F 98) 222 (80) 21845: a 1-token window decodes to U+FFFD.
  json tq = {
      {"context", "\xF0\x9F\x98\x80 smiles"}, {"question", "smiles"}, {"answers", {"joy"}}, {"orig_question", "?"}};
  EXPECT_EQ(prompt("based_triviaqa", tq, 51), "\xEF\xBF\xBD. smiles");
  EXPECT_EQ(prompt("based_triviaqa", tq, 52), "\xF0\x9F\x98\x80. smiles");
}

TEST(EvalTasks, RowsWithOneCharacterAnswersAreDropped) {
  const auto& fda = find_task("based_fda");
  json r = kFda;
  r["value"] = "5";
  auto p = prepare_row(fda, r, 1000, tok(), "x");
  EXPECT_TRUE(p.dropped);
  EXPECT_NE(p.drop_reason.find("'value'"), std::string::npos) << p.drop_reason;
  r = kFda;
  r["key"] = "k";  // the key is an answer_key field too
  EXPECT_TRUE(prepare_row(fda, r, 1000, tok(), "x").dropped);
  r["key"] = "";
  EXPECT_TRUE(prepare_row(fda, r, 1000, tok(), "x").dropped);
  json nq = kNq;
  nq["answers"] = {"X", "Paris"};  // only answers[0] is checked
  p = prepare_row(find_task("based_nq_1024_twice"), nq, 1000, tok(), "x");
  EXPECT_TRUE(p.dropped);
  EXPECT_NE(p.drop_reason.find("'answers'[0]"), std::string::npos) << p.drop_reason;
  nq["answers"] = {"Paris", "X"};
  EXPECT_FALSE(prepare_row(find_task("based_nq_1024_twice"), nq, 1000, tok(), "x").dropped);
  json sq = kSquad;
  sq["value"] = "\xC3\xA9";  // one character, two bytes
  EXPECT_TRUE(prepare_row(find_task("based_squad"), sq, 1000, tok(), "x").dropped);
  sq["value"] = "\xC3\xA9t";
  EXPECT_FALSE(prepare_row(find_task("based_squad"), sq, 1000, tok(), "x").dropped);
}

TEST(EvalTasks, BadRowsNameTheRowAndField) {
  auto err = [](const std::string& task, json row) {
    return error_of([&] { prepare_row(find_task(task), row, 1000, tok(), "data/x.jsonl:7"); });
  };
  json r = kFda;
  r.erase("key");
  std::string e = err("based_fda", r);
  EXPECT_NE(e.find("data/x.jsonl:7"), std::string::npos) << e;
  EXPECT_NE(e.find("missing field 'key'"), std::string::npos) << e;
  r = kFda;
  r["value"] = 1981;
  e = err("based_fda", r);
  EXPECT_NE(e.find("field 'value' must be a string, got number"), std::string::npos) << e;
  r = kNq;
  r["answers"] = json::array();
  EXPECT_NE(err("based_nq_512", r).find("'answers' is an empty list"), std::string::npos);
  r["answers"] = {"Paris", 3};
  EXPECT_NE(err("based_nq_512", r).find("'answers'[1] must be a string"), std::string::npos);
  r = kNq;
  r["tok_pos"] = "3";
  EXPECT_NE(err("based_nq_512", r).find("'tok_pos' must be an integer"), std::string::npos);
  r = kSwde;
  r["text"] = "no summary here";
  EXPECT_NE(err("based_swde", r).find("exactly once"), std::string::npos);
  r["text"] = "a Summary of information above... b Summary of information above... c";
  EXPECT_NE(err("based_swde", r).find("found 2"), std::string::npos);
  r = kDrop;
  r["question"] = "  ";
  EXPECT_NE(err("based_drop", r).find("'question' is empty"), std::string::npos);
  r = kDrop;
  r.erase("orig_question");
  EXPECT_EQ(err("based_drop", r), "");  // the default template does not read it
  EXPECT_NE(err("based_drop_twice", r).find("missing field 'orig_question'"), std::string::npos);
  json sq = kSquad;
  sq.erase("context");
  EXPECT_EQ(err("based_squad", sq), "");
  EXPECT_NE(err("based_squad_twice", sq).find("missing field 'context'"), std::string::npos);
  EXPECT_NE(err("based_fda", json::array({1})).find("must be a JSON object"), std::string::npos);
  EXPECT_THROW(prepare_row(find_task("based_fda"), kFda, 50, tok(), "x"), Error);  // C must exceed 50
}

TEST(EvalTasks, FedTokensTruncateLeftAndPadJrt) {
  // 2 tokens per "a b" pair: build a prompt longer than 2000 tokens.
  std::string longp;
  for (int i = 0; i < 1100; ++i) longp += " cat dog";  // " cat" 3797, " dog" 3290
  auto f = feed_tokens(longp, tok(), 0);
  EXPECT_EQ(f.prompt_tokens, 2200);
  EXPECT_EQ(f.truncated, 200);
  ASSERT_EQ(f.ids.size(), 2000u);
  EXPECT_TRUE(f.mask.empty());
  EXPECT_EQ(f.ids.front(), 3797);
  EXPECT_EQ(f.ids.back(), 3290);
  // JRT-RNN: a prompt below enc_length is left-padded with 220 under a 0 mask.
  auto j = feed_tokens("The capital of France is", tok(), 1024);
  EXPECT_EQ(j.prompt_tokens, 5);
  EXPECT_EQ(j.padded, 1019);
  ASSERT_EQ(j.ids.size(), 1024u);
  ASSERT_EQ(j.mask.size(), 1024u);
  for (size_t i = 0; i < 1019; ++i) {
    ASSERT_EQ(j.ids[i], kPadToken);
    ASSERT_EQ(j.mask[i], 0);
  }
  const std::vector<int64_t> tail(j.ids.begin() + 1019, j.ids.end());
  EXPECT_EQ(tail, (std::vector<int64_t>{464, 3139, 286, 4881, 318}));
  for (size_t i = 1019; i < 1024; ++i) EXPECT_EQ(j.mask[i], 1);
  // At or above enc_length: no padding and no mask (spec §12.3); truncation still applies.
  std::string p1024;
  for (int i = 0; i < 512; ++i) p1024 += " cat dog";
  auto k = feed_tokens(p1024, tok(), 1024);
  EXPECT_EQ(k.ids.size(), 1024u);
  EXPECT_EQ(k.padded, 0);
  EXPECT_TRUE(k.mask.empty());
  auto l = feed_tokens(longp, tok(), 1024);
  EXPECT_EQ(l.ids.size(), 2000u);
  EXPECT_TRUE(l.mask.empty());
  // A custom encoder length (fixture-sized JRT models).
  auto m = feed_tokens("hello", tok(), 8);
  EXPECT_EQ(m.ids, (std::vector<int64_t>{220, 220, 220, 220, 220, 220, 220, 31373}));
  EXPECT_EQ(m.mask, (std::vector<int64_t>{0, 0, 0, 0, 0, 0, 0, 1}));
}

TEST(EvalTasks, SyntheticRowsRunThroughTheRealTemplates) {
  for (std::string ds : {"synth_fda", "synth_swde"}) {
    auto rows = synth_rows(ds, 0, 40);
    ASSERT_EQ(rows.size(), 40u);
    for (size_t i = 0; i < rows.size(); ++i) {
      for (std::string task : {ds, ds + "_twice"}) {
        auto p = prepare_row(find_task(task), rows[i], 1000, tok(), ds + " row");
        ASSERT_FALSE(p.dropped) << task << " " << i;
        const std::string key = rows[i]["key"];
        const std::string Q = std::string(1, char(std::toupper(key[0]))) + key.substr(1) + ":";
        EXPECT_EQ(p.prompt.substr(p.prompt.size() - Q.size() - 1), " " + Q) << task << " " << i;
        EXPECT_EQ(p.prompt.find("Summary of information above"), std::string::npos);
        if (task.ends_with("_twice")) {
          EXPECT_EQ(p.prompt.rfind("Information about ", 0), 0u) << p.prompt;
        }
      }
    }
  }
}
