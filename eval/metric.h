// eval/metric.h — the paper's `contains` metric (jrt-prompt-eval-spec §3.1, §12.2) and its mean.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace jrt::eval {

// 1 if any label occurs in the prediction as a case-insensitive substring with Python
// re.search(re.escape(label), prediction, re.IGNORECASE) semantics (per-character simple
// lower-casing plus `re`'s extra equivalences: "İ" matches "i", the Kelvin sign matches "k", "ß" does
// not match "SS"); else 0. No other normalisation. An empty label matches everything. Throws
// jrt::Error on an empty label list (Python's max() of nothing raises) or invalid UTF-8.
int contains(std::string_view prediction, const std::vector<std::string>& labels);

// np.mean of the per-example scores; throws on an empty list (no scored example).
double mean_score(const std::vector<int>& scores);

}  // namespace jrt::eval
