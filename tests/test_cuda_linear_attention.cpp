// CUDA vs CPU for the Taylor linear-attention prefill kernels (label cuda; skipped without a GPU):
// varlen batches, tails (N not a multiple of 64), d_v 32/64/112, decay + output scale, initial and
// final states (through the exact 273 <-> 160 state conversion), segment-split grids, JRT encoder
// accumulation. Inputs are random N(0, 0.7) so s = q.k/4 is O(1) and the quadratic Taylor term is
// visible in bf16; the CPU reference gets the same bf16-rounded inputs.
//
// Tolerance: the kernel keeps fp32 accumulators but feeds the tensor cores bf16 operands (weights P,
// features, the state copy), ~2^-8 relative per operand: NMSE <= 1e-4 and max-rel <= 2e-2.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/op_table.h"
#include "core/dtype.h"
#include "ops/linear_attention.h"
#include "ops/linear_attention_cuda.h"
#include "ops/taylor.h"

#ifdef JRT_HAVE_CUDA
#include "core/cuda_util.h"

using namespace jrt;
using namespace jrt::ops;

namespace {

struct Stats {
  double nmse, max_rel;
};
Stats compare(const std::vector<float>& got, const std::vector<float>& ref) {
  double se = 0, sr = 0, mx = 0, mr = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    double e = double(got[i]) - ref[i];
    se += e * e, sr += double(ref[i]) * ref[i];
    mx = std::max(mx, std::fabs(e)), mr = std::max(mr, std::fabs(double(ref[i])));
  }
  return {se / std::max(sr, 1e-30), mx / std::max(mr, 1e-30)};
}

using jrt::test::to_bf16;

const char* kernel_name(LaPrefillKernel k) {
  switch (k) {
    case LaPrefillKernel::kRoles:
      return "mma.sync roles (v7)";
    case LaPrefillKernel::kMmaSync:
      return "mma.sync tiles (v5)";
    case LaPrefillKernel::kWgmma:
      return "wgmma (v6)";
    case LaPrefillKernel::kWgmma1Cta:
      return "wgmma, 1 CTA/SM (v6)";
  }
  return "?";
}

// Per (b, h) of BH: the state of a random `ntok`-token prefix (zero for ntok = 0) in the CPU's 273-feature
// layout (S273 [BH, 273, dv], z273 [BH, 273]) and in the kernels' 160-feature layout.
struct PrefixStates {
  std::vector<float> S273, z273, S160, z160;
};
PrefixStates prefix_states(int BH, int dv, int ntok, std::mt19937& rng, std::normal_distribution<float>& n) {
  const int D = int(taylor_dim(16)), F = kLaFeat;
  PrefixStates p{std::vector<float>(size_t(BH) * D * dv, 0.0f), std::vector<float>(size_t(BH) * D, 0.0f),
                 std::vector<float>(size_t(BH) * F * dv), std::vector<float>(size_t(BH) * F)};
  if (ntok > 0)
    for (int bh = 0; bh < BH; ++bh) {
      std::vector<float> kk(size_t(ntok) * 16), vv(size_t(ntok) * dv);
      for (auto& e : kk) e = n(rng);
      for (auto& e : vv) e = n(rng);
      la_accumulate_state(kk.data(), 16, vv.data(), dv, ntok, 16, dv, &p.S273[size_t(bh) * D * dv],
                          &p.z273[size_t(bh) * D]);
    }
  for (int bh = 0; bh < BH; ++bh)
    la_state_from_273(&p.S273[size_t(bh) * D * dv], &p.z273[size_t(bh) * D], dv, &p.S160[size_t(bh) * F * dv],
                      &p.z160[size_t(bh) * F]);
  return p;
}

struct Case {
  std::vector<int> lens;
  int H, dv;
  bool decay, init_state, final_state;
  int segment_len;       // 0 = auto
  bool dt_only = false;  // output scale dt without decay (the v4 kernels; decay takes v3)
};

