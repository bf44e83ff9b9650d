// bench/bench_cuda_gemm.cpp — the decode GEMMs: the skinny sm_90a kernel (ops/linear_skinny.cu) against
// cuBLAS (cublasGemmEx, its default algorithm) on the same shapes in the same process. Each row times a CUDA
// graph of R back-to-back products, each on its own copy of W (R copies >= 256 MB, so the weight comes from
// HBM as in a decode step), median of 15 replays; prints us per product, the weight read rate (TB/s) and the
// speed-up. The default shapes are the projections of the Based-1.3B decode step (d = 1792).
//   bench_cuda_gemm [--batches 1,16,128] [--shapes NxK,...] [--out bf16|f32acc|swiglu] [--splits 0,2,4,8 (cluster
//   sizes to try; 0 = the kernel's choice)] [--variants default,rows64,twopersm,batchsplit (tilings for M > 32)]
// --out swiglu times the MLP's first layer with bias as the model runs it: the skinny GEMM with SwiGLU in its
// epilogue (N = 2F weight rows, F outputs) against cuBLAS + the bias kernel + the SwiGLU kernel.
#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_util.h"

#ifdef JRT_HAVE_CUDA
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

template <class Fn>
double graph_us(int R, cudaStream_t st, Fn&& fn) {
  cudaGraph_t g;
  cudaGraphExec_t ge;
  JRT_CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
  for (int r = 0; r < R; ++r) fn(r);
  JRT_CUDA_CHECK(cudaStreamEndCapture(st, &g));
  JRT_CUDA_CHECK(cudaGraphInstantiate(&ge, g, 0));
  const double ms = bench::median_event_ms(st, 3, 15, [&] { cudaGraphLaunch(ge, st); });
  cudaGraphExecDestroy(ge), cudaGraphDestroy(g);
  return 1e3 * ms / R;
}

}  // namespace

int main(int argc, char** argv) {
  std::string batches = "1,16,128", shapes, out = "both", splits = "0", variants = "default";
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
  cudaStream_t st;
  JRT_CUDA_CHECK(cudaStreamCreate(&st));
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
      auto cublas = [&](int r, void* y, bool f32) {
        const float alpha = 1.0f, beta = f32 ? 1.0f : 0.0f;
        JRT_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, int(s.N), int(M), int(s.K), &alpha,
                                      W.get() + size_t(r) * wn, CUDA_R_16BF, int(s.K), x.get(), CUDA_R_16BF, int(s.K),
                                      &beta, y, f32 ? CUDA_R_32F : CUDA_R_16BF, int(s.N), CUBLAS_COMPUTE_32F,
                                      CUBLAS_GEMM_DEFAULT));
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
        const double tc = graph_us(R, st, [&](int r) {
          cublas(r, yb.get(), false);
          ops::cuda::add_bias_bf16(yb.get(), s.N, bias.get(), M, s.N, st);
          ops::cuda::swiglu_cuda(yb.get(), M, F, act.get(), st);
        });
        const double ts = graph_us(R, st, [&](int r) {
          ops::cuda::skinny_gemm_act(x.get(), s.K, W.get() + size_t(r) * wn, M, s.K, F, act.get(), F, bias.get(),
                                     ops::cuda::Activation::kSwiGlu, st);
        });
        row(ops::cuda::skinny_gemm_split(F, s.K, 64), "default", "swiglu", ts, tc);
        continue;
      }
      for (int f32 = 0; f32 < 2; ++f32) {
        if ((out == "bf16" && f32) || (out == "f32acc" && !f32)) continue;
        void* y = f32 ? static_cast<void*>(yf.get()) : static_cast<void*>(yb.get());
        const double tc = graph_us(R, st, [&](int r) { cublas(r, y, f32); });
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
            const double ts = graph_us(R, st, [&](int r) {
              ops::cuda::skinny_gemm(x.get(), s.K, W.get() + size_t(r) * wn, M, s.K, s.N, y, s.N, f32, f32, nullptr, st,
                                     split, var);
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
