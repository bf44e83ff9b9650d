// ops/attention.cpp — windowed causal softmax attention over K/V runs (direct and blocked kernels)
// and the per-sequence K/V cache (growing or ring).
#include "ops/attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace jrt::ops {
namespace {

// OpenBLAS runs a GEMM single-threaded when m*n*k <= 4 * 65536; callers run heads / query blocks in
// parallel, so every GEMM here stays under that size (no nested BLAS threading).
constexpr int64_t kGemmBudget = 4 * 65536;
constexpr int64_t kQueryBlock = 64;

// Calls fn(first_pos, k, v, ld, n) for the rows of positions [from, to] in memory-contiguous pieces.
template <class F>
void for_rows(std::span<const KvRun> kv, int64_t kv_first, int64_t from, int64_t to, F&& fn) {
  int64_t p = kv_first;
  for (const KvRun& r : kv) {
    const int64_t a = std::max(p, from), b = std::min(p + r.n - 1, to);
    if (a <= b) fn(a, r.k + (a - p) * r.ld, r.v + (a - p) * r.ld, r.ld, b - a + 1);
    p += r.n;
  }
}

inline float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

inline int64_t lowest_key(int64_t p, int64_t left_window) {
  return left_window < 0 ? 0 : std::max<int64_t>(0, p - left_window);
}

// Scores of one row (already scaled) -> unnormalised weights in place; returns 1 / sum.
inline float softmax_row(float* s, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n; ++j) mx = std::max(mx, s[j]);
  float sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    s[j] = std::exp(s[j] - mx);
    sum += s[j];
  }
  return 1.0f / sum;
}

void attend_direct(const AttnQuery& a, std::span<const KvRun> kv, int64_t kv_first, int64_t t0, int64_t t1,
                   std::vector<float>& sc) {
  const int64_t hd = a.hd;
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t p = a.pos + t, lo = lowest_key(p, a.left_window), n = p - lo + 1;
    const float* q = a.q + t * a.ldq;
    float* y = a.y + t * a.ldy;
    sc.resize(size_t(n));
    for_rows(kv, kv_first, lo, p, [&](int64_t p0, const float* k, const float*, int64_t ld, int64_t m) {
      for (int64_t r = 0; r < m; ++r) sc[size_t(p0 - lo + r)] = dot(q, k + r * ld, hd) * a.scale;
    });
    const float inv = softmax_row(sc.data(), n);
    std::fill(y, y + hd, 0.0f);
    for_rows(kv, kv_first, lo, p, [&](int64_t p0, const float*, const float* v, int64_t ld, int64_t m) {
      for (int64_t r = 0; r < m; ++r) {
        const float w = sc[size_t(p0 - lo + r)];
        const float* vr = v + r * ld;
        for (int64_t e = 0; e < hd; ++e) y[e] += w * vr[e];
      }
    });
    for (int64_t e = 0; e < hd; ++e) y[e] *= inv;
  }
}

// Queries [t0, t1) (t1 - t0 <= block) with GEMMs: S = Q K^T over the block's key range, masked row
// softmax, Y = P V, all in tiles of kb keys.
void attend_blocked(const AttnQuery& a, std::span<const KvRun> kv, int64_t kv_first, int64_t t0, int64_t t1, int64_t kb,
                    std::vector<float>& S, std::vector<float>& inv) {
  const int64_t hd = a.hd, lb = t1 - t0, P0 = a.pos + t0, P1 = a.pos + t1 - 1;
  const int64_t klo = lowest_key(P0, a.left_window), nk = P1 - klo + 1;
  S.resize(size_t(lb * nk));
  inv.resize(size_t(lb));
  const float* q = a.q + t0 * a.ldq;
  float* y = a.y + t0 * a.ldy;
  for_rows(kv, kv_first, klo, P1, [&](int64_t p0, const float* k, const float*, int64_t ld, int64_t m) {
    for (int64_t j = 0; j < m; j += kb) {
      const int64_t c = std::min(kb, m - j);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(lb), int(c), int(hd), 1.0f, q, int(a.ldq), k + j * ld,
                  int(ld), 0.0f, S.data() + (p0 - klo + j), int(nk));
    }
  });
  for (int64_t i = 0; i < lb; ++i) {
    const int64_t p = P0 + i, lo = lowest_key(p, a.left_window) - klo, hi = p - klo;
    float* s = S.data() + i * nk;
    std::fill(s, s + lo, 0.0f);
    std::fill(s + hi + 1, s + nk, 0.0f);
    for (int64_t j = lo; j <= hi; ++j) s[j] *= a.scale;
    inv[size_t(i)] = softmax_row(s + lo, hi - lo + 1);
  }
  bool first = true;
  for_rows(kv, kv_first, klo, P1, [&](int64_t p0, const float*, const float* v, int64_t ld, int64_t m) {
    for (int64_t j = 0; j < m; j += kb) {
      const int64_t c = std::min(kb, m - j);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(lb), int(hd), int(c), 1.0f, S.data() + (p0 - klo + j),
                  int(nk), v + j * ld, int(ld), first ? 0.0f : 1.0f, y, int(a.ldy));
      first = false;
    }
  });
  for (int64_t i = 0; i < lb; ++i)
    for (int64_t e = 0; e < hd; ++e) y[i * a.ldy + e] *= inv[size_t(i)];
}

}  // namespace

