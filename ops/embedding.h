// ops/embedding.h — token embedding lookup: y[n] = E[ids[n]]; and its training form / backward.
// Shapes: ids [N], E [V, d], y [N, d]. Ids outside [0, V) are an error naming the id and position.
#pragma once
#include <cstdint>
#include <span>

namespace jrt::ops {

void embedding_fwd(std::span<const int64_t> ids, const float* E, int64_t V, int64_t d, float* y);

// ---- training form (T = float / double) -------------------------------------------------------
// Saved-activation contract: the backward reads only ids.
template <class T>
void embedding_fwd_t(std::span<const int64_t> ids, const T* E, int64_t V, int64_t d, T* y);
// dE [V, d] += scatter-add of dy [N, d] rows into rows ids[n] (repeated ids add up). The tied LM head's
// gradient is this plus the head projection's dW, both += into the same buffer.
template <class T>
void embedding_bwd_t(std::span<const int64_t> ids, const T* dy, int64_t V, int64_t d, T* dE);

}  // namespace jrt::ops
