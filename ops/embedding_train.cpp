// ops/embedding_train.cpp — training form of the embedding lookup and its scatter-add backward.
#include <algorithm>

#include "core/error.h"
#include "core/threads.h"
#include "ops/embedding.h"

namespace jrt::ops {

namespace {
void check_ids(std::span<const int64_t> ids, int64_t V) {
  for (size_t n = 0; n < ids.size(); ++n)
    JRT_CHECK(ids[n] >= 0 && ids[n] < V, "token id {} at position {} is outside the vocabulary [0, {})", ids[n], n, V);
}
}  // namespace

template <class T>
void embedding_fwd_t(std::span<const int64_t> ids, const T* E, int64_t V, int64_t d, T* y) {
  check_ids(ids, V);
  parallel_for(int64_t(ids.size()), 64, [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) std::copy(E + ids[size_t(n)] * d, E + (ids[size_t(n)] + 1) * d, y + n * d);
  });
}

template <class T>
void embedding_bwd_t(std::span<const int64_t> ids, const T* dy, int64_t V, int64_t d, T* dE) {
  check_ids(ids, V);
  // Split over columns: repeated ids then never race, and each dE element sums its rows in order n.
  parallel_for(d, 64, [&](int64_t c0, int64_t c1) {
    for (size_t n = 0; n < ids.size(); ++n) {
      const T* g = dy + int64_t(n) * d;
      T* r = dE + ids[n] * d;
      for (int64_t c = c0; c < c1; ++c) r[c] += g[c];
    }
  });
}

template void embedding_fwd_t<float>(std::span<const int64_t>, const float*, int64_t, int64_t, float*);
template void embedding_fwd_t<double>(std::span<const int64_t>, const double*, int64_t, int64_t, double*);
template void embedding_bwd_t<float>(std::span<const int64_t>, const float*, int64_t, int64_t, float*);
template void embedding_bwd_t<double>(std::span<const int64_t>, const double*, int64_t, int64_t, double*);

}  // namespace jrt::ops
