// models/mamba.cpp — the Mamba mixer (models-spec §5.6): in_proj -> causal depthwise conv + SiLU ->
// x_proj / dt_proj -> selective scan -> gate SiLU(z) -> out_proj. Projections run as one GEMM over all
// packed rows; the conv and the scan run per sequence from its state (conv tail, SSM state h), so a
// parallel forward, a chunked prefill and a batched one-token decode share this one path.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/threads.h"
#include "models/model.h"
#include "ops/activation.h"
#include "ops/causal_conv1d.h"
#include "ops/linear.h"
#include "ops/selective_scan.h"

namespace jrt {

namespace {

// Segments shorter than this (decode steps, short continuations) are scanned together in one
// parallel loop over (segment, channel tile) instead of one parallel loop each.
constexpr int64_t kShortSegment = 16;
// Time block of the scan (ops/selective_scan.h); 0 = direct loop.
constexpr int64_t kScanChunk = 0;

class MambaMixer final : public Mixer {
 public:
  MambaMixer(const ModelConfig& c, const WeightReader& w) {
    const MambaConfig& m = c.mamba;
    d_ = c.d_model;
    di_ = m.d_inner;
    r_ = m.dt_rank;
    ns_ = m.d_state;
    k_ = m.d_conv;
    JRT_CHECK(d_ > 0 && di_ > 0 && r_ > 0 && ns_ > 0 && k_ > 0,
              "Mamba mixer: bad dimensions d_model {} d_inner {} dt_rank {} d_state {} d_conv {}", d_, di_, r_, ns_,
              k_);
    in_w_ = w.get("in_proj.weight", {2 * di_, d_});
    if (m.bias) in_b_ = w.get("in_proj.bias", {2 * di_});
    conv_w_ = w.get("conv1d.weight", {di_, 1, k_});
    if (m.conv_bias) conv_b_ = w.get("conv1d.bias", {di_});
    x_w_ = w.get("x_proj.weight", {r_ + 2 * ns_, di_});
    dt_w_ = w.get("dt_proj.weight", {di_, r_});
    dt_b_ = w.get("dt_proj.bias", {di_});
    const float* a_log = w.get("A_log", {di_, ns_});
    D_ = w.get("D", {di_});
    out_w_ = w.get("out_proj.weight", {d_, di_});
    if (m.bias) out_b_ = w.get("out_proj.bias", {d_});
    // A = -exp(A_log) once, as the reference does on every call (fp32).
    A_.resize(size_t(di_ * ns_));
    for (size_t i = 0; i < A_.size(); ++i) A_[i] = -std::exp(a_log[i]);
  }

  std::unique_ptr<MixerState> new_state() const override {
    auto s = std::make_unique<BufferState>();
    s->bufs.emplace_back(size_t((k_ - 1) * di_), 0.0f);  // conv tail: last d_conv-1 inputs, oldest first
    s->bufs.emplace_back(size_t(di_ * ns_), 0.0f);       // SSM state h [di, N]
    return s;
  }

