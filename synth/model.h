// synth/model.h — the model of the synthetic recall experiments as a jrt ModelConfig (so the trainer,
// `jrt forward` / `jrt generate` and the state-size accounting all run it): Zoology's language model
// (synthetics-spec §2.1: embedding, pre-norm blocks, final norm, tied head, no positional embeddings,
// no MLP unless asked) with jrt's mixers, Zoology's hybrid layer pattern (layer i takes configs[i % 2]):
//   based     BaseConv, LinearAttention (Taylor)   alternating       (Based paper MQAR sweep)
//   jrt       BaseConv, PrefixLinearAttention      alternating       (non-causal read of the prefix)
//   sliding   BaseConv, SlidingAttention           alternating
//   attention MHA with rotary positions in every layer                (Zoology Fig. 2 attention)
//   mamba     Mamba blocks (RMSNorm)                                  (Zoology MambaBlock)
//   baseconv  BaseConv in every layer
// The mixers are jrt's (models-spec §4-§5), not Zoology's own modules: BaseConv is the gated
// in_proj / short conv / SiLU / out_proj form (expand 2 here: d -> 2d -> d), attention uses rotary
// instead of learned absolute positions, and the Taylor linear attention keeps all fd^2 products.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/config.h"
#include "io/weights.h"

namespace jrt::synth {

struct ModelOptions {
  std::string mixer = "based";
  int64_t d_model = 64;
  int64_t n_layers = 2;
  int64_t vocab_size = 0;    // the task's vocabulary (no padding)
  int64_t feature_dim = 16;  // Taylor feature dim (based, jrt)
  int64_t la_heads = 1;      // linear-attention heads (based, jrt)
  int64_t attn_heads = 1;    // softmax-attention heads (attention, sliding)
  int64_t window = 16;       // sliding: keys visible to the left of each query
  int64_t enc_length = 0;    // jrt: prefix read non-causally (0: the whole sequence, max_len)
  int64_t max_len = 0;       // longest sequence the experiment uses (jrt default prefix)
  int64_t d_state = 16;      // mamba
  int64_t mlp_hidden = 0;    // 0: no MLP (Zoology's state_mixer = Identity); else SwiGLU hidden size
  bool layer_norm = true;    // Zoology's LayerNorm (with bias); false: RMSNorm. Mamba always RMSNorm.
};

const std::vector<std::string>& mixer_names();  // based, jrt, sliding, attention, mamba, baseconv

// config.json text of the model (checked: d_model / head divisibility, known mixer).
std::string config_json(const ModelOptions& o);
ModelConfig model_config(const ModelOptions& o);

// Zoology's init (synthetics-spec §2.1): N(0, 0.02) matrices and embedding, norms 1, biases 0,
// out_proj / fc2 re-drawn with std 0.02 / sqrt(2 * n_layers); Mamba's own init for its parameters.
WeightStore init_weights(const ModelConfig& c, uint64_t seed);

}  // namespace jrt::synth
