// CUDA vs CPU for ops/rotary.cu and ops/attention.cu (label cuda; skipped without a GPU): rotary_cuda
// against ops::Rotary::apply (full, half and odd rotary dims, position offsets up to 65k, varlen);
// attention_prefill_cuda against ops::attend (varlen batches with empty and length-1 sequences,
// windows full / 0 / 1 / 16 / 128, hd 32 / 64 / 70 / 128); kv_cache_write_cuda against the ring
// definition (bit-exact); attention_decode_cuda step by step against ops::attend over the whole
// history (full caches, rings with C = window + 1 and longer, caches of thousands of rows).
// Inputs are N(0, 1) rounded to bf16 on both sides; with scale hd^-0.5 the scores are O(1).
// Padding columns of the inputs and never-written cache rows hold NaN, so a stray read shows up.
//
// Tolerance: the kernels compute in fp32 like the CPU and differ from it only in summation order
// (~1e-7 relative) and in rounding the output to bf16 (2^-9 relative, uniform: NMSE ~1e-6):
// NMSE <= 1e-5 and max-rel <= 8e-3. A mask off by one key moves outputs by ~1/window, far above.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/cuda_buffers.h"
#include "common/op_table.h"
#include "core/dtype.h"
#include "ops/attention.h"
#include "ops/cuda_ops.h"
#include "ops/rotary.h"

#ifdef JRT_HAVE_CUDA
#include "core/cuda_util.h"

using namespace jrt;
using jrt::test::op_error;
using jrt::test::op_report;
using jrt::test::random_bf16;
using jrt::test::offsets;
using jrt::test::join;
using jrt::test::download;
using jrt::test::upload;
using bf16 = __nv_bfloat16;

namespace {

constexpr uint16_t kNaN = 0x7fc0;  // bf16 quiet NaN
constexpr double kNmseTol = 1e-5, kMaxRelTol = 8e-3;  // see the header comment

std::vector<float> to_f32(const std::vector<uint16_t>& b) {
  std::vector<float> x(b.size());
  for (size_t i = 0; i < b.size(); ++i) x[i] = bf16_to_f32(b[i]);
  return x;
}

bf16* as_bf16(const cuda::DeviceBuffer<uint16_t>& d) { return reinterpret_cast<bf16*>(d.get()); }

// ---- rotary ----------------------------------------------------------------------------------

struct RotCase {
  int hd, rd, heads;
  std::vector<int> lens;
  std::vector<int32_t> pos0;  // empty: null (fresh sequences)
};

void rotary_case(const RotCase& c, uint32_t seed) {
  std::mt19937 rng(seed);
  const ops::Rotary rot(c.rd, 10000.0);
  const int nf = int(rot.rotated() / 2);
  const std::vector<int32_t> cu = offsets(c.lens);
  const int B = int(c.lens.size());
  const int64_t T = cu.back();
  // One more head's worth of columns per row (like the v block of qkv) must come back untouched.
  const int64_t ld = int64_t(c.heads + 1) * c.hd;
  std::vector<float> x(size_t(T * ld));
  const std::vector<uint16_t> xb = random_bf16(x, rng);
  std::vector<int64_t> pos(static_cast<size_t>(T));
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < c.lens[size_t(b)]; ++t)
      pos[size_t(cu[size_t(b)] + t)] = (c.pos0.empty() ? 0 : c.pos0[size_t(b)]) + t;
  std::vector<float> ref = x;
  rot.apply(ref.data(), ld, T, c.heads, c.hd, pos);

  auto dx = upload(xb);
  auto dcu = upload(cu);
  auto dpos0 = upload(c.pos0);
  const std::vector<float> inv(rot.inv_freq().begin(), rot.inv_freq().end());
  auto dinv = upload(inv);
  ops::cuda::rotary_cuda(as_bf16(dx), ld, dcu.get(), c.pos0.empty() ? nullptr : dpos0.get(), B, T, c.heads, c.hd,
                         dinv.get(), nf, nullptr);
  JRT_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<float> got = to_f32(download(dx));
  const std::string shape = "hd=" + std::to_string(c.hd) + " rd=" + std::to_string(c.rd) +
                            " heads=" + std::to_string(c.heads) + " lens=" + join(c.lens) +
                            (c.pos0.empty() ? "" : " pos0=" + join(std::vector<int>(c.pos0.begin(), c.pos0.end())));
  // Same fp32 angles and products; only cos/sin ulps and the bf16 output rounding differ.
  op_report("rotary", shape, op_error(got, ref), kNmseTol, kMaxRelTol);
}

// ---- prefill ---------------------------------------------------------------------------------

