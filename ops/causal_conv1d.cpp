// ops/causal_conv1d.cpp — direct form; K is tiny (3-4), so a GEMM would not pay.
#include "ops/causal_conv1d.h"

#include <vector>

#include "core/threads.h"

namespace jrt::ops {

void causal_conv1d_fwd(const float* x, int64_t ldx, int64_t L, int64_t C, const float* w, int64_t K, const float* b,
                       float* tail, float* y, int64_t ldy) {
  if (L <= 0) return;
  const int64_t T = K - 1;
  // Inputs at time t - T .. t come from the tail while t - T + i < 0.
  auto input = [&](int64_t t, int64_t c) -> float { return t >= 0 ? x[t * ldx + c] : tail[(T + t) * C + c]; };
  parallel_for(C, 64, [&](int64_t c0, int64_t c1) {
    for (int64_t t = 0; t < L; ++t)
      for (int64_t c = c0; c < c1; ++c) {
        float acc = b ? b[c] : 0.0f;
        const float* wc = w + c * K;
        for (int64_t i = 0; i < K; ++i) acc += wc[i] * input(t - T + i, c);
        y[t * ldy + c] = acc;
      }
  });
  // New tail: the last T inputs of (old tail ++ x).
  if (T > 0) {
    std::vector<float> nt(size_t(T * C));
    for (int64_t r = 0; r < T; ++r) {
      int64_t t = L - T + r;  // time index relative to x
      for (int64_t c = 0; c < C; ++c) nt[size_t(r * C + c)] = input(t, c);
    }
    std::copy(nt.begin(), nt.end(), tail);
  }
}

}  // namespace jrt::ops
