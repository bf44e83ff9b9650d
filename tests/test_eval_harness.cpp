// The harness: generation post-processing (decode, clean-up, cut at "\n") and the proof that stopping
// at the first newline token gives the same prediction as 48 tokens; JSONL loading errors; the
// synthetic generator's determinism; the collect table; and run_eval end to end on tiny random models
// with the full GPT-2 vocabulary (batching, early stop, drops, JRT-RNN padding, bad rows).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "core/error.h"
#include "core/threads.h"
#include "eval/collect.h"
#include "eval/harness.h"
#include "eval/metric.h"
#include "eval/synthetic.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "models/params.h"

using namespace jrt;
using namespace jrt::eval;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const Gpt2Tokenizer& tok() { return Gpt2Tokenizer::builtin(); }

std::vector<int64_t> ids_of(const std::string& s) {
  auto v = tok().encode(s);
  return {v.begin(), v.end()};
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A fixture family's config with the full GPT-2 vocabulary and random weights (prompts are real GPT-2
// text, so the bundled 1008-row fixtures cannot run them).
std::string tiny_model(const std::string& family, int64_t n_layer, const std::string& tag = "",
                       bool keep_l_max = false) {
  const fs::path dir = fs::path(test::temp_dir()) / ("tiny_" + family + tag);
  if (fs::exists(dir / "model.safetensors")) return dir.string();
  fs::create_directories(dir);
  json cfg = json::parse(test::read_file(test::data_path("models/" + family + "/config.json")));
  cfg["vocab_size"] = 50257;
  // The Based fixture's decay mask covers 128 positions (mixer.l_max, alt_mixer.l_max); eval prompts need
  // up to 2048.
  if (!keep_l_max)
    for (const char* k : {"mixer", "alt_mixer"})
      if (cfg.contains(k) && cfg[k].contains("l_max")) cfg[k]["l_max"] = 2048;
  cfg["n_layer"] = n_layer;
  test::write_file((dir / "config.json").string(), cfg.dump(1));
  ModelConfig c = parse_config(cfg.dump(), (dir / "config.json").string());
  WeightStore ws = random_weights(c, 11);
  std::vector<NamedTensor> ts;
  for (const auto& n : ws.names()) ts.push_back({n, ws.get(n)});
  write_safetensors((dir / "model.safetensors").string(), ts);
  return dir.string();
}

std::vector<json> read_lines(const std::string& path) {
  std::vector<json> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

EvalOptions small_run(const std::string& model, const std::string& name) {
  set_num_threads(1);  // tiny models: threads only add contention when ctest runs tests side by side
  EvalOptions o;
  o.model_dir = model;
  o.tasks = {"synth_fda", "synth_swde_twice"};
  o.limit = 3;
  o.batch = 2;
  o.synth_rows = 3;
  o.output = test::temp_dir() + "/" + name + ".json";
  o.progress = false;
  return o;
}

}  // namespace

TEST(EvalHarness, PredictionIsDecodedCleanedAndCutAtTheFirstNewline) {
  EXPECT_EQ(prediction_text(tok(), ids_of(" Smith , John\nMore text")), " Smith, John");
  EXPECT_EQ(prediction_text(tok(), ids_of("\nanything")), "");
  EXPECT_EQ(prediction_text(tok(), std::vector<int64_t>{}), "");
  // Special tokens stay as text; ids beyond the tokenizer (padded embedding rows) decode to nothing.
  EXPECT_EQ(prediction_text(tok(), std::vector<int64_t>{464, 50256, 50260, 3139}), "The<|endoftext|> capital");
  // A character split by the end of generation: U+FFFD.
  EXPECT_EQ(prediction_text(tok(), std::vector<int64_t>{47249}), "\xEF\xBF\xBD");
  EXPECT_EQ(prediction_text(tok(), std::vector<int64_t>{47249, 222}), "\xF0\x9F\x98\x80");
  EXPECT_TRUE(ends_prediction(tok(), 198));
  EXPECT_TRUE(ends_prediction(tok(), 628));
  EXPECT_FALSE(ends_prediction(tok(), 13));
  EXPECT_FALSE(ends_prediction(tok(), 50260));
}

TEST(EvalHarness, StoppingAtTheNewlineTokenEqualsGeneratingAll48) {
  // Tokens that matter: every token holding a "\n", partial UTF-8 bytes, the clean-up triggers.
  std::vector<int64_t> pool;
  for (int32_t id = 0; id < 50257; ++id)
    if (tok().decode(std::span<const int32_t>(&id, 1)).find('\n') != std::string::npos) pool.push_back(id);
  const size_t n_newline = pool.size();
  ASSERT_GE(n_newline, 3u);  // "\n", "\n\n", " \n"
  for (const std::string s : {" ,", " .", " '", "s", " n't", " 've", " Smith", "\xF0\x9F\x98\x80", "\xE6\xBC\xA2",
                              " caf\xC3\xA9", "?", " ?", "!", " 're", " 'm", " '"})
    for (int64_t id : ids_of(s)) pool.push_back(id);
  pool.push_back(50256);
  pool.push_back(50263);
  std::mt19937_64 rng(5);
  int stopped_early = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<int64_t> g(48);
    for (auto& x : g)
      x = rng() % 20 == 0 ? pool[rng() % n_newline] : pool[n_newline + rng() % (pool.size() - n_newline)];
    size_t stop = g.size();
    for (size_t i = 0; i < g.size(); ++i)
      if (ends_prediction(tok(), g[i])) {
        stop = i + 1;
        break;
      }
    stopped_early += stop < g.size();
    const std::string full = prediction_text(tok(), g);
    const std::string early = prediction_text(tok(), std::span<const int64_t>(g.data(), stop));
    ASSERT_EQ(full, early) << "trial " << trial;
  }
  EXPECT_GT(stopped_early, 1000);
}