void run_case(const Case& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 0.7f);
  const int B = int(c.lens.size()), H = c.H, dv = c.dv, D = int(taylor_dim(16)), F = kLaFeat;
  std::vector<int32_t> cu(1, 0);
  for (int l : c.lens) cu.push_back(cu.back() + l);
  const int T = cu.back();
  int max_len = 0;
  for (int l : c.lens) max_len = std::max(max_len, l);
  std::vector<float> q(size_t(T) * H * 16), k(q.size()), v(size_t(T) * H * dv), dt(size_t(T) * H), gamma(static_cast<size_t>(H));
  for (auto* x : {&q, &k, &v})
    for (auto& e : *x) e = n(rng);
  for (auto& e : dt) e = n(rng);
  for (int h = 0; h < H; ++h) gamma[size_t(h)] = float(1.0 - std::pow(2.0, -3.0 - h));
  auto qb = to_bf16(q), kb = to_bf16(k), vb = to_bf16(v);
  // Initial states: the state of a random 9-token prefix per (b, h).
  auto [S273, z273, S160, z160] = prefix_states(B * H, dv, c.init_state ? 9 : 0, rng, n);
  // CPU reference.
  std::vector<float> yref(size_t(T) * H * dv), Sref = S273, zref = z273;
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      LaHead a;
      const int64_t r0 = cu[size_t(b)];
      a.q = &q[size_t(r0 * H * 16 + h * 16)], a.ldq = H * 16;
      a.k = &k[size_t(r0 * H * 16 + h * 16)], a.ldk = H * 16;
      a.v = &v[size_t(r0 * H * dv + h * dv)], a.ldv = H * dv;
      a.y = &yref[size_t(r0 * H * dv + h * dv)], a.ldy = H * dv;
      if (c.decay || c.dt_only) a.dt = &dt[size_t(r0 * H + h)], a.lddt = H;
      if (c.decay) a.gamma = gamma[size_t(h)];
      a.L = c.lens[size_t(b)], a.fd = 16, a.dv = dv;
      la_chunked(a, &Sref[size_t(b * H + h) * D * dv], &zref[size_t(b * H + h) * D], 64);
    }
  // GPU.
  cuda::DeviceBuffer<uint16_t> dq(qb.size()), dk(kb.size()), dv_(vb.size()), dout(size_t(T) * H * dv);
  dq.upload(qb.data(), qb.size()), dk.upload(kb.data(), kb.size()), dv_.upload(vb.data(), vb.size());
  cuda::DeviceBuffer<int32_t> dcu(cu.size());
  dcu.upload(cu.data(), cu.size());
  cuda::DeviceBuffer<float> ddt(dt.size()), dg(gamma.size()), dS0(S160.size()), dz0(z160.size()), dS(S160.size()),
      dz(z160.size());
  ddt.upload(dt.data(), dt.size()), dg.upload(gamma.data(), gamma.size());
  dS0.upload(S160.data(), S160.size()), dz0.upload(z160.data(), z160.size());
  LaCudaArgs a;
  a.q = reinterpret_cast<const __nv_bfloat16*>(dq.get());
  a.k = reinterpret_cast<const __nv_bfloat16*>(dk.get());
  a.v = reinterpret_cast<const __nv_bfloat16*>(dv_.get());
  a.o = reinterpret_cast<__nv_bfloat16*>(dout.get());
  a.cu_seqlens = dcu.get();
  a.B = B, a.H = H, a.dv = dv, a.max_len = max_len;
  if (c.decay) a.gamma = dg.get();
  if (c.decay || c.dt_only) a.dt = ddt.get();
  if (c.init_state) a.S0 = dS0.get(), a.z0 = dz0.get();
  if (c.final_state) a.S_out = dS.get(), a.z_out = dz.get();
  a.segment_len = c.segment_len;
  cuda::DeviceBuffer<char> ws(la_prefill_cuda_workspace(a));
  la_prefill_cuda(a, ws.get());
  JRT_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<uint16_t> ob(size_t(T) * H * dv);
  dout.download(ob.data(), ob.size());
  std::vector<float> y(ob.size());
  for (size_t i = 0; i < y.size(); ++i) y[i] = bf16_to_f32(ob[i]);
  Stats s = compare(y, yref);
  std::printf("  B=%d H=%d dv=%d decay=%d init=%d seg=%d: output nmse %.2e max-rel %.2e\n", B, H, dv, c.decay,
              c.init_state, c.segment_len, s.nmse, s.max_rel);
  EXPECT_LE(s.nmse, 1e-4);
  EXPECT_LE(s.max_rel, 2e-2);
  if (c.final_state) {
    std::vector<float> Sg(S160.size()), zg(z160.size()), Sg273(Sref.size()), zg273(zref.size());
    dS.download(Sg.data(), Sg.size()), dz.download(zg.data(), zg.size());
    for (int bh = 0; bh < B * H; ++bh)
      la_state_to_273(&Sg[size_t(bh) * F * dv], &zg[size_t(bh) * F], dv, &Sg273[size_t(bh) * D * dv],
                      &zg273[size_t(bh) * D]);
    Stats ss = compare(Sg273, Sref), sz = compare(zg273, zref);
    std::printf("    final state nmse %.2e max-rel %.2e; z max-rel %.2e\n", ss.nmse, ss.max_rel, sz.max_rel);
    EXPECT_LE(ss.nmse, 1e-5);  // fp32 accumulation of bf16 products
    EXPECT_LE(sz.max_rel, 1e-4);
  }
}

}  // namespace

