// core/threads.cpp — OpenMP-backed parallel_for and thread count.
#include "core/threads.h"

#include <omp.h>

#include <algorithm>
#include <thread>

extern "C" void openblas_set_num_threads(int);

namespace jrt {

static int g_threads = 0;

void set_num_threads(int n) {
  if (n <= 0) n = int(std::max(1u, std::thread::hardware_concurrency()));
  g_threads = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int num_threads() {
  if (g_threads <= 0) set_num_threads(0);
  return g_threads;
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t nt = std::min<int64_t>(num_threads(), (n + grain - 1) / grain);
  if (nt <= 1) {
    fn(0, n);
    return;
  }
  const int64_t chunk = (n + nt - 1) / nt;
#pragma omp parallel for num_threads(int(nt)) schedule(static, 1)
  for (int64_t t = 0; t < nt; ++t) {
    int64_t b = t * chunk, e = std::min(n, b + chunk);
    if (b < e) fn(b, e);
  }
}

}  // namespace jrt
