// CUDA vs CPU for the training form of softmax attention and rotary (cuda_train_ops.h; label cuda,
// skipped without a GPU): attention_fwd_train_cuda (o, lse) against ops::attention_fwd_t, and
// attention_bwd_train_cuda (the dq / dk / dv blocks of dqkv) against ops::attention_bwd_t (T = float), per
// (sequence, head) of B sequences of L rows whose q / k / v are the three blocks of one packed
// [N, 3 H hd] row, as the model uses; rotary_bwd_cuda against ops::Rotary::backward_t.
// The backward runs twice per shape: with dq slots (the default cap, which every shape here fits under;
// rows labelled "dq=slots") and with the dq kernel (cap 0, "dq=kernel"); both are also checked to be
// bitwise repeatable.
// Inputs are N(0, 1) rounded to bf16 on both sides (scores O(1) with scale hd^-0.5). Every row stride has
// padding columns: NaN on input (a stray read shows up), a sentinel on output (must stay untouched).
// The backward gets the same saved activations on both sides: the CPU forward's y rounded to bf16 (the
// GPU's o is bf16) and its lse.
#include <gtest/gtest.h>

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
#include "core/dtype.h"
#include "ops/attention.h"
#include "ops/cuda_train_ops.h"
#include "ops/rotary.h"

#ifdef JRT_HAVE_CUDA
#include "core/cuda_util.h"

using namespace jrt;
using jrt::test::download;
using jrt::test::op_error;
using jrt::test::op_report;
using jrt::test::random_bf16;
using jrt::test::to_bf16;
using jrt::test::upload;
using bf16 = __nv_bfloat16;

namespace {

constexpr uint16_t kNaN = 0x7fc0;  // bf16 quiet NaN

// Tolerances. bf16 outputs (o, rotary): the output rounding alone is 2^-9 relative (NMSE ~1e-6); the
// forward also rounds P to bf16 as an mma operand (FlashAttention's precision; measured NMSE ~4e-6), the
// rest is fp32 summation order: NMSE <= 1e-5, max-rel <= 1e-2. Gradients dq / dk / dv pass one more bf16
// rounding (dS, or P for dv, as mma operands, then the output; measured NMSE ~5.5e-6): NMSE <= 2e-5.
// lse is fp32 from fp32 scores on both sides (exp2 vs exp and summation order, ~1e-7 relative):
// NMSE <= 1e-10, max-rel <= 1e-5. Where dq and dk are zero in exact arithmetic (every query sees only
// its own key: L = 1 or window 0, so P = 1 and dS = P (dP - Di) = 0) both sides hold fp32 rounding noise
// of dP - Di (~1e-6): the check is max |dq|, |dk| <= 1e-4 (reported as max_rel against a unit scale).
constexpr double kOutNmse = 1e-5, kOutRel = 1e-2;
constexpr double kGradNmse = 2e-5;
constexpr double kLseNmse = 1e-10, kLseRel = 1e-5;
constexpr double kZeroAbs = 1e-4;
// A dq slot cap every shape of these tests fits under (the default): the slots path; 0 forces the dq kernel.
constexpr size_t kSlotsCap = size_t(256) << 20;
// Restores the dq slot cap on leaving the scope (also when an ASSERT returns early).
struct SlotCapGuard {
  size_t saved = ops::cuda::dq_slot_cap_bytes();
  ~SlotCapGuard() { ops::cuda::set_dq_slot_cap_bytes(saved); }
};

bf16* as_bf16(const cuda::DeviceBuffer<uint16_t>& d) { return reinterpret_cast<bf16*>(d.get()); }

// Columns [c0, c0 + w) of the N rows of a bf16 buffer with row stride ld, as fp32 [N, w].
std::vector<float> columns(const std::vector<uint16_t>& b, int64_t N, int64_t ld, int64_t c0, int64_t w) {
  std::vector<float> f(size_t(N * w));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < w; ++c) f[size_t(n * w + c)] = bf16_to_f32(b[size_t(n * ld + c0 + c)]);
  return f;
}
// Cells of columns [pad0, ld) that differ from `sentinel`.
int changed_padding(const std::vector<uint16_t>& b, int64_t N, int64_t ld, int64_t pad0, uint16_t sentinel) {
  int k = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = pad0; c < ld; ++c) k += b[size_t(n * ld + c)] != sentinel;
  return k;
}

// ---- attention --------------------------------------------------------------------------------

struct AttnCase {
  int B;
  int64_t L;
  int H, hd;
  int64_t window;
};

