// ops/linear_skinny_lab.h — kernel-lab hook of the skinny decode GEMM (ops/linear_skinny.cu), for benchmarks
// that compare its environment knobs (JRT_SKINNY_*) inside one process instead of one process per setting.
#pragma once

namespace jrt::ops::cuda {

// Re-reads the policy knobs JRT_SKINNY_MAX_M, JRT_SKINNY_ACT_MAX_M, JRT_SKINNY_WIDE128 and JRT_SKINNY_VARIANT
// (JRT_SKINNY_GEMM and JRT_PDL stay as first read). Products launched or captured afterwards follow the new
// values. Not thread-safe: call it between runs, with no product being launched.
void skinny_gemm_reload_env();

}  // namespace jrt::ops::cuda
