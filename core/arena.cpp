// core/arena.cpp — bump allocation in one block.
#include "core/arena.h"

#include <cstdlib>
#include <cstring>

namespace jrt {

static constexpr size_t kAlign = 64;

Arena::Arena(size_t capacity_bytes) : cap_((capacity_bytes + kAlign - 1) / kAlign * kAlign) {
  if (cap_ == 0) return;
  void* p = std::aligned_alloc(kAlign, cap_);
  JRT_CHECK(p != nullptr, "out of host memory allocating an arena of {} bytes", cap_);
  buf_.reset(static_cast<char*>(p));
}

void Arena::Free::operator()(void* p) const { std::free(p); }

size_t Arena::footprint(DType t, const Shape& s) {
  size_t b = size_t(shape_numel(s)) * dtype_size(t);
  return (b + kAlign - 1) / kAlign * kAlign;
}

Tensor Arena::alloc(DType t, Shape s) {
  size_t need = footprint(t, s);
  JRT_CHECK(used_ + need <= cap_, "arena full: {} of {} bytes used, {} more requested for {} {}", used_, cap_, need,
            dtype_name(t), shape_str(s));
  char* p = buf_.get() + used_;
  used_ += need;
  std::memset(p, 0, need);
  return Tensor(p, t, std::move(s));
}

}  // namespace jrt
