// io/config.cpp — config.json -> ModelConfig: family detection, the reference code's defaults for
// absent keys (GPT2Config + getattr defaults of train/src/models/gpt.py, MambaConfig), range and
// consistency checks, and the parameter count a config implies (models-spec §1, §5, §7).
#include "io/config.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>

#include "core/error.h"

namespace jrt {

const char* arch_name(Arch a) {
  switch (a) {
    case Arch::Based:
      return "based";
    case Arch::JRT:
      return "jrt";
    case Arch::Mamba:
      return "mamba";
    case Arch::Attn:
      return "attn";
  }
  return "?";
}

const char* mixer_name(MixerKind m) {
  switch (m) {
    case MixerKind::BaseConv:
      return "BaseConv";
    case MixerKind::LinearAttn:
      return "LinearAttention";
    case MixerKind::PrefixLinearAttn:
      return "PrefixLinearAttention";
    case MixerKind::SlidingAttn:
      return "SlidingAttention";
    case MixerKind::MHA:
      return "MHA";
    case MixerKind::Mamba:
      return "Mamba";
  }
  return "?";
}

char mixer_letter(MixerKind m) {
  switch (m) {
    case MixerKind::BaseConv:
      return 'c';
    case MixerKind::LinearAttn:
      return 'L';
    case MixerKind::PrefixLinearAttn:
      return 'P';
    case MixerKind::SlidingAttn:
      return 's';
    case MixerKind::MHA:
      return 'A';
    case MixerKind::Mamba:
      return 'M';
  }
  return '?';
}

std::string ModelConfig::pattern() const {
  std::string s;
  s.reserve(layers.size());
  for (MixerKind m : layers) s.push_back(mixer_letter(m));
  return s;
}

int64_t ModelConfig::count(MixerKind m) const { return int64_t(std::count(layers.begin(), layers.end(), m)); }

namespace {

using json = nlohmann::json;

// Caps that keep every derived size, parameter count and state byte count far from int64 overflow;
// all are orders of magnitude above any released checkpoint.
constexpr int64_t kMaxWidth = int64_t(1) << 20;  // d_model, heads, hidden sizes, multiples
constexpr int64_t kMaxLayers = int64_t(1) << 16;
constexpr int64_t kMaxVocab = int64_t(1) << 31;
constexpr int64_t kMaxLength = int64_t(1) << 40;  // enc_length, window_size, positions
constexpr int64_t kMaxFeatureDim = 256;           // Taylor feature size 1 + fd + fd^2
constexpr int64_t kMaxKernel = 1024;

std::string show(const json& v) {
  std::string s = v.dump();
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Typed, checked access to the keys of one JSON object; `prefix` makes nested names ("alt_mixer.")
// so that every message names the full field. A key holding null counts as absent (Python's
// getattr(config, key, default) sees None and the reference treats most None values as "default").
class Fields {
 public:
  Fields(const json& obj, const std::string& source, std::string prefix)
      : obj_(obj), source_(source), prefix_(std::move(prefix)) {}

  const std::string& source() const { return source_; }
  std::string name(const std::string& key) const { return prefix_ + key; }

  const json* find(const std::string& key) const {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  bool has(const std::string& key) const { return find(key) != nullptr; }

  [[noreturn]] void bad(const std::string& key, std::string_view what, const json& v) const {
    fail("{}: field '{}' {}, got {}", source_, name(key), what, show(v));
  }
  [[noreturn]] void missing(const std::string& key, std::string_view why = "") const {
    fail("{}: missing required field '{}'{}", source_, name(key), why);
  }

  int64_t as_int(const std::string& key, const json& v) const {
    if (v.is_number_unsigned()) {
      uint64_t u = v.get<uint64_t>();
      if (u > uint64_t(std::numeric_limits<int64_t>::max())) bad(key, "is out of range", v);
      return int64_t(u);
    }
    if (v.is_number_integer()) return v.get<int64_t>();
    bad(key, "must be an integer", v);
  }

  // Integer in [lo, hi]; `def` when absent, or an error naming the field when there is no default.
  int64_t integer(const std::string& key, std::optional<int64_t> def, int64_t lo, int64_t hi) const {
    const json* v = find(key);
    if (!v) {
      if (!def) missing(key);
      return *def;
    }
    int64_t x = as_int(key, *v);
    check_range(key, *v, x, lo, hi);
    return x;
  }

  void check_range(const std::string& key, const json& v, int64_t x, int64_t lo, int64_t hi) const {
    if (x < lo) bad(key, lo == 1 ? std::string("must be > 0") : fmt::format("must be >= {}", lo), v);
    if (x > hi) bad(key, fmt::format("must be <= {}", hi), v);
  }

  double number(const std::string& key, double def) const {
    const json* v = find(key);
    if (!v) return def;
    if (!v->is_number()) bad(key, "must be a number", *v);
    double x = v->get<double>();
    if (!std::isfinite(x)) bad(key, "must be finite", *v);
    return x;
  }

  bool boolean(const std::string& key, bool def) const {
    const json* v = find(key);
    if (!v) return def;
    if (!v->is_boolean()) bad(key, "must be true or false", *v);
    return v->get<bool>();
  }

  std::optional<std::string> string(const std::string& key) const {
    const json* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) bad(key, "must be a string", *v);
    return v->get<std::string>();
  }

  // A list of layer indices (absent or null: empty).
  std::vector<int64_t> index_list(const std::string& key) const {
    const json* v = find(key);
    if (!v) return {};
    if (!v->is_array()) bad(key, "must be an array of layer indices (integers)", *v);
    std::vector<int64_t> out;
    for (size_t i = 0; i < v->size(); ++i) {
      const json& e = (*v)[i];
      if (!e.is_number_integer()) bad(key, "must be an array of layer indices (integers)", *v);
      int64_t x = as_int(key, e);
      if (x < 0) fail("{}: field '{}' must hold layer indices >= 0, got {} at position {}", source_, name(key), x, i);
      out.push_back(x);
    }
    return out;
  }

  std::optional<Fields> object(const std::string& key) const {
    const json* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_object()) bad(key, "must be an object", *v);
    return Fields(*v, source_, prefix_ + key + ".");
  }

  // Settings the reference accepts but jrt does not implement: the key must be absent or hold `ok`.
  void require_bool(const std::string& key, bool def, bool ok, std::string_view why) const {
    if (boolean(key, def) != ok)
      fail("{}: field '{}' = {} is not supported ({})", source_, name(key), ok ? "false" : "true", why);
  }
  void require_absent(const std::string& key, std::string_view why) const {
    if (const json* v = find(key)) bad(key, fmt::format("is not supported ({})", why), *v);
  }

  const json& raw() const { return obj_; }

 private:
  const json& obj_;
  const std::string& source_;
  std::string prefix_;
};

// First present key of aliases (GPT2Config attribute_map: hidden_size -> n_embd, ...).
std::string pick(const Fields& f, std::initializer_list<const char*> keys) {
  for (const char* k : keys)
    if (f.has(k)) return k;
  return *keys.begin();
}

bool contains(std::string_view hay, std::string_view needle) { return hay.find(needle) != std::string_view::npos; }

std::string lower(std::string s) {
  for (char& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// Mixer class from a hydra `_target_`. Legacy names the reference remaps are accepted
// (src.models.mixers.base_conv.BaseConvWithSiLU4, src.models.mixers.slide_fa2.SlidingsMHA); the
// sliding-window test mirrors gpt.py's own ('slide' / 'sliding' / 'window' in the target).
MixerKind classify_mixer(const Fields& slot, const std::string& slot_key, const Fields& top) {
  const json* t = slot.find("_target_");
  if (!t) slot.missing("_target_", " (the mixer class, e.g. based.models.mixers.convolution.BaseConv)");
  if (!t->is_string()) slot.bad("_target_", "must be a string", *t);
  std::string target = t->get<std::string>();
  std::string low = lower(target);
  if (contains(target, "PrefixLinearAttention") || contains(low, "prefix_linear_attention"))
    return MixerKind::PrefixLinearAttn;
  if (contains(target, "LinearAttention") || contains(low, "linear_attention") || contains(low, "linear_attn"))
    return MixerKind::LinearAttn;
  if (contains(target, "BaseConv")) return MixerKind::BaseConv;
  if (contains(low, "slide") || contains(low, "sliding") || contains(low, "window")) return MixerKind::SlidingAttn;
  fail(
      "{}: field '{}._target_' names an unknown mixer '{}' (known: BaseConv, LinearAttention, "
      "PrefixLinearAttention, SlidingAttention)",
      top.source(), slot_key, target);
}

void check_divides(const Fields& f, const std::string& heads_key, int64_t heads, const std::string& d_key, int64_t d) {
  if (d % heads != 0)
    fail("{}: field '{}' = {} must divide {} = {} (head_dim = {} / heads)", f.source(), f.name(heads_key), heads, d_key,
         d, d_key);
}

// ---- the GPT-style families (JRT, Based, Attn) ------------------------------------------------------------

struct GptCommon {
  std::string d_key;  // "n_embd" or its alias, for messages
  std::optional<int64_t> n_inner;
};

GptCommon parse_gpt_common(const Fields& top, ModelConfig& c) {
  GptCommon g;
  g.d_key = pick(top, {"n_embd", "hidden_size"});
  c.d_model = top.integer(g.d_key, std::nullopt, 1, kMaxWidth);
  c.n_layer = top.integer(pick(top, {"n_layer", "num_hidden_layers"}), std::nullopt, 1, kMaxLayers);
  c.vocab_size = top.integer("vocab_size", std::nullopt, 1, kMaxVocab);
  std::string h_key = pick(top, {"n_head", "num_attention_heads"});
  c.n_head = top.integer(h_key, std::nullopt, 1, kMaxWidth);
  check_divides(top, h_key, c.n_head, g.d_key, c.d_model);
  c.pad_vocab_size_multiple = top.integer("pad_vocab_size_multiple", 1, 1, kMaxWidth);

  c.norm_eps = top.number("layer_norm_epsilon", 1e-5);
  if (!(c.norm_eps > 0)) top.bad("layer_norm_epsilon", "must be > 0", *top.find("layer_norm_epsilon"));
  c.rms_norm = top.boolean("rms_norm", false);
  c.residual_in_fp32 = top.boolean("residual_in_fp32", false);
  c.tie_word_embeddings = top.boolean("tie_word_embeddings", true);
  c.bos_token_id = top.integer("bos_token_id", 50256, 0, kMaxVocab);
  c.eos_token_id = top.integer("eos_token_id", 50256, 0, kMaxVocab);
  // GPT2Config maps max_position_embeddings onto n_positions (default 1024).
  c.max_position_embeddings = top.integer(pick(top, {"max_position_embeddings", "n_positions"}), 1024, 0, kMaxLength);

  if (!top.has("activation_function"))
    fail(
        "{}: field 'activation_function' is absent; GPT2Config's default \"gelu_new\" is not supported (jrt "
        "implements \"swiglu\" only)",
        top.source());
  std::string act = *top.string("activation_function");
  if (act != "swiglu")
    fail(
        "{}: field 'activation_function' must be \"swiglu\" (the only MLP jrt implements: GatedMlp with SiLU), got "
        "\"{}\"",
        top.source(), act);
  c.activation = act;
  // n_inner 0: no MLP (the reference builds a zero-width GatedMlp, i.e. the same function; jrt omits the
  // block's norm2 and MLP tensors). Used by the synthetic-task models (Zoology's state_mixer = Identity).
  if (top.has("n_inner")) g.n_inner = top.integer("n_inner", std::nullopt, 0, kMaxWidth);
  top.require_bool("fused_mlp", false, false, "the fused MLP is not a GatedMlp; swiglu needs fused_mlp false");
  // Reference defaults (getattr(config, ..., True)) when absent; the released configs say false.
  c.mlp_fc1_bias = top.boolean("mlp_fc1_bias", true);
  c.mlp_fc2_bias = top.boolean("mlp_fc2_bias", true);
  c.qkv_proj_bias = top.boolean("qkv_proj_bias", true);
  c.out_proj_bias = top.boolean("out_proj_bias", true);
  top.require_bool("lm_head_bias", false, false, "lm_head has no bias in jrt");

  c.rotary_fraction = top.number("rotary_emb_fraction", 0.0);
  if (c.rotary_fraction < 0 || c.rotary_fraction > 1)
    top.bad("rotary_emb_fraction", "must be in [0, 1]", *top.find("rotary_emb_fraction"));
  c.rotary_base = top.number("rotary_emb_base", 10000.0);
  if (!(c.rotary_base > 0)) top.bad("rotary_emb_base", "must be > 0", *top.find("rotary_emb_base"));
  top.require_bool("rotary_emb_interleaved", false, false, "only non-interleaved (GPT-NeoX) rotary is implemented");
  top.require_absent("rotary_emb_scale_base", "xPos rotary scaling is not implemented");
  top.require_bool("scale_attn_weights", true, true, "attention is always scaled by head_dim^-0.5");
  top.require_bool("scale_attn_by_inverse_layer_idx", false, false, "per-layer attention scaling is not implemented");
  for (const char* kv : {"n_head_kv", "num_head_kv"})
    if (top.has(kv) && top.integer(kv, std::nullopt, 1, kMaxWidth) != c.n_head)
      fail("{}: field '{}' = {} is not supported (grouped-query attention; it must equal n_head = {})", top.source(),
           kv, top.integer(kv, std::nullopt, 1, kMaxWidth), c.n_head);
  if (top.has("head_dim") && top.integer("head_dim", std::nullopt, 1, kMaxWidth) != c.d_model / c.n_head)
    top.bad("head_dim", fmt::format("must equal {} / n_head = {}", g.d_key, c.d_model / c.n_head),
            *top.find("head_dim"));
  top.require_bool("parallel_block", false, false, "parallel (GPT-J style) blocks are not implemented");
  top.require_bool("prenorm", true, true, "only pre-norm blocks are implemented");
  top.require_absent("word_embed_proj_dim", "OPT-style embedding projections are not implemented");

  c.switches.fused_dropout_add_ln = top.boolean("fused_dropout_add_ln", false);
  c.switches.fused_bias_fc = top.boolean("fused_bias_fc", false);
  c.switches.use_flash_attn = top.boolean("use_flash_attn", false);

  c.attn.num_heads = c.n_head;
  c.attn.head_dim = c.d_model / c.n_head;
  // Python int(fraction * head_dim): the same IEEE product, truncated.
  c.rotary_dim = int64_t(c.rotary_fraction * double(c.attn.head_dim));
  c.mlp_multiple_of = 256;
  return g;
}

void parse_attn(const Fields& top, ModelConfig& c) {
  c.arch = Arch::Attn;
  GptCommon g = parse_gpt_common(top, c);
  for (const char* k : {"alt_mixer", "alt_mixer_2"})
    if (top.has(k))
      fail("{}: field '{}' needs a 'mixer' (a GPT config without 'mixer' is the attention baseline)", top.source(), k);
  c.layers.assign(size_t(c.n_layer), MixerKind::MHA);
  // flash-attn GatedMlp: hidden = n_inner or int(8d/3), rounded up to multiple_of; jrt_lm.py builds with 256
  // and falls back to 128 on a load failure (models-spec §1.3), so both candidates are recorded.
  int64_t base = g.n_inner ? *g.n_inner : 8 * c.d_model / 3;
  c.mlp_hidden = round_up(base, 256);
  int64_t alt = round_up(base, 128);
  if (alt != c.mlp_hidden) c.mlp_hidden_alternatives.push_back(alt);
}

void parse_baseconv(const Fields& f, const ModelConfig& c, BaseConvConfig& out) {
  out.expand_proj = f.integer("expand_proj", 4, 1, 64);
  if ((out.expand_proj * c.d_model) % 2 != 0)
    fail("{}: field '{}' = {} times d_model {} must be even (in_proj splits into two halves)", f.source(),
         f.name("expand_proj"), out.expand_proj, c.d_model);
  out.use_bias = f.boolean("use_bias", true);
  // `kernel_sizes` is swallowed by **kwargs in the reference; only `kernel_size` reaches BaseConv.
  out.kernel_size = f.integer("kernel_size", 3, 1, kMaxKernel);
}

void parse_feature_dim(const Fields& f, LinearAttnConfig& out) {
  out.feature_dim = f.integer("feature_dim", 16, 1, kMaxFeatureDim);
  out.eps = f.number("eps", 1e-12);
  if (!(out.eps > 0)) f.bad("eps", "must be > 0", *f.find("eps"));
}

void parse_linear_attention(const Fields& f, const ModelConfig& c, const std::string& d_key, LinearAttnConfig& out,
                            std::string& impl) {
  out.num_heads = f.integer("num_heads", c.n_head, 1, kMaxWidth);
  parse_feature_dim(f, out);
  if (f.has("head_dim")) {
    out.head_dim = f.integer("head_dim", std::nullopt, 1, kMaxWidth);
  } else {
    check_divides(f, "num_heads", out.num_heads, d_key, c.d_model);
    out.head_dim = c.d_model / out.num_heads;
  }
  out.use_decay_proj = f.boolean("use_decay_proj", false);
  impl = f.string("parallel_implementation").value_or("quadratic");
  static const std::set<std::string> known = {"quadratic", "linear", "fla_parallel", "fla_chunk"};
  if (!known.count(impl))
    fail("{}: field '{}' has unknown value \"{}\" (known: quadratic, linear, fla_parallel, fla_chunk)", f.source(),
         f.name("parallel_implementation"), impl);
  if (auto name = f.string("feature_name"); name && *name != "taylor_exp")
    fail("{}: field '{}' = \"{}\" is not supported (only the Taylor feature map, \"taylor_exp\")", f.source(),
         f.name("feature_name"), *name);
  if (auto fm = f.object("feature_map")) {
    auto t = fm->string("_target_");
    if (t && !contains(*t, "TaylorExp"))
      fail("{}: field '{}' = \"{}\" is not supported (only TaylorExp)", f.source(), fm->name("_target_"), *t);
    // TaylorExp scales by input_dim: it must be the feature dim the projections produce.
    if (fm->has("input_dim") && fm->integer("input_dim", std::nullopt, 1, kMaxFeatureDim) != out.feature_dim)
      fail("{}: field '{}' = {} must equal {} = {}", f.source(), fm->name("input_dim"),
           fm->integer("input_dim", std::nullopt, 1, kMaxFeatureDim), f.name("feature_dim"), out.feature_dim);
  }
}

void parse_prefix_linear_attention(const Fields& f, const Fields& top, const ModelConfig& c, const std::string& d_key,
                                   LinearAttnConfig& out, std::string& impl) {
  out.num_heads = f.integer("num_heads", c.n_head, 1, kMaxWidth);
  parse_feature_dim(f, out);
  check_divides(f, "num_heads", out.num_heads, d_key, c.d_model);  // asserted by the reference
  out.head_dim = c.d_model / out.num_heads;
  if (f.has("scale_dim") && f.integer("scale_dim", std::nullopt, 1, kMaxFeatureDim) != out.feature_dim)
    fail("{}: field '{}' is not supported unless it equals feature_dim ({})", f.source(), f.name("scale_dim"),
         out.feature_dim);
  // The mixer reads alt_mixer.enc_length; GPTModel keeps the top-level copy. Both must agree.
  std::optional<int64_t> inner, outer;
  if (f.has("enc_length")) inner = f.integer("enc_length", std::nullopt, 1, kMaxLength);
  if (top.has("enc_length")) outer = top.integer("enc_length", std::nullopt, 1, kMaxLength);
  if (!inner && !outer) f.missing("enc_length", " (JRT prefix length; the reference computes min(enc_length, L))");
  if (inner && outer && *inner != *outer)
    fail("{}: field '{}' = {} differs from top-level 'enc_length' = {}", f.source(), f.name("enc_length"), *inner,
         *outer);
  out.enc_length = inner ? *inner : *outer;
  out.use_mask = f.boolean("use_mask", true);
  out.use_decay_proj = false;  // not a PrefixLinearAttention parameter
  impl = f.string("implementation").value_or("default");
  if (impl != "default" && impl != "fla_parallel")
    fail("{}: field '{}' has unknown value \"{}\" (known: default, fla_parallel)", f.source(), f.name("implementation"),
         impl);
}

void parse_sliding_attention(const Fields& f, const ModelConfig& c, SlidingAttnConfig& out) {
  // gpt.py's sliding_window_additions overwrites num_heads, rotary, biases and scale from the GPT config.
  out.num_heads = c.n_head;
  out.head_dim = c.d_model / c.n_head;
  out.window_size = f.integer("window_size", 128, 1, kMaxLength);  // SlidingAttention's own default
}

void parse_mixer_gpt(const Fields& top, ModelConfig& c, std::optional<Arch> forced) {
  GptCommon g = parse_gpt_common(top, c);
  c.mlp_hidden = round_up(g.n_inner ? *g.n_inner : 4 * c.d_model, 256);
  if (auto t = top.string("mlp_type"); t && *t != "base")
    fail("{}: field 'mlp_type' = \"{}\" is not supported (only \"base\")", top.source(), *t);

  const std::vector<std::string> slot_keys = {"mixer", "alt_mixer", "alt_mixer_2"};
  std::map<std::string, Fields> slots;
  std::map<std::string, MixerKind> kinds;
  for (const auto& k : slot_keys) {
    if (auto s = top.object(k)) {
      kinds.emplace(k, classify_mixer(*s, k, top));
      slots.emplace(k, *s);
    }
  }
  if (!slots.count("mixer")) top.missing("mixer");

  std::vector<int64_t> l1 = top.index_list("alt_mixer_layers"), l2 = top.index_list("alt_mixer_2_layers");
  auto in = [](const std::vector<int64_t>& v, int64_t i) { return std::find(v.begin(), v.end(), i) != v.end(); };
  std::map<MixerKind, std::string> used;  // kind -> the slot every layer of that kind comes from
  c.layers.clear();
  for (int64_t i = 0; i < c.n_layer; ++i) {
    std::string slot = in(l2, i) ? "alt_mixer_2" : in(l1, i) ? "alt_mixer" : "mixer";
    if (!slots.count(slot))
      fail("{}: layer {} is listed in '{}_layers' but field '{}' is missing (a plain MHA layer there is not supported)",
           top.source(), i, slot, slot);
    MixerKind k = kinds.at(slot);
    auto [it, fresh] = used.emplace(k, slot);
    if (!fresh && it->second != slot)
      fail("{}: fields '{}' and '{}' are both {} mixers; jrt supports one configuration per mixer kind", top.source(),
           it->second, slot, mixer_name(k));
    c.layers.push_back(k);
  }
  if (used.count(MixerKind::LinearAttn) && used.count(MixerKind::PrefixLinearAttn))
    fail("{}: fields '{}' and '{}' mix LinearAttention and PrefixLinearAttention layers; not supported", top.source(),
         used[MixerKind::LinearAttn], used[MixerKind::PrefixLinearAttn]);

  // Validate every present slot; only the slot its layers come from fills the config of a kind.
  for (const auto& k : slot_keys) {
    auto sit = slots.find(k);
    if (sit == slots.end()) continue;
    MixerKind kind = kinds.at(k);
    bool fills = used.count(kind) && used.at(kind) == k;
    ModelConfig scratch = c;
    ModelConfig& dst = fills ? c : scratch;
    switch (kind) {
      case MixerKind::BaseConv:
        parse_baseconv(sit->second, c, dst.conv);
        break;
      case MixerKind::LinearAttn:
        parse_linear_attention(sit->second, c, g.d_key, dst.la, dst.switches.la_implementation);
        break;
      case MixerKind::PrefixLinearAttn:
        parse_prefix_linear_attention(sit->second, top, c, g.d_key, dst.la, dst.switches.la_implementation);
        break;
      case MixerKind::SlidingAttn:
        parse_sliding_attention(sit->second, c, dst.swa);
        break;
      default:
        break;
    }
  }

  bool has_pla =
      std::any_of(kinds.begin(), kinds.end(), [](auto& p) { return p.second == MixerKind::PrefixLinearAttn; });
  c.arch = has_pla ? Arch::JRT : Arch::Based;
  if (forced) {
    if (*forced == Arch::JRT && c.count(MixerKind::LinearAttn) > 0)
      fail("{}: field 'jrt_arch' is \"jrt\" but field '{}' is a LinearAttention (Based) mixer", top.source(),
           used[MixerKind::LinearAttn]);
    if (*forced == Arch::Based && c.count(MixerKind::PrefixLinearAttn) > 0)
      fail("{}: field 'jrt_arch' is \"based\" but field '{}' is a PrefixLinearAttention (JRT) mixer", top.source(),
           used[MixerKind::PrefixLinearAttn]);
    c.arch = *forced;
  }

  // Based fixed decay (models-spec §4.3). The reference applies decay_proj in decode whenever
  // use_decay_proj is set but the decay mask in prefill only with fixed_decay as well, and its
  // non-quadratic views assert there is no decay: only the consistent combinations are accepted.
  c.fixed_decay = top.boolean("fixed_decay", false);
  c.decay_const = top.number("decay_const", -3.0);
  if (c.count(MixerKind::LinearAttn) > 0) {
    if (c.la.use_decay_proj != c.fixed_decay)
      fail(
          "{}: field '{}.use_decay_proj' = {} and 'fixed_decay' = {} must agree (the reference's prefill and decode "
          "disagree otherwise)",
          top.source(), used[MixerKind::LinearAttn], c.la.use_decay_proj, c.fixed_decay);
    if (c.fixed_decay && c.switches.la_implementation != "quadratic")
      fail("{}: field '{}.parallel_implementation' = \"{}\" does not support the fixed decay (only \"quadratic\")",
           top.source(), used[MixerKind::LinearAttn], c.switches.la_implementation);
    if (c.fixed_decay && c.la.num_heads != c.n_head)
      fail("{}: field '{}.num_heads' = {} must equal n_head = {} with fixed_decay (one decay rate per head)",
           top.source(), used[MixerKind::LinearAttn], c.la.num_heads, c.n_head);
  }
  // DecayClass sizes its decay mask from mixer.l_max, else alt_mixer.l_max (asserted > 0 there).
  c.la.l_max = 0;
  if (c.fixed_decay) {
    for (const char* k : {"mixer", "alt_mixer"}) {
      auto s = slots.find(k);
      if (s != slots.end() && s->second.has("l_max")) {
        c.la.l_max = s->second.integer("l_max", std::nullopt, 1, kMaxLength);
        break;
      }
    }
  }
  if (c.fixed_decay && !(c.decay_const < 0))
    top.bad("decay_const", "must be < 0 (gamma_h = 1 - 2^(decay_const - h) must lie in (0, 1))",
            *top.find("decay_const"));
}

// ---- Mamba ------------------------------------------------------------------------------------------------

void parse_mamba(const Fields& top, ModelConfig& c) {
  c.arch = Arch::Mamba;
  c.d_model = top.integer("d_model", std::nullopt, 1, kMaxWidth);
  c.n_layer = top.integer("n_layer", std::nullopt, 1, kMaxLayers);
  c.vocab_size = top.integer("vocab_size", std::nullopt, 1, kMaxVocab);
  c.pad_vocab_size_multiple = top.integer("pad_vocab_size_multiple", 8, 1, kMaxWidth);  // MambaConfig default
  c.rms_norm = top.boolean("rms_norm", true);
  c.residual_in_fp32 = top.boolean("residual_in_fp32", true);
  c.switches.fused_add_norm = top.boolean("fused_add_norm", true);
  c.switches.use_fast_path = top.boolean("use_fast_path", true);
  c.switches.fused_dropout_add_ln = top.boolean("fused_dropout_add_ln", false);
  c.switches.fused_bias_fc = top.boolean("fused_bias_fc", false);
  c.switches.use_flash_attn = top.boolean("use_flash_attn", false);
  // MixerModel's norm_epsilon is not a MambaConfig field: always 1e-5 in the reference.
  c.norm_eps = top.number("norm_epsilon", 1e-5);
  if (!(c.norm_eps > 0)) top.bad("norm_epsilon", "must be > 0", *top.find("norm_epsilon"));
  c.tie_word_embeddings = true;  // MambaLMHeadModel.tie_weights is unconditional
  c.bos_token_id = top.integer("bos_token_id", 50256, 0, kMaxVocab);
  c.eos_token_id = top.integer("eos_token_id", 50256, 0, kMaxVocab);
  c.max_position_embeddings = 0;
  c.n_head = 0;
  c.mlp_hidden = 0;
  c.activation.clear();
  c.rotary_fraction = 0;
  c.rotary_dim = 0;
  c.layers.assign(size_t(c.n_layer), MixerKind::Mamba);

  MambaConfig& m = c.mamba;
  m = MambaConfig{};
  if (auto ssm = top.object("ssm_cfg")) {
    // Mamba.__init__ has no **kwargs: any other key is a TypeError in the reference.
    static const std::set<std::string> known = {"d_state", "d_conv",   "expand",        "dt_rank",   "dt_min", "dt_max",
                                                "dt_init", "dt_scale", "dt_init_floor", "conv_bias", "bias"};
    for (auto it = ssm->raw().begin(); it != ssm->raw().end(); ++it)
      if (!known.count(it.key()))
        fail(
            "{}: field '{}' is not a Mamba parameter (known: d_state, d_conv, expand, dt_rank, dt_min, dt_max, "
            "dt_init, dt_scale, dt_init_floor, conv_bias, bias)",
            top.source(), ssm->name(it.key()));
    m.d_state = ssm->integer("d_state", 16, 1, 4096);
    m.d_conv = ssm->integer("d_conv", 4, 1, kMaxKernel);
    m.expand = ssm->integer("expand", 2, 1, 64);
    m.conv_bias = ssm->boolean("conv_bias", true);
    m.bias = ssm->boolean("bias", false);
    if (const json* r = ssm->find("dt_rank")) {
      if (r->is_string()) {
        if (r->get<std::string>() != "auto") ssm->bad("dt_rank", "must be \"auto\" or an integer", *r);
      } else {
        m.dt_rank = ssm->integer("dt_rank", std::nullopt, 1, kMaxWidth);
      }
    }
  }
  m.d_inner = m.expand * c.d_model;
  if (m.dt_rank == 0) m.dt_rank = (c.d_model + 15) / 16;  // math.ceil(d_model / 16)
}

Arch parse_arch_name(const Fields& top) {
  std::string v = *top.string("jrt_arch");
  for (Arch a : {Arch::Based, Arch::JRT, Arch::Mamba, Arch::Attn})
    if (v == arch_name(a)) return a;
  fail("{}: field 'jrt_arch' must be one of \"based\", \"jrt\", \"mamba\", \"attn\", got \"{}\"", top.source(), v);
}

}  // namespace

ModelConfig parse_config(const std::string& json_text, const std::string& source) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", source, e.what());
  }
  if (!root.is_object()) fail("{}: a config must be a JSON object, got {}", source, root.type_name());
  Fields top(root, source, "");

