// core/threads.h — CPU parallelism: OpenMP with a process-wide thread count, and a parallel_for
// over [0, n) with a grain size. OpenBLAS is told the same count so GEMMs and our loops agree.
#pragma once
#include <cstdint>
#include <functional>

namespace jrt {

void set_num_threads(int n);  // n <= 0: all hardware threads
int num_threads();

// Calls fn(begin, end) on disjoint chunks covering [0, n); chunks are >= grain (except the last).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace jrt
