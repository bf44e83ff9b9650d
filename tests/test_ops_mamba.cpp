// Tests of Mamba's ops: the selective scan (direct, time-blocked, channel-range and one-step forms)
// against a naive float64 loop and against each other across arbitrary splits of time; the causal
// depthwise conv1d against its formula and across splits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/threads.h"
#include "ops/causal_conv1d.h"
#include "ops/selective_scan.h"

using namespace jrt;

namespace {

std::vector<float> randn(size_t n, std::mt19937& g, float scale = 1.0f) {
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(g);
  return v;
}

// max |a - b| / max |b| over two equally long arrays.
double max_rel(const std::vector<float>& a, const std::vector<double>& b) {
  double ma = 0, mb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ma = std::max(ma, std::fabs(double(a[i]) - b[i]));
    mb = std::max(mb, std::fabs(b[i]));
  }
  return mb > 0 ? ma / mb : ma;
}
double max_rel(const std::vector<float>& a, const std::vector<float>& b) {
  return max_rel(a, std::vector<double>(b.begin(), b.end()));
}

// A random scan problem with strided inputs: x and delta sit inside wider rows, B and C share one
// packed row per step (as x_proj's output does in the model).
struct ScanProblem {
  int64_t L, di, N, ldx, ldd, ldbc;
  std::vector<float> x, delta, bc, A, D, h0;

  ScanProblem(int64_t L_, int64_t di_, int64_t N_, uint32_t seed) : L(L_), di(di_), N(N_) {
    std::mt19937 g(seed);
    ldx = di + 5;
    ldd = di + 3;
    ldbc = 2 * N + 7;
    x = randn(size_t(L * ldx), g);
    delta.resize(size_t(L * ldd));
    std::uniform_real_distribution<float> ud(0.001f, 0.6f);
    for (auto& v : delta) v = ud(g);
    bc = randn(size_t(L * ldbc), g);
    A = randn(size_t(di * N), g, 0.5f);
    for (auto& a : A) a = -std::exp(a);
    D = randn(size_t(di), g);
    h0 = randn(size_t(di * N), g, 0.3f);
  }
  ops::ScanParams params(bool with_D) const { return {A.data(), with_D ? D.data() : nullptr, di, N}; }
  // IO for steps [t0, t0 + len), writing y [L, di] (row stride di) and updating h.
  ops::ScanIO io(int64_t t0, int64_t len, float* y, float* h) const {
    ops::ScanIO s;
    s.x = x.data() + t0 * ldx;
    s.ldx = ldx;
    s.delta = delta.data() + t0 * ldd;
    s.ldd = ldd;
    s.B = bc.data() + t0 * ldbc + 3;
    s.ldb = ldbc;
    s.C = bc.data() + t0 * ldbc + 3 + N;
    s.ldc = ldbc;
    s.y = y + t0 * di;
    s.ldy = di;
    s.h = h;
    s.L = len;
    return s;
  }
  // Float64 reference: h_t = exp(delta*A) h + delta*B*x, y = h.C + D*x.
  void naive(bool with_D, std::vector<double>& y, std::vector<double>& h) const {
    y.assign(size_t(L * di), 0.0);
    h.assign(h0.begin(), h0.end());
    for (int64_t t = 0; t < L; ++t)
      for (int64_t c = 0; c < di; ++c) {
        double d = delta[size_t(t * ldd + c)], u = x[size_t(t * ldx + c)], acc = 0;
        for (int64_t n = 0; n < N; ++n) {
          double& hn = h[size_t(c * N + n)];
          hn = std::exp(d * A[size_t(c * N + n)]) * hn + d * bc[size_t(t * ldbc + 3 + n)] * u;
          acc += hn * bc[size_t(t * ldbc + 3 + N + n)];
        }
        y[size_t(t * di + c)] = acc + (with_D ? double(D[size_t(c)]) * u : 0.0);
      }
  }
};

}  // namespace

TEST(SelectiveScan, MatchesFloat64Loop) {
  for (bool with_D : {true, false})
    for (int64_t chunk : {0, 5, 64}) {
      ScanProblem pb(77, 40, 16, 11);
      std::vector<float> y(size_t(pb.L * pb.di), NAN), h = pb.h0;
      ops::selective_scan_fwd(pb.params(with_D), pb.io(0, pb.L, y.data(), h.data()), chunk);
      std::vector<double> yr, hr;
      pb.naive(with_D, yr, hr);
      EXPECT_LE(max_rel(y, yr), 2e-6) << "D " << with_D << " chunk " << chunk;
      EXPECT_LE(max_rel(h, hr), 2e-6) << "D " << with_D << " chunk " << chunk;
    }
}

