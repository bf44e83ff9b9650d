// tests/common/cuda_buffers.h — host <-> device helpers of the CUDA tests (CUDA builds only): uploads and
// downloads of whole buffers, bf16 views of uint16 device buffers, column slices of strided rows and
// normal random data.
#pragma once
#ifdef JRT_HAVE_CUDA
#include <cuda_bf16.h>

#include <cstdint>
#include <random>
#include <vector>

#include "core/cuda_util.h"
#include "core/dtype.h"

namespace jrt::test {

template <class T>
cuda::DeviceBuffer<T> upload(const std::vector<T>& h) {
  cuda::DeviceBuffer<T> d(h.size());
  if (!h.empty()) d.upload(h.data(), h.size());
  return d;
}
template <class T>
std::vector<T> download(const cuda::DeviceBuffer<T>& d) {
  std::vector<T> h(d.size());
  if (!h.empty()) d.download(h.data(), h.size());
  return h;
}
// A bf16 device buffer (held as uint16 bits) as fp32 values.
inline std::vector<float> download_bf16(const cuda::DeviceBuffer<uint16_t>& d) {
  const std::vector<uint16_t> b = download(d);
  std::vector<float> f(b.size());
  for (size_t i = 0; i < b.size(); ++i) f[i] = bf16_to_f32(b[i]);
  return f;
}
inline const __nv_bfloat16* bf(const cuda::DeviceBuffer<uint16_t>& d) {
  return reinterpret_cast<const __nv_bfloat16*>(d.get());
}
inline __nv_bfloat16* bf_mut(cuda::DeviceBuffer<uint16_t>& d) { return reinterpret_cast<__nv_bfloat16*>(d.get()); }

// Columns [c0, c0 + w) of N rows of stride ld, packed [N, w].
inline std::vector<float> columns(const std::vector<float>& m, int64_t N, int64_t ld, int64_t c0, int64_t w) {
  std::vector<float> out(size_t(N * w));
  for (int64_t r = 0; r < N; ++r)
    for (int64_t c = 0; c < w; ++c) out[size_t(r * w + c)] = m[size_t(r * ld + c0 + c)];
  return out;
}

// n draws of N(mean, sd^2).
inline std::vector<float> randn(size_t n, std::mt19937& rng, float mean, float sd) {
  std::normal_distribution<float> d(mean, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace jrt::test
#endif
