// tools/cmd_inspect.cpp — `jrt inspect PATH`: the tensors of a checkpoint (name, dtype, shape, in file
// order), and when a config.json is there, the parsed config, parameter counts and the decode-state bytes
// per sequence under the CPU engine's and the reference's storage policies. Text or --json.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/config.h"
#include "io/state_size.h"
#include "io/weights.h"
#include "tools/cli.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Options {
  std::string path;
  std::string weights;
  bool json = false;
};

// Keys of the word embedding the lm_head is tied to (GPT-style, Mamba).
const char* const kEmbeddingKeys[] = {"transformer.embeddings.word_embeddings.weight", "backbone.embedding.weight"};
// Registered buffers that checkpoints carry next to the parameters (Based's DecayClass).
const char* const kBufferKeys[] = {"transformer.decay.decay"};

const char* const kParamRule =
    "unique tensors: lm_head.weight is counted once when it holds the word embedding (tied), buffers are not "
    "parameters";

std::string group(int64_t v) {  // 563904 -> "563,904"
  std::string s = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return v < 0 ? "-" + out : out;
}

bool same_tensor(const jrt::Tensor& a, const jrt::Tensor& b) {
  if (a.dtype != b.dtype || a.shape != b.shape) return false;
  if (a.data == b.data) return true;
  if (!a.is_contiguous() || !b.is_contiguous()) return false;
  return std::memcmp(a.data, b.data, a.nbytes()) == 0;
}

struct ParamSummary {
  int64_t params = 0;                                     // the rule above
  int64_t tensor_elements = 0;                            // every tensor in the file
  std::vector<std::pair<std::string, std::string>> tied;  // (lm_head.weight, embedding key)
  std::vector<std::string> buffers;
  std::string untied_note;  // lm_head present but different from the embedding
};

ParamSummary count_params(const jrt::WeightStore& w) {
  ParamSummary s;
  std::optional<std::string> skip;
  if (w.has("lm_head.weight")) {
    for (const char* e : kEmbeddingKeys) {
      if (!w.has(e)) continue;
      if (same_tensor(w.get("lm_head.weight"), w.get(e))) {
        s.tied.emplace_back("lm_head.weight", e);
        skip = "lm_head.weight";
      } else {
        s.untied_note = fmt::format("lm_head.weight differs from {}: counted separately", e);
      }
      break;
    }
  }
  for (const std::string& n : w.names()) {
    int64_t e = w.get(n).numel();
    s.tensor_elements += e;
    if (skip && n == *skip) continue;
    bool buffer = false;
    for (const char* b : kBufferKeys) buffer |= n == b;
    if (buffer) {
      s.buffers.push_back(n);
      continue;
    }
    s.params += e;
  }
  return s;
}

std::string file_format(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return "?";
  char head[2] = {};
  size_t n = std::fread(head, 1, 2, f);
  std::fclose(f);
  return n == 2 && head[0] == 'P' && head[1] == 'K' ? "pytorch" : "safetensors";
}

// Resolves PATH / --weights into (weights file, config file or "").
std::pair<std::string, std::string> resolve(const Options& o) {
  std::error_code ec;
  JRT_CHECK(fs::exists(o.path, ec), "{}: no such file or directory", o.path);
  if (fs::is_directory(o.path, ec)) {
    std::string weights;
    if (!o.weights.empty()) {
      fs::path w = o.weights;
      if (!fs::exists(w, ec) && w.is_relative()) w = fs::path(o.path) / w;  // a name inside the folder
      JRT_CHECK(fs::is_regular_file(w, ec), "{}: --weights file not found (also looked in {})", o.weights, o.path);
      weights = w.string();
    } else {
      weights = jrt::find_weights_file(o.path);
    }
    fs::path cfg = fs::path(o.path) / "config.json";
    return {weights, fs::is_regular_file(cfg, ec) ? cfg.string() : ""};
  }
  JRT_CHECK(o.weights.empty(), "--weights applies to a model folder; {} is a file", o.path);
  fs::path cfg = fs::path(o.path).parent_path() / "config.json";
  return {o.path, fs::is_regular_file(cfg, ec) ? cfg.string() : ""};
}

std::string layer_counts(const jrt::ModelConfig& c) {
  std::string s;
  for (jrt::MixerKind k : {jrt::MixerKind::BaseConv, jrt::MixerKind::LinearAttn, jrt::MixerKind::PrefixLinearAttn,
                           jrt::MixerKind::SlidingAttn, jrt::MixerKind::MHA, jrt::MixerKind::Mamba}) {
    if (c.count(k) == 0) continue;
    s += fmt::format("{}{} x{}", s.empty() ? "" : ", ", jrt::mixer_name(k), c.count(k));
  }
  return s;
}

