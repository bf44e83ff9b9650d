// `jrt synth` as a user runs it: tiny MQAR / disjointness runs that learn and end with the contract line
// `accuracy=<float> state_bytes=<int> params=<int>`; invalid task parameters fail with a clear message
// before any training step; a sweep writes its CSV; a saved model runs in `jrt forward`.
#include <gtest/gtest.h>

#include <regex>

#include "common/test_util.h"
#include "io/config.h"
#include "io/safetensors.h"
#include "io/state_size.h"

using namespace jrt;
using namespace jrt::test;

namespace {

const char* kTiny =
    " --vocab 32 --seq-len 16 --kv-pairs 2 --d-model 32 --feature-dim 8 --train-examples 4096 --test-examples 128"
    " --batch 32 --epochs 8 --lr 1e-2 --threads 2 --no-progress --log-every 8";

struct Final {
  double accuracy = -1;
  int64_t state_bytes = -1, params = -1;
};

Final parse_final(const std::string& out) {
  std::smatch m;
  Final f;
  static const std::regex re(R"(accuracy=([0-9.]+) state_bytes=([0-9]+) params=([0-9]+)\n)");
  if (std::regex_search(out, m, re)) {
    f.accuracy = std::stod(m[1]);
    f.state_bytes = std::stoll(m[2]);
    f.params = std::stoll(m[3]);
  }
  return f;
}

void expect_error_before_training(const std::string& args, const std::string& needle) {
  auto r = run_jrt(args);
  EXPECT_EQ(r.exit_code, 1) << args;
  EXPECT_NE(r.err.find(needle), std::string::npos) << args << "\n" << r.err;
  EXPECT_EQ(r.out.find("step "), std::string::npos) << "training started: " << r.out;
  EXPECT_EQ(r.out.find("accuracy="), std::string::npos);
}

}  // namespace