TEST(EvalHarness, JsonlErrorsNameFileAndLine) {
  const std::string dir = test::temp_dir() + "/jsonl";
  fs::create_directories(dir);
  EXPECT_NE(error_of([&] { read_jsonl(dir + "/none.jsonl"); }).find("none.jsonl' not found"), std::string::npos);
  test::write_file(dir + "/empty.jsonl", "");
  EXPECT_NE(error_of([&] { read_jsonl(dir + "/empty.jsonl"); }).find("is empty"), std::string::npos);
  test::write_file(dir + "/blank.jsonl", "\n  \n\n");
  EXPECT_NE(error_of([&] { read_jsonl(dir + "/blank.jsonl"); }).find("is empty"), std::string::npos);
  test::write_file(dir + "/bad.jsonl", "{\"a\": 1}\n\n{\"a\": \n");
  std::string e = error_of([&] { read_jsonl(dir + "/bad.jsonl"); });
  EXPECT_NE(e.find("bad.jsonl:3: not valid JSON"), std::string::npos) << e;
  test::write_file(dir + "/arr.jsonl", "[1, 2]\n");
  e = error_of([&] { read_jsonl(dir + "/arr.jsonl"); });
  EXPECT_NE(e.find("arr.jsonl:1: a row must be a JSON object"), std::string::npos) << e;
  test::write_file(dir + "/ok.jsonl", "{\"a\": 1}\r\n\n{\"a\": 2}\n");
  auto rows = read_jsonl(dir + "/ok.jsonl");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].line, 3);
  EXPECT_EQ(rows[1].where, dir + "/ok.jsonl:3");
  const auto& fda = find_task("based_fda");
  e = error_of([&] { load_task_rows(fda, "", 0, 10); });
  EXPECT_NE(e.find("needs its data: pass --data DIR holding based_fda.jsonl"), std::string::npos) << e;
}