std::vector<jrt::MixerKind> kinds_present(const jrt::ModelConfig& c) {
  std::vector<jrt::MixerKind> v;
  for (jrt::MixerKind k : {jrt::MixerKind::BaseConv, jrt::MixerKind::LinearAttn, jrt::MixerKind::PrefixLinearAttn,
                           jrt::MixerKind::SlidingAttn, jrt::MixerKind::MHA, jrt::MixerKind::Mamba})
    if (c.count(k)) v.push_back(k);
  return v;
}

// ---- text ---------------------------------------------------------------------------------------------

void print_config(const jrt::ModelConfig& c) {
  using jrt::MixerKind;
  std::printf("\nconfig: %s\n", c.source.c_str());
  auto row = [](const char* k, const std::string& v) { std::printf("  %-18s %s\n", k, v.c_str()); };
  row("arch", jrt::arch_name(c.arch));
  row("d_model", std::to_string(c.d_model));
  row("n_layer", std::to_string(c.n_layer));
  row("pattern", fmt::format("{}  ({})", c.pattern(), layer_counts(c)));
  row("vocab", fmt::format("{} -> {} (multiple of {})", c.vocab_size, c.padded_vocab, c.pad_vocab_size_multiple));
  row("norm", fmt::format("{} eps {}{}", c.rms_norm ? "RMSNorm" : "LayerNorm", c.norm_eps,
                          c.residual_in_fp32 ? ", residual fp32" : ""));
  row("tied embeddings", c.tie_word_embeddings ? "yes" : "no");
  if (c.arch != jrt::Arch::Mamba) {
    std::string mlp = fmt::format("{} ({}, multiple_of {})", c.mlp_hidden, c.activation, c.mlp_multiple_of);
    for (int64_t a : c.mlp_hidden_alternatives) mlp += fmt::format("; or {} with multiple_of 128", a);
    row("mlp hidden", mlp);
    if (c.max_position_embeddings > 0) row("learned positions", std::to_string(c.max_position_embeddings));
  }
  if (c.count(MixerKind::SlidingAttn) || c.count(MixerKind::MHA)) {
    const int64_t hd = c.count(MixerKind::MHA) ? c.attn.head_dim : c.swa.head_dim;
    const int64_t h = c.count(MixerKind::MHA) ? c.attn.num_heads : c.swa.num_heads;
    row("attention", fmt::format("{} heads, head_dim {}, rotary_dim {} (fraction {}, base {})", h, hd, c.rotary_dim,
                                 c.rotary_fraction, c.rotary_base));
  }
  if (c.count(MixerKind::SlidingAttn))
    row("window", fmt::format("window_size {} ({} keys back + self)", c.swa.window_size, c.swa.left_window()));
  if (c.count(MixerKind::LinearAttn) || c.count(MixerKind::PrefixLinearAttn)) {
    row("linear attention",
        fmt::format("{} heads, head_dim {}, feature_dim {} (feature size {}), implementation {}", c.la.num_heads,
                    c.la.head_dim, c.la.feature_dim, c.la.feature_size(), c.switches.la_implementation));
    if (c.count(MixerKind::PrefixLinearAttn))
      row("enc_length", fmt::format("{}{}", c.la.enc_length, c.la.use_mask ? " (padding mask honoured)" : ""));
    if (c.fixed_decay)
      row("decay",
          fmt::format("fixed decay, decay_const {}, decay_proj, decay mask l_max {}", c.decay_const, c.la.l_max));
  }
  if (c.count(MixerKind::BaseConv))
    row("baseconv", fmt::format("expand_proj {} (d_inner {}), kernel {}, {}", c.conv.expand_proj,
                                c.conv.expand_proj * c.d_model / 2, c.conv.kernel_size,
                                c.conv.use_bias ? "biased projections" : "no biases"));
  if (c.arch == jrt::Arch::Mamba)
    row("mamba", fmt::format("d_inner {} (expand {}), d_state {}, d_conv {}, dt_rank {}", c.mamba.d_inner,
                             c.mamba.expand, c.mamba.d_state, c.mamba.d_conv, c.mamba.dt_rank));
}

