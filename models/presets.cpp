// models/presets.cpp — the released configs' shapes, written as the reference serialises them.
#include "models/presets.h"

#include <fmt/format.h>

#include "core/error.h"

namespace jrt {

std::vector<std::string> preset_names() {
  return {"jrt-360m", "based-360m", "mamba-360m", "attn-360m", "jrt-1b", "based-1b", "mamba-1b", "attn-1b"};
}

static std::string gpt_mixer(const std::string& alt, int64_t d, int64_t layers, const std::string& alt_layers,
                             const std::string& alt2_layers) {
  return fmt::format(R"({{
  "n_embd": {}, "n_layer": {}, "n_head": 16, "n_inner": {}, "vocab_size": 50257, "pad_vocab_size_multiple": 8,
  "activation_function": "swiglu", "rms_norm": true, "residual_in_fp32": true, "layer_norm_epsilon": 1e-5,
  "n_positions": 0, "rotary_emb_fraction": 1, "fused_dropout_add_ln": true, "fused_bias_fc": true,
  "mlp_fc1_bias": false, "mlp_fc2_bias": false, "qkv_proj_bias": false, "out_proj_bias": false,
  "alt_mixer_layers": [{}], "alt_mixer_2_layers": [{}],
  "mixer": {{"_target_": "based.models.mixers.convolution.BaseConv", "l_max": 2048, "use_bias": true,
             "expand_proj": 4, "kernel_sizes": 3}},
  "alt_mixer": {},
  "alt_mixer_2": {{"_target_": "based.models.mixers.slide_attention.SlidingAttention", "window_size": 256,
                  "num_heads": 16, "causal": true}}
}})",
                     d, layers, d == 1024 ? 2048 : 3584, alt_layers, alt2_layers, alt);
}

std::string preset_config_json(const std::string& name) {
  const std::string l360 = "1, 6, 11, 16, 21", s360 = "2, 7, 12, 17, 22";
  const std::string l1b = "1, 6, 11, 16, 21, 27, 33", s1b = "2, 7, 12, 17, 22, 28, 34";
  const std::string pla =
      R"({"_target_": "based.models.mixers.prefix_linear_attention.PrefixLinearAttention", "feature_dim": 16,
          "num_heads": 16, "enc_length": 1024, "dec_length": 1024, "implementation": "fla_parallel", "use_mask": true})";
  const std::string la =
      R"({"_target_": "based.models.mixers.linear_attention.LinearAttention", "feature_dim": 16, "num_heads": 16,
          "feature_map": {"_target_": "based.models.mixers.linear_attention.TaylorExp", "input_dim": 16},
          "parallel_implementation": "fla_parallel"})";
  if (name == "jrt-360m") return gpt_mixer(pla, 1024, 26, l360, s360);
  if (name == "based-360m") return gpt_mixer(la, 1024, 27, l360, s360);
  if (name == "jrt-1b") return gpt_mixer(pla, 1792, 36, l1b, s1b);
  if (name == "based-1b") return gpt_mixer(la, 1792, 36, l1b, s1b);
  if (name == "mamba-360m" || name == "mamba-1b")
    return fmt::format(R"({{"d_model": {}, "n_layer": 46, "vocab_size": 50277, "ssm_cfg": {{}}, "rms_norm": true,
      "residual_in_fp32": true, "fused_add_norm": true, "pad_vocab_size_multiple": 16}})",
                       name == "mamba-360m" ? 1024 : 2048);
  if (name == "attn-360m" || name == "attn-1b") {
    const bool small = name == "attn-360m";
    return fmt::format(R"({{"n_embd": {}, "n_layer": {}, "n_head": {}, "vocab_size": 50257,
      "pad_vocab_size_multiple": 16, "activation_function": "swiglu", "rms_norm": true, "residual_in_fp32": true,
      "layer_norm_epsilon": 1e-5, "n_positions": 0, "rotary_emb_fraction": 0.5, "n_inner": null,
      "mlp_fc1_bias": false, "mlp_fc2_bias": false, "qkv_proj_bias": false, "out_proj_bias": false,
      "fused_dropout_add_ln": true, "use_flash_attn": true}})",
                       small ? 1024 : 1680, small ? 24 : 36, small ? 16 : 24);
  }
  fail("unknown model preset '{}' (known: jrt-360m, based-360m, mamba-360m, attn-360m, jrt-1b, based-1b, "
       "mamba-1b, attn-1b)",
       name);
}

}  // namespace jrt
