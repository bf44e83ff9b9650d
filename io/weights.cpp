// io/weights.cpp — owns WeightStore and the format dispatch: a checkpoint file is recognised by its
// first bytes (zip magic -> torch.save, u64 + '{' -> safetensors), read raw, then given the
// reference loaders' key cleanup (models-spec §0).
#include "io/weights.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "io/pytorch.h"
#include "io/safetensors.h"

namespace jrt {

// ---- WeightStore ------------------------------------------------------------------------------

const Tensor& WeightStore::get(const std::string& name) const {
  auto it = tensors_.find(name);
  JRT_CHECK(it != tensors_.end(), "{}: tensor '{}' not found", source_, name);
  return it->second;
}

void WeightStore::add(const std::string& name, const Tensor& t) {
  JRT_CHECK(tensors_.emplace(name, t).second, "{}: tensor '{}' appears twice", source_, name);
  names_.push_back(name);
}

void WeightStore::add_owned(const std::string& name, HostTensor t) {
  add(name, t.view());
  owned_.push_back(std::move(t));  // the heap buffer does not move with the HostTensor
}

void WeightStore::rename(const std::string& from, const std::string& to) {
  if (from == to) return;
  auto it = tensors_.find(from);
  JRT_CHECK(it != tensors_.end(), "{}: cannot rename tensor '{}': not found", source_, from);
  JRT_CHECK(!tensors_.count(to), "{}: cannot rename tensor '{}' to '{}': that name is already taken", source_, from,
            to);
  Tensor t = it->second;
  tensors_.erase(it);
  tensors_.emplace(to, std::move(t));
  std::replace(names_.begin(), names_.end(), from, to);
}

void WeightStore::erase(const std::string& name) {
  JRT_CHECK(tensors_.erase(name) == 1, "{}: cannot erase tensor '{}': not found", source_, name);
  names_.erase(std::remove(names_.begin(), names_.end(), name), names_.end());
}

// ---- loading ----------------------------------------------------------------------------------

namespace {

enum class Format { SafeTensors, TorchZip };

Format sniff(const std::string& path) {
  std::error_code ec;
  JRT_CHECK(!std::filesystem::is_directory(path, ec), "{}: is a directory, not a weights file", path);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  JRT_CHECK(fd >= 0, "{}: cannot open: {}", path, std::strerror(errno));
  unsigned char head[9] = {};
  ssize_t n = 0;
  while (n < ssize_t(sizeof head)) {
    ssize_t r = ::read(fd, head + n, sizeof head - size_t(n));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    n += r;
  }
  ::close(fd);
  JRT_CHECK(n > 0, "{}: file is empty (0 bytes)", path);
  if (n >= 4 && head[0] == 'P' && head[1] == 'K' && (head[2] == 3 || head[2] == 5) && (head[3] == 4 || head[3] == 6))
    return Format::TorchZip;
  if (n == 9 && head[8] == '{') return Format::SafeTensors;
  JRT_CHECK(head[0] != 0x80,
            "{}: looks like a legacy (pre-1.6, non-zip) torch.save file, which is not supported; "
            "re-save it with torch.save(state_dict, path) from a recent PyTorch or convert it to safetensors",
            path);
  // A damaged safetensors file deserves the validator's precise message rather than a guess.
  if (path.ends_with(".safetensors")) return Format::SafeTensors;
  fail("{}: neither a safetensors file nor a PyTorch zip checkpoint (unrecognised first bytes)", path);
}

// models-spec §0 steps 1, 2 and 4 (step 3, conv1 -> conv, is family-specific: models/ does it).
void clean_keys(WeightStore& w) {
  const std::vector<std::string> names = w.names();
  for (const std::string& name : names) {
    std::string key = name.starts_with("model.") ? name.substr(6) : name;
    const bool drop = key.find("metrics") != std::string::npos || key.ends_with(".rotary_emb.inv_freq") ||
                      key == "rotary_emb.inv_freq";
    if (drop)
      w.erase(name);
    else
      w.rename(name, key);
  }
}

}  // namespace

WeightStore load_weights(const std::string& path) {
  WeightStore w;
  if (sniff(path) == Format::TorchZip) {
    w = read_pytorch_checkpoint(path);
  } else {
    auto file = std::make_shared<SafeTensorsFile>(path);
    w.set_source(path);
    for (const std::string& n : file->names()) w.add(n, file->get(n));
    w.keep_alive(file);
  }
  clean_keys(w);
  return w;
}

std::string find_weights_file(const std::string& model_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  JRT_CHECK(fs::is_directory(model_dir, ec), "{}: not a directory (expected a model folder)", model_dir);
  for (const char* name : {"model.safetensors", "pytorch_model.bin"}) {
    fs::path p = fs::path(model_dir) / name;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  fail("{}: no model.safetensors or pytorch_model.bin in this folder", model_dir);
}

}  // namespace jrt
