// ops/embedding.h — token embedding lookup: y[n] = E[ids[n]].
// Shapes: ids [N], E [V, d], y [N, d]. Ids outside [0, V) are an error naming the id and position.
#pragma once
#include <cstdint>
#include <span>

namespace jrt::ops {

void embedding_fwd(std::span<const int64_t> ids, const float* E, int64_t V, int64_t d, float* y);

}  // namespace jrt::ops
