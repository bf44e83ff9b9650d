// models/gpu_model.cpp — the GPU model: weights uploaded as bf16 from a validated CPU Model, the block
// stack of models/model.cpp expressed with the GPU ops of ops/cuda_ops.h and ops/linear_attention_cuda.h,
// per-slot device state, packed prefill and a graph-captured batched decode step.
//
// Numerics (same order of operations as the CPU model): residual stream r fp32 [T, d]; norms read r and
// write bf16; every projection is a bf16 GEMM with fp32 accumulation (bf16 result, or fp32 for dt and
// for the output projections, which the GEMM adds straight into r; biases are added by the GEMM's epilogue
// on the skinny decode path, by a bias kernel after cuBLAS otherwise); recurrent states (LA S/z
// in the 160-feature layout, conv tails, SSM h) fp32; KV caches bf16.
#include "models/gpu_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "core/dtype.h"
#include "core/error.h"

#ifdef JRT_HAVE_CUDA
#include "core/cuda_util.h"
#include "ops/cuda_ops.h"
#include "ops/linear_attention_cuda.h"
#include "ops/rotary.h"
#endif

namespace jrt {

bool use_gpu(const std::string& device) {
  JRT_CHECK(device == "cpu" || device == "cuda", "--device must be cpu or cuda, got '{}'", device);
#ifdef JRT_HAVE_CUDA
  JRT_CHECK(device == "cpu" || cuda::available(),
            "--device cuda: CUDA backend not available (no CUDA device is visible to this process); use --device cpu");
#else
  JRT_CHECK(device == "cpu",
            "--device cuda: CUDA backend not built/available (this jrt was built without CUDA); use --device cpu");
#endif
  return device == "cuda";
}

#ifndef JRT_HAVE_CUDA

struct GpuModel::Impl {};
GpuModel::GpuModel() = default;
GpuModel::~GpuModel() = default;
std::unique_ptr<GpuModel> GpuModel::create(const Model&, const GpuModelOptions&) {
  use_gpu("cuda");  // throws: this build has no CUDA backend
  return nullptr;
}
int64_t GpuModel::slots() const { return 0; }
int64_t GpuModel::vocab() const { return 0; }
const ModelConfig& GpuModel::config() const { fail("no CUDA backend"); }
void GpuModel::prefill(std::span<const int64_t>, std::span<const int64_t>, std::span<const int64_t>, bool, float*) {}
void GpuModel::step(std::span<const int64_t>, float*) {}
std::vector<int32_t> GpuModel::greedy(int64_t) { return {}; }
double GpuModel::last_device_ms() const { return 0; }

#else

using cuda::DeviceBuffer;
using ops::cuda::bf16;
namespace oc = ops::cuda;

namespace {

DeviceBuffer<float> upload_f32(std::span<const float> v) {
  DeviceBuffer<float> d(v.size());
  if (!v.empty()) d.upload(v.data(), v.size());
  return d;
}

std::vector<float> host_f32(const WeightStore& ws, const std::string& name) {
  const Tensor& t = ws.get(name);
  std::vector<float> f(size_t(t.numel()));
  convert_to_f32(t, f);
  return f;
}

DeviceBuffer<bf16> upload_bf16(std::span<const float> f) {
  std::vector<uint16_t> h(f.size());
  for (size_t i = 0; i < f.size(); ++i) h[i] = f32_to_bf16(f[i]);
  DeviceBuffer<bf16> d(h.size());
  if (!h.empty()) d.upload(reinterpret_cast<const bf16*>(h.data()), h.size());
  return d;
}

DeviceBuffer<bf16> weight_bf16(const WeightStore& ws, const std::string& name) {
  return upload_bf16(host_f32(ws, name));
}
DeviceBuffer<float> weight_f32(const WeightStore& ws, const std::string& name) {
  return upload_f32(host_f32(ws, name));
}
DeviceBuffer<float> optional_f32(const WeightStore& ws, const std::string& name) {
  return ws.has(name) ? weight_f32(ws, name) : DeviceBuffer<float>();
}

template <class T>
DeviceBuffer<T> zeros(size_t n) {
  DeviceBuffer<T> d(n);
  d.zero();
  return d;
}

struct GNorm {
  DeviceBuffer<float> w, b;
};

// One block's weights and its per-slot state.
struct GLayer {
  MixerKind kind{};
  GNorm n1, n2;
  // MLP
  bool mlp = false, gated = true, gelu_tanh = false;
  int64_t F = 0;
  DeviceBuffer<bf16> fc1, fc2;
  DeviceBuffer<float> fb1, fb2;
  // projections (which are set depends on the kind)
  DeviceBuffer<bf16> w_in, w_out, w_qkv, w_ke, w_ve, w_dt, w_x, w_dtp;
  DeviceBuffer<float> b_in, b_out, conv_w, conv_b, gamma, dt_b, A, D, inv_freq;
  int64_t di = 0, K = 0, H = 0, hd = 0, inner = 0, window = -1, C = 0, r = 0, ns = 0;
  int nf = 0;
  float scale = 1.0f, eps = 1e-12f;
  // state of every slot
  DeviceBuffer<float> tail, S, z, h;
  DeviceBuffer<bf16> kc, vc;
};

// Activation buffers for up to `rows` packed rows.
struct Work {
  int64_t rows = 0, logit_rows = 0;
  DeviceBuffer<float> r, f, logits;
  DeviceBuffer<bf16> h, u, a, o, dbc, hf, xg, ke, ve;
  DeviceBuffer<int32_t> ids, cu, rows_idx, pad_rows, pre_rows, pre_cu, pre_pad;
};

}  // namespace

struct GpuModel::Impl {
  ModelConfig cfg;
  GpuModelOptions opt;
  int64_t d = 0, V = 0;
  DeviceBuffer<bf16> embed, head_own;
  const bf16* head = nullptr;  // the embedding when the head is tied (or stored as an equal copy)
  GNorm nf;
  std::vector<GLayer> layers;
  // widths of the shared buffers (max over layers)
  int64_t wu = 1, wa = 1, wqk = 1, wdbc = 1, wf = 1;
  bool any_pla = false, any_mha = false;
  cudaStream_t stream = nullptr;
  cudaEvent_t ev0 = nullptr, ev1 = nullptr;
  cudaGraphExec_t graph = nullptr;
  bool graph_failed = false;
  Work pre, dec;  // prefill (grows) and decode (slots rows) buffers
  DeviceBuffer<int32_t> pos, next, dec_cu;
  std::vector<int64_t> host_pos;
  DeviceBuffer<uint8_t> la_ws;
  DeviceBuffer<float> S0, z0;  // JRT encoder states of a prefill
  double last_ms = 0;

