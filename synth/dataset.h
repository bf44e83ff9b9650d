// synth/dataset.h — batches over task segments the way Zoology's _SyntheticDataset makes them
// (synthetics-spec §1.1): batches never mix segments (their lengths differ); for each segment in order,
// rows [0, B), [B, 2B), ... (the last batch of a segment may be short). Shuffling, when wanted, is the
// trainer's (a permutation of this batch list per epoch).
#pragma once
#include <vector>

#include "synth/task.h"
#include "train/trainer.h"

namespace jrt::synth {

class SegmentBatches final : public BatchSource {
 public:
  SegmentBatches(std::vector<Segment> segs, int64_t batch_size);
  int64_t num_batches() const override { return int64_t(index_.size()); }
  Batch batch(int64_t i) const override;
  std::vector<std::string> slice_names() const override { return slices_; }
  const std::vector<Segment>& segments() const { return segs_; }
  int64_t max_len() const;
  int64_t max_batch() const { return batch_; }
  int64_t tokens() const;

 private:
  struct Ref {
    int64_t seg, row, rows;
  };
  std::vector<Segment> segs_;
  int64_t batch_;
  std::vector<Ref> index_;
  std::vector<std::string> slices_;
  std::vector<int64_t> seg_slice_;
};

}  // namespace jrt::synth
