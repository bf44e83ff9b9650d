// train/gpu_train_model.cpp — the CUDA training engine (train/engine.h): the TrainModel block stack
// (embedding, pre-norm blocks of mixer [+ SwiGLU MLP], final norm, tied head, the NTP / JRT objective)
// and every mixer's training form, on the GPU in bf16 mixed precision, llm.c style:
//   - fp32 master parameters, gradients and AdamW moments, each one flat device buffer laid out exactly
//     as the host TrainModel (same offsets), plus a bf16 copy of the parameters that the GEMMs read
//     (refreshed by the AdamW kernel as it writes each parameter);
//   - activations bf16 where they feed a GEMM, fp32 for the residual stream and its gradient, norm and
//     softmax statistics, linear-attention denominators, scan state and every parameter gradient;
//   - every layer's saved activations carved from one device allocation sized up front for
//     (max_batch, max_len); forward saves what backward reads (ops/cuda_train_ops.h contracts).
// The LM head runs on the labelled rows only (gathered; MQAR labels a few rows in a hundred). An optimizer
// step (micro-batches, clipping, AdamW) is enqueued without waiting for the device: uploads and the per-row
// losses go through pinned staging slots, clipping reads the squared norm on the device, and the host
// waits once per step when it reads the losses.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <map>
#include <utility>

#include "core/error.h"
#include "train/engine.h"

#ifdef JRT_HAVE_CUDA
#include "core/cuda_util.h"
#include "core/dtype.h"
#include "ops/cross_entropy.h"
#include "ops/cuda_ops.h"
#include "ops/cuda_train_ops.h"
#include "ops/rotary.h"
#include "ops/taylor.h"

namespace jrt {
namespace {

namespace oc = ops::cuda;
using bf16 = oc::bf16;
using cuda::DeviceBuffer;

// Collects (slot, bytes) requests, then carves all of them, 256-byte aligned, from one allocation.
class DevPlan {
 public:
  template <class T>
  void add(T** slot, int64_t n) {
    reqs_.push_back({reinterpret_cast<void**>(slot), size_t(std::max<int64_t>(n, 1)) * sizeof(T)});
  }
  DeviceBuffer<uint8_t> allocate() {
    size_t total = 0;
    for (const auto& r : reqs_) total += (r.bytes + 255) / 256 * 256;
    DeviceBuffer<uint8_t> buf(total);
    size_t off = 0;
    for (const auto& r : reqs_) {
      *r.slot = buf.get() + off;
      off += (r.bytes + 255) / 256 * 256;
    }
    reqs_.clear();
    return buf;
  }

 private:
  struct Req {
    void** slot;
    size_t bytes;
  };
  std::vector<Req> reqs_;
};

// Page-locked host memory (RAII), so that copies to and from the device are truly asynchronous.
template <class T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(size_t n) {
    void* p = nullptr;
    JRT_CUDA_CHECK(cudaMallocHost(&p, std::max<size_t>(n, 1) * sizeof(T)));
    p_ = static_cast<T*>(p);
  }
  ~PinnedBuffer() {
    if (p_) cudaFreeHost(p_);
  }
  PinnedBuffer(PinnedBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept {
    if (this != &o) {
      if (p_) cudaFreeHost(p_);
      p_ = std::exchange(o.p_, nullptr);
    }
    return *this;
  }
  T* get() const { return p_; }
  T& operator[](size_t i) const { return p_[i]; }

 private:
  T* p_ = nullptr;
};

// A parameter on the device: fp32 master, its gradient, and the bf16 copy.
struct DevParam {
  const float* p = nullptr;
  float* g = nullptr;
  const bf16* b = nullptr;
};

class DevTable {
 public:
  void add(const std::string& name, DevParam e, Shape s) { m_[name] = {e, std::move(s)}; }
  bool has(const std::string& name) const { return m_.count(name) != 0; }
  const DevParam& at(const std::string& name, const Shape& expect) const {
    auto it = m_.find(name);
    JRT_CHECK(it != m_.end(), "GPU training model: parameter '{}' is missing", name);
    JRT_CHECK(it->second.second == expect, "GPU training model: parameter '{}' has shape {}, expected {}", name,
              shape_str(it->second.second), shape_str(expect));
    return it->second.first;
  }

 private:
  std::map<std::string, std::pair<DevParam, Shape>> m_;
};

// Per-call context shared by the mixers: stream, the batch shape and device helpers.
struct Ctx {
  cudaStream_t stream = nullptr;
  int B = 0;
  int64_t L = 0, N = 0;
  const int32_t* cu_seqlens = nullptr;  // [B + 1] = b * L (rotary positions 0 .. L-1 per sequence)
};

// ---- mixers ------------------------------------------------------------------------------------------
// Every mixer ends in an output projection into the fp32 residual: out [N, d] += in W^T (+ b), in bf16 [N, k].
// Its backward: b.g += column sums of dy, din bf16 [N, k] (=) = dy W, W.g += dy^T in. b may be empty (no bias).
void out_proj_fwd(const Ctx& c, const bf16* in, int64_t k, const DevParam& W, const DevParam& b, int64_t d,
                  float* out) {
  oc::linear_f32(in, k, W.b, c.N, k, d, out, d, true, c.stream);
  if (b.p) oc::add_bias_f32(out, d, b.p, c.N, d, c.stream);
}
void out_proj_bwd(const Ctx& c, const bf16* dy, const bf16* in, int64_t k, const DevParam& W, const DevParam& b,
                  int64_t d, bf16* din) {
  if (b.g) oc::bias_grad_cuda(dy, d, c.N, d, b.g, c.stream);
  oc::linear_dx_bf16(dy, d, W.b, c.N, k, d, din, k, c.stream);
  oc::linear_dw(dy, d, in, k, c.N, k, d, W.g, c.stream);
}

// forward: out [N, d] fp32 += mixer(x) (x bf16 [N, d], the normed input; out already holds the residual).
// backward: dx fp32 [N, d] (=) from dy bf16 [N, d]; parameter gradients (+=).
class GpuMixer {
 public:
  virtual ~GpuMixer() = default;
  virtual void plan(DevPlan& a, int64_t Bmax, int64_t Lmax) = 0;
  virtual void forward(const Ctx& c, const bf16* x, float* out) = 0;
  virtual void backward(const Ctx& c, const bf16* x, const bf16* dy, float* dx) = 0;
};

// BaseConv (models-spec §5.2): u = in_proj(x) [N, 2di]; c = conv(u[:, :di]); g = silu(c) * u[:, di:]; y = out_proj(g)
class BaseConvG final : public GpuMixer {
 public:
  BaseConvG(const ModelConfig& c, const DevTable& t, const std::string& pre)
      : d_(c.d_model), K_(c.conv.kernel_size), di_(c.conv.expand_proj * c.d_model / 2) {
    Wi_ = t.at(pre + "in_proj.weight", {2 * di_, d_});
    Wo_ = t.at(pre + "out_proj.weight", {d_, di_});
    cw_ = t.at(pre + "conv.conv.weight", {di_, 1, K_});
    if (c.conv.use_bias) {
      bi_ = t.at(pre + "in_proj.bias", {2 * di_});
      bo_ = t.at(pre + "out_proj.bias", {d_});
    }
  }
  void plan(DevPlan& a, int64_t Bmax, int64_t Lmax) override {
    const int64_t N = Bmax * Lmax;
    a.add(&u_, N * 2 * di_);
    a.add(&c_, N * di_);
    a.add(&g_, N * di_);
    a.add(&du_, N * 2 * di_);
    a.add(&dg_, N * di_);
    a.add(&dc_, N * di_);
  }
  void forward(const Ctx& c, const bf16* x, float* out) override {
    const int64_t N = c.N, w = 2 * di_;
    oc::linear_bf16(x, d_, Wi_.b, N, d_, w, u_, w, c.stream);
    if (bi_.p) oc::add_bias_bf16(u_, w, bi_.p, N, w, c.stream);
    oc::conv1d_fwd_train_cuda(u_, w, c.B, c.L, di_, cw_.p, int(K_), nullptr, c_, di_, c.stream);
    oc::gated_silu_cuda(u_ + di_, w, c_, di_, N, di_, g_, di_, c.stream);
    out_proj_fwd(c, g_, di_, Wo_, bo_, d_, out);
  }
  void backward(const Ctx& c, const bf16* x, const bf16* dy, float* dx) override {
    const int64_t N = c.N, w = 2 * di_;
    out_proj_bwd(c, dy, g_, di_, Wo_, bo_, d_, dg_);
    oc::gated_silu_bwd_cuda(dg_, di_, u_ + di_, w, c_, di_, N, di_, du_ + di_, w, dc_, di_, c.stream);
    oc::conv1d_bwd_train_cuda(dc_, di_, u_, w, c.B, c.L, di_, cw_.p, int(K_), du_, w, cw_.g, nullptr, c.stream);
    if (bi_.g) oc::bias_grad_cuda(du_, w, N, w, bi_.g, c.stream);
    oc::linear_dw(du_, w, x, d_, N, d_, w, Wi_.g, c.stream);
    oc::linear_dx_f32(du_, w, Wi_.b, N, d_, w, dx, d_, false, c.stream);
  }