  ~Impl() {
    if (graph) cudaGraphExecDestroy(graph);
    if (ev0) cudaEventDestroy(ev0);
    if (ev1) cudaEventDestroy(ev1);
    if (stream) cudaStreamDestroy(stream);
  }

  void ensure(Work& w, int64_t rows, int64_t logit_rows) {
    if (rows > w.rows) {
      w.rows = rows;
      const size_t R = size_t(rows);
      w.r = DeviceBuffer<float>(R * size_t(d));
      w.h = DeviceBuffer<bf16>(R * size_t(d));
      w.u = DeviceBuffer<bf16>(R * size_t(wu));
      w.a = DeviceBuffer<bf16>(R * size_t(wa));
      w.o = DeviceBuffer<bf16>(R * size_t(wa));
      w.dbc = DeviceBuffer<bf16>(R * size_t(wdbc));
      w.f = DeviceBuffer<float>(R * size_t(wf));
      w.ids = DeviceBuffer<int32_t>(R);
      if (any_pla) {  // JRT prefill bookkeeping
        w.pad_rows = DeviceBuffer<int32_t>(R);
        w.xg = DeviceBuffer<bf16>(R * size_t(d));
        w.ke = DeviceBuffer<bf16>(R * size_t(wqk));
        w.ve = DeviceBuffer<bf16>(R * size_t(wa));
        w.pre_rows = DeviceBuffer<int32_t>(R);
        w.pre_pad = DeviceBuffer<int32_t>(R);
      }
    }
    if (logit_rows > w.logit_rows) {
      w.logit_rows = logit_rows;
      w.logits = DeviceBuffer<float>(size_t(logit_rows) * size_t(V));
      w.hf = DeviceBuffer<bf16>(size_t(logit_rows) * size_t(d));
      w.rows_idx = DeviceBuffer<int32_t>(size_t(logit_rows));
    }
    const size_t segs = size_t(opt.slots) + 1;
    if (w.cu.size() < segs) w.cu = DeviceBuffer<int32_t>(segs);
    if (any_pla && w.pre_cu.size() < segs) w.pre_cu = DeviceBuffer<int32_t>(segs);
  }

  void norm(const GNorm& n, const float* x, const int32_t* rows, int64_t N, bf16* y) const {
    oc::norm_cuda(x, d, rows, n.w.get(), n.b.get(), cfg.rms_norm, float(cfg.norm_eps), N, d, y, d, stream);
  }

  // x W^T into a bf16 buffer (+ bias).
  void proj(const bf16* x, int64_t ldx, const DeviceBuffer<bf16>& W, const DeviceBuffer<float>& b, int64_t N,
            int64_t in, int64_t out, bf16* y, int64_t ldy) const {
    oc::linear_bf16(x, ldx, W.get(), N, in, out, y, ldy, stream, b.get());
  }
  // r += x W^T (+ bias): the block's residual add.
  void residual(const bf16* x, int64_t in, const DeviceBuffer<bf16>& W, const DeviceBuffer<float>& b, int64_t N,
                float* r) const {
    oc::linear_f32(x, in, W.get(), N, in, d, r, d, true, stream, b.get());
  }

  // Linear-attention arguments over the work buffers: q, k, v the column ranges [0, H 16), [H 16, H 32) and
  // [H 32, H 32 + H hd) of the fused projection's output w.u (row stride H 32 + H hd), o [T, H hd] (w.o).
  ops::LaCudaArgs la_args(const GLayer& L, Work& w, const int32_t* cu, int B, int max_len) const {
    ops::LaCudaArgs a;
    const int64_t qk = L.H * 16;
    a.q = w.u.get();
    a.k = w.u.get() + qk;
    a.v = w.u.get() + 2 * qk;
    a.ldq = a.ldk = a.ldv = 2 * qk + L.H * L.hd;
    a.o = w.o.get();
    a.cu_seqlens = cu;
    a.B = B;
    a.H = int(L.H);
    a.dv = int(L.hd);
    a.max_len = max_len;
    a.eps = L.eps;
    a.stream = stream;
    return a;
  }

