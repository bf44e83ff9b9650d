// models/generate.h — prefill + recurrent decode for a batch of prompts (each its own state), with
// greedy or top-k / top-p / temperature sampling as the reference's `sample` does it.
#pragma once
#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <vector>

#include "models/gpu_model.h"
#include "models/model.h"

namespace jrt {

struct SamplingParams {
  bool greedy = true;
  float temperature = 1.0f;
  int64_t top_k = 0;    // 0 = no top-k filter; 1 = greedy
  float top_p = 1.0f;   // 1 = no nucleus filter
  uint64_t seed = 0;
};

// Picks the next token from one logits row [V]. Greedy = argmax over the padded vocabulary, lowest
// index on ties (torch.argmax). Otherwise (reference order): top-k, divide by temperature, top-p
// (drop tokens whose ascending-sorted cumulative probability is <= 1 - top_p), then draw.
int64_t sample_token(std::span<const float> logits, const SamplingParams& p, std::mt19937_64& rng);

struct GenerateOptions {
  int64_t max_new_tokens = 16;
  SamplingParams sampling;
  bool keep_step_logits = false;
  // Called after each step for every still-running sequence; return true to stop that sequence.
  std::function<bool(int64_t seq, int64_t token)> on_token;
};

struct GenerateResult {
  std::vector<std::vector<int64_t>> tokens;  // per sequence, generated ids
  std::vector<float> step_logits;            // [B, max_new_tokens, V] (rows after a stop are zero)
  double prefill_seconds = 0, decode_seconds = 0;
  int64_t prefill_tokens = 0, decode_tokens = 0;
};

// What generate() drives: prefill of packed prompts (logits of each last row [B, V]), then steps
// of the still-running sequences (indices into the prompts; logits [running, V] in that order).
class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual int64_t vocab() const = 0;
  virtual void prefill(std::span<const int64_t> ids, std::span<const int64_t> lengths, std::span<const int64_t> mask,
                       float* logits) = 0;
  virtual void step(std::span<const int64_t> running, std::span<const int64_t> ids, float* logits) = 0;
};

// The GPU model as a Decoder (its slots must cover the prompts).
class GpuDecoder final : public Decoder {
 public:
  explicit GpuDecoder(GpuModel& g) : g_(g) {}
  int64_t vocab() const override { return g_.vocab(); }
  void prefill(std::span<const int64_t> ids, std::span<const int64_t> lengths, std::span<const int64_t> mask,
               float* logits) override;
  void step(std::span<const int64_t> running, std::span<const int64_t> ids, float* logits) override;

 private:
  GpuModel& g_;
  std::vector<float> buf_;
};

GenerateResult generate(Decoder& dec, const std::vector<std::vector<int64_t>>& prompts,
                        const std::vector<std::vector<int64_t>>& masks, const GenerateOptions& opt);

// prompts[b] (with masks[b] if not empty: 1 = token, 0 = pad) are prefilled together as one packed
// batch, then decoded one token per running sequence per step. Step t = 0's logits are the
// prefill's last row.
GenerateResult generate(const Model& m, const std::vector<std::vector<int64_t>>& prompts,
                        const std::vector<std::vector<int64_t>>& masks, const GenerateOptions& opt);

}  // namespace jrt