 private:
  int64_t d_, K_, di_;
  DevParam Wi_, Wo_, cw_, bi_, bo_;
  bf16 *u_ = nullptr, *c_ = nullptr, *g_ = nullptr, *du_ = nullptr, *dg_ = nullptr, *dc_ = nullptr;
};

// Softmax attention with rotary (MHA, SlidingAttention; models-spec §5.3-§5.5).
class AttentionG final : public GpuMixer {
 public:
  AttentionG(const ModelConfig& c, const DevTable& t, const std::string& pre, int64_t heads, int64_t head_dim,
             int64_t left_window)
      : d_(c.d_model), H_(heads), hd_(head_dim > 0 ? head_dim : c.d_model / heads), window_(left_window) {
    inner_ = H_ * hd_;
    ops::Rotary rot(int64_t(c.rotary_fraction * double(hd_)), c.rotary_base);
    JRT_CHECK(rot.rotated() <= hd_, "attention: rotary dim {} exceeds head dim {}", rot.rotated(), hd_);
    nf_ = int(rot.inv_freq().size());
    std::vector<float> f(rot.inv_freq().begin(), rot.inv_freq().end());
    if (f.empty()) f.push_back(0.0f);
    inv_freq_ = DeviceBuffer<float>(f.size());
    inv_freq_.upload(f.data(), f.size());
    scale_ = float(1.0 / std::sqrt(double(hd_)));
    Wqkv_ = t.at(pre + "Wqkv.weight", {3 * inner_, d_});
    Wo_ = t.at(pre + "out_proj.weight", {d_, inner_});
    if (c.qkv_proj_bias) bqkv_ = t.at(pre + "Wqkv.bias", {3 * inner_});
    if (c.out_proj_bias) bo_ = t.at(pre + "out_proj.bias", {d_});
  }
  void plan(DevPlan& a, int64_t Bmax, int64_t Lmax) override {
    const int64_t N = Bmax * Lmax;
    a.add(&qkv_, N * 3 * inner_);
    a.add(&o_, N * inner_);
    a.add(&lse_, N * H_);
    a.add(&dqkv_, N * 3 * inner_);
    a.add(&do_, N * inner_);
    ws_bytes_ = oc::attention_bwd_workspace_bytes(int(Bmax), Lmax, int(H_), int(hd_));
    if (ws_bytes_) a.add(&ws_, int64_t(ws_bytes_));
  }
  void forward(const Ctx& c, const bf16* x, float* out) override {
    const int64_t N = c.N, w3 = 3 * inner_;
    oc::linear_bf16(x, d_, Wqkv_.b, N, d_, w3, qkv_, w3, c.stream);
    if (bqkv_.p) oc::add_bias_bf16(qkv_, w3, bqkv_.p, N, w3, c.stream);
    if (nf_ > 0)
      oc::rotary_cuda(qkv_, w3, c.cu_seqlens, nullptr, c.B, N, int(2 * H_), int(hd_), inv_freq_.get(), nf_, c.stream);
    oc::attention_fwd_train_cuda(qkv_, w3, c.B, c.L, int(H_), int(hd_), window_, scale_, o_, inner_, lse_, c.stream);
    out_proj_fwd(c, o_, inner_, Wo_, bo_, d_, out);
  }
  void backward(const Ctx& c, const bf16* x, const bf16* dy, float* dx) override {
    const int64_t N = c.N, w3 = 3 * inner_;
    out_proj_bwd(c, dy, o_, inner_, Wo_, bo_, d_, do_);
    oc::attention_bwd_train_cuda(qkv_, w3, o_, inner_, lse_, do_, inner_, c.B, c.L, int(H_), int(hd_), window_, scale_,
                                 dqkv_, w3, ws_bytes_ ? ws_ : nullptr, ws_bytes_, c.stream);
    if (nf_ > 0)
      oc::rotary_bwd_cuda(dqkv_, w3, c.cu_seqlens, nullptr, c.B, N, int(2 * H_), int(hd_), inv_freq_.get(), nf_,
                          c.stream);
    if (bqkv_.g) oc::bias_grad_cuda(dqkv_, w3, N, w3, bqkv_.g, c.stream);
    oc::linear_dw(dqkv_, w3, x, d_, N, d_, w3, Wqkv_.g, c.stream);
    oc::linear_dx_f32(dqkv_, w3, Wqkv_.b, N, d_, w3, dx, d_, false, c.stream);
  }

