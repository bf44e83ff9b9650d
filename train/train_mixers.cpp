// train/train_mixers.cpp — training forward / backward of every mixer (see train_mixers.h). The math is
// the inference mixers' (models/*.cpp, models-spec §4-§5) on whole sequences from a fresh state; every
// step is an op from ops/ (linear, conv, gated SiLU, rotary, attention, linear attention, selective scan)
// so that this file only wires shapes, saved activations and the order of the backward.
#include "train/train_mixers.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/threads.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/causal_conv1d.h"
#include "ops/linear.h"
#include "ops/linear_attention.h"
#include "ops/rotary.h"
#include "ops/selective_scan.h"
#include "ops/taylor.h"

namespace jrt::train_detail {
namespace {

template <class T>
void zero(T* p, int64_t n) {
  std::fill(p, p + n, T(0));
}

// ---- BaseConv (models-spec §5.2) -------------------------------------------------------------------
//   u = in_proj(x) [N, 2di];  c = causal_conv(u[:, :di]);  g = silu(c) * u[:, di:];  y = out_proj(g)
template <class T>
class BaseConvT final : public TrainMixer<T> {
 public:
  BaseConvT(const ModelConfig& c, const ParamTable<T>& pt, const std::string& pre)
      : d_(c.d_model), K_(c.conv.kernel_size), di_(c.conv.expand_proj * c.d_model / 2) {
    auto& wi = pt.at(pre + "in_proj.weight", {2 * di_, d_});
    auto& wo = pt.at(pre + "out_proj.weight", {d_, di_});
    auto& cw = pt.at(pre + "conv.conv.weight", {di_, 1, K_});
    Wi_ = wi.p, dWi_ = wi.g, Wo_ = wo.p, dWo_ = wo.g, cw_ = cw.p, dcw_ = cw.g;
    if (c.conv.use_bias) {
      auto& bi = pt.at(pre + "in_proj.bias", {2 * di_});
      auto& bo = pt.at(pre + "out_proj.bias", {d_});
      bi_ = bi.p, dbi_ = bi.g, bo_ = bo.p, dbo_ = bo.g;
    }
  }
  void plan(ActPlan<T>& a, int64_t Bmax, int64_t Lmax) override {
    const int64_t N = Bmax * Lmax;
    a.add(&u_, N * 2 * di_);
    a.add(&c_, N * di_);
    a.add(&g_, N * di_);
    a.add(&du_, N * 2 * di_);
    a.add(&dg_, N * di_);
    a.add(&dc_, N * di_);
  }
  void forward(const T* x, T* y, int64_t B, int64_t L) override {
    const int64_t N = B * L, w = 2 * di_;
    ops::linear_fwd_t<T>(x, N, d_, Wi_, bi_, w, u_);
    for (int64_t b = 0; b < B; ++b)
      ops::causal_conv1d_fwd_t<T>(u_ + b * L * w, w, L, di_, cw_, K_, nullptr, c_ + b * L * di_, di_);
    ops::gated_silu_fwd_t<T>(u_ + di_, w, c_, di_, N, di_, g_, di_);
    ops::linear_fwd_t<T>(g_, N, di_, Wo_, bo_, d_, y);
  }
  void backward(const T* x, const T* dy, T* dx, int64_t B, int64_t L) override {
    const int64_t N = B * L, w = 2 * di_;
    ops::linear_bwd_t<T>(dy, g_, Wo_, N, di_, d_, dg_, dWo_, dbo_);
    ops::gated_silu_bwd_t<T>(dg_, di_, u_ + di_, w, c_, di_, N, di_, du_ + di_, w, dc_, di_);
    for (int64_t b = 0; b < B; ++b)
      ops::causal_conv1d_bwd_t<T>(dc_ + b * L * di_, di_, u_ + b * L * w, w, L, di_, cw_, K_, du_ + b * L * w, w, dcw_,
                                  nullptr);
    ops::linear_bwd_t<T>(du_, x, Wi_, N, d_, w, dx, dWi_, dbi_);
  }