void print_state(const jrt::ModelConfig& c) {
  using jrt::StatePolicy;
  std::printf("\ndecode state per sequence (bytes)    %14s %14s\n", "cpu-fp32", "reference");
  for (jrt::MixerKind k : kinds_present(c)) {
    auto a = jrt::layer_state_bytes(c, k, StatePolicy::CpuFp32),
         b = jrt::layer_state_bytes(c, k, StatePolicy::Reference);
    std::string label = fmt::format("{} x{} (each)", jrt::mixer_name(k), c.count(k));
    if (a.per_token_bytes || b.per_token_bytes)
      std::printf("  %-34s %14s %14s  per token\n", label.c_str(), group(a.per_token_bytes).c_str(),
                  group(b.per_token_bytes).c_str());
    else
      std::printf("  %-34s %14s %14s\n", label.c_str(), group(a.fixed_bytes).c_str(), group(b.fixed_bytes).c_str());
  }
  auto a = jrt::model_state_bytes(c, StatePolicy::CpuFp32), b = jrt::model_state_bytes(c, StatePolicy::Reference);
  std::printf("  %-34s %14s %14s\n", "total fixed", group(a.fixed_bytes).c_str(), group(b.fixed_bytes).c_str());
  std::printf("  %-34s %14s %14s\n", "total per token", group(a.per_token_bytes).c_str(),
              group(b.per_token_bytes).c_str());
  std::printf(
      "  cpu-fp32: jrt CPU engine, every state fp32 (conv tails of kernel-1 inputs, SWA ring of window/2 entries)\n"
      "  reference: models-spec section 6 (LA/PLA, conv, Mamba fp32; SWA ring bf16; attention KV fp16)\n");
}

// ---- json ---------------------------------------------------------------------------------------------

json config_json(const jrt::ModelConfig& c) {
  json layers = json::array();
  for (jrt::MixerKind k : c.layers) layers.push_back(jrt::mixer_name(k));
  json j = {{"source", c.source},
            {"arch", jrt::arch_name(c.arch)},
            {"d_model", c.d_model},
            {"n_layer", c.n_layer},
            {"pattern", c.pattern()},
            {"layers", layers},
            {"vocab_size", c.vocab_size},
            {"pad_vocab_size_multiple", c.pad_vocab_size_multiple},
            {"padded_vocab", c.padded_vocab},
            {"norm_eps", c.norm_eps},
            {"rms_norm", c.rms_norm},
            {"residual_in_fp32", c.residual_in_fp32},
            {"tie_word_embeddings", c.tie_word_embeddings},
            {"n_head", c.n_head},
            {"mlp_hidden", c.mlp_hidden},
            {"mlp_hidden_alternatives", c.mlp_hidden_alternatives},
            {"max_position_embeddings", c.max_position_embeddings},
            {"rotary_dim", c.rotary_dim},
            {"rotary_fraction", c.rotary_fraction},
            {"rotary_base", c.rotary_base},
            {"param_count", jrt::param_count(c)}};
  using jrt::MixerKind;
  if (c.count(MixerKind::MHA)) j["attention"] = {{"num_heads", c.attn.num_heads}, {"head_dim", c.attn.head_dim}};
  if (c.count(MixerKind::SlidingAttn))
    j["sliding_attention"] = {{"num_heads", c.swa.num_heads},
                              {"head_dim", c.swa.head_dim},
                              {"window_size", c.swa.window_size},
                              {"left_window", c.swa.left_window()}};
  if (c.count(MixerKind::LinearAttn) || c.count(MixerKind::PrefixLinearAttn)) {
    j["linear_attention"] = {{"num_heads", c.la.num_heads},           {"head_dim", c.la.head_dim},
                             {"feature_dim", c.la.feature_dim},       {"feature_size", c.la.feature_size()},
                             {"enc_length", c.la.enc_length},         {"use_mask", c.la.use_mask},
                             {"use_decay_proj", c.la.use_decay_proj}, {"implementation", c.switches.la_implementation}};
    if (c.la.l_max > 0) j["linear_attention"]["decay_l_max"] = c.la.l_max;
    j["fixed_decay"] = c.fixed_decay;
    j["decay_const"] = c.decay_const;
  }
  if (c.count(MixerKind::BaseConv))
    j["baseconv"] = {{"expand_proj", c.conv.expand_proj},
                     {"d_inner", c.conv.expand_proj * c.d_model / 2},
                     {"kernel_size", c.conv.kernel_size},
                     {"use_bias", c.conv.use_bias}};
  if (c.arch == jrt::Arch::Mamba)
    j["mamba"] = {{"d_inner", c.mamba.d_inner}, {"d_state", c.mamba.d_state}, {"d_conv", c.mamba.d_conv},
                  {"expand", c.mamba.expand},   {"dt_rank", c.mamba.dt_rank}, {"conv_bias", c.mamba.conv_bias},
                  {"bias", c.mamba.bias}};
  return j;
}

