// bench/bench_cuda_gemm.cpp — the decode GEMMs: the skinny sm_90a kernel (ops/linear_skinny.cu) against
// cuBLAS (cublasGemmEx, its default algorithm) on the same shapes in the same process. Each row times a CUDA
// graph of R back-to-back products, each on its own copy of W (R copies >= 256 MB, so the weight comes from
// HBM as in a decode step), median of 15 replays; prints us per product, the weight read rate (TB/s) and the
// speed-up. The default shapes are the projections of the Based-1.3B decode step (d = 1792).
//   bench_cuda_gemm [--batches 1,16,128] [--shapes NxK,...] [--out bf16|f32acc|swiglu] [--splits 0,2,4,8 (cluster
//   sizes to try; 0 = the kernel's choice)] [--variants default,rows64,twopersm,batchsplit (tilings for M > 32)]
// --out swiglu times the MLP's first layer with bias as the model runs it: the skinny GEMM with SwiGLU in its
// epilogue (N = 2F weight rows, F outputs) against cuBLAS + the bias kernel + the SwiGLU kernel.
// --lt N (bf16 / f32acc outputs): also times cuBLASLt's first N heuristic algorithms for each product (the same graph
// of R products), one row each with the algorithm's tile id, split-K count and stages (is cuBLAS's default the best
// it has?). --l2 cold|hot: where the weights come from. cold (default): HBM, as above. hot: every product reads copy
// 0, which stays in L2 between products (what a product costs once its weight is in L2). Both: dev/README.md, "The
// decode step's weights and L2".
#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_util.h"

#ifdef JRT_HAVE_CUDA
#include <cublasLt.h>
#include <cublas_v2.h>

#include "bench/bench_cuda_util.h"
#include "core/cuda_util.h"
#include "ops/cuda_ops.h"

using namespace jrt;
using ops::cuda::bf16;

namespace {

struct Shape {
  int64_t N, K;
  const char* what;
};

// Times a graph of R products fn(r, w) (w: the weight copy product r reads; copy 0 throughout when hot), us per
// product.
template <class Fn>
double graph_us(int R, cudaStream_t st, bool hot, const bf16* W, size_t wn, Fn&& fn) {
  cudaGraph_t g;
  cudaGraphExec_t ge;
  JRT_CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
  for (int r = 0; r < R; ++r) fn(r, W + (hot ? 0 : size_t(r) * wn));
  JRT_CUDA_CHECK(cudaStreamEndCapture(st, &g));
  JRT_CUDA_CHECK(cudaGraphInstantiate(&ge, g, 0));
  const double ms = bench::median_event_ms(st, 3, 15, [&] { cudaGraphLaunch(ge, st); });
  cudaGraphExecDestroy(ge), cudaGraphDestroy(g);
  return 1e3 * ms / R;
}

}  // namespace

