// Tests of io/config + io/state_size: the four fixture configs, the released models of models-spec §1
// (patterns, dims, parameter counts) and §6 (decode-state bytes), and malformed configs whose errors must
// name the file and the field.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "core/error.h"
#include "io/config.h"
#include "io/state_size.h"

using namespace jrt;
using json = nlohmann::json;

namespace {

std::string fixture_config_path(const std::string& arch) { return test::data_path("models/" + arch + "/config.json"); }
json fixture_json(const std::string& arch) { return json::parse(test::read_file(fixture_config_path(arch))); }

// Parameters of a fixture computed from its manifest: every tensor of model.safetensors except the tied
// lm_head copy and the Based decay buffer (not a parameter).
int64_t manifest_param_count(const std::string& arch) {
  json m = json::parse(test::read_file(test::data_path("models/" + arch + "/manifest.json")));
  int64_t n = 0;
  for (auto& [name, t] : m["files"]["model.safetensors"]["tensors"].items()) {
    if (name == "lm_head.weight" || name == "transformer.decay.decay") continue;
    int64_t e = 1;
    for (auto& s : t["shape"]) e *= s.get<int64_t>();
    n += e;
  }
  return n;
}

// The error message of parsing `j` (fails the test when it parses).
std::string parse_error(const json& j, const std::string& source = "cfg/config.json") {
  try {
    parse_config(j.dump(), source);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an error for " << j.dump();
  return "";
}

#define EXPECT_HAS(msg, needle) EXPECT_NE(std::string(msg).find(needle), std::string::npos) << (msg)

}  // namespace

// ---- the fixtures -----------------------------------------------------------------------------------------

TEST(Config, FixtureJrt) {
  ModelConfig c = load_config(fixture_config_path("jrt"));
  EXPECT_EQ(c.arch, Arch::JRT);
  EXPECT_EQ(c.source, fixture_config_path("jrt"));
  EXPECT_EQ(c.pattern(), "cPscccP");  // lists name 21, 22 too: indices >= n_layer are ignored
  EXPECT_EQ(c.count(MixerKind::BaseConv), 4);
  EXPECT_EQ(c.d_model, 64);
  EXPECT_EQ(c.n_layer, 7);
  EXPECT_EQ(c.vocab_size, 1003);
  EXPECT_EQ(c.padded_vocab, 1008);
  EXPECT_EQ(c.n_head, 2);
  EXPECT_EQ(c.mlp_hidden, 256);  // n_inner 128 rounded up to 256
  EXPECT_TRUE(c.mlp_hidden_alternatives.empty());
  EXPECT_EQ(c.rotary_dim, 32);  // fraction 1 x head_dim 32
  EXPECT_EQ(c.la.num_heads, 2);
  EXPECT_EQ(c.la.head_dim, 32);
  EXPECT_EQ(c.la.feature_dim, 16);
  EXPECT_EQ(c.la.feature_size(), 273);
  EXPECT_EQ(c.la.enc_length, 40);
  EXPECT_TRUE(c.la.use_mask);
  EXPECT_EQ(c.swa.window_size, 32);
  EXPECT_EQ(c.swa.left_window(), 16);
  EXPECT_EQ(c.swa.head_dim, 32);
  EXPECT_EQ(c.conv.expand_proj, 4);
  EXPECT_EQ(c.conv.kernel_size, 3);
  EXPECT_TRUE(c.conv.use_bias);
  EXPECT_EQ(c.max_position_embeddings, 0);
  EXPECT_TRUE(c.rms_norm);
  EXPECT_TRUE(c.residual_in_fp32);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.mlp_fc1_bias);
  EXPECT_FALSE(c.qkv_proj_bias);
  EXPECT_DOUBLE_EQ(c.norm_eps, 1e-5);
  EXPECT_EQ(c.switches.la_implementation, "default");
  EXPECT_FALSE(c.fixed_decay);
  EXPECT_EQ(c.la.l_max, 0);           // only meaningful with the fixed decay
  EXPECT_EQ(param_count(c), 563904);  // tests/data/models/README.md
  EXPECT_EQ(param_count(c), manifest_param_count("jrt"));
}

