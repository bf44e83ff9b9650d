// tools/cli.h — how a verb joins the `jrt` CLI: each tools/cmd_<verb>.cpp defines a static
// JRT_REGISTER_COMMAND that adds its CLI11 subcommand and returns the function that runs it.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace jrt::cli {

using Runner = std::function<int()>;
using Setup = std::function<Runner(CLI::App& parent)>;  // adds the subcommand, returns its runner

struct Command {
  std::string name;
  Setup setup;
};
std::vector<Command>& registry();

struct Registrar {
  Registrar(std::string name, Setup s) { registry().push_back({std::move(name), std::move(s)}); }
};

}  // namespace jrt::cli

#define JRT_CLI_CAT2(a, b) a##b
#define JRT_CLI_CAT(a, b) JRT_CLI_CAT2(a, b)
#define JRT_REGISTER_COMMAND(name, setup_fn) \
  static ::jrt::cli::Registrar JRT_CLI_CAT(jrt_cmd_registrar_, __LINE__)(name, setup_fn)
