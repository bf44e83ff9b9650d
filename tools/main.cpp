// tools/main.cpp — the `jrt` binary: one subcommand per job (tools/cmd_*.cpp register themselves).
// Errors from anywhere surface as jrt::Error: printed as "jrt <verb>: error: ..." with exit code 1.
#include <cstdio>
#include <map>

#include "core/error.h"
#include "tools/cli.h"

namespace jrt::cli {
std::vector<Command>& registry() {
  static std::vector<Command> r;
  return r;
}
}  // namespace jrt::cli

int main(int argc, char** argv) {
  CLI::App app{"jrt: run, train and evaluate Based, JRT-RNN, Mamba and attention language models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "jrt 0.1.0");
  std::map<CLI::App*, jrt::cli::Runner> runners;
  for (auto& c : jrt::cli::registry()) {
    size_t before = app.get_subcommands({}).size();
    auto run = c.setup(app);
    auto subs = app.get_subcommands({});
    if (subs.size() > before) runners[subs.back()] = std::move(run);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  std::string verb = "?";
  try {
    for (auto* sub : app.get_subcommands()) {
      verb = sub->get_name();
      auto it = runners.find(sub);
      if (it != runners.end()) return it->second();
    }
    return 0;
  } catch (const jrt::Error& e) {
    std::fprintf(stderr, "jrt %s: error: %s\n", verb.c_str(), e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "jrt %s: error: %s\n", verb.c_str(), e.what());
    return 1;
  }
}
