// synth/mqar.cpp — see mqar.h. Follows zoology/data/multiquery_ar.py step by step; the random streams
// are this project's (synthetics-spec §1.1: distributions, not numpy's bits).
#include "synth/mqar.h"

#include <cmath>
#include <numeric>

#include "core/error.h"

namespace jrt::synth {

void validate(const MqarConfig& c) {
  JRT_CHECK(c.num_examples >= 1, "mqar: the number of examples must be >= 1, got {}", c.num_examples);
  JRT_CHECK(c.num_kv_pairs >= 1, "mqar: --kv-pairs must be >= 1, got {}", c.num_kv_pairs);
  JRT_CHECK(c.seq_len >= 4 && c.seq_len % 2 == 0, "mqar: --seq-len must be even and >= 4, got {}", c.seq_len);
  JRT_CHECK(4 * c.num_kv_pairs <= c.seq_len,
            "mqar: --kv-pairs {} do not fit in --seq-len {}: the key-value block (2*{}) and as many query slots need "
            "seq_len >= 4 * kv_pairs = {}",
            c.num_kv_pairs, c.seq_len, c.num_kv_pairs, 4 * c.num_kv_pairs);
  JRT_CHECK(c.vocab_size > c.seq_len, "mqar: --vocab {} is too small: Zoology requires vocab > seq_len ({})",
            c.vocab_size, c.seq_len);
  JRT_CHECK(c.num_kv_pairs <= c.vocab_size / 2 - 1,
            "mqar: --vocab {} is too small for {} distinct keys (keys are drawn from [1, vocab/2) = {} tokens)",
            c.vocab_size, c.num_kv_pairs, c.vocab_size / 2 - 1);
  JRT_CHECK(c.power_a > 0 && std::isfinite(c.power_a), "mqar: --power-a must be > 0, got {}", c.power_a);
}

Segment make_mqar(const MqarConfig& c, uint64_t seed) {
  validate(c);
  const int64_t V = c.vocab_size, N = c.num_examples, L = c.seq_len, D = c.num_kv_pairs;
  const int64_t C = 2 * D, half = V / 2, space = (L - C) / 2;
  Rng rng(seed);
  std::vector<int64_t> key_pool(static_cast<size_t>(half - 1)), value_pool(static_cast<size_t>(V - half));
  std::iota(key_pool.begin(), key_pool.end(), int64_t(1));
  std::iota(value_pool.begin(), value_pool.end(), half);
  std::vector<double> p(static_cast<size_t>(space));
  double sum = 0;
  for (int64_t g = 0; g < space; ++g) sum += (p[size_t(g)] = c.power_a * std::pow(double(g + 1), c.power_a - 1));
  for (auto& v : p) v /= sum;

  Segment s;
  s.n = N;
  s.L = L;
  s.inputs.assign(size_t(N * L), 0);
  s.labels.assign(size_t(N * L), kIgnore);
  s.slice_key = "num_kv_pairs";
  s.slice_value = std::to_string(D);
  // Same draw order as the reference: all keys, all values, all gaps, then the random fill.
  std::vector<std::vector<int64_t>> keys(static_cast<size_t>(N)), values(static_cast<size_t>(N)),
      gaps(static_cast<size_t>(N));
  for (auto& k : keys) k = sample_without_replacement(key_pool, D, rng);
  for (auto& v : values) v = sample_without_replacement(value_pool, D, rng);
  for (auto& g : gaps) g = weighted_choice_without_replacement(p, D, rng);
  for (int64_t e = 0; e < N; ++e) {
    int64_t* in = s.inputs.data() + e * L;
    int64_t* lab = s.labels.data() + e * L;
    for (int64_t j = 0; j < D; ++j) {
      in[2 * j] = keys[size_t(e)][size_t(j)];
      in[2 * j + 1] = values[size_t(e)][size_t(j)];
      const int64_t q = C + 2 * gaps[size_t(e)][size_t(j)];  // input position holding the query key
      in[q] = keys[size_t(e)][size_t(j)];
      lab[q] = values[size_t(e)][size_t(j)];  // labels are the sequence shifted by one
    }
  }
  if (c.random_non_queries)
    for (auto& t : s.inputs)
      if (t == 0) t = rng.uniform_int(0, V);
  return s;
}

}  // namespace jrt::synth
