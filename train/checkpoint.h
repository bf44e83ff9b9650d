// train/checkpoint.h — training checkpoints: one safetensors file holding every parameter
// ("param.<name>"), the AdamW moments ("adam.m.<name>", "adam.v.<name>"), and string metadata (step,
// data position, RNG state, the model's config.json, ...). Written atomically (temporary file + rename,
// io/safetensors.h), so an interrupted write never leaves a half checkpoint; values are stored bit for
// bit (fp32), so resuming continues exactly where the run stopped.
#pragma once
#include <map>
#include <string>

#include "train/optimizer.h"
#include "train/train_model.h"

namespace jrt {

void write_checkpoint(const std::string& path, const TrainModel<float>& m, const AdamW& adam,
                      const std::map<std::string, std::string>& meta);

// Restores parameters and moments into m / adam (same config: every name and shape must match) and
// returns the metadata. Throws naming the file and the offending tensor or field.
std::map<std::string, std::string> read_checkpoint(const std::string& path, TrainModel<float>& m, AdamW& adam);

// Metadata helpers: a missing or malformed field is an error naming the file and the field.
int64_t meta_int(const std::map<std::string, std::string>& meta, const std::string& key, const std::string& file);
double meta_double(const std::map<std::string, std::string>& meta, const std::string& key, const std::string& file);

}  // namespace jrt
