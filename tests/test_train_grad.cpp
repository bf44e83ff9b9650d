// `jrt grad` reproduces each fixture's train_step.safetensors (the reference's loss and the autograd
// gradient of every parameter, models-spec §9 objective for JRT): per tensor
// max|grad - ref| <= 1e-4 * max|ref| + 1e-9 and |loss - ref| <= 1e-5, with exactly the fixture's keys.
// Also its bad-input errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "common/test_util.h"
#include "io/safetensors.h"

using namespace jrt;
using namespace jrt::test;

namespace {

std::string fixture(const std::string& fam) { return data_path("models/" + fam); }

void check_family(const std::string& fam) {
  const std::string out = temp_dir() + "/grad_" + fam + ".safetensors";
  auto r = run_jrt("grad --model " + fixture(fam) + " --input " + fixture(fam) + "/train_step.safetensors --output " +
                   out + " --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("loss="), std::string::npos);
  SafeTensorsFile got(out), ref(fixture(fam) + "/train_step.safetensors");
  const float lg = to_f32(got.get("loss")).ptr<float>()[0], lr = to_f32(ref.get("loss")).ptr<float>()[0];
  EXPECT_NEAR(lg, lr, 1e-5) << fam;
  if (fam == "jrt") {  // the two terms of the combined objective, separately
    EXPECT_NEAR(to_f32(got.get("loss_ntp")).ptr<float>()[0], to_f32(ref.get("loss_ntp")).ptr<float>()[0], 1e-5);
    EXPECT_NEAR(to_f32(got.get("loss_mlm")).ptr<float>()[0], to_f32(ref.get("loss_mlm")).ptr<float>()[0], 1e-5);
  }
  std::set<std::string> want, have;
  for (const auto& n : ref.names())
    if (n.rfind("grad.", 0) == 0) want.insert(n);
  for (const auto& n : got.names())
    if (n.rfind("grad.", 0) == 0) have.insert(n);
  EXPECT_EQ(have, want) << fam;
  int checked = 0;
  for (const auto& n : want) {
    if (!got.has(n)) continue;
    Diff d = compare(got.get(n), ref.get(n));
    EXPECT_LE(d.max_abs, 1e-4 * d.max_ref + 1e-9) << fam << " " << n << " max_rel " << d.max_rel();
    EXPECT_EQ(got.get(n).shape, ref.get(n).shape) << n;
    ++checked;
  }
  EXPECT_GT(checked, 30) << fam;
}

}  // namespace

TEST(CliGrad, ReproducesBasedTrainStep) { check_family("based"); }
TEST(CliGrad, ReproducesJrtTrainStepWithTheMlmObjective) { check_family("jrt"); }
TEST(CliGrad, ReproducesMambaTrainStep) { check_family("mamba"); }
TEST(CliGrad, ReproducesAttnTrainStep) { check_family("attn"); }

TEST(CliGrad, JrtWithoutTheMlmTermDiffers) {
  // The objective matters: plain next-token CE over every row is not the reference's loss.
  const std::string out = temp_dir() + "/grad_jrt_ntp.safetensors";
  auto r = run_jrt("grad --model " + fixture("jrt") + " --input " + fixture("jrt") +
                   "/train_step.safetensors --objective ntp --output " + out + " --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  SafeTensorsFile got(out), ref(fixture("jrt") + "/train_step.safetensors");
  EXPECT_GT(std::fabs(to_f32(got.get("loss")).ptr<float>()[0] - to_f32(ref.get("loss")).ptr<float>()[0]), 1e-2);
}

TEST(CliGrad, BadInputsAreClearErrors) {
  auto r = run_jrt("grad --model " + fixture("based") + " --input " + fixture("based") +
                   "/forward.safetensors --output " + temp_dir() + "/x.safetensors");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("labels"), std::string::npos) << r.err;
  r = run_jrt("grad --model /nonexistent --input " + fixture("based") + "/train_step.safetensors --output " +
              temp_dir() + "/x.safetensors");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent"), std::string::npos) << r.err;
}

TEST(CliGrad, UnusableDeviceIsRefusedBeforeReading) {
  const std::string out = temp_dir() + "/grad_dev.safetensors";
  const std::string args =
      "grad --model " + fixture("attn") + " --input " + fixture("attn") + "/train_step.safetensors --output " + out;
  auto r = run_jrt(args + " --device tpu");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--device must be cpu or cuda, got 'tpu'"), std::string::npos) << r.err;
  if (!gpu_available()) {  // with a GPU, --device cuda runs (tests/test_cuda_train_model.cpp)
    r = run_jrt(args + " --device cuda");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("--device cuda"), std::string::npos) << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(out));
}
