// CUDA vs CPU for the training forms of the row, elementwise, loss and optimizer ops (cuda_train_ops.h;
// label cuda, skipped without a GPU): embedding backward (repeated ids; the simple and the grouped form),
// RMSNorm / LayerNorm forward with saved statistics and backward (dx / dw / db accumulated into non-zero
// buffers, grids that stride over more rows than one wave), the bias gradient, softmax cross-entropy
// forward / backward (ignored rows, strided rows, a GPT-2-sized vocabulary), SiLU / gated SiLU / SwiGLU
// backwards, the fp32 -> bf16 cast, the squared gradient norm and AdamW over several steps. The CPU
// references are the T = float training forms (ops/*_train.cpp, ops/cross_entropy.cpp,
// train/optimizer.cpp) on the same bf16-rounded inputs. The parameter-gradient reductions (no atomics)
// must also be bitwise reproducible: run twice on the same inputs, under heavy contention.
//
// Tolerances (reason next to each):
//   bf16 results: rounded once (relative 2^-9): NMSE <= 1e-5, max-rel <= 1e-2.
//   fp32 row results (norm statistics, dx, lse, row loss): fp32 vs the CPU's double row sums, rsqrtf /
//     expf / logf ulps: NMSE <= 1e-11, max-rel <= 1e-5.
//   fp32 column sums over N rows (dw, db, bias grad, embedding dtable): the CPU sums each column
//     sequentially in fp32 (random-walk error ~ sqrt(N) ulps), the GPU in blocks then partial sums in a
//     fixed order: NMSE <= 1e-9, max-rel <= 1e-4.
//   cast and AdamW: the same float operations in the same order: exact (AdamW relaxed to ulps when the
//     CPU library may contract to FMA, i.e. built with -march=native on an FMA machine).
//   sum of squares: exact squares in double, only the summation order differs: relative 1e-12.
#include <gtest/gtest.h>

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
#include "ops/activation.h"
#include "ops/cross_entropy.h"
#include "ops/embedding.h"
#include "ops/norm.h"
#include "train/optimizer.h"

#ifdef JRT_HAVE_CUDA
#include "core/cuda_util.h"
#include "ops/cuda_train_ops.h"

using namespace jrt;
using jrt::cuda::DeviceBuffer;
using jrt::ops::cuda::bf16;
using jrt::test::op_error;
using jrt::test::op_report;
using jrt::test::to_bf16;
using namespace jrt::test;

namespace {

constexpr double kBfNmse = 1e-5, kBfRel = 1e-2;
constexpr double kRowNmse = 1e-11, kRowRel = 1e-5;
constexpr double kColNmse = 1e-9, kColRel = 1e-4;

// Bits of a strided buffer outside its [N, C] block (the padding a kernel must leave alone).
std::vector<uint16_t> padding(const std::vector<uint16_t>& buf, int64_t C, int64_t ld) {
  std::vector<uint16_t> out;
  for (size_t i = 0; i < buf.size(); ++i)
    if (int64_t(i) % ld >= C) out.push_back(buf[i]);
  return out;
}

void sync() { JRT_CUDA_CHECK(cudaDeviceSynchronize()); }

std::string nd(int64_t N, int64_t d) { return "N=" + std::to_string(N) + " d=" + std::to_string(d); }

// Bitwise equality of two downloads (memcmp: -0 vs +0 and NaN payloads count).
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

// The grouped embedding backward's inputs as train/gpu_train_model.cpp builds them: row indices sorted by
// id (counting sort, stable), cut into chunks of at most 64 rows of one id.
struct EmbedGroups {
  std::vector<int32_t> order, chunk_start, chunk_id;
};
EmbedGroups group_ids(const std::vector<int32_t>& ids, int64_t V) {
  const int64_t N = int64_t(ids.size());
  EmbedGroups g;
  std::vector<int64_t> count(size_t(V) + 1, 0);
  for (int32_t id : ids) ++count[size_t(id) + 1];
  for (int64_t v = 0; v < V; ++v) count[size_t(v) + 1] += count[size_t(v)];
  g.order.resize(size_t(N));
  for (int64_t n = 0; n < N; ++n) g.order[size_t(count[size_t(ids[size_t(n)])]++)] = int32_t(n);
  for (int64_t r = 0; r < N;) {
    const int32_t id = ids[size_t(g.order[size_t(r)])];
    int64_t e = r;
    while (e < N && e - r < 64 && ids[size_t(g.order[size_t(e)])] == id) ++e;
    g.chunk_start.push_back(int32_t(r));
    g.chunk_id.push_back(id);
    r = e;
  }
  g.chunk_start.push_back(int32_t(N));
  return g;
}

// ids [N] in [0, V): a share `hot` of them one hot id (V / 2), the rest uniform.
std::vector<int32_t> random_ids(int64_t N, int64_t V, double hot, std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> id(0, int32_t(V - 1));
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<int32_t> ids(static_cast<size_t>(N));
  for (auto& i : ids) i = u(rng) < hot ? int32_t(V / 2) : id(rng);
  return ids;
}

// ---- embedding backward ---------------------------------------------------------------------------

TEST(CudaTrainRows, EmbeddingBwdMatchesCpu) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(11);
  struct Case {
    int64_t N, d, V;
  };
  // Few-token vocabularies make many rows hit the same table row (the atomics' race).
  for (Case c : {Case{1, 64, 10}, Case{77, 3, 5}, Case{300, 100, 37}, Case{2048, 512, 1000}}) {
    std::uniform_int_distribution<int64_t> id(0, c.V - 1);
    std::vector<int64_t> ids(size_t(c.N));
    for (auto& i : ids) i = id(rng);
    std::vector<int32_t> ids32(ids.begin(), ids.end());
    const std::vector<float> dout = randn(size_t(c.N * c.d), rng, 0.0f, 1.0f);
    std::vector<float> table = randn(size_t(c.V * c.d), rng, 0.0f, 1.0f);  // += onto non-zero values
    DeviceBuffer<int32_t> dids = upload(ids32);
    DeviceBuffer<float> ddout = upload(dout), dtable = upload(table);
    ops::cuda::embedding_bwd_cuda(dids.get(), ddout.get(), c.N, c.d, dtable.get(), nullptr);
    sync();
    ops::embedding_bwd_t<float>(ids, dout.data(), c.V, c.d, table.data());
    op_report("embedding_bwd", nd(c.N, c.d) + " V=" + std::to_string(c.V), op_error(download(dtable), table), kColNmse,
              kColRel);
  }
}