TEST(Config, FixtureBased) {
  ModelConfig c = load_config(fixture_config_path("based"));
  EXPECT_EQ(c.arch, Arch::Based);
  EXPECT_EQ(c.pattern(), "cLscccL");
  EXPECT_EQ(c.mlp_hidden, 256);
  EXPECT_EQ(c.rotary_dim, 32);
  EXPECT_EQ(c.padded_vocab, 1008);
  EXPECT_TRUE(c.fixed_decay);
  EXPECT_TRUE(c.la.use_decay_proj);
  EXPECT_DOUBLE_EQ(c.decay_const, -3.0);
  EXPECT_EQ(c.la.l_max, 128);  // mixer.l_max, the size of the reference's decay mask
  EXPECT_EQ(c.la.enc_length, 0);
  EXPECT_EQ(c.switches.la_implementation, "quadratic");
  EXPECT_EQ(c.swa.window_size, 32);
  EXPECT_EQ(param_count(c), 551872);  // decay_proj counted, the decay buffer not
  EXPECT_EQ(param_count(c), manifest_param_count("based"));
}

TEST(Config, FixtureMamba) {
  ModelConfig c = load_config(fixture_config_path("mamba"));
  EXPECT_EQ(c.arch, Arch::Mamba);
  EXPECT_EQ(c.pattern(), "MMMMM");
  EXPECT_EQ(c.d_model, 64);  // d_model, not the unused n_embd/n_head
  EXPECT_EQ(c.n_head, 0);
  EXPECT_EQ(c.mlp_hidden, 0);
  EXPECT_EQ(c.padded_vocab, 1008);  // x16
  EXPECT_EQ(c.mamba.d_inner, 128);
  EXPECT_EQ(c.mamba.dt_rank, 4);
  EXPECT_EQ(c.mamba.d_state, 16);
  EXPECT_EQ(c.mamba.d_conv, 4);
  EXPECT_TRUE(c.mamba.conv_bias);
  EXPECT_FALSE(c.mamba.bias);
  EXPECT_TRUE(c.switches.fused_add_norm);
  EXPECT_FALSE(c.switches.use_fast_path);
  EXPECT_EQ(param_count(c), 228096);
  EXPECT_EQ(param_count(c), manifest_param_count("mamba"));
}

TEST(Config, FixtureAttn) {
  ModelConfig c = load_config(fixture_config_path("attn"));
  EXPECT_EQ(c.arch, Arch::Attn);
  EXPECT_EQ(c.pattern(), "AAAAA");
  EXPECT_EQ(c.mlp_hidden, 256);  // int(8*64/3) = 170 -> 256 under both multiples
  EXPECT_TRUE(c.mlp_hidden_alternatives.empty());
  EXPECT_EQ(c.attn.num_heads, 2);
  EXPECT_EQ(c.attn.head_dim, 32);
  EXPECT_EQ(c.rotary_dim, 16);  // fraction 0.5
  EXPECT_EQ(c.padded_vocab, 1008);
  EXPECT_TRUE(c.switches.fused_dropout_add_ln);
  EXPECT_EQ(param_count(c), 392896);
  EXPECT_EQ(param_count(c), manifest_param_count("attn"));
}

TEST(Config, Names) {
  EXPECT_STREQ(arch_name(Arch::JRT), "jrt");
  EXPECT_STREQ(mixer_name(MixerKind::PrefixLinearAttn), "PrefixLinearAttention");
  std::string letters;
  for (MixerKind m : {MixerKind::BaseConv, MixerKind::LinearAttn, MixerKind::PrefixLinearAttn, MixerKind::SlidingAttn,
                      MixerKind::MHA, MixerKind::Mamba})
    letters.push_back(mixer_letter(m));
  EXPECT_EQ(letters, "cLPsAM");
}

TEST(Config, ExplicitArchOverridesDetection) {
  json j = fixture_json("based");
  j["jrt_arch"] = "based";
  EXPECT_EQ(parse_config(j.dump(), "x").arch, Arch::Based);
  json m = fixture_json("mamba");
  m.erase("ssm_cfg");
  m["jrt_arch"] = "mamba";
  EXPECT_EQ(parse_config(m.dump(), "x").arch, Arch::Mamba);
}

// ---- state bytes of the fixtures (CPU fp32 policy, written out by hand) ------------------------------------

