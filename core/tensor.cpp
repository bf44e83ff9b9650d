// core/tensor.cpp — shape helpers, views, owning host tensors, dtype conversion.
#include "core/tensor.h"

#include <cstdlib>
#include <cstring>

namespace jrt {

std::string shape_str(std::span<const int64_t> s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) r += ", ";
    r += std::to_string(s[i]);
  }
  return r + "]";
}

int64_t shape_numel(std::span<const int64_t> s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

static Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

Tensor::Tensor(void* d, DType t, Shape s, Device dev)
    : data(d), dtype(t), device(dev), shape(std::move(s)), strides(contiguous_strides(shape)) {}

bool Tensor::is_contiguous() const {
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] != 1 && strides[i] != acc) return false;
    acc *= shape[i];
  }
  return true;
}

Tensor Tensor::slice0(int64_t begin, int64_t end) const {
  JRT_CHECK(dim() >= 1 && 0 <= begin && begin <= end && end <= shape[0], "slice0 [{}, {}) out of range for {}", begin,
            end, shape_str(shape));
  Tensor r = *this;
  r.data = static_cast<char*>(data) + begin * strides[0] * int64_t(dtype_size(dtype));
  r.shape[0] = end - begin;
  return r;
}

Tensor Tensor::reshape(Shape s) const {
  JRT_CHECK(is_contiguous(), "reshape of a non-contiguous tensor {}", shape_str(shape));
  JRT_CHECK(shape_numel(s) == numel(), "reshape {} -> {}: element counts differ", shape_str(shape), shape_str(s));
  return Tensor(data, dtype, std::move(s), device);
}

void check_tensor(const Tensor& t, DType dt, std::span<const int64_t> shape, const std::string& what) {
  bool same = t.dtype == dt && t.shape.size() == shape.size();
  for (size_t i = 0; same && i < shape.size(); ++i) same = t.shape[i] == shape[i];
  JRT_CHECK(same, "{}: expected {} {}, got {} {}", what, dtype_name(dt), shape_str(shape), dtype_name(t.dtype),
            shape_str(t.shape));
}

void HostTensor::Free::operator()(void* p) const { std::free(p); }

HostTensor::HostTensor(DType t, Shape s) {
  for (int64_t d : s) JRT_CHECK(d >= 0, "negative dimension in shape {}", shape_str(s));
  size_t bytes = size_t(shape_numel(s)) * dtype_size(t);
  size_t alloc = (bytes + 63) / 64 * 64;
  if (alloc == 0) alloc = 64;
  void* p = std::aligned_alloc(64, alloc);
  JRT_CHECK(p != nullptr, "out of host memory allocating {} bytes", alloc);
  std::memset(p, 0, alloc);
  buf_.reset(p);
  view_ = Tensor(p, t, std::move(s));
}

HostTensor HostTensor::copy_of(const Tensor& t) {
  JRT_CHECK(t.device == Device::CPU, "copy_of: tensor is not on the CPU");
  HostTensor r(t.dtype, t.shape);
  if (t.is_contiguous()) {
    std::memcpy(r.view_.data, t.data, t.nbytes());
    return r;
  }
  // General strided gather, element by element.
  const size_t es = dtype_size(t.dtype);
  const int64_t n = t.numel();
  std::vector<int64_t> idx(t.shape.size(), 0);
  char* dst = static_cast<char*>(r.view_.data);
  for (int64_t i = 0; i < n; ++i) {
    int64_t off = 0;
    for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * t.strides[d];
    std::memcpy(dst + size_t(i) * es, static_cast<const char*>(t.data) + off * int64_t(es), es);
    for (size_t d = idx.size(); d-- > 0;) {
      if (++idx[d] < t.shape[d]) break;
      idx[d] = 0;
    }
  }
  return r;
}

void convert_to_f32(const Tensor& src, std::span<float> dst) {
  JRT_CHECK(src.is_contiguous() && size_t(src.numel()) == dst.size(), "convert_to_f32: size mismatch");
  const size_t n = dst.size();
  switch (src.dtype) {
    case DType::F32: std::memcpy(dst.data(), src.data, n * 4); break;
    case DType::F64: for (size_t i = 0; i < n; ++i) dst[i] = float(src.ptr<double>()[i]); break;
    case DType::BF16: for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src.ptr<uint16_t>()[i]); break;
    case DType::F16: for (size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(src.ptr<uint16_t>()[i]); break;
    case DType::I8: for (size_t i = 0; i < n; ++i) dst[i] = float(src.ptr<int8_t>()[i]); break;
    case DType::U8: case DType::Bool: for (size_t i = 0; i < n; ++i) dst[i] = float(src.ptr<uint8_t>()[i]); break;
    case DType::I16: for (size_t i = 0; i < n; ++i) dst[i] = float(src.ptr<int16_t>()[i]); break;
    case DType::I32: for (size_t i = 0; i < n; ++i) dst[i] = float(src.ptr<int32_t>()[i]); break;
    case DType::I64: for (size_t i = 0; i < n; ++i) dst[i] = float(src.ptr<int64_t>()[i]); break;
  }
}

HostTensor to_f32(const Tensor& src) {
  HostTensor c = src.is_contiguous() ? HostTensor() : HostTensor::copy_of(src);
  const Tensor& s = src.is_contiguous() ? src : c.view();
  HostTensor r(DType::F32, s.shape);
  convert_to_f32(s, r.span<float>());
  return r;
}

}  // namespace jrt
