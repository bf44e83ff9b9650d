// synth/disjoint.h — the JRT repo's set-disjointness task (synthetics-spec §3.1): two sets A and B
// drawn from disjoint halves of a shuffled vocabulary, one element of A planted into B, and the model
// must output that common element after the answer separator:
//   input  = [1] A [2] B [3]        (tokens 0..3 are special, elements are 4..V-1)
//   label  = -100 everywhere except the last position, whose target is the common element.
#pragma once
#include <cstdint>

#include "synth/task.h"

namespace jrt::synth {

struct DisjointConfig {
  int64_t vocab_size = 2048;
  int64_t num_examples = 1000;
  int64_t short_length = 4;  // |A|, the FIRST set (the name is positional)
  int64_t long_length = 16;  // |B|, the second set
  int64_t seq_len() const { return short_length + long_length + 3; }
};

// Throws naming the parameter: |A| <= V/2, |B| <= V - 4 - V/2, both >= 1.
void validate(const DisjointConfig& c);

Segment make_disjoint(const DisjointConfig& c, uint64_t seed);

}  // namespace jrt::synth