// Runs of many chunks of one id (several run_sum windows, runs of > 256 chunks), runs of one chunk, ids
// that never occur, d not a multiple of 32.
TEST(CudaTrainRows, EmbeddingBwdGroupedMatchesCpu) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(12);
  struct Case {
    int64_t N, d, V;
    double hot;
  };
  for (Case c : {Case{1, 64, 10, 0.0}, Case{77, 3, 5, 0.0}, Case{300, 100, 37, 0.5}, Case{2048, 512, 1000, 0.3},
                 Case{5000, 40, 3000, 0.0}, Case{40000, 70, 50, 0.5}}) {
    const std::vector<int32_t> ids32 = random_ids(c.N, c.V, c.hot, rng);
    const std::vector<int64_t> ids(ids32.begin(), ids32.end());
    const EmbedGroups g = group_ids(ids32, c.V);
    const std::vector<float> dout = randn(size_t(c.N * c.d), rng, 0.0f, 1.0f);
    std::vector<float> table = randn(size_t(c.V * c.d), rng, 0.0f, 1.0f);  // += onto non-zero values
    DeviceBuffer<int32_t> dorder = upload(g.order), dstart = upload(g.chunk_start), did = upload(g.chunk_id);
    DeviceBuffer<float> ddout = upload(dout), dtable = upload(table);
    ops::cuda::embedding_bwd_grouped_cuda(dorder.get(), dstart.get(), did.get(), int64_t(g.chunk_id.size()),
                                          ddout.get(), c.d, dtable.get(), nullptr);
    sync();
    ops::embedding_bwd_t<float>(ids, dout.data(), c.V, c.d, table.data());
    op_report("embedding_bwd_grouped",
              nd(c.N, c.d) + " V=" + std::to_string(c.V) + " chunks=" + std::to_string(g.chunk_id.size()),
              op_error(download(dtable), table), kColNmse, kColRel);
  }
}

// ---- bias gradient --------------------------------------------------------------------------------

TEST(CudaTrainRows, BiasGradMatchesCpu) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(13);
  struct Case {
    int64_t N, C, ld;
  };
  // One row; odd widths and strides; more rows than row slices x 32 row groups (rows stride).
  for (Case c : {Case{1, 1, 1}, Case{37, 100, 103}, Case{1000, 512, 512}, Case{20000, 70, 75}}) {
    std::vector<float> dy = randn(size_t(c.N * c.ld), rng, 0.0f, 1.0f);
    const std::vector<uint16_t> dyb = to_bf16(dy);
    std::vector<float> db = randn(size_t(c.C), rng, 0.0f, 1.0f);  // += onto non-zero values
    DeviceBuffer<uint16_t> ddy = upload(dyb);
    DeviceBuffer<float> ddb = upload(db);
    ops::cuda::bias_grad_cuda(bf(ddy), c.ld, c.N, c.C, ddb.get(), nullptr);
    sync();
    for (int64_t i = 0; i < c.C; ++i) {  // as linear_bwd_t: each column summed over the rows in order
      float s = 0.0f;
      for (int64_t n = 0; n < c.N; ++n) s += dy[size_t(n * c.ld + i)];
      db[size_t(i)] += s;
    }
    op_report("bias_grad", nd(c.N, c.C) + " ld=" + std::to_string(c.ld), op_error(download(ddb), db), kColNmse,
              kColRel);
  }
}

// ---- RMSNorm / LayerNorm --------------------------------------------------------------------------

struct NormCase {
  int64_t N, d;
};
// Warp-per-row widths (<= 1024, odd ones, d = 1024 itself) and block-per-row ones (1025 .. 4096).
const std::vector<NormCase> kNormCases = {{1, 64},   {37, 64},  {129, 100}, {16, 3},  {64, 512},
                                          {9, 1024}, {5, 1025}, {33, 2048}, {4, 4096}};

