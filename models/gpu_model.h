// models/gpu_model.h — the whole-model GPU path for all four families: bf16 weights and activations,
// fp32 residual stream, accumulation and recurrent state, GEMMs through cuBLAS. It is built from a
// loaded CPU Model (which has validated config and weights) and serves a fixed number of sequence
// slots: a packed prefill of fresh sequences, then batched one-token decode steps of all slots,
// captured once as a CUDA graph and replayed. Only available in CUDA builds.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "models/model.h"

namespace jrt {

struct GpuModelOptions {
  int64_t slots = 1;         // sequences decoded together (batch size of decode steps)
  int64_t max_seq = 4096;    // longest sequence (prompt + generated): sizes the full-attention KV cache
  bool use_graph = true;     // capture the decode step in a CUDA graph
};

// Validates a --device value ("cpu" or "cuda") and refuses "cuda" up front, naming why, when this build
// has no CUDA backend or no device is visible. Returns true for "cuda".
bool use_gpu(const std::string& device);

class GpuModel {
 public:
  // Throws when the build has no CUDA or no device is visible.
  static std::unique_ptr<GpuModel> create(const Model& cpu, const GpuModelOptions& opt);
  ~GpuModel();

  int64_t slots() const;
  int64_t vocab() const;
  const ModelConfig& config() const;

  // Prefills fresh sequences into slots 0 .. S-1 (S = lengths.size() <= slots; the other slots are
  // reset too): ids packed [sum lengths]; mask [sum lengths] (1 token / 0 pad) or empty. Writes
  // logits of every row ([sum lengths, V]) when all_logits, else of each sequence's last row ([S, V]).
  void prefill(std::span<const int64_t> ids, std::span<const int64_t> lengths, std::span<const int64_t> mask,
               bool all_logits, float* logits);
  // One decode step of every slot: ids [slots] (a slot with nothing to decode may take any valid id).
  // Writes logits [slots, V] (host) unless logits is null.
  void step(std::span<const int64_t> ids, float* logits);
  // Greedy decoding on the device: n steps, each feeding every slot its own argmax of the previous
  // logits (the first step uses the argmax of the prefill's last rows). Returns ids [n, slots].
  // No host round trip between steps (throughput benchmark path).
  std::vector<int32_t> greedy(int64_t n);
  // Milliseconds spent by the last step()/greedy() on the device (events), for benchmarks.
  double last_device_ms() const;

  struct Impl;

 private:
  GpuModel();
  std::unique_ptr<Impl> impl_;
};

}  // namespace jrt
