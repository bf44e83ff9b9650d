// ops/norm.cpp — row-wise norms, threaded over rows.
#include "ops/norm.h"

namespace jrt::ops {

// The inference forms are the training forms without saved statistics (one implementation).
void rmsnorm_fwd(const float* x, const float* w, float eps, int64_t N, int64_t d, float* y) {
  rmsnorm_fwd_t<float>(x, w, double(eps), N, d, y, nullptr);
}

void layernorm_fwd(const float* x, const float* w, const float* b, float eps, int64_t N, int64_t d, float* y) {
  layernorm_fwd_t<float>(x, w, b, double(eps), N, d, y, nullptr, nullptr);
}

}  // namespace jrt::ops