 private:
  int64_t d_, K_, di_;
  const T *Wi_, *Wo_, *cw_, *bi_ = nullptr, *bo_ = nullptr;
  T *dWi_, *dWo_, *dcw_, *dbi_ = nullptr, *dbo_ = nullptr;
  T *u_ = nullptr, *c_ = nullptr, *g_ = nullptr, *du_ = nullptr, *dg_ = nullptr, *dc_ = nullptr;
};

// ---- Softmax attention: SlidingAttention and MHA (models-spec §5.3-§5.5) -----------------------------
//   qkv = x Wqkv^T (+b); rotary on q, k at positions 0..L-1; o = softmax attention per head; y = o Wo^T (+b)
template <class T>
class AttentionT final : public TrainMixer<T> {
 public:
  AttentionT(const ModelConfig& c, const ParamTable<T>& pt, const std::string& pre, int64_t heads, int64_t head_dim,
             int64_t left_window)
      : d_(c.d_model), H_(heads), hd_(head_dim > 0 ? head_dim : c.d_model / heads), window_(left_window) {
    inner_ = H_ * hd_;
    rot_ = ops::Rotary(int64_t(c.rotary_fraction * double(hd_)), c.rotary_base);
    JRT_CHECK(rot_.rotated() <= hd_, "attention: rotary dim {} exceeds head dim {}", rot_.rotated(), hd_);
    scale_ = T(1.0 / std::sqrt(double(hd_)));
    auto& wq = pt.at(pre + "Wqkv.weight", {3 * inner_, d_});
    auto& wo = pt.at(pre + "out_proj.weight", {d_, inner_});
    Wqkv_ = wq.p, dWqkv_ = wq.g, Wo_ = wo.p, dWo_ = wo.g;
    if (c.qkv_proj_bias) {
      auto& b = pt.at(pre + "Wqkv.bias", {3 * inner_});
      bqkv_ = b.p, dbqkv_ = b.g;
    }
    if (c.out_proj_bias) {
      auto& b = pt.at(pre + "out_proj.bias", {d_});
      bo_ = b.p, dbo_ = b.g;
    }
  }
  void plan(ActPlan<T>& a, int64_t Bmax, int64_t Lmax) override {
    const int64_t N = Bmax * Lmax;
    a.add(&qkv_, N * 3 * inner_);
    a.add(&o_, N * inner_);
    a.add(&lse_, N * H_);
    a.add(&dqkv_, N * 3 * inner_);
    a.add(&do_, N * inner_);
    pos_.resize(size_t(N));
  }
  void forward(const T* x, T* y, int64_t B, int64_t L) override {
    const int64_t N = B * L, w3 = 3 * inner_;
    ops::linear_fwd_t<T>(x, N, d_, Wqkv_, bqkv_, w3, qkv_);
    for (int64_t n = 0; n < N; ++n) pos_[size_t(n)] = n % L;
    rot_.forward_t<T>(qkv_, w3, N, 2 * H_, hd_, std::span<const int64_t>(pos_.data(), size_t(N)));
    parallel_for(B * H_, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t b = i / H_, h = i % H_;
        ops::attention_fwd_t<T>(head(b, h, L), o_ + b * L * inner_ + h * hd_, inner_, lse_ + (b * H_ + h) * L);
      }
    });
    ops::linear_fwd_t<T>(o_, N, inner_, Wo_, bo_, d_, y);
  }
  void backward(const T* x, const T* dy, T* dx, int64_t B, int64_t L) override {
    const int64_t N = B * L, w3 = 3 * inner_;
    ops::linear_bwd_t<T>(dy, o_, Wo_, N, inner_, d_, do_, dWo_, dbo_);
    parallel_for(B * H_, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t b = i / H_, h = i % H_;
        T* dq = dqkv_ + b * L * w3 + h * hd_;
        ops::attention_bwd_t<T>(head(b, h, L), o_ + b * L * inner_ + h * hd_, inner_, lse_ + (b * H_ + h) * L,
                                do_ + b * L * inner_ + h * hd_, inner_, dq, w3, dq + inner_, w3, dq + 2 * inner_, w3);
      }
    });
    rot_.backward_t<T>(dqkv_, w3, N, 2 * H_, hd_, std::span<const int64_t>(pos_.data(), size_t(N)));
    ops::linear_bwd_t<T>(dqkv_, x, Wqkv_, N, d_, w3, dx, dWqkv_, dbqkv_);
  }

 private:
  ops::AttnTrainHead<T> head(int64_t b, int64_t h, int64_t L) const {
    const int64_t w3 = 3 * inner_;
    ops::AttnTrainHead<T> a;
    a.q = qkv_ + b * L * w3 + h * hd_;
    a.k = a.q + inner_;
    a.v = a.q + 2 * inner_;
    a.ldq = a.ldk = a.ldv = w3;
    a.L = L;
    a.hd = hd_;
    a.left_window = window_;
    a.scale = scale_;
    return a;
  }
  int64_t d_, H_, hd_, window_, inner_ = 0;
  ops::Rotary rot_;
  T scale_;
  const T *Wqkv_, *Wo_, *bqkv_ = nullptr, *bo_ = nullptr;
  T *dWqkv_, *dWo_, *dbqkv_ = nullptr, *dbo_ = nullptr;
  T *qkv_ = nullptr, *o_ = nullptr, *lse_ = nullptr, *dqkv_ = nullptr, *do_ = nullptr;
  std::vector<int64_t> pos_;
};

