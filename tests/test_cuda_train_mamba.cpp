// CUDA vs CPU for the training forms of the Mamba / BaseConv ops (cuda_train_ops.h; label cuda, skipped
// without a GPU): the depthwise causal conv forward / backward, delta = softplus(pre + bias) and
// A = -exp(A_log) with their backwards, and the selective scan forward (y and the checkpointed states)
// and backward (dx, ddelta, dB, dC, dA, dD). B sequences of L rows, each from a zero history. The CPU
// reference is the CPU training form (ops/*_train.cpp, T = float) run per sequence on the same
// bf16-rounded inputs. Parameter gradients (+=) start from the same non-zero values on both sides;
// activation gradients (=) start from junk on the GPU. Strided rows as the models lay them out: the
// conv's x a column slice of BaseConv's [N, 2C] u, the scan's B / C columns of one [N, R + 2 ns] row.
// The backwards' cross-CTA sums (no atomics) must also be bitwise reproducible: each op twice on the same
// inputs gives bitwise the same gradients.
#include <gtest/gtest.h>

#ifdef JRT_HAVE_CUDA
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/cuda_buffers.h"
#include "common/op_table.h"
#include "common/test_util.h"
#include "core/cuda_util.h"
#include "core/dtype.h"
#include "ops/activation.h"
#include "ops/causal_conv1d.h"
#include "ops/cuda_train_ops.h"
#include "ops/selective_scan.h"

using namespace jrt;
using jrt::test::op_error;
using jrt::test::op_report;
using jrt::test::to_bf16;
using namespace jrt::test;

