// io/state_size.cpp — see state_size.h. Byte counts only; the state tensors themselves live in state/.
#include "io/state_size.h"

namespace jrt {

const char* state_policy_name(StatePolicy p) { return p == StatePolicy::CpuFp32 ? "cpu-fp32" : "reference"; }

StateBytes layer_state_bytes(const ModelConfig& c, MixerKind kind, StatePolicy policy) {
  constexpr int64_t f32 = 4, half = 2;
  const bool cpu = policy == StatePolicy::CpuFp32;
  StateBytes s;
  switch (kind) {
    case MixerKind::LinearAttn:
    case MixerKind::PrefixLinearAttn: {
      // kv [H, hd, D] and k [H, D]: PLA adds nothing over LA, the encoder only shapes prefill.
      const int64_t D = c.la.feature_size();
      s.fixed_bytes = f32 * c.la.num_heads * D * (c.la.head_dim + 1);
      break;
    }
    case MixerKind::BaseConv: {
      const int64_t d_inner = c.conv.expand_proj * c.d_model / 2;
      // The reference ShortConvolution keeps kernel_size inputs although only kernel_size-1 are read.
      const int64_t taps = cpu ? c.conv.kernel_size - 1 : c.conv.kernel_size;
      s.fixed_bytes = f32 * taps * d_inner;
      break;
    }
    case MixerKind::SlidingAttn:
      s.fixed_bytes = (cpu ? f32 : half) * 2 * c.swa.left_window() * c.swa.num_heads * c.swa.head_dim;
      break;
    case MixerKind::MHA:
      s.per_token_bytes = (cpu ? f32 : half) * 2 * c.attn.num_heads * c.attn.head_dim;
      break;
    case MixerKind::Mamba: {
      const MambaConfig& m = c.mamba;
      const int64_t conv = cpu ? m.d_conv - 1 : m.d_conv;
      s.fixed_bytes = f32 * m.d_inner * (conv + m.d_state);
      break;
    }
  }
  return s;
}

StateBytes model_state_bytes(const ModelConfig& c, StatePolicy policy) {
  StateBytes total;
  for (MixerKind k : c.layers) total += layer_state_bytes(c, k, policy);
  return total;
}

}  // namespace jrt