TEST(SelectiveScan, InitialStateMatters) {
  // Guards the comparison above: a scan that ignored h0 would be far off.
  ScanProblem pb(8, 16, 16, 5);
  std::vector<float> y(size_t(pb.L * pb.di)), h(pb.h0.size(), 0.0f);
  ops::selective_scan_fwd(pb.params(true), pb.io(0, pb.L, y.data(), h.data()));
  std::vector<double> yr, hr;
  pb.naive(true, yr, hr);
  EXPECT_GT(max_rel(y, yr), 1e-3);
}

TEST(SelectiveScan, SplitsAndFormsAgree) {
  for (int64_t di : {1, 24, 130}) {
    ScanProblem pb(61, di, 16, uint32_t(100 + di));
    std::fill(pb.h0.begin(), pb.h0.end(), 0.0f);
    const auto p = pb.params(true);
    std::vector<float> y_ref(size_t(pb.L * di)), h_ref(size_t(di * pb.N), 0.0f);
    ops::selective_scan_fwd(p, pb.io(0, pb.L, y_ref.data(), h_ref.data()));

    // Arbitrary splits of time, each chunk continuing from the state the previous one left, with
    // the direct and several time-blocked forms.
    std::mt19937 g{uint32_t(di)};
    for (int64_t chunk : {0, 1, 3, 16}) {
      for (int rep = 0; rep < 3; ++rep) {
        std::vector<float> y(y_ref.size(), NAN), h(h_ref.size(), 0.0f);
        for (int64_t t = 0; t < pb.L;) {
          int64_t len = std::min<int64_t>(pb.L - t, 1 + int64_t(g() % 20));
          ops::selective_scan_fwd(p, pb.io(t, len, y.data(), h.data()), chunk);
          t += len;
        }
        EXPECT_LE(max_rel(y, y_ref), 1e-6) << "di " << di << " chunk " << chunk;
        EXPECT_LE(max_rel(h, h_ref), 1e-6) << "di " << di << " chunk " << chunk;
      }
    }

    // Channel ranges scanned separately (how the mixer batches short sequences).
    {
      std::vector<float> y(y_ref.size(), NAN), h(h_ref.size(), 0.0f);
      for (int64_t c0 = 0; c0 < di; c0 += 7)
        ops::selective_scan_channels(p, pb.io(0, pb.L, y.data(), h.data()), c0, std::min(di, c0 + 7), 4);
      EXPECT_LE(max_rel(y, y_ref), 1e-6) << "di " << di;
      EXPECT_LE(max_rel(h, h_ref), 1e-6) << "di " << di;
    }

    // L one-token steps (the decode form).
    {
      std::vector<float> y(y_ref.size(), NAN), h(h_ref.size(), 0.0f);
      for (int64_t t = 0; t < pb.L; ++t) {
        const float* bc = pb.bc.data() + t * pb.ldbc + 3;
        ops::selective_scan_step(p, pb.x.data() + t * pb.ldx, pb.delta.data() + t * pb.ldd, bc, bc + pb.N, h.data(),
                                 y.data() + t * di);
      }
      EXPECT_LE(max_rel(y, y_ref), 1e-6) << "di " << di;
      EXPECT_LE(max_rel(h, h_ref), 1e-6) << "di " << di;
    }
  }
}

TEST(SelectiveScan, ThreadCountDoesNotChangeResults) {
  ScanProblem pb(40, 300, 16, 9);
  const auto p = pb.params(true);
  const int saved = num_threads();
  std::vector<float> y1(size_t(pb.L * pb.di)), h1 = pb.h0, y2 = y1, h2 = pb.h0;
  set_num_threads(1);
  ops::selective_scan_fwd(p, pb.io(0, pb.L, y1.data(), h1.data()));
  set_num_threads(std::max(2, saved));
  ops::selective_scan_fwd(p, pb.io(0, pb.L, y2.data(), h2.data()));
  set_num_threads(saved);
  EXPECT_EQ(y1, y2);
  EXPECT_EQ(h1, h2);
}

TEST(SelectiveScan, EmptySequenceLeavesStateAlone) {
  ScanProblem pb(4, 8, 16, 3);
  std::vector<float> h = pb.h0, y(1, 7.0f);
  ops::selective_scan_fwd(pb.params(true), pb.io(0, 0, y.data(), h.data()));
  EXPECT_EQ(h, pb.h0);
  EXPECT_EQ(y[0], 7.0f);
}

// ---- causal depthwise conv1d --------------------------------------------------------------------

