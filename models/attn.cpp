// models/attn.cpp — the softmax-attention mixers: SlidingAttention of JRT / Based (models-spec §5.3,
// window_size/2 keys to the left + self) and the attention baseline's full causal MHA (§5.4).
//   qkv = x Wqkv^T (+ b)  [N, 3*H*hd]  (q block, k block, v block, each head-major)
//   q, k = rotary(q, k) at absolute positions (§5.5);  o = softmax(q k^T * hd^-0.5) v per head
//   y = o Wo^T (+ b)
// State per sequence: the post-rotary K/V cache (a ring of the last left_window rows for the window,
// a growing buffer for MHA). The attention mask is ignored, as in the reference.
#include <algorithm>
#include <cmath>

#include "core/threads.h"
#include "models/model.h"
#include "ops/attention.h"
#include "ops/linear.h"
#include "ops/rotary.h"

namespace jrt {
namespace {

struct KvState final : MixerState {
  ops::KvCache cache;
  explicit KvState(ops::KvCache c) : cache(std::move(c)) {}

  void save(ByteWriter& w) const override {
    w.put_floats(cache.keys());
    w.put_floats(cache.values());
  }
  // `pos` is restored before load (SequenceState::deserialize), which sizes a growing cache.
  void load(ByteReader& r) override {
    if (!cache.ring()) {
      JRT_CHECK(pos >= 0 && pos < (int64_t(1) << 40) / cache.width(), "state bytes: bad attention position {}", pos);
      cache.keys().assign(size_t(pos * cache.width()), 0.0f);
      cache.values().assign(size_t(pos * cache.width()), 0.0f);
    }
    r.get_floats(cache.keys(), "an attention key cache");
    r.get_floats(cache.values(), "an attention value cache");
  }
  int64_t bytes() const override { return int64_t((cache.keys().size() + cache.values().size()) * sizeof(float)); }
};

class SoftmaxAttentionMixer final : public Mixer {
 public:
  // left_window < 0: full causal attention.
  SoftmaxAttentionMixer(const ModelConfig& c, const WeightReader& w, const char* what, int64_t heads, int64_t head_dim,
                        int64_t left_window)
      : d_(c.d_model), H_(heads), hd_(head_dim), window_(left_window) {
    JRT_CHECK(H_ > 0, "{}: {} needs num_heads > 0, got {}", c.source, what, H_);
    if (hd_ <= 0) {
      JRT_CHECK(d_ % H_ == 0, "{}: {}: n_embd {} is not divisible by {} heads", c.source, what, d_, H_);
      hd_ = d_ / H_;
    }
    inner_ = H_ * hd_;
    // The reference takes int(rotary_emb_fraction * head_dim) for both mixers (gpt.py create_mha_cls,
    // sliding_window_additions).
    const int64_t rd = int64_t(c.rotary_fraction * double(hd_));
    JRT_CHECK(rd >= 0 && rd <= hd_, "{}: {}: rotary dim {} (rotary_emb_fraction {} x head dim {}) is out of range",
              c.source, what, rd, c.rotary_fraction, hd_);
    rotary_ = ops::Rotary(rd, c.rotary_base);
    JRT_CHECK(rotary_.rotated() <= hd_, "{}: {}: rotary dim {} rotates {} dims, more than the head dim {}", c.source,
              what, rd, rotary_.rotated(), hd_);
    scale_ = float(1.0 / std::sqrt(double(hd_)));
    wqkv_ = w.get("Wqkv.weight", {3 * inner_, d_});
    wo_ = w.get("out_proj.weight", {d_, inner_});
    // The reference builds these Linears with bias = qkv_proj_bias / out_proj_bias (both mixers).
    if (c.qkv_proj_bias) bqkv_ = w.get("Wqkv.bias", {3 * inner_});
    if (c.out_proj_bias) bo_ = w.get("out_proj.bias", {d_});
  }

  std::unique_ptr<MixerState> new_state() const override {
    return std::make_unique<KvState>(ops::KvCache(inner_, window_));
  }