// CPU reference: ops::attend per (sequence, head) over the sequence's own rows (positions 0 .. len-1).
void attend_ref(const std::vector<float>& qkv, int64_t ld, const std::vector<int32_t>& cu, int H, int hd,
                int64_t left_window, float scale, std::vector<float>& o, int64_t ldo) {
  const int64_t inner = int64_t(H) * hd;
  for (size_t b = 0; b + 1 < cu.size(); ++b) {
    const int64_t r0 = cu[b], len = cu[b + 1] - cu[b];
    if (len == 0) continue;
    for (int h = 0; h < H; ++h) {
      const float* row = qkv.data() + r0 * ld + int64_t(h) * hd;
      const ops::KvRun run{row + inner, row + 2 * inner, ld, len};
      ops::AttnQuery a;
      a.q = row, a.ldq = ld;
      a.y = o.data() + r0 * ldo + int64_t(h) * hd, a.ldy = ldo;
      a.L = len, a.hd = hd, a.pos = 0, a.left_window = left_window, a.scale = scale;
      ops::attend(a, std::span<const ops::KvRun>(&run, 1), 0);
    }
  }
}

void prefill_case(const std::vector<int>& lens, int H, int hd, int64_t left_window, uint32_t seed) {
  std::mt19937 rng(seed);
  const std::vector<int32_t> cu = offsets(lens);
  const int B = int(lens.size());
  const int64_t T = cu.back(), inner = int64_t(H) * hd;
  int max_len = 0;
  for (int l : lens) max_len = std::max(max_len, l);
  const int64_t ld = 3 * inner + 4, ldo = inner + 2;  // padding columns: NaN in, must stay untouched out
  std::vector<float> qkv(size_t(T * ld));
  std::vector<uint16_t> qb = random_bf16(qkv, rng);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 3 * inner; c < ld; ++c) qb[size_t(t * ld + c)] = kNaN;
  const float scale = float(1.0 / std::sqrt(double(hd)));
  std::vector<float> ref(size_t(T * inner), 0.0f);
  attend_ref(qkv, ld, cu, H, hd, left_window, scale, ref, inner);

  auto dqkv = upload(qb);
  auto dcu = upload(cu);
  const uint16_t sentinel = f32_to_bf16(7.0f);
  auto dout = upload(std::vector<uint16_t>(size_t(T * ldo), sentinel));
  ops::cuda::attention_prefill_cuda(as_bf16(dqkv), ld, dcu.get(), B, max_len, H, hd, left_window, scale, as_bf16(dout),
                                    ldo, nullptr);
  JRT_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<uint16_t> ob = download(dout);
  std::vector<float> got(size_t(T * inner));
  int pad_changed = 0;
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t c = 0; c < inner; ++c) got[size_t(t * inner + c)] = bf16_to_f32(ob[size_t(t * ldo + c)]);
    for (int64_t c = inner; c < ldo; ++c) pad_changed += ob[size_t(t * ldo + c)] != sentinel;
  }
  EXPECT_EQ(pad_changed, 0) << "attention_prefill_cuda wrote outside the heads' columns";
  const std::string shape = "hd=" + std::to_string(hd) + " H=" + std::to_string(H) +
                            " w=" + std::to_string(left_window) + " lens=" + join(lens);
  op_report("attn_prefill", shape, op_error(got, ref), kNmseTol, kMaxRelTol);
}

// ---- decode ----------------------------------------------------------------------------------

struct DecCase {
  int H, hd;
  int64_t left_window, C;
  std::vector<int> prompt;  // per sequence; written into the cache in two chunks (pos0 null, then pos0)
  int steps;
};

