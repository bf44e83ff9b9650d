// eval/metric.cpp — see metric.h.
#include "eval/metric.h"

#include "core/error.h"
#include "eval/pystr.h"

namespace jrt::eval {

int contains(std::string_view prediction, const std::vector<std::string>& labels) {
  JRT_CHECK(!labels.empty(), "contains: no gold label to compare with");
  const U32 pred = to_u32(prediction, "generation");
  for (const auto& l : labels)
    if (re_find_ignorecase(pred, to_u32(l, "gold label")) >= 0) return 1;
  return 0;
}

double mean_score(const std::vector<int>& scores) {
  JRT_CHECK(!scores.empty(), "mean of no scores: no example was scored");
  double s = 0;
  for (int x : scores) s += x;
  return s / double(scores.size());
}

}  // namespace jrt::eval