// Rows the kernels cannot move in 16-byte pieces are refused with a message, before any device work (so
// this runs without a GPU too).
TEST(CudaLinearAttention, MisalignedRowsAreRefused) {
  LaCudaArgs a;
  a.B = 1, a.H = 2, a.dv = 64, a.max_len = 8;
  a.ldq = 20;  // not a multiple of 8 elements
  try {
    la_prefill_cuda(a, nullptr);
    ADD_FAILURE() << "la_prefill_cuda accepted a row stride of 20";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("16-byte aligned"), std::string::npos) << e.what();
  }
  a.ldq = 0, a.ldk = 32, a.ldv = 100;
  EXPECT_THROW(la_accumulate_state_cuda(a), std::exception);
}

TEST(CudaLinearAttention, StateConversionRoundTripsExactly) {
  std::mt19937 rng(3);
  std::normal_distribution<float> n(0, 1);
  const int D = 273, dv = 8;
  std::vector<float> k(16 * 5), v(8 * 5), S(D * dv, 0), z(D, 0);
  for (auto& e : k) e = n(rng);
  for (auto& e : v) e = n(rng);
  la_accumulate_state(k.data(), 16, v.data(), dv, 5, 16, dv, S.data(), z.data());
  std::vector<float> S1(kLaFeat * dv), z1(kLaFeat), S2(D * dv), z2(D);
  la_state_from_273(S.data(), z.data(), dv, S1.data(), z1.data());
  la_state_to_273(S1.data(), z1.data(), dv, S2.data(), z2.data());
  EXPECT_LE(compare(S2, S).max_rel, 1e-6);
  EXPECT_LE(compare(z2, z).max_rel, 1e-6);
}

