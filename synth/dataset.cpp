// synth/dataset.cpp — see dataset.h.
#include "synth/dataset.h"

#include <algorithm>

#include "core/error.h"

namespace jrt::synth {

SegmentBatches::SegmentBatches(std::vector<Segment> segs, int64_t batch_size)
    : segs_(std::move(segs)), batch_(batch_size) {
  JRT_CHECK(batch_size >= 1, "synth: batch size must be >= 1, got {}", batch_size);
  for (size_t s = 0; s < segs_.size(); ++s) {
    const Segment& g = segs_[s];
    JRT_CHECK(g.n >= 1 && g.L >= 1 && int64_t(g.inputs.size()) == g.n * g.L && g.labels.size() == g.inputs.size(),
              "synth: segment {} is malformed", s);
    for (int64_t r = 0; r < g.n; r += batch_) index_.push_back({int64_t(s), r, std::min(batch_, g.n - r)});
    const std::string name = g.slice_key + "=" + g.slice_value;
    auto it = std::find(slices_.begin(), slices_.end(), name);
    if (it == slices_.end()) {
      slices_.push_back(name);
      it = slices_.end() - 1;
    }
    seg_slice_.push_back(int64_t(it - slices_.begin()));
  }
}

Batch SegmentBatches::batch(int64_t i) const {
  const Ref& r = index_.at(size_t(i));
  const Segment& g = segs_[size_t(r.seg)];
  Batch b;
  b.ids = g.inputs.data() + r.row * g.L;
  b.labels = g.labels.data() + r.row * g.L;
  b.B = r.rows;
  b.L = g.L;
  b.slice = seg_slice_[size_t(r.seg)];
  return b;
}

int64_t SegmentBatches::max_len() const {
  int64_t L = 0;
  for (const auto& g : segs_) L = std::max(L, g.L);
  return L;
}

int64_t SegmentBatches::tokens() const {
  int64_t n = 0;
  for (const auto& g : segs_) n += g.n * g.L;
  return n;
}

}  // namespace jrt::synth