// ---- Taylor linear attention: Based LinearAttention (§4, optional fixed decay §4.3) and JRT's
// PrefixLinearAttention (§5.1: causal LA started from the non-causal summary of the first
// M = min(enc_length, L) tokens made with proj_k_enc / proj_v_enc). Training never applies the padding
// mask (the reference only applies it to calls of at most enc_length tokens, §5.1.3).
template <class T>
class LinearAttnT final : public TrainMixer<T> {
 public:
  LinearAttnT(const ModelConfig& c, const ParamTable<T>& pt, const std::string& pre, bool prefix, const T* log_decay)
      : d_(c.d_model),
        H_(c.la.num_heads),
        fd_(c.la.feature_dim),
        hd_(c.la.head_dim),
        D_(ops::taylor_dim(c.la.feature_dim)),
        eps_(c.la.eps),
        prefix_(prefix),
        enc_(c.la.enc_length) {
    auto get = [&](const char* n, Shape s, const T** p, T** g) {
      auto& e = pt.at(pre + n, s);
      *p = e.p;
      *g = e.g;
    };
    get("proj_q.weight", {H_ * fd_, d_}, &Wq_, &dWq_);
    get("proj_k.weight", {H_ * fd_, d_}, &Wk_, &dWk_);
    get("proj_v.weight", {H_ * hd_, d_}, &Wv_, &dWv_);
    get("out_proj.weight", {d_, H_ * hd_}, &Wo_, &dWo_);
    if (prefix_) {
      get("proj_k_enc.weight", {H_ * fd_, d_}, &Wke_, &dWke_);
      get("proj_v_enc.weight", {H_ * hd_, d_}, &Wve_, &dWve_);
    }
    if (!prefix_ && c.la.use_decay_proj) {
      JRT_CHECK(log_decay != nullptr, "{}: use_decay_proj needs the decay rates (fixed_decay)", c.source);
      get("decay_proj.weight", {H_, d_}, &Wdt_, &dWdt_);
      log_decay_ = log_decay;
    }
  }
  void plan(ActPlan<T>& a, int64_t Bmax, int64_t Lmax) override {
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
    if (Wdt_) {
      a.add(&dt_, N * H_);
      a.add(&u_, N * wv);
      a.add(&ddt_, N * H_);
    }
    if (prefix_) {
      // B sequences of M <= L prefix rows fit in N rows.
      a.add(&ke_, N * wq);
      a.add(&ve_, N * wv);
      a.add(&dke_, N * wq);
      a.add(&dve_, N * wv);
      a.add(&S0_, Bmax * H_ * D_ * hd_);
      a.add(&z0_, Bmax * H_ * D_);
      a.add(&dS0_, Bmax * H_ * D_ * hd_);
      a.add(&dz0_, Bmax * H_ * D_);
    }
  }
  void forward(const T* x, T* y, int64_t B, int64_t L) override {
    const int64_t N = B * L, wq = H_ * fd_, wv = H_ * hd_;
    ops::linear_fwd_t<T>(x, N, d_, Wq_, nullptr, wq, q_);
    ops::linear_fwd_t<T>(x, N, d_, Wk_, nullptr, wq, k_);
    ops::linear_fwd_t<T>(x, N, d_, Wv_, nullptr, wv, v_);
    if (Wdt_) ops::linear_fwd_t<T>(x, N, d_, Wdt_, nullptr, H_, dt_);
    const int64_t M = prefix_ ? std::min(enc_, L) : 0;
    if (prefix_) {
      for (int64_t b = 0; b < B; ++b) {
        ops::linear_fwd_t<T>(x + b * L * d_, M, d_, Wke_, nullptr, wq, ke_ + b * M * wq);
        ops::linear_fwd_t<T>(x + b * L * d_, M, d_, Wve_, nullptr, wv, ve_ + b * M * wv);
      }
    }
    parallel_for(B * H_, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t b = i / H_, h = i % H_;
        ops::LaTrainHead<T> hh = head(b, h, L);
        if (prefix_) {
          T* S0 = S0_ + i * D_ * hd_;
          T* z0 = z0_ + i * D_;
          zero(S0, D_ * hd_);
          zero(z0, D_);
          ops::la_accumulate_state_t<T>(ke_ + b * M * wq + h * fd_, wq, ve_ + b * M * wv + h * hd_, wv, M, fd_, hd_, S0,
                                        z0);
        }
        ops::la_fwd_t<T>(hh);
      }
    });
    ops::linear_fwd_t<T>(o_, N, wv, Wo_, nullptr, d_, y);
  }
  void backward(const T* x, const T* dy, T* dx, int64_t B, int64_t L) override {
    const int64_t N = B * L, wq = H_ * fd_, wv = H_ * hd_;
    const int64_t M = prefix_ ? std::min(enc_, L) : 0;
    ops::linear_bwd_t<T>(dy, o_, Wo_, N, wv, d_, do_, dWo_, nullptr);
    parallel_for(B * H_, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const int64_t b = i / H_, h = i % H_;
        ops::LaTrainHead<T> hh = head(b, h, L);
        ops::LaTrainGrads<T> g;
        g.dq = dq_ + b * L * wq + h * fd_;
        g.lddq = wq;
        g.dk = dk_ + b * L * wq + h * fd_;
        g.lddk = wq;
        g.dv = dv_ + b * L * wv + h * hd_;
        g.lddv = wv;
        if (Wdt_) {
          g.ddt = ddt_ + b * L * H_ + h;
          g.ldddt = H_;
        }
        if (prefix_) {
          g.dS0 = dS0_ + i * D_ * hd_;
          g.dz0 = dz0_ + i * D_;
        }
        ops::la_bwd_t<T>(hh, do_ + b * L * wv + h * hd_, wv, g);
        if (prefix_)
          ops::la_accumulate_state_bwd_t<T>(ke_ + b * M * wq + h * fd_, wq, ve_ + b * M * wv + h * hd_, wv, M, fd_, hd_,
                                            g.dS0, g.dz0, dke_ + b * M * wq + h * fd_, wq, dve_ + b * M * wv + h * hd_,
                                            wv);
      }
    });
    ops::linear_bwd_t<T>(dq_, x, Wq_, N, d_, wq, dx, dWq_, nullptr);
    ops::linear_bwd_t<T>(dk_, x, Wk_, N, d_, wq, dx, dWk_, nullptr, -1, -1, -1, true);
    ops::linear_bwd_t<T>(dv_, x, Wv_, N, d_, wv, dx, dWv_, nullptr, -1, -1, -1, true);
    if (Wdt_) ops::linear_bwd_t<T>(ddt_, x, Wdt_, N, d_, H_, dx, dWdt_, nullptr, -1, -1, -1, true);
    if (prefix_) {
      for (int64_t b = 0; b < B; ++b) {
        ops::linear_bwd_t<T>(dke_ + b * M * wq, x + b * L * d_, Wke_, M, d_, wq, dx + b * L * d_, dWke_, nullptr, -1,
                             -1, -1, true);
        ops::linear_bwd_t<T>(dve_ + b * M * wv, x + b * L * d_, Wve_, M, d_, wv, dx + b * L * d_, dWve_, nullptr, -1,
                             -1, -1, true);
      }
    }
  }

 private:
  ops::LaTrainHead<T> head(int64_t b, int64_t h, int64_t L) const {
    const int64_t wq = H_ * fd_, wv = H_ * hd_;
    ops::LaTrainHead<T> a;
    a.q = q_ + b * L * wq + h * fd_;
    a.ldq = wq;
    a.k = k_ + b * L * wq + h * fd_;
    a.ldk = wq;
    a.v = v_ + b * L * wv + h * hd_;
    a.ldv = wv;
    a.y = o_ + b * L * wv + h * hd_;
    a.ldy = wv;
    a.den = den_ + (b * H_ + h) * L;
    if (Wdt_) {
      a.dt = dt_ + b * L * H_ + h;
      a.lddt = H_;
      a.u = u_ + b * L * wv + h * hd_;
      a.ldu = wv;
      a.gamma = std::exp(double(log_decay_[h]));
    }
    if (prefix_) {
      a.S0 = S0_ + (b * H_ + h) * D_ * hd_;
      a.z0 = z0_ + (b * H_ + h) * D_;
    }
    a.L = L;
    a.fd = fd_;
    a.dv = hd_;
    a.eps = eps_;
    return a;
  }
  int64_t d_, H_, fd_, hd_, D_;
  double eps_;
  bool prefix_;
  int64_t enc_;
  const T *Wq_, *Wk_, *Wv_, *Wo_, *Wke_ = nullptr, *Wve_ = nullptr, *Wdt_ = nullptr, *log_decay_ = nullptr;
  T *dWq_, *dWk_, *dWv_, *dWo_, *dWke_ = nullptr, *dWve_ = nullptr, *dWdt_ = nullptr;
  T *q_ = nullptr, *k_ = nullptr, *v_ = nullptr, *o_ = nullptr, *den_ = nullptr;
  T *dq_ = nullptr, *dk_ = nullptr, *dv_ = nullptr, *do_ = nullptr;
  T *dt_ = nullptr, *u_ = nullptr, *ddt_ = nullptr;
  T *ke_ = nullptr, *ve_ = nullptr, *dke_ = nullptr, *dve_ = nullptr;
  T *S0_ = nullptr, *z0_ = nullptr, *dS0_ = nullptr, *dz0_ = nullptr;
};

