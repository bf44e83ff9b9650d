// ops/cuda_common.cuh — device helpers shared by the GPU ops (included by .cu files only).
#pragma once
#include <cstdint>

namespace jrt::ops::cuda {

// The sequence owning packed row t: the largest b with cu[b] <= t (empty sequences are skipped
// because a later b with the same offset wins). cu has B+1 entries, cu[B] = T > t. O(log B).
__device__ __forceinline__ int find_seq(const int32_t* __restrict__ cu, int B, int64_t t) {
  int lo = 0, hi = B;
  while (hi - lo > 1) {
    const int mid = (lo + hi) >> 1;
    if (cu[mid] <= t)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

// Lets a kernel launched after this one with programmatic dependent launch (the skinny decode GEMM,
// ops/linear_skinny.cu) start now: it fetches its weights while this kernel runs and waits
// (griddepcontrol.wait) for this kernel's completion before it reads anything this kernel writes. Called
// first thing by the kernels that precede a GEMM in a decode step; a no-op for kernels launched normally.
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

}  // namespace jrt::ops::cuda
