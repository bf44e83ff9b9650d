// bench/bench_cuda_util.h — CUDA-event timing shared by the GPU benchmark programs.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

namespace jrt::bench {

// Median over reps of the device time of fn() on stream (after warmups untimed calls), in ms.
template <class Fn>
double median_event_ms(cudaStream_t stream, int warmups, int reps, Fn&& fn) {
  cudaEvent_t a, b;
  cudaEventCreate(&a), cudaEventCreate(&b);
  for (int i = 0; i < warmups; ++i) fn();
  std::vector<float> t;
  for (int i = 0; i < reps; ++i) {
    cudaEventRecord(a, stream);
    fn();
    cudaEventRecord(b, stream);
    cudaEventSynchronize(b);
    float ms;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(ms);
  }
  std::sort(t.begin(), t.end());
  cudaEventDestroy(a), cudaEventDestroy(b);
  return t[t.size() / 2];
}

}  // namespace jrt::bench
