// models/linear_attn_common.h — what Based's LinearAttention and JRT's PrefixLinearAttention share:
// the q/k/v projections, the per-(sequence, head) causal Taylor linear attention from a state
// (ops/linear_attention.h), and the state layout S [H, D, hd], z [H, D] in fp32.
#pragma once
#include <vector>

#include "core/threads.h"
#include "models/model.h"
#include "ops/linear.h"
#include "ops/linear_attention.h"
#include "ops/taylor.h"

namespace jrt {

struct LinearAttnCore {
  int64_t d = 0, H = 0, fd = 16, hd = 0, D = 0;
  float eps = 1e-12f;
  const float *wq = nullptr, *wk = nullptr, *wv = nullptr, *wo = nullptr;

  void init(const ModelConfig& c, const WeightReader& w) {
    d = c.d_model;
    H = c.la.num_heads;
    fd = c.la.feature_dim;
    hd = c.la.head_dim;
    D = ops::taylor_dim(fd);
    eps = float(c.la.eps);
    wq = w.get("proj_q.weight", {H * fd, d});
    wk = w.get("proj_k.weight", {H * fd, d});
    wv = w.get("proj_v.weight", {H * hd, d});
    wo = w.get("out_proj.weight", {d, H * hd});
  }

  std::unique_ptr<MixerState> new_state() const {
    auto s = std::make_unique<BufferState>();
    s->bufs.emplace_back(size_t(H * D * hd), 0.0f);  // S
    s->bufs.emplace_back(size_t(H * D), 0.0f);       // z
    return s;
  }

  // Causal LA over every (segment, head): q,k [N, H*fd], v [N, H*hd] -> o [N, H*hd]. gamma[h] (or null),
  // dt [N, H] (or null).
  void attend(const float* q, const float* k, const float* v, float* o, const MixerCall& call, const double* gamma,
              const float* dt) const {
    const int64_t S = int64_t(call.segs.size());
    parallel_for(S * H, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t s = i / H, h = i % H;
        const Segment& sg = call.segs[size_t(s)];
        auto* st = static_cast<BufferState*>(call.states[size_t(s)]);
        ops::LaHead a;
        a.q = q + sg.offset * H * fd + h * fd;
        a.ldq = H * fd;
        a.k = k + sg.offset * H * fd + h * fd;
        a.ldk = H * fd;
        a.v = v + sg.offset * H * hd + h * hd;
        a.ldv = H * hd;
        a.y = o + sg.offset * H * hd + h * hd;
        a.ldy = H * hd;
        if (dt) {
          a.dt = dt + sg.offset * H + h;
          a.lddt = H;
        }
        a.L = sg.length;
        a.fd = fd;
        a.dv = hd;
        a.gamma = gamma ? gamma[h] : 1.0;
        a.eps = eps;
        float* Sh = st->bufs[0].data() + h * D * hd;
        float* zh = st->bufs[1].data() + h * D;
        if (sg.length == 1)
          ops::la_step(a, Sh, zh);
        else if (call.opt.la_quadratic)
          ops::la_quadratic(a, Sh, zh);
        else
          ops::la_chunked(a, Sh, zh, call.opt.la_chunk);
      }
    });
    for (size_t s = 0; s < call.segs.size(); ++s) call.states[s]->pos += call.segs[s].length;
  }
};

}  // namespace jrt
