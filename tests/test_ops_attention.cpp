// Tests of ops/rotary and ops/attention: rotary against a double-precision formula (odd and partial
// rotary dims), windowed causal attention against a naive double reference, prefill == decode through
// the K/V cache == chunked prefill, the window property, and the cache's ring bookkeeping.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "ops/attention.h"
#include "ops/rotary.h"

using namespace jrt;
using namespace jrt::ops;

namespace {

std::vector<float> randn(size_t n, uint32_t seed, float sd = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

double max_rel(const std::vector<float>& got, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    num = std::max(num, std::fabs(double(got[i]) - ref[i]));
    den = std::max(den, std::fabs(ref[i]));
  }
  return num / den;
}

double max_rel(const std::vector<float>& got, const std::vector<float>& ref) {
  return max_rel(got, std::vector<double>(ref.begin(), ref.end()));
}

// ---- rotary ----------------------------------------------------------------------------------

// Rotates row x (H heads of hd) in double: pairs (j, j + ro/2), ro = 2 * ceil(rd / 2). When fp32_angles,
// the angle is the reference's fp32 value fp32(fp32(p) * fp32(inv_freq)) (models-spec §5.5); else the
// exact double angle p / base^(2j / rd).
std::vector<double> rotary_ref(const float* x, int64_t H, int64_t hd, int64_t rd, int64_t p, bool fp32_angles) {
  const int64_t half = (rd + 1) / 2;
  std::vector<double> out(x, x + H * hd);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t j = 0; j < half; ++j) {
      double th = double(p) / std::pow(10000.0, double(2 * j) / double(rd));
      if (fp32_angles) {
        const float inv = 1.0f / float(std::pow(10000.0, double(float(2 * j) / float(rd))));
        th = double(float(p) * inv);
      }
      const double a = x[h * hd + j], b = x[h * hd + j + half];
      out[size_t(h * hd + j)] = a * std::cos(th) - b * std::sin(th);
      out[size_t(h * hd + j + half)] = a * std::sin(th) + b * std::cos(th);
    }
  return out;
}

struct RotCase {
  int64_t rd, hd;
};

TEST(Rotary, InvFreqAndRotatedDims) {
  Rotary r35(35, 10000.0);
  EXPECT_EQ(r35.rotated(), 36);  // odd rotary dim: 18 frequencies, pairs (j, j + 18)
  ASSERT_EQ(r35.inv_freq().size(), 18u);
  for (size_t i = 0; i < 18; ++i) {
    const double want = std::pow(10000.0, -2.0 * double(i) / 35.0);
    EXPECT_NEAR(r35.inv_freq()[i], want, want * 3e-7) << i;  // fp32 rounding of three fp32 steps
  }
  EXPECT_EQ(Rotary(16, 10000.0).rotated(), 16);
  EXPECT_EQ(Rotary(0, 10000.0).rotated(), 0);
  // A rotation wider than the head is refused.
  std::vector<float> x(8);
  std::vector<int64_t> pos{0};
  EXPECT_THROW(Rotary(9, 10000.0).apply(x.data(), 8, 1, 1, 8, pos), Error);
}

