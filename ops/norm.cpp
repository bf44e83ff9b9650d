// ops/norm.cpp — row-wise norms, threaded over rows.
#include "ops/norm.h"

#include <cmath>

#include "core/threads.h"

namespace jrt::ops {

void rmsnorm_fwd(const float* x, const float* w, float eps, int64_t N, int64_t d, float* y) {
  parallel_for(N, 16, [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      const float* xr = x + n * d;
      float* yr = y + n * d;
      double ss = 0;
      for (int64_t i = 0; i < d; ++i) ss += double(xr[i]) * xr[i];
      float r = float(1.0 / std::sqrt(ss / double(d) + double(eps)));
      for (int64_t i = 0; i < d; ++i) yr[i] = xr[i] * r * w[i];
    }
  });
}

void layernorm_fwd(const float* x, const float* w, const float* b, float eps, int64_t N, int64_t d, float* y) {
  parallel_for(N, 16, [&](int64_t lo, int64_t hi) {
    for (int64_t n = lo; n < hi; ++n) {
      const float* xr = x + n * d;
      float* yr = y + n * d;
      double s = 0, ss = 0;
      for (int64_t i = 0; i < d; ++i) s += xr[i];
      double mean = s / double(d);
      for (int64_t i = 0; i < d; ++i) ss += (xr[i] - mean) * (xr[i] - mean);
      float r = float(1.0 / std::sqrt(ss / double(d) + double(eps)));
      for (int64_t i = 0; i < d; ++i) yr[i] = float(xr[i] - mean) * r * w[i] + (b ? b[i] : 0.0f);
    }
  });
}

}  // namespace jrt::ops
