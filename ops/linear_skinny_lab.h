// ops/linear_skinny_lab.h — kernel-lab hook of the skinny decode GEMM (ops/linear_skinny.cu), for benchmarks
// that compare its environment knobs (JRT_SKINNY_*) inside one process instead of one process per setting.
#pragma once

namespace jrt::ops::cuda {

// Re-reads the JRT_SKINNY_* policy and lab knobs (not JRT_SKINNY_GEMM or JRT_PDL, fixed at first use).
// Products launched or captured afterwards follow the new values.
void skinny_gemm_reload_env();

}  // namespace jrt::ops::cuda
