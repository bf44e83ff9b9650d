// train/trainer.h — the training loop: batches from a BatchSource, gradient accumulation, global-norm
// clipping, AdamW, a warmup + cosine schedule (per optimizer step, or per epoch as Zoology steps its
// CosineAnnealingLR), evaluation after every epoch with early stopping, a per-step log line and a
// progress bar with ETA, and checkpoints that resume bitwise identically (parameters, optimizer
// moments, data position, RNG state; train/checkpoint.h).
#pragma once
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "train/engine.h"
#include "train/optimizer.h"
#include "train/rng.h"
#include "train/train_model.h"

namespace jrt {

struct Batch {
  const int64_t* ids = nullptr;     // [B*L]
  const int64_t* labels = nullptr;  // [B*L], -100 = ignored
  int64_t B = 0, L = 0;
  int64_t slice = 0;  // index into BatchSource::slice_names() (evaluation breakdown)
};

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual int64_t num_batches() const = 0;
  virtual Batch batch(int64_t i) const = 0;
  virtual std::vector<std::string> slice_names() const { return {"all"}; }
};

struct TrainerOptions {
  double lr = 1e-3, min_lr = 0.0;
  int64_t warmup = 0;              // steps (or epochs with per_epoch_schedule)
  bool per_epoch_schedule = true;  // Zoology: lr constant within an epoch, cosine over epochs
  int64_t epochs = 1;
  int64_t accum = 1;  // micro-batches per optimizer step
  double clip = 0.0;  // global grad-norm clip (0: off)
  AdamWConfig adam;
  uint64_t seed = 123;       // batch-order shuffles
  bool shuffle = false;      // reshuffle the batch order every epoch
  double early_stop = 0.99;  // stop after an epoch whose eval accuracy is > this (<= 0: never)
  int64_t max_steps = -1;    // stop (as if interrupted) after this many optimizer steps in total
  double time_budget_s = 0;  // stop training after this many seconds (0: none); the model is still evaluated
  Objective objective;
  int64_t log_every = 10;  // per-step line every N optimizer steps (0: none)
  bool progress = true;    // progress bar on stderr when it is a terminal
  std::string checkpoint;  // checkpoint file ("" = none): written after every epoch and every checkpoint_every steps
  int64_t checkpoint_every = 0;
  std::string config_json;  // stored in checkpoints (and checked on resume)
};

struct EvalResult {
  double accuracy = 0, loss = 0;
  int64_t examples = 0;
  std::vector<std::pair<std::string, double>> slices;  // per slice accuracy
};

// Mean over examples of (correct supervised positions / supervised positions); examples without a
// supervised position are skipped. Loss: mean of the per-batch mean cross-entropies.
EvalResult evaluate(TrainEngine& m, const BatchSource& data, const Objective& obj = {});

struct TrainState {
  int64_t step = 0;    // optimizer steps done
  int64_t epoch = 0;   // current epoch
  int64_t batch = 0;   // next position in the epoch's batch order
  int64_t tokens = 0;  // tokens trained on
  double last_accuracy = -1;
  bool done = false;  // finished (early stop or all epochs)
  Rng rng;
};

struct TrainResult {
  EvalResult eval;  // last evaluation
  int64_t steps = 0, epochs = 0, tokens = 0;
  double train_seconds = 0, tokens_per_s = 0;
  bool early_stopped = false, interrupted = false;
};

class Trainer {
 public:
  // The engine's AdamW (its configuration and moments) is the optimizer; opt.adam is not used here.
  Trainer(TrainEngine& engine, const BatchSource& train, const BatchSource* test, TrainerOptions opt);
  // Continues from a checkpoint written by a run with the same model and data (throws on mismatch).
  void resume(const std::string& path);
  // Trains until the epochs are done, early stop, max_steps or the time budget; log lines go to `log`.
  TrainResult run(std::FILE* log);
  const TrainState& state() const { return st_; }
  AdamW& optimizer() { return m_.adam(); }
  void save(const std::string& path) const;

 private:
  std::vector<int64_t> epoch_order(int64_t epoch) const;
  TrainEngine& m_;
  const BatchSource& train_;
  const BatchSource* test_;
  TrainerOptions opt_;
  TrainState st_;
};

}  // namespace jrt