void attention_case(const AttnCase& c, uint32_t seed) {
  std::mt19937 rng(seed);
  const int B = c.B, H = c.H, hd = c.hd;
  const int64_t L = c.L, N = int64_t(B) * L, inner = int64_t(H) * hd;
  // Strided rows: padding columns after the heads.
  const int64_t ldqkv = 3 * inner + 6, ldo = inner + 4, lddo = inner + 2, lddqkv = 3 * inner + 4;
  const float scale = float(1.0 / std::sqrt(double(hd)));
  const std::string shape = "B=" + std::to_string(B) + " L=" + std::to_string(L) + " H=" + std::to_string(H) +
                            " hd=" + std::to_string(hd) + " w=" + std::to_string(c.window);

  std::vector<float> qkv(size_t(N * ldqkv)), dy(size_t(N * lddo));
  std::vector<uint16_t> qkvb = random_bf16(qkv, rng), dyb = random_bf16(dy, rng);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t col = 3 * inner; col < ldqkv; ++col) qkvb[size_t(n * ldqkv + col)] = kNaN;
    for (int64_t col = inner; col < lddo; ++col) dyb[size_t(n * lddo + col)] = kNaN;
  }

  // CPU forward and backward per (sequence, head); y [N, inner], lse [B, H, L], dq / dk / dv [N, inner].
  std::vector<float> y(size_t(N * inner)), lse(size_t(B) * H * L);
  auto head = [&](int b, int h) {
    ops::AttnTrainHead<float> a;
    const float* q = qkv.data() + int64_t(b) * L * ldqkv + int64_t(h) * hd;
    a.q = q, a.ldq = ldqkv, a.k = q + inner, a.ldk = ldqkv, a.v = q + 2 * inner, a.ldv = ldqkv;
    a.L = L, a.hd = hd, a.left_window = c.window, a.scale = scale;
    return a;
  };
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      ops::attention_fwd_t(head(b, h), y.data() + int64_t(b) * L * inner + int64_t(h) * hd, inner,
                           lse.data() + (int64_t(b) * H + h) * L);

  // GPU forward.
  const uint16_t sentinel = f32_to_bf16(7.0f);
  auto d_qkv = upload(qkvb);
  auto d_o = upload(std::vector<uint16_t>(size_t(N * ldo), sentinel));
  cuda::DeviceBuffer<float> d_lse(lse.size());
  ops::cuda::attention_fwd_train_cuda(as_bf16(d_qkv), ldqkv, B, L, H, hd, c.window, scale, as_bf16(d_o), ldo,
                                      d_lse.get(), nullptr);
  JRT_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<uint16_t> ob = download(d_o);
  EXPECT_EQ(changed_padding(ob, N, ldo, inner, sentinel), 0) << "attention_fwd_train_cuda wrote padding " << shape;
  op_report("attn_train_fwd.o", shape, op_error(columns(ob, N, ldo, 0, inner), y), kOutNmse, kOutRel);
  op_report("attn_train_fwd.lse", shape, op_error(download(d_lse), lse), kLseNmse, kLseRel);

  // The saved activations of the backward, identical on both sides: y rounded to bf16 (row stride ldo,
  // NaN padding) and the CPU's lse.
  std::vector<uint16_t> yb(size_t(N * ldo), kNaN);
  std::vector<float> ysaved(size_t(N * inner));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t col = 0; col < inner; ++col) {
      yb[size_t(n * ldo + col)] = f32_to_bf16(y[size_t(n * inner + col)]);
      ysaved[size_t(n * inner + col)] = bf16_to_f32(yb[size_t(n * ldo + col)]);
    }
  std::vector<float> dq(size_t(N * inner)), dk(size_t(N * inner)), dv(size_t(N * inner));
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      const int64_t off = int64_t(b) * L * inner + int64_t(h) * hd;
      ops::attention_bwd_t(head(b, h), ysaved.data() + off, inner, lse.data() + (int64_t(b) * H + h) * L,
                           dy.data() + int64_t(b) * L * lddo + int64_t(h) * hd, lddo, dq.data() + off, inner,
                           dk.data() + off, inner, dv.data() + off, inner);
    }

  // GPU backward, by both dq paths (the cap is read when the workspace is sized and again by the backward).
  auto d_y = upload(yb);
  auto d_lse_saved = upload(lse);
  auto d_dy = upload(dyb);
  const SlotCapGuard restore_cap;
  for (const size_t cap : {kSlotsCap, size_t(0)}) {
    ops::cuda::set_dq_slot_cap_bytes(cap);
    const std::string pshape = shape + (cap ? " dq=slots" : " dq=kernel");
    auto d_dqkv = upload(std::vector<uint16_t>(size_t(N * lddqkv), sentinel));
    const size_t ws_bytes = ops::cuda::attention_bwd_workspace_bytes(B, L, H, hd);
    cuda::DeviceBuffer<unsigned char> ws(ws_bytes);
    // Garbage in the workspace: the backward must not rely on it being zero.
    JRT_CUDA_CHECK(cudaMemset(ws.get(), 0x7f, ws_bytes));
    ops::cuda::attention_bwd_train_cuda(as_bf16(d_qkv), ldqkv, as_bf16(d_y), ldo, d_lse_saved.get(), as_bf16(d_dy),
                                        lddo, B, L, H, hd, c.window, scale, as_bf16(d_dqkv), lddqkv, ws.get(), ws_bytes,
                                        nullptr);
    JRT_CUDA_CHECK(cudaDeviceSynchronize());
    const std::vector<uint16_t> gb = download(d_dqkv);
    EXPECT_EQ(changed_padding(gb, N, lddqkv, 3 * inner, sentinel), 0)
        << "attention_bwd_train_cuda wrote padding " << pshape;
    const bool zero_qk = L == 1 || c.window == 0;  // see the tolerances
    const char* names[3] = {"attn_train_bwd.dq", "attn_train_bwd.dk", "attn_train_bwd.dv"};
    const std::vector<float>* refs[3] = {&dq, &dk, &dv};
    for (int i = 0; i < 3; ++i) {
      const std::vector<float> got = columns(gb, N, lddqkv, i * inner, inner);
      if (zero_qk && i < 2) {
        double mx = 0;
        for (size_t e = 0; e < got.size(); ++e)
          mx = std::max({mx, std::fabs(double(got[e])), std::fabs(double((*refs[i])[e]))});
        op_report(std::string(names[i]) + "(=0)", pshape, jrt::test::OpErr{0.0, mx}, 0.0, kZeroAbs);
      } else {
        op_report(names[i], pshape, op_error(got, *refs[i]), kGradNmse, kOutRel);
      }
    }
  }
}