TEST(StateSize, FixturesCpuPolicy) {
  // jrt: d 64, 2 heads (hd 32), D 273, BaseConv d_inner 128, window 32 -> 16 entries.
  ModelConfig j = load_config(fixture_config_path("jrt"));
  const int64_t pla = 4 * 2 * 273 * (32 + 1), conv = 4 * 2 * 128, swa = 4 * 2 * 16 * 2 * 32;
  EXPECT_EQ(layer_state_bytes(j, MixerKind::PrefixLinearAttn, StatePolicy::CpuFp32).fixed_bytes, pla);
  EXPECT_EQ(layer_state_bytes(j, MixerKind::BaseConv, StatePolicy::CpuFp32).fixed_bytes, conv);
  EXPECT_EQ(layer_state_bytes(j, MixerKind::SlidingAttn, StatePolicy::CpuFp32).fixed_bytes, swa);
  StateBytes t = model_state_bytes(j, StatePolicy::CpuFp32);
  EXPECT_EQ(t.fixed_bytes, 2 * pla + 4 * conv + swa);
  EXPECT_EQ(t.per_token_bytes, 0);
  // Reference policy: conv keeps all 3 taps, SWA ring in bf16.
  StateBytes r = model_state_bytes(j, StatePolicy::Reference);
  EXPECT_EQ(r.fixed_bytes, 2 * pla + 4 * (4 * 3 * 128) + 2 * 16 * 2 * 32 * 2);

  ModelConfig m = load_config(fixture_config_path("mamba"));  // d_inner 128, d_conv 4, d_state 16
  EXPECT_EQ(model_state_bytes(m, StatePolicy::CpuFp32).fixed_bytes, 5 * 4 * 128 * (3 + 16));
  EXPECT_EQ(model_state_bytes(m, StatePolicy::Reference).fixed_bytes, 5 * 4 * 128 * (4 + 16));

  ModelConfig a = load_config(fixture_config_path("attn"));
  StateBytes ab = model_state_bytes(a, StatePolicy::CpuFp32);
  EXPECT_EQ(ab.fixed_bytes, 0);
  EXPECT_EQ(ab.per_token_bytes, 5 * 2 * 64 * 4);
  EXPECT_EQ(ab.at(10), 10 * ab.per_token_bytes);
  EXPECT_EQ(model_state_bytes(a, StatePolicy::Reference).per_token_bytes, 5 * 2 * 64 * 2);
}

// ---- the released models of models-spec §1 / §6 ----------------------------------------------------------------

