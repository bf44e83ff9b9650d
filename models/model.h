// models/model.h — the CPU model: a stack of pre-norm blocks (mixer [+ MLP]) built from a model
// folder, run over packed variable-length batches. Every mixer continues each sequence from its
// state, so one code path serves the parallel forward (fresh states), chunked prefill, and batched
// one-token decode (each sequence a length-1 segment).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/config.h"
#include "io/weights.h"
#include "state/state.h"

namespace jrt {

// One sequence's rows inside a packed [N, d] batch.
struct Segment {
  int64_t offset = 0, length = 0;
};

struct ExecOptions {
  int64_t la_chunk = 64;        // linear-attention chunk size (1 = pure recurrence)
  bool la_quadratic = false;    // use the O(L^2) parallel form (reference check) instead of chunks
};

// Per-call inputs that every mixer may read.
struct MixerCall {
  std::span<const Segment> segs;
  // One per segment; never null (fresh states for a plain forward). A stateful mixer continues each
  // sequence from its state, writes the state after the segment's last row back, and adds the
  // segment length to MixerState::pos (the absolute position of the segment's first row before).
  std::span<MixerState*> states;
  const int64_t* mask = nullptr;       // [N] 1 = token, 0 = pad, or null (only PLA reads it)
  ExecOptions opt;
};

class Mixer {
 public:
  virtual ~Mixer() = default;
  // x, y: [N, d] packed rows (y is overwritten).
  virtual void forward(const float* x, float* y, int64_t N, const MixerCall& call) const = 0;
  virtual std::unique_ptr<MixerState> new_state() const = 0;  // null for stateless mixers
};

// Weight access with the checks every builder needs: presence and exact shape, naming both.
class WeightReader {
 public:
  // f32 copies of tensors stored in other dtypes (or non-contiguous) are kept in *cache.
  WeightReader(const WeightStore& ws, std::string prefix, std::map<std::string, HostTensor>* cache,
               std::vector<std::string>* used = nullptr)
      : ws_(ws), prefix_(std::move(prefix)), cache_(cache), used_(used) {}
  // Returns the f32 data of prefix+name after checking its shape; throws naming tensor and shapes.
  const float* get(const std::string& name, std::vector<int64_t> shape) const;
  bool has(const std::string& name) const { return ws_.has(prefix_ + name); }
  const Tensor& raw(const std::string& name) const;
  WeightReader sub(const std::string& p) const { return WeightReader(ws_, prefix_ + p, cache_, used_); }

 private:
  const WeightStore& ws_;
  std::string prefix_;
  std::map<std::string, HostTensor>* cache_;
  std::vector<std::string>* used_;
};

class Model {
 public:
  // dir: a model folder (config.json + model.safetensors or pytorch_model.bin). weights_file overrides
  // the weights file inside it.
  static std::unique_ptr<Model> load(const std::string& dir, const std::string& weights_file = "");
  // From an already parsed config and weights (tests, synthetic benchmarks).
  static std::unique_ptr<Model> build(ModelConfig cfg, WeightStore weights);
  ~Model();

  const ModelConfig& config() const { return cfg_; }
  int64_t vocab() const { return cfg_.padded_vocab; }
  int64_t d_model() const { return cfg_.d_model; }
  ExecOptions& options() { return opt_; }
  // The checkpoint tensors after the loader's renames (the GPU model uploads them from here).
  const WeightStore& weights() const { return weights_; }

  std::unique_ptr<SequenceState> new_state() const;

  // Runs the packed batch through the network: ids [N] (segments give the sequences), optional mask
  // [N]; states (one per segment) are continued and updated. logits_rows selects which rows get
  // logits: all rows ([N, V]) when all_logits, else the last row of every segment ([S, V]).
  void run(std::span<const int64_t> ids, std::span<const Segment> segs, std::span<SequenceState*> states,
           const int64_t* mask, bool all_logits, float* logits) const;

  // Convenience: parallel forward of one sequence from a fresh state: logits [L, V].
  std::vector<float> forward(std::span<const int64_t> ids, const int64_t* mask = nullptr) const;

  // Optional debugging hook: every layer's residual stream after the block (row-major [N, d]).
  void set_hidden_capture(std::vector<std::vector<float>>* sink) const { capture_ = sink; }

  struct Block;

 private:
  Model();
  ModelConfig cfg_;
  WeightStore weights_;
  std::map<std::string, HostTensor> converted_;  // f32 copies of non-f32 checkpoint tensors
  ExecOptions opt_;
  std::vector<std::unique_ptr<Block>> blocks_;
  const float* embed_ = nullptr;   // [V, d]
  const float* lm_head_ = nullptr; // [V, d]
  const float* lnf_w_ = nullptr;
  const float* lnf_b_ = nullptr;
  mutable std::vector<std::vector<float>>* capture_ = nullptr;
};

// Builders of each family's mixers (models/based.cpp, jrt.cpp, mamba.cpp, attn.cpp, common.cpp).
std::unique_ptr<Mixer> make_baseconv(const ModelConfig& c, const WeightReader& w);
std::unique_ptr<Mixer> make_linear_attention(const ModelConfig& c, const WeightReader& w, const float* log_decay);
std::unique_ptr<Mixer> make_prefix_linear_attention(const ModelConfig& c, const WeightReader& w);
std::unique_ptr<Mixer> make_sliding_attention(const ModelConfig& c, const WeightReader& w);
std::unique_ptr<Mixer> make_mha(const ModelConfig& c, const WeightReader& w);
std::unique_ptr<Mixer> make_mamba(const ModelConfig& c, const WeightReader& w);

// A stateful mixer's state that is a list of fp32 buffers (covers every mixer here).
struct BufferState : MixerState {
  std::vector<std::vector<float>> bufs;
  void save(ByteWriter& w) const override;
  void load(ByteReader& r) override;
  int64_t bytes() const override;
};

}  // namespace jrt
