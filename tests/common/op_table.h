// tests/common/op_table.h — the CUDA-vs-CPU op table (llama.cpp test-backend-ops style): every GPU op
// case prints one row "OPROW <op> <shape> nmse=<..> max_rel=<..> tol=<..> OK|FAIL" and fails the
// test when over its tolerance. `ctest -L cuda -V | grep OPROW` collects the table.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace jrt::test {

struct OpErr {
  double nmse = 0, max_rel = 0;
};

// nmse = sum (got-ref)^2 / sum ref^2; max_rel = max |got-ref| / max |ref|.
inline OpErr op_error(const float* got, const float* ref, size_t n) {
  double se = 0, sr = 0, mx = 0, mr = 0;
  for (size_t i = 0; i < n; ++i) {
    const double e = double(got[i]) - double(ref[i]);
    se += e * e;
    sr += double(ref[i]) * double(ref[i]);
    mx = std::max(mx, std::fabs(e));
    mr = std::max(mr, std::fabs(double(ref[i])));
  }
  if (!std::isfinite(se)) return {INFINITY, INFINITY};
  return {se / std::max(sr, 1e-30), mx / std::max(mr, 1e-30)};
}
inline OpErr op_error(const std::vector<float>& got, const std::vector<float>& ref) {
  EXPECT_EQ(got.size(), ref.size());
  return op_error(got.data(), ref.data(), std::min(got.size(), ref.size()));
}

// Rounds x to bf16 in place (so the CPU reference sees exactly the GPU's inputs); returns the bits.
inline std::vector<uint16_t> to_bf16(std::vector<float>& x) {
  std::vector<uint16_t> b(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    b[i] = f32_to_bf16(x[i]);
    x[i] = bf16_to_f32(b[i]);
  }
  return b;
}

// x <- N(0, 1) draws rounded to bf16 (in order, one per element); returns the bits.
inline std::vector<uint16_t> random_bf16(std::vector<float>& x, std::mt19937& rng) {
  std::normal_distribution<float> n(0.0f, 1.0f);
  for (auto& e : x) e = n(rng);
  return to_bf16(x);
}

// cu_seqlens of packed sequences of these lengths ([0, l0, l0 + l1, ...]) and "l0,l1,..." for row labels.
inline std::vector<int32_t> offsets(const std::vector<int>& lens) {
  std::vector<int32_t> cu(1, 0);
  for (int l : lens) cu.push_back(cu.back() + l);
  return cu;
}
inline std::string join(const std::vector<int>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(v[i]);
  }
  return s;
}

// Prints the row and checks both bounds.
inline void op_report(const std::string& op, const std::string& shape, OpErr e, double nmse_tol, double max_rel_tol) {
  const bool ok = e.nmse <= nmse_tol && e.max_rel <= max_rel_tol;
  std::printf("OPROW %-22s %-34s nmse=%.2e max_rel=%.2e tol=(%.0e, %.0e) %s\n", op.c_str(), shape.c_str(), e.nmse,
              e.max_rel, nmse_tol, max_rel_tol, ok ? "OK" : "FAIL");
  std::fflush(stdout);
  EXPECT_LE(e.nmse, nmse_tol) << op << " " << shape;
  EXPECT_LE(e.max_rel, max_rel_tol) << op << " " << shape;
}

// Greedy ids of a bf16 GPU run may legitimately differ from the reference's where the reference's top-2
// logit margin is within the GPU's error: a near tie is a margin under 0.1 x the largest |logit| of the run
// (the bf16 logit bound of the model tests, max-rel 5e-2, with a factor 2 for either side).
inline bool near_tie(const float* row, int64_t V, float scale) {
  std::vector<float> top(row, row + V);
  std::partial_sort(top.begin(), top.begin() + 2, top.end(), std::greater<float>());
  return top[0] - top[1] < 0.1f * scale;
}

}  // namespace jrt::test
