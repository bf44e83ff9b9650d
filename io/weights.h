// io/weights.h — a named set of checkpoint tensors, loaded from model.safetensors or
// pytorch_model.bin (torch.save zip) alike, with the reference loaders' key cleanup applied.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace jrt {

class WeightStore {
 public:
  // Names in the order the file lists them (safetensors: data order; pytorch: pickle order).
  const std::vector<std::string>& names() const { return names_; }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws "<file>: tensor '<name>' not found".
  const Tensor& get(const std::string& name) const;
  const std::string& source() const { return source_; }  // the file it came from
  size_t size() const { return names_.size(); }

  // Building (used by the readers).
  void set_source(std::string s) { source_ = std::move(s); }
  void add(const std::string& name, const Tensor& t);                 // view; caller keeps the storage alive
  void add_owned(const std::string& name, HostTensor t);              // takes ownership
  void keep_alive(std::shared_ptr<void> backing) { backing_.push_back(std::move(backing)); }
  void rename(const std::string& from, const std::string& to);
  void erase(const std::string& name);

 private:
  std::string source_;
  std::vector<std::string> names_;
  std::map<std::string, Tensor> tensors_;
  std::vector<HostTensor> owned_;
  std::vector<std::shared_ptr<void>> backing_;
};

// Reads a safetensors file (by content: it starts with a u64 header length and '{') or a PyTorch zip
// checkpoint (starts with "PK"). Applies models-spec §0 cleanup: strips a leading "model." from every
// key, drops keys containing "metrics", drops "*.rotary_emb.inv_freq". (The GPT-mixer "conv1"->"conv"
// rename is family-specific and done by the model loader.)
WeightStore load_weights(const std::string& path);

// A model folder holds config.json and model.safetensors or pytorch_model.bin; this picks the file
// (safetensors first). Throws naming the folder when neither exists.
std::string find_weights_file(const std::string& model_dir);

}  // namespace jrt