  // x, y [N, d]
  void forward(const float* x, float* y, int64_t N, const MixerCall& call) const override {
    const int64_t S = int64_t(call.segs.size()), w3 = 3 * inner_;
    JRT_CHECK(call.states.size() == call.segs.size(), "attention: {} segments but {} states", S, call.states.size());
    std::vector<KvState*> st(static_cast<size_t>(S));
    for (int64_t s = 0; s < S; ++s) {
      const Segment& sg = call.segs[size_t(s)];
      JRT_CHECK(sg.offset >= 0 && sg.length >= 0 && sg.offset + sg.length <= N,
                "attention: segment [{}, +{}) outside the {} rows", sg.offset, sg.length, N);
      st[size_t(s)] = dynamic_cast<KvState*>(call.states[size_t(s)]);
      JRT_CHECK(st[size_t(s)] != nullptr, "attention: segment {} was given a state of another mixer", s);
      // Checked here because nothing may throw inside the parallel region below.
      const ops::KvCache& kc = st[size_t(s)]->cache;
      JRT_CHECK(kc.width() == inner_ && kc.left_window() == window_,
                "attention: segment {} was given the state of another attention layer", s);
      JRT_CHECK(st[size_t(s)]->pos >= 0 && (kc.ring() || kc.rows() == st[size_t(s)]->pos),
                "attention: segment {}'s cache holds {} positions but its state is at position {}", s, kc.rows(),
                st[size_t(s)]->pos);
    }

    std::vector<float> qkv(size_t(N * w3)), o(size_t(N * inner_), 0.0f);
    ops::linear_fwd(x, N, d_, wqkv_, bqkv_, w3, qkv.data());

    // Rotary on the q and k blocks (2H heads side by side) at each row's absolute position.
    std::vector<int64_t> pos(size_t(N), 0);
    for (int64_t s = 0; s < S; ++s) {
      const Segment& sg = call.segs[size_t(s)];
      for (int64_t t = 0; t < sg.length; ++t) pos[size_t(sg.offset + t)] = st[size_t(s)]->pos + t;
    }
    rotary_.apply(qkv.data(), w3, N, 2 * H_, hd_, pos);

    // Work items (segment, head, block of queries): enough parallelism for one long prefill as for a
    // batch of one-token decodes.
    constexpr int64_t kBlock = 64;
    struct Item {
      int64_t seg, head, t0, t1;
    };
    std::vector<Item> items;
    for (int64_t s = 0; s < S; ++s)
      for (int64_t h = 0; h < H_; ++h)
        for (int64_t t0 = 0; t0 < call.segs[size_t(s)].length; t0 += kBlock)
          items.push_back({s, h, t0, std::min(call.segs[size_t(s)].length, t0 + kBlock)});
    parallel_for(int64_t(items.size()), 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const Item& it = items[size_t(i)];
        const Segment& sg = call.segs[size_t(it.seg)];
        const KvState& s = *st[size_t(it.seg)];
        ops::KvRun runs[3];
        const int np = s.cache.past(s.pos, it.head * hd_, runs);
        const float* row0 = qkv.data() + sg.offset * w3 + it.head * hd_;
        runs[np] = ops::KvRun{row0 + inner_, row0 + 2 * inner_, w3, it.t1};
        ops::AttnQuery a;
        a.q = row0 + it.t0 * w3;
        a.ldq = w3;
        a.y = o.data() + (sg.offset + it.t0) * inner_ + it.head * hd_;
        a.ldy = inner_;
        a.L = it.t1 - it.t0;
        a.hd = hd_;
        a.pos = s.pos + it.t0;
        a.left_window = window_;
        a.scale = scale_;
        ops::attend(a, std::span<const ops::KvRun>(runs, size_t(np + 1)), s.cache.first(s.pos));
      }
    });

    ops::linear_fwd(o.data(), N, inner_, wo_, bo_, d_, y);

    // Only now may the caches change: every query above read the old contents.
    parallel_for(S, 1, [&](int64_t b, int64_t e) {
      for (int64_t s = b; s < e; ++s) {
        const Segment& sg = call.segs[size_t(s)];
        KvState& k = *st[size_t(s)];
        const float* row0 = qkv.data() + sg.offset * w3;
        k.cache.append(k.pos, row0 + inner_, w3, row0 + 2 * inner_, w3, sg.length);
        k.pos += sg.length;
      }
    });
  }

 private:
  int64_t d_, H_, hd_, window_, inner_ = 0;
  ops::Rotary rotary_;
  float scale_ = 1.0f;
  const float *wqkv_ = nullptr, *wo_ = nullptr, *bqkv_ = nullptr, *bo_ = nullptr;
};

}  // namespace

std::unique_ptr<Mixer> make_sliding_attention(const ModelConfig& c, const WeightReader& w) {
  JRT_CHECK(c.swa.window_size >= 0, "{}: SlidingAttention window_size must be >= 0, got {}", c.source,
            c.swa.window_size);
  return std::make_unique<SoftmaxAttentionMixer>(c, w, "SlidingAttention", c.swa.num_heads, c.swa.head_dim,
                                                 c.swa.left_window());
}

std::unique_ptr<Mixer> make_mha(const ModelConfig& c, const WeightReader& w) {
  return std::make_unique<SoftmaxAttentionMixer>(c, w, "MHA", c.attn.num_heads, c.attn.head_dim, -1);
}

}  // namespace jrt
