// Tests of core/: dtype conversion, tensor views, arenas, parallel_for.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>

#include "core/arena.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "core/threads.h"

using namespace jrt;

TEST(DType, Bf16RoundTripAndRounding) {
  for (float f : {0.0f, 1.0f, -2.5f, 3.1415926f, 1e-30f, 6.5e4f, -1e20f}) {
    float back = bf16_to_f32(f32_to_bf16(f));
    EXPECT_LE(std::fabs(back - f), std::fabs(f) * (1.0f / 256)) << f;
  }
  // 1 + 2^-8 is exactly between two bf16 values: ties go to even (1.0).
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 1.0f / 256)), 1.0f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 3.0f / 256)), 1.0f + 4.0f / 256);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST(DType, F16AllValuesRoundTrip) {
  // Every finite f16 value converts to f32 and back unchanged.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if (((h >> 10) & 0x1f) == 0x1f) continue;  // inf / NaN
    float f = f16_to_f32(uint16_t(h));
    EXPECT_EQ(f32_to_f16(f), uint16_t(h)) << std::hex << h;
  }
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);  // overflow -> +inf
}

TEST(DType, SafetensorsNames) {
  DType t;
  EXPECT_TRUE(parse_safetensors_dtype("BF16", &t));
  EXPECT_EQ(t, DType::BF16);
  EXPECT_FALSE(parse_safetensors_dtype("F8_E4M3X", &t));
  EXPECT_EQ(dtype_size(DType::I64), 8u);
}

TEST(Tensor, ViewsAndChecks) {
  HostTensor h(DType::F32, {4, 3});
  auto s = h.span<float>();
  for (size_t i = 0; i < s.size(); ++i) s[i] = float(i);
  Tensor rows = h.view().slice0(1, 3);
  EXPECT_EQ(rows.shape, (Shape{2, 3}));
  EXPECT_EQ(rows.ptr<float>()[0], 3.0f);
  EXPECT_TRUE(rows.is_contiguous());
  Tensor t = h.view();
  t.shape = {3, 4};
  t.strides = {1, 3};  // transpose
  EXPECT_FALSE(t.is_contiguous());
  HostTensor c = HostTensor::copy_of(t);
  EXPECT_EQ(c.ptr<float>()[1], 3.0f);  // element (0,1) of the transpose = (1,0) of the original
  EXPECT_THROW(check_tensor(h, DType::F32, Shape{4, 4}, "x"), Error);
  EXPECT_NO_THROW(check_tensor(h, DType::F32, Shape{4, 3}, "x"));
  EXPECT_THROW(h.view().reshape({5}), Error);
}

TEST(Arena, CarvesAlignedTensorsAndRefusesOverflow) {
  Arena a(1024);
  Tensor x = a.alloc(DType::F32, {10});
  Tensor y = a.alloc(DType::BF16, {3});
  EXPECT_EQ(reinterpret_cast<uintptr_t>(x.data) % 64, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(y.data) % 64, 0u);
  EXPECT_EQ(a.used(), 128u);
  EXPECT_THROW(a.alloc(DType::F32, {1000}), Error);
}

TEST(Threads, ParallelForCoversRangeOnce) {
  std::vector<std::atomic<int>> hits(1000);
  parallel_for(1000, 7, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
  });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
}