TEST(EvalHarness, SyntheticSetIsDeterministic) {
  auto a = synth_rows("synth_fda", 0, 30), b = synth_rows("synth_fda", 0, 30), c = synth_rows("synth_fda", 1, 30);
  auto longer = synth_rows("synth_fda", 0, 60);
  int differ = 0;
  for (size_t i = 0; i < 30; ++i) {
    EXPECT_EQ(a[i].dump(), b[i].dump());
    EXPECT_EQ(a[i].dump(), longer[i].dump());  // row i does not depend on the row count
    differ += a[i].dump() != c[i].dump();
  }
  EXPECT_EQ(differ, 30);
  // Pinned: the generator's output is part of the embedded default's contract (same seed, same rows,
  // on every platform). Changing the generator must change this test deliberately.
  auto swde = synth_rows("synth_swde", 0, 2);
  EXPECT_EQ(a[0]["doc_id"], "synth-fda-0000");
  EXPECT_EQ(a[0]["key"], "purpose for submission");
  EXPECT_EQ(a[0]["value"], "Change in sterilization method");
  EXPECT_EQ(a[0]["text"].get<std::string>().substr(0, 40), "510(k) SUMMARY\nSterimed Biomedical Inc.\n");
  EXPECT_EQ(swde[0]["key"], "country");
  EXPECT_EQ(swde[0]["value"], "Mexico");
  EXPECT_EQ(swde[0]["text"].get<std::string>().substr(0, 40), "The Golden Bridge (1985) - MovieHarbor\nH");
  for (std::string ds : {"synth_fda", "synth_swde"})
    for (const auto& r : synth_rows(ds, 3, 50)) {
      const std::string text = r["text"], value = r["value"];
      EXPECT_NE(text.find(value), std::string::npos);  // the answer is in the document
      EXPECT_GE(value.size(), 2u);                     // never dropped
    }
  EXPECT_THROW(synth_rows("synth_nq", 0, 3), Error);
  auto paths = write_synth(test::temp_dir() + "/synth_out", 0, 30);
  ASSERT_EQ(paths.size(), 2u);
  auto rows = read_jsonl(paths[0]);
  ASSERT_EQ(rows.size(), 30u);
  EXPECT_EQ(rows[7].fields.dump(), a[7].dump());
}

TEST(EvalHarness, CollectBuildsThePaperTable) {
  const std::string dir = test::temp_dir() + "/collect";
  fs::create_directories(dir);
  auto res = [](const std::string& model, std::vector<std::pair<std::string, double>> scores, int64_t c = 1000) {
    json r = json::object();
    for (auto& [t, s] : scores) r[t] = {{"contains,none", s}, {"context_length", c}};
    return json{{"results", r}, {"model", {{"name", model}}}}.dump();
  };
  test::write_file(dir + "/a.json",
                   res("based-1b", {{"based_fda", 0.602}, {"based_fda_twice", 0.683}, {"based_swde", 0.371}}));
  test::write_file(dir + "/b.json", res("based-1b", {{"based_swde_twice", 0.54}}));
  test::write_file(
      dir + "/c.json",
      res("mamba-1b",
          {{"based_fda", 0.419}, {"based_fda_twice", 0.557}, {"based_swde", 0.326}, {"based_swde_twice", 0.454}}));
  test::write_file(dir + "/d.json", res("mamba-1b", {{"based_fda", 0.5}}, 512));
  auto t = collect_results({dir + "/a.json", dir + "/b.json", dir + "/c.json", dir + "/d.json"});
  EXPECT_EQ(t.models, (std::vector<std::string>{"based-1b", "mamba-1b"}));
  EXPECT_EQ(t.columns, (std::vector<std::string>{"fda", "swde", "fda@512"}));
  EXPECT_TRUE(t.warnings.empty());
  EXPECT_EQ(to_markdown(t),
            "| model | fda | swde | fda@512 | average |\n"
            "|---|---|---|---|---|\n"
            "| based-1b | 60.2 / 68.3 | 37.1 / 54.0 | – / – | – / – |\n"
            "| mamba-1b | 41.9 / 55.7 | 32.6 / 45.4 | 50.0 / – | 41.5 / – |\n"
            "\ncells: default / JRT-Prompt (read twice), contains x 100; – = not run\n");
  EXPECT_EQ(to_csv(t),
            "model,fda,fda_twice,swde,swde_twice,fda@512,fda@512_twice,average,average_twice\n"
            "based-1b,60.2,68.3,37.1,54.0,,,,\n"
            "mamba-1b,41.9,55.7,32.6,45.4,50.0,,41.5,\n");
  auto t2 = collect_results({dir + "/a.json", dir + "/a.json"});
  EXPECT_EQ(t2.warnings.size(), 3u);  // overwritten cells are reported
  test::write_file(dir + "/bad.json", "{\"x\": 1}");
  EXPECT_NE(error_of([&] { collect_results({dir + "/bad.json"}); }).find("not a results file"), std::string::npos);
  EXPECT_NE(error_of([&] { collect_results({dir + "/none.json"}); }).find("cannot read"), std::string::npos);
}

