// synth/experiment.cpp — see experiment.h.
#include "synth/experiment.h"

#include <filesystem>
#include <fstream>

#include "core/threads.h"
#include "io/safetensors.h"
#include "io/state_size.h"
#include "synth/dataset.h"
#include "train/train_model.h"

namespace jrt::synth {

namespace {

int64_t task_len(const Experiment& e) { return e.task == "mqar" ? e.mqar.seq_len : e.disjoint.seq_len(); }
int64_t task_vocab(const Experiment& e) { return e.task == "mqar" ? e.mqar.vocab_size : e.disjoint.vocab_size; }

ModelOptions resolved_model(const Experiment& e) {
  ModelOptions m = e.model;
  m.vocab_size = task_vocab(e);
  m.max_len = task_len(e);
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

void validate(const Experiment& e) {
  JRT_CHECK(e.task == "mqar" || e.task == "disjoint", "synth: unknown task '{}' (mqar, disjoint)", e.task);
  JRT_CHECK(e.device == "cpu" || e.device == "cuda", "synth: --device must be cpu or cuda, got '{}'", e.device);
  JRT_CHECK(e.device == "cpu",
            "synth: --device cuda: GPU training is not available in this build (train on --device cpu)");
  JRT_CHECK(e.train_examples >= 1, "synth: --train-examples must be >= 1, got {}", e.train_examples);
  JRT_CHECK(e.test_examples >= 1, "synth: --test-examples must be >= 1, got {}", e.test_examples);
  JRT_CHECK(e.batch >= 1, "synth: --batch must be >= 1, got {}", e.batch);
  JRT_CHECK(e.test_batch >= 1, "synth: --test-batch must be >= 1, got {}", e.test_batch);
  JRT_CHECK(e.train.epochs >= 1, "synth: --epochs must be >= 1, got {}", e.train.epochs);
  JRT_CHECK(e.train.lr > 0, "synth: --lr must be > 0, got {}", e.train.lr);
  JRT_CHECK(e.train.accum >= 1, "synth: --accum must be >= 1, got {}", e.train.accum);
  if (e.task == "mqar") {
    MqarConfig c = e.mqar;
    c.num_examples = e.train_examples;
    validate(c);
  } else {
    DisjointConfig c = e.disjoint;
    c.num_examples = e.train_examples;
    validate(c);
  }
  ModelOptions m = resolved_model(e);
  if (m.mixer == "sliding") JRT_CHECK(m.window >= 1, "synth: --window must be >= 1, got {}", m.window);
  (void)model_config(m);  // throws on bad model options
}

ExperimentResult run_experiment(const Experiment& e, std::FILE* log) {
  validate(e);
  set_num_threads(e.threads);
  ExperimentResult r;
  const ModelOptions mo = resolved_model(e);
  r.config_json = config_json(mo);
  const ModelConfig cfg = parse_config(r.config_json, "synth model config");

  SegmentBatches train({make_segment(e, e.train_examples, train_segment_seed(e.data_seed, 0))}, e.batch);
  SegmentBatches test({make_segment(e, e.test_examples, test_segment_seed(e.data_seed, 0))}, e.test_batch);

  TrainModel<float> model(cfg, std::max(e.batch, e.test_batch), std::max(train.max_len(), test.max_len()));
  model.load(init_weights(cfg, e.init_seed));
  r.params = model.num_parameters();
  r.state_bytes = model_state_bytes(cfg, StatePolicy::CpuFp32).at(test.max_len());

  TrainerOptions to = e.train;
  to.config_json = r.config_json;
  Trainer trainer(model, train, &test, to);
  if (!e.resume.empty()) trainer.resume(e.resume);
  if (log)
    std::fprintf(log,
                 "synth %s: mixer %s (pattern %s), d_model %lld, %lld layers, params %lld, state %lld bytes, "
                 "%lld train / %lld test examples of %lld tokens, %lld batches/epoch\n",
                 e.task.c_str(), mo.mixer.c_str(), cfg.pattern().c_str(), (long long)cfg.d_model,
                 (long long)cfg.n_layer, (long long)r.params, (long long)r.state_bytes, (long long)e.train_examples,
                 (long long)e.test_examples, (long long)train.max_len(), (long long)train.num_batches());
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
    WeightStore ws = model.weights();
    std::vector<NamedTensor> t;
    for (const auto& n : ws.names()) t.push_back({n, ws.get(n)});
    write_safetensors((fs::path(e.out_dir) / "model.safetensors").string(), t, {{"format", "pt"}});
  }
  return r;
}

}  // namespace jrt::synth
