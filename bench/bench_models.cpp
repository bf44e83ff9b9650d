// bench/bench_models.cpp — CPU prefill and decode speed of 360M-shaped models of each family (random
// weights), at 1 and 2 threads (or --threads), next to this machine's measured memory bandwidth in the
// same run. Decode is bandwidth-bound: its bound is bandwidth / (weight bytes + state bytes touched per
// token); the table prints the fraction of that bound reached.
//
//   bench_models [--presets jrt-360m,based-360m,mamba-360m,attn-360m] [--threads 1,2] [--prefill 256]
//                [--decode 16] [--batch 1]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "core/threads.h"
#include "io/config.h"
#include "io/state_size.h"
#include "models/generate.h"
#include "models/model.h"
#include "models/params.h"
#include "bench/bench_util.h"
#include "models/presets.h"

using namespace jrt;
using clk = std::chrono::steady_clock;

using bench::split_csv;

// Read bandwidth: XOR-reduce a 1 GiB buffer of 64-bit words (what decode does to its weights: read
// once), best of 5. XOR is associative, so the compiler vectorises it and the loop is memory-bound.
static double read_bandwidth_gbs(int threads) {
  set_num_threads(threads);
  const size_t n = size_t(1) << 27;
  std::vector<uint64_t> buf(n);
  for (size_t i = 0; i < n; ++i) buf[i] = i * 0x9e3779b97f4a7c15ull;
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    std::vector<uint64_t> part(size_t(threads) * 8, 0);
    auto t0 = clk::now();
    parallel_for(int64_t(n), int64_t(1) << 20, [&](int64_t b, int64_t e) {
      uint64_t acc = 0;
      for (int64_t i = b; i < e; ++i) acc ^= buf[size_t(i)];
      part[size_t(b * int64_t(threads) / int64_t(n)) * 8] ^= acc;
    });
    double s = std::chrono::duration<double>(clk::now() - t0).count();
    uint64_t sink = 0;
    for (auto v : part) sink ^= v;
    if (sink == 42) std::printf(" ");
    best = std::max(best, double(n * sizeof(uint64_t)) / s / 1e9);
  }
  return best;
}

int main(int argc, char** argv) {
  std::string presets = "jrt-360m,based-360m,mamba-360m,attn-360m", threads = "1,2";
  int64_t prefill = 256, decode = 16, batch = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--presets") presets = v;
    else if (k == "--threads") threads = v;
    else if (k == "--prefill") prefill = std::stoll(v);
    else if (k == "--decode") decode = std::stoll(v);
    else if (k == "--batch") batch = std::stoll(v);
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  std::vector<int> tlist;
  for (auto& t : split_csv(threads)) tlist.push_back(std::stoi(t));
  std::printf("memory read bandwidth:");
  std::vector<double> bw;
  for (int t : tlist) {
    bw.push_back(read_bandwidth_gbs(t));
    std::printf("  %d thread(s) %.1f GB/s", t, bw.back());
  }
  std::printf("\n\n| model | params | threads | prefill L=%lld tok/s | decode B=%lld tok/s | bytes/token (MB) | bound tok/s | %% of bound |\n",
              (long long)prefill, (long long)batch);
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& name : split_csv(presets)) {
    ModelConfig cfg = parse_config(preset_config_json(name), name);
    auto model = Model::build(cfg, random_weights(cfg, 1));
    int64_t params = 0;
    for (const auto& s : parameter_specs(cfg)) params += shape_numel(s.shape);
    // Bytes a decode step must read: every weight once (fp32; the tied head is the embedding and is
    // read by the head GEMV, the embedding row itself is negligible) + the state, read and written.
    const int64_t state = model_state_bytes(cfg, StatePolicy::CpuFp32).at(prefill + decode);
    const double bytes_per_step = double(params) * 4.0 + 2.0 * double(state);
    for (size_t ti = 0; ti < tlist.size(); ++ti) {
      set_num_threads(tlist[ti]);
      std::vector<int64_t> ids(static_cast<size_t>(prefill));
      for (int64_t i = 0; i < prefill; ++i) ids[size_t(i)] = (i * 7919) % 50000;
      std::vector<std::vector<int64_t>> prompts(size_t(batch), ids);
      GenerateOptions go;
      go.max_new_tokens = decode + 1;
      auto r = generate(*model, prompts, {}, go);
      const double pf = double(r.prefill_tokens) / r.prefill_seconds;
      const double dc = double(r.decode_tokens) / r.decode_seconds;
      // Per step, B sequences share one read of the weights.
      const double bound = bw[ti] * 1e9 / (double(params) * 4.0 + 2.0 * double(state) * double(batch)) * double(batch);
      std::printf("| %s | %.1fM | %d | %.0f | %.2f | %.0f | %.2f | %.0f%% |\n", name.c_str(), double(params) / 1e6,
                  tlist[ti], pf, dc, bytes_per_step / 1e6, bound, 100.0 * dc / bound);
      std::fflush(stdout);
    }
  }
  return 0;
}