TEST(Rotary, MatchesDoubleFormula) {
  const int64_t H = 3;
  const std::vector<int64_t> positions{0, 1, 2, 7, 63, 100, 1000, 4095, 60000};
  for (RotCase rc : {RotCase{35, 70}, RotCase{16, 32}, RotCase{32, 32}, RotCase{64, 64}, RotCase{5, 8}}) {
    const int64_t hd = rc.hd, ld = H * hd + 5;  // padded rows: the stride is honoured
    const int64_t N = int64_t(positions.size());
    std::vector<float> x = randn(size_t(N * ld), 11 + uint32_t(rc.rd));
    const std::vector<float> x0 = x;
    Rotary rot(rc.rd, 10000.0);
    rot.apply(x.data(), ld, N, H, hd, positions);
    for (int64_t n = 0; n < N; ++n) {
      const int64_t p = positions[size_t(n)];
      const float* in = x0.data() + n * ld;
      const float* out = x.data() + n * ld;
      const auto exact = rotary_ref(in, H, hd, rc.rd, p, false);
      const auto f32a = rotary_ref(in, H, hd, rc.rd, p, true);
      double amax = 0;
      for (int64_t i = 0; i < H * hd; ++i) amax = std::max(amax, std::fabs(double(in[i])));
      for (int64_t i = 0; i < H * hd; ++i) {
        // Against the fp32-angle formula: only fp32 rounding of the products and of cos/sin (~1e-7
        // relative each), bounded by 1e-6 * max|x| at every position.
        EXPECT_NEAR(out[i], f32a[size_t(i)], 1e-6 * amax) << "rd " << rc.rd << " p " << p << " i " << i;
        // Against exact angles: the fp32 angle itself is off by up to ~2^-23 * theta (theta <= p), which
        // is the reference's own behaviour at large positions.
        EXPECT_NEAR(out[i], exact[size_t(i)], (1e-6 + 2.5e-7 * double(p)) * amax) << "rd " << rc.rd << " p " << p;
      }
      // Dims beyond ro and the padding are untouched, bit for bit.
      for (int64_t h = 0; h < H; ++h)
        for (int64_t j = rot.rotated(); j < hd; ++j) EXPECT_EQ(out[h * hd + j], in[h * hd + j]);
      for (int64_t j = H * hd; j < ld; ++j) EXPECT_EQ(out[j], in[j]);
    }
  }
}

TEST(Rotary, Fp32AnglesAreTheReferenceOnes) {
  // At position 60000 the fp32 angle differs from the exact one by ~1e-3 rad: an implementation with
  // double angles would be far from the fp32-angle formula. Ours must match it to fp32 rounding.
  const int64_t hd = 64, p = 60000;
  std::vector<float> x = randn(size_t(hd), 5), x0 = x;
  std::vector<int64_t> pos{p};
  Rotary(64, 10000.0).apply(x.data(), hd, 1, 1, hd, pos);
  const auto f32a = rotary_ref(x0.data(), 1, hd, 64, p, true);
  const auto exact = rotary_ref(x0.data(), 1, hd, 64, p, false);
  double d32 = 0, dex = 0;
  for (int64_t i = 0; i < hd; ++i) {
    d32 = std::max(d32, std::fabs(x[size_t(i)] - f32a[size_t(i)]));
    dex = std::max(dex, std::fabs(x[size_t(i)] - exact[size_t(i)]));
  }
  EXPECT_LT(d32, 1e-5);
  EXPECT_GT(dex, 1e-4);  // the two formulas really differ here, so the check above has teeth
}

// ---- attention ---------------------------------------------------------------------------------

// One head of one sequence: q, k, v [T, hd] (post-rotary), positions 0..T-1.
struct Seq {
  int64_t T, hd;
  std::vector<float> q, k, v;
  Seq(int64_t T_, int64_t hd_, uint32_t seed) : T(T_), hd(hd_) {
    // Scores of size ~ +-5 after the hd^-0.5 scale: peaked softmaxes, a fair test of the max shift.
    q = randn(size_t(T * hd), seed, 1.5f);
    k = randn(size_t(T * hd), seed + 1, 1.5f);
    v = randn(size_t(T * hd), seed + 2);
  }
  float scale() const { return float(1.0 / std::sqrt(double(hd))); }
};

std::vector<double> naive(const Seq& s, int64_t lw) {
  std::vector<double> y(size_t(s.T * s.hd), 0.0);
  const double scale = 1.0 / std::sqrt(double(s.hd));
  for (int64_t t = 0; t < s.T; ++t) {
    std::vector<double> w(size_t(s.T), 0.0);
    double mx = -1e300;
    for (int64_t j = 0; j <= t; ++j) {
      if (lw >= 0 && j < t - lw) continue;  // explicit window mask
      double acc = 0;
      for (int64_t e = 0; e < s.hd; ++e) acc += double(s.q[size_t(t * s.hd + e)]) * double(s.k[size_t(j * s.hd + e)]);
      w[size_t(j)] = acc * scale;
      mx = std::max(mx, w[size_t(j)]);
    }
    double sum = 0;
    for (int64_t j = 0; j <= t; ++j) {
      if (lw >= 0 && j < t - lw) {
        w[size_t(j)] = 0;
        continue;
      }
      w[size_t(j)] = std::exp(w[size_t(j)] - mx);
      sum += w[size_t(j)];
    }
    for (int64_t j = 0; j <= t; ++j)
      for (int64_t e = 0; e < s.hd; ++e)
        y[size_t(t * s.hd + e)] += w[size_t(j)] / sum * double(s.v[size_t(j * s.hd + e)]);
  }
  return y;
}

