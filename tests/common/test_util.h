// tests/common/test_util.h — helpers shared by the tests: paths to bundled data, running the jrt
// binary, comparing tensors with NMSE / max-rel.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace jrt::test {

std::string data_path(const std::string& rel);  // tests/data/<rel>
std::string jrt_bin();                          // the built jrt executable
std::string temp_dir();                         // a fresh directory for this test process
bool gpu_available();                           // a CUDA build that sees a device
// A fixture family's config with the full GPT-2 vocabulary (50257), n_layer layers, Based decay masks
// widened to 2048 positions, and seeded random weights, written once per process under temp_dir().
std::string tiny_gpt2_vocab_model(const std::string& family, int64_t n_layer);

// A 2-D int64 tensor [B, L] as B rows; any float tensor as a flat f32 vector.
std::vector<std::vector<int64_t>> int_rows(const Tensor& t);
std::vector<float> floats(const Tensor& t);

struct RunResult {
  int exit_code;
  std::string out, err;
};
// Runs `jrt <args>` through /bin/sh (args are passed verbatim), feeding `stdin_text`.
RunResult run_jrt(const std::string& args, const std::string& stdin_text = "");

struct Diff {
  double max_abs = 0, max_ref = 0, nmse = 0;
  double max_rel() const { return max_ref > 0 ? max_abs / max_ref : max_abs; }  // max|a-b| / max|b|
};
Diff compare(const Tensor& got, const Tensor& ref);  // any float dtypes, same numel
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);

// Every tensor of dir/model.safetensors (as written by a training run's --out), as one flat f32 vector in
// file order; and a bitwise comparison of two such vectors (same size, same bits).
std::vector<float> saved_params(const std::string& dir);
bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace jrt::test
