// core/arena.h — host arenas: one aligned allocation carved into many tensors (parameters,
// gradients, activations), as llm.c does. Two passes: plan sizes, then allocate once.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace jrt {

class Arena {
 public:
  Arena() = default;
  explicit Arena(size_t capacity_bytes);
  Arena(Arena&&) noexcept = default;
  Arena& operator=(Arena&&) noexcept = default;

  // Carves a zeroed, 64-byte aligned tensor. Throws when the arena is full.
  Tensor alloc(DType t, Shape s);
  void reset() { used_ = 0; }  // every tensor handed out before is invalid afterwards
  size_t used() const { return used_; }
  size_t capacity() const { return cap_; }
  // Bytes a tensor of this type/shape takes in an arena (with alignment padding).
  static size_t footprint(DType t, const Shape& s);

 private:
  struct Free {
    void operator()(void* p) const;
  };
  std::unique_ptr<char, Free> buf_;
  size_t cap_ = 0, used_ = 0;
};

}  // namespace jrt