TEST(EvalHarness, EndToEndOnATinyModel) {
  const std::string model = tiny_model("based", 3);
  EvalOptions o = small_run(model, "e2e");
  json res = run_eval(o);
  ASSERT_TRUE(res["results"].contains("synth_fda"));
  ASSERT_TRUE(res["results"].contains("synth_swde_twice"));
  for (const auto& [task, r] : res["results"].items()) {
    EXPECT_EQ(r["samples"], 3) << task;
    EXPECT_EQ(r["dropped"], 0);
    EXPECT_EQ(r["context_length"], 1000);
    EXPECT_GE(r["contains,none"].get<double>(), 0.0);
    EXPECT_LE(r["contains,none"].get<double>(), 1.0);
    EXPECT_EQ(r["contains_stderr,none"], "N/A");
  }
  EXPECT_EQ(res["model"]["arch"], "based");
  EXPECT_EQ(res["decode_mode"], "default");
  EXPECT_EQ(res["configs"]["synth_fda"]["generation_kwargs"]["max_gen_toks"], 48);
  EXPECT_EQ(json::parse(test::read_file(o.output)).dump(), res.dump());
  auto samples = read_lines(default_samples_path(o.output));
  ASSERT_EQ(samples.size(), 6u);
  auto rows = synth_rows("synth_fda", 0, 3);
  int scored = 0;
  for (const auto& s : samples) {
    if (s["task"] != "synth_fda") continue;
    const int64_t i = s["line"].get<int64_t>() - 1;
    auto p = prepare_row(find_task("synth_fda"), rows[size_t(i)], 1000, tok(), "x");
    EXPECT_EQ(s["prompt"], p.prompt);
    EXPECT_EQ(s["gold"], json(p.labels));
    EXPECT_EQ(s["doc_id"], i + 1);
    EXPECT_EQ(s["generation"].get<std::string>().find('\n'), std::string::npos);
    EXPECT_EQ(s["contains"], contains(s["generation"].get<std::string>(), p.labels));
    scored += s["contains"].get<int>();
  }
  EXPECT_NEAR(res["results"]["synth_fda"]["contains,none"].get<double>(), scored / 3.0, 1e-12);

  // Same predictions with batch 1, and without the early stop (48 tokens then the cut).
  EvalOptions o1 = small_run(model, "e2e_b1");
  o1.batch = 1;
  o1.early_stop = false;
  run_eval(o1);
  auto s1 = read_lines(default_samples_path(o1.output));
  ASSERT_EQ(s1.size(), samples.size());
  for (size_t i = 0; i < s1.size(); ++i) EXPECT_EQ(s1[i]["generation"], samples[i]["generation"]) << i;
}

