// models/generate.cpp — the generation loop and token sampling.
#include "models/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

namespace jrt {

int64_t sample_token(std::span<const float> logits, const SamplingParams& p, std::mt19937_64& rng) {
  const int64_t V = int64_t(logits.size());
  if (p.greedy || p.top_k == 1) return int64_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
  std::vector<int64_t> idx(static_cast<size_t>(V));
  std::iota(idx.begin(), idx.end(), 0);
  int64_t K = p.top_k > 0 ? std::min(p.top_k, V) : V;
  // Descending by logit, index ascending among equals (deterministic).
  auto cmp = [&](int64_t a, int64_t b) { return logits[size_t(a)] > logits[size_t(b)] || (logits[size_t(a)] == logits[size_t(b)] && a < b); };
  std::partial_sort(idx.begin(), idx.begin() + K, idx.end(), cmp);
  idx.resize(size_t(K));
  const float T = p.temperature > 0 ? p.temperature : 1.0f;
  std::vector<double> prob(static_cast<size_t>(K));
  const double mx = logits[size_t(idx[0])] / T;
  double sum = 0;
  for (int64_t i = 0; i < K; ++i) sum += prob[size_t(i)] = std::exp(double(logits[size_t(idx[size_t(i)])]) / T - mx);
  for (auto& x : prob) x /= sum;
  if (p.top_p > 0 && p.top_p < 1) {
    // Ascending cumulative mass; drop the low tail whose cumulative mass <= 1 - top_p (always keep the top).
    double cum = 0;
    for (int64_t i = K - 1; i >= 1; --i) {
      cum += prob[size_t(i)];
      if (cum <= 1.0 - double(p.top_p)) prob[size_t(i)] = 0;
    }
  }
  std::discrete_distribution<int64_t> dist(prob.begin(), prob.end());
  return idx[size_t(dist(rng))];
}

namespace {

// The CPU model: one state per prompt; a step runs only the sequences still running.
class CpuDecoder final : public Decoder {
 public:
  explicit CpuDecoder(const Model& m) : m_(m) {}
  int64_t vocab() const override { return m_.vocab(); }
  void prefill(std::span<const int64_t> ids, std::span<const int64_t> lengths, std::span<const int64_t> mask,
               float* logits) override {
    std::vector<Segment> segs;
    std::vector<SequenceState*> sp;
    int64_t off = 0;
    states_.clear();
    for (int64_t len : lengths) {
      segs.push_back({off, len});
      off += len;
      states_.push_back(m_.new_state());
      sp.push_back(states_.back().get());
    }
    m_.run(ids, segs, sp, mask.empty() ? nullptr : mask.data(), false, logits);
  }
  void step(std::span<const int64_t> running, std::span<const int64_t> ids, float* logits) override {
    std::vector<Segment> ds;
    std::vector<SequenceState*> dsp;
    for (size_t r = 0; r < running.size(); ++r) {
      ds.push_back({int64_t(r), 1});
      dsp.push_back(states_[size_t(running[r])].get());
    }
    m_.run(ids, ds, dsp, nullptr, false, logits);
  }

 private:
  const Model& m_;
  std::vector<std::unique_ptr<SequenceState>> states_;
};

}  // namespace

void GpuDecoder::prefill(std::span<const int64_t> ids, std::span<const int64_t> lengths, std::span<const int64_t> mask,
                         float* logits) {
  g_.prefill(ids, lengths, mask, false, logits);
}

void GpuDecoder::step(std::span<const int64_t> running, std::span<const int64_t> ids, float* logits) {
  // Every slot steps (finished ones on token 0, their results unused); the running rows are copied out.
  const int64_t S = g_.slots(), V = g_.vocab();
  std::vector<int64_t> all(static_cast<size_t>(S), 0);
  for (size_t r = 0; r < running.size(); ++r) all[size_t(running[r])] = ids[r];
  buf_.resize(size_t(S * V));
  g_.step(all, buf_.data());
  for (size_t r = 0; r < running.size(); ++r)
    std::copy_n(buf_.data() + running[r] * V, V, logits + int64_t(r) * V);
}

GenerateResult generate(const Model& m, const std::vector<std::vector<int64_t>>& prompts,
                        const std::vector<std::vector<int64_t>>& masks, const GenerateOptions& opt) {
  CpuDecoder dec(m);
  return generate(dec, prompts, masks, opt);
}

GenerateResult generate(Decoder& m, const std::vector<std::vector<int64_t>>& prompts,
                        const std::vector<std::vector<int64_t>>& masks, const GenerateOptions& opt) {
  using clock = std::chrono::steady_clock;
  const int64_t B = int64_t(prompts.size()), V = m.vocab(), N = opt.max_new_tokens;
  JRT_CHECK(B >= 1, "generate: no prompts");
  JRT_CHECK(N >= 1, "generate: max-new-tokens must be >= 1, got {}", N);
  JRT_CHECK(masks.empty() || int64_t(masks.size()) == B, "generate: {} masks for {} prompts", masks.size(), B);
  GenerateResult res;
  res.tokens.resize(size_t(B));
  if (opt.keep_step_logits) res.step_logits.assign(size_t(B * N * V), 0.0f);
  std::mt19937_64 rng(opt.sampling.seed);

  std::vector<int64_t> ids, mask, lengths;
  bool any_mask = false;
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[size_t(b)];
    JRT_CHECK(!p.empty(), "generate: prompt {} is empty", b);
    lengths.push_back(int64_t(p.size()));
    ids.insert(ids.end(), p.begin(), p.end());
    if (!masks.empty() && !masks[size_t(b)].empty()) {
      JRT_CHECK(masks[size_t(b)].size() == p.size(), "generate: mask {} has {} entries, prompt has {}", b,
                masks[size_t(b)].size(), p.size());
      mask.insert(mask.end(), masks[size_t(b)].begin(), masks[size_t(b)].end());
      any_mask = true;
    } else {
      mask.insert(mask.end(), p.size(), 1);
    }
  }
  std::vector<float> logits(size_t(B * V));
  auto t0 = clock::now();
  m.prefill(ids, lengths, any_mask ? std::span<const int64_t>(mask) : std::span<const int64_t>(), logits.data());
  res.prefill_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  res.prefill_tokens = int64_t(ids.size());

  std::vector<int64_t> running(static_cast<size_t>(B));
  std::iota(running.begin(), running.end(), 0);
  auto t1 = clock::now();
  for (int64_t step = 0; step < N && !running.empty(); ++step) {
    // logits rows correspond to `running` in order.
    std::vector<int64_t> next_ids, still;
    for (size_t r = 0; r < running.size(); ++r) {
      const int64_t b = running[r];
      std::span<const float> row(logits.data() + r * size_t(V), size_t(V));
      if (opt.keep_step_logits)
        std::copy(row.begin(), row.end(), res.step_logits.begin() + (b * N + step) * V);
      int64_t tok = sample_token(row, opt.sampling, rng);
      res.tokens[size_t(b)].push_back(tok);
      bool stop = opt.on_token ? opt.on_token(b, tok) : false;
      if (!stop) {
        still.push_back(b);
        next_ids.push_back(tok);
      }
    }
    running = still;
    if (step + 1 == N || running.empty()) break;
    logits.resize(running.size() * size_t(V));
    m.step(running, next_ids, logits.data());
    res.decode_tokens += int64_t(running.size());
  }
  res.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return res;
}

}  // namespace jrt
