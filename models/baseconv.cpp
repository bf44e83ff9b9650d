// models/baseconv.cpp — BaseConv, the gated short convolution of JRT and Based (models-spec §5.2):
//   u = in_proj(x) + b  [N, 2*di];  u1 = u[:, :di] (conv branch), u2 = u[:, di:] (gate)
//   y = out_proj( silu(causal_conv_k3(u1)) * u2 ) + b_out
// State per sequence: the last K-1 conv inputs [K-1, di].
#include "models/model.h"
#include "ops/activation.h"
#include "ops/causal_conv1d.h"
#include "ops/linear.h"

namespace jrt {
namespace {

class BaseConvMixer final : public Mixer {
 public:
  BaseConvMixer(const ModelConfig& c, const WeightReader& w) : d_(c.d_model), K_(c.conv.kernel_size) {
    JRT_CHECK((c.conv.expand_proj * d_) % 2 == 0, "{}: BaseConv expand_proj * n_embd must be even", c.source);
    di_ = c.conv.expand_proj * d_ / 2;
    in_w_ = w.get("in_proj.weight", {2 * di_, d_});
    out_w_ = w.get("out_proj.weight", {d_, di_});
    conv_w_ = w.get("conv.conv.weight", {di_, 1, K_});
    if (c.conv.use_bias) {
      in_b_ = w.get("in_proj.bias", {2 * di_});
      out_b_ = w.get("out_proj.bias", {d_});
    }
  }

  std::unique_ptr<MixerState> new_state() const override {
    auto s = std::make_unique<BufferState>();
    s->bufs.emplace_back(size_t((K_ - 1) * di_), 0.0f);
    return s;
  }

  // x, y [N, d]
  void forward(const float* x, float* y, int64_t N, const MixerCall& call) const override {
    std::vector<float> u(size_t(N * 2 * di_)), c(size_t(N * di_));
    ops::linear_fwd(x, N, d_, in_w_, in_b_, 2 * di_, u.data());
    for (size_t s = 0; s < call.segs.size(); ++s) {
      const Segment& sg = call.segs[s];
      auto* st = static_cast<BufferState*>(call.states[s]);
      ops::causal_conv1d_fwd(u.data() + sg.offset * 2 * di_, 2 * di_, sg.length, di_, conv_w_, K_, nullptr,
                             st->bufs[0].data(), c.data() + sg.offset * di_, di_);
      st->pos += sg.length;
    }
    for (int64_t n = 0; n < N; ++n) {
      float* cr = c.data() + n * di_;
      const float* gate = u.data() + n * 2 * di_ + di_;
      for (int64_t i = 0; i < di_; ++i) cr[i] = ops::silu(cr[i]) * gate[i];
    }
    ops::linear_fwd(c.data(), N, di_, out_w_, out_b_, d_, y);
  }

 private:
  int64_t d_, K_, di_ = 0;
  const float *in_w_, *in_b_ = nullptr, *out_w_, *out_b_ = nullptr, *conv_w_;
};

}  // namespace

std::unique_ptr<Mixer> make_baseconv(const ModelConfig& c, const WeightReader& w) {
  return std::make_unique<BaseConvMixer>(c, w);
}

}  // namespace jrt
