// synth/model.cpp — see model.h.
#include "synth/model.h"

#include <nlohmann/json.hpp>

#include <cmath>

#include "core/error.h"
#include "models/params.h"

namespace jrt::synth {

const std::vector<std::string>& mixer_names() {
  static const std::vector<std::string> n = {"based", "jrt", "sliding", "attention", "mamba", "baseconv"};
  return n;
}

std::string config_json(const ModelOptions& o) {
  using json = nlohmann::json;
  bool known = false;
  for (const auto& m : mixer_names()) known |= m == o.mixer;
  JRT_CHECK(known, "synth: unknown --mixer '{}' (known: based, jrt, sliding, attention, mamba, baseconv)", o.mixer);
  JRT_CHECK(o.d_model >= 2 && o.d_model % 2 == 0, "synth: --d-model must be even and >= 2, got {}", o.d_model);
  JRT_CHECK(o.n_layers >= 1, "synth: --layers must be >= 1, got {}", o.n_layers);
  JRT_CHECK(o.vocab_size >= 2, "synth: vocabulary must be >= 2, got {}", o.vocab_size);
  JRT_CHECK(o.mlp_hidden >= 0, "synth: --mlp must be >= 0, got {}", o.mlp_hidden);
  if (o.mixer == "mamba") {
    JRT_CHECK(o.d_state >= 1, "synth: --d-state must be >= 1, got {}", o.d_state);
    json j = {{"d_model", o.d_model},       {"n_layer", o.n_layers},
              {"vocab_size", o.vocab_size}, {"pad_vocab_size_multiple", 1},
              {"rms_norm", true},           {"residual_in_fp32", true},
              {"fused_add_norm", true},     {"ssm_cfg", {{"d_state", o.d_state}}},
              {"jrt_arch", "mamba"}};
    return j.dump(1);
  }
  const int64_t heads = (o.mixer == "attention" || o.mixer == "sliding") ? o.attn_heads : 1;
  JRT_CHECK(heads >= 1 && o.d_model % heads == 0, "synth: --heads {} must divide --d-model {}", heads, o.d_model);
  json j = {{"model_type", "gpt2"},
            {"n_embd", o.d_model},
            {"n_layer", o.n_layers},
            {"n_head", heads},
            {"vocab_size", o.vocab_size},
            {"pad_vocab_size_multiple", 1},
            {"activation_function", "swiglu"},
            {"n_inner", o.mlp_hidden},
            {"n_positions", 0},
            {"rms_norm", !o.layer_norm},
            {"residual_in_fp32", true},
            {"layer_norm_epsilon", 1e-5},
            {"mlp_fc1_bias", false},
            {"mlp_fc2_bias", false},
            {"qkv_proj_bias", true},
            {"out_proj_bias", true},
            {"rotary_emb_fraction", 1.0},
            {"tie_word_embeddings", true},
            {"fused_dropout_add_ln", false},
            {"fused_bias_fc", false},
            {"use_flash_attn", false}};
  if (o.mixer == "attention") {
    j["jrt_arch"] = "attn";
    return j.dump(1);
  }
  j["mixer"] = {{"_target_", "based.models.mixers.convolution.BaseConv"},
                {"expand_proj", 2},
                {"kernel_size", 3},
                {"use_bias", true}};
  std::vector<int64_t> alt;
  for (int64_t i = 1; i < o.n_layers; i += 2) alt.push_back(i);
  if (o.mixer == "baseconv") {
    j["jrt_arch"] = "based";
    return j.dump(1);
  }
  j["alt_mixer_layers"] = alt;
  if (o.mixer == "based" || o.mixer == "jrt") {
    JRT_CHECK(o.feature_dim >= 1, "synth: --feature-dim must be >= 1, got {}", o.feature_dim);
    JRT_CHECK(o.la_heads >= 1 && o.d_model % o.la_heads == 0, "synth: --la-heads {} must divide --d-model {}",
              o.la_heads, o.d_model);
    json la = {{"feature_dim", o.feature_dim}, {"num_heads", o.la_heads}, {"feature_name", "taylor_exp"}};
    if (o.mixer == "based") {
      la["_target_"] = "based.models.mixers.linear_attention.LinearAttention";
      la["parallel_implementation"] = "quadratic";
      j["jrt_arch"] = "based";
    } else {
      const int64_t enc = o.enc_length > 0 ? o.enc_length : o.max_len;
      JRT_CHECK(enc >= 1, "synth: the jrt mixer needs --enc-length >= 1 (or a known sequence length)");
      la["_target_"] = "based.models.mixers.prefix_linear_attention.PrefixLinearAttention";
      la["enc_length"] = enc;
      la["implementation"] = "default";
      j["enc_length"] = enc;
      j["jrt_arch"] = "jrt";
    }
    j["alt_mixer"] = la;
  } else {  // sliding
    JRT_CHECK(o.window >= 1, "synth: --window must be >= 1, got {}", o.window);
    j["alt_mixer"] = {{"_target_", "based.models.mixers.slide_attention.SlidingAttention"},
                      {"window_size", 2 * o.window},
                      {"causal", true}};
    j["jrt_arch"] = "based";
  }
  return j.dump(1);
}

ModelConfig model_config(const ModelOptions& o) { return parse_config(config_json(o), "synth model config"); }

WeightStore init_weights(const ModelConfig& c, uint64_t seed) {
  WeightStore ws = random_weights(c, seed, 0.02f);
  const float s = float(1.0 / std::sqrt(2.0 * double(c.n_layer)));
  for (const auto& name : ws.names()) {
    const bool rescale =
        name.find("out_proj.weight") != std::string::npos || name.find("fc2.weight") != std::string::npos;
    if (!rescale) continue;
    const Tensor& t = ws.get(name);
    float* p = t.ptr<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] *= s;
  }
  return ws;
}

}  // namespace jrt::synth
