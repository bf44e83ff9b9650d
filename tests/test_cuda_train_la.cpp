// CUDA vs CPU for the training form of Taylor linear attention (cuda_train_ops.h: la_fwd_train_cuda,
// la_bwd_train_cuda, la_state_fwd_train_cuda, la_state_bwd_train_cuda, and through them the TF32 state GEMMs of
// ops/linear_attention_prefix.cu; label cuda, skipped without a GPU).
// The CPU reference is ops::la_fwd_t / la_bwd_t / la_accumulate_state_t / la_accumulate_state_bwd_t
// (T = float) run per (sequence, head) on the same bf16-rounded inputs; the CPU backward reads the GPU's
// saved y / u (bf16) and den (fp32), so each direction is checked on exactly the GPU's inputs. q, k ~ N(0, 1)
// make s = q.k / sqrt(fd) ~ N(0, 1), so the s^2 / 2 term of the kernel matters. Every GPU output buffer
// starts as garbage (0x7f bytes), so an element the kernels fail to write shows up.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/cuda_buffers.h"
#include "common/op_table.h"
#include "common/test_util.h"
#include "core/dtype.h"
#include "ops/cuda_train_ops.h"
#include "ops/linear_attention.h"
#include "ops/taylor.h"

#ifdef JRT_HAVE_CUDA
#include "core/cuda_util.h"

using namespace jrt;
using jrt::test::op_error;
using jrt::test::op_report;
using jrt::test::to_bf16;
using namespace jrt::test;

namespace {

using bf16 = __nv_bfloat16;

// Tolerances. bf16 outputs (y, u, dq, dk, dv, ddt, dke, dve): 2^-9 relative rounding of values computed in
// fp32 on both sides -> nmse <= 1e-5, max-rel <= 1e-2. fp32 outputs (den, dS0, dz0, S0, z0) are fp32 sums of
// the same fp32 products in a different order (GPU tiles vs BLAS) with gamma^n as exp2f(n log2 gamma) vs
// pow: a few ulps per term over <= 256 terms (seen ~1e-6 max-rel), so nmse <= 1e-10, max-rel <= 3e-5.
constexpr double kBfNmse = 1e-5, kBfRel = 1e-2;
constexpr double kF32Nmse = 1e-10, kF32Rel = 3e-5;
// The tensor-core path (fd = 16, d_v % 16 == 0, d_v <= 512; kUseTensorCores in ops/linear_attention_train.cu)
// rounds w, dw, ds (and w rinv) to bf16 as mma operands, as flash attention rounds P: a second 2^-9 relative
// rounding per term of each fp32 sum on top of the output's, so its bf16 outputs get 3x the nmse and 2x the
// max-rel. den, dS0, dz0 stay fp32 (den sums the unrounded w; without the state GEMMs below, dS0 / dz0 come from the
// fp32 kernel).
constexpr double kTcNmse = 3e-5, kTcRel = 2e-2;
// The JRT state's products as TF32 GEMMs (ops/linear_attention_prefix.cu: every la_state call, and the S0 / z0
// share of the tensor-core path without decay): both operands rounded to TF32 (2^-11 relative) before fp32
// accumulation, so each product term carries ~1e-3 relative error and a sum of terms with mixed signs gets
// nmse ~ 2 (2^-11)^2 / 3 ~ 2e-7 (x a few where terms cancel): nmse <= 2e-6, max-rel <= 5e-3. The bf16
// outputs keep their own bounds (the TF32 error is far below bf16 rounding).
constexpr double kTf32Nmse = 2e-6, kTf32Rel = 5e-3;

bool tensor_core_path(int fd, int dv) { return fd == 16 && dv % 16 == 0 && dv <= 512; }
bool state_gemm_path(int fd, int dv, bool decay, bool init) { return tensor_core_path(fd, dv) && !decay && init; }

std::vector<float> uniform(size_t n, std::mt19937& rng, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> x(n);
  for (auto& e : x) e = d(rng);
  return x;
}

cuda::DeviceBuffer<uint16_t> up_bf16(std::vector<float>& x) {  // rounds x to bf16 in place
  const std::vector<uint16_t> b = to_bf16(x);
  cuda::DeviceBuffer<uint16_t> d(b.size());
  d.upload(b.data(), b.size());
  return d;
}

// A device buffer of n elements filled with 0x7f bytes (bf16 / fp32 ~ 3.4e38): unwritten elements fail.
template <class T>
cuda::DeviceBuffer<T> garbage(size_t n) {
  cuda::DeviceBuffer<T> d(n);
  if (n) JRT_CUDA_CHECK(cudaMemset(d.get(), 0x7f, n * sizeof(T)));
  return d;
}

// ---- la_fwd / la_bwd ------------------------------------------------------------------------------

struct LaCase {
  int B;
  int64_t L;
  int H, fd, dv;
  bool decay, dt, init, strided;  // gamma per head, output scale dt, initial state S0 / z0, padded row strides

