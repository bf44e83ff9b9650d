// core/cuda_util.h — CUDA helpers shared by the kernels and their hosts: error checks that raise
// jrt::Error naming the call, device buffers (RAII), stream-ordered scratch (RAII), and whether a usable
// GPU is present.
#pragma once
#ifdef JRT_HAVE_CUDA
#include <cuda_runtime.h>

#include <cstddef>

#include "core/error.h"

#define JRT_CUDA_CHECK(call)                                                                  \
  do {                                                                                        \
    cudaError_t err_ = (call);                                                                \
    if (err_ != cudaSuccess) ::jrt::fail("CUDA error in {}: {}", #call, cudaGetErrorString(err_)); \
  } while (0)

// cuBLAS / cuBLASLt status check (both report success as 0); the header stays free of cuBLAS includes.
#define JRT_CUBLAS_CHECK(call)                                                \
  do {                                                                        \
    const auto st_ = (call);                                                  \
    if (int(st_) != 0) ::jrt::fail("cuBLAS error {} in {}", int(st_), #call); \
  } while (0)

namespace jrt::cuda {

// True when the CUDA runtime sees at least one device (false on machines without a GPU or driver).
bool available();

// Streaming multiprocessors of the current device (queried once per device, then cached): the grid rules of the
// kernels that size their launches to fill the GPU.
int sm_count();

// A device allocation of n elements of T (RAII; move-only).
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) : n_(n) {
    if (n) JRT_CUDA_CHECK(cudaMalloc(&p_, n * sizeof(T)));
  }
  ~DeviceBuffer() {
    if (p_) cudaFree(p_);
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      if (p_) cudaFree(p_);
      p_ = o.p_, n_ = o.n_, o.p_ = nullptr, o.n_ = 0;
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const { return p_; }
  size_t size() const { return n_; }
  void upload(const T* h, size_t n) { JRT_CUDA_CHECK(cudaMemcpy(p_, h, n * sizeof(T), cudaMemcpyHostToDevice)); }
  void download(T* h, size_t n) const { JRT_CUDA_CHECK(cudaMemcpy(h, p_, n * sizeof(T), cudaMemcpyDeviceToHost)); }
  void zero() {
    if (n_) JRT_CUDA_CHECK(cudaMemset(p_, 0, n_ * sizeof(T)));
  }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

// Stream-ordered scratch of n elements of T for one op's intermediate results (e.g. per-CTA partial sums
// that a second kernel reduces in a fixed order, which keeps gradients bitwise reproducible where atomics
// would not). Allocated with cudaMallocFromPoolAsync on `stream` and freed with cudaFreeAsync on the same
// stream when it goes out of scope: kernels enqueued in between may use it, the host never waits. The
// pool (one per device) keeps freed memory, so after an op's first call no memory is taken from the
// driver and no host synchronisation happens.
template <typename T>
class StreamScratch;

// The current device's scratch pool: created on first use, with an unlimited release threshold.
cudaMemPool_t scratch_pool();

template <typename T>
class StreamScratch {
 public:
  StreamScratch(size_t n, cudaStream_t stream) : stream_(stream) {
    if (n)
      JRT_CUDA_CHECK(cudaMallocFromPoolAsync(reinterpret_cast<void**>(&p_), n * sizeof(T), scratch_pool(), stream));
  }
  ~StreamScratch() {
    if (p_) cudaFreeAsync(p_, stream_);
  }
  StreamScratch(const StreamScratch&) = delete;
  StreamScratch& operator=(const StreamScratch&) = delete;
  T* get() const { return p_; }

 private:
  T* p_ = nullptr;
  cudaStream_t stream_;
};

}  // namespace jrt::cuda
#endif
