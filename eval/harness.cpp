// eval/harness.cpp — see harness.h. The order of work follows the reference's lm-eval flow: build
// every request first (cut + template, dropped rows reported), generate sorted by descending prompt
// length in batches, restore the row order, score, aggregate.
#include "eval/harness.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/threads.h"
#include "eval/metric.h"
#include "eval/pystr.h"
#include "eval/synthetic.h"
#include "models/generate.h"
#include "models/gpu_model.h"

namespace jrt::eval {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string format_duration(double s) {
  if (!(s >= 0) || s > 1e7) return "--:--";
  const long t = long(s + 0.5);
  if (t >= 3600) return fmt::format("{}h{:02d}m{:02d}s", t / 3600, (t / 60) % 60, t % 60);
  return fmt::format("{}m{:02d}s", t / 60, t % 60);
}

// A progress bar on stderr: redrawn in place on a terminal, a line every ~10% otherwise.
class Progress {
 public:
  Progress(int64_t total, bool enabled) : total_(total), enabled_(enabled), tty_(isatty(2)), t0_(Clock::now()) {
    draw(true);
  }
  void advance(int64_t n) {
    done_ += n;
    draw(done_ == total_);
  }
  void finish() {
    if (enabled_ && tty_) std::fprintf(stderr, "\n");
  }

 private:
  void draw(bool force) {
    if (!enabled_) return;
    const int64_t decile = total_ > 0 ? done_ * 10 / total_ : 10;
    if (!tty_ && !force && decile == last_decile_) return;
    last_decile_ = decile;
    const double el = std::chrono::duration<double>(Clock::now() - t0_).count();
    const double rate = el > 0 ? double(done_) / el : 0;
    const double eta = rate > 0 ? double(total_ - done_) / rate : -1;
    const int width = 30;
    const int fill = total_ > 0 ? int(double(width) * double(done_) / double(total_)) : width;
    std::string bar(size_t(fill), '=');
    if (fill < width) bar += '>';
    bar.resize(size_t(width), ' ');
    std::fprintf(stderr, "%seval [%s] %lld/%lld %3d%% %.2f ex/s ETA %s elapsed %s%s", tty_ ? "\r" : "", bar.c_str(),
                 (long long)done_, (long long)total_, total_ > 0 ? int(100 * done_ / total_) : 100, rate,
                 done_ == total_ ? "0m00s" : format_duration(eta).c_str(), format_duration(el).c_str(),
                 tty_ ? "" : "\n");
    std::fflush(stderr);
  }
  int64_t total_, done_ = 0, last_decile_ = -1;
  bool enabled_, tty_;
  Clock::time_point t0_;
};

struct Example {
  size_t task = 0;
  const DataRow* row = nullptr;
  int64_t doc_id = 0;  // new_id: 1-based among the task's requests
  Prepared prep;
  FedTokens fed;
  std::string generation;
  int score = 0;
};

struct TaskRun {
  const TaskSpec* spec = nullptr;
  int64_t context_length = 0;
  std::string source;
  std::vector<DataRow> rows;
  std::vector<json> dropped;
};

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}


void write_text(const std::string& path, const std::string& text) {
  const fs::path p(path);
  if (p.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(p.parent_path(), ec);
  }
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  {
    std::ofstream f(tmp, std::ios::binary);
    JRT_CHECK(f.good(), "cannot write '{}'", path);
    f << text;
    f.close();
    JRT_CHECK(f.good(), "cannot write '{}'", path);
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  JRT_CHECK(!ec, "cannot write '{}': {}", path, ec.message());
}

}  // namespace

const Gpt2Tokenizer& model_tokenizer(const std::string& model_dir, std::optional<Gpt2Tokenizer>& own) {
  std::error_code ec;
  if (!model_dir.empty() && fs::exists(fs::path(model_dir) / "encoder.json", ec) &&
      fs::exists(fs::path(model_dir) / "vocab.bpe", ec)) {
    own.emplace(Gpt2Tokenizer::from_dir(model_dir));
    return *own;
  }
  return Gpt2Tokenizer::builtin();
}

