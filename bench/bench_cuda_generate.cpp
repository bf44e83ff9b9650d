// bench/bench_cuda_generate.cpp — GPU generation throughput of released-shape models with random
// weights (models/presets.h): prefill a batch of random prompts, then greedy decoding entirely on
// the device (argmax feeds the next step; the decode step is one CUDA graph). Prints tokens/ms and
// the per-step latency, with the graph and without it (eager launches) in the same run.
//   bench_cuda_generate [--models based-1b] [--batches 1,16,128] [--prompt 512] [--steps 128] [--eager 0|1]
//                       [--profile 1 (one eager run between cudaProfilerStart/Stop, for ncu)]
//                       [--env "JRT_SKINNY_WIDE128=0;-" (skinny GEMM policy settings, A/B in one process)]
//                       [--repeat n]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>

#include <fmt/format.h>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "bench/bench_util.h"
#include "io/config.h"
#include "models/gpu_model.h"
#include "models/model.h"
#include "models/params.h"
#include "models/presets.h"

#ifdef JRT_HAVE_CUDA
#include <cuda_profiler_api.h>

#include <random>

#include "core/cuda_util.h"
#include "ops/linear_skinny_lab.h"

using namespace jrt;

using bench::split_csv;

int main(int argc, char** argv) {
  std::string models = "based-1b", batches = "1,16,128";
  int64_t prompt = 512, steps = 128;
  bool profile = false;  // --profile 1: one prefill, then `steps` eager steps between cudaProfilerStart/Stop (ncu)
  bool eager = true;     // --eager 0: skip the eager (no graph) comparison
  // --env "K=V,K2=V2;K=W;-": settings of the skinny GEMM's policy knobs (ops::cuda::kSkinnyReloadedKnobs, the ones
  // skinny_gemm_reload_env re-reads; other variables are read once per process and would not change), each timed on
  // every batch in turn, so an A/B run makes the random weights once; "-" leaves them unset.
  // --repeat n: the whole list n times per batch.
  std::string envs = "";
  int repeat = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--models")
      models = v;
    else if (k == "--batches")
      batches = v;
    else if (k == "--prompt")
      prompt = std::stoll(v);
    else if (k == "--steps")
      steps = std::stoll(v);
    else if (k == "--profile")
      profile = v == "1";
    else if (k == "--eager")
      eager = v == "1";
    else if (k == "--env")
      envs = v;
    else if (k == "--repeat")
      repeat = std::max(1, std::stoi(v));
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  // Every key any setting names, unset before each setting is applied.
  std::vector<std::vector<std::pair<std::string, std::string>>> settings;
  std::vector<std::string> keys, labels;
  for (size_t p = 0; p <= envs.size();) {
    const size_t q = std::min(envs.find(';', p), envs.size());
    const std::string one = envs.substr(p, q - p);
    p = q + 1;
    settings.emplace_back();
    labels.push_back(one);
    if (one.empty() || one == "-") continue;
    for (const std::string& kv : split_csv(one)) {
      const size_t eq = kv.find('=');
      if (eq == std::string::npos) {
        std::fprintf(stderr, "--env: '%s' is not KEY=VALUE\n", kv.c_str());
        return 2;
      }
      const std::string key = kv.substr(0, eq);
      if (std::find(std::begin(ops::cuda::kSkinnyReloadedKnobs), std::end(ops::cuda::kSkinnyReloadedKnobs), key) ==
          std::end(ops::cuda::kSkinnyReloadedKnobs)) {
        std::string known;
        for (std::string_view k : ops::cuda::kSkinnyReloadedKnobs) known += fmt::format(" {}", k);
        std::fprintf(stderr, "--env: %s is not re-read within a process (only%s are); set it outside instead\n",
                     key.c_str(), known.c_str());
        return 2;
      }
      settings.back().emplace_back(key, kv.substr(eq + 1));
      keys.push_back(key);
    }
  }
  if (!cuda::available()) {
    std::printf("no CUDA device\n");
    return 0;
  }
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  std::printf("GPU: %s; prompt %lld tokens, %lld greedy steps per slot\n\n", prop.name, (long long)prompt,
              (long long)steps);
  std::printf(
      "| model | params | batch | prefill ms | step ms (graph) | tokens/ms (graph) | step ms (eager) | tokens/ms "
      "(eager) |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const std::string& name : split_csv(models)) {
    ModelConfig cfg = parse_config(preset_config_json(name), name);
    auto cpu = Model::build(cfg, random_weights(cfg, 1));
    for (const std::string& bs : split_csv(batches))
      for (int rep = 0; rep < repeat; ++rep)
        for (size_t si = 0; si < settings.size(); ++si) {
          for (const std::string& key : keys) unsetenv(key.c_str());
          for (const auto& [key, val] : settings[si]) setenv(key.c_str(), val.c_str(), 1);
          ops::cuda::skinny_gemm_reload_env();
          const std::string label = envs.empty() ? name : fmt::format("{} [{}]", name, labels[si]);
          const int64_t B = std::stoll(bs);
          std::mt19937_64 rng(7);
          std::vector<int64_t> ids(size_t(B * prompt)), lens(size_t(B), prompt);
          for (auto& x : ids) x = int64_t(rng() % uint64_t(cfg.vocab_size));
          if (profile) {
            auto gm = GpuModel::create(*cpu, {.slots = B, .max_seq = prompt + steps + 8, .use_graph = false});
            gm->prefill(ids, lens, {}, false, nullptr);
            cudaProfilerStart();
            gm->greedy(steps);
            cudaProfilerStop();
            std::printf("profiled %s batch %lld: %.3f ms per step\n", label.c_str(), (long long)B,
                        gm->last_device_ms() / double(steps));
            continue;
          }
          double step_ms[2] = {0, 0}, pre_ms = 0;
          for (int g = 0; g < (eager ? 2 : 1); ++g) {
            auto gm = GpuModel::create(*cpu, {.slots = B, .max_seq = prompt + steps + 8, .use_graph = g == 0});
            gm->prefill(ids, lens, {}, false, nullptr);  // warm-up (cuBLAS heuristics, workspaces)
            gm->prefill(ids, lens, {}, false, nullptr);
            pre_ms = gm->last_device_ms();
            gm->greedy(4);  // captures the graph
            gm->prefill(ids, lens, {}, false, nullptr);
            gm->greedy(steps);
            step_ms[g] = gm->last_device_ms() / double(steps);
          }
          const std::string eager_cols =
              eager ? fmt::format("{:.3f} | {:.1f}", step_ms[1], double(B) / step_ms[1]) : std::string("- | -");
          std::printf("| %s | %.2fB | %lld | %.1f | %.3f | %.1f | %s |\n", label.c_str(),
                      double(param_count(cfg)) / 1e9, (long long)B, pre_ms, step_ms[0], double(B) / step_ms[0],
                      eager_cols.c_str());
          std::fflush(stdout);
        }
  }
  return 0;
}
#else
int main() {
  std::printf("built without CUDA\n");
  return 0;
}
#endif