void attend(const AttnQuery& a, std::span<const KvRun> kv, int64_t kv_first) {
  if (a.L <= 0) return;
  JRT_CHECK(a.hd > 0, "attention: head dim must be > 0, got {}", a.hd);
  int64_t total = 0;
  for (const KvRun& r : kv) {
    JRT_CHECK(r.n >= 0, "attention: negative key run length {}", r.n);
    total += r.n;
  }
  JRT_CHECK(kv_first + total == a.pos + a.L, "attention: keys cover positions [{}, {}), queries end at {}", kv_first,
            kv_first + total, a.pos + a.L);
  JRT_CHECK(kv_first <= lowest_key(a.pos, a.left_window),
            "attention: keys start at position {}, but the query at {} (left window {}) needs position {}", kv_first,
            a.pos, a.left_window, lowest_key(a.pos, a.left_window));

  // Block and key-tile sizes that keep every GEMM under the single-thread budget.
  int64_t qb = kQueryBlock, kb = kGemmBudget / (qb * a.hd) / 8 * 8;
  if (kb < 8) {
    kb = 8;
    qb = std::max<int64_t>(1, kGemmBudget / (kb * a.hd));
  }
  std::vector<float> S, inv;
  for (int64_t t0 = 0; t0 < a.L; t0 += qb) {
    const int64_t t1 = std::min(a.L, t0 + qb);
    const bool blocked = a.impl == AttnImpl::Blocked || (a.impl == AttnImpl::Auto && t1 - t0 >= 4);
    if (blocked)
      attend_blocked(a, kv, kv_first, t0, t1, kb, S, inv);
    else
      attend_direct(a, kv, kv_first, t0, t1, S);
  }
}

KvCache::KvCache(int64_t width, int64_t left_window) : width_(width), window_(left_window < 0 ? -1 : left_window) {
  JRT_CHECK(width > 0, "kv cache: width must be > 0, got {}", width);
  if (ring()) {
    k_.assign(size_t(window_ * width_), 0.0f);
    v_.assign(size_t(window_ * width_), 0.0f);
  }
}

int KvCache::past(int64_t pos, int64_t col, KvRun out[2]) const {
  JRT_CHECK(pos >= 0 && col >= 0 && col < width_, "kv cache: bad position {} / column {}", pos, col);
  if (!ring()) {
    JRT_CHECK(rows() == pos, "kv cache holds {} positions but the sequence is at position {}", rows(), pos);
    if (pos == 0) return 0;
    out[0] = KvRun{k_.data() + col, v_.data() + col, width_, pos};
    return 1;
  }
  const int64_t a = first(pos), n = pos - a;
  if (n == 0) return 0;
  const int64_t s0 = a % window_, n1 = std::min(n, window_ - s0);
  out[0] = KvRun{k_.data() + s0 * width_ + col, v_.data() + s0 * width_ + col, width_, n1};
  if (n1 == n) return 1;
  out[1] = KvRun{k_.data() + col, v_.data() + col, width_, n - n1};
  return 2;
}

void KvCache::append(int64_t pos, const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t L) {
  if (L <= 0) return;
  const size_t row_bytes = size_t(width_) * sizeof(float);
  if (!ring()) {
    JRT_CHECK(rows() == pos, "kv cache holds {} positions but the sequence is at position {}", rows(), pos);
    k_.resize(size_t((pos + L) * width_));
    v_.resize(size_t((pos + L) * width_));
    for (int64_t r = 0; r < L; ++r) {
      std::memcpy(k_.data() + (pos + r) * width_, k + r * ldk, row_bytes);
      std::memcpy(v_.data() + (pos + r) * width_, v + r * ldv, row_bytes);
    }
    return;
  }
  for (int64_t r = std::max<int64_t>(0, L - window_); r < L; ++r) {
    const int64_t slot = (pos + r) % window_;
    std::memcpy(k_.data() + slot * width_, k + r * ldk, row_bytes);
    std::memcpy(v_.data() + slot * width_, v + r * ldv, row_bytes);
  }
}

}  // namespace jrt::ops
