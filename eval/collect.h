// eval/collect.h — `jrt eval collect`: merge results files into the paper-style table (jrt-prompt-eval-
// spec §8): one row per model, one column per dataset, each cell "default / JRT-Prompt" as
// contains x 100 with one decimal, plus the row average; printed as markdown and CSV.
#pragma once
#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace jrt::eval {

struct CollectTable {
  struct Cell {
    double def = NAN, twice = NAN;  // contains x 100; NaN = not run
  };
  std::vector<std::string> models;   // row order: first appearance
  std::vector<std::string> columns;  // e.g. "fda", "nq_1024", "fda@512" (C differs from the task default)
  std::map<std::pair<std::string, std::string>, Cell> cells;
  std::vector<std::string> warnings;  // overwritten cells
};

// Reads results files written by `jrt eval` (or the reference's lm-eval results.json: the model name
// then comes from config.model_args). Throws naming the file when it is not a results file.
CollectTable collect_results(const std::vector<std::string>& paths);

// The average of a row over every column (NaN when a column is missing for that variant).
std::pair<double, double> row_average(const CollectTable& t, const std::string& model);

std::string to_markdown(const CollectTable& t);
std::string to_csv(const CollectTable& t);

}  // namespace jrt::eval