TEST(CudaLinearAttention, MatchesCpuReference) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  std::vector<Case> cases = {
      {{64}, 2, 64, false, false, true, 0},
      {{100, 1, 257, 64}, 3, 64, false, false, true, 0},  // varlen, tails, length 1
      {{300, 77}, 2, 112, true, true, true, 0},           // d_v 112 (1B models), decay + dt, initial state
      {{1000, 513}, 2, 32, false, true, true, 128},       // segment split with initial state
      {{777, 1500}, 2, 64, true, false, true, 192},       // segment split with decay
      {{4096}, 4, 64, false, false, false, 0},            // automatic split
      // No decay: the v4 kernels (d_v in 64-column slices; masked slice tails at d_v 32 / 112).
      {{300, 77}, 2, 112, false, true, true, 0, true},    // d_v 112, dt, initial state
      {{2000, 0, 700}, 2, 112, false, true, true, 256},   // segment split, an empty sequence, d_v 112
      {{129, 64, 65, 3}, 3, 128, false, false, true, 0},  // d_v 128, tails
      {{5000, 31}, 1, 64, false, true, true, 0, true},    // automatic split of a long and a short sequence
  };
  // Every kernel family: v7 (the default) and v5 on mma.sync, and on sm_90 the v6 wgmma kernel-lab variants.
  for (auto k :
       {LaPrefillKernel::kRoles, LaPrefillKernel::kMmaSync, LaPrefillKernel::kWgmma, LaPrefillKernel::kWgmma1Cta}) {
    if ((k == LaPrefillKernel::kWgmma || k == LaPrefillKernel::kWgmma1Cta) && !la_prefill_wgmma_available()) continue;
    std::printf(" %s kernels\n", kernel_name(k));
    la_prefill_set_kernel(k);
    uint32_t seed = 11;
    for (const auto& c : cases) run_case(c, seed++);
  }
  la_prefill_set_kernel(LaPrefillKernel::kRoles);
}
// JRT's encoder pass: S += sum_j f(k_j) v_j^T, z += sum_j f(k_j) over each sequence (varlen, tails, an
// empty prefix), added to a non-zero state, against the CPU la_accumulate_state; whole prefixes per CTA and
// prefixes split into segments (summed in order). d_v 112 runs two 64-column slices: only the first may
// touch z, which the kernel updates in place.
// Tolerance: the features and v enter the tensor cores as bf16 (2^-9 relative each), sums in fp32:
// state NMSE <= 1e-5; z is an exact fp32 Gram sum of the bf16 keys: max-rel <= 1e-5.
TEST(CudaLinearAttention, EncoderAccumulationMatchesCpu) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  for (int dv : {64, 112}) {
    const std::vector<int> lens = {300, 0, 65, 1};
    const int B = int(lens.size()), H = 3, D = int(taylor_dim(16)), F = kLaFeat;
    std::mt19937 rng(static_cast<uint32_t>(100 + dv));
    std::normal_distribution<float> n(0.0f, 0.7f);
    std::vector<int32_t> cu(1, 0);
    for (int l : lens) cu.push_back(cu.back() + l);
    const int T = cu.back();
    std::vector<float> k(size_t(T) * H * 16), v(size_t(T) * H * dv);
    for (auto* x : {&k, &v})
      for (auto& e : *x) e = n(rng);
    const auto kb = to_bf16(k), vb = to_bf16(v);
    auto [S273, z273, S160, z160] = prefix_states(B * H, dv, 5, rng, n);  // initial state: a 5-token prefix
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < H; ++h)
        if (lens[size_t(b)] > 0)
          la_accumulate_state(&k[size_t(cu[size_t(b)]) * H * 16 + size_t(h) * 16], H * 16,
                              &v[size_t(cu[size_t(b)]) * H * dv + size_t(h) * dv], int64_t(H) * dv, lens[size_t(b)], 16,
                              dv, &S273[size_t(b * H + h) * D * dv], &z273[size_t(b * H + h) * D]);
    cuda::DeviceBuffer<uint16_t> dk(kb.size()), dvv(vb.size());
    dk.upload(kb.data(), kb.size()), dvv.upload(vb.data(), vb.size());
    cuda::DeviceBuffer<int32_t> dcu(cu.size());
    dcu.upload(cu.data(), cu.size());
    for (int run = 0; run < 6; ++run) {  // the kernel families; prefixes whole or cut into 64-token segments
      const int seg = run % 2 ? 64 : 0;
      const LaPrefillKernel kern = run < 2   ? LaPrefillKernel::kRoles
                                   : run < 4 ? LaPrefillKernel::kMmaSync
                                             : LaPrefillKernel::kWgmma;
      if (kern == LaPrefillKernel::kWgmma && !la_prefill_wgmma_available()) continue;
      la_prefill_set_kernel(kern);
      cuda::DeviceBuffer<float> dS(S160.size()), dz(z160.size());
      dS.upload(S160.data(), S160.size()), dz.upload(z160.data(), z160.size());
      LaCudaArgs a;
      a.k = reinterpret_cast<const __nv_bfloat16*>(dk.get());
      a.v = reinterpret_cast<const __nv_bfloat16*>(dvv.get());
      a.cu_seqlens = dcu.get();
      a.B = B, a.H = H, a.dv = dv, a.max_len = 300;
      a.S_out = dS.get(), a.z_out = dz.get();
      a.segment_len = seg;
      const size_t wsb = la_accumulate_cuda_workspace(a);
      EXPECT_EQ(wsb > 0, seg > 0);
      cuda::DeviceBuffer<char> ws(wsb);
      la_accumulate_state_cuda(a, ws.get());
      JRT_CUDA_CHECK(cudaDeviceSynchronize());
      std::vector<float> Sg(S160.size()), zg(z160.size()), Sg273(S273.size()), zg273(z273.size());
      dS.download(Sg.data(), Sg.size()), dz.download(zg.data(), zg.size());
      for (int bh = 0; bh < B * H; ++bh)
        la_state_to_273(&Sg[size_t(bh) * F * dv], &zg[size_t(bh) * F], dv, &Sg273[size_t(bh) * D * dv],
                        &zg273[size_t(bh) * D]);
      const Stats ss = compare(Sg273, S273), sz = compare(zg273, z273);
      std::printf("  encoder dv=%d seg=%d %s: state nmse %.2e max-rel %.2e; z max-rel %.2e\n", dv, seg,
                  kernel_name(kern), ss.nmse, ss.max_rel, sz.max_rel);
      EXPECT_LE(ss.nmse, 1e-5);
      EXPECT_LE(sz.max_rel, 1e-5);
    }
  }
  la_prefill_set_kernel(LaPrefillKernel::kRoles);
}