  // JRT prefill bookkeeping: pad rows of k (w.pad_rows) and of k_enc (w.pre_pad), prefix rows
  // (w.pre_rows, w.pre_cu), longest prefix.
  struct Prefix {
    int64_t npads = 0, npre_pads = 0, npre = 0;
    int pre_max = 0;
  };

  // One layer over T packed rows of B sequences (decode: T == B, every sequence one row).
  void layer(GLayer& L, Work& w, int64_t T, int B, int max_len, bool decode, const int32_t* cu, const Prefix& px) {
    float* r = w.r.get();
    bf16* h = w.h.get();
    norm(L.n1, r, nullptr, T, h);
    switch (L.kind) {
      case MixerKind::BaseConv: {
        const int64_t di = L.di;
        // The input projection's bias is added by the conv as it reads u (no bias launch).
        oc::linear_bf16(h, d, L.w_in.get(), T, d, 2 * di, w.u.get(), 2 * di, stream);
        const float* b_in = L.b_in.get();
        oc::causal_conv1d_cuda(w.u.get(), 2 * di, cu, B, max_len, di, L.conv_w.get(), int(L.K), nullptr, true,
                               w.u.get() + di, 2 * di, L.tail.get(), w.a.get(), di, stream, b_in,
                               b_in ? b_in + di : nullptr);
        residual(w.a.get(), di, L.w_out, L.b_out, T, r);
        break;
      }
      case MixerKind::LinearAttn:
      case MixerKind::PrefixLinearAttn: {
        const int64_t H = L.H, hd = L.hd, qk = H * 16, lqkv = 2 * qk + H * hd;
        // q, k and v from one GEMM (the weights concatenated at load); the kernels read them with row strides.
        oc::linear_bf16(h, d, L.w_qkv.get(), T, d, lqkv, w.u.get(), lqkv, stream);
        bf16* kp = w.u.get() + qk;
        const float* dt = nullptr;
        if (L.w_dt.get()) {
          oc::linear_f32(h, d, L.w_dt.get(), T, d, H, w.f.get(), H, false, stream);
          dt = w.f.get();
        }
        if (decode) {
          ops::la_decode_step_cuda(w.u.get(), kp, w.u.get() + 2 * qk, w.o.get(), L.S.get(), L.z.get(), B, int(H),
                                   int(hd), L.gamma.get(), dt, L.eps, stream, {lqkv, lqkv, lqkv});
        } else {
          ops::LaCudaArgs a = la_args(L, w, cu, B, max_len);
          a.gamma = L.gamma.get();
          a.dt = dt;
          a.S_out = L.S.get();
          a.z_out = L.z.get();
          if (L.kind == MixerKind::PrefixLinearAttn) {
            // Encoder read of each prefix (models/jrt.cpp): k_enc / v_enc of the first M rows, pads zeroed
            // before the feature map like k, summed into the initial state of the causal pass.
            oc::gather_rows_cuda(h, d, w.pre_rows.get(), px.npre, d, w.xg.get(), d, stream);
            oc::linear_bf16(w.xg.get(), d, L.w_ke.get(), px.npre, d, qk, w.ke.get(), qk, stream);
            oc::linear_bf16(w.xg.get(), d, L.w_ve.get(), px.npre, d, H * hd, w.ve.get(), H * hd, stream);
            oc::zero_rows_cuda(kp, lqkv, qk, w.pad_rows.get(), px.npads, stream);
            oc::zero_rows_cuda(w.ke.get(), qk, qk, w.pre_pad.get(), px.npre_pads, stream);
            const size_t sn = size_t(B) * size_t(H) * ops::kLaFeat * size_t(hd);
            if (S0.size() < sn) {
              S0 = DeviceBuffer<float>(sn);
              z0 = DeviceBuffer<float>(size_t(B) * size_t(H) * ops::kLaFeat);
            }
            JRT_CUDA_CHECK(cudaMemsetAsync(S0.get(), 0, sn * sizeof(float), stream));
            JRT_CUDA_CHECK(
                cudaMemsetAsync(z0.get(), 0, size_t(B) * size_t(H) * ops::kLaFeat * sizeof(float), stream));
            ops::LaCudaArgs e = la_args(L, w, w.pre_cu.get(), B, px.pre_max);
            e.q = nullptr;
            e.o = nullptr;
            e.k = w.ke.get();
            e.v = w.ve.get();
            e.ldq = e.ldk = e.ldv = 0;  // packed
            e.S_out = S0.get();
            e.z_out = z0.get();
            const size_t need_e = ops::la_accumulate_cuda_workspace(e);
            if (la_ws.size() < need_e) la_ws = DeviceBuffer<uint8_t>(need_e);
            ops::la_accumulate_state_cuda(e, la_ws.get());
            a.S0 = S0.get();
            a.z0 = z0.get();
          }
          const size_t need = ops::la_prefill_cuda_workspace(a);
          if (la_ws.size() < need) la_ws = DeviceBuffer<uint8_t>(need);
          ops::la_prefill_cuda(a, la_ws.get());
        }
        residual(w.o.get(), H * hd, L.w_out, L.b_out, T, r);
        break;
      }
      case MixerKind::SlidingAttn:
      case MixerKind::MHA: {
        const int64_t w3 = 3 * L.inner;
        proj(h, d, L.w_in, L.b_in, T, d, w3, w.u.get(), w3);
        if (decode) {
          oc::rotary_cuda(w.u.get(), w3, cu, pos.get(), B, T, int(2 * L.H), int(L.hd), L.inv_freq.get(), L.nf, stream);
          oc::attention_decode_cuda(w.u.get(), w3, pos.get(), B, int(L.H), int(L.hd), L.window, L.scale, L.kc.get(),
                                    L.vc.get(), L.C, w.o.get(), L.inner, stream);
        } else {
          oc::rotary_cuda(w.u.get(), w3, cu, nullptr, B, T, int(2 * L.H), int(L.hd), L.inv_freq.get(), L.nf, stream);
          oc::attention_prefill_cuda(w.u.get(), w3, cu, B, max_len, int(L.H), int(L.hd), L.window, L.scale, w.o.get(),
                                     L.inner, stream);
          oc::kv_cache_write_cuda(w.u.get(), w3, cu, nullptr, B, T, int(L.H), int(L.hd), L.kc.get(), L.vc.get(), L.C,
                                  stream);
        }
        residual(w.o.get(), L.inner, L.w_out, L.b_out, T, r);
        break;
      }
      case MixerKind::Mamba: {
        const int64_t di = L.di, ldd = L.r + 2 * L.ns;
        proj(h, d, L.w_in, L.b_in, T, d, 2 * di, w.u.get(), 2 * di);
        oc::causal_conv1d_cuda(w.u.get(), 2 * di, cu, B, max_len, di, L.conv_w.get(), int(L.K), L.conv_b.get(), true,
                               nullptr, 0, L.tail.get(), w.a.get(), di, stream);
        oc::linear_bf16(w.a.get(), di, L.w_x.get(), T, di, ldd, w.dbc.get(), ldd, stream);
        oc::linear_f32(w.dbc.get(), ldd, L.w_dtp.get(), T, L.r, di, w.f.get(), di, false, stream);
        oc::ScanCudaArgs s;
        s.x = w.a.get();
        s.ldx = di;
        s.dt = w.f.get();
        s.lddt = di;
        s.dt_bias = L.dt_b.get();
        s.Bm = w.dbc.get() + L.r;
        s.Cm = w.dbc.get() + L.r + L.ns;
        s.ldbc = ldd;
        s.z = w.u.get() + di;
        s.ldz = 2 * di;
        s.A = L.A.get();
        s.D = L.D.get();
        s.y = w.o.get();
        s.ldy = di;
        s.h = L.h.get();
        s.cu_seqlens = cu;
        s.B = B;
        s.max_len = max_len;
        s.di = di;
        s.ns = int(L.ns);
        oc::selective_scan_cuda(s, stream);
        residual(w.o.get(), di, L.w_out, L.b_out, T, r);
        break;
      }
    }
    if (L.mlp) {
      norm(L.n2, r, nullptr, T, h);
      // fc1 and its activation: one kernel at decode batch sizes (the skinny GEMM's epilogue).
      const auto act =
          L.gated ? oc::Activation::kSwiGlu : (L.gelu_tanh ? oc::Activation::kGeluTanh : oc::Activation::kGeluErf);
      oc::linear_act_bf16(h, d, L.fc1.get(), T, d, L.F, w.a.get(), L.F, act, w.u.get(), stream, L.fb1.get());
      residual(w.a.get(), L.F, L.fc2, L.fb2, T, r);
    }
  }