void decode_case(const DecCase& c, uint32_t seed) {
  std::mt19937 rng(seed);
  const int B = int(c.prompt.size()), H = c.H, hd = c.hd;
  const int64_t inner = int64_t(H) * hd, w3 = 3 * inner, C = c.C;
  const float scale = float(1.0 / std::sqrt(double(hd)));
  // The K/V history of every sequence, all positions (rows of inner floats).
  std::vector<std::vector<float>> K(static_cast<size_t>(B)), V(static_cast<size_t>(B));

  // Prompt rows, split into chunk A (first half of each prompt) and chunk B (the rest, at pos0 = |A|).
  std::vector<int> la(static_cast<size_t>(B)), lb(static_cast<size_t>(B));
  for (int b = 0; b < B; ++b) {
    la[size_t(b)] = c.prompt[size_t(b)] / 2;
    lb[size_t(b)] = c.prompt[size_t(b)] - la[size_t(b)];
  }
  const std::vector<int32_t> cua = offsets(la), cub = offsets(lb);
  std::vector<uint16_t> qa(size_t(cua.back() * w3)), qbits(size_t(cub.back() * w3));
  for (int b = 0; b < B; ++b) {
    std::vector<float> rows(size_t(int64_t(c.prompt[size_t(b)]) * w3));
    const std::vector<uint16_t> bits = random_bf16(rows, rng);
    for (int t = 0; t < c.prompt[size_t(b)]; ++t) {
      const float* r = rows.data() + int64_t(t) * w3;
      K[size_t(b)].insert(K[size_t(b)].end(), r + inner, r + 2 * inner);
      V[size_t(b)].insert(V[size_t(b)].end(), r + 2 * inner, r + 3 * inner);
      const bool in_a = t < la[size_t(b)];
      uint16_t* dst = in_a ? &qa[size_t((cua[size_t(b)] + t) * w3)]
                           : &qbits[size_t((cub[size_t(b)] + t - la[size_t(b)]) * w3)];
      std::copy(bits.begin() + int64_t(t) * w3, bits.begin() + int64_t(t + 1) * w3, dst);
    }
  }
  // Never-written cache rows hold NaN: the decode must not read them.
  auto kc = upload(std::vector<uint16_t>(size_t(B * C * inner), kNaN));
  auto vc = upload(std::vector<uint16_t>(size_t(B * C * inner), kNaN));
  {
    auto dqa = upload(qa), dqb = upload(qbits);
    auto dcua = upload(cua), dcub = upload(cub);
    auto dpos0 = upload(std::vector<int32_t>(la.begin(), la.end()));
    ops::cuda::kv_cache_write_cuda(as_bf16(dqa), w3, dcua.get(), nullptr, B, cua.back(), H, hd, as_bf16(kc),
                                   as_bf16(vc), C, nullptr);
    ops::cuda::kv_cache_write_cuda(as_bf16(dqb), w3, dcub.get(), dpos0.get(), B, cub.back(), H, hd, as_bf16(kc),
                                   as_bf16(vc), C, nullptr);
    JRT_CUDA_CHECK(cudaDeviceSynchronize());
  }

  cuda::DeviceBuffer<uint16_t> dqkv(size_t(B * w3)), dout(size_t(B * inner));
  cuda::DeviceBuffer<int32_t> dpos(static_cast<size_t>(B));
  for (int s = 0; s < c.steps; ++s) {
    std::vector<float> rows(size_t(B * w3));
    const std::vector<uint16_t> bits = random_bf16(rows, rng);
    std::vector<int32_t> pos(static_cast<size_t>(B));
    std::vector<float> ref(size_t(B * inner));
    for (int b = 0; b < B; ++b) {
      pos[size_t(b)] = c.prompt[size_t(b)] + s;
      const float* r = rows.data() + int64_t(b) * w3;
      K[size_t(b)].insert(K[size_t(b)].end(), r + inner, r + 2 * inner);
      V[size_t(b)].insert(V[size_t(b)].end(), r + 2 * inner, r + 3 * inner);
      for (int h = 0; h < H; ++h) {
        const ops::KvRun run{K[size_t(b)].data() + int64_t(h) * hd, V[size_t(b)].data() + int64_t(h) * hd, inner,
                             int64_t(pos[size_t(b)]) + 1};
        ops::AttnQuery a;
        a.q = r + int64_t(h) * hd, a.ldq = w3;
        a.y = ref.data() + int64_t(b) * inner + int64_t(h) * hd, a.ldy = inner;
        a.L = 1, a.hd = hd, a.pos = pos[size_t(b)], a.left_window = c.left_window, a.scale = scale;
        ops::attend(a, std::span<const ops::KvRun>(&run, 1), 0);
      }
    }
    dqkv.upload(bits.data(), bits.size());
    dpos.upload(pos.data(), pos.size());
    ops::cuda::attention_decode_cuda(as_bf16(dqkv), w3, dpos.get(), B, H, hd, c.left_window, scale, as_bf16(kc),
                                     as_bf16(vc), C, as_bf16(dout), inner, nullptr);
    JRT_CUDA_CHECK(cudaDeviceSynchronize());
    const std::vector<float> got = to_f32(download(dout));
    const std::string shape = "hd=" + std::to_string(hd) + " H=" + std::to_string(H) +
                              " w=" + std::to_string(c.left_window) + " C=" + std::to_string(C) +
                              " prompt=" + join(c.prompt) + " step=" + std::to_string(s);
    op_report("attn_decode", shape, op_error(got, ref), kNmseTol, kMaxRelTol);
  }
}

}  // namespace