// The fused one-step decode kernel against the CPU recurrence (la_step, 273-feature state), 8 steps
// from a non-zero state, with decay + dt, d_v 64, 112 and 66, for each kernel; then their speed at B = 128,
// H = 16, d_v 64 and 112
// against the bandwidth floor (the fp32 state read + written once per step).
// Tolerance: q/k/v are bf16 on both sides and the state stays fp32; outputs are rounded to bf16
// (2^-9 relative): max-rel 1e-2, state max-rel 1e-4 after 8 steps.
TEST(CudaLinearAttention, DecodeStepMatchesCpuRecurrence) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  // Both kernels; the streaming one also with 4 CTAs, so each loops over 3-4 items and reuses both of its
  // shared-memory slots (and their barrier phases) more than once. d_v 66 is not a multiple of 4: the
  // streaming request falls back to the per-head kernel.
  // pad > 0: q, k and v are column ranges of one row [q | k | v | pad spare columns] (row strides, as the models'
  // fused projection gives them); pad 8 keeps the rows 16-byte aligned, pad 6 does not (the streaming request
  // then falls back to the per-head kernel too).
  struct Kern {
    LaDecodeKernel k;
    int ctas, pad;
    const char* name;
  };
  for (const Kern kern : {Kern{LaDecodeKernel::kPerHead, 0, 0, "per-head"}, Kern{LaDecodeKernel::kPerHead, 0, 6, "per-head"},
                          Kern{LaDecodeKernel::kStream, 0, 0, "stream"}, Kern{LaDecodeKernel::kStream, 0, 8, "stream"},
                          Kern{LaDecodeKernel::kStream, 4, 8, "stream, 4 CTAs"},
                          Kern{LaDecodeKernel::kStream, 3, 0, "stream, 3 CTAs"},
                          Kern{LaDecodeKernel::kStream, 0, 6, "stream (unaligned rows)"}})
    for (int dv : {64, 112, 66}) {
      la_decode_set_kernel(kern.k, kern.ctas);
      const bool strided = kern.pad > 0;
      const int B = 5, H = 3, D = int(taylor_dim(16)), F = kLaFeat, steps = 8;
      std::mt19937 rng(static_cast<uint32_t>(dv));
      std::normal_distribution<float> n(0.0f, 0.7f);
      std::vector<float> gamma(static_cast<size_t>(H)), S273(size_t(B) * H * D * dv, 0.0f),
          z273(size_t(B) * H * D, 0.0f);
      for (int h = 0; h < H; ++h) gamma[size_t(h)] = float(1.0 - std::pow(2.0, -3.0 - h));
      for (int bh = 0; bh < B * H; ++bh) {
        std::vector<float> kk(7 * 16), vv(size_t(7) * dv);
        for (auto& e : kk) e = n(rng);
        for (auto& e : vv) e = n(rng);
        la_accumulate_state(kk.data(), 16, vv.data(), dv, 7, 16, dv, &S273[size_t(bh) * D * dv], &z273[size_t(bh) * D]);
      }
      std::vector<float> S160(size_t(B) * H * F * dv), z160(size_t(B) * H * F);
      for (int bh = 0; bh < B * H; ++bh)
        la_state_from_273(&S273[size_t(bh) * D * dv], &z273[size_t(bh) * D], dv, &S160[size_t(bh) * F * dv],
                          &z160[size_t(bh) * F]);
      cuda::DeviceBuffer<float> dS(S160.size()), dz(z160.size()), dg(gamma.size()), ddt(size_t(B) * H);
      dS.upload(S160.data(), S160.size()), dz.upload(z160.data(), z160.size()), dg.upload(gamma.data(), gamma.size());
      const int64_t ldr = 2 * H * 16 + int64_t(H) * dv + kern.pad;
      cuda::DeviceBuffer<uint16_t> dq(size_t(B) * H * 16), dk(size_t(B) * H * 16), dvv(size_t(B) * H * dv),
          dy(size_t(B) * H * dv), drow(size_t(B) * size_t(ldr));
      double worst = 0;
      for (int t = 0; t < steps; ++t) {
        std::vector<float> q(size_t(B) * H * 16), k(q.size()), v(size_t(B) * H * dv), dt(size_t(B) * H), yref(v.size());
        for (auto* x : {&q, &k, &v, &dt})
          for (auto& e : *x) e = n(rng);
        auto qb = to_bf16(q), kb = to_bf16(k), vb = to_bf16(v);
        for (int bh = 0; bh < B * H; ++bh) {
          LaHead a;
          a.q = &q[size_t(bh) * 16], a.k = &k[size_t(bh) * 16], a.v = &v[size_t(bh) * dv], a.y = &yref[size_t(bh) * dv];
          a.ldq = a.ldk = 16, a.ldv = a.ldy = dv, a.L = 1, a.fd = 16, a.dv = dv;
          a.gamma = gamma[size_t(bh % H)], a.dt = &dt[size_t(bh)];
          la_step(a, &S273[size_t(bh) * D * dv], &z273[size_t(bh) * D]);
        }
        dq.upload(qb.data(), qb.size()), dk.upload(kb.data(), kb.size()), dvv.upload(vb.data(), vb.size());
        ddt.upload(dt.data(), dt.size());
        const uint16_t *pq = dq.get(), *pk = dk.get(), *pv = dvv.get();
        LaDecodeRows rows;
        if (strided) {
          std::vector<uint16_t> host(size_t(B) * size_t(ldr), 0x7fc0);  // NaN in the spare columns
          for (int b = 0; b < B; ++b) {
            uint16_t* r = &host[size_t(b) * size_t(ldr)];
            std::copy_n(&qb[size_t(b) * H * 16], H * 16, r);
            std::copy_n(&kb[size_t(b) * H * 16], H * 16, r + H * 16);
            std::copy_n(&vb[size_t(b) * H * dv], H * dv, r + 2 * H * 16);
          }
          drow.upload(host.data(), host.size());
          pq = drow.get(), pk = drow.get() + H * 16, pv = drow.get() + 2 * H * 16;
          rows = {ldr, ldr, ldr};
        }
        la_decode_step_cuda(reinterpret_cast<const __nv_bfloat16*>(pq), reinterpret_cast<const __nv_bfloat16*>(pk),
                            reinterpret_cast<const __nv_bfloat16*>(pv), reinterpret_cast<__nv_bfloat16*>(dy.get()),
                            dS.get(), dz.get(), B, H, dv, dg.get(), ddt.get(), 1e-12f, nullptr, rows);
        JRT_CUDA_CHECK(cudaDeviceSynchronize());
        std::vector<uint16_t> yb(size_t(B) * H * dv);
        dy.download(yb.data(), yb.size());
        std::vector<float> y(yb.size());
        for (size_t i = 0; i < y.size(); ++i) y[i] = bf16_to_f32(yb[i]);
        worst = std::max(worst, compare(y, yref).max_rel);
      }
      std::vector<float> Sg(S160.size()), zg(z160.size()), Sg273(S273.size()), zg273(z273.size());
      dS.download(Sg.data(), Sg.size()), dz.download(zg.data(), zg.size());
      for (int bh = 0; bh < B * H; ++bh)
        la_state_to_273(&Sg[size_t(bh) * F * dv], &zg[size_t(bh) * F], dv, &Sg273[size_t(bh) * D * dv],
                        &zg273[size_t(bh) * D]);
      const Stats ss = compare(Sg273, S273);
      std::printf("  decode %s dv=%d%s: output max-rel %.2e over %d steps, state max-rel %.2e\n", kern.name, dv,
                  strided ? " (strided rows)" : "", worst, steps, ss.max_rel);
      EXPECT_LE(worst, 1e-2);
      EXPECT_LE(ss.max_rel, 1e-4);
    }
  // Speed at B = 128, H = 16, d_v = 64 and 112 (the 1.3B models), per kernel.
  for (const LaDecodeKernel kern : {LaDecodeKernel::kPerHead, LaDecodeKernel::kStream})
    for (int dv : {64, 112}) {
      la_decode_set_kernel(kern);
      const int B = 128, H = 16, F = kLaFeat;
      cuda::DeviceBuffer<float> S(size_t(B) * H * F * dv), z(size_t(B) * H * F);
      S.zero(), z.zero();
      cuda::DeviceBuffer<uint16_t> q(size_t(B) * H * 16), k(q.size()), v(size_t(B) * H * dv), y(v.size());
      q.zero(), k.zero(), v.zero();
      auto step = [&] {
        la_decode_step_cuda(reinterpret_cast<const __nv_bfloat16*>(q.get()),
                            reinterpret_cast<const __nv_bfloat16*>(k.get()),
                            reinterpret_cast<const __nv_bfloat16*>(v.get()), reinterpret_cast<__nv_bfloat16*>(y.get()),
                            S.get(), z.get(), B, H, dv, nullptr, nullptr, 1e-12f, nullptr);
      };
      for (int i = 0; i < 3; ++i) step();
      cudaEvent_t a, b;
      cudaEventCreate(&a), cudaEventCreate(&b);
      cudaEventRecord(a);
      for (int i = 0; i < 50; ++i) step();
      cudaEventRecord(b);
      cudaEventSynchronize(b);
      float ms = 0;
      cudaEventElapsedTime(&ms, a, b);
      cudaEventDestroy(a), cudaEventDestroy(b);
      const double us = 1e3 * ms / 50, bytes = double(B) * H * 153 * dv * 4 * 2;
      std::printf("  decode step (%s) B=%d H=%d dv=%d: %.1f us, %.0f GB/s of state traffic (H200 copy ceiling ~4280)\n",
                  kern == LaDecodeKernel::kStream ? "stream" : "per-head", B, H, dv, us, bytes / (us * 1e3));
    }
  la_decode_set_kernel(LaDecodeKernel::kAuto);
}