TEST(CudaTrainRows, NormFwdMatchesCpu) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(22);
  const float eps = 1e-5f;
  for (NormCase c : kNormCases)
    for (int kind = 0; kind < 3; ++kind) {  // RMSNorm, LayerNorm with bias, LayerNorm without
      const bool rms = kind == 0, bias = kind == 1;
      const std::string op = rms ? "rmsnorm_fwd_train" : bias ? "layernorm_fwd_train" : "layernorm_fwd_train.nob";
      const std::vector<float> x = randn(size_t(c.N * c.d), rng, rms ? 0.0f : 0.7f, 1.5f);  // LN: a real mean
      const std::vector<float> w = randn(size_t(c.d), rng, 1.0f, 0.2f), b = randn(size_t(c.d), rng, 0.0f, 0.1f);
      std::vector<float> y(x.size()), mean(size_t(c.N)), rstd(size_t(c.N));
      if (rms)
        ops::rmsnorm_fwd_t<float>(x.data(), w.data(), eps, c.N, c.d, y.data(), rstd.data());
      else
        ops::layernorm_fwd_t<float>(x.data(), w.data(), bias ? b.data() : nullptr, eps, c.N, c.d, y.data(), mean.data(),
                                    rstd.data());
      DeviceBuffer<float> dx = upload(x), dw = upload(w), db = upload(b), dmean(size_t(c.N)), drstd(size_t(c.N));
      DeviceBuffer<uint16_t> dy(x.size());
      ops::cuda::norm_fwd_train_cuda(dx.get(), dw.get(), bias ? db.get() : nullptr, rms, eps, c.N, c.d, bf_mut(dy),
                                     rms ? nullptr : dmean.get(), drstd.get(), nullptr);
      sync();
      op_report(op, nd(c.N, c.d), op_error(download_bf16(dy), y), kBfNmse, kBfRel);
      op_report(op + ".rstd", nd(c.N, c.d), op_error(download(drstd), rstd), kRowNmse, kRowRel);
      if (!rms) op_report(op + ".mean", nd(c.N, c.d), op_error(download(dmean), mean), kRowNmse, kRowRel);
    }
}

TEST(CudaTrainRows, NormBwdMatchesCpu) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(33);
  const float eps = 1e-5f;
  std::vector<NormCase> cases = kNormCases;
  cases.push_back({10000, 64});   // warp form: 313 rounds of 32 rows > the 128-block grid, rows stride
  cases.push_back({1100, 2048});  // block form: more rows than blocks
  cases.push_back({300, 100});    // warp form, d not dividing the block: 10 column slices, uneven rows
  for (NormCase c : cases)
    for (int kind = 0; kind < 4; ++kind) {  // RMSNorm; LayerNorm with dw + db, dw only, neither
      const bool rms = kind == 0, want_dw = kind <= 2, want_db = kind == 1;
      const std::string op =
          rms ? "rmsnorm_bwd"
              : "layernorm_bwd" + std::string(kind == 2 ? ".nodb" : "") + std::string(kind == 3 ? ".dxonly" : "");
      const std::vector<float> x = randn(size_t(c.N * c.d), rng, rms ? 0.0f : 0.7f, 1.5f);
      const std::vector<float> w = randn(size_t(c.d), rng, 1.0f, 0.2f);
      const std::vector<float> gy = randn(x.size(), rng, 0.0f, 1.0f);
      std::vector<float> y(x.size()), mean(size_t(c.N)), rstd(size_t(c.N));
      if (rms)
        ops::rmsnorm_fwd_t<float>(x.data(), w.data(), eps, c.N, c.d, y.data(), rstd.data());
      else
        ops::layernorm_fwd_t<float>(x.data(), w.data(), nullptr, eps, c.N, c.d, y.data(), mean.data(), rstd.data());
      // Every gradient starts from the same non-zero values on both sides (+=).
      std::vector<float> gx = randn(x.size(), rng, 0.0f, 1.0f), gw = randn(size_t(c.d), rng, 0.0f, 1.0f),
                         gb = randn(size_t(c.d), rng, 0.0f, 1.0f);
      DeviceBuffer<float> dx = upload(x), dw = upload(w), dgy = upload(gy), dmean = upload(mean), drstd = upload(rstd),
                          dgx = upload(gx), dgw = upload(gw), dgb = upload(gb);
      ops::cuda::norm_bwd_cuda(dgy.get(), dx.get(), dw.get(), rms ? nullptr : dmean.get(), drstd.get(), rms, c.N, c.d,
                               dgx.get(), want_dw ? dgw.get() : nullptr, want_db ? dgb.get() : nullptr, nullptr);
      sync();
      if (rms)
        ops::rmsnorm_bwd_t<float>(gy.data(), x.data(), w.data(), rstd.data(), c.N, c.d, gx.data(),
                                  want_dw ? gw.data() : nullptr, true);
      else
        ops::layernorm_bwd_t<float>(gy.data(), x.data(), w.data(), mean.data(), rstd.data(), c.N, c.d, gx.data(),
                                    want_dw ? gw.data() : nullptr, want_db ? gb.data() : nullptr, true);
      op_report(op + ".dx", nd(c.N, c.d), op_error(download(dgx), gx), kRowNmse, kRowRel);
      // A skipped gradient must stay exactly at its start values (the CPU leaves it there too).
      op_report(op + ".dw", nd(c.N, c.d), op_error(download(dgw), gw), want_dw ? kColNmse : 0.0,
                want_dw ? kColRel : 0.0);
      op_report(op + ".db", nd(c.N, c.d), op_error(download(dgb), gb), want_db ? kColNmse : 0.0,
                want_db ? kColRel : 0.0);
    }
}

