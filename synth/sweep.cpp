// synth/sweep.cpp — see sweep.h.
#include "synth/sweep.h"

#include <set>
#include <sstream>

#include "core/error.h"

namespace jrt::synth {

namespace {

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string unquote(std::string s) {
  s = trim(s);
  if (s.size() >= 2 && ((s.front() == '"' && s.back() == '"') || (s.front() == '\'' && s.back() == '\'')))
    s = s.substr(1, s.size() - 2);
  return s;
}

int64_t to_int(const std::string& v, const std::string& key, const std::string& src) {
  try {
    size_t n = 0;
    double d = std::stod(v, &n);
    if (n == v.size() && d == double(int64_t(d))) return int64_t(d);
  } catch (const std::logic_error&) {
  }
  fail("{}: '{}' must be an integer, got '{}'", src, key, v);
}

double to_double(const std::string& v, const std::string& key, const std::string& src) {
  try {
    size_t n = 0;
    double d = std::stod(v, &n);
    if (n == v.size()) return d;
  } catch (const std::logic_error&) {
  }
  fail("{}: '{}' must be a number, got '{}'", src, key, v);
}

}  // namespace

YamlMap parse_yaml_subset(const std::string& text, const std::string& source) {
  YamlMap m;
  std::istringstream in(text);
  std::string line, open_key;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (auto h = line.find('#'); h != std::string::npos) line = line.substr(0, h);
    const std::string t = trim(line);
    if (t.empty()) continue;
    if (t[0] == '-') {
      JRT_CHECK(!open_key.empty(), "{}:{}: a '- item' line outside a list", source, lineno);
      m[open_key].push_back(unquote(t.substr(1)));
      continue;
    }
    auto c = t.find(':');
    JRT_CHECK(c != std::string::npos && c > 0, "{}:{}: expected 'key: value', got '{}'", source, lineno, t);
    const std::string key = trim(t.substr(0, c)), val = trim(t.substr(c + 1));
    JRT_CHECK(!m.count(key), "{}:{}: key '{}' appears twice", source, lineno, key);
    open_key.clear();
    if (val.empty()) {
      m[key] = {};
      open_key = key;
    } else if (val.front() == '[') {
      JRT_CHECK(val.back() == ']', "{}:{}: unterminated list for '{}'", source, lineno, key);
      std::vector<std::string> items;
      std::istringstream li(val.substr(1, val.size() - 2));
      std::string item;
      while (std::getline(li, item, ','))
        if (!trim(item).empty()) items.push_back(unquote(item));
      m[key] = items;
    } else {
      m[key] = {unquote(val)};
    }
  }
  for (const auto& [k, v] : m) JRT_CHECK(!v.empty(), "{}: key '{}' has no value", source, k);
  return m;
}

