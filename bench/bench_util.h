// bench/bench_util.h — small helpers shared by the benchmark programs' flag parsing.
#pragma once
#include <sstream>
#include <string>
#include <vector>

namespace jrt::bench {

// "a,b,c" -> {"a", "b", "c"} (a list-valued flag such as --batches 1,16,128).
inline std::vector<std::string> split_csv(const std::string& s) {
  std::vector<std::string> r;
  std::stringstream ss(s);
  std::string x;
  while (std::getline(ss, x, ',')) r.push_back(x);
  return r;
}

}  // namespace jrt::bench
