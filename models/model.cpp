// models/model.cpp — loading a model folder, the pre-norm block stack, the MLP, and running packed
// batches. Family-specific mixers live in models/{based,jrt,mamba,attn,baseconv}.cpp.
#include "models/model.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

#include "core/threads.h"
#include "ops/activation.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/norm.h"

namespace jrt {

// ---- BufferState ---------------------------------------------------------------------------------

void BufferState::save(ByteWriter& w) const {
  w.put_i64(int64_t(bufs.size()));
  for (const auto& b : bufs) w.put_floats(b);
}

void BufferState::load(ByteReader& r) {
  int64_t n = r.get_i64();
  JRT_CHECK(n == int64_t(bufs.size()), "state bytes: {} buffers in a layer, the model expects {}", n, bufs.size());
  for (auto& b : bufs) r.get_floats(b, "a layer buffer");
}

int64_t BufferState::bytes() const {
  int64_t s = 0;
  for (const auto& b : bufs) s += int64_t(b.size() * sizeof(float));
  return s;
}

// ---- WeightReader --------------------------------------------------------------------------------

const Tensor& WeightReader::raw(const std::string& name) const { return ws_.get(prefix_ + name); }

const float* WeightReader::get(const std::string& name, std::vector<int64_t> shape) const {
  const std::string full = prefix_ + name;
  const Tensor& t = ws_.get(full);
  JRT_CHECK(t.shape == shape, "{}: tensor '{}' has shape {}, the config implies {}", ws_.source(), full,
            shape_str(t.shape), shape_str(shape));
  if (used_) used_->push_back(full);
  if (t.dtype == DType::F32 && t.is_contiguous()) return t.ptr<float>();
  JRT_CHECK(t.dtype == DType::F32 || t.dtype == DType::BF16 || t.dtype == DType::F16 || t.dtype == DType::F64,
            "{}: tensor '{}' has dtype {}, expected a floating-point type", ws_.source(), full, dtype_name(t.dtype));
  auto it = cache_->find(full);
  if (it == cache_->end()) it = cache_->emplace(full, to_f32(t)).first;
  return it->second.ptr<float>();
}

// ---- blocks --------------------------------------------------------------------------------------

struct Norm {
  const float* w = nullptr;
  const float* b = nullptr;  // LayerNorm only
  bool rms = true;
  float eps = 1e-5f;
  void apply(const float* x, int64_t N, int64_t d, float* y) const {
    if (rms)
      ops::rmsnorm_fwd(x, w, eps, N, d, y);
    else
      ops::layernorm_fwd(x, w, b, eps, N, d, y);
  }
};

static Norm read_norm(const ModelConfig& c, const WeightReader& w, const std::string& name) {
  Norm n;
  n.rms = c.rms_norm;
  n.eps = float(c.norm_eps);
  n.w = w.get(name + ".weight", {c.d_model});
  if (!c.rms_norm && w.has(name + ".bias")) n.b = w.get(name + ".bias", {c.d_model});
  return n;
}

struct Mlp {
  const float* fc1 = nullptr;  // [2F, d] (swiglu) or [F, d] (gelu)
  const float* fc2 = nullptr;  // [d, F]
  const float* b1 = nullptr;
  const float* b2 = nullptr;
  int64_t F = 0;
  bool gated = true;
  bool gelu_tanh = false;
};

struct Model::Block {
  Norm norm1, norm2;
  std::unique_ptr<Mixer> mixer;
  bool has_mlp = false;
  Mlp mlp;
  MixerKind kind;
};

static Mlp read_mlp(const ModelConfig& c, const WeightReader& w) {
  Mlp m;
  m.gated = c.activation == "swiglu";
  m.gelu_tanh = c.activation != "gelu";
  m.F = c.mlp_hidden;
  // The attention baseline's hidden size depends on the flash-attn version's multiple_of
  // (models-spec §1.3): take it from fc2 when it is one of the sizes the reference could build.
  if (w.has("fc2.weight")) {
    const Tensor& t = w.raw("fc2.weight");
    if (t.dim() == 2 && t.shape[0] == c.d_model && t.shape[1] != m.F &&
        std::count(c.mlp_hidden_alternatives.begin(), c.mlp_hidden_alternatives.end(), t.shape[1]))
      m.F = t.shape[1];
  }
  const int64_t rows = m.gated ? 2 * m.F : m.F;
  m.fc1 = w.get("fc1.weight", {rows, c.d_model});
  m.fc2 = w.get("fc2.weight", {c.d_model, m.F});
  if (w.has("fc1.bias")) m.b1 = w.get("fc1.bias", {rows});
  if (w.has("fc2.bias")) m.b2 = w.get("fc2.bias", {c.d_model});
  return m;
}

Model::Model() = default;
Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::string& dir, const std::string& weights_file) {
  namespace fs = std::filesystem;
  JRT_CHECK(fs::exists(dir), "model path '{}' does not exist", dir);
  std::string cfg_path = fs::is_directory(dir) ? (fs::path(dir) / "config.json").string()
                                                : (fs::path(dir).parent_path() / "config.json").string();
  JRT_CHECK(fs::exists(cfg_path), "model folder '{}' has no config.json", dir);
  ModelConfig cfg = load_config(cfg_path);
  std::string wf = !weights_file.empty() ? weights_file : fs::is_directory(dir) ? find_weights_file(dir) : dir;
  return build(std::move(cfg), load_weights(wf));
}

