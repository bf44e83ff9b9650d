// state/state.cpp — SequenceState serialisation: magic, version, model tag, position, per-layer blobs.
#include "state/state.h"

namespace jrt {

static constexpr uint64_t kMagic = 0x3153544154535452ull;  // "RTSTATS1"

int64_t SequenceState::bytes() const {
  int64_t b = 0;
  for (const auto& l : layers)
    if (l) b += l->bytes();
  return b;
}

std::vector<uint8_t> SequenceState::serialize() const {
  ByteWriter w;
  w.put_raw(&kMagic, 8);
  w.put_i64(int64_t(model_tag.size()));
  w.put_raw(model_tag.data(), model_tag.size());
  w.put_i64(pos);
  w.put_i64(int64_t(layers.size()));
  for (const auto& l : layers) {
    w.put_i64(l ? 1 : 0);
    if (l) {
      w.put_i64(l->pos);
      l->save(w);
    }
  }
  return std::move(w.bytes());
}

void SequenceState::deserialize(const std::vector<uint8_t>& bytes) {
  ByteReader r(bytes.data(), bytes.size());
  uint64_t magic = 0;
  r.get_raw(&magic, 8);
  JRT_CHECK(magic == kMagic, "state bytes: not a jrt sequence state (bad magic)");
  int64_t n = r.get_i64();
  JRT_CHECK(n >= 0 && n < 4096, "state bytes: bad model tag length {}", n);
  std::string tag(size_t(n), '\0');
  r.get_raw(tag.data(), tag.size());
  JRT_CHECK(tag == model_tag, "state bytes were saved by model '{}', this model is '{}'", tag, model_tag);
  pos = r.get_i64();
  int64_t nl = r.get_i64();
  JRT_CHECK(nl == int64_t(layers.size()), "state bytes: {} layers, the model has {}", nl, layers.size());
  for (auto& l : layers) {
    int64_t present = r.get_i64();
    JRT_CHECK(present == (l ? 1 : 0), "state bytes: layer layout differs from the model");
    if (l) {
      l->pos = r.get_i64();
      l->load(r);
    }
  }
  JRT_CHECK(r.done(), "state bytes: trailing data after the last layer");
}

}  // namespace jrt