  ModelConfig c;
  c.source = source;
  std::optional<Arch> forced;
  if (top.has("jrt_arch")) forced = parse_arch_name(top);

  bool mamba = forced ? *forced == Arch::Mamba : (top.has("ssm_cfg") || (top.has("d_model") && !top.has("mixer")));
  if (mamba) {
    parse_mamba(top, c);
  } else if (forced ? *forced == Arch::Attn : !top.has("mixer")) {
    if (top.has("mixer"))
      fail("{}: field 'jrt_arch' is \"attn\" but the config has a 'mixer' (a mixer GPT: jrt or based)", source);
    parse_attn(top, c);
  } else {
    parse_mixer_gpt(top, c, forced);
  }
  c.padded_vocab = round_up(c.vocab_size, c.pad_vocab_size_multiple);
  return c;
}

ModelConfig load_config(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("{}: cannot open the config file", path);
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail("{}: cannot read the config file", path);
  return parse_config(ss.str(), path);
}

int64_t param_count(const ModelConfig& c) {
  const int64_t d = c.d_model;
  const int64_t norm = c.rms_norm ? d : 2 * d;                              // LayerNorm has a bias
  int64_t p = c.padded_vocab * d * (c.tie_word_embeddings ? 1 : 2) + norm;  // embedding (+ lm_head), final norm
  if (c.arch == Arch::Mamba) {
    const MambaConfig& m = c.mamba;
    const int64_t di = m.d_inner;
    int64_t layer = norm;
    layer += 2 * di * d + (m.bias ? 2 * di : 0);      // in_proj
    layer += di * m.d_conv + (m.conv_bias ? di : 0);  // conv1d
    layer += (m.dt_rank + 2 * m.d_state) * di;        // x_proj
    layer += di * m.dt_rank + di;                     // dt_proj (+bias)
    layer += di * m.d_state + di;                     // A_log, D
    layer += d * di + (m.bias ? d : 0);               // out_proj
    return p + c.n_layer * layer;
  }
  p += c.max_position_embeddings * d;
  const int64_t F = c.mlp_hidden;
  const int64_t mlp = 2 * F * d + (c.mlp_fc1_bias ? 2 * F : 0) + d * F + (c.mlp_fc2_bias ? d : 0);
  for (MixerKind k : c.layers) {
    p += norm + (F > 0 ? norm + mlp : 0);  // F == 0: no MLP and no norm2
    switch (k) {
      case MixerKind::BaseConv: {
        const int64_t e = c.conv.expand_proj * d, di = e / 2, b = c.conv.use_bias ? 1 : 0;
        p += e * d + b * e + di * c.conv.kernel_size + d * di + b * d;
        break;
      }
      case MixerKind::LinearAttn:
      case MixerKind::PrefixLinearAttn: {
        const int64_t qk = c.la.num_heads * c.la.feature_dim * d, v = c.la.num_heads * c.la.head_dim * d;
        p += 2 * qk + 2 * v;                                // proj_q, proj_k, proj_v, out_proj
        if (k == MixerKind::PrefixLinearAttn) p += qk + v;  // proj_k_enc, proj_v_enc
        if (k == MixerKind::LinearAttn && c.la.use_decay_proj) p += c.la.num_heads * d;
        break;
      }
      case MixerKind::SlidingAttn:
      case MixerKind::MHA:
        p += 3 * d * d + (c.qkv_proj_bias ? 3 * d : 0) + d * d + (c.out_proj_bias ? d : 0);
        break;
      case MixerKind::Mamba:
        break;
    }
  }
  return p;
}

}  // namespace jrt
