// models/params.h — the checkpoint tensors a config implies (names and shapes, in the reference's
// state_dict order per layer), and a seeded random initialisation of them. Used for synthetic
// benchmarks (360M/1B-shaped models without downloads) and as the trainer's initial weights.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/config.h"
#include "io/weights.h"

namespace jrt {

enum class ParamRole { Matrix, Embedding, NormWeight, Bias, ConvWeight, MambaALog, MambaD, MambaDtBias, Buffer };

struct ParamSpec {
  std::string name;
  Shape shape;
  ParamRole role;
};

// Every tensor (tied lm_head not listed: it is the embedding).
std::vector<ParamSpec> parameter_specs(const ModelConfig& c);

// Seeded init in the spirit of the reference: matrices N(0, std), embedding N(0, std), norms 1,
// biases 0, Mamba A_log = log(1..N), D = 1, dt bias = softplus^-1 of dt ~ logU[1e-3, 1e-1],
// Based decay buffer from decay_const.
WeightStore random_weights(const ModelConfig& c, uint64_t seed, float std = 0.02f);

}  // namespace jrt