  std::string shape() const {
    return "B=" + std::to_string(B) + " L=" + std::to_string(L) + " H=" + std::to_string(H) +
           " fd=" + std::to_string(fd) + " dv=" + std::to_string(dv) + (decay ? " gamma" : "") + (dt ? " dt" : "") +
           (init ? " S0" : "") + (strided ? " ld" : "");
  }
};

void run_la_case(const LaCase& c, uint32_t seed, const std::string& tag = "") {
  std::mt19937 rng(seed);
  const int B = c.B, H = c.H, fd = c.fd, dv = c.dv;
  const int64_t L = c.L, N = B * L, D = ops::taylor_dim(fd), Hf = int64_t(H) * fd, Hv = int64_t(H) * dv;
  const int64_t BH = int64_t(B) * H;
  const int64_t pad = c.strided ? 1 : 0;
  const int64_t ldq = Hf + 3 * pad, ldk = Hf + 7 * pad, ldv = Hv + 5 * pad, lddt = H + 3 * pad;
  const int64_t ldy = Hv + 8 * pad, ldu = Hv + 2 * pad, lddy = Hv + 4 * pad;
  const int64_t lddq = Hf + 2 * pad, lddk = Hf + 1 * pad, lddv = Hv + 6 * pad, ldddt = H + 1 * pad;

  // Inputs (padding columns hold values too: they must be ignored).
  std::vector<float> q = randn(size_t(N * ldq), rng, 0.0f, 1.0f), k = randn(size_t(N * ldk), rng, 0.0f, 1.0f),
                     v = randn(size_t(N * ldv), rng, 0.0f, 1.0f);
  std::vector<float> dt = uniform(size_t(N * lddt), rng, 0.2f, 1.5f), gamma = uniform(size_t(H), rng, 0.9f, 0.999f);
  std::vector<float> S0, z0;
  if (c.init) {  // a JRT prefix summary of 24 random tokens per (sequence, head): a positive denominator share
    S0.assign(size_t(BH * D * dv), 0.0f);
    z0.assign(size_t(BH * D), 0.0f);
    const int64_t M = 24;
    for (int64_t bh = 0; bh < BH; ++bh) {
      const std::vector<float> pk = randn(size_t(M * fd), rng, 0.0f, 1.0f), pv = randn(size_t(M * dv), rng, 0.0f, 1.0f);
      ops::la_accumulate_state_t<float>(pk.data(), fd, pv.data(), dv, M, fd, dv, S0.data() + bh * D * dv,
                                        z0.data() + bh * D);
    }
  }
  cuda::DeviceBuffer<uint16_t> gq = up_bf16(q), gk = up_bf16(k), gv = up_bf16(v);
  cuda::DeviceBuffer<float> gdt = upload(dt), ggamma = upload(gamma), gS0 = upload(S0), gz0 = upload(z0);

  // GPU forward.
  cuda::DeviceBuffer<uint16_t> gy = garbage<uint16_t>(size_t(N * ldy)), gu = garbage<uint16_t>(size_t(N * ldu));
  cuda::DeviceBuffer<float> gden = garbage<float>(size_t(BH * L));
  ops::cuda::LaTrainCuda a;
  a.q = bf(gq), a.ldq = ldq, a.k = bf(gk), a.ldk = ldk, a.v = bf(gv), a.ldv = ldv;
  a.dt = c.dt ? gdt.get() : nullptr, a.lddt = lddt;
  a.gamma = c.decay ? ggamma.get() : nullptr;
  a.S0 = c.init ? gS0.get() : nullptr, a.z0 = c.init ? gz0.get() : nullptr;
  a.y = bf_mut(gy), a.ldy = ldy, a.den = gden.get(), a.u = c.dt ? bf_mut(gu) : nullptr, a.ldu = ldu;
  a.B = B, a.L = L, a.H = H, a.fd = fd, a.dv = dv;
  cuda::DeviceBuffer<float> fws((ops::cuda::la_fwd_workspace_bytes(a) + sizeof(float) - 1) / sizeof(float));
  ops::cuda::la_fwd_train_cuda(a, fws.get(), nullptr);
  JRT_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> y = download_bf16(gy), u = download_bf16(gu), den = download(gden);

  // CPU forward, one (sequence, head) at a time.
  auto head = [&](int b, int h) {
    ops::LaTrainHead<float> hd;
    hd.q = q.data() + b * L * ldq + h * fd, hd.ldq = ldq;
    hd.k = k.data() + b * L * ldk + h * fd, hd.ldk = ldk;
    hd.v = v.data() + b * L * ldv + h * dv, hd.ldv = ldv;
    hd.dt = c.dt ? dt.data() + b * L * lddt + h : nullptr, hd.lddt = lddt;
    hd.S0 = c.init ? S0.data() + (int64_t(b) * H + h) * D * dv : nullptr;
    hd.z0 = c.init ? z0.data() + (int64_t(b) * H + h) * D : nullptr;
    hd.L = L, hd.fd = fd, hd.dv = dv;
    hd.gamma = c.decay ? double(gamma[size_t(h)]) : 1.0;
    return hd;
  };
  std::vector<float> yref(size_t(N * Hv)), uref(size_t(N * Hv)), denref(size_t(BH * L));
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      ops::LaTrainHead<float> hd = head(b, h);
      hd.y = yref.data() + b * L * Hv + h * dv, hd.ldy = Hv;
      hd.u = c.dt ? uref.data() + b * L * Hv + h * dv : nullptr, hd.ldu = Hv;
      hd.den = denref.data() + (int64_t(b) * H + h) * L;
      ops::la_fwd_t<float>(hd);
    }
  const std::string shape = c.shape() + (tensor_core_path(fd, dv) ? " mma" : "") + tag;
  const double bf_nmse = tensor_core_path(fd, dv) ? kTcNmse : kBfNmse;
  const double bf_rel = tensor_core_path(fd, dv) ? kTcRel : kBfRel;
  op_report("la_fwd.y", shape, op_error(columns(y, N, ldy, 0, Hv), yref), bf_nmse, bf_rel);
  const bool gemm = state_gemm_path(fd, dv, c.decay, c.init);
  const double f32_nmse = gemm ? kTf32Nmse : kF32Nmse, f32_rel = gemm ? kTf32Rel : kF32Rel;
  op_report("la_fwd.den", shape, op_error(den, denref), f32_nmse, f32_rel);
  if (c.dt) op_report("la_fwd.u", shape, op_error(columns(u, N, ldu, 0, Hv), uref), bf_nmse, bf_rel);

