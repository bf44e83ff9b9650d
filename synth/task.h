// synth/task.h — what every synthetic recall task produces (a Zoology "DataSegment"): inputs and
// labels [n, L] (int64, -100 = not supervised) and the slice it reports accuracy under, plus the
// sampling helpers the generators share (uniform subsets, numpy's weighted choice without replacement).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "train/rng.h"

namespace jrt::synth {

inline constexpr int64_t kIgnore = -100;

struct Segment {
  int64_t n = 0, L = 0;
  std::vector<int64_t> inputs, labels;  // [n, L] row-major
  std::string slice_key, slice_value;   // e.g. "num_kv_pairs" = "8"; one value per segment, as in Zoology
  std::string name() const { return slice_key + "=" + slice_value + " L=" + std::to_string(L); }
  int64_t supervised() const;  // labels != -100
};

// Seeds of train and test segments never collide (Zoology draws them from [0, 2^31) and [2^31, 2^32)):
// train seeds have the top bit clear, test seeds set.
uint64_t train_segment_seed(uint64_t data_seed, int64_t index);
uint64_t test_segment_seed(uint64_t data_seed, int64_t index);

// `size` distinct elements of pool in uniformly random order (numpy choice(pool, size, replace=False)).
std::vector<int64_t> sample_without_replacement(std::span<const int64_t> pool, int64_t size, Rng& rng);

// numpy's Generator-free RandomState.choice(len(p), size, replace=False, p=p) algorithm: draw the
// missing number of samples from the renormalised remaining mass at once, keep the new distinct
// indices in order of first appearance, repeat. Reproduces numpy's distribution exactly (with this
// RNG's stream).
std::vector<int64_t> weighted_choice_without_replacement(std::span<const double> p, int64_t size, Rng& rng);

}  // namespace jrt::synth