int main(int argc, char** argv) {
  std::string batches = "1,16,128", shapes, out = "both", splits = "0", variants = "default", l2 = "cold";
  int lt_algos = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--batches")
      batches = v;
    else if (k == "--shapes")
      shapes = v;
    else if (k == "--out")
      out = v;
    else if (k == "--splits")
      splits = v;
    else if (k == "--variants")
      variants = v;
    else if (k == "--l2")
      l2 = v;
    else if (k == "--lt")
      lt_algos = std::stoi(v);
    else {
      std::fprintf(stderr, "bench_cuda_gemm: unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  if (!cuda::available()) {
    std::printf("bench_cuda_gemm: no CUDA device\n");
    return 0;
  }
  std::vector<Shape> list = {{7168, 1792, "fc1 / conv in"}, {1792, 3584, "fc2 / conv out"}, {1792, 1792, "attn out, v"},
                             {256, 1792, "LA q, k"},        {5376, 1792, "SWA qkv"},        {50264, 1792, "lm head"}};
  if (!shapes.empty()) {
    list.clear();
    for (const auto& s : bench::split_csv(shapes)) {
      const auto x = s.find('x');
      list.push_back({std::stoll(s.substr(0, x)), std::stoll(s.substr(x + 1)), "custom"});
    }
  }
  if (l2 != "cold" && l2 != "hot") {
    std::fprintf(stderr, "bench_cuda_gemm: --l2 must be cold or hot, got %s\n", l2.c_str());
    return 2;
  }
  const bool hot = l2 == "hot";
  cudaStream_t st;
  JRT_CUDA_CHECK(cudaStreamCreate(&st));
  std::printf("weights: %s\n", hot ? "hot (in L2)" : "cold (from HBM)");
  cublasHandle_t h = ops::cuda::blas_handle();
  JRT_CUBLAS_CHECK(cublasSetStream(h, st));
  std::printf("%-15s %6s %6s %6s %3s %-8s %-7s | %9s %7s | %9s %7s | %6s\n", "shape", "M", "N", "K", "S", "tiling",
              "out", "skinny us", "TB/s", "cuBLAS us", "TB/s", "x");
  for (const Shape& s : list) {
    const size_t wn = size_t(s.N * s.K);
    const int R = int(std::max<size_t>(4, (size_t(256) << 20) / (wn * 2) + 1));
    cuda::DeviceBuffer<bf16> W(wn * size_t(R));
    {
      std::vector<uint16_t> hw(wn * size_t(R));
      std::mt19937 g(1);
      for (auto& v : hw) v = uint16_t(0x3C00 + (g() & 0x3FF));  // small positive bf16 values
      W.upload(reinterpret_cast<const bf16*>(hw.data()), hw.size());
    }
    for (const auto& bs : bench::split_csv(batches)) {
      const int64_t M = std::stoll(bs);
      cuda::DeviceBuffer<bf16> x(size_t(M * s.K)), yb(size_t(M * s.N));
      cuda::DeviceBuffer<float> yf(size_t(M * s.N));
      JRT_CUDA_CHECK(cudaMemset(x.get(), 0, x.size() * 2));
      JRT_CUDA_CHECK(cudaMemset(yf.get(), 0, yf.size() * 4));
      // cuBLAS on weight copy r: y (bf16, or fp32 += with f32) = x W_r^T.
      auto cublas = [&](const bf16* w, void* y, bool f32) {
        const float alpha = 1.0f, beta = f32 ? 1.0f : 0.0f;
        JRT_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, int(s.N), int(M), int(s.K), &alpha, w, CUDA_R_16BF,
                                      int(s.K), x.get(), CUDA_R_16BF, int(s.K), &beta, y,
                                      f32 ? CUDA_R_32F : CUDA_R_16BF, int(s.N), CUBLAS_COMPUTE_32F,
                                      CUBLAS_GEMM_DEFAULT));
      };
      // cuBLASLt's heuristic algorithms for the same product (--lt): y^T [N, M] = W [N, K] x^T, column-major.
      auto lt_rows = [&](void* y, bool f32, double tc) {
        cublasLtHandle_t lt;
        JRT_CUBLAS_CHECK(cublasLtCreate(&lt));
        cublasLtMatmulDesc_t op;
        JRT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
        const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
        JRT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
        JRT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
        cublasLtMatrixLayout_t la, lb, lc;
        JRT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, uint64_t(s.K), uint64_t(s.N), int64_t(s.K)));
        JRT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, uint64_t(s.K), uint64_t(M), int64_t(s.K)));
        JRT_CUBLAS_CHECK(
            cublasLtMatrixLayoutCreate(&lc, f32 ? CUDA_R_32F : CUDA_R_16BF, uint64_t(s.N), uint64_t(M), int64_t(s.N)));
        cublasLtMatmulPreference_t pref;
        JRT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
        const size_t wsb = size_t(32) << 20;
        cuda::DeviceBuffer<uint8_t> ws(wsb);
        JRT_CUBLAS_CHECK(
            cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof(wsb)));
        std::vector<cublasLtMatmulHeuristicResult_t> res(static_cast<size_t>(lt_algos));
        int n = 0;
        JRT_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, lt_algos, res.data(), &n));
        const float alpha = 1.0f, beta = f32 ? 1.0f : 0.0f;
        for (int i = 0; i < n; ++i) {
          int tile = -1, splitk = -1, stages = -1;
          size_t got = 0;
          cublasLtMatmulAlgoConfigGetAttribute(&res[size_t(i)].algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof(tile),
                                               &got);
          cublasLtMatmulAlgoConfigGetAttribute(&res[size_t(i)].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk,
                                               sizeof(splitk), &got);
          cublasLtMatmulAlgoConfigGetAttribute(&res[size_t(i)].algo, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages,
                                               sizeof(stages), &got);
          const double t = graph_us(R, st, hot, W.get(), wn, [&](int, const bf16* w) {
            JRT_CUBLAS_CHECK(cublasLtMatmul(lt, op, &alpha, w, la, x.get(), lb, &beta, y, lc, y, lc,
                                            &res[size_t(i)].algo, ws.get(), wsb, st));
          });
          std::printf(
              "%-15s %6lld %6lld %6lld  lt algo %2d (tile %3d, split-K %2d, stages %3d) %-7s | %9.2f %7.2f | "
              "%9.2f  (cuBLAS default) | %6.2f\n",
              s.what, (long long)M, (long long)s.N, (long long)s.K, i, tile, splitk, stages, f32 ? "f32acc" : "bf16", t,
              double(wn) * 2 / t * 1e-6, tc, tc / t);
        }
        cublasLtMatmulPreferenceDestroy(pref);
        cublasLtMatrixLayoutDestroy(la);
        cublasLtMatrixLayoutDestroy(lb);
        cublasLtMatrixLayoutDestroy(lc);
        cublasLtMatmulDescDestroy(op);
        cublasLtDestroy(lt);
      };
      auto row = [&](int S, const char* tiling, const char* kind, double ts, double tc) {
        const double bytes = double(wn) * 2;
        std::printf("%-15s %6lld %6lld %6lld %3d %-8s %-7s | %9.2f %7.2f | %9.2f %7.2f | %6.2f\n", s.what, (long long)M,
                    (long long)s.N, (long long)s.K, S, tiling, kind, ts, bytes / ts * 1e-6, tc, bytes / tc * 1e-6,
                    tc / ts);
      };
      if (out == "swiglu") {
        const int64_t F = s.N / 2;
        cuda::DeviceBuffer<float> bias(size_t(s.N));
        cuda::DeviceBuffer<bf16> act(size_t(M * F));
        JRT_CUDA_CHECK(cudaMemset(bias.get(), 0, bias.size() * 4));
        const double tc = graph_us(R, st, hot, W.get(), wn, [&](int, const bf16* w) {
          cublas(w, yb.get(), false);
          ops::cuda::add_bias_bf16(yb.get(), s.N, bias.get(), M, s.N, st);
          ops::cuda::swiglu_cuda(yb.get(), M, F, act.get(), st);
        });
        const double ts = graph_us(R, st, hot, W.get(), wn, [&](int, const bf16* w) {
          ops::cuda::skinny_gemm_act(x.get(), s.K, w, M, s.K, F, act.get(), F, bias.get(),
                                     ops::cuda::Activation::kSwiGlu, st);
        });
        row(ops::cuda::skinny_gemm_split(F, s.K, 64), "default", "swiglu", ts, tc);
        continue;
      }
      for (int f32 = 0; f32 < 2; ++f32) {
        if ((out == "bf16" && f32) || (out == "f32acc" && !f32)) continue;
        void* y = f32 ? static_cast<void*>(yf.get()) : static_cast<void*>(yb.get());
        const double tc = graph_us(R, st, hot, W.get(), wn, [&](int, const bf16* w) { cublas(w, y, f32); });
        if (lt_algos > 0) lt_rows(y, f32, tc);
        for (const auto& vn : bench::split_csv(variants))
          for (const auto& sp : bench::split_csv(splits)) {
            const int split = std::stoi(sp);
            using V = ops::cuda::SkinnyVariant;
            const auto var = vn == "rows64"       ? V::kRows64
                             : vn == "twopersm"   ? V::kTwoPerSm
                             : vn == "batchsplit" ? V::kBatchSplit
                                                  : V::kDefault;
            const bool lab = M > 32 && var != V::kDefault;
            const int rows = lab && var == V::kRows64 ? 64 : 128;
            const int per_sm = lab && (var == V::kTwoPerSm || var == V::kBatchSplit) ? 2 : 1;
            const int64_t mtiles = lab && var == V::kBatchSplit ? (M + 63) / 64 : 1;
            const double ts = graph_us(R, st, hot, W.get(), wn, [&](int, const bf16* w) {
              ops::cuda::skinny_gemm(x.get(), s.K, w, M, s.K, s.N, y, s.N, f32, f32, nullptr, st, split, var);
            });
            row(split ? split : ops::cuda::skinny_gemm_split(s.N * mtiles, s.K, rows, per_sm),
                lab ? vn.c_str() : "default", f32 ? "f32acc" : "bf16", ts, tc);
          }
      }
    }
  }
  return 0;
}
#else
int main() {
  std::printf("bench_cuda_gemm: built without CUDA\n");
  return 0;
}
#endif
