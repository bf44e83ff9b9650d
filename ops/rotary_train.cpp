// ops/rotary_train.cpp — training form of the rotary embedding: the rotation in T and its transpose.
#include <vector>

#include "core/error.h"
#include "core/threads.h"
#include "ops/rotary.h"

namespace jrt::ops {

namespace {

// sign = +1: x <- R x; sign = -1: x <- R^T x (same table values, so the transpose is exact).
template <class T>
void rotate(const Rotary& r, T* x, int64_t ld, int64_t N, int64_t H, int64_t hd, std::span<const int64_t> pos,
            bool transpose) {
  const int64_t half = r.rotated() / 2;
  if (half == 0 || N <= 0) return;
  JRT_CHECK(2 * half <= hd, "rotary: rotary_dim {} rotates {} dims, more than the head dim {}", r.rotary_dim(),
            2 * half, hd);
  JRT_CHECK(int64_t(pos.size()) >= N, "rotary: {} positions for {} rows", pos.size(), N);
  parallel_for(N, 16, [&](int64_t b, int64_t e) {
    std::vector<float> cf(static_cast<size_t>(half)), sf(static_cast<size_t>(half));
    for (int64_t n = b; n < e; ++n) {
      r.cos_sin(pos[size_t(n)], cf.data(), sf.data());
      T* row = x + n * ld;
      for (int64_t h = 0; h < H; ++h) {
        T* x0 = row + h * hd;
        T* x1 = x0 + half;
        for (int64_t j = 0; j < half; ++j) {
          const T c = T(cf[size_t(j)]), s = transpose ? -T(sf[size_t(j)]) : T(sf[size_t(j)]);
          const T a = x0[j], bb = x1[j];
          x0[j] = a * c - bb * s;
          x1[j] = a * s + bb * c;
        }
      }
    }
  });
}

}  // namespace

template <class T>
void Rotary::forward_t(T* x, int64_t ld, int64_t N, int64_t H, int64_t hd, std::span<const int64_t> pos) const {
  rotate(*this, x, ld, N, H, hd, pos, false);
}

template <class T>
void Rotary::backward_t(T* g, int64_t ld, int64_t N, int64_t H, int64_t hd, std::span<const int64_t> pos) const {
  rotate(*this, g, ld, N, H, hd, pos, true);
}

template void Rotary::forward_t<float>(float*, int64_t, int64_t, int64_t, int64_t, std::span<const int64_t>) const;
template void Rotary::forward_t<double>(double*, int64_t, int64_t, int64_t, int64_t, std::span<const int64_t>) const;
template void Rotary::backward_t<float>(float*, int64_t, int64_t, int64_t, int64_t, std::span<const int64_t>) const;
template void Rotary::backward_t<double>(double*, int64_t, int64_t, int64_t, int64_t, std::span<const int64_t>) const;

}  // namespace jrt::ops