  // The decode step for all slots on `stream`: ids in dec.ids -> logits dec.logits, argmax in `next`,
  // positions advanced.
  void decode_body() {
    const int64_t B = opt.slots;
    oc::embedding_cuda(dec.ids.get(), embed.get(), B, d, dec.r.get(), stream);
    for (auto& L : layers) layer(L, dec, B, int(B), 1, true, dec_cu.get(), Prefix{});
    norm(nf, dec.r.get(), nullptr, B, dec.hf.get());
    oc::linear_f32(dec.hf.get(), d, head, B, d, V, dec.logits.get(), V, false, stream);
    oc::argmax_cuda(dec.logits.get(), B, V, next.get(), stream);
    oc::add_i32_cuda(pos.get(), B, 1, stream);
  }

  void run_decode() {
    if (opt.use_graph && !graph && !graph_failed) {
      cudaGraph_t g = nullptr;
      JRT_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
      try {
        decode_body();
      } catch (...) {
        cudaStreamEndCapture(stream, &g);
        if (g) cudaGraphDestroy(g);
        cudaGetLastError();
        graph_failed = true;
      }
      if (!graph_failed) {
        JRT_CUDA_CHECK(cudaStreamEndCapture(stream, &g));
        if (cudaGraphInstantiate(&graph, g, 0) != cudaSuccess) {
          cudaGetLastError();
          graph = nullptr;
          graph_failed = true;
        }
        cudaGraphDestroy(g);
      }
    }
    if (graph)
      JRT_CUDA_CHECK(cudaGraphLaunch(graph, stream));
    else
      decode_body();
  }

