// tools/io_util.h — what several verbs share: reading id / mask matrices from a safetensors file,
// the --threads flag.
#pragma once
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace jrt::cli {

// Reads an integer matrix [B, L] (int64, int32 or bool/uint8) named key from f as rows.
std::vector<std::vector<int64_t>> read_int_matrix(const SafeTensorsFile& f, const std::string& key);

// --device: "cpu" runs; "cuda" is refused with the reason (no whole-model GPU path yet); anything
// else is an error naming the value.

}  // namespace jrt::cli
