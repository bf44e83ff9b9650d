// ops/attention.h — causal softmax attention of one head of one sequence that continues from a K/V
// cache, with an optional sliding window (models-spec §5.3, §5.4; fixture README quirk 2):
//   query at absolute position p attends keys j with  max(0, p - left_window) <= j <= p
//   (left_window < 0: unlimited, full causal MHA), weights softmax_j(scale * q.k_j), fp32.
// Keys/values are handed over as consecutive runs of rows (the cache's part, then the new rows), so the
// same kernel serves the parallel prefill, chunked prefill and one-token decode. Also owns KvCache, the
// per-sequence cache for all heads: a growing buffer (full causal) or a ring of the last left_window
// positions (sliding window; older keys are never read again).
// Also the training form (T = float / double): one head of one sequence from position 0, forward saving
// the row log-sum-exp (flash-attention style) and backward wrt q, k, v.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace jrt::ops {

// n rows of keys and values at consecutive positions; row r of k / v at k + r*ld / v + r*ld (hd used).
struct KvRun {
  const float* k = nullptr;
  const float* v = nullptr;
  int64_t ld = 0;
  int64_t n = 0;
};

enum class AttnImpl {
  Auto,     // blocked GEMMs for blocks of >= 4 queries, direct loops otherwise
  Direct,   // per-query loops (the decode kernel)
  Blocked,  // score / value GEMMs per block of queries
};

struct AttnQuery {
  const float* q = nullptr;  // [L, hd], row stride ldq
  int64_t ldq = 0;
  float* y = nullptr;  // [L, hd] output, row stride ldy
  int64_t ldy = 0;
  int64_t L = 0, hd = 0;
  int64_t pos = 0;           // absolute position of query row 0
  int64_t left_window = -1;  // keys visible to the left of each query; < 0: all (full causal)
  float scale = 1.0f;        // softmax scale (hd^-0.5 in every model here)
  AttnImpl impl = AttnImpl::Auto;
};

// kv: runs in position order, the first row at position kv_first, the last at a.pos + a.L - 1; they
// must include every key some query can see (kv_first <= max(0, pos - left_window), 0 when full).
void attend(const AttnQuery& a, std::span<const KvRun> kv, int64_t kv_first);

// K/V cache of one sequence: rows of `width` floats (all heads, head h at columns [h*hd, (h+1)*hd)),
// post-rotary keys. Positions are absolute; the caller tracks the sequence position.
class KvCache {
 public:
  KvCache() = default;
  // left_window < 0: full cache that grows by one row per token; else a ring of left_window rows.
  KvCache(int64_t width, int64_t left_window);

  bool ring() const { return window_ >= 0; }
  int64_t width() const { return width_; }
  int64_t left_window() const { return window_; }
  // First cached position visible from a query at position >= pos.
  int64_t first(int64_t pos) const { return ring() ? (pos > window_ ? pos - window_ : 0) : 0; }
  // The cached rows of positions [first(pos), pos) for columns [col, col + hd): up to 2 runs (ring wrap).
  // Throws when a full cache does not hold exactly pos rows.
  int past(int64_t pos, int64_t col, KvRun out[2]) const;
  // Stores the rows of positions pos .. pos+L-1 (a ring keeps the last left_window of them).
  void append(int64_t pos, const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t L);

  // Raw storage (state save / restore): ring: [left_window, width] by slot = position % left_window;
  // full: [rows, width] by position.
  std::vector<float>& keys() { return k_; }
  std::vector<float>& values() { return v_; }
  const std::vector<float>& keys() const { return k_; }
  const std::vector<float>& values() const { return v_; }
  int64_t rows() const { return width_ > 0 ? int64_t(k_.size()) / width_ : 0; }

 private:
  int64_t width_ = 0, window_ = -1;
  std::vector<float> k_, v_;
};

// ---- training form ---------------------------------------------------------------------------
// One head of one sequence starting at position 0: query t sees keys j with
// max(0, t - left_window) <= j <= t (left_window < 0: all j <= t), P = softmax_j(scale * q_t.k_j),
// y_t = sum_j P_tj v_j. q, k, v, y are [L, hd] with row strides (so heads can be column slices of a
// packed [L, H*hd] buffer).
// Saved-activation contract: the forward writes y and lse [L] (lse_t = log sum_j exp(scale * q_t.k_j)
// over the visible keys); the backward reads q, k, v, y, lse and recomputes the probabilities block by
// block (no [L, L] matrix is kept). Single-threaded (GEMMs sized to stay single-threaded in BLAS):
// callers run (sequence, head) pairs in parallel.
template <class T>
struct AttnTrainHead {
  const T* q = nullptr;
  int64_t ldq = 0;
  const T* k = nullptr;
  int64_t ldk = 0;
  const T* v = nullptr;
  int64_t ldv = 0;
  int64_t L = 0, hd = 0;
  int64_t left_window = -1;  // < 0: full causal
  T scale = T(1);            // hd^-0.5 in every model here
};

// y [L, hd] (row stride ldy) (=), lse [L] (=).
template <class T>
void attention_fwd_t(const AttnTrainHead<T>& a, T* y, int64_t ldy, T* lse);
// dy [L, hd] (row stride lddy) -> dq, dk, dv [L, hd] (row strides lddq, lddk, lddv) (=). y and lse are the
// forward's outputs. dq / dk / dv must not overlap each other or the inputs.
template <class T>
void attention_bwd_t(const AttnTrainHead<T>& a, const T* y, int64_t ldy, const T* lse, const T* dy, int64_t lddy, T* dq,
                     int64_t lddq, T* dk, int64_t lddk, T* dv, int64_t lddv);

}  // namespace jrt::ops
