// synth/experiment.cpp — see experiment.h.
#include "synth/experiment.h"

#include <filesystem>
#include <fstream>

#include "core/threads.h"
#include "io/safetensors.h"
#include "io/state_size.h"
#include "synth/dataset.h"
#include "train/engine.h"
#include "train/train_model.h"

namespace jrt::synth {

namespace {

using Shape2 = std::pair<int64_t, int64_t>;

int64_t task_vocab(const Experiment& e) { return e.task == "mqar" ? e.mqar.vocab_size : e.disjoint.vocab_size; }

// The experiment with its task set to one segment shape.
Experiment with_shape(const Experiment& e, Shape2 s) {
  Experiment c = e;
  if (e.task == "mqar") {
    c.mqar.seq_len = s.first;
    c.mqar.num_kv_pairs = s.second;
  } else {
    c.disjoint.short_length = s.first;
    c.disjoint.long_length = s.second;
  }
  return c;
}

std::vector<Shape2> shapes(const Experiment& e, bool train) {
  const auto& v = train ? e.train_shapes : e.test_shapes;
  if (!v.empty()) return v;
  if (e.task == "mqar") return {{e.mqar.seq_len, e.mqar.num_kv_pairs}};
  return {{e.disjoint.short_length, e.disjoint.long_length}};
}

int64_t shape_len(const Experiment& e, Shape2 s) { return e.task == "mqar" ? s.first : s.first + s.second + 3; }

int64_t max_len(const Experiment& e, bool train_only) {
  int64_t L = 0;
  for (const auto& s : shapes(e, true)) L = std::max(L, shape_len(e, s));
  if (!train_only)
    for (const auto& s : shapes(e, false)) L = std::max(L, shape_len(e, s));
  return L;
}

ModelOptions resolved_model(const Experiment& e) {
  ModelOptions m = e.model;
  m.vocab_size = task_vocab(e);
  m.max_len = max_len(e, true);  // jrt's default prefix: the longest training sequence
  return m;
}

Segment make_segment(const Experiment& e, int64_t n, uint64_t seed) {
  if (e.task == "mqar") {
    MqarConfig c = e.mqar;
    c.num_examples = n;
    return make_mqar(c, seed);
  }
  DisjointConfig c = e.disjoint;
  c.num_examples = n;
  return make_disjoint(c, seed);
}

}  // namespace

std::vector<std::pair<int64_t, int64_t>> parse_shapes(const std::string& text, const std::string& what) {
  std::vector<std::pair<int64_t, int64_t>> out;
  size_t p = 0;
  while (p <= text.size()) {
    size_t e = text.find(',', p);
    if (e == std::string::npos) e = text.size();
    const std::string item = text.substr(p, e - p);
    const size_t x = item.find('x');
    bool ok = x != std::string::npos && x > 0 && x + 1 < item.size();
    int64_t a = 0, b = 0;
    if (ok) {
      try {
        size_t na = 0, nb = 0;
        a = std::stoll(item.substr(0, x), &na);
        b = std::stoll(item.substr(x + 1), &nb);
        ok = na == x && nb == item.size() - x - 1;
      } catch (const std::logic_error&) {
        ok = false;
      }
    }
    JRT_CHECK(ok, "synth: {}: '{}' is not a shape like 64x4 (a list is comma-separated: 64x4,128x8)", what, item);
    out.push_back({a, b});
    p = e + 1;
  }
  return out;
}

void validate(const Experiment& e) {
  JRT_CHECK(e.task == "mqar" || e.task == "disjoint", "synth: unknown task '{}' (mqar, disjoint)", e.task);
  JRT_CHECK(e.device == "cpu" || e.device == "cuda", "synth: --device must be cpu or cuda, got '{}'", e.device);
  JRT_CHECK(e.train_examples >= 1, "synth: --train-examples must be >= 1, got {}", e.train_examples);
  JRT_CHECK(e.test_examples >= 1, "synth: --test-examples must be >= 1, got {}", e.test_examples);
  JRT_CHECK(e.batch >= 1, "synth: --batch must be >= 1, got {}", e.batch);
  JRT_CHECK(e.test_batch >= 1, "synth: --test-batch must be >= 1, got {}", e.test_batch);
  JRT_CHECK(e.train.epochs >= 1, "synth: --epochs must be >= 1, got {}", e.train.epochs);
  JRT_CHECK(e.train.lr > 0, "synth: --lr must be > 0, got {}", e.train.lr);
  JRT_CHECK(e.train.accum >= 1, "synth: --accum must be >= 1, got {}", e.train.accum);
  for (bool train : {true, false})
    for (const auto& s : shapes(e, train)) {
      const Experiment c = with_shape(e, s);
      if (e.task == "mqar")
        validate(c.mqar);
      else
        validate(c.disjoint);
    }
  ModelOptions m = resolved_model(e);
  if (m.mixer == "sliding") JRT_CHECK(m.window >= 1, "synth: --window must be >= 1, got {}", m.window);
  // Bad model options, then a device that cannot train this model: before any run of a sweep starts.
  check_train_device(e.device, model_config(m));
}

ExperimentResult run_experiment(const Experiment& e, std::FILE* log) {
  validate(e);
  set_num_threads(e.threads);
  ExperimentResult r;
  const ModelOptions mo = resolved_model(e);
  r.config_json = config_json(mo);
  const ModelConfig cfg = parse_config(r.config_json, "synth model config");

  std::vector<Segment> train_segs, test_segs;
  for (const auto& s : shapes(e, true))
    train_segs.push_back(
        make_segment(with_shape(e, s), e.train_examples, train_segment_seed(e.data_seed, int64_t(train_segs.size()))));
  for (const auto& s : shapes(e, false))
    test_segs.push_back(
        make_segment(with_shape(e, s), e.test_examples, test_segment_seed(e.data_seed, int64_t(test_segs.size()))));
  SegmentBatches train(std::move(train_segs), e.batch);
  SegmentBatches test(std::move(test_segs), e.test_batch);

  auto engine = make_train_engine(e.device, cfg, std::max(e.batch, e.test_batch),
                                  std::max(train.max_len(), test.max_len()), e.train.adam);
  engine->host().load(init_weights(cfg, e.init_seed));
  engine->push();
  r.params = engine->host().num_parameters();
  r.state_bytes = model_state_bytes(cfg, StatePolicy::CpuFp32).at(test.max_len());

  TrainerOptions to = e.train;
  to.config_json = r.config_json;
  Trainer trainer(*engine, train, &test, to);
  if (!e.resume.empty()) trainer.resume(e.resume);
  if (log)
    std::fprintf(
        log,
        "synth %s on %s: mixer %s (pattern %s), d_model %lld, %lld layers, params %lld, state %lld bytes, "
        "%lld train / %lld test examples of <= %lld / %lld tokens in %zu / %zu segment(s), %lld batches/epoch\n",
        e.task.c_str(), e.device.c_str(), mo.mixer.c_str(), cfg.pattern().c_str(), (long long)cfg.d_model,
        (long long)cfg.n_layer, (long long)r.params, (long long)r.state_bytes,
        (long long)(e.train_examples * int64_t(train.segments().size())),
        (long long)(e.test_examples * int64_t(test.segments().size())), (long long)train.max_len(),
        (long long)test.max_len(), train.segments().size(), test.segments().size(), (long long)train.num_batches());
  r.train = trainer.run(log);

  if (!e.out_dir.empty()) {
    namespace fs = std::filesystem;
    fs::create_directories(e.out_dir);
    {
      const std::string tmp = (fs::path(e.out_dir) / "config.json.tmp").string();
      std::ofstream f(tmp, std::ios::binary);
      f << r.config_json << "\n";
      f.close();
      JRT_CHECK(f.good(), "cannot write {}", tmp);
      fs::rename(tmp, fs::path(e.out_dir) / "config.json");
    }
    engine->pull();
    WeightStore ws = engine->host().weights();
    std::vector<NamedTensor> t;
    for (const auto& n : ws.names()) t.push_back({n, ws.get(n)});
    write_safetensors((fs::path(e.out_dir) / "model.safetensors").string(), t, {{"format", "pt"}});
  }
  return r;
}

}  // namespace jrt::synth
