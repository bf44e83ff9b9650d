// The `jrt forward` / `jrt generate` contracts, run as a user would, on the shared fixtures; and the
// bad-input cases of the models issue: missing layer weights, shapes that disagree with the config,
// unknown architecture, token ids outside the vocabulary, prompts longer than the model allows.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <fstream>

#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "io/safetensors.h"

using namespace jrt;
using namespace jrt::test;
namespace fs = std::filesystem;

namespace {

std::string fixture(const std::string& fam) { return data_path("models/" + fam); }

// A model folder: the fixture's weights (symlinked) with an edited config.json.
std::string edited_model(const std::string& fam, const std::string& name,
                         const std::function<void(nlohmann::json&)>& edit) {
  fs::path dir = fs::path(temp_dir()) / name;
  fs::create_directories(dir);
  nlohmann::json cfg = nlohmann::json::parse(read_file(fixture(fam) + "/config.json"));
  edit(cfg);
  write_file((dir / "config.json").string(), cfg.dump(1));
  fs::remove(dir / "model.safetensors");
  fs::create_symlink(fs::absolute(fixture(fam) + "/model.safetensors"), dir / "model.safetensors");
  return dir.string();
}

TEST(CliForward, ReproducesFixtureLogitsForEveryFamily) {
  for (std::string fam : {"based", "jrt", "mamba", "attn"}) {
    std::string out = temp_dir() + "/fwd_" + fam + ".safetensors";
    auto r = run_jrt("forward --model " + fixture(fam) + " --input " + fixture(fam) + "/forward.safetensors --output " +
                     out + " --threads 1");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    SafeTensorsFile got(out), ref(fixture(fam) + "/forward.safetensors");
    EXPECT_EQ(got.get("logits").shape, ref.get("logits").shape);
    EXPECT_EQ(got.get("logits").dtype, DType::F32);
    EXPECT_LE(compare(got.get("logits"), ref.get("logits")).max_rel(), 1e-4) << fam;
  }
}

TEST(CliForward, JrtMaskKey) {
  std::string out = temp_dir() + "/fwd_masked.safetensors";
  auto r = run_jrt("forward --model " + fixture("jrt") + " --input " + fixture("jrt") +
                   "/masked.safetensors --mask-key attn_mask --output " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  SafeTensorsFile got(out), ref(fixture("jrt") + "/masked.safetensors");
  EXPECT_LE(compare(got.get("logits"), ref.get("logits")).max_rel(), 1e-4);
}

TEST(CliGenerate, ReproducesFixtureIdsAndStepLogits) {
  struct Case {
    std::string fam, file, extra;
  };
  for (const Case& c : {Case{"jrt", "generate.safetensors", ""}, Case{"mamba", "generate.safetensors", ""},
                        Case{"attn", "generate.safetensors", ""},
                        Case{"based", "generate_single_add.safetensors", ""},
                        Case{"jrt", "masked.safetensors", " --ids-key input_ids --mask-key attn_mask"}}) {
    std::string in = fixture(c.fam) + "/" + c.file;
    if (c.fam == "based") {
      // generate_single_add has no prompt_ids: cut them from the sequences.
      SafeTensorsFile f(in);
      HostTensor s = HostTensor::copy_of(f.get("sequences"));
      const int64_t B = s.shape()[0], L = s.shape()[1];
      HostTensor p(DType::I64, {B, 64});
      for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < 64; ++t) p.ptr<int64_t>()[b * 64 + t] = s.ptr<int64_t>()[b * L + t];
      in = temp_dir() + "/based_prompt.safetensors";
      write_safetensors(in, {{"prompt_ids", p.view()}});
    }
    const std::string& extra = c.extra;
    std::string out = temp_dir() + "/gen_" + c.fam + "_" + c.file;
    auto r = run_jrt("generate --model " + fixture(c.fam) + " --input " + in + extra +
                     " --max-new-tokens 17 --greedy --quiet --output " + out);
    ASSERT_EQ(r.exit_code, 0) << c.fam << ": " << r.err;
    SafeTensorsFile got(out), ref(fixture(c.fam) + "/" + c.file);
    HostTensor gi = HostTensor::copy_of(got.get("gen_ids")), ri = HostTensor::copy_of(ref.get("gen_ids"));
    ASSERT_EQ(gi.shape(), ri.shape());
    for (int64_t i = 0; i < gi.numel(); ++i) EXPECT_EQ(gi.ptr<int64_t>()[i], ri.ptr<int64_t>()[i]) << c.fam << " " << i;
    EXPECT_LE(compare(got.get("step_logits"), ref.get("step_logits")).max_rel(), 1e-4) << c.fam << " " << c.file;
  }
}

TEST(CliGenerate, SamplingIsSeededAndPromptTextWorks) {
  // Fixture vocabularies are 1008 rows, so a GPT-2 prompt must use ids below that: "the" = 1169 is
  // too large, "," = 11 and "!" = 0 are fine.
  std::string cmd = "generate --model " + fixture("mamba") + " --prompt ' the, of and.' --max-new-tokens 8 --temperature 0.8 "
                    "--top-k 50 --top-p 0.9 --seed 3 --output ";
  auto a = run_jrt(cmd + temp_dir() + "/s1.safetensors");
  auto b = run_jrt(cmd + temp_dir() + "/s2.safetensors");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(read_file(temp_dir() + "/s1.safetensors"), read_file(temp_dir() + "/s2.safetensors"));
  auto r = run_jrt("generate --model " + fixture("mamba") + " --prompt 'the' --max-new-tokens 2");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("1169"), std::string::npos) << r.err;  // names the id
}