  // Backward (dS0 / dz0 requested in every case: they are defined with or without an initial state).
  std::vector<float> dy = randn(size_t(N * lddy), rng, 0.0f, 1.0f);
  cuda::DeviceBuffer<uint16_t> gdy = up_bf16(dy);
  cuda::DeviceBuffer<uint16_t> gdq = garbage<uint16_t>(size_t(N * lddq)), gdk = garbage<uint16_t>(size_t(N * lddk)),
                               gdv = garbage<uint16_t>(size_t(N * lddv)), gddt = garbage<uint16_t>(size_t(N * ldddt));
  cuda::DeviceBuffer<float> gdS0 = garbage<float>(size_t(BH * D * dv)), gdz0 = garbage<float>(size_t(BH * D));
  const size_t ws_bytes = ops::cuda::la_bwd_workspace_bytes(a);
  cuda::DeviceBuffer<float> ws((ws_bytes + sizeof(float) - 1) / sizeof(float));
  ops::cuda::LaTrainGradsCuda g;
  g.dq = bf_mut(gdq), g.lddq = lddq, g.dk = bf_mut(gdk), g.lddk = lddk, g.dv = bf_mut(gdv), g.lddv = lddv;
  g.ddt = c.dt ? bf_mut(gddt) : nullptr, g.ldddt = ldddt;
  g.dS0 = gdS0.get(), g.dz0 = gdz0.get();
  ops::cuda::la_bwd_train_cuda(a, bf(gdy), lddy, g, ws.get(), ws_bytes, nullptr);
  JRT_CUDA_CHECK(cudaDeviceSynchronize());

