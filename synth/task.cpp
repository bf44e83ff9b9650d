// synth/task.cpp — see task.h.
#include "synth/task.h"

#include <algorithm>
#include <numeric>

#include "core/error.h"

namespace jrt::synth {

int64_t Segment::supervised() const {
  return int64_t(std::count_if(labels.begin(), labels.end(), [](int64_t v) { return v != kIgnore; }));
}

uint64_t train_segment_seed(uint64_t data_seed, int64_t index) {
  return Rng::derive(data_seed, uint64_t(2 * index)) & ~(uint64_t(1) << 63);
}
uint64_t test_segment_seed(uint64_t data_seed, int64_t index) {
  return Rng::derive(data_seed, uint64_t(2 * index + 1)) | (uint64_t(1) << 63);
}

std::vector<int64_t> sample_without_replacement(std::span<const int64_t> pool, int64_t size, Rng& rng) {
  JRT_CHECK(size >= 0 && size <= int64_t(pool.size()), "cannot draw {} distinct elements from a pool of {}", size,
            pool.size());
  std::vector<int64_t> a(pool.begin(), pool.end());
  for (int64_t i = 0; i < size; ++i) {  // partial Fisher-Yates: a[0..size) is a uniform ordered subset
    int64_t j = rng.uniform_int(i, int64_t(a.size()));
    std::swap(a[size_t(i)], a[size_t(j)]);
  }
  a.resize(size_t(size));
  return a;
}

std::vector<int64_t> weighted_choice_without_replacement(std::span<const double> p_in, int64_t size, Rng& rng) {
  const int64_t n = int64_t(p_in.size());
  int64_t nonzero = 0;
  for (double v : p_in) {
    JRT_CHECK(v >= 0, "weighted choice: negative probability {}", v);
    nonzero += v > 0;
  }
  JRT_CHECK(size <= nonzero, "weighted choice: {} draws but only {} entries have non-zero probability", size, nonzero);
  std::vector<double> p(p_in.begin(), p_in.end()), cdf(static_cast<size_t>(n));
  std::vector<int64_t> found;
  std::vector<char> taken(size_t(n), 0);
  while (int64_t(found.size()) < size) {
    const int64_t k = size - int64_t(found.size());
    std::vector<double> x(static_cast<size_t>(k));
    for (auto& v : x) v = rng.uniform();
    for (int64_t f : found) p[size_t(f)] = 0;
    std::partial_sum(p.begin(), p.end(), cdf.begin());
    const double total = cdf.back();
    for (auto& c : cdf) c /= total;
    for (double u : x) {
      // searchsorted(cdf, u, side='right'): the first index whose cdf exceeds u.
      int64_t i = int64_t(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
      i = std::min(i, n - 1);
      if (!taken[size_t(i)]) {
        taken[size_t(i)] = 1;
        found.push_back(i);
      }
    }
  }
  return found;
}

}  // namespace jrt::synth
