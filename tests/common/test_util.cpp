// tests/common/test_util.cpp — see test_util.h.
#include "common/test_util.h"

#include <nlohmann/json.hpp>

#include "io/config.h"
#ifdef JRT_HAVE_CUDA
#include "core/cuda_util.h"
#endif
#include "io/safetensors.h"
#include "models/params.h"

#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace jrt::test {

// The environment may relocate both (binaries built here and run on another machine, e.g. the GPU host).
std::string data_path(const std::string& rel) {
  const char* env = std::getenv("JRT_TEST_DATA");
  return std::string(env && *env ? env : JRT_TEST_DATA) + "/" + rel;
}
std::string jrt_bin() {
  const char* env = std::getenv("JRT_BIN");
  return env && *env ? env : JRT_BIN;
}

std::string tiny_gpt2_vocab_model(const std::string& family, int64_t n_layer) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(temp_dir()) / ("cli_tiny_" + family);
  if (fs::exists(dir / "model.safetensors")) return dir.string();
  fs::create_directories(dir);
  nlohmann::json cfg = nlohmann::json::parse(read_file(data_path("models/" + family + "/config.json")));
  cfg["vocab_size"] = 50257;
  // The Based fixture's decay mask covers 128 positions (mixer.l_max, alt_mixer.l_max); eval prompts need
  // up to 2048.
  for (const char* k : {"mixer", "alt_mixer"})
    if (cfg.contains(k) && cfg[k].contains("l_max")) cfg[k]["l_max"] = 2048;
  cfg["n_layer"] = n_layer;
  write_file((dir / "config.json").string(), cfg.dump(1));
  ModelConfig c = parse_config(cfg.dump(), (dir / "config.json").string());
  WeightStore ws = random_weights(c, 3);
  std::vector<NamedTensor> ts;
  for (const auto& n : ws.names()) ts.push_back({n, ws.get(n)});
  write_safetensors((dir / "model.safetensors").string(), ts);
  return dir.string();
}

std::vector<std::vector<int64_t>> int_rows(const Tensor& t) {
  HostTensor c = HostTensor::copy_of(t);
  std::vector<std::vector<int64_t>> r(static_cast<size_t>(t.shape[0]));
  for (int64_t b = 0; b < t.shape[0]; ++b)
    r[size_t(b)].assign(c.ptr<int64_t>() + b * t.shape[1], c.ptr<int64_t>() + (b + 1) * t.shape[1]);
  return r;
}

std::vector<float> saved_params(const std::string& dir) {
  SafeTensorsFile f(dir + "/model.safetensors");
  std::vector<float> all;
  for (const auto& n : f.names()) {
    HostTensor t = to_f32(f.get(n));
    all.insert(all.end(), t.ptr<float>(), t.ptr<float>() + t.numel());
  }
  return all;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::vector<float> floats(const Tensor& t) {
  std::vector<float> f(static_cast<size_t>(t.numel()));
  convert_to_f32(t, f);
  return f;
}

bool gpu_available() {
#ifdef JRT_HAVE_CUDA
  return cuda::available();
#else
  return false;
#endif
}

std::string temp_dir() {
  static std::string dir = [] {
    auto p = std::filesystem::temp_directory_path() / ("jrt_test_" + std::to_string(getpid()));
    std::filesystem::create_directories(p);
    return p.string();
  }();
  return dir;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

RunResult run_jrt(const std::string& args, const std::string& stdin_text) {
  static int counter = 0;
  std::string base = temp_dir() + "/run" + std::to_string(counter++);
  write_file(base + ".in", stdin_text);
  std::string cmd = jrt_bin() + " " + args + " <" + base + ".in >" + base + ".out 2>" + base + ".err";
  int rc = std::system(cmd.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
  r.out = read_file(base + ".out");
  r.err = read_file(base + ".err");
  return r;
}

Diff compare(const Tensor& got, const Tensor& ref) {
  HostTensor a = to_f32(got), b = to_f32(ref);
  JRT_CHECK(a.numel() == b.numel(), "compare: {} vs {} elements", a.numel(), b.numel());
  Diff d;
  double se = 0, sr = 0;
  auto pa = a.span<float>(), pb = b.span<float>();
  for (size_t i = 0; i < pa.size(); ++i) {
    double e = double(pa[i]) - double(pb[i]);
    d.max_abs = std::max(d.max_abs, std::fabs(e));
    d.max_ref = std::max(d.max_ref, std::fabs(double(pb[i])));
    se += e * e;
    sr += double(pb[i]) * pb[i];
  }
  d.nmse = sr > 0 ? se / sr : se;
  return d;
}

}  // namespace jrt::test
