// core/dtype.h — element types, their sizes and names, and bf16/f16 <-> f32 conversion.
#pragma once
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace jrt {

enum class DType : uint8_t { F32, F64, BF16, F16, I8, U8, I16, I32, I64, Bool };

size_t dtype_size(DType t);
// Our canonical short name ("f32", "bf16", ...).
std::string_view dtype_name(DType t);
// safetensors names ("F32", "BF16", "I64", "BOOL", ...). parse_* returns false when unknown.
std::string_view dtype_safetensors_name(DType t);
bool parse_safetensors_dtype(std::string_view s, DType* out);

// bf16: the top 16 bits of an IEEE f32. Rounding to nearest even; NaN stays NaN.
inline float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(uint32_t(h) << 16); }
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

}  // namespace jrt
