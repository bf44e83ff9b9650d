// state/state.h — per-sequence recurrent state: one MixerState per layer plus the number of tokens
// consumed. Serialises to bytes and back; restore-then-continue equals an uninterrupted run exactly
// (the bytes are the fp32 state itself, not a re-encoding).
#pragma once
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"

namespace jrt {

class ByteWriter {
 public:
  void put_raw(const void* p, size_t n) {
    if (n == 0) return;
    const size_t old = buf_.size();
    buf_.resize(old + n);
    std::memcpy(buf_.data() + old, p, n);
  }
  void put_i64(int64_t v) { put_raw(&v, 8); }
  void put_floats(const std::vector<float>& v) {
    put_i64(int64_t(v.size()));
    put_raw(v.data(), v.size() * sizeof(float));
  }
  std::vector<uint8_t>& bytes() { return buf_; }

 private:
  std::vector<uint8_t> buf_;
};

class ByteReader {
 public:
  ByteReader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  void get_raw(void* dst, size_t n) {
    JRT_CHECK(pos_ + n <= n_, "state bytes truncated: need {} bytes at offset {}, have {}", n, pos_, n_);
    std::memcpy(dst, p_ + pos_, n);
    pos_ += n;
  }
  int64_t get_i64() {
    int64_t v;
    get_raw(&v, 8);
    return v;
  }
  // Reads a float vector whose length must equal expected (the state's shape is fixed by the model).
  void get_floats(std::vector<float>& v, const char* what) {
    int64_t n = get_i64();
    JRT_CHECK(n >= 0 && size_t(n) == v.size(), "state bytes: {} has {} values, the model expects {}", what, n,
              v.size());
    get_raw(v.data(), v.size() * sizeof(float));
  }
  bool done() const { return pos_ == n_; }

 private:
  const uint8_t* p_;
  size_t n_, pos_ = 0;
};

// The state of one mixer for one sequence. `pos` counts tokens consumed by this layer.
struct MixerState {
  virtual ~MixerState() = default;
  int64_t pos = 0;
  virtual void save(ByteWriter& w) const = 0;
  virtual void load(ByteReader& r) = 0;
  virtual int64_t bytes() const = 0;  // bytes held now
};

struct SequenceState {
  std::vector<std::unique_ptr<MixerState>> layers;  // null for stateless layers
  int64_t pos = 0;                                  // tokens consumed
  std::string model_tag;                            // arch + dims, checked on restore
  int64_t bytes() const;
  std::vector<uint8_t> serialize() const;
  // Restores into a state made by the same model's new_state(); throws on any mismatch.
  void deserialize(const std::vector<uint8_t>& bytes);
};

}  // namespace jrt
