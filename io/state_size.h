// io/state_size.h — decode-state bytes of one sequence, per layer and per model, under two storage
// policies: jrt's CPU engine (every state fp32) and the reference / GPU layout of models-spec §6.
#pragma once
#include <cstdint>
#include <string>

#include "io/config.h"

namespace jrt {

enum class StatePolicy {
  // CPU engine: LA/PLA kv [H, D, hd] + k [H, D]; BaseConv keeps the last kernel_size-1 conv inputs
  // [ks-1, d_inner]; SWA a ring of left_window() K and V entries [lw, H, hd] x2; Mamba conv tail
  // [d_conv-1, d_inner] + ssm [d_inner, d_state]; MHA K and V per token. All fp32.
  CpuFp32,
  // models-spec §6: LA/PLA fp32, BaseConv [d_inner, kernel_size] fp32, SWA bf16 ring of left_window()
  // entries, Mamba conv [d_inner, d_conv] + ssm [d_inner, d_state] fp32, MHA fp16 K and V per token.
  Reference,
};

const char* state_policy_name(StatePolicy p);  // "cpu-fp32", "reference"

struct StateBytes {
  int64_t fixed_bytes = 0;      // independent of the sequence length
  int64_t per_token_bytes = 0;  // grows with every token held (full attention KV cache)
  int64_t at(int64_t tokens) const { return fixed_bytes + per_token_bytes * tokens; }
  StateBytes& operator+=(const StateBytes& o) {
    fixed_bytes += o.fixed_bytes;
    per_token_bytes += o.per_token_bytes;
    return *this;
  }
};

StateBytes layer_state_bytes(const ModelConfig& c, MixerKind kind, StatePolicy policy);
StateBytes model_state_bytes(const ModelConfig& c, StatePolicy policy);  // sum over c.layers

}  // namespace jrt