namespace {

// y_t[c] = b[c] + sum_i w[c, i] * x_{t-K+1+i}[c], x_{<0} = 0 (fresh sequence), float64.
std::vector<double> conv_naive(const std::vector<float>& x, int64_t ldx, int64_t L, int64_t C,
                               const std::vector<float>& w, int64_t K, const float* b) {
  std::vector<double> y(size_t(L * C));
  for (int64_t t = 0; t < L; ++t)
    for (int64_t c = 0; c < C; ++c) {
      double acc = b ? b[c] : 0.0;
      for (int64_t i = 0; i < K; ++i) {
        int64_t s = t - K + 1 + i;
        if (s >= 0) acc += double(w[size_t(c * K + i)]) * x[size_t(s * ldx + c)];
      }
      y[size_t(t * C + c)] = acc;
    }
  return y;
}

}  // namespace

TEST(CausalConv1d, MatchesFormulaFromZeroHistory) {
  std::mt19937 g(21);
  for (int64_t K : {3, 4})
    for (bool bias : {false, true})
      for (int64_t L : {1, 2, 3, 5, 40}) {
        const int64_t C = 37, ldx = C + 4;
        auto x = randn(size_t(L * ldx), g), w = randn(size_t(C * K), g), b = randn(size_t(C), g);
        std::vector<float> tail(size_t((K - 1) * C), 0.0f), y(size_t(L * C), NAN);
        ops::causal_conv1d_fwd(x.data(), ldx, L, C, w.data(), K, bias ? b.data() : nullptr, tail.data(), y.data(), C);
        auto yr = conv_naive(x, ldx, L, C, w, K, bias ? b.data() : nullptr);
        EXPECT_LE(max_rel(y, yr), 1e-6) << "K " << K << " bias " << bias << " L " << L;
        // The tail holds the last K-1 inputs, oldest first, zero-padded on the left when L < K-1.
        for (int64_t r = 0; r < K - 1; ++r)
          for (int64_t c = 0; c < C; ++c) {
            int64_t t = L - (K - 1) + r;
            float want = t >= 0 ? x[size_t(t * ldx + c)] : 0.0f;
            ASSERT_EQ(tail[size_t(r * C + c)], want) << "K " << K << " L " << L << " row " << r;
          }
      }
}

TEST(CausalConv1d, SplitsMatchOneShot) {
  std::mt19937 g(22);
  for (int64_t K : {3, 4})
    for (bool bias : {false, true}) {
      const int64_t C = 70, L = 50, ldx = C + 2, ldy = C + 1;
      auto x = randn(size_t(L * ldx), g), w = randn(size_t(C * K), g), b = randn(size_t(C), g);
      const float* bp = bias ? b.data() : nullptr;
      std::vector<float> tail_ref(size_t((K - 1) * C), 0.0f), y_ref(size_t(L * ldy), 0.0f);
      ops::causal_conv1d_fwd(x.data(), ldx, L, C, w.data(), K, bp, tail_ref.data(), y_ref.data(), ldy);
      // Chunks of 1 and 2 steps (shorter than the tail for K = 4) mixed with longer ones.
      for (int rep = 0; rep < 4; ++rep) {
        std::vector<float> tail(tail_ref.size(), 0.0f), y(y_ref.size(), 0.0f);
        for (int64_t t = 0; t < L;) {
          int64_t len = std::min<int64_t>(L - t, rep == 0 ? 1 : 1 + int64_t(g() % 7));
          ops::causal_conv1d_fwd(x.data() + t * ldx, ldx, len, C, w.data(), K, bp, tail.data(), y.data() + t * ldy,
                                 ldy);
          t += len;
        }
        EXPECT_LE(max_rel(y, y_ref), 1e-6) << "K " << K << " bias " << bias << " rep " << rep;
        EXPECT_EQ(tail, tail_ref) << "K " << K << " bias " << bias << " rep " << rep;
      }
    }
}

TEST(CausalConv1d, HistoryMatters) {
  // A non-zero tail changes the first K-1 outputs by exactly its taps' contribution.
  std::mt19937 g(23);
  const int64_t K = 4, C = 9, L = 6;
  auto x = randn(size_t(L * C), g), w = randn(size_t(C * K), g), hist = randn(size_t((K - 1) * C), g);
  std::vector<float> tail = hist, y(size_t(L * C)), tail0(hist.size(), 0.0f), y0(y.size());
  ops::causal_conv1d_fwd(x.data(), C, L, C, w.data(), K, nullptr, tail.data(), y.data(), C);
  ops::causal_conv1d_fwd(x.data(), C, L, C, w.data(), K, nullptr, tail0.data(), y0.data(), C);
  for (int64_t t = 0; t < L; ++t)
    for (int64_t c = 0; c < C; ++c) {
      double extra = 0;
      for (int64_t i = 0; i < K; ++i) {
        int64_t s = t - K + 1 + i;
        if (s < 0) extra += double(w[size_t(c * K + i)]) * hist[size_t((K - 1 + s) * C + c)];
      }
      EXPECT_NEAR(y[size_t(t * C + c)] - y0[size_t(t * C + c)], extra, 1e-5) << t << "," << c;
    }
}