namespace {

using bf16 = __nv_bfloat16;

// Tolerances. bf16 outputs (y, dx of the conv, dpre): 2^-9 relative rounding on top of fp32 arithmetic
// that differs only by expf / FMA ulps and summation order: nmse <= 1e-5, max-rel <= 1e-2.
constexpr double kBfNmse = 1e-5, kBfRel = 1e-2;
// fp32 sums of products of the same bf16 inputs in another order (conv dw / db, softplus dbias):
// ~1e-7 relative per element.
constexpr double kSumNmse = 1e-10, kSumRel = 1e-5;
// fp32 elementwise (softplus, -exp): expf / log1pf ulps only.
constexpr double kEltNmse = 1e-12, kEltRel = 1e-6;
// Scan states and gradients (fp32): expf ulps compound along the recurrence (damped by exp(delta A) < 1)
// and through the reverse sweep; dB / dC / dA / dD are sums over channels or rows in another order:
// nmse <= 1e-9, max-rel <= 1e-4 (as the inference scan's state in test_cuda_conv_scan).
constexpr double kScanNmse = 1e-9, kScanRel = 1e-4;

// Bitwise equality of two downloads (memcmp: -0 vs +0 and NaN payloads count).
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

// ---- causal conv ----------------------------------------------------------------------------------

struct ConvCase {
  int B;
  int64_t L, C;
  int K;
  bool bias, strided;
};

std::string conv_shape(const ConvCase& c) {
  return "B=" + std::to_string(c.B) + " L=" + std::to_string(c.L) + " C=" + std::to_string(c.C) +
         " K=" + std::to_string(c.K) + (c.bias ? " bias" : "") + (c.strided ? " strided" : "");
}

void run_conv(const ConvCase& cc, std::mt19937& rng) {
  const int64_t N = int64_t(cc.B) * cc.L, C = cc.C, K = cc.K;
  // strided: x and dx the first half of BaseConv's [N, 2C] rows, y and dy rows of odd stride C + 3.
  const int64_t ldx = cc.strided ? 2 * C : C, ldy = cc.strided ? C + 3 : C;
  std::vector<float> x = randn(size_t(N * ldx), rng, 0.0f, 1.0f), dy = randn(size_t(N * ldy), rng, 0.0f, 1.0f);
  const std::vector<float> w = randn(size_t(C * K), rng, 0.0f, 0.5f), b = randn(size_t(C), rng, 0.0f, 0.5f);
  const std::vector<float> dw0 = randn(size_t(C * K), rng, 0.0f, 1.0f), db0 = randn(size_t(C), rng, 0.0f, 1.0f);
  const std::vector<uint16_t> xb = to_bf16(x), dyb = to_bf16(dy);
  const float* bias = cc.bias ? b.data() : nullptr;

  // CPU, per sequence; dw / db accumulate over the sequences.
  std::vector<float> yref(size_t(N * C)), dxref(size_t(N * C)), dwref = dw0, dbref = db0;
  for (int s = 0; s < cc.B; ++s) {
    const int64_t r0 = int64_t(s) * cc.L;
    ops::causal_conv1d_fwd_t<float>(x.data() + r0 * ldx, ldx, cc.L, C, w.data(), K, bias, yref.data() + r0 * C, C);
    ops::causal_conv1d_bwd_t<float>(dy.data() + r0 * ldy, ldy, x.data() + r0 * ldx, ldx, cc.L, C, w.data(), K,
                                    dxref.data() + r0 * C, C, dwref.data(), cc.bias ? dbref.data() : nullptr);
  }

  // GPU. dx goes into a copy of x's buffer (the other half must stay as it was); y starts as junk.
  auto dx_ = upload(xb), dy_ = upload(dyb), y_ = upload(std::vector<uint16_t>(size_t(N * ldy), 0x7f7f));
  auto xd = upload(xb);
  auto wd = upload(w), bd = upload(b), dwd = upload(dw0), dbd = upload(db0);
  ops::cuda::conv1d_fwd_train_cuda(bf(xd), ldx, cc.B, cc.L, C, wd.get(), cc.K, cc.bias ? bd.get() : nullptr, bf_mut(y_),
                                   ldy, nullptr);
  ops::cuda::conv1d_bwd_train_cuda(bf(dy_), ldy, bf(xd), ldx, cc.B, cc.L, C, wd.get(), cc.K, bf_mut(dx_), ldx,
                                   dwd.get(), cc.bias ? dbd.get() : nullptr, nullptr);
  JRT_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<float> y = download_bf16(y_), dx = download_bf16(dx_);
  const std::string sh = conv_shape(cc);
  op_report("conv1d_train.y", sh, op_error(columns(y, N, ldy, 0, C), yref), kBfNmse, kBfRel);
  op_report("conv1d_train.dx", sh, op_error(columns(dx, N, ldx, 0, C), dxref), kBfNmse, kBfRel);
  if (cc.strided)  // the columns past dx's C are x's, untouched
    op_report("conv1d_train.dx_pad", sh, op_error(columns(dx, N, ldx, C, ldx - C), columns(x, N, ldx, C, ldx - C)), 0,
              0);
  op_report("conv1d_train.dw", sh, op_error(download(dwd), dwref), kSumNmse, kSumRel);
  op_report("conv1d_train.db", sh, op_error(download(dbd), dbref), cc.bias ? kSumNmse : 0, cc.bias ? kSumRel : 0);
}

TEST(CudaTrainMamba, ConvMatchesCpu) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(1101);
  // L = 1 and L = 2 (shorter than the window), several row runs (300 rows), odd widths, K = 8; many short
  // sequences (more runs than threads per channel: threads take several, across sequences); long ones.
  const std::vector<ConvCase> cases = {
      {1, 1, 8, 3, false, false},    {1, 1, 8, 4, true, true},      {2, 2, 24, 4, true, false},
      {2, 37, 64, 3, false, true},   {2, 37, 64, 4, true, true},    {3, 130, 40, 3, true, false},
      {3, 130, 40, 4, false, true},  {2, 300, 200, 4, true, true},  {4, 64, 1536, 3, false, true},
      {2, 45, 100, 8, true, false},  {5, 17, 2048, 4, true, false}, {2500, 3, 40, 3, true, true},
      {3, 2000, 96, 4, true, false},
  };
  for (const ConvCase& c : cases) run_conv(c, rng);
}

// ---- delta softplus, A --------------------------------------------------------------------------

