// eval/synthetic.h — the embedded, download-free recall task set: procedurally generated documents
// of attribute-value records in the style of the FDA (510(k) device summaries) and SWDE (movie web
// pages) extraction tasks, with a question about one attribute. Rows use the reference datasets'
// field layout (doc_id, file_name, key, value, text), so the real FDA / SWDE cutting and templates
// run on them unchanged (tasks synth_fda, synth_swde and their _twice variants). Deterministic: the
// same seed gives byte-identical rows on every platform (own PRNG, no std distributions), and row i
// does not depend on how many rows are asked for. docs/eval.md documents the generator.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace jrt::eval {

constexpr uint64_t kSynthDefaultSeed = 0;
constexpr int64_t kSynthDefaultRows = 100;

// dataset: "synth_fda" or "synth_swde" (throws otherwise). Row i of a seed is the same whatever `rows`.
std::vector<nlohmann::json> synth_rows(const std::string& dataset, uint64_t seed, int64_t rows);

// Writes <dir>/synth_fda.jsonl and <dir>/synth_swde.jsonl (creating dir); returns the paths.
std::vector<std::string> write_synth(const std::string& dir, uint64_t seed, int64_t rows);

}  // namespace jrt::eval