TEST(CudaTrainAttention, MatchesCpu) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  // L = 1; L not a multiple of the 64-row tiles; windows inside one tile (16, 1), across several (100), and
  // 0 (only the own key); hd 16 / 48 / 96 (zero-padded to the 32 / 64 / 128 kernels), 32, 64, 128.
  const AttnCase cases[] = {
      {1, 1, 1, 64, -1},    {2, 37, 2, 32, -1},  {2, 130, 3, 64, 16}, {1, 200, 2, 128, -1}, {3, 65, 4, 16, 0},
      {2, 300, 2, 48, 100}, {1, 257, 1, 96, -1}, {2, 129, 2, 64, 1},  {1, 192, 2, 128, 70}, {2, 64, 3, 32, 63},
  };
  uint32_t seed = 11;
  for (const AttnCase& c : cases) attention_case(c, seed++);
}

// Both dq paths are bitwise repeatable: the same inputs, run twice (fresh garbage in the workspace each
// time), give the same dqkv bytes. B > 1, L not a multiple of the 64-row tiles, a window across tiles; head
// dim 128 (query tiles of 32 rows) and 64 (tiles of 64).
TEST(CudaTrainAttention, BackwardBitwiseRepeatable) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  const AttnCase cases[] = {{3, 200, 2, 128, 70}, {2, 150, 3, 64, 100}};
  const SlotCapGuard restore_cap;
  uint32_t seed = 41;
  for (const AttnCase& c : cases) {
    std::mt19937 rng(seed++);
    const int B = c.B, H = c.H, hd = c.hd;
    const int64_t L = c.L, N = int64_t(B) * L, inner = int64_t(H) * hd, ld3 = 3 * inner;
    const float scale = float(1.0 / std::sqrt(double(hd)));
    std::vector<float> tmp(size_t(N * ld3)), tmp_dy(size_t(N * inner));
    auto d_qkv = upload(random_bf16(tmp, rng));
    auto d_dy = upload(random_bf16(tmp_dy, rng));
    cuda::DeviceBuffer<uint16_t> d_o(size_t(N * inner));
    cuda::DeviceBuffer<float> d_lse(size_t(N) * H);
    ops::cuda::attention_fwd_train_cuda(as_bf16(d_qkv), ld3, B, L, H, hd, c.window, scale, as_bf16(d_o), inner,
                                        d_lse.get(), nullptr);
    size_t ws_slots = 0, ws_kernel = 0;
    for (const size_t cap : {kSlotsCap, size_t(0)}) {
      ops::cuda::set_dq_slot_cap_bytes(cap);
      const size_t ws_bytes = ops::cuda::attention_bwd_workspace_bytes(B, L, H, hd);
      (cap ? ws_slots : ws_kernel) = ws_bytes;
      cuda::DeviceBuffer<unsigned char> ws(ws_bytes);
      std::vector<uint16_t> runs[2];
      for (int run = 0; run < 2; ++run) {
        JRT_CUDA_CHECK(cudaMemset(ws.get(), run ? 0x5a : 0x7f, ws_bytes));
        cuda::DeviceBuffer<uint16_t> d_dqkv(size_t(N * ld3));
        JRT_CUDA_CHECK(cudaMemset(d_dqkv.get(), 0xff, size_t(N * ld3) * sizeof(uint16_t)));
        ops::cuda::attention_bwd_train_cuda(as_bf16(d_qkv), ld3, as_bf16(d_o), inner, d_lse.get(), as_bf16(d_dy), inner,
                                            B, L, H, hd, c.window, scale, as_bf16(d_dqkv), ld3, ws.get(), ws_bytes,
                                            nullptr);
        JRT_CUDA_CHECK(cudaDeviceSynchronize());
        runs[run] = download(d_dqkv);
      }
      const std::string what = "B=" + std::to_string(B) + " L=" + std::to_string(L) + " hd=" + std::to_string(hd) +
                               " w=" + std::to_string(c.window) + (cap ? " dq=slots" : " dq=kernel");
      ASSERT_EQ(runs[0].size(), runs[1].size());
      EXPECT_EQ(std::memcmp(runs[0].data(), runs[1].data(), runs[0].size() * sizeof(uint16_t)), 0)
          << "attention_bwd_train_cuda is not bitwise repeatable, " << what;
    }
    // The slots path took the larger workspace (it was the path run).
    EXPECT_GT(ws_slots, ws_kernel);
  }
}

