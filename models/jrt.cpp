// models/jrt.cpp — JRT-RNN's PrefixLinearAttention (models-spec §5.1): causal Taylor linear attention
// over the whole sequence, started from a non-causal summary of the first M = min(enc_length, L)
// tokens made with the encoder projections (proj_k_enc, proj_v_enc). The prefix is read when a
// sequence's state is fresh (pos == 0); later calls continue causally (decode, chunked continuation).
// Padding mask (§5.1.3): only when the call has > 1 token and L <= enc_length, k and k_enc rows of
// pads are zeroed BEFORE the feature map, so a pad still adds weight phi(0).phi(q) = 1 and its v —
// reproduced literally for parity with the reference evaluations.
#include "models/linear_attn_common.h"

namespace jrt {
namespace {

class PrefixLinearAttentionMixer final : public Mixer {
 public:
  PrefixLinearAttentionMixer(const ModelConfig& c, const WeightReader& w)
      : enc_length_(c.la.enc_length), use_mask_(c.la.use_mask) {
    core_.init(c, w);
    wke_ = w.get("proj_k_enc.weight", {core_.H * core_.fd, core_.d});
    wve_ = w.get("proj_v_enc.weight", {core_.H * core_.hd, core_.d});
  }
  std::unique_ptr<MixerState> new_state() const override { return core_.new_state(); }

  // x, y [N, d]
  void forward(const float* x, float* y, int64_t N, const MixerCall& call) const override {
    const int64_t H = core_.H, fd = core_.fd, hd = core_.hd, d = core_.d, D = core_.D;
    std::vector<float> q(size_t(N * H * fd)), k(size_t(N * H * fd)), v(size_t(N * H * hd)), o(size_t(N * H * hd));
    ops::linear_fwd(x, N, d, core_.wq, nullptr, H * fd, q.data());
    ops::linear_fwd(x, N, d, core_.wk, nullptr, H * fd, k.data());
    ops::linear_fwd(x, N, d, core_.wv, nullptr, H * hd, v.data());
    for (size_t s = 0; s < call.segs.size(); ++s) {
      const Segment& sg = call.segs[s];
      auto* st = static_cast<BufferState*>(call.states[s]);
      if (st->pos != 0) continue;  // the prefix was read by an earlier call
      const int64_t M = std::min(enc_length_, sg.length);
      const float* xs = x + sg.offset * d;
      std::vector<float> ke(size_t(M * H * fd)), ve(size_t(M * H * hd));
      ops::linear_fwd(xs, M, d, wke_, nullptr, H * fd, ke.data());
      ops::linear_fwd(xs, M, d, wve_, nullptr, H * hd, ve.data());
      if (use_mask_ && call.mask && sg.length > 1 && sg.length <= enc_length_) {
        const int64_t* mk = call.mask + sg.offset;
        for (int64_t t = 0; t < sg.length; ++t)
          if (mk[t] == 0) {
            std::fill_n(k.data() + (sg.offset + t) * H * fd, H * fd, 0.0f);
            if (t < M) std::fill_n(ke.data() + t * H * fd, H * fd, 0.0f);
          }
      }
      for (int64_t h = 0; h < H; ++h)
        ops::la_accumulate_state(ke.data() + h * fd, H * fd, ve.data() + h * hd, H * hd, M, fd, hd,
                                 st->bufs[0].data() + h * D * hd, st->bufs[1].data() + h * D);
    }
    core_.attend(q.data(), k.data(), v.data(), o.data(), call, nullptr, nullptr);
    ops::linear_fwd(o.data(), N, H * hd, core_.wo, nullptr, d, y);
  }

 private:
  LinearAttnCore core_;
  int64_t enc_length_;
  bool use_mask_;
  const float *wke_, *wve_;
};

}  // namespace

std::unique_ptr<Mixer> make_prefix_linear_attention(const ModelConfig& c, const WeightReader& w) {
  return std::make_unique<PrefixLinearAttentionMixer>(c, w);
}

}  // namespace jrt
