// ops/cuda_common.cuh — device helpers shared by the GPU ops (included by .cu files only).
#pragma once
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <utility>

#include "core/cuda_util.h"

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

// asm volatile(...) where the code is compiled for sm_90 or later; nothing elsewhere (the host pass, sm_80),
// where the kernels that reach these wrappers are either not launched or meant to skip them.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define JRT_SM90_ASM(...) asm volatile(__VA_ARGS__)
#else
#define JRT_SM90_ASM(...) \
  do {                    \
  } while (0)
#endif

// Lets a kernel launched after this one with programmatic dependent launch (the skinny decode GEMM,
// ops/linear_skinny.cu, and the kernels launched with launch_pdl below) start now: the GEMM fetches its
// weights while this kernel runs, and each waits (griddepcontrol.wait) for this kernel's completion before
// it reads anything this kernel writes. The decode step's kernels call it right after their pdl_wait (not
// before: then a chain of kernels could become resident, each waiting on the one before); a no-op where
// no dependent launch follows.
__device__ __forceinline__ void pdl_launch_dependents() {
  JRT_SM90_ASM("griddepcontrol.launch_dependents;\n" ::: "memory");
}

// The other half: a kernel launched with launch_pdl may start while the kernel before it is still running, so
// it calls this before its first read of anything an earlier kernel writes and before its first write of
// anything an earlier kernel reads (only constant inputs, such as weights, may be loaded above it). It waits
// for the previous kernel's completion and memory flush; since that kernel did the same, every earlier
// kernel of the stream is complete too. A no-op for kernels launched normally.
__device__ __forceinline__ void pdl_wait() {
  JRT_SM90_ASM("griddepcontrol.wait;\n" ::: "memory");
}

// mbarrier and bulk-copy (TMA) primitives of sm_90 (the skinny GEMM's pipeline, the linear-attention decode
// step's state slots); no-ops below sm_90, where their callers are never launched.
__device__ __forceinline__ void mbar_init(uint32_t bar, int count) {
  JRT_SM90_ASM("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count));
}
// Makes mbarrier initialisations visible to the async proxy (and the cluster) before first use.
__device__ __forceinline__ void fence_mbarrier_init() {
  JRT_SM90_ASM("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// Arms the barrier's current phase for `bytes` of asynchronous copies (the calling thread's arrival).
__device__ __forceinline__ void mbar_expect(uint32_t bar, uint32_t bytes) {
  JRT_SM90_ASM("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, int parity) {
  JRT_SM90_ASM(
      "{\n.reg .pred p;\nWAIT:\nmbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n@!p bra WAIT;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}
// bytes (a multiple of 16; both addresses 16-byte aligned) from global memory into shared memory, completing
// on bar.
__device__ __forceinline__ void bulk_load(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
  JRT_SM90_ASM("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
               "l"(src), "r"(bytes), "r"(bar)
               : "memory");
}
// Orders this thread's earlier generic-proxy accesses of shared memory before its later async-proxy ones (a
// slot read with ld.shared, then refilled by a bulk copy).
__device__ __forceinline__ void fence_proxy_async() {
  JRT_SM90_ASM("fence.proxy.async.shared::cta;\n" ::: "memory");
}
// Sum of x over the warp's 32 lanes (xor butterfly: every lane gets the same total, in the same order).
__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Raises kernel's dynamic shared-memory limit to bytes, once per device: the attribute belongs to the device's
// context. done: the caller's bitmask of devices already raised, one static per kernel.
template <class Kernel>
void raise_smem_limit_once(Kernel* kernel, int bytes, std::atomic<uint64_t>& done) {
  int dev = 0;
  JRT_CUDA_CHECK(cudaGetDevice(&dev));
  const uint64_t bit = uint64_t(1) << (dev & 63);
  if (done.load(std::memory_order_acquire) & bit) return;
  JRT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  done.fetch_or(bit, std::memory_order_release);
}

// Whether launch_pdl may use programmatic dependent launch: an sm_90 device and neither JRT_PDL=0 nor
// JRT_PDL=gemm (the skinny GEMM's alone) in the environment (ops/linear_skinny.cu).
bool pdl_enabled();

// kernel<<<grid, block, smem, stream>>>(args...) with programmatic dependent launch allowed (where
// pdl_enabled()): the kernel's CTAs may become resident once the previous kernel has triggered
// (pdl_launch_dependents), hiding the launch gap of the decode step's small kernels. The kernel must call
// pdl_wait() as above.
template <class... P, class... A>
void launch_pdl(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, A&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = pdl_enabled() ? 1 : 0;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  JRT_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<A>(args)...));
}

}  // namespace jrt::ops::cuda