std::unique_ptr<Model> Model::build(ModelConfig cfg, WeightStore weights) {
  std::unique_ptr<Model> m(new Model());
  m->cfg_ = std::move(cfg);
  m->weights_ = std::move(weights);
  const ModelConfig& c = m->cfg_;
  WeightStore& ws = m->weights_;
  // Legacy BaseConvWithSiLU4 naming in GPT-mixer checkpoints (models-spec §0 step 3).
  if (c.arch != Arch::Mamba) {
    std::vector<std::string> names = ws.names();
    for (const auto& n : names) {
      auto p = n.find("conv1.");
      if (p != std::string::npos && n.find("mixer.") != std::string::npos) {
        std::string to = n;
        to.replace(p, 5, "conv");
        if (!ws.has(to)) ws.rename(n, to);
      }
    }
  }
  std::vector<std::string> used;
  WeightReader root(ws, "", &m->converted_, &used);
  const int64_t d = c.d_model, V = c.padded_vocab;
  const bool mamba = c.arch == Arch::Mamba;
  const std::string emb_name = mamba ? "backbone.embedding.weight" : "transformer.embeddings.word_embeddings.weight";
  JRT_CHECK(ws.has(emb_name), "{}: tensor '{}' not found; is this a {} checkpoint?", ws.source(), emb_name,
            arch_name(c.arch));
  m->embed_ = root.get(emb_name, {V, d});
  m->lm_head_ = m->embed_;
  if (ws.has("lm_head.weight")) m->lm_head_ = root.get("lm_head.weight", {V, d});
  const std::string lnf = mamba ? "backbone.norm_f" : "transformer.ln_f";
  Norm fnorm = read_norm(c, root, lnf);
  m->lnf_w_ = fnorm.w;
  m->lnf_b_ = fnorm.b;

  // Based's fixed decay: the buffer in the checkpoint if present, else from decay_const.
  std::vector<float> log_decay;
  const float* log_decay_ptr = nullptr;
  if (c.arch == Arch::Based && c.la.use_decay_proj) {
    const int64_t H = c.la.num_heads;
    if (ws.has("transformer.decay.decay")) {
      log_decay_ptr = root.get("transformer.decay.decay", {H});
    } else {
      m->converted_.emplace("__log_decay", HostTensor(DType::F32, {H}));
      float* p = m->converted_.at("__log_decay").ptr<float>();
      for (int64_t h = 0; h < H; ++h) p[h] = float(std::log(1.0 - std::pow(2.0, c.decay_const - double(h))));
      log_decay_ptr = p;
    }
  }

  for (int64_t i = 0; i < c.n_layer; ++i) {
    auto blk = std::make_unique<Block>();
    blk->kind = c.layers[size_t(i)];
    const std::string pre = (mamba ? "backbone.layers." : "transformer.layers.") + std::to_string(i) + ".";
    WeightReader lw = root.sub(pre);
    WeightReader mw = lw.sub("mixer.");
    blk->norm1 = read_norm(c, lw, mamba ? "norm" : "norm1");
    switch (blk->kind) {
      case MixerKind::BaseConv: blk->mixer = make_baseconv(c, mw); break;
      case MixerKind::LinearAttn: blk->mixer = make_linear_attention(c, mw, log_decay_ptr); break;
      case MixerKind::PrefixLinearAttn: blk->mixer = make_prefix_linear_attention(c, mw); break;
      case MixerKind::SlidingAttn: blk->mixer = make_sliding_attention(c, mw); break;
      case MixerKind::MHA: blk->mixer = make_mha(c, mw); break;
      case MixerKind::Mamba: blk->mixer = make_mamba(c, mw); break;
    }
    if (!mamba && c.mlp_hidden > 0) {  // mlp_hidden 0 (n_inner 0): a mixer-only block
      blk->has_mlp = true;
      blk->norm2 = read_norm(c, lw, "norm2");
      blk->mlp = read_mlp(c, lw.sub("mlp."));
    }
    m->blocks_.push_back(std::move(blk));
  }
  // Every checkpoint tensor must have been consumed: a leftover means the config and the weights
  // disagree (e.g. n_layer too small, a mixer kind that does not match the layer's keys).
  std::set<std::string> used_set(used.begin(), used.end());
  std::vector<std::string> unused;
  for (const auto& n : ws.names())
    if (!used_set.count(n) && n != "lm_head.weight") unused.push_back(n);
  if (!unused.empty()) {
    std::string list;
    for (size_t i = 0; i < unused.size() && i < 5; ++i) list += (i ? ", " : "") + unused[i];
    if (unused.size() > 5) list += fmt::format(", ... ({} in all)", unused.size());
    fail("{}: {} tensor(s) are not used by the model that {} describes ({} layers, pattern {}): {}", ws.source(),
         unused.size(), c.source, c.n_layer, c.pattern(), list);
  }
  return m;
}