// Runs the sequence through a fresh cache in pieces of the given lengths (sum = T); each piece is one
// attend() over [cache runs, the piece's new rows], then appended to the cache.
std::vector<float> run_pieces(const Seq& s, int64_t lw, const std::vector<int64_t>& pieces,
                              AttnImpl impl = AttnImpl::Auto) {
  KvCache cache(s.hd, lw);
  std::vector<float> y(size_t(s.T * s.hd), 0.0f);
  int64_t pos = 0;
  for (int64_t L : pieces) {
    KvRun runs[3];
    const int np = cache.past(pos, 0, runs);
    runs[np] = KvRun{s.k.data() + pos * s.hd, s.v.data() + pos * s.hd, s.hd, L};
    AttnQuery a;
    a.q = s.q.data() + pos * s.hd;
    a.ldq = s.hd;
    a.y = y.data() + pos * s.hd;
    a.ldy = s.hd;
    a.L = L;
    a.hd = s.hd;
    a.pos = pos;
    a.left_window = lw;
    a.scale = s.scale();
    a.impl = impl;
    attend(a, std::span<const KvRun>(runs, size_t(np + 1)), cache.first(pos));
    cache.append(pos, s.k.data() + pos * s.hd, s.hd, s.v.data() + pos * s.hd, s.hd, L);
    pos += L;
  }
  EXPECT_EQ(pos, s.T);
  return y;
}

std::vector<int64_t> ones(int64_t T) { return std::vector<int64_t>(size_t(T), 1); }

// Piece lengths 7, 1, 20, 3, 64, 2, ... cut to T.
std::vector<int64_t> ragged(int64_t T) {
  const int64_t pat[] = {7, 1, 20, 3, 64, 2, 33};
  std::vector<int64_t> out;
  int64_t done = 0;
  for (size_t i = 0; done < T; ++i) {
    const int64_t L = std::min(pat[i % 7], T - done);
    out.push_back(L);
    done += L;
  }
  return out;
}

// Tolerances. fp32 against the double reference: scores of ~|5| carry ~1e-6 absolute rounding, which the
// exp turns into ~1e-6 relative error of the weights; outputs are weighted means of O(1) values, so
// max|diff| / max|ref| stays near 1e-6 — 2e-5 leaves a 10x margin. fp32 against fp32 (another order of
// the same sums: GEMM vs loops, different blocks) is about half of that: 1e-5.
constexpr double kTolVsDouble = 2e-5;
constexpr double kTolFp32 = 1e-5;