 private:
  int64_t d_, H_, hd_, window_, inner_ = 0;
  int nf_ = 0;
  float scale_ = 1;
  DeviceBuffer<float> inv_freq_;
  DevParam Wqkv_, Wo_, bqkv_, bo_;
  bf16 *qkv_ = nullptr, *o_ = nullptr, *dqkv_ = nullptr, *do_ = nullptr;
  float* lse_ = nullptr;
  uint8_t* ws_ = nullptr;
  size_t ws_bytes_ = 0;
};

// Taylor linear attention: Based (optional fixed decay + dt, §4.3) and JRT's prefix form (§5.1: the causal
// LA starts from the non-causal summary of the first M = min(enc_length, L) tokens, made with proj_k_enc /
// proj_v_enc). The encoder projections run over all N rows (one GEMM); the state backward zeroes rows >= M.
class LinearAttnG final : public GpuMixer {
 public:
  LinearAttnG(const ModelConfig& c, const DevTable& t, const std::string& pre, bool prefix, bool decay)
      : d_(c.d_model),
        H_(c.la.num_heads),
        fd_(c.la.feature_dim),
        hd_(c.la.head_dim),
        D_(ops::taylor_dim(c.la.feature_dim)),
        eps_(float(c.la.eps)),
        prefix_(prefix),
        enc_(c.la.enc_length) {
    Wq_ = t.at(pre + "proj_q.weight", {H_ * fd_, d_});
    Wk_ = t.at(pre + "proj_k.weight", {H_ * fd_, d_});
    Wv_ = t.at(pre + "proj_v.weight", {H_ * hd_, d_});
    Wo_ = t.at(pre + "out_proj.weight", {d_, H_ * hd_});
    if (prefix_) {
      Wke_ = t.at(pre + "proj_k_enc.weight", {H_ * fd_, d_});
      Wve_ = t.at(pre + "proj_v_enc.weight", {H_ * hd_, d_});
    }
    if (decay) Wdt_ = t.at(pre + "decay_proj.weight", {H_, d_});
  }
  // Decay rates gamma_h = exp(log_decay_h) (the buffer is never trained; set when parameters are pushed).
  void set_gamma(const float* gamma_dev) { gamma_ = gamma_dev; }
  void plan(DevPlan& a, int64_t Bmax, int64_t Lmax) override {
    const int64_t N = Bmax * Lmax, wq = H_ * fd_, wv = H_ * hd_;
    a.add(&q_, N * wq);
    a.add(&k_, N * wq);
    a.add(&v_, N * wv);
    a.add(&o_, N * wv);
    a.add(&den_, N * H_);
    a.add(&dq_, N * wq);
    a.add(&dk_, N * wq);
    a.add(&dv_, N * wv);
    a.add(&do_, N * wv);
    if (Wdt_.p) {
      a.add(&dt_, N * H_);
      a.add(&u_, N * wv);
      a.add(&ddt_, N * H_);
    }
    if (prefix_) {
      a.add(&ke_, N * wq);
      a.add(&ve_, N * wv);
      a.add(&dke_, N * wq);
      a.add(&dve_, N * wv);
      a.add(&S0_, Bmax * H_ * D_ * hd_);
      a.add(&z0_, Bmax * H_ * D_);
      a.add(&dS0_, Bmax * H_ * D_ * hd_);
      a.add(&dz0_, Bmax * H_ * D_);
    }
    // One scratch area for the four calls (they run one after another on the stream; nothing in it outlives a call).
    // The sizes depend on which optional inputs are set, not on their addresses, which the plan assigns only after
    // this: mark the initial state present (a null S0 / z0 here would size the scratch without the state GEMMs).
    oc::LaTrainCuda la = args({int(Bmax), Lmax});
    static const float kPresent = 0.0f;
    if (prefix_) la.S0 = la.z0 = &kPresent;
    ws_bytes_ = std::max(oc::la_bwd_workspace_bytes(la), oc::la_fwd_workspace_bytes(la));
    if (prefix_)
      ws_bytes_ =
          std::max(ws_bytes_, oc::la_state_workspace_bytes(int(Bmax), Lmax, M(Lmax), int(H_), int(fd_), int(hd_)));
    if (ws_bytes_) a.add(&ws_, int64_t(ws_bytes_));
  }
  void forward(const Ctx& c, const bf16* x, float* out) override {
    const int64_t N = c.N, wq = H_ * fd_, wv = H_ * hd_;
    oc::linear_bf16(x, d_, Wq_.b, N, d_, wq, q_, wq, c.stream);
    oc::linear_bf16(x, d_, Wk_.b, N, d_, wq, k_, wq, c.stream);
    oc::linear_bf16(x, d_, Wv_.b, N, d_, wv, v_, wv, c.stream);
    if (Wdt_.p) oc::linear_f32(x, d_, Wdt_.b, N, d_, H_, dt_, H_, false, c.stream);
    if (prefix_) {
      oc::linear_bf16(x, d_, Wke_.b, N, d_, wq, ke_, wq, c.stream);
      oc::linear_bf16(x, d_, Wve_.b, N, d_, wv, ve_, wv, c.stream);
      oc::la_state_fwd_train_cuda(ke_, wq, ve_, wv, c.B, c.L, M(c.L), int(H_), int(fd_), int(hd_), S0_, z0_, ws(),
                                  c.stream);
    }
    oc::la_fwd_train_cuda(args({c.B, c.L}), ws(), c.stream);
    out_proj_fwd(c, o_, wv, Wo_, DevParam{}, d_, out);
  }
  void backward(const Ctx& c, const bf16* x, const bf16* dy, float* dx) override {
    const int64_t N = c.N, wq = H_ * fd_, wv = H_ * hd_;
    out_proj_bwd(c, dy, o_, wv, Wo_, DevParam{}, d_, do_);
    oc::LaTrainGradsCuda g;
    g.dq = dq_, g.lddq = wq, g.dk = dk_, g.lddk = wq, g.dv = dv_, g.lddv = wv;
    if (Wdt_.p) g.ddt = ddt_, g.ldddt = H_;
    if (prefix_) g.dS0 = dS0_, g.dz0 = dz0_;
    oc::la_bwd_train_cuda(args({c.B, c.L}), do_, wv, g, ws(), ws_bytes_, c.stream);
    oc::linear_dw(dq_, wq, x, d_, N, d_, wq, Wq_.g, c.stream);
    oc::linear_dw(dk_, wq, x, d_, N, d_, wq, Wk_.g, c.stream);
    oc::linear_dw(dv_, wv, x, d_, N, d_, wv, Wv_.g, c.stream);
    oc::linear_dx_f32(dq_, wq, Wq_.b, N, d_, wq, dx, d_, false, c.stream);
    oc::linear_dx_f32(dk_, wq, Wk_.b, N, d_, wq, dx, d_, true, c.stream);
    oc::linear_dx_f32(dv_, wv, Wv_.b, N, d_, wv, dx, d_, true, c.stream);
    if (Wdt_.p) {
      oc::linear_dw(ddt_, H_, x, d_, N, d_, H_, Wdt_.g, c.stream);
      oc::linear_dx_f32(ddt_, H_, Wdt_.b, N, d_, H_, dx, d_, true, c.stream);
    }
    if (prefix_) {
      oc::la_state_bwd_train_cuda(ke_, wq, ve_, wv, c.B, c.L, M(c.L), int(H_), int(fd_), int(hd_), dS0_, dz0_, dke_, wq,
                                  dve_, wv, ws(), c.stream);
      oc::linear_dw(dke_, wq, x, d_, N, d_, wq, Wke_.g, c.stream);
      oc::linear_dw(dve_, wv, x, d_, N, d_, wv, Wve_.g, c.stream);
      oc::linear_dx_f32(dke_, wq, Wke_.b, N, d_, wq, dx, d_, true, c.stream);
      oc::linear_dx_f32(dve_, wv, Wve_.b, N, d_, wv, dx, d_, true, c.stream);
    }
  }