// ---- Mamba (models-spec §5.6) ---------------------------------------------------------------------
//   xz = in_proj(x); xs = silu(conv(xz[:, :di]) + b); dbc = x_proj(xs) = [dt_raw | B | C];
//   delta = softplus(dt_proj(dt_raw) + dt_bias); ys = scan(xs, delta, A = -exp(A_log), B, C, D);
//   y = out_proj(ys * silu(z))
template <class T>
class MambaT final : public TrainMixer<T> {
 public:
  MambaT(const ModelConfig& c, const ParamTable<T>& pt, const std::string& pre)
      : d_(c.d_model), di_(c.mamba.d_inner), R_(c.mamba.dt_rank), Ns_(c.mamba.d_state), K_(c.mamba.d_conv) {
    auto get = [&](const char* n, Shape s, const T** p, T** g) {
      auto& e = pt.at(pre + n, s);
      *p = e.p;
      *g = e.g;
    };
    get("in_proj.weight", {2 * di_, d_}, &Win_, &dWin_);
    if (c.mamba.bias) get("in_proj.bias", {2 * di_}, &bin_, &dbin_);
    get("conv1d.weight", {di_, 1, K_}, &cw_, &dcw_);
    if (c.mamba.conv_bias) get("conv1d.bias", {di_}, &cb_, &dcb_);
    get("x_proj.weight", {R_ + 2 * Ns_, di_}, &Wx_, &dWx_);
    get("dt_proj.weight", {di_, R_}, &Wdt_, &dWdt_);
    get("dt_proj.bias", {di_}, &bdt_, &dbdt_);
    get("A_log", {di_, Ns_}, &Alog_, &dAlog_);
    get("D", {di_}, &D_, &dD_);
    get("out_proj.weight", {d_, di_}, &Wout_, &dWout_);
    if (c.mamba.bias) get("out_proj.bias", {d_}, &bout_, &dbout_);
  }
  void plan(ActPlan<T>& a, int64_t Bmax, int64_t Lmax) override {
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
    a.add(&hsave_, Bmax * ops::scan_saved_states(Lmax, kCkpt) * di_ * Ns_);
    a.add(&dxz_, N * 2 * di_);
    a.add(&dxs_, N * di_);
    a.add(&ddbc_, N * wd);
    a.add(&dpre_, N * di_);
    a.add(&ddelta_, N * di_);
    a.add(&dys_, N * di_);
    a.add(&dg_, N * di_);
    a.add(&dxc_, N * di_);
    a.add(&dA_, di_ * Ns_);
  }
  void forward(const T* x, T* y, int64_t B, int64_t L) override {
    const int64_t N = B * L, w2 = 2 * di_, wd = R_ + 2 * Ns_;
    for (int64_t i = 0; i < di_ * Ns_; ++i) A_[i] = -std::exp(Alog_[i]);
    ops::linear_fwd_t<T>(x, N, d_, Win_, bin_, w2, xz_);
    for (int64_t b = 0; b < B; ++b)
      ops::causal_conv1d_fwd_t<T>(xz_ + b * L * w2, w2, L, di_, cw_, K_, cb_, xc_ + b * L * di_, di_);
    ops::silu_fwd_t<T>(xc_, N * di_, xs_);
    ops::linear_fwd_t<T>(xs_, N, di_, Wx_, nullptr, wd, dbc_);
    ops::linear_fwd_t<T>(dbc_, N, R_, Wdt_, nullptr, di_, pre_, wd, di_);
    ops::delta_softplus_fwd_t<T>(pre_, di_, bdt_, N, di_, delta_, di_);
    for (int64_t b = 0; b < B; ++b) ops::selective_scan_fwd_t<T>(scan(b, L));
    ops::gated_silu_fwd_t<T>(ys_, di_, xz_ + di_, w2, N, di_, g_, di_);
    ops::linear_fwd_t<T>(g_, N, di_, Wout_, bout_, d_, y);
  }
  void backward(const T* x, const T* dy, T* dx, int64_t B, int64_t L) override {
    const int64_t N = B * L, w2 = 2 * di_, wd = R_ + 2 * Ns_;
    ops::linear_bwd_t<T>(dy, g_, Wout_, N, di_, d_, dg_, dWout_, dbout_);
    ops::gated_silu_bwd_t<T>(dg_, di_, ys_, di_, xz_ + di_, w2, N, di_, dys_, di_, dxz_ + di_, w2);
    zero(dA_, di_ * Ns_);
    for (int64_t b = 0; b < B; ++b) {
      ops::ScanGrads<T> g;
      g.dx = dxs_ + b * L * di_;
      g.lddx = di_;
      g.ddelta = ddelta_ + b * L * di_;
      g.lddd = di_;
      g.dB = ddbc_ + b * L * wd + R_;
      g.lddb = wd;
      g.dC = ddbc_ + b * L * wd + R_ + Ns_;
      g.lddc = wd;
      g.dA = dA_;
      g.dD = dD_;
      ops::selective_scan_bwd_t<T>(scan(b, L), dys_ + b * L * di_, di_, g);
    }
    for (int64_t i = 0; i < di_ * Ns_; ++i) dAlog_[i] += dA_[i] * A_[i];  // A = -exp(A_log)
    ops::delta_softplus_bwd_t<T>(ddelta_, di_, pre_, di_, bdt_, N, di_, dpre_, di_, dbdt_);
    ops::linear_bwd_t<T>(dpre_, dbc_, Wdt_, N, R_, di_, ddbc_, dWdt_, nullptr, di_, wd, wd);
    ops::linear_bwd_t<T>(ddbc_, xs_, Wx_, N, di_, wd, dxs_, dWx_, nullptr, -1, -1, -1, true);
    ops::silu_bwd_t<T>(dxs_, xc_, N * di_, dxc_);
    for (int64_t b = 0; b < B; ++b)
      ops::causal_conv1d_bwd_t<T>(dxc_ + b * L * di_, di_, xz_ + b * L * w2, w2, L, di_, cw_, K_, dxz_ + b * L * w2, w2,
                                  dcw_, dcb_);
    ops::linear_bwd_t<T>(dxz_, x, Win_, N, d_, w2, dx, dWin_, dbin_);
  }