TEST(CliSynth, TinyMqarRunLearnsAndPrintsTheContractLine) {
  const std::string out = temp_dir() + "/mqar_model";
  auto r = run_jrt(std::string("synth mqar") + kTiny + " --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Final f = parse_final(r.out);
  ASSERT_GE(f.accuracy, 0) << r.out;
  EXPECT_GT(f.accuracy, 0.9) << r.out;  // chance is ~1/16
  EXPECT_NE(r.out.find("gnorm"), std::string::npos);
  EXPECT_NE(r.out.find("tok/s"), std::string::npos);
  EXPECT_NE(r.out.find("valid accuracy"), std::string::npos);
  ModelConfig c = load_config(out + "/config.json");
  EXPECT_EQ(f.params, param_count(c));
  EXPECT_EQ(f.state_bytes, model_state_bytes(c, StatePolicy::CpuFp32).at(16));
  // The saved model is an ordinary model folder for the inference engine.
  HostTensor ids(DType::I64, {1, 16});
  for (int64_t i = 0; i < 16; ++i) ids.ptr<int64_t>()[i] = (7 * i) % 32;
  write_safetensors(temp_dir() + "/ids.safetensors", {{"input_ids", ids.view()}});
  auto g = run_jrt("forward --model " + out + " --input " + temp_dir() + "/ids.safetensors --output " + temp_dir() +
                   "/logits.safetensors --threads 1");
  EXPECT_EQ(g.exit_code, 0) << g.err;
}

TEST(CliSynth, TinyDisjointRunForEveryMixerFamily) {
  for (std::string mixer : {"based", "jrt", "mamba", "attention", "sliding", "baseconv"}) {
    auto r = run_jrt("synth disjoint --mixer " + mixer +
                     " --vocab 24 --short-length 2 --long-length 4 --d-model 16 --feature-dim 4 --d-state 4"
                     " --train-examples 64 --test-examples 16 --batch 16 --epochs 1 --threads 1 --no-progress");
    ASSERT_EQ(r.exit_code, 0) << mixer << ": " << r.err;
    Final f = parse_final(r.out);
    EXPECT_GE(f.accuracy, 0.0) << mixer << ": " << r.out;
    EXPECT_GT(f.params, 0) << mixer;
    EXPECT_GT(f.state_bytes, 0) << mixer;
  }
}

TEST(CliSynth, InvalidTaskParametersFailBeforeTraining) {
  expect_error_before_training("synth mqar --seq-len 64 --kv-pairs 17", "--kv-pairs 17 do not fit in --seq-len 64");
  expect_error_before_training("synth mqar --seq-len 64 --vocab 40", "--vocab 40 is too small");
  expect_error_before_training("synth mqar --seq-len 3", "--seq-len must be even and >= 4");
  expect_error_before_training("synth mqar --kv-pairs 0", "--kv-pairs must be >= 1");
  expect_error_before_training("synth disjoint --vocab 24 --short-length 13", "--short-length 13");
  expect_error_before_training("synth disjoint --vocab 24 --long-length 9", "--long-length 9");
  expect_error_before_training("synth mqar --mixer transformer", "unknown --mixer 'transformer'");
  expect_error_before_training("synth mqar --d-model 33", "--d-model must be even");
  expect_error_before_training("synth mqar --mixer attention --heads 3", "--heads 3 must divide --d-model 64");
  if (!gpu_available())  // with a GPU, --device cuda trains (tests/test_cuda_train_model.cpp)
    expect_error_before_training("synth mqar --device cuda", "--device cuda");
  expect_error_before_training("synth mqar --device tpu", "--device must be cpu or cuda");
  expect_error_before_training("synth mqar --batch 0", "--batch must be >= 1");
  expect_error_before_training("synth mqar --lr 0", "--lr must be > 0");
  expect_error_before_training("synth mqar --test-shapes 32x4,64x20", "--kv-pairs 20 do not fit in --seq-len 64");
  expect_error_before_training("synth mqar --train-shapes 32-4", "--train-shapes: '32-4' is not a shape like 64x4");
}

TEST(CliSynth, SeveralSegmentsAreTrainedAndReportedPerSlice) {
  auto r = run_jrt(
      "synth mqar --vocab 64 --train-shapes 16x2,32x4 --test-shapes 16x2,48x6 --d-model 16 --feature-dim 4"
      " --train-examples 64 --test-examples 16 --batch 16 --epochs 1 --threads 1 --no-progress");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("in 2 / 2 segment(s)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("num_kv_pairs=2:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("num_kv_pairs=6:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("8 batches/epoch"), std::string::npos) << r.out;  // 2 segments x 64 / 16, never mixed
  // The state is measured at the longest test length: 48 tokens.
  EXPECT_GE(parse_final(r.out).accuracy, 0.0);
}

TEST(CliSynth, SweepWritesOneCsvRowPerRun) {
  const std::string yaml = temp_dir() + "/sweep.yaml", csv = temp_dir() + "/sweep.csv";
  write_file(yaml,
             "# tiny sweep\n"
             "task: mqar\n"
             "mixers: [based, mamba]\n"
             "d_model: [16]\n"
             "seq_len: [16]\n"
             "kv_pairs: [2]\n"
             "vocab: 32\n"
             "lr:\n"
             "  - 1e-2\n"
             "  - 3e-3\n"
             "seeds: [1]\n"
             "feature_dim: [4]\n"
             "d_state: 4\n"
             "epochs: 1\n"
             "train_examples: 64\n"
             "test_examples: 16\n"
             "batch: 16\n");
  auto r = run_jrt("synth sweep " + yaml + " --csv " + csv + " --threads 1 --no-progress");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string text = read_file(csv);
  std::vector<std::string> lines;
  size_t p = 0;
  while (p < text.size()) {
    size_t e = text.find('\n', p);
    lines.push_back(text.substr(p, e - p));
    p = e + 1;
  }
  ASSERT_EQ(lines.size(), 5u) << text;  // header + 2 mixers x 2 lrs
  EXPECT_EQ(lines[0].rfind("task,mixer,d_model", 0), 0u);
  EXPECT_EQ(lines[1].rfind("mqar,based,16,2,16,2,,,4,0.01,1,", 0), 0u) << lines[1];
  EXPECT_EQ(lines[3].rfind("mqar,mamba,16,2,16,2,,,,0.01,1,", 0), 0u) << lines[3];
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n') >= 4, true);

  write_file(yaml, "task: mqar\nmixers: [based]\nbogus: 3\n");
  r = run_jrt("synth sweep " + yaml + " --csv " + csv);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unknown key 'bogus'"), std::string::npos) << r.err;
  write_file(yaml, "task: mqar\nmixers: [based]\nseq_len: [64]\nkv_pairs: [40]\n");
  r = run_jrt("synth sweep " + yaml + " --csv " + csv);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--kv-pairs 40 do not fit"), std::string::npos) << r.err;
}
