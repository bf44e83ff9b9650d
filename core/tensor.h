// core/tensor.h — a non-owning strided tensor view (dtype, shape, strides in elements, device tag)
// and an owning host tensor. Ops take views; storage lives in arenas (core/arena.h), mmapped files
// (io/safetensors.h) or HostTensor.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace jrt {

enum class Device : uint8_t { CPU, CUDA };

using Shape = std::vector<int64_t>;
std::string shape_str(std::span<const int64_t> s);  // "[2, 96, 1008]"
int64_t shape_numel(std::span<const int64_t> s);

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::F32;
  Device device = Device::CPU;
  Shape shape;
  Shape strides;  // in elements

  Tensor() = default;
  Tensor(void* d, DType t, Shape s, Device dev = Device::CPU);  // contiguous strides

  int64_t dim() const { return int64_t(shape.size()); }
  int64_t size(int64_t i) const { return shape.at(size_t(i < 0 ? i + dim() : i)); }
  int64_t numel() const { return shape_numel(shape); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  bool is_contiguous() const;
  bool empty() const { return data == nullptr; }

  template <typename T>
  T* ptr() const { return static_cast<T*>(data); }
  template <typename T>
  std::span<T> span() const {
    JRT_CHECK(is_contiguous(), "span() of a non-contiguous tensor {}", shape_str(shape));
    return {static_cast<T*>(data), size_t(numel())};
  }

  // View of rows [begin, end) of dimension 0.
  Tensor slice0(int64_t begin, int64_t end) const;
  // Same data, new shape (must be contiguous and have the same numel).
  Tensor reshape(Shape s) const;
};

// Throws "<what>: expected dtype X shape [..], got Y [..]" when t differs.
void check_tensor(const Tensor& t, DType dt, std::span<const int64_t> shape, const std::string& what);

// An owning, contiguous host tensor (64-byte aligned, zero-initialised).
class HostTensor {
 public:
  HostTensor() = default;
  HostTensor(DType t, Shape s);
  HostTensor(HostTensor&&) noexcept = default;
  HostTensor& operator=(HostTensor&&) noexcept = default;
  HostTensor(const HostTensor&) = delete;
  HostTensor& operator=(const HostTensor&) = delete;

  const Tensor& view() const { return view_; }
  operator const Tensor&() const { return view_; }
  template <typename T>
  T* ptr() const { return view_.ptr<T>(); }
  template <typename T>
  std::span<T> span() const { return view_.span<T>(); }
  const Shape& shape() const { return view_.shape; }
  int64_t numel() const { return view_.numel(); }
  DType dtype() const { return view_.dtype; }

  static HostTensor copy_of(const Tensor& t);  // contiguous copy, same dtype

 private:
  struct Free {
    void operator()(void* p) const;
  };
  std::unique_ptr<void, Free> buf_;
  Tensor view_;
};

// Element conversion helpers over contiguous tensors.
void convert_to_f32(const Tensor& src, std::span<float> dst);  // any float/int dtype -> f32
HostTensor to_f32(const Tensor& src);

}  // namespace jrt