TEST(Attention, PrefillDecodeChunkedAndNaiveAgree) {
  int checked = 0;
  for (int64_t hd : {32, 70}) {
    for (int64_t T : {1, 2, 7, 33, 64, 100}) {
      for (int64_t lw : {-1, 0, 1, 4, 16}) {
        Seq s(T, hd, uint32_t(1000 + T * 7 + hd + (lw + 1) * 131));
        const auto ref = naive(s, lw);
        const auto prefill = run_pieces(s, lw, {T});
        const auto decode = run_pieces(s, lw, ones(T));
        const auto chunked = run_pieces(s, lw, ragged(T));
        const auto direct = run_pieces(s, lw, {T}, AttnImpl::Direct);
        const auto blocked = run_pieces(s, lw, ragged(T), AttnImpl::Blocked);
        SCOPED_TRACE(testing::Message() << "hd " << hd << " T " << T << " left_window " << lw);
        EXPECT_LE(max_rel(prefill, ref), kTolVsDouble);
        EXPECT_LE(max_rel(decode, ref), kTolVsDouble);
        EXPECT_LE(max_rel(decode, prefill), kTolFp32);
        EXPECT_LE(max_rel(chunked, prefill), kTolFp32);
        EXPECT_LE(max_rel(direct, prefill), kTolFp32);
        EXPECT_LE(max_rel(blocked, prefill), kTolFp32);
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 60);
}

TEST(Attention, WindowZeroIsSelfOnly) {
  // left_window 0: each query sees only itself, so the output is its own value row exactly.
  Seq s(40, 32, 77);
  const auto y = run_pieces(s, 0, ragged(40));
  for (size_t i = 0; i < y.size(); ++i) EXPECT_EQ(y[i], s.v[i]);
}

TEST(Attention, LongSequenceRingWraps) {
  // 300 tokens, window 128 (the released SWA), hd 64: the ring wraps twice during decode, and the
  // prefill spans several query blocks and key tiles.
  Seq s(300, 64, 4242);
  const auto ref = naive(s, 128);
  const auto prefill = run_pieces(s, 128, {300});
  const auto decode = run_pieces(s, 128, ones(300));
  const auto chunked = run_pieces(s, 128, ragged(300));
  EXPECT_LE(max_rel(prefill, ref), kTolVsDouble);
  EXPECT_LE(max_rel(decode, prefill), kTolFp32);
  EXPECT_LE(max_rel(chunked, prefill), kTolFp32);
  // Full causal over the same data, growing cache.
  const auto ref_full = naive(s, -1);
  EXPECT_LE(max_rel(run_pieces(s, -1, {300}), ref_full), kTolVsDouble);
  EXPECT_LE(max_rel(run_pieces(s, -1, ragged(300)), ref_full), kTolVsDouble);
}

TEST(Attention, WindowProperty) {
  // Output t must not depend on keys / values at positions < t - left_window, and must depend on the
  // one at exactly t - left_window.
  const int64_t T = 100, hd = 32;
  for (int64_t lw : {4, 16}) {
    Seq s(T, hd, 99);
    const auto base = run_pieces(s, lw, {T});
    const auto base_dec = run_pieces(s, lw, ones(T));
    for (int64_t t : {20, 50, 99}) {
      Seq p = s;
      for (int64_t j = 0; j < t - lw; ++j)
        for (int64_t e = 0; e < hd; ++e) {
          p.k[size_t(j * hd + e)] += 3.0f;
          p.v[size_t(j * hd + e)] -= 2.0f;
        }
      const auto got = run_pieces(p, lw, {T});
      const auto got_dec = run_pieces(p, lw, ones(T));
      for (int64_t e = 0; e < hd; ++e) {
        // Masked keys get weight exactly 0, so the output is bit-identical.
        EXPECT_EQ(got[size_t(t * hd + e)], base[size_t(t * hd + e)]) << "lw " << lw << " t " << t;
        EXPECT_EQ(got_dec[size_t(t * hd + e)], base_dec[size_t(t * hd + e)]) << "lw " << lw << " t " << t;
      }
      Seq edge = s;
      for (int64_t e = 0; e < hd; ++e) edge.v[size_t((t - lw) * hd + e)] += 5.0f;
      const auto moved = run_pieces(edge, lw, {T});
      double diff = 0;
      for (int64_t e = 0; e < hd; ++e) diff += std::fabs(moved[size_t(t * hd + e)] - base[size_t(t * hd + e)]);
      EXPECT_GT(diff, 1e-6) << "the key at t - left_window must be visible (lw " << lw << ", t " << t << ")";
    }
  }
}

TEST(Attention, StridedMultiHeadRows) {
  // Heads side by side in rows of a [T, 3*H*hd] qkv buffer (the mixer's layout) give the same result as
  // the per-head contiguous arrays.
  const int64_t T = 45, H = 3, hd = 16, w3 = 3 * H * hd;
  std::vector<float> qkv = randn(size_t(T * w3), 8);
  std::vector<float> y(size_t(T * H * hd), 0.0f);
  for (int64_t h = 0; h < H; ++h) {
    KvRun run{qkv.data() + H * hd + h * hd, qkv.data() + 2 * H * hd + h * hd, w3, T};
    AttnQuery a;
    a.q = qkv.data() + h * hd;
    a.ldq = w3;
    a.y = y.data() + h * hd;
    a.ldy = H * hd;
    a.L = T;
    a.hd = hd;
    a.left_window = 9;
    a.scale = 0.25f;
    attend(a, std::span<const KvRun>(&run, 1), 0);
  }
  for (int64_t h = 0; h < H; ++h) {
    Seq s(T, hd, 1);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t e = 0; e < hd; ++e) {
        s.q[size_t(t * hd + e)] = qkv[size_t(t * w3 + h * hd + e)];
        s.k[size_t(t * hd + e)] = qkv[size_t(t * w3 + H * hd + h * hd + e)];
        s.v[size_t(t * hd + e)] = qkv[size_t(t * w3 + 2 * H * hd + h * hd + e)];
      }
    const auto ref = naive(s, 9);
    std::vector<float> got(size_t(T * hd));
    for (int64_t t = 0; t < T; ++t)
      for (int64_t e = 0; e < hd; ++e) got[size_t(t * hd + e)] = y[size_t(t * H * hd + h * hd + e)];
    EXPECT_LE(max_rel(got, ref), kTolVsDouble) << "head " << h;
  }
}

TEST(KvCache, RingRunsHoldTheLastPositions) {
  // Rows carry their position; after appending up to position P the runs must list exactly the
  // positions max(0, P - W) .. P - 1, in order, for every column offset.
  const int64_t W = 5, width = 6;
  KvCache c(width, W);
  int64_t pos = 0;
  for (int64_t L : {1, 3, 2, 7, 1, 1, 4}) {
    std::vector<float> k(size_t(L * width)), v(size_t(L * width));
    for (int64_t r = 0; r < L; ++r)
      for (int64_t e = 0; e < width; ++e) {
        k[size_t(r * width + e)] = float((pos + r) * 100 + e);
        v[size_t(r * width + e)] = -float((pos + r) * 100 + e);
      }
    c.append(pos, k.data(), width, v.data(), width, L);
    pos += L;
    for (int64_t col : {0, 3}) {
      KvRun runs[2];
      const int n = c.past(pos, col, runs);
      int64_t expect = std::max<int64_t>(0, pos - W);
      EXPECT_EQ(c.first(pos), expect);
      for (int i = 0; i < n; ++i)
        for (int64_t r = 0; r < runs[i].n; ++r, ++expect) {
          EXPECT_EQ(runs[i].k[r * runs[i].ld], float(expect * 100 + col));
          EXPECT_EQ(runs[i].v[r * runs[i].ld], -float(expect * 100 + col));
        }
      EXPECT_EQ(expect, pos);
    }
  }
  EXPECT_EQ(int64_t(c.keys().size()), W * width);  // the ring never grows
}

TEST(KvCache, FullCacheGrowsAndChecksPosition) {
  KvCache c(4, -1);
  std::vector<float> k(12, 1.0f), v(12, 2.0f);
  c.append(0, k.data(), 4, v.data(), 4, 3);
  EXPECT_EQ(c.rows(), 3);
  KvRun runs[2];
  EXPECT_EQ(c.past(3, 0, runs), 1);
  EXPECT_EQ(runs[0].n, 3);
  EXPECT_THROW(c.past(2, 0, runs), Error);                        // state / cache out of step
  EXPECT_THROW(c.append(5, k.data(), 4, v.data(), 4, 1), Error);  // a gap in positions
}

TEST(Attention, RejectsMissingKeys) {
  Seq s(10, 8, 3);
  KvRun run{s.k.data() + 2 * 8, s.v.data() + 2 * 8, 8, 8};  // positions 2..9 only
  AttnQuery a;
  a.q = s.q.data() + 2 * 8;
  a.ldq = 8;
  std::vector<float> y(80);
  a.y = y.data();
  a.ldy = 8;
  a.L = 8;
  a.hd = 8;
  a.pos = 2;
  a.scale = 1.0f;
  a.left_window = -1;  // full attention needs positions 0 and 1
  EXPECT_THROW(attend(a, std::span<const KvRun>(&run, 1), 2), Error);
  a.left_window = 2;  // the window needs position 0 for the query at 2
  EXPECT_THROW(attend(a, std::span<const KvRun>(&run, 1), 2), Error);
  a.left_window = 0;  // self only: fine
  EXPECT_NO_THROW(attend(a, std::span<const KvRun>(&run, 1), 2));
  EXPECT_THROW(attend(a, std::span<const KvRun>(&run, 1), 3), Error);  // runs do not end at the last query
}

}  // namespace
