// models/based.cpp — Based's LinearAttention mixer (models-spec §4): causal Taylor linear attention
// with the optional fixed-decay variant (§4.3: numerator decayed by gamma_h per step and scaled by
// dt = decay_proj(x), denominator undecayed). Decode adds phi(k)v^T ONCE per step: the reference
// repo adds it twice (§4.2, a bug); we implement the math its parallel form defines.
#include "models/linear_attn_common.h"

namespace jrt {
namespace {

class LinearAttentionMixer final : public Mixer {
 public:
  LinearAttentionMixer(const ModelConfig& c, const WeightReader& w, const float* log_decay) {
    core_.init(c, w);
    if (c.la.use_decay_proj) {
      JRT_CHECK(log_decay != nullptr, "{}: use_decay_proj needs the decay rates (fixed_decay)", c.source);
      wdt_ = w.get("decay_proj.weight", {core_.H, core_.d});
      for (int64_t h = 0; h < core_.H; ++h) gamma_.push_back(std::exp(double(log_decay[h])));
    }
  }
  std::unique_ptr<MixerState> new_state() const override { return core_.new_state(); }

  // x, y [N, d]
  void forward(const float* x, float* y, int64_t N, const MixerCall& call) const override {
    const int64_t H = core_.H, fd = core_.fd, hd = core_.hd, d = core_.d;
    std::vector<float> q(size_t(N * H * fd)), k(size_t(N * H * fd)), v(size_t(N * H * hd)), o(size_t(N * H * hd));
    ops::linear_fwd(x, N, d, core_.wq, nullptr, H * fd, q.data());
    ops::linear_fwd(x, N, d, core_.wk, nullptr, H * fd, k.data());
    ops::linear_fwd(x, N, d, core_.wv, nullptr, H * hd, v.data());
    std::vector<float> dt;
    if (wdt_) {
      dt.resize(size_t(N * H));
      ops::linear_fwd(x, N, d, wdt_, nullptr, H, dt.data());
    }
    core_.attend(q.data(), k.data(), v.data(), o.data(), call, gamma_.empty() ? nullptr : gamma_.data(),
                 wdt_ ? dt.data() : nullptr);
    ops::linear_fwd(o.data(), N, H * hd, core_.wo, nullptr, d, y);
  }

 private:
  LinearAttnCore core_;
  const float* wdt_ = nullptr;
  std::vector<double> gamma_;
};

}  // namespace

std::unique_ptr<Mixer> make_linear_attention(const ModelConfig& c, const WeightReader& w, const float* log_decay) {
  return std::make_unique<LinearAttentionMixer>(c, w, log_decay);
}

}  // namespace jrt