 private:
  struct LaArgsShape {
    int B;
    int64_t L;
  };
  int64_t M(int64_t L) const { return prefix_ ? std::min(enc_, L) : 0; }
  void* ws() const { return ws_bytes_ ? ws_ : nullptr; }
  oc::LaTrainCuda args(LaArgsShape s) const {
    const int64_t wq = H_ * fd_, wv = H_ * hd_;
    oc::LaTrainCuda a;
    a.q = q_, a.ldq = wq, a.k = k_, a.ldk = wq, a.v = v_, a.ldv = wv;
    if (Wdt_.p) a.dt = dt_, a.lddt = H_, a.gamma = gamma_, a.u = u_, a.ldu = wv;
    if (prefix_) a.S0 = S0_, a.z0 = z0_;
    a.y = o_, a.ldy = wv, a.den = den_;
    a.B = s.B, a.L = s.L, a.H = int(H_), a.fd = int(fd_), a.dv = int(hd_), a.eps = eps_;
    return a;
  }
  int64_t d_, H_, fd_, hd_, D_;
  float eps_;
  bool prefix_;
  int64_t enc_;
  const float* gamma_ = nullptr;
  DevParam Wq_, Wk_, Wv_, Wo_, Wke_, Wve_, Wdt_;
  bf16 *q_ = nullptr, *k_ = nullptr, *v_ = nullptr, *o_ = nullptr, *u_ = nullptr;
  bf16 *dq_ = nullptr, *dk_ = nullptr, *dv_ = nullptr, *do_ = nullptr, *ddt_ = nullptr;
  bf16 *ke_ = nullptr, *ve_ = nullptr, *dke_ = nullptr, *dve_ = nullptr;
  float *den_ = nullptr, *dt_ = nullptr, *S0_ = nullptr, *z0_ = nullptr, *dS0_ = nullptr, *dz0_ = nullptr;
  uint8_t* ws_ = nullptr;
  size_t ws_bytes_ = 0;
};

// Mamba (models-spec §5.6): xz = in_proj(x); xs = silu(conv(xz[:, :di]) + b); dbc = x_proj(xs) = [dt_raw | B | C];
// delta = softplus(dt_proj(dt_raw) + dt_bias); ys = scan(xs, delta, A = -exp(A_log), B, C, D); y = out_proj(ys *
// silu(z))
class MambaG final : public GpuMixer {
 public:
  MambaG(const ModelConfig& c, const DevTable& t, const std::string& pre)
      : d_(c.d_model), di_(c.mamba.d_inner), R_(c.mamba.dt_rank), Ns_(c.mamba.d_state), K_(c.mamba.d_conv) {
    Win_ = t.at(pre + "in_proj.weight", {2 * di_, d_});
    if (c.mamba.bias) bin_ = t.at(pre + "in_proj.bias", {2 * di_});
    cw_ = t.at(pre + "conv1d.weight", {di_, 1, K_});
    if (c.mamba.conv_bias) cb_ = t.at(pre + "conv1d.bias", {di_});
    Wx_ = t.at(pre + "x_proj.weight", {R_ + 2 * Ns_, di_});
    Wdt_ = t.at(pre + "dt_proj.weight", {di_, R_});
    bdt_ = t.at(pre + "dt_proj.bias", {di_});
    Alog_ = t.at(pre + "A_log", {di_, Ns_});
    D_ = t.at(pre + "D", {di_});
    Wout_ = t.at(pre + "out_proj.weight", {d_, di_});
    if (c.mamba.bias) bout_ = t.at(pre + "out_proj.bias", {d_});
  }
  void plan(DevPlan& a, int64_t Bmax, int64_t Lmax) override {
    const int64_t N = Bmax * Lmax, wd = R_ + 2 * Ns_;
    a.add(&xz_, N * 2 * di_);
    a.add(&xc_, N * di_);
    a.add(&xs_, N * di_);
    a.add(&dbc_, N * wd);
    a.add(&pre_, N * di_);
    a.add(&delta_, N * di_);
    a.add(&ys_, N * di_);
    a.add(&g_, N * di_);
    a.add(&A_, di_ * Ns_);
    a.add(&hsave_, oc::scan_train_saved_floats(int(Bmax), Lmax, di_, int(Ns_), kCkpt));
    a.add(&dxz_, N * 2 * di_);
    a.add(&dxs_, N * di_);
    a.add(&ddbc_, N * wd);
    a.add(&dBC_, N * 2 * Ns_);
    a.add(&dpre_, N * di_);
    a.add(&ddelta_, N * di_);
    a.add(&dys_, N * di_);
    a.add(&dg_, N * di_);
    a.add(&dxc_, N * di_);
    a.add(&dA_, di_ * Ns_);
  }
  void forward(const Ctx& c, const bf16* x, float* out) override {
    const int64_t N = c.N, w2 = 2 * di_, wd = R_ + 2 * Ns_;
    oc::mamba_a_fwd_cuda(Alog_.p, di_ * Ns_, A_, c.stream);
    oc::linear_bf16(x, d_, Win_.b, N, d_, w2, xz_, w2, c.stream);
    if (bin_.p) oc::add_bias_bf16(xz_, w2, bin_.p, N, w2, c.stream);
    oc::conv1d_fwd_train_cuda(xz_, w2, c.B, c.L, di_, cw_.p, int(K_), cb_.p, xc_, di_, c.stream);
    oc::silu_fwd_cuda(xc_, N * di_, xs_, c.stream);
    oc::linear_bf16(xs_, di_, Wx_.b, N, di_, wd, dbc_, wd, c.stream);
    oc::linear_f32(dbc_, wd, Wdt_.b, N, R_, di_, pre_, di_, false, c.stream);
    oc::delta_softplus_fwd_cuda(pre_, bdt_.p, N, di_, delta_, c.stream);
    oc::selective_scan_fwd_train_cuda(scan(c), c.stream);
    oc::gated_silu_cuda(ys_, di_, xz_ + di_, w2, N, di_, g_, di_, c.stream);
    out_proj_fwd(c, g_, di_, Wout_, bout_, d_, out);
  }
  void backward(const Ctx& c, const bf16* x, const bf16* dy, float* dx) override {
    const int64_t N = c.N, w2 = 2 * di_, wd = R_ + 2 * Ns_;
    out_proj_bwd(c, dy, g_, di_, Wout_, bout_, d_, dg_);
    oc::gated_silu_bwd_cuda(dg_, di_, ys_, di_, xz_ + di_, w2, N, di_, dys_, di_, dxz_ + di_, w2, c.stream);
    JRT_CUDA_CHECK(cudaMemsetAsync(dA_, 0, size_t(di_ * Ns_) * sizeof(float), c.stream));
    oc::selective_scan_bwd_train_cuda(scan(c), dys_, di_, dxs_, ddelta_, dBC_, dA_, D_.g, c.stream);
    oc::mamba_a_bwd_cuda(dA_, A_, di_ * Ns_, Alog_.g, c.stream);
    oc::delta_softplus_bwd_cuda(ddelta_, pre_, bdt_.p, N, di_, dpre_, di_, bdt_.g, c.stream);
    // ddbc = [dpre Wdt | dB | dC] (bf16), then back through x_proj into dxs (fp32, on top of the scan's part).
    oc::linear_dx_bf16(dpre_, di_, Wdt_.b, N, R_, di_, ddbc_, wd, c.stream);
    oc::linear_dw(dpre_, di_, dbc_, wd, N, R_, di_, Wdt_.g, c.stream);
    oc::cast_f32_bf16_cuda(dBC_, 2 * Ns_, N, 2 * Ns_, ddbc_ + R_, wd, c.stream);
    oc::linear_dw(ddbc_, wd, xs_, di_, N, di_, wd, Wx_.g, c.stream);
    oc::linear_dx_f32(ddbc_, wd, Wx_.b, N, di_, wd, dxs_, di_, true, c.stream);
    oc::silu_bwd_cuda(dxs_, xc_, N * di_, dxc_, c.stream);
    oc::conv1d_bwd_train_cuda(dxc_, di_, xz_, w2, c.B, c.L, di_, cw_.p, int(K_), dxz_, w2, cw_.g, cb_.g, c.stream);
    if (bin_.g) oc::bias_grad_cuda(dxz_, w2, N, w2, bin_.g, c.stream);
    oc::linear_dw(dxz_, w2, x, d_, N, d_, w2, Win_.g, c.stream);
    oc::linear_dx_f32(dxz_, w2, Win_.b, N, d_, w2, dx, d_, false, c.stream);
  }