TEST(CudaAttention, RotaryMatchesCpu) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  const std::vector<RotCase> cases = {
      {64, 64, 4, {5, 1, 40}, {}},                // fresh sequences (pos0 null)
      {64, 32, 4, {5, 0, 40}, {0, 17, 1000}},     // half rotary, an empty sequence, offsets
      {70, 35, 6, {3, 33, 9}, {7, 0, 255}},       // odd rotary dim: 36 dims rotated
      {128, 128, 4, {2, 130}, {32000, 5}},        // positions past 32k: large fp32 angles
      {32, 16, 2, {1, 1, 1, 1, 1}, {65000, 0, 3, 4096, 777}},  // decode-like rows
  };
  uint32_t seed = 100;
  for (const RotCase& c : cases) rotary_case(c, seed++);
}

TEST(CudaAttention, PrefillMatchesCpu) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  uint32_t seed = 200;
  for (int hd : {32, 64, 70, 128})
    for (int64_t w : {int64_t(-1), int64_t(0), int64_t(1), int64_t(16), int64_t(128)})
      prefill_case({1, 7, 0, 64, 100, 257}, 2, hd, w, seed++);
  // Long sequences: many query blocks, window tiles starting mid-tile, skipped tiles.
  prefill_case({1000}, 3, 64, -1, seed++);
  prefill_case({1000, 5}, 3, 64, 200, seed++);
  prefill_case({513, 64, 129}, 1, 128, 63, seed++);
  prefill_case({700, 33}, 2, 70, 300, seed++);
}

TEST(CudaAttention, KvCacheWriteKeepsTheLastCRows) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  // lens 40 > C = 16 wraps the ring twice; pos0 100 starts mid-ring; an empty segment.
  const std::vector<int> lens = {5, 40, 0, 13};
  const std::vector<int32_t> pos0 = {0, 3, 9, 100};
  const int B = 4, H = 2, hd = 70;
  const int64_t C = 16, inner = int64_t(H) * hd, w3 = 3 * inner;
  std::mt19937 rng(300);
  const std::vector<int32_t> cu = offsets(lens);
  std::vector<float> qkv(size_t(cu.back() * w3));
  const std::vector<uint16_t> qb = random_bf16(qkv, rng);
  std::vector<float> init(size_t(B * C * inner));
  const std::vector<uint16_t> kinit = random_bf16(init, rng), vinit = random_bf16(init, rng);
  std::vector<uint16_t> kref = kinit, vref = vinit;
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < lens[size_t(b)]; ++t) {  // in order: later rows overwrite earlier ones
      const int64_t slot = (pos0[size_t(b)] + t) % C, row = cu[size_t(b)] + t;
      for (int64_t c = 0; c < inner; ++c) {
        kref[size_t((b * C + slot) * inner + c)] = qb[size_t(row * w3 + inner + c)];
        vref[size_t((b * C + slot) * inner + c)] = qb[size_t(row * w3 + 2 * inner + c)];
      }
    }
  auto dqkv = upload(qb), kc = upload(kinit), vc = upload(vinit);
  auto dcu = upload(cu), dpos0 = upload(pos0);
  ops::cuda::kv_cache_write_cuda(as_bf16(dqkv), w3, dcu.get(), dpos0.get(), B, cu.back(), H, hd, as_bf16(kc),
                                 as_bf16(vc), C, nullptr);
  JRT_CUDA_CHECK(cudaDeviceSynchronize());
  // A copy: bit-exact, so both tolerances are 0.
  op_report("kv_cache_write", "hd=70 H=2 C=16 lens=" + join(lens) + " k", op_error(to_f32(download(kc)), to_f32(kref)),
            0, 0);
  op_report("kv_cache_write", "hd=70 H=2 C=16 lens=" + join(lens) + " v", op_error(to_f32(download(vc)), to_f32(vref)),
            0, 0);
}

TEST(CudaAttention, DecodeMatchesCpu) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  const std::vector<DecCase> cases = {
      {2, 64, -1, 512, {1, 37, 300}, 6},             // full attention
      {2, 128, 16, 17, {1, 37, 90}, 6},              // ring C = window + 1, prompts longer than C
      {3, 70, 40, 64, {20, 41, 130}, 5},             // ring with spare rows, hd 70
      {2, 32, 0, 1, {3, 1, 10}, 3},                  // window 0: the token itself
      {2, 128, -1, 2000, {1500, 3, 64}, 3},          // full, hd 128, many key chunks per warp
      {2, 64, -1, 8192, {5000, 1, 300}, 3},          // long full cache
      {1, 128, 4095, 4096, {10000, 4000, 4097}, 3},  // long ring, several wraps in the prompt write
  };
  uint32_t seed = 400;
  for (const DecCase& c : cases) decode_case(c, seed++);
}
#else
TEST(CudaAttention, NotBuilt) { GTEST_SKIP() << "built without the CUDA backend"; }
#endif