std::vector<DataRow> read_jsonl(const std::string& path) {
  std::error_code ec;
  JRT_CHECK(fs::is_regular_file(path, ec), "data file '{}' not found", path);
  std::ifstream f(path, std::ios::binary);
  JRT_CHECK(f.good(), "cannot read data file '{}'", path);
  std::vector<DataRow> rows;
  std::string line;
  for (int64_t n = 1; std::getline(f, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank lines are not rows
    DataRow r;
    r.line = n;
    r.where = fmt::format("{}:{}", path, n);
    try {
      r.fields = json::parse(line);
    } catch (const json::exception& e) {
      fail("{}: not valid JSON: {}", r.where, e.what());
    }
    JRT_CHECK(r.fields.is_object(), "{}: a row must be a JSON object, got {}", r.where, r.fields.type_name());
    rows.push_back(std::move(r));
  }
  JRT_CHECK(!rows.empty(), "data file '{}' is empty (no JSON row)", path);
  return rows;
}

std::vector<DataRow> load_task_rows(const TaskSpec& t, const std::string& data_dir, uint64_t synth_seed,
                                    int64_t synth_rows) {
  if (data_dir.empty()) {
    JRT_CHECK(t.synthetic, "task '{}' needs its data: pass --data DIR holding {}.jsonl (spec §2.1 fields)", t.name,
              t.dataset);
    std::vector<DataRow> rows;
    int64_t i = 0;
    for (auto& j : eval::synth_rows(t.dataset, synth_seed, synth_rows)) {
      DataRow r;
      r.fields = std::move(j);
      r.line = ++i;
      r.where = fmt::format("{} (generated, seed {}):row {}", t.dataset, synth_seed, i);
      rows.push_back(std::move(r));
    }
    JRT_CHECK(!rows.empty(), "synthetic task '{}' asked for 0 rows", t.name);
    return rows;
  }
  return read_jsonl((fs::path(data_dir) / (t.dataset + ".jsonl")).string());
}

std::string prediction_text(const Gpt2Tokenizer& tok, std::span<const int64_t> ids) {
  std::string bytes;
  for (int64_t id : ids) {
    if (id < 0 || id >= tok.vocab_size()) continue;
    const int32_t i = int32_t(id);
    bytes += tok.decode(std::span<const int32_t>(&i, 1));
  }
  std::string text = clean_up_tokenization(utf8_lossy(bytes));
  const size_t nl = text.find('\n');
  if (nl != std::string::npos) text.resize(nl);
  return text;
}

bool ends_prediction(const Gpt2Tokenizer& tok, int64_t id) {
  if (id < 0 || id >= tok.vocab_size()) return false;
  const int32_t i = int32_t(id);
  return tok.decode(std::span<const int32_t>(&i, 1)).find('\n') != std::string::npos;
}

std::string default_samples_path(const std::string& output) {
  std::string base = output;
  if (base.size() >= 5 && base.compare(base.size() - 5, 5, ".json") == 0) base.resize(base.size() - 5);
  return base + ".samples.jsonl";
}

json run_eval(const EvalOptions& opt) {
  const auto t_start = Clock::now();
  use_gpu(opt.device);  // refuses an unusable --device before any work is done
  JRT_CHECK(!opt.output.empty(), "--output OUT.json is required");
  JRT_CHECK(opt.batch >= 1, "--batch must be >= 1, got {}", opt.batch);
  JRT_CHECK(opt.limit == -1 || opt.limit >= 1, "--limit must be >= 1 (or -1 for all rows), got {}", opt.limit);
  JRT_CHECK(!opt.tasks.empty(), "no task to run");
  std::vector<TaskRun> runs;
  for (const auto& name : opt.tasks) {
    TaskRun r;
    r.spec = &find_task(name);
    r.context_length = opt.context_length.value_or(r.spec->default_context_length);
    JRT_CHECK(r.context_length > kAnswerLength, "--context-length must be > {}, got {}", kAnswerLength,
              r.context_length);
    runs.push_back(std::move(r));
  }
  // Load every data file before the model: a bad file fails fast.
  for (auto& r : runs) {
    r.rows = load_task_rows(*r.spec, opt.data_dir, opt.synth_seed, opt.synth_rows);
    if (opt.limit > 0 && int64_t(r.rows.size()) > opt.limit) r.rows.resize(size_t(opt.limit));
    r.source = opt.data_dir.empty()
                   ? fmt::format("generated ({}, seed {}, {} rows)", r.spec->dataset, opt.synth_seed, opt.synth_rows)
                   : (fs::path(opt.data_dir) / (r.spec->dataset + ".jsonl")).string();
  }

  auto model = Model::load(opt.model_dir);
  const ModelConfig& cfg = model->config();
  std::optional<Gpt2Tokenizer> own_tok;
  const Gpt2Tokenizer& tok = model_tokenizer(opt.model_dir, own_tok);
  JRT_CHECK(model->vocab() >= tok.vocab_size(),
            "model '{}' has {} embedding rows; its GPT-2 tokenizer needs {} (ids 0..{})", opt.model_dir, model->vocab(),
            tok.vocab_size(), tok.vocab_size() - 1);
  const int64_t enc_length = cfg.arch == Arch::JRT ? cfg.la.enc_length : 0;

  // Requests.
  std::vector<Example> ex;
  for (size_t ti = 0; ti < runs.size(); ++ti) {
    auto& r = runs[ti];
    int64_t n = 0;
    for (const auto& row : r.rows) {
      Example e;
      e.task = ti;
      e.row = &row;
      e.prep = prepare_row(*r.spec, row.fields, r.context_length, tok, row.where);
      if (e.prep.dropped) {
        r.dropped.push_back(json{{"line", row.line}, {"reason", e.prep.drop_reason}});
        continue;
      }
      e.doc_id = ++n;
      e.fed = feed_tokens(e.prep.prompt, tok, enc_length);
      JRT_CHECK(!e.fed.ids.empty(), "{}: the prompt is empty (nothing to feed the model)", row.where);
      if (cfg.arch == Arch::Based && cfg.la.use_decay_proj && cfg.la.l_max > 0)
        JRT_CHECK(int64_t(e.fed.ids.size()) <= cfg.la.l_max,
                  "{} ({}): the prompt has {} tokens; this Based model's decay mask covers l_max = {} positions "
                  "(alt_mixer.l_max in {}); use a smaller --context-length",
                  row.where, r.spec->name, e.fed.ids.size(), cfg.la.l_max, cfg.source);
      ex.push_back(std::move(e));
    }
    if (opt.progress || !r.dropped.empty()) {
      std::string lines;
      for (size_t k = 0; k < r.dropped.size() && k < 10; ++k)
        lines += (k ? ", " : "") + std::to_string(r.dropped[k]["line"].get<int64_t>());
      if (r.dropped.size() > 10) lines += ", ...";
      std::fprintf(stderr, "%s: %zu rows from %s, C=%lld, %lld scored%s\n", r.spec->name.c_str(), r.rows.size(),
                   r.source.c_str(), (long long)r.context_length, (long long)n,
                   r.dropped.empty() ? ""
                                     : fmt::format(", {} dropped (answer of <= 1 character; the reference drops them "
                                                   "too): line {}",
                                                   r.dropped.size(), lines)
                                           .c_str());
    }
    JRT_CHECK(n > 0, "task '{}': every one of its {} rows was dropped; nothing to score", r.spec->name, r.rows.size());
  }

  // Generation, longest prompts first (as the reference's Collator), in batches.
  std::vector<size_t> order(ex.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return ex[a].fed.ids.size() > ex[b].fed.ids.size(); });
  std::unique_ptr<GpuModel> gpu;
  if (opt.device == "cuda") {
    int64_t longest = 0;
    for (const auto& e : ex) longest = std::max<int64_t>(longest, int64_t(e.fed.ids.size()));
    gpu = GpuModel::create(*model, GpuModelOptions{.slots = opt.batch, .max_seq = longest + kMaxGenToks});
  }
  const auto t_gen = Clock::now();
  double prefill_s = 0, decode_s = 0;
  int64_t prefill_toks = 0, decode_toks = 0;
  Progress bar(int64_t(ex.size()), opt.progress);
  for (size_t b = 0; b < order.size(); b += size_t(opt.batch)) {
    const size_t e_end = std::min(order.size(), b + size_t(opt.batch));
    std::vector<std::vector<int64_t>> prompts, masks;
    bool any_mask = false;
    for (size_t k = b; k < e_end; ++k) {
      prompts.push_back(ex[order[k]].fed.ids);
      masks.push_back(ex[order[k]].fed.mask);
      any_mask = any_mask || !masks.back().empty();
    }
    if (!any_mask) masks.clear();
    GenerateOptions go;
    go.max_new_tokens = kMaxGenToks;
    go.sampling.greedy = true;
    if (opt.early_stop) go.on_token = [&](int64_t, int64_t id) { return ends_prediction(tok, id); };
    GenerateResult g;
    if (gpu) {
      GpuDecoder dec(*gpu);
      g = generate(dec, prompts, masks, go);
    } else {
      g = generate(*model, prompts, masks, go);
    }
    prefill_s += g.prefill_seconds;
    decode_s += g.decode_seconds;
    prefill_toks += g.prefill_tokens;
    decode_toks += g.decode_tokens;
    for (size_t k = b; k < e_end; ++k) ex[order[k]].generation = prediction_text(tok, g.tokens[k - b]);
    bar.advance(int64_t(e_end - b));
  }
  bar.finish();
  const double gen_seconds = std::chrono::duration<double>(Clock::now() - t_gen).count();

  // Scores and outputs, in row order.
  json results = json::object(), configs = json::object(), versions = json::object(), nshot = json::object();
  std::string samples;
  std::vector<std::vector<int>> scores(runs.size());
  for (auto& e : ex) {
    e.score = contains(e.generation, e.prep.labels);
    scores[e.task].push_back(e.score);
    const auto& r = runs[e.task];
    json s = {{"task", r.spec->name},
              {"doc_id", e.doc_id},
              {"line", e.row->line},
              {"prompt", e.prep.prompt},
              {"prompt_tokens", e.fed.prompt_tokens},
              {"truncated_tokens", e.fed.truncated},
              {"padded_tokens", e.fed.padded},
              {"doc_tokens", e.prep.cut.doc_tokens},
              {"window", {e.prep.cut.start, e.prep.cut.end}},
              {"generation", e.generation},
              {"gold", e.prep.labels},
              {"contains", e.score}};
    samples += s.dump() + "\n";
  }
  for (size_t ti = 0; ti < runs.size(); ++ti) {
    const auto& r = runs[ti];
    const std::string& name = r.spec->name;
    results[name] = {{"alias", name},
                     {"contains,none", mean_score(scores[ti])},
                     {"contains_stderr,none", "N/A"},
                     {"samples", scores[ti].size()},
                     {"rows", r.rows.size()},
                     {"dropped", r.dropped.size()},
                     {"dropped_rows", r.dropped},
                     {"context_length", r.context_length}};
    configs[name] = {{"task", name},
                     {"dataset", r.spec->dataset},
                     {"data", r.source},
                     {"validation_split", "validation"},
                     {"output_type", "generate_until"},
                     {"generation_kwargs", {{"until", {"\n"}}, {"max_gen_toks", kMaxGenToks}, {"do_sample", false}}},
                     {"num_fewshot", 0},
                     {"metric_list", {{{"metric", "contains"}, {"aggregation", "mean"}, {"higher_is_better", true}}}},
                     {"context_key", r.spec->context_key},
                     {"answer_key", r.spec->answer_key},
                     {"twice", r.spec->twice},
                     {"context_length", r.context_length},
                     {"answer_length", kAnswerLength}};
    versions[name] = 1.0;
    nshot[name] = 0;
  }
  const double total_seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  std::string name = fs::path(opt.model_dir).lexically_normal().filename().string();
  if (name.empty()) name = fs::path(opt.model_dir).lexically_normal().parent_path().filename().string();
  const bool uniform_c = std::all_of(runs.begin(), runs.end(),
                                     [&](const TaskRun& r) { return r.context_length == runs[0].context_length; });
  json out = {
      {"results", results},
      {"configs", configs},
      {"versions", versions},
      {"n-shot", nshot},
      {"config",
       {{"model", "jrt"},
        {"model_args", "pretrained=" + opt.model_dir},
        {"batch_size", opt.batch},
        {"limit", opt.limit > 0 ? json(opt.limit) : json(nullptr)},
        {"device", opt.device},
        {"threads", num_threads()},
        {"synth_seed", opt.synth_seed}}},
      {"model",
       {{"name", name},
        {"path", opt.model_dir},
        {"arch", arch_name(cfg.arch)},
        {"params", param_count(cfg)},
        {"vocab", model->vocab()},
        {"enc_length", enc_length}}},
      {"context_length", uniform_c ? json(runs[0].context_length) : json(nullptr)},
      {"answer_length", kAnswerLength},
      {"cutting_context", true},
      {"max_length", kMaxLength},
      {"decode_mode", enc_length > 0 ? "default_left_pad" : "default"},
      {"tokenizer", "gpt2"},
      {"date", utc_now()},
      {"timing",
       {{"total_seconds", total_seconds},
        {"generate_seconds", gen_seconds},
        {"examples", ex.size()},
        {"prefill_seconds", prefill_s},
        {"prefill_tokens", prefill_toks},
        {"decode_seconds", decode_s},
        {"decode_tokens", decode_toks},
        {"seconds_per_100_examples", ex.empty() ? 0.0 : 100.0 * gen_seconds / double(ex.size())}}},
      {"samples_file", opt.samples.empty() ? default_samples_path(opt.output) : opt.samples},
  };
  write_text(opt.samples.empty() ? default_samples_path(opt.output) : opt.samples, samples);
  write_text(opt.output, out.dump(2) + "\n");
  return out;
}

}  // namespace jrt::eval
