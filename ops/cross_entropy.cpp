// ops/cross_entropy.cpp — row-wise softmax cross-entropy with an ignore label: forward (loss sum, count,
// saved log-sum-exp) and backward (softmax - onehot, times the caller's scale). Threaded over rows.
#include "ops/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/threads.h"

namespace jrt::ops {

namespace {
void check_labels(const int64_t* labels, int64_t N, int64_t V, int64_t ignore_index) {
  for (int64_t n = 0; n < N; ++n)
    JRT_CHECK(labels[n] == ignore_index || (labels[n] >= 0 && labels[n] < V),
              "cross entropy: label {} of row {} is neither the ignore index {} nor in [0, {})", labels[n], n,
              ignore_index, V);
}
}  // namespace

template <class T>
CeSums cross_entropy_fwd_t(const T* logits, int64_t N, int64_t V, const int64_t* labels, T* lse, T* row_loss,
                           int64_t ldl, int64_t ignore_index) {
  JRT_CHECK(V > 0, "cross entropy: vocabulary size must be > 0, got {}", V);
  if (ldl < 0) ldl = V;
  check_labels(labels, N, V, ignore_index);
  std::vector<double> loss(size_t(std::max<int64_t>(N, 0)), 0.0);
  parallel_for(N, 4, [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      const T* r = logits + n * ldl;
      T mx = r[0];
      for (int64_t v = 1; v < V; ++v) mx = std::max(mx, r[v]);
      // Sum of exponentials in double for both T: the loss is a long reduction over the vocabulary.
      double s = 0;
      for (int64_t v = 0; v < V; ++v) s += std::exp(double(r[v] - mx));
      const double l = double(mx) + std::log(s);
      lse[n] = T(l);
      if (labels[n] != ignore_index) loss[size_t(n)] = l - double(r[labels[n]]);
      if (row_loss) row_loss[n] = T(loss[size_t(n)]);
    }
  });
  CeSums out;
  for (int64_t n = 0; n < N; ++n)
    if (labels[n] != ignore_index) {
      out.loss_sum += loss[size_t(n)];
      ++out.count;
    }
  return out;
}

template <class T>
void cross_entropy_bwd_t(const T* logits, int64_t N, int64_t V, const int64_t* labels, const T* lse, T scale,
                         T* dlogits, int64_t ldl, int64_t lddl, int64_t ignore_index) {
  if (ldl < 0) ldl = V;
  if (lddl < 0) lddl = V;
  check_labels(labels, N, V, ignore_index);
  parallel_for(N, 4, [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      const T* r = logits + n * ldl;
      T* d = dlogits + n * lddl;
      if (labels[n] == ignore_index) {
        std::fill(d, d + V, T(0));
        continue;
      }
      const T m = lse[n];
      for (int64_t v = 0; v < V; ++v) d[v] = std::exp(r[v] - m) * scale;  // reads r[v] before writing d[v]
      d[labels[n]] -= scale;
    }
  });
}

#define JRT_INST(T)                                                                                                   \
  template CeSums cross_entropy_fwd_t<T>(const T*, int64_t, int64_t, const int64_t*, T*, T*, int64_t, int64_t);       \
  template void cross_entropy_bwd_t<T>(const T*, int64_t, int64_t, const int64_t*, const T*, T, T*, int64_t, int64_t, \
                                       int64_t);
JRT_INST(float)
JRT_INST(double)
#undef JRT_INST

}  // namespace jrt::ops