// ---- cross entropy --------------------------------------------------------------------------------

TEST(CudaTrainRows, CrossEntropyMatchesCpu) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(44);
  struct Case {
    int64_t N, V, ldl, lddl;
  };
  for (Case c : {Case{1, 1, 1, 1}, Case{7, 5, 8, 6}, Case{64, 1000, 1000, 1000}, Case{37, 3001, 3005, 3002},
                 Case{6, 50257, 50257, 50257}}) {
    // Logits of a trained-ish LM: N(0, 2) plus a few confident spikes.
    std::vector<float> logits = randn(size_t(c.N * c.ldl), rng, 0.0f, 2.0f);
    std::uniform_int_distribution<int64_t> tok(0, c.V - 1);
    for (int64_t n = 0; n < c.N; ++n) logits[size_t(n * c.ldl + tok(rng))] += 8.0f;
    // Labels: every 4th row ignored, as -100 (the CPU's ignore index) or -1 (any negative on the GPU).
    std::vector<int64_t> lab(size_t(c.N));
    std::vector<int32_t> lab32(size_t(c.N));
    int64_t count = 0;
    for (int64_t n = 0; n < c.N; ++n) {
      const bool ignored = c.N > 1 && n % 4 == 1;
      lab[size_t(n)] = ignored ? ops::kIgnoreIndex : tok(rng);
      lab32[size_t(n)] = ignored ? (n % 8 == 1 ? -1 : -100) : int32_t(lab[size_t(n)]);
      count += !ignored;
    }
    // Objective weights: 1 / count, 0.25 / count on some rows, 0 on one counted row; ignored rows get a
    // non-zero scale too, which the kernel must not apply.
    std::vector<float> scale(size_t(c.N));
    for (int64_t n = 0; n < c.N; ++n) scale[size_t(n)] = (n == 2 ? 0.0f : n % 3 == 2 ? 0.25f : 1.0f) / float(count);

    std::vector<float> lse(size_t(c.N)), row_loss(size_t(c.N));
    ops::cross_entropy_fwd_t<float>(logits.data(), c.N, c.V, lab.data(), lse.data(), row_loss.data(), c.ldl);
    std::vector<float> dref(size_t(c.N * c.V));
    for (int64_t n = 0; n < c.N; ++n)
      ops::cross_entropy_bwd_t<float>(logits.data() + n * c.ldl, 1, c.V, &lab[size_t(n)], &lse[size_t(n)],
                                      scale[size_t(n)], dref.data() + n * c.V, c.ldl, c.V);

    DeviceBuffer<float> dlogits = upload(logits), dlse(size_t(c.N)), dloss(size_t(c.N)), dscale = upload(scale),
                        dlse_cpu = upload(lse);
    DeviceBuffer<int32_t> dlab = upload(lab32);
    std::vector<uint16_t> dl0(size_t(c.N * c.lddl), 0x7fc1);  // NaN padding that must survive
    DeviceBuffer<uint16_t> ddl = upload(dl0);
    ops::cuda::cross_entropy_fwd_cuda(dlogits.get(), c.ldl, dlab.get(), c.N, c.V, dlse.get(), dloss.get(), nullptr);
    // The backward reads the CPU's lse, so it is checked on its own.
    ops::cuda::cross_entropy_bwd_cuda(dlogits.get(), c.ldl, dlab.get(), dlse_cpu.get(), dscale.get(), c.N, c.V,
                                      bf_mut(ddl), c.lddl, nullptr);
    sync();
    const std::string shape = "N=" + std::to_string(c.N) + " V=" + std::to_string(c.V) +
                              " ldl=" + std::to_string(c.ldl) + " lddl=" + std::to_string(c.lddl);
    op_report("cross_entropy_fwd.lse", shape, op_error(download(dlse), lse), kRowNmse, kRowRel);
    op_report("cross_entropy_fwd.loss", shape, op_error(download(dloss), row_loss), kRowNmse, kRowRel);
    const std::vector<float> dl = download_bf16(ddl);
    op_report("cross_entropy_bwd", shape, op_error(columns(dl, c.N, c.lddl, 0, c.V), dref), kBfNmse, kBfRel);
    EXPECT_EQ(padding(download(ddl), c.V, c.lddl), padding(dl0, c.V, c.lddl)) << shape;
  }
}

// ---- activations and the cast ---------------------------------------------------------------------

