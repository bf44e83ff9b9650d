// io/safetensors.h — safetensors read (mmap, fully validated) and atomic write.
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets:[b,e]},
// "__metadata__": {str: str}}, then the data block; offsets are relative to the data block.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace jrt {

// A read-only memory mapping of a whole file (RAII).
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws jrt::Error naming the path
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

class SafeTensorsFile {
 public:
  // Maps and validates the file: header length within the file, valid JSON, known dtypes,
  // shape x dtype == byte range, ranges in bounds and non-overlapping, no duplicate names.
  explicit SafeTensorsFile(const std::string& path);

  const std::string& path() const { return map_->path(); }
  // Tensor names in data-offset order.
  const std::vector<std::string>& names() const { return names_; }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // View into the mapping (valid while this object lives; a tensor stored misaligned for its dtype is
  // handed out as an aligned private copy instead). Throws naming the file and tensor.
  const Tensor& get(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::shared_ptr<MappedFile> map_;
  std::vector<std::string> names_;
  std::map<std::string, Tensor> tensors_;
  std::map<std::string, std::string> metadata_;
  std::vector<HostTensor> owned_;  // aligned copies of tensors whose bytes sit misaligned in the file
};

struct NamedTensor {
  std::string name;
  Tensor tensor;  // any contiguous host tensor
};

// Writes to "<path>.tmp.<pid>" then renames over path: readers never see a half-written file.
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace jrt
