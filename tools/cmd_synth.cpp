// tools/cmd_synth.cpp — `jrt synth mqar|disjoint|sweep`: train and evaluate a model on a synthetic recall
// task (synthetics-spec), or run a sweep from a YAML file into a CSV. Every run ends with the line
//   accuracy=<float> state_bytes=<int> params=<int>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "synth/experiment.h"
#include "synth/sweep.h"
#include "tools/cli.h"

namespace jrt::cli {
namespace {

struct SynthArgs {
  synth::Experiment e;
  double weight_decay = 0.1;
  bool no_progress = false, rms_norm = false, random_fill = false, decay_all = false;
  std::string sweep_file, csv = "sweep.csv", train_shapes, test_shapes, sweep_device;
};

// Flags shared by `synth mqar` and `synth disjoint`.
void add_common(CLI::App* c, SynthArgs& a) {
  synth::Experiment& e = a.e;
  c->add_option("--mixer", e.model.mixer, "Sequence mixer: based, jrt, sliding, attention, mamba, baseconv")
      ->capture_default_str();
  c->add_option("--d-model", e.model.d_model, "Model width")->capture_default_str();
  c->add_option("--layers", e.model.n_layers, "Number of blocks (hybrids alternate BaseConv and the mixer)")
      ->capture_default_str();
  c->add_option("--feature-dim", e.model.feature_dim, "Taylor feature dim of based / jrt")->capture_default_str();
  c->add_option("--la-heads", e.model.la_heads, "Linear-attention heads of based / jrt")->capture_default_str();
  c->add_option("--heads", e.model.attn_heads, "Softmax-attention heads of attention / sliding")->capture_default_str();
  c->add_option("--window", e.model.window, "sliding: keys visible to the left of each query")->capture_default_str();
  c->add_option("--enc-length", e.model.enc_length, "jrt: prefix length read non-causally (0 = whole sequence)")
      ->capture_default_str();
  c->add_option("--d-state", e.model.d_state, "mamba: SSM state size")->capture_default_str();
  c->add_option("--mlp", e.model.mlp_hidden, "SwiGLU MLP hidden size per block (0 = no MLP, as Zoology)")
      ->capture_default_str();
  c->add_flag("--rms-norm", a.rms_norm, "RMSNorm instead of Zoology's LayerNorm (mamba always uses RMSNorm)");
  c->add_option("--train-examples", e.train_examples, "Training examples (per segment)")->capture_default_str();
  c->add_option("--train-shapes", a.train_shapes,
                "Several training segments instead of one: mqar seq_len x kv_pairs, disjoint |A| x |B|, e.g. "
                "64x4,128x8");
  c->add_option("--test-shapes", a.test_shapes,
                "Test segments (accuracy per slice; may be longer than training), e.g. 64x4,256x16");
  c->add_option("--test-examples", e.test_examples, "Test examples")->capture_default_str();
  c->add_option("--epochs", e.train.epochs, "Maximum epochs (training stops early at valid accuracy > --early-stop)")
      ->capture_default_str();
  c->add_option("--batch", e.batch, "Training batch size (sequences)")->capture_default_str();
  c->add_option("--test-batch", e.test_batch, "Evaluation batch size")->capture_default_str();
  c->add_option("--accum", e.train.accum, "Micro-batches accumulated per optimizer step")->capture_default_str();
  c->add_option("--lr", e.train.lr, "Peak learning rate")->capture_default_str();
  c->add_option("--min-lr", e.train.min_lr, "Learning rate at the end of the cosine")->capture_default_str();
  c->add_option("--warmup", e.train.warmup, "Warmup length (epochs, or steps with --per-step-schedule)")
      ->capture_default_str();
  c->add_flag(
      "--per-step-schedule", [&e](int64_t) { e.train.per_epoch_schedule = false; },
      "Cosine over optimizer steps instead of Zoology's per-epoch steps");
  c->add_option("--weight-decay", a.weight_decay, "AdamW weight decay")->capture_default_str();
  c->add_flag("--decay-all", a.decay_all,
              "Decay every parameter (Zoology's optimizer) instead of the reference LM trainer's groups (no decay on "
              "norms, biases, embeddings)");
  c->add_option("--clip", e.train.clip, "Gradient clipping to this global norm (0 = off, as Zoology)")
      ->capture_default_str();
  c->add_option("--early-stop", e.train.early_stop, "Stop after an epoch with valid accuracy above this (0 = never)")
      ->capture_default_str();
  c->add_option("--time-budget", e.train.time_budget_s, "Stop training after this many seconds (0 = none)")
      ->capture_default_str();
  c->add_option("--max-steps", e.train.max_steps, "Stop after this many optimizer steps (as if interrupted)");
  c->add_option("--seed", e.data_seed, "Data seed (train and test seeds derive from it)")->capture_default_str();
  c->add_option("--init-seed", e.init_seed, "Weight-init and batch-order seed")->capture_default_str();
  c->add_option("--threads", e.threads, "CPU threads (0 = all; small models run fastest on 1)")->capture_default_str();
  c->add_option(
       "--device", e.device,
       "cpu (fp32) or cuda (bf16 mixed precision with fp32 master weights); on either, the same seeds give the "
       "same run, bitwise (on the GPU: same GPU model, driver and binary)")
      ->capture_default_str();
  c->add_option("--log-every", e.train.log_every, "Per-step log line every N optimizer steps (0 = none)")
      ->capture_default_str();
  c->add_flag("--no-progress", a.no_progress, "No progress bar on stderr");
  c->add_option("--checkpoint", e.train.checkpoint, "Checkpoint file, rewritten after every epoch (atomically)");
  c->add_option("--checkpoint-every", e.train.checkpoint_every, "Also write the checkpoint every N steps");
  c->add_option("--resume", e.resume, "Continue from this checkpoint (same flags as the run that wrote it)");
  c->add_option("--out", e.out_dir, "Save the trained model here (config.json + model.safetensors)");
}

void finish_args(SynthArgs& a) {
  a.e.model.layer_norm = !a.rms_norm;
  a.e.train.adam.weight_decay = a.weight_decay;
  a.e.train.adam.decay_all = a.decay_all;
  a.e.train.progress = !a.no_progress;
  a.e.mqar.random_non_queries = a.random_fill;
  if (!a.train_shapes.empty()) a.e.train_shapes = synth::parse_shapes(a.train_shapes, "--train-shapes");
  if (!a.test_shapes.empty()) a.e.test_shapes = synth::parse_shapes(a.test_shapes, "--test-shapes");
}

void print_result(const synth::ExperimentResult& r) {
  std::printf("train: %lld steps, %lld epochs, %.1f s, %.0f tokens/s%s\n", (long long)r.train.steps,
              (long long)r.train.epochs, r.train.train_seconds, r.train.tokens_per_s,
              r.train.early_stopped ? " (early stop)" : "");
  std::printf("accuracy=%.6f state_bytes=%lld params=%lld\n", r.train.eval.accuracy, (long long)r.state_bytes,
              (long long)r.params);
  std::fflush(stdout);
}

Runner setup(CLI::App& app) {
  auto a = std::make_shared<SynthArgs>();
  // Defaults of the small CPU run (`jrt synth mqar` with no flags): a 2-layer Based model (d 64, Taylor
  // feature dim 16) that solves MQAR with 4 key-value pairs in 32 tokens (vocabulary 128, Zoology Fig. 2
  // data) to > 0.99 in 8-9 epochs of 10k examples: ~25 s at ~100k tokens/s on 2 cores (docs/results.md).
  synth::Experiment& e = a->e;
  e.mqar.vocab_size = 128;
  e.mqar.seq_len = 32;
  e.mqar.num_kv_pairs = 4;
  // Set disjointness defaults (applied in the runner unless given): vocabulary 64, |A| 2, |B| 4, 20k examples,
  // lr 3e-3 — one supervised position per sequence needs more examples than MQAR's four.
  e.disjoint.vocab_size = 64;
  e.disjoint.short_length = 2;
  e.disjoint.long_length = 4;
  e.model.mixer = "based";
  e.model.d_model = 64;
  e.model.feature_dim = 16;
  e.train_examples = 10000;
  e.test_examples = 500;
  e.batch = 64;
  e.test_batch = 100;
  e.train.epochs = 16;
  e.train.lr = 1e-2;
  e.train.log_every = 20;
  // One thread: at these sizes (2k-token batches, d 64) a step is ~20 ms and a second thread costs more in
  // synchronisation than it gains (measured 104k tokens/s on 1 thread vs 60k on 2, docs/results.md).
  e.threads = 1;

  auto* s = app.add_subcommand("synth", "Synthetic recall tasks: train and evaluate (mqar, disjoint) or sweep");
  s->require_subcommand(1);
  auto* mq = s->add_subcommand("mqar", "Multi-query associative recall (Zoology)");
  add_common(mq, *a);
  mq->add_option("--vocab", e.mqar.vocab_size, "Vocabulary (keys from [1, V/2), values from [V/2, V))")
      ->capture_default_str();
  mq->add_option("--seq-len", e.mqar.seq_len, "Sequence length (even)")->capture_default_str();
  mq->add_option("--kv-pairs", e.mqar.num_kv_pairs, "Key-value pairs per sequence (4 * kv_pairs <= seq_len)")
      ->capture_default_str();
  mq->add_option("--power-a", e.mqar.power_a, "Power-law exponent of the query placement")->capture_default_str();
  mq->add_flag("--random-fill", a->random_fill,
               "Replace the 0s between queries by random tokens (Zoology's default / Based-paper data; the default "
               "leaves them 0 as in Zoology Fig. 2)");
  auto* dj = s->add_subcommand("disjoint", "Set disjointness (JRT): output the one element common to A and B");
  // Its own lr / example defaults, shown in its --help (the runner applies them when the flags are absent).
  e.train.lr = 3e-3;
  e.train_examples = 20000;
  add_common(dj, *a);
  e.train.lr = 1e-2;
  e.train_examples = 10000;
  dj->add_option("--vocab", e.disjoint.vocab_size, "Vocabulary (4 special tokens, then the set elements)")
      ->capture_default_str();
  dj->add_option("--short-length", e.disjoint.short_length, "|A|, the first set")->capture_default_str();
  dj->add_option("--long-length", e.disjoint.long_length, "|B|, the second set")->capture_default_str();
  auto* sw = s->add_subcommand("sweep", "Run a grid of experiments from a YAML file; one CSV row per run");
  sw->add_option("file", a->sweep_file, "Sweep YAML (see synth/sweep.h)")->required();
  sw->add_option("--csv", a->csv, "Output CSV")->capture_default_str();
  sw->add_option("--threads", e.threads, "CPU threads (0 = all)")->capture_default_str();
  sw->add_flag("--no-progress", a->no_progress, "No progress bar on stderr");
  sw->add_option("--device", a->sweep_device, "cpu or cuda for every run (overrides the YAML's device key)");

  return [a, mq, dj, sw] {
    finish_args(*a);
    if (mq->parsed() || dj->parsed()) {
      a->e.task = mq->parsed() ? "mqar" : "disjoint";
      if (dj->parsed()) {
        if (dj->count("--lr") == 0) a->e.train.lr = 3e-3;
        if (dj->count("--train-examples") == 0) a->e.train_examples = 20000;
      }
      // The JRT repo shuffles set-disjointness batches every epoch; Zoology's MQAR keeps them in order.
      a->e.train.shuffle = a->e.task == "disjoint";
      synth::ExperimentResult r = synth::run_experiment(a->e, stdout);
      print_result(r);
      return 0;
    }
    std::ifstream f(a->sweep_file);
    JRT_CHECK(bool(f), "{}: cannot open the sweep file", a->sweep_file);
    std::stringstream ss;
    ss << f.rdbuf();
    synth::Experiment base = a->e;
    base.train.log_every = 0;
    auto runs = synth::expand_sweep(synth::parse_yaml_subset(ss.str(), a->sweep_file), a->sweep_file, base);
    for (auto& r : runs) {
      r.exp.train.shuffle = r.exp.task == "disjoint";
      if (!a->sweep_device.empty()) r.exp.device = a->sweep_device;
    }
    std::ofstream csv(a->csv);
    JRT_CHECK(bool(csv), "{}: cannot write the CSV", a->csv);
    csv << synth::csv_header() << "\n" << std::flush;
    std::printf("sweep: %zu runs -> %s\n", runs.size(), a->csv.c_str());
    for (size_t i = 0; i < runs.size(); ++i) {
      std::printf("[%zu/%zu] %s\n", i + 1, runs.size(), runs[i].label.c_str());
      std::fflush(stdout);
      synth::ExperimentResult r = synth::run_experiment(runs[i].exp, nullptr);
      csv << synth::csv_row(runs[i], r) << "\n" << std::flush;
      print_result(r);
    }
    return 0;
  };
}
JRT_REGISTER_COMMAND("synth", setup);

}  // namespace
}  // namespace jrt::cli
