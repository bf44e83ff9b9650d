// models/params.cpp — parameter enumeration per family (models-spec §7) and random init.
#include "models/params.h"

#include <cmath>
#include <random>

namespace jrt {

std::vector<ParamSpec> parameter_specs(const ModelConfig& c) {
  std::vector<ParamSpec> p;
  const int64_t d = c.d_model, V = c.padded_vocab;
  auto add = [&](std::string n, Shape s, ParamRole r) { p.push_back({std::move(n), std::move(s), r}); };
  if (c.arch == Arch::Mamba) {
    const auto& m = c.mamba;
    add("backbone.embedding.weight", {V, d}, ParamRole::Embedding);
    for (int64_t i = 0; i < c.n_layer; ++i) {
      const std::string l = "backbone.layers." + std::to_string(i) + ".";
      add(l + "mixer.A_log", {m.d_inner, m.d_state}, ParamRole::MambaALog);
      add(l + "mixer.D", {m.d_inner}, ParamRole::MambaD);
      add(l + "mixer.in_proj.weight", {2 * m.d_inner, d}, ParamRole::Matrix);
      add(l + "mixer.conv1d.weight", {m.d_inner, 1, m.d_conv}, ParamRole::ConvWeight);
      if (m.conv_bias) add(l + "mixer.conv1d.bias", {m.d_inner}, ParamRole::Bias);
      add(l + "mixer.x_proj.weight", {m.dt_rank + 2 * m.d_state, m.d_inner}, ParamRole::Matrix);
      add(l + "mixer.dt_proj.weight", {m.d_inner, m.dt_rank}, ParamRole::Matrix);
      add(l + "mixer.dt_proj.bias", {m.d_inner}, ParamRole::MambaDtBias);
      add(l + "mixer.out_proj.weight", {d, m.d_inner}, ParamRole::Matrix);
      add(l + "norm.weight", {d}, ParamRole::NormWeight);
    }
    add("backbone.norm_f.weight", {d}, ParamRole::NormWeight);
    return p;
  }
  add("transformer.embeddings.word_embeddings.weight", {V, d}, ParamRole::Embedding);
  if (c.arch == Arch::Based && c.la.use_decay_proj) add("transformer.decay.decay", {c.la.num_heads}, ParamRole::Buffer);
  const int64_t gated = c.activation == "swiglu" ? 2 : 1;
  for (int64_t i = 0; i < c.n_layer; ++i) {
    const std::string l = "transformer.layers." + std::to_string(i) + ".";
    const std::string mx = l + "mixer.";
    switch (c.layers[size_t(i)]) {
      case MixerKind::BaseConv: {
        const int64_t di = c.conv.expand_proj * d / 2;
        add(mx + "in_proj.weight", {2 * di, d}, ParamRole::Matrix);
        if (c.conv.use_bias) add(mx + "in_proj.bias", {2 * di}, ParamRole::Bias);
        add(mx + "out_proj.weight", {d, di}, ParamRole::Matrix);
        if (c.conv.use_bias) add(mx + "out_proj.bias", {d}, ParamRole::Bias);
        add(mx + "conv.conv.weight", {di, 1, c.conv.kernel_size}, ParamRole::ConvWeight);
        break;
      }
      case MixerKind::LinearAttn:
      case MixerKind::PrefixLinearAttn: {
        const int64_t H = c.la.num_heads, fd = c.la.feature_dim, hd = c.la.head_dim;
        add(mx + "proj_q.weight", {H * fd, d}, ParamRole::Matrix);
        add(mx + "proj_k.weight", {H * fd, d}, ParamRole::Matrix);
        add(mx + "proj_v.weight", {H * hd, d}, ParamRole::Matrix);
        if (c.layers[size_t(i)] == MixerKind::PrefixLinearAttn) {
          add(mx + "proj_k_enc.weight", {H * fd, d}, ParamRole::Matrix);
          add(mx + "proj_v_enc.weight", {H * hd, d}, ParamRole::Matrix);
        }
        add(mx + "out_proj.weight", {d, H * hd}, ParamRole::Matrix);
        if (c.layers[size_t(i)] == MixerKind::LinearAttn && c.la.use_decay_proj)
          add(mx + "decay_proj.weight", {H, d}, ParamRole::Matrix);
        break;
      }
      case MixerKind::SlidingAttn:
      case MixerKind::MHA: {
        const int64_t H = c.layers[size_t(i)] == MixerKind::MHA ? c.attn.num_heads : c.swa.num_heads;
        const int64_t hd = c.layers[size_t(i)] == MixerKind::MHA ? c.attn.head_dim : c.swa.head_dim;
        add(mx + "Wqkv.weight", {3 * H * hd, d}, ParamRole::Matrix);
        if (c.qkv_proj_bias) add(mx + "Wqkv.bias", {3 * H * hd}, ParamRole::Bias);
        add(mx + "out_proj.weight", {d, H * hd}, ParamRole::Matrix);
        if (c.out_proj_bias) add(mx + "out_proj.bias", {d}, ParamRole::Bias);
        break;
      }
      case MixerKind::Mamba: break;
    }
    add(l + "norm1.weight", {d}, ParamRole::NormWeight);
    if (!c.rms_norm) add(l + "norm1.bias", {d}, ParamRole::Bias);
    if (c.mlp_hidden == 0) continue;  // no MLP (n_inner 0): no norm2 either
    add(l + "mlp.fc1.weight", {gated * c.mlp_hidden, d}, ParamRole::Matrix);
    if (c.mlp_fc1_bias) add(l + "mlp.fc1.bias", {gated * c.mlp_hidden}, ParamRole::Bias);
    add(l + "mlp.fc2.weight", {d, c.mlp_hidden}, ParamRole::Matrix);
    if (c.mlp_fc2_bias) add(l + "mlp.fc2.bias", {d}, ParamRole::Bias);
    add(l + "norm2.weight", {d}, ParamRole::NormWeight);
    if (!c.rms_norm) add(l + "norm2.bias", {d}, ParamRole::Bias);
  }
  add("transformer.ln_f.weight", {d}, ParamRole::NormWeight);
  if (!c.rms_norm) add("transformer.ln_f.bias", {d}, ParamRole::Bias);
  return p;
}

WeightStore random_weights(const ModelConfig& c, uint64_t seed, float std) {
  WeightStore ws;
  ws.set_source("random init (seed " + std::to_string(seed) + ")");
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, std);
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  for (const ParamSpec& s : parameter_specs(c)) {
    HostTensor t(DType::F32, s.shape);
    float* p = t.ptr<float>();
    const int64_t n = t.numel();
    switch (s.role) {
      case ParamRole::Matrix:
      case ParamRole::Embedding:
        for (int64_t i = 0; i < n; ++i) p[i] = normal(rng);
        break;
      case ParamRole::ConvWeight: {
        // nn.Conv1d default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = kernel size (depthwise).
        const double b = 1.0 / std::sqrt(double(s.shape.back()));
        for (int64_t i = 0; i < n; ++i) p[i] = float((2 * unif(rng) - 1) * b);
        break;
      }
      case ParamRole::NormWeight:
      case ParamRole::MambaD:
        for (int64_t i = 0; i < n; ++i) p[i] = 1.0f;
        break;
      case ParamRole::Bias: break;
      case ParamRole::MambaALog: {
        const int64_t N = s.shape[1];
        for (int64_t i = 0; i < n; ++i) p[i] = float(std::log(double(i % N + 1)));
        break;
      }
      case ParamRole::MambaDtBias:
        for (int64_t i = 0; i < n; ++i) {
          double dt = std::exp(unif(rng) * (std::log(0.1) - std::log(0.001)) + std::log(0.001));
          p[i] = float(dt + std::log(-std::expm1(-dt)));  // inverse softplus
        }
        break;
      case ParamRole::Buffer:  // Based's log decay rates
        for (int64_t i = 0; i < n; ++i) p[i] = float(std::log(1.0 - std::pow(2.0, c.decay_const - double(i))));
        break;
    }
    ws.add_owned(s.name, std::move(t));
  }
  return ws;
}

}  // namespace jrt
