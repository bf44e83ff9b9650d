// ops/linear_skinny_lab.h — kernel-lab hook of the skinny decode GEMM (ops/linear_skinny.cu), for benchmarks
// that compare its environment knobs (JRT_SKINNY_*) inside one process instead of one process per setting.
#pragma once

#include <string_view>

namespace jrt::ops::cuda {

// The environment variables skinny_gemm_reload_env re-reads (ops/linear_skinny.cu read_knobs); JRT_SKINNY_GEMM and
// JRT_PDL stay as first read.
inline constexpr std::string_view kSkinnyReloadedKnobs[] = {"JRT_SKINNY_MAX_M", "JRT_SKINNY_ACT_MAX_M",
                                                            "JRT_SKINNY_WIDE128", "JRT_SKINNY_VARIANT"};

// Re-reads those knobs. Products launched or captured afterwards follow the new values. Not thread-safe: call it
// between runs, with no product being launched.
void skinny_gemm_reload_env();

}  // namespace jrt::ops::cuda
