// ops/taylor.h — Based's 2nd-order Taylor feature map (models-spec §3):
//   phi(x) = [1, x / fd^(1/4), vec(x x^T) / (sqrt(2) * sqrt(fd))],  x in R^fd, len 1 + fd + fd^2.
// phi(q).phi(k) = 1 + s + s^2/2 with s = q.k / sqrt(fd). All fd^2 ordered pairs are kept (row-major
// index 1 + fd + i*fd + j), as the reference does.
#pragma once
#include <cmath>
#include <cstdint>

namespace jrt::ops {

inline int64_t taylor_dim(int64_t fd) { return 1 + fd + fd * fd; }

// x [fd] -> out [1 + fd + fd^2]
inline void taylor_features(const float* x, int64_t fd, float* out) {
  const float r1 = float(1.0 / std::sqrt(std::sqrt(double(fd))));
  const float r2 = float(1.0 / (std::sqrt(2.0) * std::sqrt(double(fd))));
  out[0] = 1.0f;
  for (int64_t i = 0; i < fd; ++i) out[1 + i] = x[i] * r1;
  float* o2 = out + 1 + fd;
  for (int64_t i = 0; i < fd; ++i)
    for (int64_t j = 0; j < fd; ++j) o2[i * fd + j] = x[i] * x[j] * r2;
}

// The kernel value phi(q).phi(k) from s = q.k (unscaled dot product).
inline float taylor_kernel_from_dot(float qk, int64_t fd) {
  float s = qk / std::sqrt(float(fd));
  return 1.0f + s + 0.5f * s * s;
}

// ---- training forms (T = float / double) ----
// x [fd] -> out [1 + fd + fd^2]; T = float equals taylor_features.
template <class T>
inline void taylor_features_t(const T* x, int64_t fd, T* out) {
  const T r1 = T(1.0 / std::sqrt(std::sqrt(double(fd))));
  const T r2 = T(1.0 / (std::sqrt(2.0) * std::sqrt(double(fd))));
  out[0] = T(1);
  for (int64_t i = 0; i < fd; ++i) out[1 + i] = x[i] * r1;
  T* o2 = out + 1 + fd;
  for (int64_t i = 0; i < fd; ++i)
    for (int64_t j = 0; j < fd; ++j) o2[i * fd + j] = x[i] * x[j] * r2;
}

// Backward of the feature map: dx [fd] (=) from dphi [1 + fd + fd^2] at x:
//   dx_a = r1 dphi1_a + r2 sum_b (dphi2_ab + dphi2_ba) x_b
template <class T>
inline void taylor_features_bwd_t(const T* x, int64_t fd, const T* dphi, T* dx) {
  const T r1 = T(1.0 / std::sqrt(std::sqrt(double(fd))));
  const T r2 = T(1.0 / (std::sqrt(2.0) * std::sqrt(double(fd))));
  const T* d2 = dphi + 1 + fd;
  for (int64_t a = 0; a < fd; ++a) {
    T acc = 0;
    for (int64_t b = 0; b < fd; ++b) acc += (d2[a * fd + b] + d2[b * fd + a]) * x[b];
    dx[a] = r1 * dphi[1 + a] + r2 * acc;
  }
}

}  // namespace jrt::ops