// ---- rotary backward --------------------------------------------------------------------------

struct RotCase {
  int B;
  int64_t L;
  int heads, hd;
  double fraction;  // rotary_dim = fraction * hd
};

void rotary_bwd_case(const RotCase& c, uint32_t seed) {
  std::mt19937 rng(seed);
  const ops::Rotary rot(int64_t(c.fraction * c.hd), 10000.0);
  const int nf = int(rot.rotated() / 2);
  const int64_t N = int64_t(c.B) * c.L;
  // One more head's worth of columns per row (like the k / v blocks after q) must come back untouched.
  const int64_t ld = int64_t(c.heads + 1) * c.hd;
  std::vector<float> g(size_t(N * ld));
  const std::vector<uint16_t> gb = random_bf16(g, rng);
  std::vector<int64_t> pos(static_cast<size_t>(N));
  std::vector<int32_t> cu(size_t(c.B) + 1);
  for (int b = 0; b <= c.B; ++b) cu[size_t(b)] = int32_t(b * c.L);
  for (int64_t n = 0; n < N; ++n) pos[size_t(n)] = n % c.L;
  std::vector<float> ref = g;
  rot.backward_t(ref.data(), ld, N, c.heads, c.hd, pos);

  auto d_g = upload(gb);
  auto d_cu = upload(cu);
  const std::vector<float> inv(rot.inv_freq().begin(), rot.inv_freq().end());
  auto d_inv = upload(inv);
  ops::cuda::rotary_bwd_cuda(as_bf16(d_g), ld, d_cu.get(), nullptr, c.B, N, c.heads, c.hd, d_inv.get(), nf, nullptr);
  JRT_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<float> got = columns(download(d_g), N, ld, 0, ld);
  const std::string shape = "B=" + std::to_string(c.B) + " L=" + std::to_string(c.L) +
                            " heads=" + std::to_string(c.heads) + " hd=" + std::to_string(c.hd) +
                            " rd=" + std::to_string(rot.rotary_dim());
  op_report("rotary_bwd", shape, op_error(got, ref), kOutNmse, kOutRel);
  // The extra head is bit-exact (never touched).
  std::vector<float> extra_got, extra_ref;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t col = int64_t(c.heads) * c.hd; col < ld; ++col) {
      extra_got.push_back(got[size_t(n * ld + col)]);
      extra_ref.push_back(ref[size_t(n * ld + col)]);
    }
  op_report("rotary_bwd.untouched", shape, op_error(extra_got, extra_ref), 0.0, 0.0);
}

TEST(CudaTrainAttention, RotaryBackwardMatchesCpu) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  const RotCase cases[] = {
      {2, 37, 3, 64, 1.0}, {3, 130, 2, 32, 0.5}, {1, 1, 1, 16, 1.0}, {2, 300, 4, 128, 0.5}, {4, 65, 2, 64, 0.5},
  };
  uint32_t seed = 71;
  for (const RotCase& c : cases) rotary_bwd_case(c, seed++);
}

}  // namespace

#else
TEST(CudaTrainAttention, SkippedWithoutCuda) { GTEST_SKIP() << "built without CUDA"; }
#endif
