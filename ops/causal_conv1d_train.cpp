// ops/causal_conv1d_train.cpp — training form of the depthwise causal conv (zero initial tail) and its
// backward; threaded over channels (independent), time is a short K-tap loop.
#include "core/threads.h"
#include "ops/causal_conv1d.h"

namespace jrt::ops {

template <class T>
void causal_conv1d_fwd_t(const T* x, int64_t ldx, int64_t L, int64_t C, const T* w, int64_t K, const T* b, T* y,
                         int64_t ldy) {
  if (L <= 0) return;
  const int64_t P = K - 1;
  parallel_for(C, 64, [&](int64_t c0, int64_t c1) {
    for (int64_t t = 0; t < L; ++t)
      for (int64_t c = c0; c < c1; ++c) {
        // Same order of terms as causal_conv1d_fwd (bias first, taps 0..K-1, zeros before t = 0).
        T acc = b ? b[c] : T(0);
        const T* wc = w + c * K;
        for (int64_t i = 0; i < K; ++i) {
          const int64_t s = t - P + i;
          acc += wc[i] * (s >= 0 ? x[s * ldx + c] : T(0));
        }
        y[t * ldy + c] = acc;
      }
  });
}

template <class T>
void causal_conv1d_bwd_t(const T* dy, int64_t lddy, const T* x, int64_t ldx, int64_t L, int64_t C, const T* w,
                         int64_t K, T* dx, int64_t lddx, T* dw, T* db) {
  if (L <= 0) return;
  const int64_t P = K - 1;
  parallel_for(C, 64, [&](int64_t c0, int64_t c1) {
    if (dx)
      for (int64_t s = 0; s < L; ++s)
        for (int64_t c = c0; c < c1; ++c) {
          // x_s feeds y_t through tap i = s - t + P, for t = s .. s + P.
          T acc = 0;
          const T* wc = w + c * K;
          for (int64_t i = 0; i < K; ++i) {
            const int64_t t = s + P - i;
            if (t < L) acc += wc[i] * dy[t * lddy + c];
          }
          dx[s * lddx + c] = acc;
        }
    for (int64_t c = c0; c < c1; ++c) {
      if (dw)
        for (int64_t i = 0; i < K; ++i) {
          T acc = 0;
          for (int64_t t = 0; t < L; ++t) {
            const int64_t s = t - P + i;
            if (s >= 0) acc += dy[t * lddy + c] * x[s * ldx + c];
          }
          dw[c * K + i] += acc;
        }
      if (db) {
        T acc = 0;
        for (int64_t t = 0; t < L; ++t) acc += dy[t * lddy + c];
        db[c] += acc;
      }
    }
  });
}

#define JRT_INST(T)                                                                                                    \
  template void causal_conv1d_fwd_t<T>(const T*, int64_t, int64_t, int64_t, const T*, int64_t, const T*, T*, int64_t); \
  template void causal_conv1d_bwd_t<T>(const T*, int64_t, const T*, int64_t, int64_t, int64_t, const T*, int64_t, T*,  \
                                       int64_t, T*, T*);
JRT_INST(float)
JRT_INST(double)
#undef JRT_INST

}  // namespace jrt::ops