TEST(CliModelsBadInput, MissingLayerWeights) {
  auto dir = edited_model("based", "nlayer8", [](nlohmann::json& c) { c["n_layer"] = 8; });
  auto r = run_jrt("forward --model " + dir + " --input " + fixture("based") + "/forward.safetensors --output " +
                   temp_dir() + "/x.safetensors");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("transformer.layers.7."), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not found"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(temp_dir() + "/x.safetensors"));
}

TEST(CliModelsBadInput, ShapeDisagreesWithConfig) {
  auto dir = edited_model("jrt", "ninner", [](nlohmann::json& c) { c["n_inner"] = 512; });
  auto r = run_jrt("forward --model " + dir + " --input " + fixture("jrt") + "/forward.safetensors --output " +
                   temp_dir() + "/x.safetensors");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("mlp.fc1.weight"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("[512, 64]"), std::string::npos) << r.err;   // the file's shape
  EXPECT_NE(r.err.find("[1024, 64]"), std::string::npos) << r.err;  // the config's
}

TEST(CliModelsBadInput, TooFewLayersLeavesTensorsUnused) {
  auto dir = edited_model("mamba", "nlayer4", [](nlohmann::json& c) { c["n_layer"] = 4; });
  auto r = run_jrt("forward --model " + dir + " --input " + fixture("mamba") + "/forward.safetensors --output " +
                   temp_dir() + "/x.safetensors");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("backbone.layers.4."), std::string::npos) << r.err;
}

TEST(CliModelsBadInput, UnknownArchitecture) {
  auto dir = edited_model("based", "arch", [](nlohmann::json& c) { c["alt_mixer"]["_target_"] = "my.mixers.Hyena"; });
  auto r = run_jrt("forward --model " + dir + " --input " + fixture("based") + "/forward.safetensors --output " +
                   temp_dir() + "/x.safetensors");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("my.mixers.Hyena"), std::string::npos) << r.err;
}

TEST(CliModelsBadInput, TokenIdOutsideVocabulary) {
  HostTensor ids(DType::I64, {1, 3});
  ids.ptr<int64_t>()[0] = 5;
  ids.ptr<int64_t>()[1] = 1008;
  ids.ptr<int64_t>()[2] = 7;
  std::string in = temp_dir() + "/oov.safetensors";
  write_safetensors(in, {{"input_ids", ids.view()}});
  auto r = run_jrt("forward --model " + fixture("attn") + " --input " + in + " --output " + temp_dir() + "/x.safetensors");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("1008"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("[0, 1]"), std::string::npos) << r.err;  // names the position
  auto g = run_jrt("generate --model " + fixture("attn") + " --input " + in + " --ids-key input_ids --max-new-tokens 1");
  EXPECT_EQ(g.exit_code, 1);
  EXPECT_NE(g.err.find("1008"), std::string::npos) << g.err;
}

TEST(CliModelsBadInput, PromptLongerThanTheModelAllows) {
  // The Based fixture's decay mask covers l_max = 128 positions (alt_mixer.l_max).
  HostTensor ids(DType::I64, {1, 200});
  for (int64_t i = 0; i < 200; ++i) ids.ptr<int64_t>()[i] = i % 1000;
  std::string in = temp_dir() + "/long.safetensors";
  write_safetensors(in, {{"prompt_ids", ids.view()}});
  auto r = run_jrt("generate --model " + fixture("based") + " --input " + in + " --max-new-tokens 1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("l_max = 128"), std::string::npos) << r.err;
}

TEST(CliModelsBadInput, MissingInputsAndKeys) {
  auto r = run_jrt("forward --model " + fixture("attn") + " --input /nonexistent.safetensors --output x");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent.safetensors"), std::string::npos);
  r = run_jrt("forward --model " + fixture("attn") + " --input " + fixture("attn") +
              "/forward.safetensors --ids-key nope --output x");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("'nope'"), std::string::npos) << r.err;
  r = run_jrt("forward --model /no/such/model --input x --output y");
  EXPECT_EQ(r.exit_code, 1);
  r = run_jrt("forward --model " + fixture("attn") + " --bogus-flag");
  EXPECT_NE(r.exit_code, 0);
  r = run_jrt("forward --model " + fixture("attn") + " --input " + fixture("attn") +
              "/forward.safetensors --output x --device tpu");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("'tpu'"), std::string::npos) << r.err;
  r = run_jrt("generate --help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag : {"--prompt", "--input", "--ids-key", "--mask-key", "--max-new-tokens", "--greedy",
                           "--temperature", "--top-k", "--top-p", "--seed", "--stop", "--output"})
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
}

}  // namespace