json state_json(const jrt::ModelConfig& c) {
  json out;
  for (jrt::StatePolicy p : {jrt::StatePolicy::CpuFp32, jrt::StatePolicy::Reference}) {
    json per_kind;
    for (jrt::MixerKind k : kinds_present(c)) {
      auto s = jrt::layer_state_bytes(c, k, p);
      per_kind[jrt::mixer_name(k)] = {
          {"layers", c.count(k)}, {"fixed_bytes", s.fixed_bytes}, {"per_token_bytes", s.per_token_bytes}};
    }
    auto t = jrt::model_state_bytes(c, p);
    out[jrt::state_policy_name(p)] = {
        {"fixed_bytes", t.fixed_bytes}, {"per_token_bytes", t.per_token_bytes}, {"per_layer_kind", per_kind}};
  }
  return out;
}

int run(const Options& o) {
  auto [weights_path, config_path] = resolve(o);
  std::optional<jrt::ModelConfig> cfg;
  if (!config_path.empty()) cfg = jrt::load_config(config_path);
  jrt::WeightStore w = jrt::load_weights(weights_path);
  ParamSummary ps = count_params(w);
  const std::string format = file_format(weights_path);

  if (o.json) {
    json tensors = json::array();
    for (const std::string& n : w.names()) {
      const jrt::Tensor& t = w.get(n);
      tensors.push_back({{"name", n}, {"dtype", std::string(jrt::dtype_name(t.dtype))}, {"shape", t.shape}});
    }
    json tied = json::array();
    for (auto& [a, b] : ps.tied) tied.push_back({a, b});
    json j = {{"path", o.path},
              {"weights_file", weights_path},
              {"format", format},
              {"tensors", tensors},
              {"parameters",
               {{"count", ps.params},
                {"tensor_elements", ps.tensor_elements},
                {"tied", tied},
                {"buffers", ps.buffers},
                {"rule", kParamRule}}}};
    j["config"] = cfg ? config_json(*cfg) : json(nullptr);
    if (cfg) j["state"] = state_json(*cfg);
    std::string s = j.dump(1) + "\n";
    JRT_CHECK(std::fwrite(s.data(), 1, s.size(), stdout) == s.size(), "cannot write stdout");
    return 0;
  }

  std::printf("weights: %s (%s, %zu tensors)\n", weights_path.c_str(), format.c_str(), w.size());
  for (const std::string& n : w.names()) {
    const jrt::Tensor& t = w.get(n);
    std::printf("%s  %s  %s\n", n.c_str(), std::string(jrt::dtype_name(t.dtype)).c_str(),
                jrt::shape_str(t.shape).c_str());
  }
  std::printf("\nparameters: %s\n", group(ps.params).c_str());
  std::printf("  rule: %s\n", kParamRule);
  for (auto& [a, b] : ps.tied) std::printf("  tied: %s = %s (counted once)\n", a.c_str(), b.c_str());
  for (auto& b : ps.buffers) std::printf("  buffer (not counted): %s\n", b.c_str());
  if (!ps.untied_note.empty()) std::printf("  note: %s\n", ps.untied_note.c_str());
  std::printf("  tensor elements in the file: %s\n", group(ps.tensor_elements).c_str());
  if (!cfg) {
    std::printf("\nconfig: none (no config.json next to the weights)\n");
  } else {
    int64_t implied = jrt::param_count(*cfg);
    std::printf("  implied by the config: %s (%s)\n", group(implied).c_str(),
                implied == ps.params ? "matches" : "DIFFERS from the weights");
    print_config(*cfg);
    print_state(*cfg);
  }
  JRT_CHECK(std::fflush(stdout) == 0, "cannot write stdout");
  return 0;
}

jrt::cli::Runner setup(CLI::App& app) {
  auto opt = std::make_shared<Options>();
  auto* sub = app.add_subcommand(
      "inspect", "List a checkpoint's tensors; with its config.json also the config, parameters and state sizes");
  sub->add_option("path", opt->path,
                  "A model folder (config.json + model.safetensors or pytorch_model.bin) or one weights file")
      ->required();
  sub->add_option("--weights", opt->weights,
                  "Weights file to read in a model folder (a path, or a name inside the folder; default: "
                  "model.safetensors, else pytorch_model.bin)");
  sub->add_flag("--json", opt->json, "Print one JSON object instead of text");
  return [opt] { return run(*opt); };
}

JRT_REGISTER_COMMAND("inspect", setup);

}  // namespace