namespace {

json mixer_gpt(int64_t d, int64_t n_layer, int64_t n_inner, bool jrt, std::vector<int64_t> alt,
               std::vector<int64_t> alt2, const std::string& la_impl) {
  json j = {{"n_embd", d},
            {"n_layer", n_layer},
            {"n_head", 16},
            {"n_inner", n_inner},
            {"vocab_size", 50257},
            {"pad_vocab_size_multiple", 8},
            {"activation_function", "swiglu"},
            {"rms_norm", true},
            {"residual_in_fp32", true},
            {"fused_dropout_add_ln", true},
            {"n_positions", 0},
            {"layer_norm_epsilon", 1e-5},
            {"mlp_fc1_bias", false},
            {"mlp_fc2_bias", false},
            {"qkv_proj_bias", false},
            {"out_proj_bias", false},
            {"rotary_emb_fraction", 1},
            {"tie_word_embeddings", true},
            {"alt_mixer_layers", alt},
            {"alt_mixer_2_layers", alt2}};
  j["mixer"] = {{"_target_", "based.models.mixers.convolution.BaseConv"},
                {"l_max", 2048},
                {"use_bias", true},
                {"expand_proj", 4},
                {"kernel_sizes", 3}};
  if (jrt) {
    j["alt_mixer"] = {{"_target_", "based.models.mixers.prefix_linear_attention.PrefixLinearAttention"},
                      {"feature_dim", 16},
                      {"num_heads", 16},
                      {"enc_length", 1024},
                      {"dec_length", 1024},
                      {"implementation", la_impl},
                      {"use_mask", true}};
  } else {
    j["alt_mixer"] = {
        {"_target_", "based.models.mixers.linear_attention.LinearAttention"},
        {"feature_dim", 16},
        {"num_heads", 16},
        {"parallel_implementation", la_impl},
        {"feature_map", {{"_target_", "based.models.mixers.linear_attention.TaylorExp"}, {"input_dim", 16}}}};
  }
  j["alt_mixer_2"] = {
      {"_target_", "based.models.mixers.slide_attention.SlidingAttention"}, {"window_size", 256}, {"num_heads", 16}};
  return j;
}

const std::vector<int64_t> k360Alt = {1, 6, 11, 16, 21}, k360Alt2 = {2, 7, 12, 17, 22};
const std::vector<int64_t> k1bAlt = {1, 6, 11, 16, 21, 27, 33}, k1bAlt2 = {2, 7, 12, 17, 22, 28, 34};

ModelConfig jrt_360m() {
  return parse_config(mixer_gpt(1024, 26, 2048, true, k360Alt, k360Alt2, "fla_parallel").dump(), "jrt-360m");
}
ModelConfig based_360m() {
  return parse_config(mixer_gpt(1024, 27, 2048, false, k360Alt, k360Alt2, "quadratic").dump(), "based-360m");
}
ModelConfig jrt_1b() {
  return parse_config(mixer_gpt(1792, 36, 3584, true, k1bAlt, k1bAlt2, "fla_parallel").dump(), "jrt-1b");
}
ModelConfig based_1b() {
  return parse_config(mixer_gpt(1792, 36, 3584, false, k1bAlt, k1bAlt2, "fla_parallel").dump(), "based-1b");
}

ModelConfig mamba_cfg(int64_t d) {
  json j = {{"d_model", d},           {"n_layer", 46},
            {"vocab_size", 50277},    {"ssm_cfg", json::object()},
            {"rms_norm", true},       {"residual_in_fp32", true},
            {"fused_add_norm", true}, {"pad_vocab_size_multiple", 16}};
  return parse_config(j.dump(), "mamba");
}

ModelConfig attn_cfg(int64_t d, int64_t n_layer, int64_t heads) {
  json j = {{"n_embd", d},
            {"n_layer", n_layer},
            {"n_head", heads},
            {"n_inner", nullptr},
            {"vocab_size", 50257},
            {"pad_vocab_size_multiple", 16},
            {"activation_function", "swiglu"},
            {"rms_norm", true},
            {"residual_in_fp32", true},
            {"n_positions", 0},
            {"mlp_fc1_bias", false},
            {"mlp_fc2_bias", false},
            {"qkv_proj_bias", false},
            {"out_proj_bias", false},
            {"rotary_emb_fraction", 0.5},
            {"ff_mult", 4}};
  return parse_config(j.dump(), "attn");
}

double millions(int64_t p) { return double(p) / 1e6; }

}  // namespace

TEST(SpecModels, PatternsAndDims) {
  ModelConfig j360 = jrt_360m(), b360 = based_360m(), j1b = jrt_1b(), b1b = based_1b();
  EXPECT_EQ(j360.arch, Arch::JRT);
  EXPECT_EQ(b360.arch, Arch::Based);
  EXPECT_EQ(j360.pattern(), "cPscccPscccPscccPscccPsccc");
  EXPECT_EQ(b360.pattern(), "cLscccLscccLscccLscccLscccc");
  EXPECT_EQ(j1b.pattern(), "cPscccPscccPscccPscccPsccccPsccccPsc");
  EXPECT_EQ(b1b.pattern(), "cLscccLscccLscccLscccLsccccLsccccLsc");
  EXPECT_EQ(b360.count(MixerKind::BaseConv), 17);
  EXPECT_EQ(j1b.count(MixerKind::BaseConv), 22);
  EXPECT_EQ(j1b.count(MixerKind::SlidingAttn), 7);
  EXPECT_EQ(j360.padded_vocab, 50264);
  EXPECT_EQ(j360.mlp_hidden, 2048);
  EXPECT_EQ(j1b.mlp_hidden, 3584);
  EXPECT_EQ(j360.swa.head_dim, 64);
  EXPECT_EQ(j1b.swa.head_dim, 112);
  EXPECT_EQ(j360.rotary_dim, 64);
  EXPECT_EQ(j1b.rotary_dim, 112);
  EXPECT_EQ(j360.swa.left_window(), 128);
  EXPECT_EQ(j360.la.enc_length, 1024);
  EXPECT_EQ(j360.switches.la_implementation, "fla_parallel");

  ModelConfig m360 = mamba_cfg(1024), m1b = mamba_cfg(2048);
  EXPECT_EQ(m360.padded_vocab, 50288);
  EXPECT_EQ(m360.mamba.d_inner, 2048);
  EXPECT_EQ(m360.mamba.dt_rank, 64);
  EXPECT_EQ(m1b.mamba.d_inner, 4096);
  EXPECT_EQ(m1b.mamba.dt_rank, 128);

  ModelConfig a360 = attn_cfg(1024, 24, 16), a1b = attn_cfg(1680, 36, 24);
  EXPECT_EQ(a360.padded_vocab, 50272);
  EXPECT_EQ(a360.attn.head_dim, 64);
  EXPECT_EQ(a360.rotary_dim, 32);
  EXPECT_EQ(a360.mlp_hidden, 2816);  // 2730 -> 2816 under either multiple
  EXPECT_TRUE(a360.mlp_hidden_alternatives.empty());
  EXPECT_EQ(a1b.attn.head_dim, 70);
  EXPECT_EQ(a1b.rotary_dim, 35);
  EXPECT_EQ(a1b.mlp_hidden, 4608);  // 4480 -> 4608 with multiple_of 256 ...
  ASSERT_EQ(a1b.mlp_hidden_alternatives.size(), 1u);
  EXPECT_EQ(a1b.mlp_hidden_alternatives[0], 4480);  // ... 4480 with the 128 fallback
}