  std::vector<float> dqref(size_t(N * Hf)), dkref(size_t(N * Hf)), dvref(size_t(N * Hv)), ddtref(size_t(N * H));
  std::vector<float> dS0ref(size_t(BH * D * dv)), dz0ref(size_t(BH * D));
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      const int64_t bh = int64_t(b) * H + h;
      ops::LaTrainHead<float> hd = head(b, h);
      // The GPU's saved activations (y and u as bf16, den as fp32).
      hd.y = y.data() + b * L * ldy + h * dv, hd.ldy = ldy;
      hd.u = c.dt ? u.data() + b * L * ldu + h * dv : nullptr, hd.ldu = ldu;
      hd.den = den.data() + bh * L;
      ops::LaTrainGrads<float> gr;
      gr.dq = dqref.data() + b * L * Hf + h * fd, gr.lddq = Hf;
      gr.dk = dkref.data() + b * L * Hf + h * fd, gr.lddk = Hf;
      gr.dv = dvref.data() + b * L * Hv + h * dv, gr.lddv = Hv;
      gr.ddt = c.dt ? ddtref.data() + b * L * H + h : nullptr, gr.ldddt = H;
      gr.dS0 = dS0ref.data() + bh * D * dv, gr.dz0 = dz0ref.data() + bh * D;
      ops::la_bwd_t<float>(hd, dy.data() + b * L * lddy + h * dv, lddy, gr);
    }
  op_report("la_bwd.dq", shape, op_error(columns(download_bf16(gdq), N, lddq, 0, Hf), dqref), bf_nmse, bf_rel);
  op_report("la_bwd.dk", shape, op_error(columns(download_bf16(gdk), N, lddk, 0, Hf), dkref), bf_nmse, bf_rel);
  op_report("la_bwd.dv", shape, op_error(columns(download_bf16(gdv), N, lddv, 0, Hv), dvref), bf_nmse, bf_rel);
  if (c.dt)
    op_report("la_bwd.ddt", shape, op_error(columns(download_bf16(gddt), N, ldddt, 0, H), ddtref), bf_nmse, bf_rel);
  op_report("la_bwd.dS0", shape, op_error(download(gdS0), dS0ref), f32_nmse, f32_rel);
  op_report("la_bwd.dz0", shape, op_error(download(gdz0), dz0ref), f32_nmse, f32_rel);
}

TEST(CudaTrainLa, ForwardBackwardMatchCpu) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  const LaCase cases[] = {
      {2, 37, 2, 16, 64, false, false, false, false},  // plain Based
      {1, 130, 3, 8, 24, true, true, false, false},    // decay + dt
      {2, 65, 1, 16, 128, false, false, true, false},  // JRT initial state, two d_v tiles
      {3, 1, 2, 16, 64, true, true, true, false},      // L = 1
      {4, 256, 2, 16, 64, true, false, false, false},  // larger
      {2, 70, 2, 5, 40, true, true, true, true},       // odd fd, padded strides, everything on
      {1, 100, 1, 32, 200, true, true, true, true},    // fd 32 (D = 1057), partial d_v tile
      {2, 64, 3, 4, 16, false, true, false, true},     // L a multiple of the tile, tiny fd
  };
  uint32_t seed = 11;
  for (const LaCase& c : cases) run_la_case(c, seed++);
}