TEST(CudaTrainRows, SiluMatchesCpu) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(55);
  for (int64_t n : {int64_t(1), int64_t(1000), int64_t(65537)}) {
    std::vector<float> x = randn(size_t(n), rng, 0.0f, 2.0f);
    const std::vector<uint16_t> xb = to_bf16(x);
    const std::vector<float> gy = randn(size_t(n), rng, 0.0f, 1.0f);  // fp32 upstream gradient
    std::vector<float> y(static_cast<size_t>(n)), gx(static_cast<size_t>(n));
    ops::silu_fwd_t<float>(x.data(), n, y.data());
    ops::silu_bwd_t<float>(gy.data(), x.data(), n, gx.data());
    DeviceBuffer<uint16_t> dx = upload(xb), dy(static_cast<size_t>(n)), dgx(static_cast<size_t>(n));
    DeviceBuffer<float> dgy = upload(gy);
    ops::cuda::silu_fwd_cuda(bf(dx), n, bf_mut(dy), nullptr);
    ops::cuda::silu_bwd_cuda(dgy.get(), bf(dx), n, bf_mut(dgx), nullptr);
    sync();
    op_report("silu_fwd", "n=" + std::to_string(n), op_error(download_bf16(dy), y), kBfNmse, kBfRel);
    op_report("silu_bwd", "n=" + std::to_string(n), op_error(download_bf16(dgx), gx), kBfNmse, kBfRel);
  }
}

TEST(CudaTrainRows, GatedSiluBwdMatchesCpu) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(66);
  struct Case {
    int64_t N, F, lddy, lda, ldg, ldda, lddg;
  };
  // Contiguous; every operand with its own stride (odd widths); a and g interleaved in one buffer.
  for (Case c :
       {Case{1, 1, 1, 1, 1, 1, 1}, Case{256, 513, 513, 513, 513, 513, 513}, Case{37, 100, 103, 300, 300, 101, 107}}) {
    std::vector<float> dy = randn(size_t(c.N * c.lddy), rng, 0.0f, 1.0f),
                       a = randn(size_t(c.N * c.lda), rng, 0.0f, 1.5f), g = randn(size_t(c.N * c.ldg), rng, 0.0f, 2.0f);
    const std::vector<uint16_t> dyb = to_bf16(dy), ab = to_bf16(a), gb = to_bf16(g);
    std::vector<float> da(size_t(c.N * c.ldda)), dg(size_t(c.N * c.lddg));
    ops::gated_silu_bwd_t<float>(dy.data(), c.lddy, a.data(), c.lda, g.data(), c.ldg, c.N, c.F, da.data(), c.ldda,
                                 dg.data(), c.lddg);
    const std::vector<uint16_t> da0(da.size(), 0x7fc2), dg0(dg.size(), 0x7fc3);  // padding must survive
    DeviceBuffer<uint16_t> ddy = upload(dyb), dA = upload(ab), dG = upload(gb), dda = upload(da0), ddg = upload(dg0);
    ops::cuda::gated_silu_bwd_cuda(bf(ddy), c.lddy, bf(dA), c.lda, bf(dG), c.ldg, c.N, c.F, bf_mut(dda), c.ldda,
                                   bf_mut(ddg), c.lddg, nullptr);
    sync();
    const std::string shape = nd(c.N, c.F) + " ld=" + std::to_string(c.lddy) + "," + std::to_string(c.lda) + "," +
                              std::to_string(c.ldg) + "," + std::to_string(c.ldda) + "," + std::to_string(c.lddg);
    op_report("gated_silu_bwd.da", shape,
              op_error(columns(download_bf16(dda), c.N, c.ldda, 0, c.F), columns(da, c.N, c.ldda, 0, c.F)), kBfNmse,
              kBfRel);
    op_report("gated_silu_bwd.dg", shape,
              op_error(columns(download_bf16(ddg), c.N, c.lddg, 0, c.F), columns(dg, c.N, c.lddg, 0, c.F)), kBfNmse,
              kBfRel);
    EXPECT_EQ(padding(download(dda), c.F, c.ldda), padding(da0, c.F, c.ldda)) << shape;
    EXPECT_EQ(padding(download(ddg), c.F, c.lddg), padding(dg0, c.F, c.lddg)) << shape;
  }
}

TEST(CudaTrainRows, SwigluBwdMatchesCpu) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(77);
  for (NormCase c : {NormCase{1, 1}, NormCase{64, 300}, NormCase{129, 1025}}) {
    std::vector<float> dy = randn(size_t(c.N * c.d), rng, 0.0f, 1.0f),
                       u = randn(size_t(c.N * 2 * c.d), rng, 0.0f, 2.0f);
    const std::vector<uint16_t> dyb = to_bf16(dy), ub = to_bf16(u);
    std::vector<float> du(u.size());
    ops::swiglu_bwd_t<float>(dy.data(), u.data(), c.N, c.d, du.data());
    DeviceBuffer<uint16_t> ddy = upload(dyb), dU = upload(ub), ddu(u.size());
    ops::cuda::swiglu_bwd_cuda(bf(ddy), bf(dU), c.N, c.d, bf_mut(ddu), nullptr);
    sync();
    op_report("swiglu_bwd", "N=" + std::to_string(c.N) + " F=" + std::to_string(c.d), op_error(download_bf16(ddu), du),
              kBfNmse, kBfRel);
  }
}

