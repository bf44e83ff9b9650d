// synth/mqar.h — Zoology's multi-query associative recall (synthetics-spec §4.1): D key-value pairs
// (keys from [1, V/2), values from [V/2, V), distinct within a sequence), then the keys queried again
// at power-law distributed even offsets of the query region; the target at a query is its value, every
// other label is -100; optionally every remaining 0 is replaced by a uniform random token.
#pragma once
#include <cstdint>

#include "synth/task.h"

namespace jrt::synth {

struct MqarConfig {
  int64_t vocab_size = 8192;
  int64_t num_examples = 1000;
  int64_t seq_len = 64;  // input_seq_len L (even)
  int64_t num_kv_pairs = 4;
  double power_a = 0.01;
  bool random_non_queries = true;
};

// Throws a jrt::Error naming the parameter when the task cannot be generated (Zoology's asserts:
// L even, V > L, 4D <= L; and enough distinct keys and values: D < V/2, D <= V - V/2).
void validate(const MqarConfig& c);

Segment make_mqar(const MqarConfig& c, uint64_t seed);

}  // namespace jrt::synth