TEST(CudaTrainMamba, SoftplusMatchesCpu) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(2202);
  std::uniform_real_distribution<float> un(0.0f, 1.0f);
  struct Case {
    int64_t N, di;
  };
  for (Case cs : {Case{1, 8}, Case{74, 64}, Case{390, 40}, Case{600, 200}, Case{3, 2048}}) {
    const int64_t N = cs.N, di = cs.di, lddp = di + 3;
    // dt_bias as Mamba's init (softplus^-1 of U[0.001, 0.1]); ~5% of pre large enough that pre + bias
    // lands on both sides of the threshold 20.
    std::vector<float> bias(static_cast<size_t>(di)), pre(size_t(N * di));
    for (auto& e : bias) e = std::log(std::expm1(0.001f + 0.099f * un(rng)));
    for (auto& e : pre) e = un(rng) < 0.05f ? 20.0f + 12.0f * un(rng) : 6.0f * (un(rng) - 0.5f);
    const std::vector<float> ddelta = randn(size_t(N * di), rng, 0.0f, 1.0f),
                             dbias0 = randn(size_t(di), rng, 0.0f, 1.0f);

    std::vector<float> dref(size_t(N * di)), dpref(size_t(N * di)), dbref = dbias0;
    ops::delta_softplus_fwd_t<float>(pre.data(), di, bias.data(), N, di, dref.data(), di);
    ops::delta_softplus_bwd_t<float>(ddelta.data(), di, pre.data(), di, bias.data(), N, di, dpref.data(), di,
                                     dbref.data());

    auto pd = upload(pre), bd = upload(bias), gd = upload(ddelta), dbd = upload(dbias0);
    auto deltad = upload(std::vector<float>(size_t(N * di), -1.0f));
    auto dpd = upload(std::vector<uint16_t>(size_t(N * lddp), 0x7f7f));
    ops::cuda::delta_softplus_fwd_cuda(pd.get(), bd.get(), N, di, deltad.get(), nullptr);
    ops::cuda::delta_softplus_bwd_cuda(gd.get(), pd.get(), bd.get(), N, di, bf_mut(dpd), lddp, dbd.get(), nullptr);
    JRT_CUDA_CHECK(cudaDeviceSynchronize());
    const std::string sh = "N=" + std::to_string(N) + " di=" + std::to_string(di);
    op_report("delta_softplus.fwd", sh, op_error(download(deltad), dref), kEltNmse, kEltRel);
    op_report("delta_softplus.dpre", sh, op_error(columns(download_bf16(dpd), N, lddp, 0, di), dpref), kBfNmse, kBfRel);
    op_report("delta_softplus.dbias", sh, op_error(download(dbd), dbref), kSumNmse, kSumRel);
  }
}

TEST(CudaTrainMamba, MambaAMatchesCpu) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(3303);
  for (int64_t n : {int64_t(7), int64_t(640), int64_t(2048 * 16 + 5)}) {
    // A_log = log(1 .. 16) (S4D-real) with some spread.
    std::vector<float> alog(static_cast<size_t>(n));
    const std::vector<float> spread = randn(size_t(n), rng, 0.0f, 0.1f);
    for (int64_t i = 0; i < n; ++i) alog[size_t(i)] = std::log(float(i % 16 + 1)) + spread[size_t(i)];
    const std::vector<float> dA = randn(size_t(n), rng, 0.0f, 1.0f), dlog0 = randn(size_t(n), rng, 0.0f, 1.0f);
    std::vector<float> Aref(static_cast<size_t>(n)), dlogref = dlog0;
    for (int64_t i = 0; i < n; ++i) {
      Aref[size_t(i)] = -std::exp(alog[size_t(i)]);
      dlogref[size_t(i)] += dA[size_t(i)] * Aref[size_t(i)];
    }
    auto ald = upload(alog), Ad = upload(std::vector<float>(size_t(n), 1.0f)), dAd = upload(dA);
    auto dld = upload(dlog0);
    ops::cuda::mamba_a_fwd_cuda(ald.get(), n, Ad.get(), nullptr);
    ops::cuda::mamba_a_bwd_cuda(dAd.get(), Ad.get(), n, dld.get(), nullptr);
    JRT_CUDA_CHECK(cudaDeviceSynchronize());
    const std::string sh = "n=" + std::to_string(n);
    op_report("mamba_a.fwd", sh, op_error(download(Ad), Aref), kEltNmse, kEltRel);
    op_report("mamba_a.dA_log", sh, op_error(download(dld), dlogref), kEltNmse, kEltRel);
  }
}

// ---- selective scan -------------------------------------------------------------------------------

struct ScanCase {
  int B;
  int64_t L, di;
  int ns, ckpt;
  bool useD;
};

std::string scan_shape(const ScanCase& c) {
  return "B=" + std::to_string(c.B) + " L=" + std::to_string(c.L) + " di=" + std::to_string(c.di) +
         " ns=" + std::to_string(c.ns) + " ckpt=" + std::to_string(c.ckpt) + (c.useD ? " D" : "");
}

