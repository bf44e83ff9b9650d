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

}  // namespace jrt::ops::cuda