TEST(CudaTrainRows, CastF32Bf16IsExact) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(88);
  struct Case {
    int64_t N, C, ldx, ldy;
  };
  for (Case c : {Case{1, 1, 1, 1}, Case{37, 100, 103, 101}, Case{512, 512, 512, 512}}) {
    const std::vector<float> x = randn(size_t(c.N * c.ldx), rng, 0.0f, 3.0f);
    const std::vector<uint16_t> y0(size_t(c.N * c.ldy), 0x7fc4);
    DeviceBuffer<float> dx = upload(x);
    DeviceBuffer<uint16_t> dy = upload(y0);
    ops::cuda::cast_f32_bf16_cuda(dx.get(), c.ldx, c.N, c.C, bf_mut(dy), c.ldy, nullptr);
    sync();
    const std::vector<uint16_t> y = download(dy);
    std::vector<float> got(size_t(c.N * c.C)), ref(got.size());
    for (int64_t n = 0; n < c.N; ++n)
      for (int64_t i = 0; i < c.C; ++i) {
        got[size_t(n * c.C + i)] = bf16_to_f32(y[size_t(n * c.ldy + i)]);
        ref[size_t(n * c.C + i)] = bf16_to_f32(f32_to_bf16(x[size_t(n * c.ldx + i)]));  // round to nearest even
      }
    const std::string shape = "N=" + std::to_string(c.N) + " C=" + std::to_string(c.C) +
                              " ld=" + std::to_string(c.ldx) + "," + std::to_string(c.ldy);
    op_report("cast_f32_bf16", shape, op_error(got, ref), 0.0, 0.0);
    EXPECT_EQ(padding(y, c.C, c.ldy), padding(y0, c.C, c.ldy)) << shape;
  }
}

// ---- optimizer ------------------------------------------------------------------------------------

TEST(CudaTrainRows, SumSquaresMatchesGlobalNorm) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(99);
  for (int64_t n : {int64_t(1), int64_t(1000), int64_t((1 << 20) + 3)}) {  // the last: a grid-stride loop
    const std::vector<float> g = randn(size_t(n), rng, 0.0f, 0.05f);
    const double start = 1.5;  // out[0] += : accumulates onto what is there
    DeviceBuffer<float> dg = upload(g);
    DeviceBuffer<double> dout = upload(std::vector<double>{start});
    ops::cuda::sum_squares_cuda(dg.get(), n, dout.get(), nullptr);
    sync();
    const double got = download(dout)[0], gn = global_norm(g), ref = start + gn * gn;
    const double rel = std::fabs(got - ref) / ref;
    op_report("sum_squares", "n=" + std::to_string(n), {rel * rel, rel}, 1e-24, 1e-12);
  }
}

// ---- bitwise reproducibility of the parameter-gradient reductions --------------------------------