TEST(SpecModels, ParameterCounts) {
  // models-spec §1, in millions rounded to 0.1.
  EXPECT_NEAR(millions(param_count(jrt_360m())), 356.6, 0.05);
  EXPECT_NEAR(millions(param_count(based_360m())), 362.6, 0.05);
  EXPECT_NEAR(millions(param_count(jrt_1b())), 1375.1, 0.05);
  EXPECT_NEAR(millions(param_count(based_1b())), 1349.5, 0.05);
  EXPECT_NEAR(millions(param_count(mamba_cfg(1024))), 358.2, 0.05);
  EXPECT_NEAR(millions(param_count(mamba_cfg(2048))), 1319.3, 0.05);
  EXPECT_NEAR(millions(param_count(attn_cfg(1024, 24, 16))), 359.8, 0.05);
  ModelConfig a1b = attn_cfg(1680, 36, 24);
  EXPECT_NEAR(millions(param_count(a1b)), 1327.1, 0.05);
  a1b.mlp_hidden = a1b.mlp_hidden_alternatives.at(0);
  EXPECT_NEAR(millions(param_count(a1b)), 1303.9, 0.05);
  // Untied embeddings add a second V x d matrix.
  ModelConfig j = jrt_360m();
  int64_t tied = param_count(j);
  j.tie_word_embeddings = false;
  EXPECT_EQ(param_count(j) - tied, 50264 * 1024);
}

TEST(SpecModels, ReferenceStateBytesMatchSection6) {
  const StatePolicy R = StatePolicy::Reference;
  ModelConfig j360 = jrt_360m(), b360 = based_360m(), j1b = jrt_1b(), b1b = based_1b();
  // §6 per-layer table.
  EXPECT_EQ(layer_state_bytes(j360, MixerKind::PrefixLinearAttn, R).fixed_bytes, 1135680);
  EXPECT_EQ(layer_state_bytes(b360, MixerKind::LinearAttn, R).fixed_bytes, 1135680);
  EXPECT_EQ(layer_state_bytes(j1b, MixerKind::PrefixLinearAttn, R).fixed_bytes, 1974336);
  EXPECT_EQ(layer_state_bytes(j360, MixerKind::BaseConv, R).fixed_bytes, 24576);
  EXPECT_EQ(layer_state_bytes(j1b, MixerKind::BaseConv, R).fixed_bytes, 43008);
  EXPECT_EQ(layer_state_bytes(j360, MixerKind::SlidingAttn, R).fixed_bytes, 524288);
  EXPECT_EQ(layer_state_bytes(j1b, MixerKind::SlidingAttn, R).fixed_bytes, 917504);
  ModelConfig m360 = mamba_cfg(1024), m1b = mamba_cfg(2048);
  EXPECT_EQ(layer_state_bytes(m360, MixerKind::Mamba, R).fixed_bytes, 163840);
  EXPECT_EQ(layer_state_bytes(m1b, MixerKind::Mamba, R).fixed_bytes, 327680);
  ModelConfig a360 = attn_cfg(1024, 24, 16), a1b = attn_cfg(1680, 36, 24);
  EXPECT_EQ(layer_state_bytes(a360, MixerKind::MHA, R).per_token_bytes, 4096);
  EXPECT_EQ(layer_state_bytes(a1b, MixerKind::MHA, R).per_token_bytes, 6720);

  // Model totals: the per-layer figures times the layer counts of §1.
  struct Row {
    ModelConfig c;
    int64_t exact;
    int64_t mb_x100;  // the §6 "MB" figure x 100
  };
  std::vector<Row> rows = {
      {j360, 5 * 1135680 + 16 * 24576 + 5 * 524288, 869},
      {b360, 5 * 1135680 + 17 * 24576 + 5 * 524288, 872},
      {j1b, 7 * 1974336 + 22 * 43008 + 7 * 917504, 2119},
      {b1b, 7 * 1974336 + 22 * 43008 + 7 * 917504, 2119},
      {m360, 46 * 163840, 754},
      {m1b, 46 * 327680, 1507},
  };
  for (const Row& r : rows) {
    StateBytes s = model_state_bytes(r.c, R);
    EXPECT_EQ(s.fixed_bytes, r.exact) << r.c.source;
    EXPECT_EQ(s.per_token_bytes, 0) << r.c.source;
    // "MB" in §6 is 1e6 bytes: the MiB reading (8.29 for JRT-360M) does not reproduce the table.
    EXPECT_EQ(std::llround(double(s.fixed_bytes) / 1e4), r.mb_x100) << r.c.source;
    EXPECT_NE(std::llround(double(s.fixed_bytes) / 1048576.0 * 100), r.mb_x100) << r.c.source;
  }
  EXPECT_EQ(rows[0].exact, 8693056);
  EXPECT_EQ(rows[2].exact, 21189056);
  StateBytes a = model_state_bytes(a360, R), b = model_state_bytes(a1b, R);
  EXPECT_EQ(a.fixed_bytes, 0);
  EXPECT_EQ(a.per_token_bytes, 98304);
  EXPECT_EQ(b.per_token_bytes, 241920);
}