  void forward(const float* x, float* y, int64_t N, const MixerCall& call) const override {
    JRT_CHECK(call.states.size() == call.segs.size(), "Mamba mixer: {} states for {} segments", call.states.size(),
              call.segs.size());
    std::vector<BufferState*> st(call.segs.size());
    for (size_t i = 0; i < call.segs.size(); ++i) {
      const Segment& sg = call.segs[i];
      JRT_CHECK(sg.offset >= 0 && sg.length >= 0 && sg.offset + sg.length <= N,
                "Mamba mixer: segment {} [{}, +{}) outside the {} packed rows", i, sg.offset, sg.length, N);
      st[i] = dynamic_cast<BufferState*>(call.states[i]);
      JRT_CHECK(st[i] && st[i]->bufs.size() == 2 && st[i]->bufs[0].size() == size_t((k_ - 1) * di_) &&
                    st[i]->bufs[1].size() == size_t(di_ * ns_),
                "Mamba mixer: state of segment {} is not a Mamba state of d_inner {}, d_state {}", i, di_, ns_);
    }
    if (N <= 0) return;
    const int64_t ldxz = 2 * di_, ldd = r_ + 2 * ns_;
    std::vector<float> xz(size_t(N * ldxz)), xc(size_t(N * di_)), dbc(size_t(N * ldd)), delta(size_t(N * di_)),
        ys(size_t(N * di_));

    ops::linear_fwd(x, N, d_, in_w_, in_b_, 2 * di_, xz.data());

    // Causal conv over each sequence's xc half, continuing from its tail; then SiLU on all rows.
    for (size_t i = 0; i < call.segs.size(); ++i) {
      const Segment& sg = call.segs[i];
      if (sg.length == 0) continue;
      ops::causal_conv1d_fwd(xz.data() + sg.offset * ldxz, ldxz, sg.length, di_, conv_w_, k_, conv_b_,
                             st[i]->bufs[0].data(), xc.data() + sg.offset * di_, di_);
    }
    parallel_for(N * di_, 4096, [&](int64_t b, int64_t e) {
      for (int64_t j = b; j < e; ++j) xc[size_t(j)] = ops::silu(xc[size_t(j)]);
    });

    // dt_raw | B | C, then delta = softplus(dt_proj(dt_raw) + dt_bias) in fp32 (the bias is the
    // scan's delta_bias in the reference, added after the projection).
    ops::linear_fwd(xc.data(), N, di_, x_w_, nullptr, ldd, dbc.data());
    ops::linear_fwd(dbc.data(), N, r_, dt_w_, nullptr, di_, delta.data(), ldd, di_);
    parallel_for(N, std::max<int64_t>(1, 4096 / di_), [&](int64_t b, int64_t e) {
      for (int64_t n = b; n < e; ++n) {
        float* dr = delta.data() + n * di_;
        for (int64_t c = 0; c < di_; ++c) dr[c] = ops::softplus(dr[c] + dt_b_[c]);
      }
    });

    scan(call, st, xc.data(), delta.data(), dbc.data(), ys.data());

    // y * silu(z), then out_proj.
    parallel_for(N, std::max<int64_t>(1, 4096 / di_), [&](int64_t b, int64_t e) {
      for (int64_t n = b; n < e; ++n) {
        float* yr = ys.data() + n * di_;
        const float* z = xz.data() + n * ldxz + di_;
        for (int64_t c = 0; c < di_; ++c) yr[c] = yr[c] * ops::silu(z[c]);
      }
    });
    ops::linear_fwd(ys.data(), N, di_, out_w_, out_b_, d_, y);

    for (size_t i = 0; i < call.segs.size(); ++i) st[i]->pos += call.segs[i].length;
  }

 private:
  ops::ScanIO scan_io(const Segment& sg, BufferState* s, const float* xc, const float* delta, const float* dbc,
                      float* ys) const {
    const int64_t ldd = r_ + 2 * ns_;
    ops::ScanIO io;
    io.x = xc + sg.offset * di_;
    io.ldx = di_;
    io.delta = delta + sg.offset * di_;
    io.ldd = di_;
    io.B = dbc + sg.offset * ldd + r_;
    io.ldb = ldd;
    io.C = dbc + sg.offset * ldd + r_ + ns_;
    io.ldc = ldd;
    io.y = ys + sg.offset * di_;
    io.ldy = di_;
    io.h = s->bufs[1].data();
    io.L = sg.length;
    return io;
  }

  void scan(const MixerCall& call, const std::vector<BufferState*>& st, const float* xc, const float* delta,
            const float* dbc, float* ys) const {
    const ops::ScanParams p{A_.data(), D_, di_, ns_};
    std::vector<ops::ScanIO> shorts;
    for (size_t i = 0; i < call.segs.size(); ++i) {
      const Segment& sg = call.segs[i];
      if (sg.length == 0) continue;
      ops::ScanIO io = scan_io(sg, st[i], xc, delta, dbc, ys);
      if (sg.length >= kShortSegment)
        ops::selective_scan_fwd(p, io, kScanChunk);
      else
        shorts.push_back(io);
    }
    if (shorts.empty()) return;
    // One task per (short segment, channel tile): tiles sized so each thread gets several tasks.
    const int64_t tiles = std::max<int64_t>(1, std::min<int64_t>(di_ / 16, 2 * num_threads()));
    const int64_t tile = (di_ + tiles - 1) / tiles;
    const int64_t ntask = int64_t(shorts.size()) * tiles;
    parallel_for(ntask, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const ops::ScanIO& io = shorts[size_t(t / tiles)];
        const int64_t c0 = (t % tiles) * tile, c1 = std::min(di_, c0 + tile);
        ops::selective_scan_channels(p, io, c0, c1, kScanChunk);
      }
    });
  }

  int64_t d_ = 0, di_ = 0, r_ = 0, ns_ = 0, k_ = 0;
  const float* in_w_ = nullptr;
  const float* in_b_ = nullptr;
  const float* conv_w_ = nullptr;
  const float* conv_b_ = nullptr;
  const float* x_w_ = nullptr;
  const float* dt_w_ = nullptr;
  const float* dt_b_ = nullptr;
  const float* D_ = nullptr;
  const float* out_w_ = nullptr;
  const float* out_b_ = nullptr;
  std::vector<float> A_;
};

}  // namespace

std::unique_ptr<Mixer> make_mamba(const ModelConfig& c, const WeightReader& w) {
  return std::make_unique<MambaMixer>(c, w);
}

}  // namespace jrt
