// Checkpoints: a run interrupted mid-epoch and resumed from its checkpoint ends bitwise identical to an
// uninterrupted run (parameters, and the optimizer moments in the final checkpoint); the same seeds give
// the same run; a checkpoint of another model is refused with a clear error; writes leave no temporary file.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/test_util.h"
#include "io/safetensors.h"
#include "synth/experiment.h"

using namespace jrt;
using namespace jrt::test;
namespace fs = std::filesystem;

namespace {

// A tiny set-disjointness run: shuffled batches, 2 micro-batches per step, clipping, warmup: every piece
// of trainer state matters for the resume.
synth::Experiment tiny(const std::string& name) {
  synth::Experiment e;
  e.task = "disjoint";
  e.disjoint.vocab_size = 40;
  e.disjoint.short_length = 3;
  e.disjoint.long_length = 5;
  e.train_examples = 48;
  e.test_examples = 16;
  e.batch = 8;
  e.test_batch = 16;
  e.model.mixer = "based";
  e.model.d_model = 16;
  e.model.feature_dim = 4;
  e.train.epochs = 3;
  e.train.accum = 2;
  e.train.clip = 1.0;
  e.train.warmup = 1;
  e.train.lr = 3e-3;
  e.train.shuffle = true;
  e.train.early_stop = 0;
  e.train.log_every = 0;
  e.train.progress = false;
  e.threads = 2;
  e.out_dir = temp_dir() + "/" + name;
  return e;
}

}  // namespace

TEST(TrainResume, InterruptedAndResumedRunIsBitwiseIdentical) {
  synth::Experiment full = tiny("full");
  full.train.checkpoint = temp_dir() + "/full.ckpt";
  auto rf = synth::run_experiment(full, nullptr);
  EXPECT_EQ(rf.train.steps, 3 * 3);  // 6 batches / 2 per step = 3 steps per epoch

  synth::Experiment part = tiny("part");
  part.train.checkpoint = temp_dir() + "/part.ckpt";
  part.train.max_steps = 4;  // stops in the middle of epoch 2, after a shuffled epoch boundary
  auto rp = synth::run_experiment(part, nullptr);
  EXPECT_TRUE(rp.train.interrupted);
  EXPECT_EQ(rp.train.steps, 4);
  ASSERT_TRUE(fs::exists(part.train.checkpoint));

  synth::Experiment cont = tiny("cont");
  cont.train.checkpoint = temp_dir() + "/cont.ckpt";
  cont.resume = part.train.checkpoint;
  auto rc = synth::run_experiment(cont, nullptr);
  EXPECT_EQ(rc.train.steps, 9);
  EXPECT_FALSE(bitwise_equal(saved_params(part.out_dir), saved_params(full.out_dir)));  // the check can fail
  EXPECT_TRUE(bitwise_equal(saved_params(cont.out_dir), saved_params(full.out_dir)));
  EXPECT_EQ(rc.train.eval.accuracy, rf.train.eval.accuracy);
  // Optimizer moments too.
  SafeTensorsFile a(full.train.checkpoint), b(cont.train.checkpoint);
  for (const auto& n : a.names()) {
    HostTensor x = to_f32(a.get(n)), y = to_f32(b.get(n));
    ASSERT_EQ(x.numel(), y.numel()) << n;
    EXPECT_EQ(std::memcmp(x.ptr<float>(), y.ptr<float>(), size_t(x.numel()) * 4), 0) << n;
  }
  EXPECT_EQ(a.metadata().at("step"), b.metadata().at("step"));
  EXPECT_EQ(a.metadata().at("rng"), b.metadata().at("rng"));
  for (const auto& e : fs::directory_iterator(temp_dir()))
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
}

TEST(TrainResume, SameSeedSameRunOtherSeedOtherRun) {
  auto a = tiny("seed_a"), b = tiny("seed_b"), c = tiny("seed_c");
  c.init_seed = 99;
  auto ra = synth::run_experiment(a, nullptr);
  auto rb = synth::run_experiment(b, nullptr);
  synth::run_experiment(c, nullptr);
  EXPECT_TRUE(bitwise_equal(saved_params(a.out_dir), saved_params(b.out_dir)));
  EXPECT_EQ(ra.train.eval.loss, rb.train.eval.loss);
  EXPECT_FALSE(bitwise_equal(saved_params(a.out_dir), saved_params(c.out_dir)));
}

TEST(TrainResume, CheckpointOfAnotherModelIsRefused) {
  synth::Experiment a = tiny("ck_a");
  a.train.checkpoint = temp_dir() + "/ck_a.ckpt";
  a.train.max_steps = 1;
  synth::run_experiment(a, nullptr);
  synth::Experiment b = tiny("ck_b");
  b.model.d_model = 32;
  b.resume = a.train.checkpoint;
  try {
    synth::run_experiment(b, nullptr);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ck_a.ckpt"), std::string::npos) << e.what();
  }
  synth::Experiment c = tiny("ck_c");
  c.resume = temp_dir() + "/missing.ckpt";
  EXPECT_THROW(synth::run_experiment(c, nullptr), Error);
}