TEST(SpecModels, CpuStateBytes) {
  // CPU engine: fp32 everywhere, BaseConv keeps 2 inputs, Mamba 3 conv inputs.
  ModelConfig j360 = jrt_360m();
  EXPECT_EQ(model_state_bytes(j360, StatePolicy::CpuFp32).fixed_bytes,
            5 * 1135680 + 16 * (4 * 2 * 2048) + 5 * (4 * 2 * 128 * 16 * 64));
  ModelConfig m360 = mamba_cfg(1024);
  EXPECT_EQ(model_state_bytes(m360, StatePolicy::CpuFp32).fixed_bytes, 46 * 4 * 2048 * (3 + 16));
  EXPECT_EQ(model_state_bytes(attn_cfg(1024, 24, 16), StatePolicy::CpuFp32).per_token_bytes, 24 * 2 * 1024 * 4);
}

// ---- malformed configs ---------------------------------------------------------------------------------------

TEST(ConfigErrors, MissingRequiredField) {
  json j = fixture_json("jrt");
  j.erase("n_layer");
  std::string e = parse_error(j);
  EXPECT_HAS(e, "cfg/config.json");
  EXPECT_HAS(e, "missing required field 'n_layer'");
  json m = fixture_json("mamba");
  m.erase("vocab_size");
  EXPECT_HAS(parse_error(m), "'vocab_size'");
}

TEST(ConfigErrors, NegativeOrZeroSizes) {
  json j = fixture_json("based");
  j["n_embd"] = -3;
  std::string e = parse_error(j);
  EXPECT_HAS(e, "field 'n_embd' must be > 0, got -3");
  j = fixture_json("mamba");
  j["d_model"] = 0;
  EXPECT_HAS(parse_error(j), "field 'd_model' must be > 0, got 0");
  j = fixture_json("jrt");
  j["alt_mixer"]["feature_dim"] = 0;
  EXPECT_HAS(parse_error(j), "field 'alt_mixer.feature_dim' must be > 0");
  j = fixture_json("jrt");
  j["alt_mixer_2"]["window_size"] = 0;
  EXPECT_HAS(parse_error(j), "field 'alt_mixer_2.window_size' must be > 0");
  j = fixture_json("attn");
  j["layer_norm_epsilon"] = 0;
  EXPECT_HAS(parse_error(j), "field 'layer_norm_epsilon' must be > 0");
  j = fixture_json("mamba");
  j["ssm_cfg"]["d_state"] = -1;
  EXPECT_HAS(parse_error(j), "field 'ssm_cfg.d_state' must be > 0");
}

