// ops/linear_attention_state.cpp — exact conversion between the reference's 273-feature state and
// the GPU kernels' symmetric 160-feature state (models-spec §3):
//   273 map: [1, x/2, x_i x_j / (4 sqrt2) for all (i, j)]        160 map: [1, x/2, x_i^2/sqrt32, x_i x_j/4 (i<j), 0 pad]
// x_i^2/sqrt32 = x_i x_i / (4 sqrt2): the diagonal features are equal; an off-diagonal 160 feature is
// sqrt2 times one 273 feature, and the 273 map holds both (i,j) and (j,i).
#include <cmath>
#include <cstring>

#include "ops/linear_attention_cuda.h"

namespace jrt::ops {

namespace {
constexpr int kFd = 16;
int pair_index(int i, int j) {  // i < j -> 33 + rank of (i, j) in row-major upper-triangle order
  return 33 + i * (2 * kFd - i - 1) / 2 + (j - i - 1);
}
}  // namespace

void la_state_to_273(const float* S160, const float* z160, int64_t dv, float* S273, float* z273) {
  const double r2 = std::sqrt(0.5);
  auto row = [&](const float* src, float* dst, int64_t w, int f273, int f160, double scale) {
    for (int64_t e = 0; e < w; ++e) dst[f273 * w + e] = float(src[f160 * w + e] * scale);
  };
  for (int which = 0; which < 2; ++which) {
    const float* src = which ? z160 : S160;
    float* dst = which ? z273 : S273;
    const int64_t w = which ? 1 : dv;
    if (!src || !dst) continue;
    for (int f = 0; f < 17; ++f) row(src, dst, w, f, f, 1.0);
    for (int i = 0; i < kFd; ++i)
      for (int j = 0; j < kFd; ++j) {
        const int f273 = 17 + i * kFd + j;
        if (i == j)
          row(src, dst, w, f273, 17 + i, 1.0);
        else  // split the symmetric feature evenly over (i,j) and (j,i)
          row(src, dst, w, f273, pair_index(std::min(i, j), std::max(i, j)), r2);
      }
  }
}

void la_state_from_273(const float* S273, const float* z273, int64_t dv, float* S160, float* z160) {
  const double r2 = std::sqrt(0.5);
  for (int which = 0; which < 2; ++which) {
    const float* src = which ? z273 : S273;
    float* dst = which ? z160 : S160;
    const int64_t w = which ? 1 : dv;
    if (!src || !dst) continue;
    std::memset(dst, 0, sizeof(float) * size_t(kLaFeat * w));
    for (int f = 0; f < 17; ++f)
      for (int64_t e = 0; e < w; ++e) dst[f * w + e] = src[f * w + e];
    for (int i = 0; i < kFd; ++i) {
      for (int64_t e = 0; e < w; ++e) dst[(17 + i) * w + e] = src[(17 + i * kFd + i) * w + e];
      for (int j = i + 1; j < kFd; ++j)
        for (int64_t e = 0; e < w; ++e)
          dst[pair_index(i, j) * w + e] =
              float((double(src[(17 + i * kFd + j) * w + e]) + src[(17 + j * kFd + i) * w + e]) * r2);
    }
  }
}

}  // namespace jrt::ops
