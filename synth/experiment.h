// synth/experiment.h — one synthetic-recall experiment end to end: validate every parameter (before
// any data is made or any step is taken), generate the train / test segments with disjoint seeds, build
// the model (synth/model.h) with Zoology's init, train (train/trainer.h) with Zoology's recipe by
// default (AdamW with decay on every parameter, constant lr within an epoch and a cosine over epochs,
// early stop at valid accuracy > 0.99), evaluate, and optionally save a model folder that the inference
// engine loads (config.json + model.safetensors).
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "synth/disjoint.h"
#include "synth/model.h"
#include "synth/mqar.h"
#include "train/trainer.h"

namespace jrt::synth {

struct Experiment {
  std::string task = "mqar";  // mqar | disjoint
  MqarConfig mqar;            // num_examples unused (train_examples / test_examples below)
  DisjointConfig disjoint;
  int64_t train_examples = 2000, test_examples = 200;  // per segment
  // More segments (Zoology's DataConfig lists several): shapes (seq_len, kv_pairs) for MQAR, (|A|, |B|) for
  // set disjointness. Empty: the one shape of mqar / disjoint above. Test shapes may be longer than every
  // training shape (length extrapolation); accuracy is reported per slice.
  std::vector<std::pair<int64_t, int64_t>> train_shapes, test_shapes;
  ModelOptions model;  // vocab_size / max_len are filled from the task
  TrainerOptions train;
  int64_t batch = 64, test_batch = 64;
  uint64_t data_seed = 123, init_seed = 123;
  int threads = 0;
  std::string device = "cpu";
  std::string out_dir;  // save config.json + model.safetensors here ("" = no)
  std::string resume;   // checkpoint to continue from ("" = fresh)
};

struct ExperimentResult {
  TrainResult train;
  int64_t state_bytes = 0;  // jrt's recurrent state of one sequence at the longest test length (fp32)
  int64_t params = 0;
  std::string config_json;
};

// "64x4,128x8" -> {(64, 4), (128, 8)}; `what` names the flag in errors.
std::vector<std::pair<int64_t, int64_t>> parse_shapes(const std::string& text, const std::string& what);

// Throws a jrt::Error naming the bad parameter; does nothing else.
void validate(const Experiment& e);

ExperimentResult run_experiment(const Experiment& e, std::FILE* log);

}  // namespace jrt::synth