// Each op twice on the same inputs (accumulating outputs restarted from the same values): every output
// bitwise equal. Heavy contention: many rows per column sum, a few ids repeated thousands of times.
TEST(CudaTrainRows, ParamGradsAreBitwiseReproducible) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  std::mt19937 rng(1234);
  {  // embedding backward, both forms: 30000 rows over 20 ids, half of them one id (235 chunks)
    const int64_t N = 30000, d = 96, V = 20;
    const std::vector<int32_t> ids = random_ids(N, V, 0.5, rng);
    const EmbedGroups g = group_ids(ids, V);
    const std::vector<float> dout = randn(size_t(N * d), rng, 0.0f, 1.0f), t0 = randn(size_t(V * d), rng, 0.0f, 1.0f);
    DeviceBuffer<int32_t> dids = upload(ids), dorder = upload(g.order), dstart = upload(g.chunk_start),
                          did = upload(g.chunk_id);
    DeviceBuffer<float> ddout = upload(dout);
    std::vector<float> simple[2], grouped[2];
    for (int run = 0; run < 2; ++run) {
      DeviceBuffer<float> a = upload(t0), b = upload(t0);
      ops::cuda::embedding_bwd_cuda(dids.get(), ddout.get(), N, d, a.get(), nullptr);
      ops::cuda::embedding_bwd_grouped_cuda(dorder.get(), dstart.get(), did.get(), int64_t(g.chunk_id.size()),
                                            ddout.get(), d, b.get(), nullptr);
      sync();
      simple[run] = download(a), grouped[run] = download(b);
    }
    EXPECT_TRUE(same_bits(simple[0], simple[1])) << "embedding_bwd";
    EXPECT_TRUE(same_bits(grouped[0], grouped[1])) << "embedding_bwd_grouped";
  }
  // Norm backward: warp form (d = 64: 16 column slices; d = 1000), block form (d = 2048); LayerNorm with
  // dw and db, RMSNorm with dw.
  for (NormCase c : {NormCase{20000, 64}, NormCase{6000, 1000}, NormCase{3000, 2048}})
    for (bool rms : {false, true}) {
      const std::vector<float> x = randn(size_t(c.N * c.d), rng, 0.3f, 1.5f), gy = randn(x.size(), rng, 0.0f, 1.0f);
      const std::vector<float> w = randn(size_t(c.d), rng, 1.0f, 0.2f), gw0 = randn(size_t(c.d), rng, 0.0f, 1.0f),
                               gb0 = randn(size_t(c.d), rng, 0.0f, 1.0f), gx0 = randn(x.size(), rng, 0.0f, 1.0f);
      std::vector<float> y(x.size()), mean(size_t(c.N)), rstd(size_t(c.N));
      ops::layernorm_fwd_t<float>(x.data(), w.data(), nullptr, 1e-5f, c.N, c.d, y.data(), mean.data(), rstd.data());
      DeviceBuffer<float> dx = upload(x), dw = upload(w), dgy = upload(gy), dmean = upload(mean), drstd = upload(rstd);
      std::vector<float> gx[2], gw[2], gb[2];
      for (int run = 0; run < 2; ++run) {
        DeviceBuffer<float> dgx = upload(gx0), dgw = upload(gw0), dgb = upload(gb0);
        ops::cuda::norm_bwd_cuda(dgy.get(), dx.get(), dw.get(), rms ? nullptr : dmean.get(), drstd.get(), rms, c.N, c.d,
                                 dgx.get(), dgw.get(), rms ? nullptr : dgb.get(), nullptr);
        sync();
        gx[run] = download(dgx), gw[run] = download(dgw), gb[run] = download(dgb);
      }
      const std::string sh = std::string(rms ? "rmsnorm_bwd " : "layernorm_bwd ") + nd(c.N, c.d);
      EXPECT_TRUE(same_bits(gx[0], gx[1])) << sh << " dx";
      EXPECT_TRUE(same_bits(gw[0], gw[1])) << sh << " dw";
      EXPECT_TRUE(same_bits(gb[0], gb[1])) << sh << " db";
    }
  {  // bias gradient: 100000 rows (2 column tiles x 128 row slices that stride)
    const int64_t N = 100000, C = 50;
    std::vector<float> dy = randn(size_t(N * C), rng, 0.0f, 1.0f);
    const std::vector<uint16_t> dyb = to_bf16(dy);
    const std::vector<float> db0 = randn(size_t(C), rng, 0.0f, 1.0f);
    DeviceBuffer<uint16_t> ddy = upload(dyb);
    std::vector<float> db[2];
    for (int run = 0; run < 2; ++run) {
      DeviceBuffer<float> ddb = upload(db0);
      ops::cuda::bias_grad_cuda(bf(ddy), C, N, C, ddb.get(), nullptr);
      sync();
      db[run] = download(ddb);
    }
    EXPECT_TRUE(same_bits(db[0], db[1])) << "bias_grad";
  }
  {  // sum of squares: 2048 blocks that stride
    const int64_t n = (int64_t(1) << 23) + 11;
    const std::vector<float> g = randn(size_t(n), rng, 0.0f, 1.0f);
    DeviceBuffer<float> dg = upload(g);
    std::vector<double> out[2];
    for (int run = 0; run < 2; ++run) {
      DeviceBuffer<double> dout = upload(std::vector<double>{0.25});
      ops::cuda::sum_squares_cuda(dg.get(), n, dout.get(), nullptr);
      sync();
      out[run] = download(dout);
    }
    EXPECT_TRUE(same_bits(out[0], out[1])) << "sum_squares";
  }
}