// The tensor-core path (fd = 16, d_v % 16 == 0): every d_v tile width (16 .. 128, several tiles of 128), query
// and key blocks cut by L, word and (odd strides) element loads, with and without gamma, dt and S0 / z0.
TEST(CudaTrainLa, TensorCorePathMatchesCpu) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  const LaCase cases[] = {
      {2, 1, 2, 16, 16, false, false, false, false},     // L = 1, the narrowest tile
      {1, 37, 3, 16, 16, true, true, true, true},        // partial block, everything on, odd strides
      {2, 64, 2, 16, 64, true, false, false, false},     // L one whole block
      {1, 65, 2, 16, 48, false, true, true, true},       // d_v 48: a 64 tile with empty columns
      {2, 130, 1, 16, 80, true, true, false, false},     // d_v 80: a 128 tile, partial d_v chunk in dP
      {1, 300, 2, 16, 128, true, true, true, false},     // JRT, decay, dt
      {1, 200, 1, 16, 192, true, false, true, true},     // a 128 tile and a partial one, odd strides
      {2, 300, 1, 16, 256, false, true, false, true},    // Based d_model 256, odd strides
      {1, 1024, 1, 16, 256, true, false, false, false},  // the long sequence of the benchmark
      {1, 1024, 1, 16, 512, false, true, true, false},   // the widest d_v: 4 forward tiles, JRT
      {1, 300, 2, 16, 512, true, true, false, true},     // widest d_v, odd strides
      {1, 100, 2, 16, 40, true, true, true, false},      // fd 16 but d_v % 16 != 0: the fp32 kernels
      {3, 1, 2, 16, 64, false, false, true, false},      // JRT state GEMMs: L = 1
      {2, 200, 3, 16, 32, false, false, true, true},     // JRT state GEMMs: three heads, odd strides
      {4, 512, 1, 16, 128, false, false, true, false},   // JRT state GEMMs: the training benchmark's shape
  };
  // Both ways to dq (cuda_train_ops.h, dq_slot_cap_bytes): per-pair slots reduced in key-block order (the
  // default cap holds every case here), and the query-owning dq kernel (cap 0).
  const size_t cap = ops::cuda::dq_slot_cap_bytes();
  for (const size_t c_cap : {cap, size_t(0)}) {
    ops::cuda::set_dq_slot_cap_bytes(c_cap);
    uint32_t seed = 31;
    for (const LaCase& c : cases) run_la_case(c, seed++, c_cap ? " dq=slots" : " dq=kernel");
  }
  ops::cuda::set_dq_slot_cap_bytes(cap);
}

// ---- la_state ------------------------------------------------------------------------------------

struct StateCase {
  int B;
  int64_t L, M;
  int H, fd, dv;
  bool strided;

  std::string shape() const {
    return "B=" + std::to_string(B) + " L=" + std::to_string(L) + " M=" + std::to_string(M) +
           " H=" + std::to_string(H) + " fd=" + std::to_string(fd) + " dv=" + std::to_string(dv) +
           (strided ? " ld" : "");
  }
};