void run_scan(const ScanCase& sc, std::mt19937& rng) {
  const int64_t N = int64_t(sc.B) * sc.L, di = sc.di, ns = sc.ns, L = sc.L;
  const int64_t R = 5, ldbc = R + 2 * ns;  // B / C after dt_rank columns: an odd column offset
  const int64_t ldx = 2 * di, ldy = di + 2, lddy = di + 3;
  const int64_t S = ops::scan_saved_states(L, sc.ckpt);
  std::uniform_real_distribution<float> un(0.0f, 1.0f);

  // Mamba-like inputs: x the first half of in_proj's [N, 2 di] rows, delta = softplus(dt + dt_bias)
  // (~0.001 .. 0.3), A = -(n + 1) with spread, D ~ 1.
  std::vector<float> x = randn(size_t(N * ldx), rng, 0.0f, 1.0f), bc = randn(size_t(N * ldbc), rng, 0.0f, 1.0f);
  std::vector<float> dy = randn(size_t(N * lddy), rng, 0.0f, 1.0f);
  std::vector<float> delta(size_t(N * di)), A(size_t(di * ns)), D(static_cast<size_t>(di));
  {
    std::vector<float> dtb(static_cast<size_t>(di));
    for (auto& e : dtb) e = std::log(std::expm1(0.001f + 0.099f * un(rng)));
    const std::vector<float> dt = randn(delta.size(), rng, 0.0f, 1.0f);
    for (int64_t i = 0; i < N * di; ++i) delta[size_t(i)] = ops::softplus(dt[size_t(i)] + dtb[size_t(i % di)]);
    const std::vector<float> sp = randn(A.size(), rng, 0.0f, 0.1f);
    for (int64_t c = 0; c < di; ++c)
      for (int64_t k = 0; k < ns; ++k) A[size_t(c * ns + k)] = -float(k + 1) * std::exp(sp[size_t(c * ns + k)]);
    const std::vector<float> dn = randn(D.size(), rng, 0.0f, 0.1f);
    for (size_t i = 0; i < D.size(); ++i) D[i] = 1.0f + dn[i];
  }
  const std::vector<uint16_t> xb = to_bf16(x), bcb = to_bf16(bc), dyb = to_bf16(dy);
  const std::vector<float> dA0 = randn(A.size(), rng, 0.0f, 1.0f), dD0 = randn(D.size(), rng, 0.0f, 1.0f);

  // CPU, per sequence (hsave per sequence [S, di, ns]); dA / dD accumulate over the sequences.
  std::vector<float> yref(size_t(N * di)), hsref(size_t(sc.B * S * di * ns)), dxref(size_t(N * di)),
      ddref(size_t(N * di)), dBCref(size_t(N * 2 * ns)), dAref = dA0, dDref = dD0;
  for (int s = 0; s < sc.B; ++s) {
    const int64_t r0 = int64_t(s) * L;
    ops::ScanTrain<float> st;
    st.x = x.data() + r0 * ldx, st.ldx = ldx;
    st.delta = delta.data() + r0 * di, st.ldd = di;
    st.A = A.data();
    st.B = bc.data() + r0 * ldbc + R, st.ldb = ldbc;
    st.C = bc.data() + r0 * ldbc + R + ns, st.ldc = ldbc;
    st.D = sc.useD ? D.data() : nullptr;
    st.y = yref.data() + r0 * di, st.ldy = di;
    st.hsave = hsref.data() + size_t(s) * S * di * ns;
    st.L = L, st.di = di, st.N = ns, st.ckpt = sc.ckpt;
    ops::selective_scan_fwd_t<float>(st);
    ops::ScanGrads<float> g;
    g.dx = dxref.data() + r0 * di, g.lddx = di;
    g.ddelta = ddref.data() + r0 * di, g.lddd = di;
    g.dB = dBCref.data() + r0 * 2 * ns, g.lddb = 2 * ns;
    g.dC = dBCref.data() + r0 * 2 * ns + ns, g.lddc = 2 * ns;
    g.dA = dAref.data();
    g.dD = sc.useD ? dDref.data() : nullptr;
    ops::selective_scan_bwd_t<float>(st, dy.data() + r0 * lddy, lddy, g);
  }

  // GPU; y and the activation gradients (=) start as junk.
  auto xd = upload(xb), bcd = upload(bcb), dyd = upload(dyb);
  auto deltad = upload(delta), Ad = upload(A), Dd = upload(D);
  auto yd = upload(std::vector<uint16_t>(size_t(N * ldy), 0x7f7f));
  auto hsd = upload(std::vector<float>(size_t(ops::cuda::scan_train_saved_floats(sc.B, L, di, sc.ns, sc.ckpt)), 1e30f));
  ASSERT_EQ(hsd.size(), hsref.size());
  auto dxd = upload(std::vector<float>(size_t(N * di), 1e30f)), ddd = upload(std::vector<float>(size_t(N * di), 1e30f));
  auto dBCd = upload(std::vector<float>(size_t(N * 2 * ns), 1e30f));
  auto dAd = upload(dA0), dDd = upload(dD0);
  ops::cuda::ScanTrainCuda a;
  a.x = bf(xd), a.ldx = ldx;
  a.delta = deltad.get(), a.A = Ad.get();
  a.Bm = bf(bcd) + R, a.Cm = bf(bcd) + R + ns, a.ldbc = ldbc;
  a.D = sc.useD ? Dd.get() : nullptr;
  a.y = bf_mut(yd), a.ldy = ldy;
  a.hsave = hsd.get();
  a.B = sc.B, a.L = L, a.di = di, a.ns = sc.ns, a.ckpt = sc.ckpt;
  ops::cuda::selective_scan_fwd_train_cuda(a, nullptr);
  ops::cuda::selective_scan_bwd_train_cuda(a, bf(dyd), lddy, dxd.get(), ddd.get(), dBCd.get(), dAd.get(),
                                           sc.useD ? dDd.get() : nullptr, nullptr);
  JRT_CUDA_CHECK(cudaDeviceSynchronize());

  // hsave is [B, S, ns, di] on the GPU: as the CPU's [B, S, di, ns].
  const std::vector<float> hs = download(hsd);
  std::vector<float> hst(hs.size());
  for (int64_t bs = 0; bs < sc.B * S; ++bs)
    for (int64_t n = 0; n < ns; ++n)
      for (int64_t c = 0; c < di; ++c) hst[size_t((bs * di + c) * ns + n)] = hs[size_t((bs * ns + n) * di + c)];

  const std::string sh = scan_shape(sc);
  const std::vector<float> dBC = download(dBCd);
  op_report("scan_train.y", sh, op_error(columns(download_bf16(yd), N, ldy, 0, di), yref), kBfNmse, kBfRel);
  op_report("scan_train.hsave", sh, op_error(hst, hsref), kScanNmse, kScanRel);
  op_report("scan_train.dx", sh, op_error(download(dxd), dxref), kScanNmse, kScanRel);
  op_report("scan_train.ddelta", sh, op_error(download(ddd), ddref), kScanNmse, kScanRel);
  op_report("scan_train.dB", sh, op_error(columns(dBC, N, 2 * ns, 0, ns), columns(dBCref, N, 2 * ns, 0, ns)), kScanNmse,
            kScanRel);
  op_report("scan_train.dC", sh, op_error(columns(dBC, N, 2 * ns, ns, ns), columns(dBCref, N, 2 * ns, ns, ns)),
            kScanNmse, kScanRel);
  op_report("scan_train.dA", sh, op_error(download(dAd), dAref), kScanNmse, kScanRel);
  op_report("scan_train.dD", sh, op_error(download(dDd), dDref), sc.useD ? kScanNmse : 0, sc.useD ? kScanRel : 0);
}

