// synth/disjoint.cpp — see disjoint.h; follows synthetic/zoology/data/non_autoreg.py (DisjointSetsConfig)
// of the JRT repository. Random streams are this project's (synthetics-spec §1.1).
#include "synth/disjoint.h"

#include <numeric>

#include "core/error.h"

namespace jrt::synth {

void validate(const DisjointConfig& c) {
  JRT_CHECK(c.num_examples >= 1, "disjoint: the number of examples must be >= 1, got {}", c.num_examples);
  JRT_CHECK(c.vocab_size >= 6, "disjoint: --vocab must be >= 6 (4 special tokens and two non-empty pools), got {}",
            c.vocab_size);
  JRT_CHECK(c.short_length >= 1 && c.long_length >= 1,
            "disjoint: both set sizes must be >= 1, got --short-length {} --long-length {}", c.short_length,
            c.long_length);
  JRT_CHECK(c.short_length <= c.vocab_size / 2,
            "disjoint: --short-length {} (|A|) does not fit: A is drawn from vocab/2 = {} tokens (--vocab {})",
            c.short_length, c.vocab_size / 2, c.vocab_size);
  JRT_CHECK(
      c.long_length <= c.vocab_size - 4 - c.vocab_size / 2,
      "disjoint: --long-length {} (|B|) does not fit: B is drawn from vocab - 4 - vocab/2 = {} tokens (--vocab {})",
      c.long_length, c.vocab_size - 4 - c.vocab_size / 2, c.vocab_size);
}

Segment make_disjoint(const DisjointConfig& c, uint64_t seed) {
  validate(c);
  const int64_t V = c.vocab_size, N = c.num_examples, na = c.short_length, nb = c.long_length;
  const int64_t L = c.seq_len(), half = V / 2;
  Rng rng(seed);
  std::vector<int64_t> elems(static_cast<size_t>(V - 4));
  std::iota(elems.begin(), elems.end(), int64_t(4));
  Segment s;
  s.n = N;
  s.L = L;
  s.inputs.assign(size_t(N * L), 0);
  s.labels.assign(size_t(N * L), kIgnore);
  s.slice_key = "short_length_long_length";
  s.slice_value = std::to_string(na) + "_" + std::to_string(nb);
  for (int64_t e = 0; e < N; ++e) {
    std::vector<int64_t> perm = sample_without_replacement(elems, int64_t(elems.size()), rng);
    std::span<const int64_t> poolA(perm.data(), size_t(half)), poolB(perm.data() + half, perm.size() - size_t(half));
    std::vector<int64_t> A = sample_without_replacement(poolA, na, rng);
    std::vector<int64_t> B = sample_without_replacement(poolB, nb, rng);
    const int64_t t = A[size_t(rng.uniform_int(0, na))];
    B[size_t(rng.uniform_int(0, nb))] = t;
    int64_t* in = s.inputs.data() + e * L;
    int64_t p = 0;
    in[p++] = 1;
    for (int64_t a : A) in[p++] = a;
    in[p++] = 2;
    for (int64_t b : B) in[p++] = b;
    in[p++] = 3;
    s.labels[size_t(e * L + L - 1)] = t;
  }
  return s;
}

}  // namespace jrt::synth
