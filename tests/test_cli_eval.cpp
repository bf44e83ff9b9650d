// `jrt prompt`, `jrt eval`, `jrt eval collect` and `jrt eval synth` run as a user would: the prompt
// contract scripts rely on (exact text, no trailing newline, --ids, exit code 3 for a dropped row),
// the embedded default run, data folders, progress output, and the bad-input messages.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "eval/harness.h"
#include "eval/synthetic.h"
#include "eval/tasks.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "models/params.h"

using namespace jrt;
using namespace jrt::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string tiny_model(const std::string& family) { return tiny_gpt2_vocab_model(family, 3); }

std::string write_row(const std::string& name, const json& row) {
  const std::string p = temp_dir() + "/" + name + ".json";
  write_file(p, row.dump());
  return p;
}

std::string data_dir(const std::string& name, const std::string& dataset, const std::string& jsonl) {
  const std::string d = temp_dir() + "/" + name;
  fs::create_directories(d);
  write_file(d + "/" + dataset + ".jsonl", jsonl);
  return d;
}

const json kSquad = {{"text", "The capital of France is Paris . The capital of France is"},
                     {"value", "Paris"},
                     {"context", "The capital of France is Paris. Question: What is the capital of France?"},
                     {"question", "What is the capital of France?"}};

}  // namespace

TEST(CliPrompt, PrintsTheExactPromptWithoutTrailingNewline) {
  const std::string row = write_row("squad", kSquad);
  auto r = run_jrt("prompt --task based_squad --row " + row);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "The capital of France is Paris. The capital of France is");
  r = run_jrt("prompt --task based_squad_twice --row " + row);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "What is the capital of France? The capital of France is Paris. \nThe capital of France is Paris. The "
            "capital of France is");
  // From stdin, and with a context length that cuts the document (C = 55: 5 tokens, 2 before "Paris",
  // whose prefix ends in a space token).
  r = run_jrt("prompt --task based_squad --row - --context-length 55", kSquad.dump());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "is Paris. The capital");
}

TEST(CliPrompt, IdsAreWhatTheModelIsFed) {
  const std::string row = write_row("squad_ids", kSquad);
  auto r = run_jrt("prompt --task based_squad --row " + row + " --ids");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "464 3139 286 4881 318 6342 13 383 3139 286 4881 318\n");
  // A JRT model (enc_length 40 in this config) gets 28 pads of 220 in front.
  const std::string jrt = tiny_model("jrt");
  r = run_jrt("prompt --task based_squad --row " + row + " --ids --model " + jrt);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string want;
  for (int i = 0; i < 28; ++i) want += "220 ";
  EXPECT_EQ(r.out, want + "464 3139 286 4881 318 6342 13 383 3139 286 4881 318\n");
  EXPECT_NE(r.err.find("28 x token 220"), std::string::npos) << r.err;
  // Other architectures: no padding.
  r = run_jrt("prompt --task based_squad --row " + row + " --ids --model " + tiny_model("based"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "464 3139 286 4881 318 6342 13 383 3139 286 4881 318\n");
  // Left truncation to the last 2000 tokens.
  json big = kSquad;
  std::string text;
  for (int i = 0; i < 1100; ++i) text += " cat dog";
  big["text"] = "Paris" + text;  // the anchor at the head: the window is the whole 2201 tokens
  r = run_jrt("prompt --task based_squad --row " + write_row("big", big) + " --ids --context-length 3000");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  size_t n = 0;
  for (char ch : r.out) n += ch == ' ';
  EXPECT_EQ(n + 1, 2000u);
  EXPECT_NE(r.err.find("2201 prompt tokens, the first 201 cut"), std::string::npos) << r.err;
}

TEST(CliPrompt, DroppedRowExitsThree) {
  json row = kSquad;
  row["value"] = "P";
  auto r = run_jrt("prompt --task based_squad --row " + write_row("dropped", row));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("row dropped"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("'value'"), std::string::npos) << r.err;
}

