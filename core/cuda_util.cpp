// core/cuda_util.cpp — GPU presence check (compiled only with the CUDA backend).
#include "core/cuda_util.h"

#ifdef JRT_HAVE_CUDA
namespace jrt::cuda {
bool available() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}
}  // namespace jrt::cuda
#endif
