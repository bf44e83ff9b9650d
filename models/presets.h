// models/presets.h — config.json texts of the released model shapes (models-spec §1), for benchmarks
// and tests that need full-size models with random weights: jrt-360m, based-360m, mamba-360m,
// attn-360m, jrt-1b, based-1b, mamba-1b, attn-1b.
#pragma once
#include <string>
#include <vector>

namespace jrt {

std::vector<std::string> preset_names();
std::string preset_config_json(const std::string& name);  // throws naming the unknown preset

}  // namespace jrt
