// Tests of `jrt inspect`: every tensor of each fixture (both weight files) listed with its exact shape,
// the parameter count under the tied-once rule, the config and state sections, and clear failures.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "core/tensor.h"

using namespace jrt;
using json = nlohmann::json;

namespace {

const char* const kArchs[] = {"jrt", "based", "mamba", "attn"};
const char* const kWeightFiles[] = {"model.safetensors", "pytorch_model.bin"};

// tests/data/models/README.md, "params" column (tied embedding once, Based's decay buffer excluded).
const std::map<std::string, int64_t> kParams = {
    {"jrt", 563904}, {"based", 551872}, {"mamba", 228096}, {"attn", 392896}};

std::string model_dir(const std::string& arch) { return test::data_path("models/" + arch); }

json manifest_tensors(const std::string& arch) {
  json m = json::parse(test::read_file(model_dir(arch) + "/manifest.json"));
  return m["files"]["model.safetensors"]["tensors"];
}

size_t count_occurrences(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

}  // namespace

TEST(CliInspect, JsonListsEveryTensorOfBothWeightFiles) {
  for (const char* arch : kArchs) {
    json expected = manifest_tensors(arch);
    for (const char* file : kWeightFiles) {
      SCOPED_TRACE(std::string(arch) + "/" + file);
      auto r = test::run_jrt("inspect " + model_dir(arch) + " --weights " + file + " --json");
      ASSERT_EQ(r.exit_code, 0) << r.err;
      json out = json::parse(r.out);
      EXPECT_NE(out["weights_file"].get<std::string>().find(file), std::string::npos);
      std::map<std::string, json> got;
      for (const json& t : out["tensors"]) {
        std::string name = t["name"];
        EXPECT_TRUE(got.emplace(name, t).second) << "listed twice: " << name;
      }
      EXPECT_EQ(got.size(), expected.size());
      for (auto& [name, t] : expected.items()) {
        auto it = got.find(name);
        ASSERT_NE(it, got.end()) << "missing tensor " << name;
        EXPECT_EQ(it->second["shape"], t["shape"]) << name;
        EXPECT_EQ(it->second["dtype"], "f32") << name;
      }
      EXPECT_EQ(out["parameters"]["count"].get<int64_t>(), kParams.at(arch));
      ASSERT_TRUE(out["config"].is_object());
      EXPECT_EQ(out["config"]["arch"], arch);
      EXPECT_EQ(out["config"]["param_count"].get<int64_t>(), kParams.at(arch));
      EXPECT_EQ(out["config"]["padded_vocab"].get<int64_t>(), 1008);
      // lm_head.weight is stored twice (both keys), so the file holds exactly one embedding more.
      const int64_t emb = 1008 * 64;
      const int64_t buffer = std::string(arch) == "based" ? 2 : 0;
      EXPECT_EQ(out["parameters"]["tensor_elements"].get<int64_t>(), kParams.at(arch) + emb + buffer);
      EXPECT_EQ(out["parameters"]["tied"].size(), 1u);
      ASSERT_TRUE(out["state"].is_object());
      EXPECT_GT(out["state"]["cpu-fp32"]["fixed_bytes"].get<int64_t>() +
                    out["state"]["cpu-fp32"]["per_token_bytes"].get<int64_t>(),
                0);
    }
  }
}

TEST(CliInspect, TextListsTensorsConfigParamsAndState) {
  const std::map<std::string, std::string> patterns = {
      {"jrt", "cPscccP"}, {"based", "cLscccL"}, {"mamba", "MMMMM"}, {"attn", "AAAAA"}};
  for (const char* arch : kArchs) {
    SCOPED_TRACE(arch);
    auto r = test::run_jrt("inspect " + model_dir(arch));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    json tensors = manifest_tensors(arch);
    for (auto& [name, t] : tensors.items()) {
      std::string line = name + "  f32  " + shape_str(t["shape"].get<std::vector<int64_t>>()) + "\n";
      EXPECT_EQ(count_occurrences(r.out, "\n" + line), 1u) << line;
    }
    EXPECT_NE(r.out.find("model.safetensors (safetensors"), std::string::npos);
    const int64_t p = kParams.at(arch);  // all between 1e5 and 1e6: "563,904"
    const std::string params = std::to_string(p / 1000) + "," + std::to_string(p % 1000 + 1000).substr(1);
    EXPECT_NE(r.out.find("parameters: " + params + "\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("counted once"), std::string::npos);
    EXPECT_NE(r.out.find("(matches)"), std::string::npos);
    EXPECT_NE(r.out.find("pattern            " + patterns.at(arch)), std::string::npos);
    EXPECT_NE(r.out.find("cpu-fp32"), std::string::npos);
    EXPECT_NE(r.out.find("reference"), std::string::npos);
  }
  auto attn = test::run_jrt("inspect " + model_dir("attn"));
  EXPECT_NE(attn.out.find("per token"), std::string::npos);
  auto based = test::run_jrt("inspect " + model_dir("based"));
  EXPECT_NE(based.out.find("buffer (not counted): transformer.decay.decay"), std::string::npos);
}

TEST(CliInspect, SingleWeightsFileWithAndWithoutConfig) {
  // A weights file whose folder has a config.json: tensors plus the config section.
  auto r = test::run_jrt("inspect " + model_dir("mamba") + "/pytorch_model.bin");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("(pytorch, 53 tensors)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("backbone.layers.4.mixer.A_log  f32  [128, 16]\n"), std::string::npos);
  EXPECT_NE(r.out.find("arch               mamba"), std::string::npos);

  // A lone weights file: tensors only.
  namespace fs = std::filesystem;
  fs::path dir = fs::path(test::temp_dir()) / "lone";
  fs::create_directories(dir);
  fs::copy_file(model_dir("attn") + "/model.safetensors", dir / "weights.safetensors",
                fs::copy_options::overwrite_existing);
  auto lone = test::run_jrt("inspect " + (dir / "weights.safetensors").string() + " --json");
  ASSERT_EQ(lone.exit_code, 0) << lone.err;
  json out = json::parse(lone.out);
  EXPECT_TRUE(out["config"].is_null());
  EXPECT_FALSE(out.contains("state"));
  EXPECT_EQ(out["tensors"].size(), 33u);
  EXPECT_EQ(out["parameters"]["count"].get<int64_t>(), kParams.at("attn"));
  auto lone_text = test::run_jrt("inspect " + (dir / "weights.safetensors").string());
  EXPECT_NE(lone_text.out.find("config: none"), std::string::npos);
}

TEST(CliInspect, Failures) {
  namespace fs = std::filesystem;
  auto missing = test::run_jrt("inspect " + test::temp_dir() + "/does_not_exist");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("does_not_exist: no such file or directory"), std::string::npos) << missing.err;

  // A folder with a config but no weights.
  fs::path dir = fs::path(test::temp_dir()) / "no_weights";
  fs::create_directories(dir);
  fs::copy_file(model_dir("jrt") + "/config.json", dir / "config.json", fs::copy_options::overwrite_existing);
  auto empty = test::run_jrt("inspect " + dir.string());
  EXPECT_NE(empty.exit_code, 0);
  EXPECT_NE(empty.err.find("no model.safetensors or pytorch_model.bin"), std::string::npos) << empty.err;

  auto bad_flag = test::run_jrt("inspect " + model_dir("jrt") + " --weights nothing.bin");
  EXPECT_NE(bad_flag.exit_code, 0);
  EXPECT_NE(bad_flag.err.find("nothing.bin: --weights file not found"), std::string::npos) << bad_flag.err;

  // A broken config.json next to good weights is reported, naming the file and field.
  fs::path broken = fs::path(test::temp_dir()) / "broken";
  fs::create_directories(broken);
  json cfg = json::parse(test::read_file(model_dir("attn") + "/config.json"));
  cfg["n_layer"] = "five";
  test::write_file((broken / "config.json").string(), cfg.dump());
  fs::copy_file(model_dir("attn") + "/model.safetensors", broken / "model.safetensors",
                fs::copy_options::overwrite_existing);
  auto bad_cfg = test::run_jrt("inspect " + broken.string());
  EXPECT_NE(bad_cfg.exit_code, 0);
  EXPECT_NE(bad_cfg.err.find("config.json: field 'n_layer' must be an integer"), std::string::npos) << bad_cfg.err;

  // Not a checkpoint at all.
  fs::path junk_dir = fs::path(test::temp_dir()) / "junk";
  fs::create_directories(junk_dir);
  test::write_file((junk_dir / "junk.bin").string(), "hello, not tensors");
  auto junk = test::run_jrt("inspect " + (junk_dir / "junk.bin").string());
  EXPECT_NE(junk.exit_code, 0);
  EXPECT_NE(junk.err.find("junk.bin"), std::string::npos) << junk.err;
}