 private:
  static constexpr int kCkpt = 16;
  oc::ScanTrainCuda scan(const Ctx& c) const {
    const int64_t wd = R_ + 2 * Ns_;
    oc::ScanTrainCuda s;
    s.x = xs_, s.ldx = di_, s.delta = delta_, s.A = A_;
    s.Bm = dbc_ + R_, s.Cm = dbc_ + R_ + Ns_, s.ldbc = wd;
    s.D = D_.p, s.y = ys_, s.ldy = di_, s.hsave = hsave_;
    s.B = c.B, s.L = c.L, s.di = di_, s.ns = int(Ns_), s.ckpt = kCkpt;
    return s;
  }
  int64_t d_, di_, R_, Ns_, K_;
  DevParam Win_, bin_, cw_, cb_, Wx_, Wdt_, bdt_, Alog_, D_, Wout_, bout_;
  bf16 *xz_ = nullptr, *xc_ = nullptr, *xs_ = nullptr, *dbc_ = nullptr, *ys_ = nullptr, *g_ = nullptr;
  bf16 *dxz_ = nullptr, *ddbc_ = nullptr, *dpre_ = nullptr, *dys_ = nullptr, *dg_ = nullptr, *dxc_ = nullptr;
  float *pre_ = nullptr, *delta_ = nullptr, *A_ = nullptr, *hsave_ = nullptr;
  float *dxs_ = nullptr, *dBC_ = nullptr, *ddelta_ = nullptr, *dA_ = nullptr;
};

// ---- norms -------------------------------------------------------------------------------------------
struct NormG {
  DevParam w, b;
  bool rms = true;
  float eps = 1e-5f;
  void fwd(const Ctx& c, const float* x, int64_t d, bf16* y, float* mean, float* rstd) const {
    oc::norm_fwd_train_cuda(x, w.p, rms ? nullptr : b.p, rms, eps, c.N, d, y, rms ? nullptr : mean, rstd, c.stream);
  }
  // dx += d/dx (into the residual stream's gradient).
  void bwd(const Ctx& c, const float* dy, const float* x, int64_t d, const float* mean, const float* rstd,
           float* dx) const {
    oc::norm_bwd_cuda(dy, x, w.p, rms ? nullptr : mean, rstd, rms, c.N, d, dx, w.g, rms ? nullptr : b.g, c.stream);
  }
};

NormG make_norm(const ModelConfig& c, const DevTable& t, const std::string& name) {
  NormG n;
  n.rms = c.rms_norm;
  n.eps = float(c.norm_eps);
  n.w = t.at(name + ".weight", {c.d_model});
  if (!c.rms_norm && t.has(name + ".bias")) n.b = t.at(name + ".bias", {c.d_model});
  return n;
}

// ---- the engine ---------------------------------------------------------------------------------------
class CudaTrainEngine final : public TrainEngine {
 public:
  CudaTrainEngine(const ModelConfig& c, int64_t max_batch, int64_t max_len, const AdamWConfig& adam)
      // The host model only holds parameters for checkpoints and export: the smallest activation plan.
      : TrainEngine(std::make_unique<TrainModel<float>>(c, 1, 1), adam), Bmax_(max_batch), Lmax_(max_len) {
    JRT_CHECK(max_batch >= 1 && max_len >= 1, "training model: batch {} x length {} must both be >= 1", max_batch,
              max_len);
    JRT_CHECK(c.n_layer == int64_t(c.layers.size()), "training model: config has {} layers but {} mixer kinds",
              c.n_layer, c.layers.size());
    JRT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    span_ = int64_t(host_->params().size());
    P_ = DeviceBuffer<float>(size_t(span_));
    G_ = DeviceBuffer<float>(size_t(span_));
    M_ = DeviceBuffer<float>(size_t(span_));
    V_ = DeviceBuffer<float>(size_t(span_));
    Pb_ = DeviceBuffer<uint16_t>(size_t(span_));
    P_.zero(), G_.zero(), M_.zero(), V_.zero(), Pb_.zero();
    // Weight-decay mask, element by element, as AdamW groups the tensors (buffers and padding: never touched,
    // they also get no gradient).
    std::vector<uint8_t> decay(size_t(span_), 0);
    const auto& specs = host_->specs();
    const AdamWConfig& ac = adam_.config();
    for (size_t i = 0; i < specs.size(); ++i) {
      if (specs[i].role == ParamRole::Buffer) continue;
      const bool dec = ac.weight_decay != 0 && (ac.decay_all || role_decays(specs[i].role));
      std::fill_n(decay.begin() + host_->offset(i), shape_numel(specs[i].shape), uint8_t(dec ? 1 : 0));
    }
    decay_ = DeviceBuffer<uint8_t>(decay.size());
    decay_.upload(decay.data(), decay.size());

    DevTable t;
    for (size_t i = 0; i < specs.size(); ++i) {
      const int64_t o = host_->offset(i);
      t.add(specs[i].name, {P_.get() + o, G_.get() + o, reinterpret_cast<const bf16*>(Pb_.get()) + o}, specs[i].shape);
    }
    const bool mamba = c.arch == Arch::Mamba;
    const int64_t d = c.d_model, V = c.padded_vocab, N = Bmax_ * Lmax_;
    E_ = t.at(mamba ? "backbone.embedding.weight" : "transformer.embeddings.word_embeddings.weight", {V, d});
    normf_ = make_norm(c, t, mamba ? "backbone.norm_f" : "transformer.ln_f");
    if (c.la.use_decay_proj) {
      const int64_t i = host_->find("transformer.decay.decay");
      JRT_CHECK(i >= 0, "{}: use_decay_proj needs the decay rates (transformer.decay.decay)", c.source);
      decay_index_ = i;
      gamma_ = DeviceBuffer<float>(size_t(c.la.num_heads));
    }

    DevPlan plan;
    int64_t Fmax = 0;
    for (int64_t i = 0; i < c.n_layer; ++i) {
      // In place before planning: the plan keeps the addresses of the layer's activation pointers.
      layers_.push_back(std::make_unique<Layer>());
      Layer& ly = *layers_.back();
      const std::string pre = (mamba ? "backbone.layers." : "transformer.layers.") + std::to_string(i) + ".";
      ly.norm1 = make_norm(c, t, pre + (mamba ? "norm" : "norm1"));
      ly.mixer = make_mixer(c, c.layers[size_t(i)], t, pre + "mixer.");
      ly.mixer->plan(plan, Bmax_, Lmax_);
      ly.has_mlp = !mamba && c.mlp_hidden > 0;
      plan.add(&ly.res, N * d);
      plan.add(&ly.h1, N * d);
      plan.add(&ly.mean1, N);
      plan.add(&ly.rstd1, N);
      if (ly.has_mlp) {
        const int64_t F = ly.F = c.mlp_hidden;
        Fmax = std::max(Fmax, F);
        ly.norm2 = make_norm(c, t, pre + "norm2");
        ly.fc1 = t.at(pre + "mlp.fc1.weight", {2 * F, d});
        ly.fc2 = t.at(pre + "mlp.fc2.weight", {d, F});
        if (c.mlp_fc1_bias) ly.b1 = t.at(pre + "mlp.fc1.bias", {2 * F});
        if (c.mlp_fc2_bias) ly.b2 = t.at(pre + "mlp.fc2.bias", {d});
        plan.add(&ly.mid, N * d);
        plan.add(&ly.h2, N * d);
        plan.add(&ly.mean2, N);
        plan.add(&ly.rstd2, N);
        plan.add(&ly.u, N * 2 * F);
        plan.add(&ly.a, N * F);
      }
    }
    plan.add(&res_final_, N * d);
    plan.add(&hf_, N * d);
    plan.add(&mean_f_, N);
    plan.add(&rstd_f_, N);
    plan.add(&logits_, N * V);
    plan.add(&dlogits_, N * V);
    plan.add(&lse_, N);
    plan.add(&row_loss_, N);
    plan.add(&row_scale_, N);
    plan.add(&ids_, N);
    plan.add(&labels_, N);
    plan.add(&pred_, N);
    plan.add(&cu_, Bmax_ + 1);
    plan.add(&sel_, N);
    plan.add(&order_, N);
    plan.add(&chunk_start_, N + 1);
    plan.add(&chunk_id_, N);
    plan.add(&hs_, N * d);
    plan.add(&dhs_, N * d);
    plan.add(&dr_, N * d);
    plan.add(&dh_, N * d);
    plan.add(&dyb_, N * d);
    plan.add(&norm2_, 1);
    if (Fmax > 0) {
      plan.add(&da_, N * Fmax);
      plan.add(&du_, N * 2 * Fmax);
    }
    acts_ = plan.allocate();
    res0_ = layers_.empty() ? res_final_ : layers_[0]->res;
    for (Slot& sl : slots_) {
      sl.ids = PinnedBuffer<int32_t>(size_t(N));
      sl.lab = PinnedBuffer<int32_t>(size_t(N));
      sl.sel = PinnedBuffer<int32_t>(size_t(N));
      sl.order = PinnedBuffer<int32_t>(size_t(N));
      sl.chunk_start = PinnedBuffer<int32_t>(size_t(N + 1));
      sl.chunk_id = PinnedBuffer<int32_t>(size_t(N));
      sl.cu = PinnedBuffer<int32_t>(size_t(Bmax_ + 1));
      sl.scale = PinnedBuffer<float>(size_t(N));
      sl.loss = PinnedBuffer<float>(size_t(N));
      JRT_CUDA_CHECK(cudaEventCreateWithFlags(&sl.done, cudaEventDisableTiming));
    }
    hnorm2_ = PinnedBuffer<double>(size_t(kStepRing));
    for (cudaEvent_t& e : step_done_) JRT_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  }
  ~CudaTrainEngine() override {
    for (cudaEvent_t e : step_done_)
      if (e) cudaEventDestroy(e);
    if (stream_) cudaStreamDestroy(stream_);
  }

