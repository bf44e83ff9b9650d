// core/cuda_util.cpp — GPU presence check and the scratch pools (compiled only with the CUDA backend).
#include "core/cuda_util.h"

#ifdef JRT_HAVE_CUDA
#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

namespace jrt::cuda {

cudaMemPool_t scratch_pool() {
  static std::mutex mu;
  static std::vector<cudaMemPool_t> pools;  // by device ordinal; never destroyed (process lifetime)
  int dev = 0;
  JRT_CUDA_CHECK(cudaGetDevice(&dev));
  std::lock_guard<std::mutex> lock(mu);
  if (size_t(dev) >= pools.size()) pools.resize(size_t(dev) + 1, nullptr);
  if (!pools[size_t(dev)]) {
    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = dev;
    cudaMemPool_t pool = nullptr;
    JRT_CUDA_CHECK(cudaMemPoolCreate(&pool, &props));
    // Keep freed blocks: the default threshold (0) would hand them back at every synchronisation, and the
    // next step would pay the driver again.
    uint64_t keep = UINT64_MAX;
    JRT_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
    pools[size_t(dev)] = pool;
  }
  return pools[size_t(dev)];
}

bool available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

int sm_count() {
  static std::atomic<int> cached[64];  // devices 64 and up are asked every time
  int dev = 0;
  JRT_CUDA_CHECK(cudaGetDevice(&dev));
  int n = dev < 64 ? cached[dev].load(std::memory_order_relaxed) : 0;
  if (n == 0) {
    JRT_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    if (dev < 64) cached[dev].store(n, std::memory_order_relaxed);
  }
  return n;
}
}  // namespace jrt::cuda
#endif
