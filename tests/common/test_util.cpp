// tests/common/test_util.cpp — see test_util.h.
#include "common/test_util.h"

#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace jrt::test {

std::string data_path(const std::string& rel) { return std::string(JRT_TEST_DATA) + "/" + rel; }
std::string jrt_bin() { return JRT_BIN; }

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
