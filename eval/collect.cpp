// eval/collect.cpp — see collect.h. Unlike the reference's collect scripts (spec §8), nothing is
// skipped silently: a file that is not a results file is an error, an overwritten cell a warning.
#include "eval/collect.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "eval/tasks.h"

namespace jrt::eval {
namespace {

using json = nlohmann::json;

std::string model_name(const json& j, const std::string& path) {
  if (j.contains("model") && j["model"].is_object() && j["model"].contains("name") && j["model"]["name"].is_string())
    return j["model"]["name"].get<std::string>();
  // Reference results.json: config.model_args "checkpoint_name=hazyresearch/based-1b-50b,..." or pretrained=.
  if (j.contains("config") && j["config"].is_object() && j["config"].contains("model_args") &&
      j["config"]["model_args"].is_string()) {
    const std::string args = j["config"]["model_args"].get<std::string>();
    for (std::string key : {"checkpoint_name=", "pretrained="}) {
      size_t at = args.find(key);
      if (at != std::string::npos) {
        size_t end = args.find(',', at);
        return args.substr(at + key.size(), end == std::string::npos ? std::string::npos : end - at - key.size());
      }
    }
  }
  return std::filesystem::path(path).parent_path().filename().string();
}

std::string fmt1(double v) { return std::isnan(v) ? "" : fmt::format("{:.1f}", v); }
std::string cell_md(double d, double t) {
  auto one = [](double v) { return std::isnan(v) ? std::string("–") : fmt::format("{:.1f}", v); };
  return one(d) + " / " + one(t);
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string o = "\"";
  for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c);
  return o + "\"";
}

}  // namespace

CollectTable collect_results(const std::vector<std::string>& paths) {
  JRT_CHECK(!paths.empty(), "eval collect: give one or more results files (written by jrt eval --output)");
  CollectTable t;
  for (const auto& path : paths) {
    std::ifstream f(path, std::ios::binary);
    JRT_CHECK(f.good(), "eval collect: cannot read '{}'", path);
    std::stringstream ss;
    ss << f.rdbuf();
    json j;
    try {
      j = json::parse(ss.str());
    } catch (const json::exception& e) {
      fail("eval collect: '{}' is not valid JSON: {}", path, e.what());
    }
    JRT_CHECK(j.is_object() && j.contains("results") && j["results"].is_object(),
              "eval collect: '{}' is not a results file (no 'results' object)", path);
    const std::string model = model_name(j, path);
    if (std::find(t.models.begin(), t.models.end(), model) == t.models.end()) t.models.push_back(model);
    for (const auto& [task, res] : j["results"].items()) {
      JRT_CHECK(res.is_object() && res.contains("contains,none") && res["contains,none"].is_number(),
                "eval collect: '{}': results.{} has no numeric 'contains,none'", path, task);
      const double score = 100.0 * res["contains,none"].get<double>();
      const bool twice = task.size() > 6 && task.compare(task.size() - 6, 6, "_twice") == 0;
      std::string base = twice ? task.substr(0, task.size() - 6) : task;
      int64_t default_c = 1000;
      for (const auto& spec : all_tasks())
        if (spec.name == task) default_c = spec.default_context_length;
      int64_t c = default_c;
      if (res.contains("context_length") && res["context_length"].is_number_integer())
        c = res["context_length"].get<int64_t>();
      else if (j.contains("context_length") && j["context_length"].is_number_integer())
        c = j["context_length"].get<int64_t>();
      if (base.rfind("based_", 0) == 0) base = base.substr(6);
      const std::string col = c == default_c ? base : base + "@" + std::to_string(c);
      if (std::find(t.columns.begin(), t.columns.end(), col) == t.columns.end()) t.columns.push_back(col);
      auto& cell = t.cells[{model, col}];
      double& slot = twice ? cell.twice : cell.def;
      if (!std::isnan(slot))
        t.warnings.push_back(fmt::format("{} / {}{}: {:.1f} replaced by {:.1f} from '{}'", model, col,
                                         twice ? " (JRT-Prompt)" : "", slot, score, path));
      slot = score;
    }
  }
  return t;
}

std::pair<double, double> row_average(const CollectTable& t, const std::string& model) {
  double sd = 0, st = 0;
  bool all_d = !t.columns.empty(), all_t = !t.columns.empty();
  for (const auto& c : t.columns) {
    auto it = t.cells.find({model, c});
    const double d = it == t.cells.end() ? NAN : it->second.def, w = it == t.cells.end() ? NAN : it->second.twice;
    all_d = all_d && !std::isnan(d);
    all_t = all_t && !std::isnan(w);
    sd += std::isnan(d) ? 0 : d;
    st += std::isnan(w) ? 0 : w;
  }
  const double n = double(t.columns.size());
  return {all_d ? sd / n : NAN, all_t ? st / n : NAN};
}

std::string to_markdown(const CollectTable& t) {
  std::string s = "| model |";
  for (const auto& c : t.columns) s += " " + c + " |";
  s += " average |\n|---|";
  for (size_t i = 0; i <= t.columns.size(); ++i) s += "---|";
  s += "\n";
  for (const auto& m : t.models) {
    s += "| " + m + " |";
    for (const auto& c : t.columns) {
      auto it = t.cells.find({m, c});
      s += fmt::format(" {} |", it == t.cells.end() ? cell_md(NAN, NAN) : cell_md(it->second.def, it->second.twice));
    }
    auto [ad, at] = row_average(t, m);
    s += fmt::format(" {} |\n", cell_md(ad, at));
  }
  s += "\ncells: default / JRT-Prompt (read twice), contains x 100; – = not run\n";
  return s;
}

std::string to_csv(const CollectTable& t) {
  std::string s = "model";
  for (const auto& c : t.columns) {
    s += ',';
    s += csv_field(c);
    s += ',';
    s += csv_field(c + "_twice");
  }
  s += ",average,average_twice\n";
  for (const auto& m : t.models) {
    s += csv_field(m);
    for (const auto& c : t.columns) {
      auto it = t.cells.find({m, c});
      s += ',';
      if (it != t.cells.end()) s += fmt1(it->second.def);
      s += ',';
      if (it != t.cells.end()) s += fmt1(it->second.twice);
    }
    auto [ad, at] = row_average(t, m);
    s += fmt::format(",{},{}\n", fmt1(ad), fmt1(at));
  }
  return s;
}

}  // namespace jrt::eval