TEST(ConfigErrors, WrongType) {
  json j = fixture_json("jrt");
  j["n_layer"] = "seven";
  EXPECT_HAS(parse_error(j), "field 'n_layer' must be an integer, got \"seven\"");
  j = fixture_json("jrt");
  j["n_embd"] = 64.5;
  EXPECT_HAS(parse_error(j), "field 'n_embd' must be an integer");
  j = fixture_json("jrt");
  j["rms_norm"] = "yes";
  EXPECT_HAS(parse_error(j), "field 'rms_norm' must be true or false");
  j = fixture_json("jrt");
  j["alt_mixer"] = 5;
  EXPECT_HAS(parse_error(j), "field 'alt_mixer' must be an object");
  j = fixture_json("jrt");
  j["vocab_size"] = 18446744073709551615ull;
  EXPECT_HAS(parse_error(j), "field 'vocab_size' is out of range");
}

TEST(ConfigErrors, LayerListsMustBeIntegerArrays) {
  json j = fixture_json("jrt");
  j["alt_mixer_layers"] = "1,6";
  EXPECT_HAS(parse_error(j), "field 'alt_mixer_layers' must be an array of layer indices");
  j = fixture_json("jrt");
  j["alt_mixer_2_layers"] = {2, "7"};
  EXPECT_HAS(parse_error(j), "field 'alt_mixer_2_layers' must be an array of layer indices");
  j = fixture_json("jrt");
  j["alt_mixer_layers"] = {1, -6};
  EXPECT_HAS(parse_error(j), "'alt_mixer_layers' must hold layer indices >= 0");
}

TEST(ConfigErrors, UnknownTarget) {
  json j = fixture_json("based");
  j["alt_mixer"]["_target_"] = "based.models.mixers.hyena.Hyena";
  std::string e = parse_error(j);
  EXPECT_HAS(e, "field 'alt_mixer._target_'");
  EXPECT_HAS(e, "based.models.mixers.hyena.Hyena");
  j = fixture_json("based");
  j["mixer"].erase("_target_");
  EXPECT_HAS(parse_error(j), "missing required field 'mixer._target_'");
}

TEST(ConfigErrors, HeadsMustDivideWidth) {
  json j = fixture_json("attn");
  j["n_head"] = 3;
  std::string e = parse_error(j);
  EXPECT_HAS(e, "field 'n_head' = 3 must divide n_embd = 64");
  j = fixture_json("based");
  j["alt_mixer"]["num_heads"] = 5;
  j["fixed_decay"] = false;
  j["alt_mixer"]["use_decay_proj"] = false;
  EXPECT_HAS(parse_error(j), "field 'alt_mixer.num_heads' = 5 must divide n_embd = 64");
}

TEST(ConfigErrors, JrtNeedsEncLength) {
  json j = fixture_json("jrt");
  j["alt_mixer"].erase("enc_length");
  j.erase("enc_length");
  EXPECT_HAS(parse_error(j), "missing required field 'alt_mixer.enc_length'");
  j = fixture_json("jrt");
  j["alt_mixer"]["enc_length"] = 0;
  EXPECT_HAS(parse_error(j), "field 'alt_mixer.enc_length' must be > 0");
  j = fixture_json("jrt");
  j["enc_length"] = 64;
  EXPECT_HAS(parse_error(j), "'alt_mixer.enc_length' = 40 differs from top-level 'enc_length' = 64");
  // The top-level copy alone is enough.
  j = fixture_json("jrt");
  j["alt_mixer"].erase("enc_length");
  EXPECT_EQ(parse_config(j.dump(), "x").la.enc_length, 40);
}

TEST(ConfigErrors, BadJson) {
  std::string e;
  try {
    parse_config("{\"n_embd\": 64,, }", "bad/config.json");
  } catch (const Error& err) {
    e = err.what();
  }
  EXPECT_HAS(e, "bad/config.json: invalid JSON");
  try {
    load_config(test::temp_dir() + "/no_such_config.json");
    ADD_FAILURE() << "no error";
  } catch (const Error& err) {
    EXPECT_HAS(std::string(err.what()), "no_such_config.json: cannot open");
  }
  EXPECT_HAS(parse_error(json::array({1, 2})), "a config must be a JSON object");
}