  std::string device() const override { return "cuda"; }

  void push() override {
    // The uploads below run on the legacy stream, which does not order against ours.
    JRT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    auto p = host_->params();
    P_.upload(p.data(), p.size());
    M_.upload(adam_.m().data(), size_t(span_));
    V_.upload(adam_.v().data(), size_t(span_));
    std::vector<uint16_t> b(p.size());
    for (size_t i = 0; i < p.size(); ++i) b[i] = f32_to_bf16(p[i]);
    Pb_.upload(b.data(), b.size());
    if (decay_index_ >= 0) {
      auto ld = host_->param(size_t(decay_index_));
      std::vector<float> g(ld.size());
      for (size_t h = 0; h < ld.size(); ++h) g[h] = float(std::exp(double(ld[h])));
      gamma_.upload(g.data(), g.size());
      for (auto& ly : layers_)
        if (auto* la = dynamic_cast<LinearAttnG*>(ly->mixer.get())) la->set_gamma(gamma_.get());
    }
    JRT_CUDA_CHECK(cudaDeviceSynchronize());  // pageable uploads may still be in flight when cudaMemcpy returns
  }
  void pull() override {
    JRT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    auto p = host_->params();
    P_.download(p.data(), p.size());
    M_.download(adam_.m().data(), size_t(span_));
    V_.download(adam_.v().data(), size_t(span_));
  }

  void zero_grad() override { JRT_CUDA_CHECK(cudaMemsetAsync(G_.get(), 0, size_t(span_) * sizeof(float), stream_)); }