std::unique_ptr<SequenceState> Model::new_state() const {
  auto s = std::make_unique<SequenceState>();
  s->model_tag = fmt::format("{} d={} layers={} pattern={} V={}", arch_name(cfg_.arch), cfg_.d_model, cfg_.n_layer,
                             cfg_.pattern(), cfg_.padded_vocab);
  for (const auto& b : blocks_) s->layers.push_back(b->mixer->new_state());
  return s;
}

void Model::run(std::span<const int64_t> ids, std::span<const Segment> segs, std::span<SequenceState*> states,
                const int64_t* mask, bool all_logits, float* logits) const {
  const int64_t N = int64_t(ids.size()), d = cfg_.d_model, V = cfg_.padded_vocab;
  JRT_CHECK(segs.size() == states.size(), "run: {} segments but {} states", segs.size(), states.size());
  int64_t covered = 0;
  for (const auto& s : segs) {
    JRT_CHECK(s.offset == covered && s.length >= 1, "run: segments must tile the batch in order");
    covered += s.length;
  }
  JRT_CHECK(covered == N, "run: segments cover {} rows of {}", covered, N);
  for (auto* st : states) JRT_CHECK(st && st->layers.size() == blocks_.size(), "run: state does not fit this model");

  std::vector<float> r(size_t(N * d)), h(size_t(N * d)), y(size_t(N * d));
  ops::embedding_fwd(ids, embed_, V, d, r.data());
  if (capture_) {
    capture_->clear();
    capture_->push_back(r);
  }
  std::vector<MixerState*> ms(segs.size());
  std::vector<float> u, a;
  for (size_t li = 0; li < blocks_.size(); ++li) {
    const Block& b = *blocks_[li];
    b.norm1.apply(r.data(), N, d, h.data());
    for (size_t s = 0; s < segs.size(); ++s) ms[s] = states[s]->layers[li].get();
    MixerCall call{segs, ms, mask, opt_};
    b.mixer->forward(h.data(), y.data(), N, call);
    for (int64_t i = 0; i < N * d; ++i) r[size_t(i)] += y[size_t(i)];
    if (b.has_mlp) {
      const Mlp& m = b.mlp;
      b.norm2.apply(r.data(), N, d, h.data());
      const int64_t rows = m.gated ? 2 * m.F : m.F;
      u.resize(size_t(N * rows));
      a.resize(size_t(N * m.F));
      ops::linear_fwd(h.data(), N, d, m.fc1, m.b1, rows, u.data());
      if (m.gated)
        ops::swiglu_fwd(u.data(), N, m.F, a.data());
      else
        ops::gelu_fwd(u.data(), N * m.F, a.data(), m.gelu_tanh);
      ops::linear_fwd(a.data(), N, m.F, m.fc2, m.b2, d, y.data());
      for (int64_t i = 0; i < N * d; ++i) r[size_t(i)] += y[size_t(i)];
    }
    if (capture_) capture_->push_back(r);
  }
  for (size_t s = 0; s < segs.size(); ++s) states[s]->pos += segs[s].length;

  // Final norm and the tied head, on the rows that need logits.
  Norm fn{lnf_w_, lnf_b_, cfg_.rms_norm, float(cfg_.norm_eps)};
  if (all_logits) {
    fn.apply(r.data(), N, d, h.data());
    if (capture_) capture_->push_back(std::vector<float>(h.begin(), h.begin() + N * d));
    ops::linear_fwd(h.data(), N, d, lm_head_, nullptr, V, logits);
  } else {
    const int64_t S = int64_t(segs.size());
    std::vector<float> last(size_t(S * d));
    for (int64_t s = 0; s < S; ++s) {
      const auto& sg = segs[size_t(s)];
      std::memcpy(&last[size_t(s * d)], &r[size_t((sg.offset + sg.length - 1) * d)], size_t(d) * sizeof(float));
    }
    fn.apply(last.data(), S, d, h.data());
    ops::linear_fwd(h.data(), S, d, lm_head_, nullptr, V, logits);
  }
}

std::vector<float> Model::forward(std::span<const int64_t> ids, const int64_t* mask) const {
  const int64_t L = int64_t(ids.size());
  std::vector<float> logits(size_t(L * cfg_.padded_vocab));
  auto st = new_state();
  SequenceState* sp = st.get();
  Segment seg{0, L};
  run(ids, std::span<const Segment>(&seg, 1), std::span<SequenceState*>(&sp, 1), mask, true, logits.data());
  return logits;
}

}  // namespace jrt
