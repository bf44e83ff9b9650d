// io/config.h — typed model configuration for the four families, parsed from a checkpoint's
// config.json (GPT2Config serialisation for JRT/Based/Attn, MambaConfig for Mamba; models-spec §1),
// with range and consistency checks. Shape-derived checks against the weights live in models/.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace jrt {

enum class Arch { Based, JRT, Mamba, Attn };
enum class MixerKind { BaseConv, LinearAttn, PrefixLinearAttn, SlidingAttn, MHA, Mamba };

const char* arch_name(Arch a);        // "based", "jrt", "mamba", "attn"
const char* mixer_name(MixerKind m);  // "BaseConv", "LinearAttention", ...
char mixer_letter(MixerKind m);       // c, L, P, s, A, M (models-spec §1.1 pattern strings)

struct BaseConvConfig {
  int64_t expand_proj = 4;  // in_proj: d -> expand_proj*d; d_inner = expand_proj*d/2
  int64_t kernel_size = 3;  // `kernel_sizes` in the config is ignored by the reference (models-spec §1.1)
  bool use_bias = true;
};

struct LinearAttnConfig {  // Based LinearAttention and JRT PrefixLinearAttention
  int64_t num_heads = 16;
  int64_t feature_dim = 16;     // q/k dim per head; Taylor feature size 1 + fd + fd^2
  int64_t head_dim = 0;         // value dim per head = d / num_heads
  double eps = 1e-12;           // reference recurrent/quadratic eps (FLA paths use 1e-6)
  bool use_decay_proj = false;  // Based fixed-decay variant (models-spec §4.3)
  // JRT only
  int64_t enc_length = 0;  // prefix length M = min(enc_length, L)
  int64_t l_max = 0;       // alt_mixer.l_max: Based decay mask size (0 = unknown)
  bool use_mask = true;
  int64_t feature_size() const { return 1 + feature_dim + feature_dim * feature_dim; }  // D = 273 for fd 16
};

struct SlidingAttnConfig {
  int64_t num_heads = 16;  // always n_head: the reference overrides the alt_mixer_2 value
  int64_t head_dim = 0;
  int64_t window_size = 256;  // config value (reference constructor default 128 when absent);
                              // a query sees window_size/2 keys back + itself
  int64_t left_window() const { return window_size / 2; }
};

struct AttnConfig {
  int64_t num_heads = 16;
  int64_t head_dim = 0;
};

struct MambaConfig {
  int64_t d_state = 16, d_conv = 4, expand = 2;
  int64_t dt_rank = 0;  // ceil(d_model / 16) when "auto"
  int64_t d_inner = 0;  // expand * d_model
  bool conv_bias = true, bias = false;
};

// Reference switches that choose kernels, not math (fixtures README "Flags changed"): every known value
// computes the same function, so they are recorded for reporting and never change what jrt computes.
struct ReferenceSwitches {
  bool fused_dropout_add_ln = false;
  bool fused_bias_fc = false;
  bool use_flash_attn = false;
  bool fused_add_norm = false;  // Mamba
  bool use_fast_path = true;    // Mamba
  // LinearAttention `parallel_implementation` (quadratic, linear, fla_parallel, fla_chunk) or
  // PrefixLinearAttention `implementation` (default, fla_parallel); empty when the model has neither.
  std::string la_implementation;
};

struct ModelConfig {
  Arch arch = Arch::Based;
  std::string source;  // config.json path, for messages
  int64_t d_model = 0, n_layer = 0;
  int64_t vocab_size = 0;  // tokenizer vocabulary
  int64_t pad_vocab_size_multiple = 8;
  int64_t padded_vocab = 0;  // embedding rows
  double norm_eps = 1e-5;
  bool rms_norm = true;
  bool residual_in_fp32 = true;
  bool tie_word_embeddings = true;
  int64_t bos_token_id = 50256, eos_token_id = 50256;
  int64_t max_position_embeddings = 0;  // 0: no learned positions (rotary only); GPT2Config default 1024

  // GPT-style blocks (JRT/Based/Attn)
  std::vector<MixerKind> layers;  // mixer of every layer
  int64_t n_head = 0;
  int64_t mlp_hidden = 0;                        // F (after multiple_of rounding); 0 = no MLP (Mamba)
  std::vector<int64_t> mlp_hidden_alternatives;  // other F the reference could have built (attn multiple_of 128)
  int64_t mlp_multiple_of = 256;                 // GatedMlp rounding of the hidden size
  std::string activation = "swiglu";
  // Linear biases of the GPT-style blocks. The reference defaults them to true when the key is absent;
  // the released configs (and these struct defaults) have them false.
  bool mlp_fc1_bias = false, mlp_fc2_bias = false;
  bool qkv_proj_bias = false, out_proj_bias = false;
  double rotary_fraction = 1.0;
  double rotary_base = 10000.0;
  int64_t rotary_dim = 0;  // int(fraction * head_dim) of the softmax-attention mixers
  bool fixed_decay = false;
  double decay_const = -3.0;

  BaseConvConfig conv;
  LinearAttnConfig la;  // used by LinearAttn and PrefixLinearAttn layers
  SlidingAttnConfig swa;
  AttnConfig attn;
  MambaConfig mamba;
  ReferenceSwitches switches;

  std::string pattern() const;  // e.g. "cLscccL"
  int64_t count(MixerKind m) const;
};

// Parses and validates; every error names the file and the field, e.g.
// "config.json: field 'n_embd' must be > 0, got -3".
ModelConfig load_config(const std::string& path);
ModelConfig parse_config(const std::string& json_text, const std::string& source);

// Number of parameters the config implies (models-spec §1 "params"): the tied lm_head is counted once,
// buffers (Based's transformer.decay.decay) are not parameters.
int64_t param_count(const ModelConfig& c);

}  // namespace jrt
