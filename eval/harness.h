// eval/harness.h — `jrt eval`: load the task rows (JSONL or the synthetic set), cut and template
// them, feed them to the model in batches (greedy, 48 new tokens, cut at the first "\n"), score
// `contains`, and write lm-eval-style results JSON plus a JSONL of every example.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/tasks.h"
#include "models/model.h"
#include "tokenizer/gpt2.h"

namespace jrt::eval {

// One line of a data file.
struct DataRow {
  nlohmann::json fields;
  int64_t line = 0;   // 1-based line number in the file (row index + 1 for generated rows)
  std::string where;  // "path:line" (or "synth_fda:row N") for messages
};

// The tokenizer of a model folder: its own encoder.json + vocab.bpe when it has them, else the
// embedded GPT-2 vocabulary (what every Hazy checkpoint uses). An empty dir gives the embedded one.
const Gpt2Tokenizer& model_tokenizer(const std::string& model_dir, std::optional<Gpt2Tokenizer>& own);

// Reads a JSONL data file: one JSON object per non-blank line. Throws naming file and line on bad
// JSON, and when the file is missing or holds no row.
std::vector<DataRow> read_jsonl(const std::string& path);

// The rows of one task's dataset: <data_dir>/<dataset>.jsonl, or, for a synthetic task with an empty
// data_dir, the generated rows (seed, rows).
std::vector<DataRow> load_task_rows(const TaskSpec& t, const std::string& data_dir, uint64_t synth_seed,
                                    int64_t synth_rows);

// The generated text turned into the prediction exactly as the reference does (spec §6.2, §12.1):
// decode the ids (special tokens as text; ids outside the tokenizer's vocabulary, i.e. padded
// embedding rows, contribute nothing, as HF's fast decode skips unknown ids), bytes -> str with
// U+FFFD replacement, clean_up_tokenization, then keep the text before the first "\n".
std::string prediction_text(const Gpt2Tokenizer& tok, std::span<const int64_t> ids);

// True when this generated token's bytes contain "\n": generation can stop there, since the
// prediction is the same as after all 48 tokens (the clean-up rules never span a "\n", and a "\n"
// byte is never part of a multi-byte character or of a replaced ill-formed sequence).
bool ends_prediction(const Gpt2Tokenizer& tok, int64_t id);

struct EvalOptions {
  std::string model_dir;
  std::vector<std::string> tasks;         // task names (already expanded)
  std::string data_dir;                   // empty: synthetic tasks are generated, others fail
  std::optional<int64_t> context_length;  // empty: each task's default
  int64_t limit = -1;                     // first N rows of each file (-1: all)
  int64_t batch = 8;
  std::string device = "cpu";
  std::string output;   // results JSON
  std::string samples;  // per-example JSONL (empty: output with .json replaced by .samples.jsonl)
  uint64_t synth_seed = 0;
  int64_t synth_rows = 100;
  bool progress = true;
  bool early_stop = true;  // stop a sequence at its "\n" (equivalent; see ends_prediction)
};

// The default samples path for an output path: "x.json" -> "x.samples.jsonl".
std::string default_samples_path(const std::string& output);

// Runs the evaluation and writes both files; returns the results JSON.
nlohmann::json run_eval(const EvalOptions& opt);

}  // namespace jrt::eval