void run_state_case(const StateCase& c, uint32_t seed) {
  std::mt19937 rng(seed);
  const int B = c.B, H = c.H, fd = c.fd, dv = c.dv;
  const int64_t L = c.L, M = c.M, N = B * L, D = ops::taylor_dim(fd), Hf = int64_t(H) * fd, Hv = int64_t(H) * dv;
  const int64_t BH = int64_t(B) * H, pad = c.strided ? 1 : 0;
  const int64_t ldk = Hf + 3 * pad, ldv = Hv + 5 * pad, lddk = Hf + 2 * pad, lddv = Hv + 1 * pad;
  std::vector<float> k = randn(size_t(N * ldk), rng, 0.0f, 1.0f), v = randn(size_t(N * ldv), rng, 0.0f, 1.0f);
  cuda::DeviceBuffer<uint16_t> gk = up_bf16(k), gv = up_bf16(v);
  const std::string shape = c.shape();

  // Forward: S0 = sum_{t<M} phi(k_t) v_t^T, z0 = sum_{t<M} phi(k_t).
  cuda::DeviceBuffer<float> gS0 = garbage<float>(size_t(BH * D * dv)), gz0 = garbage<float>(size_t(BH * D));
  cuda::DeviceBuffer<float> ws((ops::cuda::la_state_workspace_bytes(B, L, M, H, fd, dv) + 3) / 4);
  ops::cuda::la_state_fwd_train_cuda(bf(gk), ldk, bf(gv), ldv, B, L, M, H, fd, dv, gS0.get(), gz0.get(), ws.get(),
                                     nullptr);
  JRT_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> S0ref(size_t(BH * D * dv), 0.0f), z0ref(size_t(BH * D), 0.0f);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      const int64_t bh = int64_t(b) * H + h;
      ops::la_accumulate_state_t<float>(k.data() + b * L * ldk + h * fd, ldk, v.data() + b * L * ldv + h * dv, ldv, M,
                                        fd, dv, S0ref.data() + bh * D * dv, z0ref.data() + bh * D);
    }
  op_report("la_state_fwd.S0", shape, op_error(download(gS0), S0ref), kTf32Nmse, kTf32Rel);
  op_report("la_state_fwd.z0", shape, op_error(download(gz0), z0ref), kTf32Nmse, kTf32Rel);

  // Backward from fp32 dS0, dz0 (dz0 scaled up so its share of dk is not swamped by dS0 v).
  const std::vector<float> dS = randn(size_t(BH * D * dv), rng, 0.0f, 1.0f),
                           dz = randn(size_t(BH * D), rng, 0.0f, 4.0f);
  cuda::DeviceBuffer<float> gdS = upload(dS), gdz = upload(dz);
  cuda::DeviceBuffer<uint16_t> gdk = garbage<uint16_t>(size_t(N * lddk)), gdv = garbage<uint16_t>(size_t(N * lddv));
  ops::cuda::la_state_bwd_train_cuda(bf(gk), ldk, bf(gv), ldv, B, L, M, H, fd, dv, gdS.get(), gdz.get(), bf_mut(gdk),
                                     lddk, bf_mut(gdv), lddv, ws.get(), nullptr);
  JRT_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> dkref(size_t(N * Hf), 0.0f), dvref(size_t(N * Hv), 0.0f);  // rows t >= M stay zero
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      const int64_t bh = int64_t(b) * H + h;
      ops::la_accumulate_state_bwd_t<float>(k.data() + b * L * ldk + h * fd, ldk, v.data() + b * L * ldv + h * dv, ldv,
                                            M, fd, dv, dS.data() + bh * D * dv, dz.data() + bh * D,
                                            dkref.data() + b * L * Hf + h * fd, Hf, dvref.data() + b * L * Hv + h * dv,
                                            Hv);
    }
  op_report("la_state_bwd.dk", shape, op_error(columns(download_bf16(gdk), N, lddk, 0, Hf), dkref), kBfNmse, kBfRel);
  op_report("la_state_bwd.dv", shape, op_error(columns(download_bf16(gdv), N, lddv, 0, Hv), dvref), kBfNmse, kBfRel);
}

TEST(CudaTrainLa, StateMatchesCpu) {
  if (!jrt::test::gpu_available()) GTEST_SKIP() << "no CUDA device";
  const StateCase cases[] = {
      {2, 50, 37, 2, 16, 64, false},     // M < L: rows past the prefix get zero gradients
      {1, 70, 70, 3, 5, 24, true},       // M = L, odd fd, padded strides
      {2, 130, 129, 1, 32, 80, true},    // fd 32 (D = 1057), M past two tiles
      {1, 10, 0, 1, 4, 8, false},        // empty prefix: zero state, zero gradients
      {4, 512, 256, 1, 16, 128, false},  // JRT training shape (prefix of half the sequence)
      {3, 90, 41, 3, 16, 64, true},      // three heads, odd strides
  };
  uint32_t seed = 71;
  for (const StateCase& c : cases) run_state_case(c, seed++);
}

}  // namespace

#else
TEST(CudaTrainLa, SkippedWithoutCuda) { GTEST_SKIP() << "built without the CUDA backend"; }
#endif
