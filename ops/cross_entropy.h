// ops/cross_entropy.h — softmax cross-entropy over rows of logits with an ignore label, forward and
// backward (T = float / double). The mean is left to the caller: the forward returns the loss SUM and
// the number of counted rows, and the backward takes the scale to apply, so objectives that combine
// several means over different row sets (JRT: CE_mean(decoder rows) + 0.25 * CE_mean(prefix MLM rows),
// models-spec §9) call it once per row set with scale = weight / count.
//   loss_n = lse(logits_n) - logits_n[label_n]   for rows with label_n != ignore_index
// Labels must be ignore_index or in [0, V) (else jrt::Error naming the row and label).
#pragma once
#include <cstdint>

namespace jrt::ops {

constexpr int64_t kIgnoreIndex = -100;  // torch's / flash-attn's ignore_index

struct CeSums {
  double loss_sum = 0;  // sum of the per-row losses of the counted rows (accumulated in double)
  int64_t count = 0;    // rows whose label != ignore_index
};

// logits [N, V] (row stride ldl, < 0: V), labels [N]. Saved-activation contract: writes lse [N], the
// per-row log-sum-exp (also for ignored rows); the backward reads logits, labels and lse.
// row_loss [N] (optional, may be null): each row's loss, 0 for ignored rows.
template <class T>
CeSums cross_entropy_fwd_t(const T* logits, int64_t N, int64_t V, const int64_t* labels, T* lse, T* row_loss = nullptr,
                           int64_t ldl = -1, int64_t ignore_index = kIgnoreIndex);

// dlogits [N, V] (row stride lddl, < 0: V) (=) = (softmax(logits_n) - onehot(label_n)) * scale for counted
// rows, 0 for ignored rows. dlogits may alias logits (in place, same strides). Threaded over rows.
template <class T>
void cross_entropy_bwd_t(const T* logits, int64_t N, int64_t V, const int64_t* labels, const T* lse, T scale,
                         T* dlogits, int64_t ldl = -1, int64_t lddl = -1, int64_t ignore_index = kIgnoreIndex);

}  // namespace jrt::ops