TEST(ConfigErrors, UnknownImplementation) {
  json j = fixture_json("jrt");
  j["alt_mixer"]["implementation"] = "cuda_magic";
  std::string e = parse_error(j);
  EXPECT_HAS(e, "field 'alt_mixer.implementation' has unknown value \"cuda_magic\"");
  j = fixture_json("jrt");
  j["alt_mixer"]["implementation"] = "fla_parallel";  // same function: accepted
  EXPECT_EQ(parse_config(j.dump(), "x").switches.la_implementation, "fla_parallel");
  j = fixture_json("based");
  j["alt_mixer"]["parallel_implementation"] = "tk2";
  EXPECT_HAS(parse_error(j), "field 'alt_mixer.parallel_implementation' has unknown value \"tk2\"");
}

TEST(ConfigErrors, RangesAndUnsupportedSettings) {
  json j = fixture_json("attn");
  j["rotary_emb_fraction"] = 1.5;
  EXPECT_HAS(parse_error(j), "field 'rotary_emb_fraction' must be in [0, 1], got 1.5");
  j = fixture_json("jrt");
  j["activation_function"] = "gelu";
  EXPECT_HAS(parse_error(j), "field 'activation_function' must be \"swiglu\"");
  j = fixture_json("jrt");
  j.erase("activation_function");
  EXPECT_HAS(parse_error(j), "field 'activation_function' is absent");
  j = fixture_json("based");
  j["fixed_decay"] = false;  // decay_proj without the decay mask
  EXPECT_HAS(parse_error(j), "'alt_mixer.use_decay_proj' = true and 'fixed_decay' = false must agree");
  j = fixture_json("based");
  j["alt_mixer"]["parallel_implementation"] = "fla_parallel";
  EXPECT_HAS(parse_error(j), "does not support the fixed decay");
  j = fixture_json("mamba");
  j["ssm_cfg"]["headdim"] = 64;
  EXPECT_HAS(parse_error(j), "field 'ssm_cfg.headdim' is not a Mamba parameter");
  j = fixture_json("mamba");
  j["ssm_cfg"]["dt_rank"] = "big";
  EXPECT_HAS(parse_error(j), "field 'ssm_cfg.dt_rank' must be \"auto\" or an integer");
  j = fixture_json("jrt");
  j["jrt_arch"] = "rwkv";
  EXPECT_HAS(parse_error(j), "field 'jrt_arch' must be one of");
  j = fixture_json("jrt");
  j["jrt_arch"] = "based";
  EXPECT_HAS(parse_error(j), "'jrt_arch' is \"based\" but field 'alt_mixer' is a PrefixLinearAttention");
  j = fixture_json("jrt");
  j["n_layer"] = 3;
  j.erase("alt_mixer_2");
  EXPECT_HAS(parse_error(j), "layer 2 is listed in 'alt_mixer_2_layers' but field 'alt_mixer_2' is missing");
  j = fixture_json("attn");
  j["rotary_emb_interleaved"] = true;
  EXPECT_HAS(parse_error(j), "field 'rotary_emb_interleaved' = true is not supported");
  j = fixture_json("attn");
  j["n_embd"] = int64_t(1) << 40;
  EXPECT_HAS(parse_error(j), "field 'n_embd' must be <= 1048576");
}

TEST(ConfigDefaults, AbsentKeysFollowTheReference) {
  json j = fixture_json("jrt");
  for (const char* k : {"n_positions", "mlp_fc1_bias", "pad_vocab_size_multiple", "rotary_emb_fraction", "n_inner"})
    j.erase(k);
  j["alt_mixer_2"].erase("window_size");
  ModelConfig c = parse_config(j.dump(), "x");
  EXPECT_EQ(c.max_position_embeddings, 1024);  // GPT2Config n_positions default
  EXPECT_TRUE(c.mlp_fc1_bias);                 // getattr(config, "mlp_fc1_bias", True)
  EXPECT_EQ(c.padded_vocab, 1003);             // multiple 1
  EXPECT_EQ(c.rotary_dim, 0);                  // rotary_emb_fraction default 0.0
  EXPECT_EQ(c.mlp_hidden, 256);                // 4*d = 256
  EXPECT_EQ(c.swa.window_size, 128);           // SlidingAttention constructor default
  // Learned positions and fc1 bias add parameters.
  EXPECT_EQ(param_count(c) - param_count(load_config(fixture_config_path("jrt"))),
            1024 * 64 + 7 * 2 * 256 - (1008 - 1003) * 64);
}