// AdamW on the GPU vs jrt::AdamW::step over a few steps, on one flat buffer of decayed (Matrix,
// ConvWeight) and undecayed (NormWeight, Bias, Embedding) slots, with a clipping scale gscale != 1 on
// some steps (the CPU gets the grads pre-scaled in float, as clip_grad_norm leaves them).
void adamw_case(bool decay_all, uint32_t seed) {
  std::mt19937 rng(seed);
  const std::vector<AdamW::Slot> slots = {{0, 1000, ParamRole::Matrix},       {1000, 37, ParamRole::NormWeight},
                                          {1037, 5, ParamRole::Bias},         {1042, 1, ParamRole::Matrix},
                                          {1043, 4096, ParamRole::Embedding}, {5139, 777, ParamRole::ConvWeight}};
  const int64_t n = 5139 + 777;
  AdamWConfig cfg;
  cfg.weight_decay = double(0.1f);  // float-representable lr and wd: the GPU's keep is then bit-identical
  cfg.decay_all = decay_all;
  AdamW opt(cfg, slots);
  std::vector<uint8_t> decay(size_t(n), 0);
  for (const auto& s : slots)
    for (int64_t i = s.offset; i < s.offset + s.numel; ++i) decay[size_t(i)] = decay_all || role_decays(s.role);

  std::vector<float> p = randn(size_t(n), rng, 0.0f, 0.05f);
  DeviceBuffer<float> dp = upload(p), dm = upload(std::vector<float>(size_t(n), 0.0f)),
                      dv = upload(std::vector<float>(size_t(n), 0.0f)), dg(static_cast<size_t>(n));
  DeviceBuffer<uint8_t> ddecay = upload(decay);
  DeviceBuffer<uint16_t> dpb = upload(std::vector<uint16_t>(size_t(n), 0));
  const float gscales[] = {1.0f, 0.37f, 2.5f, 1.0f, 0.8f};
  for (int step = 0; step < 5; ++step) {
    std::vector<float> g = randn(size_t(n), rng, 0.0f, 0.05f);
    if (step == 0)
      for (int64_t i = 0; i < n; i += 97) g[size_t(i)] = 0.0f;  // v = 0: the denominator is eps alone
    const float gscale = gscales[step];
    const double lr = double(float(1e-3 * (step + 1)));
    std::vector<float> gs(g.size());
    for (size_t i = 0; i < g.size(); ++i) gs[i] = g[i] * gscale;
    opt.step(p, gs, lr);

    const int64_t t = opt.t();
    const double bc1 = 1.0 - std::pow(cfg.beta1, double(t)), bc2 = 1.0 - std::pow(cfg.beta2, double(t));
    ops::cuda::AdamCudaArgs a;
    dg.upload(g.data(), g.size());
    a.p = dp.get(), a.g = dg.get(), a.m = dm.get(), a.v = dv.get();
    a.decay = decay_all ? nullptr : ddecay.get();  // null: every element decayed
    a.p_bf16 = step % 2 == 0 ? reinterpret_cast<bf16*>(dpb.get()) : nullptr;
    a.n = n;
    a.lr = float(lr), a.wd = float(cfg.weight_decay);
    a.beta1 = float(cfg.beta1), a.beta2 = float(cfg.beta2), a.eps = float(cfg.eps);
    a.step_size = float(lr / bc1), a.inv_sqrt_bc2 = float(1.0 / std::sqrt(bc2)), a.gscale = gscale;
    ops::cuda::adamw_cuda(a, nullptr);
    sync();
  }
  // Exact unless the CPU library may fuse multiply-adds (then a few ulps).
#ifdef __FMA__
  const double nmse = 1e-12, rel = 1e-5;
#else
  const double nmse = 0.0, rel = 0.0;
#endif
  const std::string shape = "n=" + std::to_string(n) + " steps=5" + (decay_all ? " decay_all" : " groups");
  op_report("adamw.p", shape, op_error(download(dp), p), nmse, rel);
  op_report("adamw.m", shape, op_error(download(dm), opt.m()), nmse, rel);
  op_report("adamw.v", shape, op_error(download(dv), opt.v()), nmse, rel);
  // p_bf16 was last written at step 4 (the final step): bf16 of the final p.
  std::vector<float> pb = p;
  to_bf16(pb);
  op_report("adamw.p_bf16", shape, op_error(download_bf16(dpb), pb), nmse, rel);
}

TEST(CudaTrainRows, AdamwMatchesCpuStep) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  adamw_case(false, 111);
  adamw_case(true, 222);
}

TEST(CudaTrainRows, EmptySizesAreNoOps) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  // Null pointers everywhere: nothing may be launched or touched.
  ops::cuda::embedding_bwd_cuda(nullptr, nullptr, 0, 64, nullptr, nullptr);
  ops::cuda::embedding_bwd_grouped_cuda(nullptr, nullptr, nullptr, 0, nullptr, 64, nullptr, nullptr);
  ops::cuda::bias_grad_cuda(nullptr, 8, 0, 8, nullptr, nullptr);
  ops::cuda::norm_fwd_train_cuda(nullptr, nullptr, nullptr, true, 1e-5f, 0, 64, nullptr, nullptr, nullptr, nullptr);
  ops::cuda::norm_bwd_cuda(nullptr, nullptr, nullptr, nullptr, nullptr, false, 0, 64, nullptr, nullptr, nullptr,
                           nullptr);
  ops::cuda::cross_entropy_fwd_cuda(nullptr, 10, nullptr, 0, 10, nullptr, nullptr, nullptr);
  ops::cuda::cross_entropy_bwd_cuda(nullptr, 10, nullptr, nullptr, nullptr, 0, 10, nullptr, 10, nullptr);
  ops::cuda::silu_fwd_cuda(nullptr, 0, nullptr, nullptr);
  ops::cuda::silu_bwd_cuda(nullptr, nullptr, 0, nullptr, nullptr);
  ops::cuda::gated_silu_bwd_cuda(nullptr, 1, nullptr, 1, nullptr, 1, 0, 1, nullptr, 1, nullptr, 1, nullptr);
  ops::cuda::swiglu_bwd_cuda(nullptr, nullptr, 5, 0, nullptr, nullptr);
  ops::cuda::cast_f32_bf16_cuda(nullptr, 1, 0, 1, nullptr, 1, nullptr);
  ops::cuda::sum_squares_cuda(nullptr, 0, nullptr, nullptr);
  ops::cuda::adamw_cuda(ops::cuda::AdamCudaArgs{}, nullptr);
  sync();
}

}  // namespace

#else
TEST(CudaTrainRows, SkippedWithoutCuda) { GTEST_SKIP() << "built without the CUDA backend"; }
#endif
