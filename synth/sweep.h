// synth/sweep.h — a sweep of synthetic experiments from a small YAML file: a grid over mixers,
// d_model, task shapes (seq_len x kv_pairs zipped for MQAR, short x long set sizes for disjointness),
// feature dims (Taylor mixers only), learning rates and seeds, run one after another, one CSV row per
// run (written as each finishes). The YAML subset: `key: scalar`, `key: [a, b, c]`, or `key:` followed
// by `- item` lines; `#` comments. Unknown keys are errors.
//
//   task: mqar
//   mixers: [based, mamba, attention]
//   d_model: [32, 64]
//   seq_len: [64, 128]
//   kv_pairs: [4, 8]
//   lr: [1e-3, 3e-3]
//   seeds: [1]
//   epochs: 8
#pragma once
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "synth/experiment.h"

namespace jrt::synth {

using YamlMap = std::map<std::string, std::vector<std::string>>;

// Parses the YAML subset; errors name the file and line.
YamlMap parse_yaml_subset(const std::string& text, const std::string& source);

struct SweepRun {
  Experiment exp;
  std::string label;  // e.g. "based d=64 L=64 D=4 f=16 lr=1e-3 seed=1"
};

// Expands the grid; every run is validated (bad values fail before anything trains).
std::vector<SweepRun> expand_sweep(const YamlMap& y, const std::string& source, const Experiment& base);

// The CSV header and one row.
std::string csv_header();
std::string csv_row(const SweepRun& r, const ExperimentResult& res);

}  // namespace jrt::synth
