// ops/rotary.h — flash-attn's non-interleaved ("GPT-NeoX") rotary position embedding (models-spec §5.5),
// with the reference's fp32 rounding of the angle tables:
//   inv_freq[i] = fp32(1 / fp32(base ^ fp32(2i / rotary_dim))),  i = 0 .. ceil(rotary_dim/2) - 1
//   theta[p, i] = fp32(fp32(p) * inv_freq[i]),  cos/sin of that fp32 angle
//   ro = 2 * len(inv_freq) dims rotated (an odd rotary_dim 35 rotates 36), pairs (j, j + ro/2).
// Also the training form (forward_t / backward_t, T = float / double).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace jrt::ops {

class Rotary {
 public:
  Rotary() = default;  // rotary_dim 0: identity
  Rotary(int64_t rotary_dim, double base);

  int64_t rotary_dim() const { return rotary_dim_; }
  int64_t rotated() const { return 2 * int64_t(inv_freq_.size()); }  // ro: dims actually rotated
  std::span<const float> inv_freq() const { return inv_freq_; }

  // cos / sin of position p: ro/2 values each.
  void cos_sin(int64_t p, float* c, float* s) const;

  // Rotates, in place, the first ro dims of each of H heads (head stride hd) of N rows (row stride ld);
  // row n is at absolute position pos[n]. Throws when ro > hd.
  void apply(float* x, int64_t ld, int64_t N, int64_t H, int64_t hd, std::span<const int64_t> pos) const;

  // ---- training form (T = float / double) ----
  // The rotation is linear in x with the fp32 cos / sin tables above (converted to T), so the
  // backward is its transpose: rotation by -theta with the SAME table values. Nothing is saved.
  // forward_t: x <- R(theta) x, in place (T = float equals apply). backward_t: g <- R(theta)^T g, in
  // place (turns dL/d(rotated) into dL/d(input)). Same layout and checks as apply. Threaded over rows.
  template <class T>
  void forward_t(T* x, int64_t ld, int64_t N, int64_t H, int64_t hd, std::span<const int64_t> pos) const;
  template <class T>
  void backward_t(T* g, int64_t ld, int64_t N, int64_t H, int64_t hd, std::span<const int64_t> pos) const;

 private:
  int64_t rotary_dim_ = 0;
  std::vector<float> inv_freq_;
};

}  // namespace jrt::ops