TEST(EvalHarness, DroppedRowsAreReportedNotHidden) {
  const std::string model = tiny_model("based", 3);
  const std::string data = test::temp_dir() + "/drop_data";
  fs::create_directories(data);
  auto rows = synth_rows("synth_fda", 0, 4);
  rows[1]["value"] = "7";  // dropped like the reference does
  std::string text;
  for (auto& r : rows) text += r.dump() + "\n";
  test::write_file(data + "/synth_fda.jsonl", text);
  EvalOptions o = small_run(model, "drop");
  o.tasks = {"synth_fda"};
  o.limit = -1;
  o.data_dir = data;
  json res = run_eval(o);
  const auto& r = res["results"]["synth_fda"];
  EXPECT_EQ(r["rows"], 4);
  EXPECT_EQ(r["samples"], 3);
  EXPECT_EQ(r["dropped"], 1);
  EXPECT_EQ(r["dropped_rows"][0]["line"], 2);
  EXPECT_NE(r["dropped_rows"][0]["reason"].get<std::string>().find("'value'"), std::string::npos);
  EXPECT_EQ(read_lines(default_samples_path(o.output)).size(), 3u);

  // Every row dropped: an error, not a score over nothing.
  for (auto& x : rows) x["value"] = "7";
  text.clear();
  for (auto& x : rows) text += x.dump() + "\n";
  test::write_file(data + "/synth_fda.jsonl", text);
  EXPECT_NE(error_of([&] { run_eval(o); }).find("every one of its 4 rows was dropped"), std::string::npos);

  // A row missing a field stops the run naming file, line and field.
  rows = synth_rows("synth_fda", 0, 4);
  rows[2].erase("key");
  text.clear();
  for (auto& x : rows) text += x.dump() + "\n";
  test::write_file(data + "/synth_fda.jsonl", text);
  std::string e = error_of([&] { run_eval(o); });
  EXPECT_NE(e.find("synth_fda.jsonl:3: missing field 'key'"), std::string::npos) << e;
}

TEST(EvalHarness, JrtModelsGetTheLeftPaddingAndMask) {
  // The fixture JRT config has enc_length 40: synthetic prompts are longer (no padding); a short SQuAD
  // row gets padded to 40 with token 220.
  const std::string model = tiny_model("jrt", 3);
  const std::string data = test::temp_dir() + "/jrt_data";
  fs::create_directories(data);
  json row = {{"text", "The capital of France is Paris. The capital of France is"},
              {"value", "Paris"},
              {"context",
               "The capital of France is Paris. It is a large city on the Seine, with many museums and old bridges."},
              {"question", "What is the capital of France?"}};
  test::write_file(data + "/based_squad.jsonl", row.dump() + "\n");
  EvalOptions o = small_run(model, "jrt");
  o.tasks = {"based_squad", "based_squad_twice"};
  o.data_dir = data;
  json res = run_eval(o);
  EXPECT_EQ(res["model"]["arch"], "jrt");
  EXPECT_EQ(res["model"]["enc_length"], 40);
  EXPECT_EQ(res["decode_mode"], "default_left_pad");
  auto samples = read_lines(default_samples_path(o.output));
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(samples[0]["prompt_tokens"], 12);
  EXPECT_EQ(samples[0]["padded_tokens"], 28);
  EXPECT_EQ(samples[1]["padded_tokens"], 0);  // the twice prompt is longer than 40 tokens
  EXPECT_GT(samples[1]["prompt_tokens"].get<int64_t>(), 40);
}

TEST(EvalHarness, DeviceAndOptionErrors) {
  const std::string model = tiny_model("based", 3);
  EvalOptions o = small_run(model, "dev");
  o.device = "cuda";
  std::string e;
  if (!jrt::test::gpu_available()) {
    e = error_of([&] { run_eval(o); });
    EXPECT_NE(e.find("--device cuda: CUDA backend not"), std::string::npos) << e;
  }
  o.device = "tpu";
  EXPECT_NE(error_of([&] { run_eval(o); }).find("--device must be cpu or cuda"), std::string::npos);
  o = small_run(model, "dev");
  o.context_length = 40;
  EXPECT_NE(error_of([&] { run_eval(o); }).find("--context-length must be > 50"), std::string::npos);
  o = small_run(model, "dev");
  o.limit = 0;
  EXPECT_NE(error_of([&] { run_eval(o); }).find("--limit"), std::string::npos);
  // A Based model whose decay mask is shorter than the prompts.
  o = small_run(tiny_model("based", 3, "_lmax128", true), "dev");
  e = error_of([&] { run_eval(o); });
  EXPECT_NE(e.find("decay mask covers l_max = 128"), std::string::npos) << e;
  // The bundled fixtures have 1008 embedding rows: too few for GPT-2 ids.
  o = small_run(test::data_path("models/based"), "dev");
  e = error_of([&] { run_eval(o); });
  EXPECT_NE(e.find("embedding rows"), std::string::npos) << e;
}