 private:
  static constexpr int64_t kCkpt = 16;
  ops::ScanTrain<T> scan(int64_t b, int64_t L) const {
    const int64_t wd = R_ + 2 * Ns_;
    ops::ScanTrain<T> s;
    s.x = xs_ + b * L * di_;
    s.ldx = di_;
    s.delta = delta_ + b * L * di_;
    s.ldd = di_;
    s.A = A_;
    s.B = dbc_ + b * L * wd + R_;
    s.ldb = wd;
    s.C = dbc_ + b * L * wd + R_ + Ns_;
    s.ldc = wd;
    s.D = D_;
    s.y = ys_ + b * L * di_;
    s.ldy = di_;
    s.hsave = hsave_ + b * ops::scan_saved_states(L, kCkpt) * di_ * Ns_;
    s.L = L;
    s.di = di_;
    s.N = Ns_;
    s.ckpt = kCkpt;
    return s;
  }
  int64_t d_, di_, R_, Ns_, K_;
  const T *Win_, *bin_ = nullptr, *cw_, *cb_ = nullptr, *Wx_, *Wdt_, *bdt_, *Alog_, *D_, *Wout_, *bout_ = nullptr;
  T *dWin_, *dbin_ = nullptr, *dcw_, *dcb_ = nullptr, *dWx_, *dWdt_, *dbdt_, *dAlog_, *dD_, *dWout_, *dbout_ = nullptr;
  T *xz_ = nullptr, *xc_ = nullptr, *xs_ = nullptr, *dbc_ = nullptr, *pre_ = nullptr, *delta_ = nullptr;
  T *ys_ = nullptr, *g_ = nullptr, *A_ = nullptr, *hsave_ = nullptr;
  T *dxz_ = nullptr, *dxs_ = nullptr, *ddbc_ = nullptr, *dpre_ = nullptr, *ddelta_ = nullptr, *dys_ = nullptr;
  T *dg_ = nullptr, *dxc_ = nullptr, *dA_ = nullptr;
};

}  // namespace