std::vector<SweepRun> expand_sweep(const YamlMap& y, const std::string& src, const Experiment& base) {
  static const std::set<std::string> known = {
      "task",        "mixers",     "d_model",      "seq_len",      "kv_pairs", "short_length",   "long_length",
      "lr",          "seeds",      "feature_dim",  "vocab",        "epochs",   "train_examples", "test_examples",
      "batch",       "test_batch", "layers",       "window",       "d_state",  "enc_length",     "early_stop",
      "time_budget", "la_heads",   "heads",        "weight_decay", "power_a",  "random_fill",    "mlp",
      "threads",     "decay_all",  "train_shapes", "test_shapes",  "device"};
  for (const auto& [k, v] : y)
    JRT_CHECK(known.count(k),
              "{}: unknown key '{}' (known: task, mixers, d_model, seq_len, kv_pairs, short_length, "
              "long_length, lr, seeds, feature_dim, vocab, epochs, train_examples, test_examples, batch, test_batch, "
              "layers, window, d_state, enc_length, early_stop, time_budget, la_heads, heads, weight_decay, power_a, "
              "random_fill, mlp, threads, decay_all, train_shapes, test_shapes, device)",
              src, k);
  auto list = [&](const std::string& k, std::vector<std::string> def) { return y.count(k) ? y.at(k) : def; };
  auto one = [&](const std::string& k) -> const std::string* {
    if (!y.count(k)) return nullptr;
    JRT_CHECK(y.at(k).size() == 1, "{}: '{}' takes one value, got {}", src, k, y.at(k).size());
    return &y.at(k)[0];
  };
  Experiment e = base;
  if (auto v = one("task")) e.task = *v;
  JRT_CHECK(e.task == "mqar" || e.task == "disjoint", "{}: task must be mqar or disjoint, got '{}'", src, e.task);
  auto I = [&](const std::string& k, int64_t& dst) {
    if (auto v = one(k)) dst = to_int(*v, k, src);
  };
  auto D = [&](const std::string& k, double& dst) {
    if (auto v = one(k)) dst = to_double(*v, k, src);
  };
  int64_t vocab = e.task == "mqar" ? e.mqar.vocab_size : e.disjoint.vocab_size;
  I("vocab", vocab);
  e.mqar.vocab_size = e.disjoint.vocab_size = vocab;
  I("epochs", e.train.epochs);
  I("train_examples", e.train_examples);
  I("test_examples", e.test_examples);
  I("batch", e.batch);
  I("test_batch", e.test_batch);
  I("layers", e.model.n_layers);
  I("window", e.model.window);
  I("d_state", e.model.d_state);
  I("enc_length", e.model.enc_length);
  I("la_heads", e.model.la_heads);
  I("heads", e.model.attn_heads);
  I("mlp", e.model.mlp_hidden);
  D("early_stop", e.train.early_stop);
  D("time_budget", e.train.time_budget_s);
  D("weight_decay", e.train.adam.weight_decay);
  D("power_a", e.mqar.power_a);
  if (auto v = one("random_fill")) e.mqar.random_non_queries = *v == "true" || *v == "1";
  auto shape_list = [&](const std::string& k) {
    std::string joined;
    for (const auto& v : y.at(k)) joined += (joined.empty() ? "" : ",") + v;
    return parse_shapes(joined, src + ": " + k);
  };
  if (y.count("train_shapes")) {
    JRT_CHECK(!y.count("seq_len") && !y.count("kv_pairs") && !y.count("short_length") && !y.count("long_length"),
              "{}: give either train_shapes or the seq_len / kv_pairs (short_length / long_length) grid", src);
    e.train_shapes = shape_list("train_shapes");
  }
  if (y.count("test_shapes")) e.test_shapes = shape_list("test_shapes");
  if (auto v = one("decay_all")) e.train.adam.decay_all = *v == "true" || *v == "1";
  if (auto v = one("threads")) e.threads = int(to_int(*v, "threads", src));
  if (auto v = one("device")) e.device = *v;

  // Task shapes (zipped; a single value broadcasts).
  std::vector<std::pair<int64_t, int64_t>> shapes;
  const std::string ka = e.task == "mqar" ? "seq_len" : "short_length",
                    kb = e.task == "mqar" ? "kv_pairs" : "long_length";
  auto a = list(ka, {std::to_string(e.task == "mqar" ? e.mqar.seq_len : e.disjoint.short_length)});
  auto b = list(kb, {std::to_string(e.task == "mqar" ? e.mqar.num_kv_pairs : e.disjoint.long_length)});
  JRT_CHECK(a.size() == b.size() || a.size() == 1 || b.size() == 1,
            "{}: '{}' ({} values) and '{}' ({} values) are zipped: give the same number of values or one", src, ka,
            a.size(), kb, b.size());
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i)
    shapes.push_back({to_int(a[a.size() == 1 ? 0 : i], ka, src), to_int(b[b.size() == 1 ? 0 : i], kb, src)});

  std::vector<SweepRun> runs;
  for (const auto& mixer : list("mixers", {e.model.mixer}))
    for (const auto& dm : list("d_model", {std::to_string(e.model.d_model)}))
      for (const auto& [sa, sb] : shapes) {
        const bool taylor = mixer == "based" || mixer == "jrt";
        for (const auto& fd : taylor ? list("feature_dim", {std::to_string(e.model.feature_dim)})
                                     : std::vector<std::string>{std::to_string(e.model.feature_dim)})
          for (const auto& lr : list("lr", {fmt::format("{}", e.train.lr)}))
            for (const auto& seed : list("seeds", {std::to_string(e.data_seed)})) {
              SweepRun r;
              r.exp = e;
              r.exp.model.mixer = mixer;
              r.exp.model.d_model = to_int(dm, "d_model", src);
              r.exp.model.feature_dim = to_int(fd, "feature_dim", src);
              r.exp.train.lr = to_double(lr, "lr", src);
              const int64_t s = to_int(seed, "seeds", src);
              r.exp.data_seed = r.exp.init_seed = uint64_t(s);
              r.exp.train.seed = uint64_t(s);
              if (e.task == "mqar") {
                r.exp.mqar.seq_len = sa;
                r.exp.mqar.num_kv_pairs = sb;
              } else {
                r.exp.disjoint.short_length = sa;
                r.exp.disjoint.long_length = sb;
              }
              r.label = fmt::format("{} d={} {}={} {}={}{} lr={} seed={}", mixer, dm, ka, sa, kb, sb,
                                    taylor ? " f=" + fd : "", lr, seed);
              try {
                validate(r.exp);
              } catch (const Error& err) {
                fail("{}: run '{}': {}", src, r.label, err.what());
              }
              runs.push_back(std::move(r));
            }
      }
  return runs;
}

std::string csv_header() {
  return "task,mixer,d_model,layers,seq_len,kv_pairs,short_length,long_length,feature_dim,lr,seed,accuracy,"
         "state_bytes,params,epochs,steps,train_seconds,tokens_per_s,early_stopped";
}

std::string csv_row(const SweepRun& r, const ExperimentResult& res) {
  const Experiment& e = r.exp;
  const bool mq = e.task == "mqar";
  const bool taylor = e.model.mixer == "based" || e.model.mixer == "jrt";
  return fmt::format("{},{},{},{},{},{},{},{},{},{:g},{},{:.6f},{},{},{},{},{:.2f},{:.0f},{}", e.task, e.model.mixer,
                     e.model.d_model, e.model.n_layers, mq ? e.mqar.seq_len : e.disjoint.seq_len(),
                     mq ? std::to_string(e.mqar.num_kv_pairs) : std::string(),
                     mq ? std::string() : std::to_string(e.disjoint.short_length),
                     mq ? std::string() : std::to_string(e.disjoint.long_length),
                     taylor ? std::to_string(e.model.feature_dim) : std::string(), e.train.lr, e.data_seed,
                     res.train.eval.accuracy, res.state_bytes, res.params, res.train.epochs, res.train.steps,
                     res.train.train_seconds, res.train.tokens_per_s, res.train.early_stopped ? 1 : 0);
}

}  // namespace jrt::synth