  void check_room(int64_t steps) const {
    if (!any_mha) return;
    const int64_t mx = *std::max_element(host_pos.begin(), host_pos.end());
    JRT_CHECK(mx + steps <= opt.max_seq,
              "GPU decode: a sequence would reach {} tokens, more than the KV cache holds (max_seq {})", mx + steps,
              opt.max_seq);
  }
};

GpuModel::GpuModel() = default;
GpuModel::~GpuModel() = default;
int64_t GpuModel::slots() const { return impl_->opt.slots; }
int64_t GpuModel::vocab() const { return impl_->V; }
const ModelConfig& GpuModel::config() const { return impl_->cfg; }
double GpuModel::last_device_ms() const { return impl_->last_ms; }

std::unique_ptr<GpuModel> GpuModel::create(const Model& cpu, const GpuModelOptions& opt) {
  JRT_CHECK(cuda::available(), "--device cuda: no CUDA device is visible to this process");
  JRT_CHECK(opt.slots >= 1 && opt.slots <= (1 << 20), "GPU model: slots must be in [1, 2^20], got {}", opt.slots);
  JRT_CHECK(opt.max_seq >= 1, "GPU model: max_seq must be >= 1, got {}", opt.max_seq);
  std::unique_ptr<GpuModel> m(new GpuModel());
  m->impl_ = std::make_unique<Impl>();
  Impl& I = *m->impl_;
  I.cfg = cpu.config();
  I.opt = opt;
  const ModelConfig& c = I.cfg;
  const WeightStore& ws = cpu.weights();
  const bool mamba = c.arch == Arch::Mamba;
  I.d = c.d_model;
  I.V = c.padded_vocab;
  const int64_t d = I.d, S = opt.slots;
  const std::string emb_name = mamba ? "backbone.embedding.weight" : "transformer.embeddings.word_embeddings.weight";
  I.embed = weight_bf16(ws, emb_name);
  // The released checkpoints store the tied head under both names: upload it once unless it differs.
  I.head = I.embed.get();
  if (ws.has("lm_head.weight")) {
    const Tensor &ht = ws.get("lm_head.weight"), &et = ws.get(emb_name);
    const bool same = ht.dtype == et.dtype && ht.shape == et.shape && ht.is_contiguous() && et.is_contiguous() &&
                      std::memcmp(ht.data, et.data, ht.nbytes()) == 0;
    if (!same) {
      I.head_own = weight_bf16(ws, "lm_head.weight");
      I.head = I.head_own.get();
    }
  }
  auto read_norm = [&](const std::string& n) {
    GNorm g;
    g.w = weight_f32(ws, n + ".weight");
    if (!c.rms_norm) g.b = optional_f32(ws, n + ".bias");
    return g;
  };
  I.nf = read_norm(mamba ? "backbone.norm_f" : "transformer.ln_f");

  std::vector<float> log_decay;
  if (c.arch == Arch::Based && c.la.use_decay_proj) {
    if (ws.has("transformer.decay.decay")) {
      log_decay = host_f32(ws, "transformer.decay.decay");
    } else {
      for (int64_t hh = 0; hh < c.la.num_heads; ++hh)
        log_decay.push_back(float(std::log(1.0 - std::pow(2.0, c.decay_const - double(hh)))));
    }
  }

  for (int64_t i = 0; i < c.n_layer; ++i) {
    GLayer L;
    L.kind = c.layers[size_t(i)];
    const std::string pre = (mamba ? "backbone.layers." : "transformer.layers.") + std::to_string(i) + ".";
    const std::string mx = pre + "mixer.";
    L.n1 = read_norm(pre + (mamba ? "norm" : "norm1"));
    switch (L.kind) {
      case MixerKind::BaseConv: {
        L.di = c.conv.expand_proj * d / 2;
        L.K = c.conv.kernel_size;
        L.w_in = weight_bf16(ws, mx + "in_proj.weight");
        L.w_out = weight_bf16(ws, mx + "out_proj.weight");
        L.conv_w = weight_f32(ws, mx + "conv.conv.weight");
        L.b_in = optional_f32(ws, mx + "in_proj.bias");
        L.b_out = optional_f32(ws, mx + "out_proj.bias");
        L.tail = zeros<float>(size_t(S * (L.K - 1) * L.di));
        I.wu = std::max(I.wu, 2 * L.di);
        I.wa = std::max(I.wa, L.di);
        break;
      }
      case MixerKind::LinearAttn:
      case MixerKind::PrefixLinearAttn: {
        L.H = c.la.num_heads;
        L.hd = c.la.head_dim;
        L.eps = float(c.la.eps);
        JRT_CHECK(c.la.feature_dim == 16, "{}: the GPU linear attention needs feature_dim 16, got {}", c.source,
                  c.la.feature_dim);
        JRT_CHECK(L.hd % 8 == 0, "{}: the GPU linear attention needs a head dim that is a multiple of 8, got {}",
                  c.source, L.hd);
        {  // [proj_q; proj_k; proj_v] as one [H 32 + H hd, d] weight: one decode GEMM instead of three
          std::vector<float> cat;
          const std::pair<const char*, int64_t> parts[] = {
              {"proj_q.weight", L.H * 16}, {"proj_k.weight", L.H * 16}, {"proj_v.weight", L.H * L.hd}};
          for (const auto& [part, rows] : parts) {
            const std::vector<float> wp = host_f32(ws, mx + part);
            JRT_CHECK(int64_t(wp.size()) == rows * d, "{}: {}{} has {} values, expected {} x {}", c.source, mx, part,
                      wp.size(), rows, d);
            cat.insert(cat.end(), wp.begin(), wp.end());
          }
          L.w_qkv = upload_bf16(cat);
        }
        L.w_out = weight_bf16(ws, mx + "out_proj.weight");
        if (L.kind == MixerKind::PrefixLinearAttn) {
          L.w_ke = weight_bf16(ws, mx + "proj_k_enc.weight");
          L.w_ve = weight_bf16(ws, mx + "proj_v_enc.weight");
          I.any_pla = true;
        }
        if (L.kind == MixerKind::LinearAttn && c.la.use_decay_proj) {
          L.w_dt = weight_bf16(ws, mx + "decay_proj.weight");
          std::vector<float> g;
          for (float ld : log_decay) g.push_back(float(std::exp(double(ld))));
          L.gamma = upload_f32(g);
          I.wf = std::max(I.wf, L.H);
        }
        L.S = zeros<float>(size_t(S * L.H * ops::kLaFeat * L.hd));
        L.z = zeros<float>(size_t(S * L.H * ops::kLaFeat));
        I.wqk = std::max(I.wqk, L.H * 16);
        I.wu = std::max(I.wu, 2 * L.H * 16 + L.H * L.hd);
        I.wa = std::max(I.wa, L.H * L.hd);
        break;
      }
      case MixerKind::SlidingAttn:
      case MixerKind::MHA: {
        const bool swa = L.kind == MixerKind::SlidingAttn;
        L.H = swa ? c.swa.num_heads : c.attn.num_heads;
        L.hd = swa ? c.swa.head_dim : c.attn.head_dim;
        if (L.hd <= 0) L.hd = d / L.H;
        JRT_CHECK(L.hd <= 128 && L.hd % 2 == 0, "{}: the GPU attention needs an even head dim <= 128, got {}",
                  c.source, L.hd);
        L.inner = L.H * L.hd;
        L.window = swa ? c.swa.left_window() : -1;
        L.C = swa ? L.window + 1 : opt.max_seq;  // a window's ring never needs more; decode may run past max_seq
        L.scale = float(1.0 / std::sqrt(double(L.hd)));
        ops::Rotary rot(int64_t(c.rotary_fraction * double(L.hd)), c.rotary_base);
        L.nf = int(rot.inv_freq().size());
        L.inv_freq = upload_f32(rot.inv_freq().empty() ? std::vector<float>{0.0f}
                                                       : std::vector<float>(rot.inv_freq().begin(),
                                                                            rot.inv_freq().end()));
        L.w_in = weight_bf16(ws, mx + "Wqkv.weight");
        L.w_out = weight_bf16(ws, mx + "out_proj.weight");
        if (c.qkv_proj_bias) L.b_in = weight_f32(ws, mx + "Wqkv.bias");
        if (c.out_proj_bias) L.b_out = weight_f32(ws, mx + "out_proj.bias");
        L.kc = DeviceBuffer<bf16>(size_t(S * L.C * L.inner));
        L.vc = DeviceBuffer<bf16>(size_t(S * L.C * L.inner));
        I.wu = std::max(I.wu, 3 * L.inner);
        I.wa = std::max(I.wa, L.inner);
        if (!swa) I.any_mha = true;
        break;
      }
      case MixerKind::Mamba: {
        const MambaConfig& mc = c.mamba;
        L.di = mc.d_inner;
        L.K = mc.d_conv;
        L.r = mc.dt_rank;
        L.ns = mc.d_state;
        JRT_CHECK(L.ns <= 64, "{}: the GPU scan supports d_state <= 64, got {}", c.source, L.ns);
        L.w_in = weight_bf16(ws, mx + "in_proj.weight");
        L.b_in = optional_f32(ws, mx + "in_proj.bias");
        L.conv_w = weight_f32(ws, mx + "conv1d.weight");
        L.conv_b = optional_f32(ws, mx + "conv1d.bias");
        L.w_x = weight_bf16(ws, mx + "x_proj.weight");
        L.w_dtp = weight_bf16(ws, mx + "dt_proj.weight");
        L.dt_b = weight_f32(ws, mx + "dt_proj.bias");
        std::vector<float> A = host_f32(ws, mx + "A_log");
        for (float& x : A) x = -std::exp(x);
        L.A = upload_f32(A);
        L.D = weight_f32(ws, mx + "D");
        L.w_out = weight_bf16(ws, mx + "out_proj.weight");
        L.b_out = optional_f32(ws, mx + "out_proj.bias");
        L.tail = zeros<float>(size_t(S * (L.K - 1) * L.di));
        L.h = zeros<float>(size_t(S * L.di * L.ns));
        I.wu = std::max(I.wu, 2 * L.di);
        I.wa = std::max(I.wa, L.di);
        I.wdbc = std::max(I.wdbc, L.r + 2 * L.ns);
        I.wf = std::max(I.wf, L.di);
        break;
      }
    }
    if (!mamba && c.mlp_hidden > 0) {
      L.mlp = true;
      L.n2 = read_norm(pre + "norm2");
      L.gated = c.activation == "swiglu";
      L.gelu_tanh = c.activation != "gelu";
      L.F = ws.get(pre + "mlp.fc2.weight").shape[1];  // the CPU model checked it against the config
      L.fc1 = weight_bf16(ws, pre + "mlp.fc1.weight");
      L.fc2 = weight_bf16(ws, pre + "mlp.fc2.weight");
      L.fb1 = optional_f32(ws, pre + "mlp.fc1.bias");
      L.fb2 = optional_f32(ws, pre + "mlp.fc2.bias");
      I.wu = std::max(I.wu, L.gated ? 2 * L.F : L.F);
      I.wa = std::max(I.wa, L.F);
    }
    I.layers.push_back(std::move(L));
  }

  JRT_CUDA_CHECK(cudaStreamCreateWithFlags(&I.stream, cudaStreamNonBlocking));
  JRT_CUDA_CHECK(cudaEventCreate(&I.ev0));
  JRT_CUDA_CHECK(cudaEventCreate(&I.ev1));
  I.pos = zeros<int32_t>(size_t(S));
  I.next = zeros<int32_t>(size_t(S));
  I.host_pos.assign(size_t(S), 0);
  std::vector<int32_t> cu(static_cast<size_t>(S + 1));
  for (int64_t b = 0; b <= S; ++b) cu[size_t(b)] = int32_t(b);
  I.dec_cu = DeviceBuffer<int32_t>(cu.size());
  I.dec_cu.upload(cu.data(), cu.size());
  I.ensure(I.dec, S, S);
  return m;
}

void GpuModel::prefill(std::span<const int64_t> ids, std::span<const int64_t> lengths, std::span<const int64_t> mask,
                       bool all_logits, float* logits) {
  Impl& I = *impl_;
  const int64_t S = int64_t(lengths.size()), T = int64_t(ids.size()), V = I.V;
  JRT_CHECK(S >= 1 && S <= I.opt.slots, "GPU prefill: {} sequences for {} slots", S, I.opt.slots);
  JRT_CHECK(mask.empty() || int64_t(mask.size()) == T, "GPU prefill: mask has {} entries for {} ids", mask.size(), T);
  JRT_CHECK(T <= int64_t(INT32_MAX), "GPU prefill: {} rows is too many", T);
  std::vector<int32_t> cu(static_cast<size_t>(S + 1), 0), last;
  int64_t max_len = 0;
  for (int64_t s = 0; s < S; ++s) {
    JRT_CHECK(lengths[size_t(s)] >= 1, "GPU prefill: sequence {} is empty", s);
    cu[size_t(s + 1)] = int32_t(cu[size_t(s)] + lengths[size_t(s)]);
    max_len = std::max(max_len, lengths[size_t(s)]);
    last.push_back(cu[size_t(s + 1)] - 1);
  }
  JRT_CHECK(cu[size_t(S)] == T, "GPU prefill: lengths sum to {} but {} ids were given", cu[size_t(S)], T);
  if (I.any_mha) JRT_CHECK(max_len <= I.opt.max_seq, "GPU prefill: a {}-token sequence exceeds max_seq {}", max_len,
                           I.opt.max_seq);
  for (int64_t i = 0; i < T; ++i)
    JRT_CHECK(ids[size_t(i)] >= 0 && ids[size_t(i)] < V, "token id {} at row {} is outside the vocabulary [0, {})",
              ids[size_t(i)], i, V);
  const int64_t LR = all_logits ? T : S;
  I.ensure(I.pre, T, LR);
  Work& w = I.pre;
  cudaStream_t st = I.stream;
  std::vector<int32_t> ids32(ids.begin(), ids.end());
  JRT_CUDA_CHECK(cudaMemcpyAsync(w.ids.get(), ids32.data(), size_t(T) * 4, cudaMemcpyHostToDevice, st));
  JRT_CUDA_CHECK(cudaMemcpyAsync(w.cu.get(), cu.data(), cu.size() * 4, cudaMemcpyHostToDevice, st));

  // JRT prefix rows (first M = min(enc_length, len) of each sequence) and the masked pad rows
  // (models/jrt.cpp: only for len > 1 and len <= enc_length).
  int64_t npads = 0, npre_pads = 0, npre = 0;
  int pre_max = 0;
  std::vector<int32_t> pre_rows, pre_cu(1, 0), pads, pre_pads;
  if (I.any_pla) {
    const int64_t enc = I.cfg.la.enc_length;
    for (int64_t s = 0; s < S; ++s) {
      const int64_t off = cu[size_t(s)], len = lengths[size_t(s)], M = std::min(enc, len);
      for (int64_t t = 0; t < M; ++t) pre_rows.push_back(int32_t(off + t));
      if (I.cfg.la.use_mask && !mask.empty() && len > 1 && len <= enc)
        for (int64_t t = 0; t < len; ++t)
          if (mask[size_t(off + t)] == 0) {
            pads.push_back(int32_t(off + t));
            if (t < M) pre_pads.push_back(int32_t(pre_cu.back() + t));
          }
      pre_cu.push_back(int32_t(pre_cu.back() + M));
      pre_max = std::max(pre_max, int(M));
    }
    npre = int64_t(pre_rows.size());
    npads = int64_t(pads.size());
    npre_pads = int64_t(pre_pads.size());
    JRT_CUDA_CHECK(cudaMemcpyAsync(w.pre_rows.get(), pre_rows.data(), pre_rows.size() * 4, cudaMemcpyHostToDevice, st));
    JRT_CUDA_CHECK(cudaMemcpyAsync(w.pre_cu.get(), pre_cu.data(), pre_cu.size() * 4, cudaMemcpyHostToDevice, st));
    if (npads > 0)
      JRT_CUDA_CHECK(cudaMemcpyAsync(w.pad_rows.get(), pads.data(), pads.size() * 4, cudaMemcpyHostToDevice, st));
    if (npre_pads > 0)
      JRT_CUDA_CHECK(cudaMemcpyAsync(w.pre_pad.get(), pre_pads.data(), pre_pads.size() * 4, cudaMemcpyHostToDevice, st));
  }

  // Fresh states for every slot.
  for (auto& L : I.layers) {
    for (DeviceBuffer<float>* b : {&L.tail, &L.S, &L.z, &L.h})
      if (b->get()) JRT_CUDA_CHECK(cudaMemsetAsync(b->get(), 0, b->size() * sizeof(float), st));
  }
  std::vector<int32_t> p32(static_cast<size_t>(I.opt.slots), 0);
  for (int64_t s = 0; s < S; ++s) p32[size_t(s)] = int32_t(lengths[size_t(s)]);

  JRT_CUDA_CHECK(cudaEventRecord(I.ev0, st));
  oc::embedding_cuda(w.ids.get(), I.embed.get(), T, I.d, w.r.get(), st);
  for (auto& L : I.layers)
    I.layer(L, w, T, int(S), int(max_len), false, w.cu.get(), {npads, npre_pads, npre, pre_max});
  const int32_t* rows = nullptr;
  if (!all_logits) {
    JRT_CUDA_CHECK(cudaMemcpyAsync(w.rows_idx.get(), last.data(), last.size() * 4, cudaMemcpyHostToDevice, st));
    rows = w.rows_idx.get();
  }
  I.norm(I.nf, w.r.get(), rows, LR, w.hf.get());
  oc::linear_f32(w.hf.get(), I.d, I.head, LR, I.d, V, w.logits.get(), V, false, st);
  // Greedy seeds for greedy(): the argmax of each sequence's last row; other slots decode token 0.
  JRT_CUDA_CHECK(cudaMemsetAsync(I.next.get(), 0, size_t(I.opt.slots) * 4, st));
  if (!all_logits) oc::argmax_cuda(w.logits.get(), S, V, I.next.get(), st);
  JRT_CUDA_CHECK(cudaMemcpyAsync(I.pos.get(), p32.data(), p32.size() * 4, cudaMemcpyHostToDevice, st));
  JRT_CUDA_CHECK(cudaEventRecord(I.ev1, st));
  if (logits)
    JRT_CUDA_CHECK(cudaMemcpyAsync(logits, w.logits.get(), size_t(LR) * size_t(V) * 4, cudaMemcpyDeviceToHost, st));
  JRT_CUDA_CHECK(cudaStreamSynchronize(st));
  float ms = 0;
  JRT_CUDA_CHECK(cudaEventElapsedTime(&ms, I.ev0, I.ev1));
  I.last_ms = ms;
  for (size_t s = 0; s < I.host_pos.size(); ++s) I.host_pos[s] = p32[s];
}

void GpuModel::step(std::span<const int64_t> ids, float* logits) {
  Impl& I = *impl_;
  const int64_t B = I.opt.slots;
  JRT_CHECK(int64_t(ids.size()) == B, "GPU step: {} ids for {} slots", ids.size(), B);
  I.check_room(1);
  std::vector<int32_t> ids32(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    JRT_CHECK(ids[size_t(b)] >= 0 && ids[size_t(b)] < I.V, "token id {} (slot {}) is outside the vocabulary [0, {})",
              ids[size_t(b)], b, I.V);
    ids32[size_t(b)] = int32_t(ids[size_t(b)]);
  }
  cudaStream_t st = I.stream;
  JRT_CUDA_CHECK(cudaMemcpyAsync(I.dec.ids.get(), ids32.data(), size_t(B) * 4, cudaMemcpyHostToDevice, st));
  JRT_CUDA_CHECK(cudaEventRecord(I.ev0, st));
  I.run_decode();
  JRT_CUDA_CHECK(cudaEventRecord(I.ev1, st));
  if (logits)
    JRT_CUDA_CHECK(cudaMemcpyAsync(logits, I.dec.logits.get(), size_t(B) * size_t(I.V) * 4, cudaMemcpyDeviceToHost, st));
  JRT_CUDA_CHECK(cudaStreamSynchronize(st));
  float ms = 0;
  JRT_CUDA_CHECK(cudaEventElapsedTime(&ms, I.ev0, I.ev1));
  I.last_ms = ms;
  for (auto& p : I.host_pos) ++p;
}

std::vector<int32_t> GpuModel::greedy(int64_t n) {
  Impl& I = *impl_;
  const int64_t B = I.opt.slots;
  JRT_CHECK(n >= 1, "GPU greedy: n must be >= 1");
  I.check_room(n);
  DeviceBuffer<int32_t> out(size_t(n * B));
  cudaStream_t st = I.stream;
  JRT_CUDA_CHECK(cudaEventRecord(I.ev0, st));
  for (int64_t i = 0; i < n; ++i) {
    oc::copy_i32_cuda(I.next.get(), I.dec.ids.get(), B, st);
    oc::copy_i32_cuda(I.next.get(), out.get() + i * B, B, st);
    I.run_decode();
  }
  JRT_CUDA_CHECK(cudaEventRecord(I.ev1, st));
  std::vector<int32_t> h(static_cast<size_t>(n * B));
  JRT_CUDA_CHECK(cudaMemcpyAsync(h.data(), out.get(), h.size() * 4, cudaMemcpyDeviceToHost, st));
  JRT_CUDA_CHECK(cudaStreamSynchronize(st));
  float ms = 0;
  JRT_CUDA_CHECK(cudaEventElapsedTime(&ms, I.ev0, I.ev1));
  I.last_ms = ms;
  for (auto& p : I.host_pos) p += n;
  return h;
}

#endif

}  // namespace jrt
