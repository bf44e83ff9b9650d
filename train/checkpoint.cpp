// train/checkpoint.cpp — see checkpoint.h.
#include "train/checkpoint.h"

#include <cstring>

#include "core/error.h"
#include "io/safetensors.h"

namespace jrt {

static constexpr const char* kFormat = "jrt-train-checkpoint-1";

void write_checkpoint(const std::string& path, const TrainModel<float>& m, const AdamW& adam,
                      const std::map<std::string, std::string>& meta_in) {
  std::vector<NamedTensor> t;
  const float* p = m.params().data();
  for (size_t i = 0; i < m.specs().size(); ++i) {
    const ParamSpec& s = m.specs()[i];
    const int64_t off = m.offset(i);
    t.push_back({"param." + s.name, Tensor(const_cast<float*>(p + off), DType::F32, s.shape)});
    if (s.role == ParamRole::Buffer) continue;
    t.push_back({"adam.m." + s.name, Tensor(const_cast<float*>(adam.m().data()) + off, DType::F32, s.shape)});
    t.push_back({"adam.v." + s.name, Tensor(const_cast<float*>(adam.v().data()) + off, DType::F32, s.shape)});
  }
  std::map<std::string, std::string> meta = meta_in;
  meta["format"] = kFormat;
  meta["adam_t"] = std::to_string(adam.t());
  write_safetensors(path, t, meta);
}

std::map<std::string, std::string> read_checkpoint(const std::string& path, TrainModel<float>& m, AdamW& adam) {
  SafeTensorsFile f(path);
  auto meta = f.metadata();
  JRT_CHECK(meta.count("format") && meta.at("format") == kFormat, "{}: not a jrt training checkpoint (format {})", path,
            meta.count("format") ? meta.at("format") : std::string("missing"));
  auto copy = [&](const std::string& name, const Shape& shape, float* dst) {
    JRT_CHECK(f.has(name), "{}: tensor '{}' is missing (a checkpoint of another model?)", path, name);
    const Tensor& t = f.get(name);
    JRT_CHECK(t.dtype == DType::F32 && t.shape == shape, "{}: tensor '{}' is {} {}, the model needs f32 {}", path, name,
              dtype_name(t.dtype), shape_str(t.shape), shape_str(shape));
    HostTensor c = HostTensor::copy_of(t);
    std::memcpy(dst, c.ptr<float>(), size_t(c.numel()) * sizeof(float));
  };
  for (size_t i = 0; i < m.specs().size(); ++i) {
    const ParamSpec& s = m.specs()[i];
    copy("param." + s.name, s.shape, m.param(i).data());
    if (s.role == ParamRole::Buffer) continue;
    copy("adam.m." + s.name, s.shape, adam.m().data() + m.offset(i));
    copy("adam.v." + s.name, s.shape, adam.v().data() + m.offset(i));
  }
  adam.set_t(meta_int(meta, "adam_t", path));
  return meta;
}

int64_t meta_int(const std::map<std::string, std::string>& meta, const std::string& key, const std::string& file) {
  auto it = meta.find(key);
  JRT_CHECK(it != meta.end(), "{}: checkpoint field '{}' is missing", file, key);
  try {
    size_t n = 0;
    long long v = std::stoll(it->second, &n);
    JRT_CHECK(n == it->second.size(), "{}: checkpoint field '{}' is not an integer: '{}'", file, key, it->second);
    return int64_t(v);
  } catch (const std::logic_error&) {
    fail("{}: checkpoint field '{}' is not an integer: '{}'", file, key, it->second);
  }
}

double meta_double(const std::map<std::string, std::string>& meta, const std::string& key, const std::string& file) {
  auto it = meta.find(key);
  JRT_CHECK(it != meta.end(), "{}: checkpoint field '{}' is missing", file, key);
  try {
    return std::stod(it->second);
  } catch (const std::logic_error&) {
    fail("{}: checkpoint field '{}' is not a number: '{}'", file, key, it->second);
  }
}

}  // namespace jrt
