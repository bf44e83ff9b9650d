// train/train_mixers.h — the training forms of the sequence mixers (BaseConv, Based linear attention
// with optional fixed decay, JRT prefix linear attention, sliding-window / full softmax attention with
// rotary, Mamba) over a batch of B sequences of L tokens packed as [B*L, d] rows, and the planner that
// gives every layer's saved activations their place in one arena sized up front (llm.c style).
// Internal to train/: TrainModel (train/train_model.h) is the public interface.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/error.h"
#include "io/config.h"

namespace jrt::train_detail {

template <class T>
constexpr DType dtype_of() {
  return sizeof(T) == 8 ? DType::F64 : DType::F32;
}

// Collects (slot, element count) requests, then carves all of them from one arena.
template <class T>
class ActPlan {
 public:
  void add(T** slot, int64_t n) { reqs_.push_back({slot, std::max<int64_t>(n, 1)}); }
  Arena allocate() {
    size_t total = 0;
    for (const auto& r : reqs_) total += Arena::footprint(dtype_of<T>(), {r.n});
    Arena a(total);
    for (const auto& r : reqs_) *r.slot = a.alloc(dtype_of<T>(), {r.n}).template ptr<T>();
    reqs_.clear();
    return a;
  }

 private:
  struct Req {
    T** slot;
    int64_t n;
  };
  std::vector<Req> reqs_;
};

// Parameter and gradient pointers by checkpoint name (views into the model's two arenas).
template <class T>
class ParamTable {
 public:
  struct Entry {
    T* p = nullptr;
    T* g = nullptr;
    Shape shape;
  };
  void add(const std::string& name, T* p, T* g, Shape s) { m_[name] = Entry{p, g, std::move(s)}; }
  bool has(const std::string& name) const { return m_.count(name) != 0; }
  const Entry& at(const std::string& name, const Shape& expect) const {
    auto it = m_.find(name);
    JRT_CHECK(it != m_.end(), "training model: parameter '{}' is missing", name);
    JRT_CHECK(it->second.shape == expect, "training model: parameter '{}' has shape {}, expected {}", name,
              shape_str(it->second.shape), shape_str(expect));
    return it->second;
  }

 private:
  std::map<std::string, Entry> m_;
};

// One mixer layer. x, y, dy, dx: [B*L, d] rows; B <= Bmax and L <= Lmax of plan().
template <class T>
class TrainMixer {
 public:
  virtual ~TrainMixer() = default;
  // Requests the saved activations and scratch for batches of up to Bmax sequences of up to Lmax tokens.
  virtual void plan(ActPlan<T>& a, int64_t Bmax, int64_t Lmax) = 0;
  // y (=). Saves what backward needs; x must stay unchanged until backward.
  virtual void forward(const T* x, T* y, int64_t B, int64_t L) = 0;
  // dx (=) from dy; parameter gradients (+=).
  virtual void backward(const T* x, const T* dy, T* dx, int64_t B, int64_t L) = 0;
};

// prefix: "transformer.layers.<i>.mixer." (or backbone.layers.<i>.mixer. for Mamba).
template <class T>
std::unique_ptr<TrainMixer<T>> make_train_mixer(const ModelConfig& c, MixerKind kind, const ParamTable<T>& pt,
                                                const std::string& prefix);

}  // namespace jrt::train_detail