TEST(CliPrompt, BadInput) {
  json row = kSquad;
  row.erase("text");
  const std::string p = write_row("missing", row);
  auto r = run_jrt("prompt --task based_squad --row " + p);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(p + ": missing field 'text'"), std::string::npos) << r.err;
  r = run_jrt("prompt --task based_sqaud --row " + write_row("ok", kSquad));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unknown task 'based_sqaud'"), std::string::npos) << r.err;
  write_file(temp_dir() + "/notjson.json", "{\"text\": ");
  r = run_jrt("prompt --task based_squad --row " + temp_dir() + "/notjson.json");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not valid JSON"), std::string::npos) << r.err;
  r = run_jrt("prompt --task based_squad --row " + temp_dir() + "/nope.json");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not found"), std::string::npos) << r.err;
  r = run_jrt("prompt --task based_squad --row " + write_row("ok3", kSquad) + " --model " + temp_dir() + "/no_model");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no_model/config.json"), std::string::npos) << r.err;
  r = run_jrt("prompt --task based_squad --row " + write_row("ok2", kSquad) + " --context-length 50");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("context length must be > 50"), std::string::npos) << r.err;
}

TEST(CliEval, EmbeddedDefaultRunsWithoutDownloads) {
  const std::string model = tiny_model("based");
  const std::string out = temp_dir() + "/default/out.json";
  auto r = run_jrt("eval --model " + model + " --output " + out + " --limit 2 --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json res = json::parse(read_file(out));
  for (std::string t : {"synth_fda", "synth_fda_twice", "synth_swde", "synth_swde_twice"}) {
    ASSERT_TRUE(res["results"].contains(t)) << t;
    EXPECT_EQ(res["results"][t]["samples"], 2);
    EXPECT_NE(r.out.find(t), std::string::npos);
  }
  EXPECT_EQ(res["config"]["batch_size"], 8);
  EXPECT_EQ(res["config"]["limit"], 2);
  EXPECT_EQ(res["model"]["name"], "cli_tiny_based");
  EXPECT_FALSE(res["date"].get<std::string>().empty());
  std::ifstream f(eval::default_samples_path(out));
  int lines = 0;
  for (std::string line; std::getline(f, line);) {
    json s = json::parse(line);
    EXPECT_TRUE(s.contains("prompt") && s.contains("generation") && s.contains("gold"));
    ++lines;
  }
  EXPECT_EQ(lines, 8);
  // Progress bar with rate and ETA, and the per-task lines.
  EXPECT_NE(r.err.find("8/8 100%"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ex/s ETA"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("synth_fda: 2 rows from generated"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("per 100 examples"), std::string::npos);
}

TEST(CliEval, SynthFilesGiveTheSameRunAsTheInMemorySet) {
  const std::string model = tiny_model("based");
  const std::string dir = temp_dir() + "/synth_files";
  auto r = run_jrt("eval synth --out " + dir + " --rows 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir + "/synth_fda.jsonl"));
  EXPECT_TRUE(fs::exists(dir + "/synth_swde.jsonl"));
  auto a = run_jrt("eval --model " + model + " --tasks synth_fda --data " + dir + " --output " + temp_dir() +
                   "/sf_a.json --threads 1 --no-progress");
  auto b = run_jrt("eval --model " + model + " --tasks synth_fda --synth-rows 3 --batch 1 --output " + temp_dir() +
                   "/sf_b.json --threads 1 --no-progress");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.err, "");  // --no-progress
  std::ifstream fa(temp_dir() + "/sf_a.samples.jsonl"), fb(temp_dir() + "/sf_b.samples.jsonl");
  std::string la, lb;
  int n = 0;
  while (std::getline(fa, la) && std::getline(fb, lb)) {
    json ja = json::parse(la), jb = json::parse(lb);
    EXPECT_EQ(ja["prompt"], jb["prompt"]);
    EXPECT_EQ(ja["generation"], jb["generation"]);
    ++n;
  }
  EXPECT_EQ(n, 3);
}

TEST(CliEval, DataFolderAndBadInput) {
  const std::string model = tiny_model("based");
  json ok = kSquad;
  json drop = kSquad;
  drop["value"] = "x";
  json missing = kSquad;
  missing.erase("value");
  // A dropped row is reported on stderr and in the results.
  std::string d = data_dir("data_ok", "based_squad", ok.dump() + "\n" + drop.dump() + "\n" + ok.dump() + "\n");
  std::string out = temp_dir() + "/data_ok.json";
  auto r = run_jrt("eval --model " + model + " --tasks based_squad,based_squad_twice --data " + d + " --output " + out +
                   " --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("based_squad: 3 rows from " + d + "/based_squad.jsonl, C=1000, 2 scored, 1 dropped"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("line 2"), std::string::npos) << r.err;
  json res = json::parse(read_file(out));
  EXPECT_EQ(res["results"]["based_squad"]["dropped"], 1);
  EXPECT_EQ(res["results"]["based_squad"]["samples"], 2);
  EXPECT_NE(r.out.find("based_squad            contains"), std::string::npos) << r.out;

  // A line missing a field: file, line and field named; nothing written.
  d = data_dir("data_missing", "based_squad", ok.dump() + "\n" + missing.dump() + "\n");
  out = temp_dir() + "/data_missing.json";
  r = run_jrt("eval --model " + model + " --tasks based_squad --data " + d + " --output " + out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(d + "/based_squad.jsonl:2: missing field 'value'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));

  // Empty data file, missing data file, unknown task, no --data for a reference task.
  d = data_dir("data_empty", "based_squad", "");
  r = run_jrt("eval --model " + model + " --tasks based_squad --data " + d + " --output " + out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("based_squad.jsonl' is empty"), std::string::npos) << r.err;
  r = run_jrt("eval --model " + model + " --tasks based_fda --data " + d + " --output " + out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("based_fda.jsonl' not found"), std::string::npos) << r.err;
  r = run_jrt("eval --model " + model + " --tasks based_fdx --data " + d + " --output " + out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unknown task 'based_fdx'"), std::string::npos) << r.err;
  r = run_jrt("eval --model " + model + " --tasks table1 --output " + out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("needs its data: pass --data DIR"), std::string::npos) << r.err;
  // Required flags and the device.
  r = run_jrt("eval --output " + out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--model DIR is required"), std::string::npos) << r.err;
  r = run_jrt("eval --model " + model);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--output OUT.json is required"), std::string::npos) << r.err;
  if (!gpu_available()) {  // with a GPU, eval --device cuda runs (tests/test_cuda_cli.cpp)
    r = run_jrt("eval --model " + model + " --output " + out + " --device cuda");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("--device cuda: CUDA backend not"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("rows from"), std::string::npos) << "refused before any work: " << r.err;
    EXPECT_FALSE(fs::exists(out));
  }
}

TEST(CliEval, CollectPrintsMarkdownAndCsv) {
  const std::string model = tiny_model("based");
  const std::string a = temp_dir() + "/col_a.json";
  auto r = run_jrt("eval --model " + model + " --tasks synth_fda,synth_fda_twice --limit 2 --output " + a +
                   " --threads 1 --no-progress");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json res = json::parse(read_file(a));
  const double d = 100 * res["results"]["synth_fda"]["contains,none"].get<double>();
  const double t = 100 * res["results"]["synth_fda_twice"]["contains,none"].get<double>();
  r = run_jrt("eval collect " + a);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string cell = fmt::format("{:.1f} / {:.1f}", d, t);
  EXPECT_NE(r.out.find("| model | synth_fda | average |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| cli_tiny_based | " + cell + " | " + cell + " |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("model,synth_fda,synth_fda_twice,average,average_twice\n"), std::string::npos) << r.out;
  r = run_jrt("eval collect --format csv " + a);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("model,", 0), 0u) << r.out;
  r = run_jrt("eval collect " + temp_dir() + "/nothing.json");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot read"), std::string::npos) << r.err;
  r = run_jrt("eval collect");
  EXPECT_NE(r.exit_code, 0);
}
