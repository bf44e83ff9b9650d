// train/rng.h — the one random number generator of training and the synthetic tasks: xoshiro256**
// seeded through splitmix64, with its own integer / uniform / normal draws so that a seed gives the
// same stream on every platform and standard library (std:: distributions are implementation-defined),
// and a 4-word state that checkpoints save and restore exactly.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>

namespace jrt {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }

  void reseed(uint64_t seed) {
    uint64_t x = seed;
    for (auto& w : s_) w = splitmix64(x);
  }

  uint64_t next_u64() {
    const uint64_t r = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return r;
  }

  // Uniform in [0, n), n >= 1, without modulo bias (rejection on the top of the range).
  uint64_t below(uint64_t n) {
    const uint64_t limit = ~uint64_t(0) - (~uint64_t(0) % n);
    uint64_t x;
    do x = next_u64();
    while (x >= limit);
    return x % n;
  }
  int64_t uniform_int(int64_t lo, int64_t hi_exclusive) { return lo + int64_t(below(uint64_t(hi_exclusive - lo))); }
  // Uniform double in [0, 1) with 53 random bits.
  double uniform() { return double(next_u64() >> 11) * 0x1.0p-53; }
  // Standard normal (Box-Muller; one value per call, the partner is discarded so the state alone
  // determines the stream).
  double normal() {
    double u1 = uniform(), u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

  std::array<uint64_t, 4> state() const { return s_; }
  void set_state(const std::array<uint64_t, 4>& s) { s_ = s; }

  // Derives an independent seed from a base seed and an index (segments, layers, seeds of a sweep).
  static uint64_t derive(uint64_t base, uint64_t index) {
    uint64_t x = base ^ (0x9e3779b97f4a7c15ULL * (index + 1));
    return splitmix64(x);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::array<uint64_t, 4> s_{};
};

}  // namespace jrt
