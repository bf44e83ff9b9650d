// `jrt forward|generate|eval --device cuda` run as a user would (label cuda; skipped without a GPU):
// the GPU results against the CPU results of the same command on every fixture family (bf16 bounds
// of tests/test_cuda_models.cpp), and against the reference's generated ids.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>

#include <nlohmann/json.hpp>

#include "common/op_table.h"
#include "common/test_util.h"
#include "io/safetensors.h"

#ifdef JRT_HAVE_CUDA
#include "core/cuda_util.h"
#endif

#ifdef JRT_HAVE_CUDA
using namespace jrt;
using namespace jrt::test;

namespace {

std::string fixture(const std::string& fam) { return data_path("models/" + fam); }

std::vector<float> floats(const std::string& file, const std::string& key) {
  SafeTensorsFile f(file);
  return jrt::test::floats(f.get(key));
}

class CudaCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(CudaCli, ForwardMatchesCpu) {
  for (const char* fam : {"based", "jrt", "mamba", "attn"}) {
    const std::string in = fixture(fam) + "/forward.safetensors";
    const std::string g = temp_dir() + "/fwd_gpu_" + fam + ".safetensors";
    auto r = run_jrt("forward --model " + fixture(fam) + " --input " + in + " --device cuda --output " + g);
    ASSERT_EQ(r.exit_code, 0) << fam << ": " << r.err;
    op_report(std::string("cli.forward[") + fam + "]", "fixture input",
              op_error(floats(g, "logits"), floats(in, "logits")), 1e-3, 5e-2);
  }
  // JRT's masked left-padded prefix (the mask is read from attn_mask).
  const std::string in = fixture("jrt") + "/masked.safetensors", g = temp_dir() + "/fwd_gpu_masked.safetensors";
  auto r = run_jrt("forward --model " + fixture("jrt") + " --input " + in + " --device cuda --output " + g);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  op_report("cli.forward_masked[jrt]", "fixture input", op_error(floats(g, "logits"), floats(in, "logits")), 1e-3,
            5e-2);
}

TEST_F(CudaCli, GenerateMatchesReferenceIds) {
  for (const char* fam : {"jrt", "mamba", "attn"}) {
    // The fixtures' prompts: the first 64 tokens of `sequences`.
    SafeTensorsFile f(fixture(fam) + "/generate.safetensors");
    HostTensor s = HostTensor::copy_of(f.get("sequences"));
    const int64_t B = s.shape()[0], L = s.shape()[1];
    HostTensor p(DType::I64, {B, 64});
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < 64; ++t) p.ptr<int64_t>()[b * 64 + t] = s.ptr<int64_t>()[b * L + t];
    const std::string in = temp_dir() + "/prompt_" + fam + ".safetensors";
    write_safetensors(in, {{"prompt_ids", p.view()}});
    const std::string out = temp_dir() + "/gen_gpu_" + fam + ".safetensors";
    auto r = run_jrt("generate --model " + fixture(fam) + " --input " + in +
                     " --max-new-tokens 17 --greedy --quiet --device cuda --output " + out);
    ASSERT_EQ(r.exit_code, 0) << fam << ": " << r.err;
    // Greedy ids equal the reference's until a step where the reference's top-2 margin is within the bf16
    // error (test::near_tie, shared with test_cuda_models.cpp): there a flip is legitimate
    // (the jrt fixture's first step has margins of 0.2% and 0.05%), and every later step depends on the
    // token taken. The step logits are compared over the steps both runs took with the same tokens.
    SafeTensorsFile got(out);
    HostTensor gi = HostTensor::copy_of(got.get("gen_ids")), ri = HostTensor::copy_of(f.get("gen_ids"));
    ASSERT_EQ(gi.shape(), ri.shape());
    const int64_t N = ri.shape()[1];
    const std::vector<float> gl = floats(out, "step_logits"),
                             rl = floats(fixture(fam) + "/generate.safetensors", "step_logits");
    const int64_t V = int64_t(rl.size()) / (B * N);
    ASSERT_EQ(gl.size(), rl.size());
    float scale = 0;
    for (float x : rl) scale = std::max(scale, std::fabs(x));
    std::vector<float> g_same, r_same;
    int same = 0, checked = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < N; ++t) {
        const float* rrow = rl.data() + (b * N + t) * V;
        g_same.insert(g_same.end(), gl.data() + (b * N + t) * V, gl.data() + (b * N + t + 1) * V);
        r_same.insert(r_same.end(), rrow, rrow + V);
        const bool tie = near_tie(rrow, V, scale);
        const bool eq = gi.ptr<int64_t>()[b * N + t] == ri.ptr<int64_t>()[b * N + t];
        same += eq;
        if (!tie) {
          ++checked;
          EXPECT_TRUE(eq) << fam << " row " << b << " step " << t << ": a clear argmax differs";
        }
        if (tie || !eq) break;
      }
    op_report(std::string("cli.generate[") + fam + "]", "B=2 steps<=17 (until a near tie)", op_error(g_same, r_same),
              1e-3, 5e-2);
    std::printf("[%s] GPU greedy ids equal to the reference: %d (%d clear argmaxes checked)\n", fam, same, checked);
  }
}

TEST_F(CudaCli, EvalRunsOnTheGpu) {
  // The embedded synthetic recall set through the GPU model (a 3-layer JRT model with the GPT-2
  // vocabulary and random weights): same output contract as the CPU run.
  const std::string model = tiny_gpt2_vocab_model("jrt", 3);
  for (const char* dev : {"cpu", "cuda"}) {
    const std::string out = temp_dir() + "/eval_" + dev + "/out.json";
    auto r = run_jrt("eval --model " + model + " --tasks synth_fda,synth_fda_twice --synth-rows 6 --batch 4 --device " +
                     dev + " --output " + out);
    ASSERT_EQ(r.exit_code, 0) << dev << ": " << r.err;
    nlohmann::json res = nlohmann::json::parse(read_file(out));
    for (const char* t : {"synth_fda", "synth_fda_twice"}) EXPECT_EQ(res["results"][t]["samples"], 6) << dev << t;
    std::printf("[eval %s] %s\n", dev, r.out.c_str());
  }
}

}  // namespace
#endif

// Without a usable GPU (no device, or a build without CUDA) --device cuda is refused with a message
// that says why, before any output is written.
TEST(CudaCliWithoutGpu, RefusedClearly) {
#ifdef JRT_HAVE_CUDA
  if (jrt::cuda::available()) GTEST_SKIP() << "a CUDA device is present";
#endif
  using namespace jrt::test;
  const std::string model = data_path("models/mamba");
  const std::string out = temp_dir() + "/nogpu.safetensors";
  auto r = run_jrt("forward --model " + model + " --input " + model + "/forward.safetensors --device cuda --output " +
                   out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--device cuda"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out));
  r = run_jrt("generate --model " + model + " --prompt ' the' --device cuda");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--device cuda"), std::string::npos) << r.err;
}
