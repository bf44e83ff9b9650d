// train/train_model.cpp — see train_model.h. The block stack and the loss; mixers are in
// train/train_mixers.cpp.
#include "train/train_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/threads.h"
#include "ops/activation.h"
#include "ops/cross_entropy.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/norm.h"
#include "train/train_mixers.h"

namespace jrt {

using train_detail::ActPlan;
using train_detail::dtype_of;
using train_detail::ParamTable;
using train_detail::TrainMixer;

namespace {

template <class T>
struct NormT {
  const T *w = nullptr, *b = nullptr;
  T *dw = nullptr, *db = nullptr;
  bool rms = true;
  double eps = 1e-5;
  void fwd(const T* x, int64_t N, int64_t d, T* y, T* mean, T* rstd) const {
    if (rms)
      ops::rmsnorm_fwd_t<T>(x, w, eps, N, d, y, rstd);
    else
      ops::layernorm_fwd_t<T>(x, w, b, eps, N, d, y, mean, rstd);
  }
  // dx += d/dx (accumulated into the residual stream's gradient).
  void bwd(const T* dy, const T* x, int64_t N, int64_t d, const T* mean, const T* rstd, T* dx) const {
    if (rms)
      ops::rmsnorm_bwd_t<T>(dy, x, w, rstd, N, d, dx, dw, true);
    else
      ops::layernorm_bwd_t<T>(dy, x, w, mean, rstd, N, d, dx, dw, db, true);
  }
};

template <class T>
NormT<T> make_norm(const ModelConfig& c, const ParamTable<T>& pt, const std::string& name) {
  NormT<T> n;
  n.rms = c.rms_norm;
  n.eps = c.norm_eps;
  auto& w = pt.at(name + ".weight", {c.d_model});
  n.w = w.p;
  n.dw = w.g;
  if (!c.rms_norm && pt.has(name + ".bias")) {
    auto& b = pt.at(name + ".bias", {c.d_model});
    n.b = b.p;
    n.db = b.g;
  }
  return n;
}

}  // namespace

template <class T>
struct TrainModel<T>::Layer {
  NormT<T> norm1, norm2;
  std::unique_ptr<TrainMixer<T>> mixer;
  bool has_mlp = false;
  int64_t F = 0;
  const T *fc1 = nullptr, *fc2 = nullptr, *b1 = nullptr, *b2 = nullptr;
  T *dfc1 = nullptr, *dfc2 = nullptr, *db1 = nullptr, *db2 = nullptr;
  // Saved: residual in, normed mixer input, residual after the mixer, normed MLP input, MLP u and a.
  T *res = nullptr, *h1 = nullptr, *mean1 = nullptr, *rstd1 = nullptr;
  T *mid = nullptr, *h2 = nullptr, *mean2 = nullptr, *rstd2 = nullptr, *u = nullptr, *a = nullptr;
};

template <class T>
TrainModel<T>::TrainModel(const ModelConfig& c, int64_t max_batch, int64_t max_len)
    : cfg_(c), Bmax_(max_batch), Lmax_(max_len) {
  JRT_CHECK(max_batch >= 1 && max_len >= 1, "training model: batch {} x length {} must both be >= 1", max_batch,
            max_len);
  JRT_CHECK(c.n_layer == int64_t(c.layers.size()), "training model: config has {} layers but {} mixer kinds", c.n_layer,
            c.layers.size());
  specs_ = parameter_specs(c);
  const DType dt = dtype_of<T>();
  size_t bytes = 0;
  for (const auto& s : specs_) bytes += Arena::footprint(dt, s.shape);
  params_arena_ = Arena(bytes);
  grads_arena_ = Arena(bytes);
  ParamTable<T> pt;
  for (const auto& s : specs_) {
    T* p = params_arena_.alloc(dt, s.shape).template ptr<T>();
    T* g = grads_arena_.alloc(dt, s.shape).template ptr<T>();
    if (!pbase_) pbase_ = p, gbase_ = g;
    offsets_.push_back(int64_t(p - pbase_));
    JRT_CHECK(g - gbase_ == p - pbase_, "training model: parameter and gradient arenas disagree");
    pt.add(s.name, p, g, s.shape);
  }
  span_ = int64_t(params_arena_.used() / sizeof(T));

  const bool mamba = c.arch == Arch::Mamba;
  const int64_t d = c.d_model, V = c.padded_vocab, N = Bmax_ * Lmax_;
  const std::string emb = mamba ? "backbone.embedding.weight" : "transformer.embeddings.word_embeddings.weight";
  auto& e = pt.at(emb, {V, d});
  E_ = e.p;
  dE_ = e.g;
  NormT<T> nf = make_norm(c, pt, mamba ? "backbone.norm_f" : "transformer.ln_f");
  lnf_w_ = nf.w, lnf_b_ = nf.b, dlnf_w_ = nf.dw, dlnf_b_ = nf.db;

  ActPlan<T> plan;
  int64_t Fmax = 0;
  for (int64_t i = 0; i < c.n_layer; ++i) {
    auto L = std::make_unique<Layer>();
    const std::string pre = (mamba ? "backbone.layers." : "transformer.layers.") + std::to_string(i) + ".";
    L->norm1 = make_norm(c, pt, pre + (mamba ? "norm" : "norm1"));
    L->mixer = train_detail::make_train_mixer<T>(c, c.layers[size_t(i)], pt, pre + "mixer.");
    L->mixer->plan(plan, Bmax_, Lmax_);
    L->has_mlp = !mamba && c.mlp_hidden > 0;
    plan.add(&L->res, N * d);
    plan.add(&L->h1, N * d);
    plan.add(&L->mean1, N);
    plan.add(&L->rstd1, N);
    plan.add(&L->mid, N * d);
    if (L->has_mlp) {
      const int64_t F = L->F = c.mlp_hidden;
      Fmax = std::max(Fmax, F);
      L->norm2 = make_norm(c, pt, pre + "norm2");
      auto& f1 = pt.at(pre + "mlp.fc1.weight", {2 * F, d});
      auto& f2 = pt.at(pre + "mlp.fc2.weight", {d, F});
      L->fc1 = f1.p, L->dfc1 = f1.g, L->fc2 = f2.p, L->dfc2 = f2.g;
      if (c.mlp_fc1_bias) {
        auto& b = pt.at(pre + "mlp.fc1.bias", {2 * F});
        L->b1 = b.p, L->db1 = b.g;
      }
      if (c.mlp_fc2_bias) {
        auto& b = pt.at(pre + "mlp.fc2.bias", {d});
        L->b2 = b.p, L->db2 = b.g;
      }
      plan.add(&L->h2, N * d);
      plan.add(&L->mean2, N);
      plan.add(&L->rstd2, N);
      plan.add(&L->u, N * 2 * F);
      plan.add(&L->a, N * F);
    }
    layers_.push_back(std::move(L));
  }
  plan.add(&res_final_, N * d);
  plan.add(&hf_, N * d);
  plan.add(&mean_f_, N);
  plan.add(&rstd_f_, N);
  plan.add(&logits_, N * V);
  plan.add(&lse_, N);
  plan.add(&y_, N * d);
  plan.add(&dr_, N * d);
  plan.add(&dh_, N * d);
  if (Fmax > 0) {
    plan.add(&da_, N * Fmax);
    plan.add(&du_, N * 2 * Fmax);
  }
  acts_arena_ = plan.allocate();
  // Layer 0's residual input is the embedding output.
  res0_ = layers_.empty() ? res_final_ : layers_[0]->res;
}

template <class T>
TrainModel<T>::~TrainModel() = default;

template <class T>
int64_t TrainModel<T>::find(const std::string& name) const {
  for (size_t i = 0; i < specs_.size(); ++i)
    if (specs_[i].name == name) return int64_t(i);
  return -1;
}

template <class T>
int64_t TrainModel<T>::num_parameters() const {
  int64_t n = 0;
  for (const auto& s : specs_)
    if (s.role != ParamRole::Buffer) n += shape_numel(s.shape);
  return n;
}

template <class T>
void TrainModel<T>::load(const WeightStore& ws) {
  for (size_t i = 0; i < specs_.size(); ++i) {
    const ParamSpec& s = specs_[i];
    std::string name = s.name;
    if (!ws.has(name)) {  // legacy BaseConvWithSiLU4 naming (models-spec §0 step 3)
      auto p = name.find("mixer.conv.");
      std::string alt = name;
      if (p != std::string::npos) alt.replace(p + 6, 4, "conv1");
      JRT_CHECK(ws.has(alt), "{}: tensor '{}' not found (the config implies it)", ws.source(), name);
      name = alt;
    }
    const Tensor& t = ws.get(name);
    JRT_CHECK(t.shape == s.shape, "{}: tensor '{}' has shape {}, the config implies {}", ws.source(), name,
              shape_str(t.shape), shape_str(s.shape));
    HostTensor f = to_f32(t);
    auto dst = param(i);
    const float* src = f.ptr<float>();
    for (size_t k = 0; k < dst.size(); ++k) dst[k] = T(src[k]);
  }
}

template <class T>
WeightStore TrainModel<T>::weights() const {
  WeightStore ws;
  ws.set_source("training model");
  for (size_t i = 0; i < specs_.size(); ++i) {
    HostTensor t(DType::F32, specs_[i].shape);
    const T* src = pbase_ + offsets_[i];
    float* dst = t.ptr<float>();
    for (int64_t k = 0; k < t.numel(); ++k) dst[k] = float(src[k]);
    ws.add_owned(specs_[i].name, std::move(t));
  }
  return ws;
}

template <class T>
void TrainModel<T>::zero_grad() {
  std::fill(gbase_, gbase_ + span_, T(0));
}

template <class T>
LossParts TrainModel<T>::forward(const int64_t* ids, const int64_t* labels, int64_t B, int64_t L,
                                 const Objective& obj) {
  JRT_CHECK(B >= 1 && B <= Bmax_ && L >= 1 && L <= Lmax_,
            "training model: batch {} x {} tokens does not fit the planned {} x {}", B, L, Bmax_, Lmax_);
  const int64_t N = B * L, d = cfg_.d_model, V = cfg_.padded_vocab;
  B_ = B;
  L_ = L;
  obj_ = obj;
  ids_.assign(ids, ids + N);
  labels_.assign(labels, labels + N);
  ops::embedding_fwd_t<T>(ids_, E_, V, d, res0_);
  for (size_t li = 0; li < layers_.size(); ++li) {
    Layer& ly = *layers_[li];
    T* next = li + 1 < layers_.size() ? layers_[li + 1]->res : res_final_;
    ly.norm1.fwd(ly.res, N, d, ly.h1, ly.mean1, ly.rstd1);
    ly.mixer->forward(ly.h1, y_, B, L);
    T* out = ly.has_mlp ? ly.mid : next;
    for (int64_t i = 0; i < N * d; ++i) out[i] = ly.res[i] + y_[i];
    if (ly.has_mlp) {
      const int64_t F = ly.F;
      ly.norm2.fwd(ly.mid, N, d, ly.h2, ly.mean2, ly.rstd2);
      ops::linear_fwd_t<T>(ly.h2, N, d, ly.fc1, ly.b1, 2 * F, ly.u);
      ops::swiglu_fwd_t<T>(ly.u, N, F, ly.a);
      ops::linear_fwd_t<T>(ly.a, N, F, ly.fc2, ly.b2, d, y_);
      for (int64_t i = 0; i < N * d; ++i) next[i] = ly.mid[i] + y_[i];
    }
  }
  NormT<T> nf;
  nf.w = lnf_w_, nf.b = lnf_b_, nf.rms = cfg_.rms_norm, nf.eps = cfg_.norm_eps;
  nf.fwd(res_final_, N, d, hf_, mean_f_, rstd_f_);
  ops::linear_fwd_t<T>(hf_, N, d, E_, nullptr, V, logits_);

  // Loss. Row ranges: plain = all rows; JRT = per sequence [0, E) MLM rows (label > 0) and [E, L) rows.
  LossParts lp;
  double sum_ntp = 0, sum_mlm = 0;
  if (obj.enc_length > 0) {
    const int64_t E = std::min(obj.enc_length, L);
    for (int64_t b = 0; b < B; ++b) {
      int64_t* lab = labels_.data() + b * L;
      for (int64_t t = 0; t < E; ++t)
        if (lab[t] <= 0) lab[t] = ops::kIgnoreIndex;  // the reference selects labels > 0 (models-spec §9)
      auto m = ops::cross_entropy_fwd_t<T>(logits_ + b * L * V, E, V, lab, lse_ + b * L);
      auto n = ops::cross_entropy_fwd_t<T>(logits_ + (b * L + E) * V, L - E, V, lab + E, lse_ + b * L + E);
      sum_mlm += m.loss_sum;
      lp.n_mlm += m.count;
      sum_ntp += n.loss_sum;
      lp.n_ntp += n.count;
    }
  } else {
    auto n = ops::cross_entropy_fwd_t<T>(logits_, N, V, labels_.data(), lse_);
    sum_ntp = n.loss_sum;
    lp.n_ntp = n.count;
  }
  lp.ntp = lp.n_ntp > 0 ? sum_ntp / double(lp.n_ntp) : 0.0;
  lp.mlm = lp.n_mlm > 0 ? sum_mlm / double(lp.n_mlm) : 0.0;
  lp.loss = lp.ntp + (obj.enc_length > 0 ? obj.mlm_weight * lp.mlm : 0.0);
  scale_ntp_ = lp.n_ntp > 0 ? 1.0 / double(lp.n_ntp) : 0.0;
  scale_mlm_ = lp.n_mlm > 0 ? obj.mlm_weight / double(lp.n_mlm) : 0.0;
  have_forward_ = true;
  return lp;
}

template <class T>
void TrainModel<T>::backward(double scale) {
  JRT_CHECK(have_forward_, "training model: backward() without a forward()");
  have_forward_ = false;
  const int64_t B = B_, L = L_, N = B * L, d = cfg_.d_model, V = cfg_.padded_vocab;
  // dlogits, in place.
  if (obj_.enc_length > 0) {
    const int64_t E = std::min(obj_.enc_length, L);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t* lab = labels_.data() + b * L;
      T* lg = logits_ + b * L * V;
      ops::cross_entropy_bwd_t<T>(lg, E, V, lab, lse_ + b * L, T(scale * scale_mlm_), lg);
      ops::cross_entropy_bwd_t<T>(lg + E * V, L - E, V, lab + E, lse_ + b * L + E, T(scale * scale_ntp_), lg + E * V);
    }
  } else {
    ops::cross_entropy_bwd_t<T>(logits_, N, V, labels_.data(), lse_, T(scale * scale_ntp_), logits_);
  }
  // Head (tied): dhf = dlogits E, dE += dlogits^T hf.
  ops::linear_bwd_t<T>(logits_, hf_, E_, N, d, V, dh_, dE_, nullptr);
  std::fill(dr_, dr_ + N * d, T(0));
  NormT<T> nf;
  nf.w = lnf_w_, nf.b = lnf_b_, nf.dw = dlnf_w_, nf.db = dlnf_b_, nf.rms = cfg_.rms_norm, nf.eps = cfg_.norm_eps;
  nf.bwd(dh_, res_final_, N, d, mean_f_, rstd_f_, dr_);
  for (size_t li = layers_.size(); li-- > 0;) {
    Layer& ly = *layers_[li];
    if (ly.has_mlp) {
      const int64_t F = ly.F;
      ops::linear_bwd_t<T>(dr_, ly.a, ly.fc2, N, F, d, da_, ly.dfc2, ly.db2);
      ops::swiglu_bwd_t<T>(da_, ly.u, N, F, du_);
      ops::linear_bwd_t<T>(du_, ly.h2, ly.fc1, N, d, 2 * F, dh_, ly.dfc1, ly.db1);
      ly.norm2.bwd(dh_, ly.mid, N, d, ly.mean2, ly.rstd2, dr_);
    }
    ly.mixer->backward(ly.h1, dr_, dh_, B, L);
    ly.norm1.bwd(dh_, ly.res, N, d, ly.mean1, ly.rstd1, dr_);
  }
  ops::embedding_bwd_t<T>(ids_, dr_, V, d, dE_);
}

template class TrainModel<float>;
template class TrainModel<double>;

}  // namespace jrt
