// ops/embedding.cpp — row gather with range checks.
#include "ops/embedding.h"

#include <cstring>

#include "core/error.h"

namespace jrt::ops {

void embedding_fwd(std::span<const int64_t> ids, const float* E, int64_t V, int64_t d, float* y) {
  for (size_t n = 0; n < ids.size(); ++n) {
    JRT_CHECK(ids[n] >= 0 && ids[n] < V, "token id {} at position {} is outside the vocabulary [0, {})", ids[n], n,
              V);
    std::memcpy(y + int64_t(n) * d, E + ids[n] * d, size_t(d) * sizeof(float));
  }
}

}  // namespace jrt::ops