template <class T>
std::unique_ptr<TrainMixer<T>> make_train_mixer(const ModelConfig& c, MixerKind kind, const ParamTable<T>& pt,
                                                const std::string& prefix) {
  switch (kind) {
    case MixerKind::BaseConv:
      return std::make_unique<BaseConvT<T>>(c, pt, prefix);
    case MixerKind::LinearAttn: {
      const T* log_decay = nullptr;
      if (c.la.use_decay_proj) log_decay = pt.at("transformer.decay.decay", {c.la.num_heads}).p;
      return std::make_unique<LinearAttnT<T>>(c, pt, prefix, false, log_decay);
    }
    case MixerKind::PrefixLinearAttn:
      return std::make_unique<LinearAttnT<T>>(c, pt, prefix, true, nullptr);
    case MixerKind::SlidingAttn:
      return std::make_unique<AttentionT<T>>(c, pt, prefix, c.swa.num_heads, c.swa.head_dim, c.swa.left_window());
    case MixerKind::MHA:
      return std::make_unique<AttentionT<T>>(c, pt, prefix, c.attn.num_heads, c.attn.head_dim, -1);
    case MixerKind::Mamba:
      return std::make_unique<MambaT<T>>(c, pt, prefix);
  }
  fail("training model: unknown mixer kind");
}

template std::unique_ptr<TrainMixer<float>> make_train_mixer<float>(const ModelConfig&, MixerKind,
                                                                    const ParamTable<float>&, const std::string&);
template std::unique_ptr<TrainMixer<double>> make_train_mixer<double>(const ModelConfig&, MixerKind,
                                                                      const ParamTable<double>&, const std::string&);

}  // namespace jrt::train_detail