TEST(CudaTrainMamba, ScanMatchesCpu) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(4404);
  for (bool useD : {true, false}) {
    const std::vector<ScanCase> cases = {
        {1, 1, 8, 4, 16, useD},       // one step
        {2, 37, 64, 16, 16, useD},    // L not a multiple of the checkpoint interval
        {3, 130, 40, 16, 7, useD},    // odd interval, many checkpoints
        {2, 33, 130, 5, 16, useD},    // ns padded (5 -> 8); d_inner past one CTA of 128 channels
        {2, 70, 48, 32, 40, useD},    // 2 lanes per channel; intervals longer than one recompute pass
        {2, 45, 40, 64, 1, useD},     // 4 lanes per channel; every state checkpointed
        {1, 100, 24, 16, 100, useD},  // one interval, seven recompute passes
    };
    for (const ScanCase& c : cases) run_scan(c, rng);
  }
}

// ---- bitwise reproducibility ----------------------------------------------------------------------

// Each backward twice on the same inputs (accumulated gradients restarted from the same values): every
// output bitwise equal. Many rows per channel, several channel blocks and sequences per sum.
TEST(CudaTrainMamba, BackwardsAreBitwiseReproducible) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(5505);
  {  // conv: 8 x 4000 rows, 200 channels (4 tiles), K = 4, with bias
    const int B = 8;
    const int64_t L = 4000, C = 200, K = 4, N = B * L;
    std::vector<float> x = randn(size_t(N * C), rng, 0.0f, 1.0f), dy = randn(size_t(N * C), rng, 0.0f, 1.0f);
    const std::vector<uint16_t> xb = to_bf16(x), dyb = to_bf16(dy);
    const std::vector<float> w = randn(size_t(C * K), rng, 0.0f, 0.5f), dw0 = randn(size_t(C * K), rng, 0.0f, 1.0f),
                             db0 = randn(size_t(C), rng, 0.0f, 1.0f);
    auto xd = upload(xb), dyd = upload(dyb);
    auto wd = upload(w);
    std::vector<uint16_t> dx[2];
    std::vector<float> dw[2], db[2];
    for (int run = 0; run < 2; ++run) {
      auto dxd = upload(std::vector<uint16_t>(size_t(N * C), 0x7f7f));
      auto dwd = upload(dw0), dbd = upload(db0);
      ops::cuda::conv1d_bwd_train_cuda(bf(dyd), C, bf(xd), C, B, L, C, wd.get(), int(K), bf_mut(dxd), C, dwd.get(),
                                       dbd.get(), nullptr);
      JRT_CUDA_CHECK(cudaDeviceSynchronize());
      dx[run] = download(dxd), dw[run] = download(dwd), db[run] = download(dbd);
    }
    EXPECT_TRUE(same_bits(dx[0], dx[1])) << "conv dx";
    EXPECT_TRUE(same_bits(dw[0], dw[1])) << "conv dw";
    EXPECT_TRUE(same_bits(db[0], db[1])) << "conv db";
  }
  {  // softplus: 100000 rows of 72 channels
    const int64_t N = 100000, di = 72;
    const std::vector<float> pre = randn(size_t(N * di), rng, 0.0f, 3.0f), bias = randn(size_t(di), rng, -3.0f, 1.0f),
                             dd = randn(size_t(N * di), rng, 0.0f, 1.0f), db0 = randn(size_t(di), rng, 0.0f, 1.0f);
    auto pd = upload(pre), bd = upload(bias), gd = upload(dd);
    std::vector<uint16_t> dpre[2];
    std::vector<float> dbias[2];
    for (int run = 0; run < 2; ++run) {
      auto dpd = upload(std::vector<uint16_t>(size_t(N * di), 0x7f7f));
      auto dbd = upload(db0);
      ops::cuda::delta_softplus_bwd_cuda(gd.get(), pd.get(), bd.get(), N, di, bf_mut(dpd), di, dbd.get(), nullptr);
      JRT_CUDA_CHECK(cudaDeviceSynchronize());
      dpre[run] = download(dpd), dbias[run] = download(dbd);
    }
    EXPECT_TRUE(same_bits(dpre[0], dpre[1])) << "softplus dpre";
    EXPECT_TRUE(same_bits(dbias[0], dbias[1])) << "softplus dbias";
  }
  // Scan: ns = 16 (3 channel blocks of 128), ns = 64 (4 lanes per channel: 9 channel blocks of 32); 6
  // sequences; with and without D.
  for (int ns : {16, 64})
    for (bool useD : {true, false}) {
      const int B = 6;
      const int64_t L = 200, di = 260, N = B * L;
      std::uniform_real_distribution<float> un(0.001f, 0.3f);
      std::vector<float> x = randn(size_t(N * di), rng, 0.0f, 1.0f), bc = randn(size_t(N * 2 * ns), rng, 0.0f, 1.0f),
                         dy = randn(size_t(N * di), rng, 0.0f, 1.0f);
      const std::vector<uint16_t> xb = to_bf16(x), bcb = to_bf16(bc), dyb = to_bf16(dy);
      std::vector<float> delta(size_t(N * di)), A(size_t(di * ns));
      for (auto& e : delta) e = un(rng);
      for (int64_t i = 0; i < di * ns; ++i) A[size_t(i)] = -float(i % ns + 1);
      const std::vector<float> D = randn(size_t(di), rng, 1.0f, 0.1f), dA0 = randn(A.size(), rng, 0.0f, 1.0f),
                               dD0 = randn(D.size(), rng, 0.0f, 1.0f);
      auto xd = upload(xb), bcd = upload(bcb), dyd = upload(dyb);
      auto deltad = upload(delta), Ad = upload(A), Dd = upload(D);
      auto yd = upload(std::vector<uint16_t>(size_t(N * di), 0));
      auto hsd = upload(std::vector<float>(size_t(ops::cuda::scan_train_saved_floats(B, L, di, ns, 16)), 0.0f));
      ops::cuda::ScanTrainCuda a;
      a.x = bf(xd), a.ldx = di;
      a.delta = deltad.get(), a.A = Ad.get();
      a.Bm = bf(bcd), a.Cm = bf(bcd) + ns, a.ldbc = 2 * ns;
      a.D = useD ? Dd.get() : nullptr;
      a.y = bf_mut(yd), a.ldy = di;
      a.hsave = hsd.get();
      a.B = B, a.L = L, a.di = di, a.ns = ns, a.ckpt = 16;
      ops::cuda::selective_scan_fwd_train_cuda(a, nullptr);
      std::vector<float> gx[2], gdelta[2], gBC[2], gA[2], gD[2];
      for (int run = 0; run < 2; ++run) {
        auto dxd = upload(std::vector<float>(size_t(N * di), 1e30f)),
             ddd = upload(std::vector<float>(size_t(N * di), 1e30f));
        auto dBCd = upload(std::vector<float>(size_t(N * 2 * ns), 1e30f));
        auto dAd = upload(dA0), dDd = upload(dD0);
        ops::cuda::selective_scan_bwd_train_cuda(a, bf(dyd), di, dxd.get(), ddd.get(), dBCd.get(), dAd.get(),
                                                 useD ? dDd.get() : nullptr, nullptr);
        JRT_CUDA_CHECK(cudaDeviceSynchronize());
        gx[run] = download(dxd), gdelta[run] = download(ddd), gBC[run] = download(dBCd), gA[run] = download(dAd),
        gD[run] = download(dDd);
      }
      const std::string sh = "scan ns=" + std::to_string(ns) + (useD ? " D" : "");
      EXPECT_TRUE(same_bits(gx[0], gx[1])) << sh << " dx";
      EXPECT_TRUE(same_bits(gdelta[0], gdelta[1])) << sh << " ddelta";
      EXPECT_TRUE(same_bits(gBC[0], gBC[1])) << sh << " dBC";
      EXPECT_TRUE(same_bits(gA[0], gA[1])) << sh << " dA";
      EXPECT_TRUE(same_bits(gD[0], gD[1])) << sh << " dD";
    }
}