// The streaming kernel (inputs and state through shared-memory slots) and the per-head kernel (global loads)
// compute the same products in the same order: after 3 steps from a random state both give bitwise the same
// state, z and outputs (B = 64, H = 16: 1024 items, 4-8 per streaming CTA, so every CTA reuses its slots).
TEST(CudaLinearAttention, DecodeStreamMatchesPerHeadBitwise) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  // Below sm_90 both requests run the per-head kernel: nothing would be compared.
  if (!la_prefill_wgmma_available()) GTEST_SKIP() << "the streaming kernel needs sm_90";
  const int B = 64, H = 16, F = kLaFeat;
  for (int dv : {64, 112}) {
    std::mt19937 rng(static_cast<uint32_t>(7 + dv));
    std::normal_distribution<float> n(0.0f, 0.5f);
    std::vector<float> S(size_t(B) * H * F * dv), z(size_t(B) * H * F);
    for (auto& e : S) e = n(rng);
    for (auto& e : z) e = std::abs(n(rng)) + 1.0f;
    std::vector<std::vector<uint16_t>> in;
    for (int t = 0; t < 3; ++t)
      for (size_t len : {size_t(B) * H * 16, size_t(B) * H * 16, size_t(B) * H * dv}) {
        std::vector<float> x(len);
        for (auto& e : x) e = n(rng);
        in.push_back(to_bf16(x));
      }
    struct Out {
      std::vector<float> S, z;
      std::vector<uint16_t> y;
    };
    auto run = [&](LaDecodeKernel kern) {
      la_decode_set_kernel(kern);
      cuda::DeviceBuffer<float> dS(S.size()), dz(z.size());
      dS.upload(S.data(), S.size()), dz.upload(z.data(), z.size());
      cuda::DeviceBuffer<uint16_t> dq(size_t(B) * H * 16), dk(dq.size()), dv_(size_t(B) * H * dv), dy(dv_.size());
      Out o;
      for (int t = 0; t < 3; ++t) {
        dq.upload(in[size_t(3 * t)].data(), dq.size()), dk.upload(in[size_t(3 * t + 1)].data(), dk.size());
        dv_.upload(in[size_t(3 * t + 2)].data(), dv_.size());
        la_decode_step_cuda(reinterpret_cast<const __nv_bfloat16*>(dq.get()),
                            reinterpret_cast<const __nv_bfloat16*>(dk.get()),
                            reinterpret_cast<const __nv_bfloat16*>(dv_.get()), reinterpret_cast<__nv_bfloat16*>(dy.get()),
                            dS.get(), dz.get(), B, H, dv, nullptr, nullptr, 1e-12f, nullptr);
      }
      JRT_CUDA_CHECK(cudaDeviceSynchronize());
      o.S.resize(S.size()), o.z.resize(z.size()), o.y.resize(dy.size());
      dS.download(o.S.data(), o.S.size()), dz.download(o.z.data(), o.z.size()), dy.download(o.y.data(), o.y.size());
      return o;
    };
    const Out a = run(LaDecodeKernel::kPerHead), b = run(LaDecodeKernel::kStream);
    la_decode_set_kernel(LaDecodeKernel::kAuto);
    EXPECT_EQ(std::memcmp(a.S.data(), b.S.data(), a.S.size() * sizeof(float)), 0) << "state, d_v " << dv;
    EXPECT_EQ(std::memcmp(a.z.data(), b.z.data(), a.z.size() * sizeof(float)), 0) << "z, d_v " << dv;
    EXPECT_EQ(a.y, b.y) << "outputs, d_v " << dv;
  }
}
#else
TEST(CudaLinearAttention, NotBuilt) { GTEST_SKIP() << "built without the CUDA backend"; }
#endif