  void forward(const int64_t* ids, const int64_t* labels, int64_t B, int64_t L, const Objective& obj) override {
    JRT_CHECK(B >= 1 && B <= Bmax_ && L >= 1 && L <= Lmax_,
              "training model: batch {} x {} tokens does not fit the planned {} x {}", B, L, Bmax_, Lmax_);
    const ModelConfig& cfg = config();
    const int64_t N = B * L, d = cfg.d_model, V = cfg.padded_vocab;
    // A staging slot whose previous use (uploads, loss read-back) the device has finished.
    const size_t si = size_t(nforward_++ % kSlots);
    Slot& sl = slots_[si];
    retire(si);
    B_ = B, L_ = L, obj_ = obj, cur_ = si;
    ctx_ = Ctx{stream_, int(B), L, N, cu_};
    // Host side: check ids / labels, apply the JRT objective's label selection, count each term's rows.
    // Only rows with a label go through the LM head (their hidden rows gathered): the loss and every
    // gradient are the same as over all rows, and MQAR supervises a few rows in a hundred.
    const int64_t E = obj.enc_length > 0 ? std::min(obj.enc_length, L) : 0;
    sl.N = N;
    sl.mlm_weight = obj.enc_length > 0 ? obj.mlm_weight : 0.0;
    sl.n_ntp = sl.n_mlm = sl.Ns = 0;
    sl.is_mlm.clear();
    for (int64_t n = 0; n < N; ++n) {
      JRT_CHECK(ids[n] >= 0 && ids[n] < V,
                "training model: token id {} at position {} is outside the vocabulary [0, {})", ids[n], n, V);
      sl.ids[size_t(n)] = int32_t(ids[n]);
      if (labels[n] == ops::kIgnoreIndex) continue;
      int64_t lab = labels[n];
      const bool mlm = (n % L) < E;
      if (mlm && lab <= 0) lab = ops::kIgnoreIndex;  // the reference selects labels > 0 (models-spec §9)
      JRT_CHECK(lab == ops::kIgnoreIndex || (lab >= 0 && lab < V), "cross-entropy: row {} has label {} outside [0, {})",
                n, labels[n], V);
      sl.sel[size_t(sl.Ns)] = int32_t(n);
      sl.lab[size_t(sl.Ns)] = lab == ops::kIgnoreIndex ? -1 : int32_t(lab);
      sl.is_mlm.push_back(mlm);
      if (lab != ops::kIgnoreIndex) (mlm ? sl.n_mlm : sl.n_ntp) += 1;
      ++sl.Ns;
    }
    for (int64_t b = 0; b <= B; ++b) sl.cu[size_t(b)] = int32_t(b * L);
    // Rows grouped by id (counting sort), in chunks of <= 64 rows, for the embedding backward.
    count_.assign(size_t(V) + 1, 0);
    for (int64_t n = 0; n < N; ++n) ++count_[size_t(ids[n]) + 1];
    for (int64_t v = 0; v < V; ++v) count_[size_t(v) + 1] += count_[size_t(v)];
    for (int64_t n = 0; n < N; ++n) sl.order[size_t(count_[size_t(ids[n])]++)] = int32_t(n);
    sl.nchunk = 0;
    for (int64_t r = 0; r < N;) {
      const int32_t id = sl.ids[size_t(sl.order[size_t(r)])];
      int64_t e = r;
      while (e < N && e - r < 64 && sl.ids[size_t(sl.order[size_t(e)])] == id) ++e;
      sl.chunk_start[size_t(sl.nchunk)] = int32_t(r);
      sl.chunk_id[size_t(sl.nchunk)] = id;
      ++sl.nchunk;
      r = e;
    }
    sl.chunk_start[size_t(sl.nchunk)] = int32_t(N);
    copy_in(ids_, sl.ids.get(), N);
    copy_in(labels_, sl.lab.get(), sl.Ns);
    copy_in(sel_, sl.sel.get(), sl.Ns);
    copy_in(cu_, sl.cu.get(), B + 1);
    copy_in(order_, sl.order.get(), N);
    copy_in(chunk_start_, sl.chunk_start.get(), sl.nchunk + 1);
    copy_in(chunk_id_, sl.chunk_id.get(), sl.nchunk);

    const Ctx& c = ctx_;
    oc::embedding_cuda(ids_, E_.b, N, d, res0_, stream_);
    for (size_t li = 0; li < layers_.size(); ++li) {
      Layer& ly = *layers_[li];
      float* next = li + 1 < layers_.size() ? layers_[li + 1]->res : res_final_;
      float* out = ly.has_mlp ? ly.mid : next;
      ly.norm1.fwd(c, ly.res, d, ly.h1, ly.mean1, ly.rstd1);
      JRT_CUDA_CHECK(cudaMemcpyAsync(out, ly.res, size_t(N * d) * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
      ly.mixer->forward(c, ly.h1, out);
      if (ly.has_mlp) {
        const int64_t F = ly.F;
        ly.norm2.fwd(c, ly.mid, d, ly.h2, ly.mean2, ly.rstd2);
        oc::linear_bf16(ly.h2, d, ly.fc1.b, N, d, 2 * F, ly.u, 2 * F, stream_);
        if (ly.b1.p) oc::add_bias_bf16(ly.u, 2 * F, ly.b1.p, N, 2 * F, stream_);
        oc::swiglu_cuda(ly.u, N, F, ly.a, stream_);
        JRT_CUDA_CHECK(cudaMemcpyAsync(next, ly.mid, size_t(N * d) * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
        oc::linear_f32(ly.a, F, ly.fc2.b, N, F, d, next, d, true, stream_);
        if (ly.b2.p) oc::add_bias_f32(next, d, ly.b2.p, N, d, stream_);
      }
    }
    normf_.fwd(c, res_final_, d, hf_, mean_f_, rstd_f_);
    const int64_t Ns = sl.Ns;
    if (Ns > 0) {
      oc::gather_rows_cuda(hf_, d, sel_, Ns, d, hs_, d, stream_);
      oc::linear_f32(hs_, d, E_.b, Ns, d, V, logits_, V, false, stream_);
      oc::cross_entropy_fwd_cuda(logits_, V, labels_, Ns, V, lse_, row_loss_, stream_);
      JRT_CUDA_CHECK(
          cudaMemcpyAsync(sl.loss.get(), row_loss_, size_t(Ns) * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    }
    JRT_CUDA_CHECK(cudaEventRecord(sl.done, stream_));
    sl.pending = true;
    sl.index = nforward_ - 1;
    have_forward_ = true;
  }

  void backward(double scale) override {
    JRT_CHECK(have_forward_, "training model: backward() without a forward()");
    have_forward_ = false;
    const ModelConfig& cfg = config();
    const int64_t N = B_ * L_, d = cfg.d_model, V = cfg.padded_vocab;
    const Ctx& c = ctx_;
    Slot& sl = slots_[cur_];
    const double s_ntp = sl.n_ntp > 0 ? scale / double(sl.n_ntp) : 0.0;
    const double s_mlm = sl.n_mlm > 0 ? scale * obj_.mlm_weight / double(sl.n_mlm) : 0.0;
    const int64_t Ns = sl.Ns;
    JRT_CUDA_CHECK(cudaMemsetAsync(dh_, 0, size_t(N * d) * sizeof(float), stream_));
    if (Ns > 0) {
      for (int64_t i = 0; i < Ns; ++i) sl.scale[size_t(i)] = float(sl.is_mlm[size_t(i)] ? s_mlm : s_ntp);
      copy_in(row_scale_, sl.scale.get(), Ns);
      oc::cross_entropy_bwd_cuda(logits_, V, labels_, lse_, row_scale_, Ns, V, dlogits_, V, stream_);
      // Tied head on the gathered rows: dhs = dlogits E (scattered back to their rows), dE += dlogits^T hs.
      oc::linear_dx_f32(dlogits_, V, E_.b, Ns, d, V, dhs_, d, false, stream_);
      oc::linear_dw(dlogits_, V, hs_, d, Ns, d, V, E_.g, stream_);
      oc::scatter_rows_f32_cuda(dhs_, d, sel_, Ns, d, dh_, d, stream_);
    }
    JRT_CUDA_CHECK(cudaMemsetAsync(dr_, 0, size_t(N * d) * sizeof(float), stream_));
    normf_.bwd(c, dh_, res_final_, d, mean_f_, rstd_f_, dr_);
    for (size_t li = layers_.size(); li-- > 0;) {
      Layer& ly = *layers_[li];
      if (ly.has_mlp) {
        const int64_t F = ly.F;
        oc::cast_f32_bf16_cuda(dr_, d, N, d, dyb_, d, stream_);
        if (ly.b2.g) oc::bias_grad_cuda(dyb_, d, N, d, ly.b2.g, stream_);
        oc::linear_dx_bf16(dyb_, d, ly.fc2.b, N, F, d, da_, F, stream_);
        oc::linear_dw(dyb_, d, ly.a, F, N, F, d, ly.fc2.g, stream_);
        oc::swiglu_bwd_cuda(da_, ly.u, N, F, du_, stream_);
        if (ly.b1.g) oc::bias_grad_cuda(du_, 2 * F, N, 2 * F, ly.b1.g, stream_);
        oc::linear_dw(du_, 2 * F, ly.h2, d, N, d, 2 * F, ly.fc1.g, stream_);
        oc::linear_dx_f32(du_, 2 * F, ly.fc1.b, N, d, 2 * F, dh_, d, false, stream_);
        ly.norm2.bwd(c, dh_, ly.mid, d, ly.mean2, ly.rstd2, dr_);
      }
      oc::cast_f32_bf16_cuda(dr_, d, N, d, dyb_, d, stream_);
      ly.mixer->backward(c, ly.h1, dyb_, dh_);
      ly.norm1.bwd(c, dh_, ly.res, d, ly.mean1, ly.rstd1, dr_);
    }
    oc::embedding_bwd_grouped_cuda(order_, chunk_start_, chunk_id_, sl.nchunk, dr_, d, E_.g, stream_);
    JRT_CUDA_CHECK(cudaEventRecord(sl.done, stream_));  // the slot's row scales are read by now
  }

  // Clipping and AdamW entirely on the device: the squared norm feeds the clip factor inside the update.
  // One launch over the whole flat buffer: buffers and alignment padding have zero gradient, zero moments and
  // no decay, so the update leaves them exactly as they are.
  void step(double lr, double max_norm) override {
    JRT_CHECK(int64_t(steps_.size()) < kStepRing,
              "training engine: {} optimizer steps are untaken (take_step() each, or take_losses())", steps_.size());
    const int ring = int(nsteps_++ % kStepRing);
    JRT_CUDA_CHECK(cudaMemsetAsync(norm2_, 0, sizeof(double), stream_));
    oc::sum_squares_cuda(G_.get(), span_, norm2_, stream_);
    JRT_CUDA_CHECK(cudaMemcpyAsync(hnorm2_.get() + ring, norm2_, sizeof(double), cudaMemcpyDeviceToHost, stream_));
    adam_.set_t(adam_.t() + 1);
    const AdamWConfig& ac = adam_.config();
    const double bc1 = 1.0 - std::pow(ac.beta1, double(adam_.t())), bc2 = 1.0 - std::pow(ac.beta2, double(adam_.t()));
    oc::AdamCudaArgs a;
    a.p = P_.get();
    a.g = G_.get();
    a.m = M_.get();
    a.v = V_.get();
    a.decay = decay_.get();
    a.p_bf16 = reinterpret_cast<bf16*>(Pb_.get());
    a.n = span_;
    a.lr = float(lr);
    a.wd = float(ac.weight_decay);
    a.beta1 = float(ac.beta1);
    a.beta2 = float(ac.beta2);
    a.eps = float(ac.eps);
    a.step_size = float(lr / bc1);
    a.inv_sqrt_bc2 = float(1.0 / std::sqrt(bc2));
    a.norm2 = norm2_;
    a.max_norm = float(max_norm);
    oc::adamw_cuda(a, stream_);
    JRT_CUDA_CHECK(cudaEventRecord(step_done_[ring], stream_));
    steps_.push_back({nforward_, ring});
    last_ring_ = ring;
    norm_pending_ = true;
  }

  // Waits for the oldest untaken step only: the caller may have enqueued the next one already.
  StepResult take_step() override {
    JRT_CHECK(!steps_.empty(), "training engine: take_step() without an untaken optimizer step");
    const StepRec rec = steps_.front();
    steps_.pop_front();
    JRT_CUDA_CHECK(cudaEventSynchronize(step_done_[rec.ring]));
    for (int64_t k = std::max<int64_t>(0, nforward_ - kSlots); k < rec.forward_end; ++k) {
      const size_t si = size_t(k % kSlots);
      if (slots_[si].pending && slots_[si].index == k) retire(si);
    }
    StepResult r;
    for (auto it = ready_.begin(); it != ready_.end() && it->first < rec.forward_end;) {
      r.losses.push_back(it->second);
      it = ready_.erase(it);
    }
    r.grad_norm = std::sqrt(hnorm2_.get()[rec.ring]);
    return r;
  }

  std::vector<LossParts> take_losses() override {
    JRT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    for (int64_t k = std::max<int64_t>(0, nforward_ - kSlots); k < nforward_; ++k) retire(size_t(k % kSlots));
    steps_.clear();
    std::vector<LossParts> out;
    for (const auto& [index, lp] : ready_) out.push_back(lp);
    ready_.clear();
    return out;
  }

  double last_grad_norm() override {
    if (norm_pending_) {
      JRT_CUDA_CHECK(cudaStreamSynchronize(stream_));
      norm_ = std::sqrt(hnorm2_.get()[last_ring_]);
      norm_pending_ = false;
    }
    steps_.clear();  // their losses stay for take_losses()
    return norm_;
  }

  // Rows without a label get -1 (the head only ran on labelled rows).
  void predictions(std::vector<int32_t>& out) override {
    const Slot& sl = slots_[cur_];
    out.assign(size_t(B_ * L_), -1);
    if (sl.Ns == 0) return;
    oc::argmax_cuda(logits_, sl.Ns, config().padded_vocab, pred_, stream_);
    hpred_.resize(size_t(sl.Ns));
    JRT_CUDA_CHECK(
        cudaMemcpyAsync(hpred_.data(), pred_, size_t(sl.Ns) * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
    JRT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    for (int64_t i = 0; i < sl.Ns; ++i) out[size_t(sl.sel[size_t(i)])] = hpred_[size_t(i)];
  }

  void pull_grads() override {
    JRT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    auto g = host_->grads();
    G_.download(g.data(), g.size());
  }

 private:
  struct Layer {
    NormG norm1, norm2;
    std::unique_ptr<GpuMixer> mixer;
    bool has_mlp = false;
    int64_t F = 0;
    DevParam fc1, fc2, b1, b2;
    float *res = nullptr, *mean1 = nullptr, *rstd1 = nullptr, *mid = nullptr, *mean2 = nullptr, *rstd2 = nullptr;
    bf16 *h1 = nullptr, *h2 = nullptr, *u = nullptr, *a = nullptr;
  };

  static std::unique_ptr<GpuMixer> make_mixer(const ModelConfig& c, MixerKind kind, const DevTable& t,
                                              const std::string& pre) {
    switch (kind) {
      case MixerKind::BaseConv:
        return std::make_unique<BaseConvG>(c, t, pre);
      case MixerKind::LinearAttn:
        return std::make_unique<LinearAttnG>(c, t, pre, false, c.la.use_decay_proj);
      case MixerKind::PrefixLinearAttn:
        return std::make_unique<LinearAttnG>(c, t, pre, true, false);
      case MixerKind::SlidingAttn:
        return std::make_unique<AttentionG>(c, t, pre, c.swa.num_heads, c.swa.head_dim, c.swa.left_window());
      case MixerKind::MHA:
        return std::make_unique<AttentionG>(c, t, pre, c.attn.num_heads, c.attn.head_dim, -1);
      case MixerKind::Mamba:
        return std::make_unique<MambaG>(c, t, pre);
    }
    fail("GPU training model: unknown mixer kind");
  }
  template <class T>
  void copy_in(T* dst, const T* src, int64_t n) {
    JRT_CUDA_CHECK(cudaMemcpyAsync(dst, src, size_t(n) * sizeof(T), cudaMemcpyHostToDevice, stream_));
  }

  int64_t Bmax_, Lmax_, span_ = 0;
  cudaStream_t stream_ = nullptr;
  DeviceBuffer<float> P_, G_, M_, V_, gamma_;
  DeviceBuffer<uint16_t> Pb_;
  DeviceBuffer<uint8_t> decay_, acts_;
  int64_t decay_index_ = -1;
  DevParam E_;
  NormG normf_;
  std::vector<std::unique_ptr<Layer>> layers_;
  float *res0_ = nullptr, *res_final_ = nullptr, *mean_f_ = nullptr, *rstd_f_ = nullptr, *logits_ = nullptr;
  float *lse_ = nullptr, *row_loss_ = nullptr, *row_scale_ = nullptr, *dr_ = nullptr, *dh_ = nullptr;
  bf16 *hf_ = nullptr, *dlogits_ = nullptr, *dyb_ = nullptr, *da_ = nullptr, *du_ = nullptr;
  int32_t *ids_ = nullptr, *labels_ = nullptr, *pred_ = nullptr, *cu_ = nullptr, *sel_ = nullptr;
  int32_t *order_ = nullptr, *chunk_start_ = nullptr, *chunk_id_ = nullptr;
  bf16* hs_ = nullptr;    // final-norm rows of the labelled rows [Ns, d]
  float* dhs_ = nullptr;  // their gradient
  std::vector<int64_t> count_;
  std::vector<int32_t> hpred_;
  double* norm2_ = nullptr;
  // Host staging of one forward / backward in pinned memory (asynchronous copies): ids, labels, offsets, row
  // scales in; per-row losses out. A ring of slots lets several micro-batches be in flight; a slot is reused
  // only after its event (recorded after its last copy) has completed, and its losses are read then.
  static constexpr int64_t kSlots = 4;
  struct Slot {
    PinnedBuffer<int32_t> ids, lab, sel, cu, order, chunk_start, chunk_id;
    PinnedBuffer<float> scale, loss;
    cudaEvent_t done = nullptr;
    std::vector<uint8_t> is_mlm;  // per labelled row
    int64_t N = 0, Ns = 0, nchunk = 0, n_ntp = 0, n_mlm = 0;
    double mlm_weight = 0;
    bool pending = false;  // losses not yet read
    int64_t index = -1;    // the forward (count from 0) whose losses these are
    Slot() = default;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() {
      if (done) cudaEventDestroy(done);
    }
  };
  // Waits for slot i's last use and moves its pending losses to ready_ (keyed by forward index).
  void retire(size_t i) {
    Slot& sl = slots_[i];
    JRT_CUDA_CHECK(cudaEventSynchronize(sl.done));
    if (!sl.pending) return;
    sl.pending = false;
    double sum_ntp = 0, sum_mlm = 0;
    for (int64_t i = 0; i < sl.Ns; ++i) (sl.is_mlm[size_t(i)] ? sum_mlm : sum_ntp) += double(sl.loss.get()[i]);
    LossParts lp;
    lp.n_ntp = sl.n_ntp, lp.n_mlm = sl.n_mlm;
    lp.ntp = sl.n_ntp > 0 ? sum_ntp / double(sl.n_ntp) : 0.0;
    lp.mlm = sl.n_mlm > 0 ? sum_mlm / double(sl.n_mlm) : 0.0;
    lp.loss = lp.ntp + sl.mlm_weight * lp.mlm;
    ready_.emplace(sl.index, lp);
  }

  // Last forward.
  int64_t B_ = 0, L_ = 0, nforward_ = 0;
  size_t cur_ = 0;
  Objective obj_;
  Ctx ctx_;
  bool have_forward_ = false, norm_pending_ = false;
  double norm_ = 0;
  Slot slots_[kSlots];
  // Optimizer steps in flight: each writes its squared gradient norm to its own pinned entry and records its
  // own event, so step s can be read back while step s + 1 runs.
  static constexpr int64_t kStepRing = kMaxUntakenSteps;
  struct StepRec {
    int64_t forward_end;  // forwards [previous step's end, forward_end) belong to this step
    int ring;
  };
  std::deque<StepRec> steps_;
  cudaEvent_t step_done_[kStepRing] = {};
  int64_t nsteps_ = 0;
  int last_ring_ = 0;
  PinnedBuffer<double> hnorm2_;
  std::map<int64_t, LossParts> ready_;
};

}  // namespace

std::unique_ptr<TrainEngine> make_cuda_train_engine(const ModelConfig& c, int64_t max_batch, int64_t max_len,
                                                    const AdamWConfig& adam) {
  check_train_device("cuda", c);
  return std::make_unique<CudaTrainEngine>(c, max_batch, max_len, adam);
}

}  // namespace jrt
#endif