// Empty shapes return before touching any pointer.
TEST(CudaTrainMamba, EmptyShapesAreNoOps) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  ops::cuda::conv1d_fwd_train_cuda(nullptr, 4, 0, 5, 4, nullptr, 4, nullptr, nullptr, 4, nullptr);
  ops::cuda::conv1d_fwd_train_cuda(nullptr, 4, 2, 0, 4, nullptr, 4, nullptr, nullptr, 4, nullptr);
  ops::cuda::conv1d_bwd_train_cuda(nullptr, 4, nullptr, 4, 2, 5, 0, nullptr, 3, nullptr, 4, nullptr, nullptr, nullptr);
  ops::cuda::delta_softplus_fwd_cuda(nullptr, nullptr, 0, 8, nullptr, nullptr);
  ops::cuda::delta_softplus_bwd_cuda(nullptr, nullptr, nullptr, 0, 8, nullptr, 8, nullptr, nullptr);
  ops::cuda::mamba_a_fwd_cuda(nullptr, 0, nullptr, nullptr);
  ops::cuda::mamba_a_bwd_cuda(nullptr, nullptr, 0, nullptr, nullptr);
  EXPECT_EQ(ops::cuda::scan_train_saved_floats(2, 0, 8, 16, 16), 0);
  ops::cuda::ScanTrainCuda a;
  a.B = 2, a.L = 0, a.di = 8, a.ns = 16;
  ops::cuda::selective_scan_fwd_train_cuda(a, nullptr);
  ops::cuda::selective_scan_bwd_train_cuda(a, nullptr, 8, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr);
  JRT_CUDA_CHECK(cudaDeviceSynchronize());
}

}  // namespace

#else
TEST(CudaTrainMamba, SkippedWithoutCuda) { GTEST_SKIP() << "built without the CUDA backend"; }
#endif
