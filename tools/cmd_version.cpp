// tools/cmd_version.cpp — `jrt version`: build facts (CUDA backend compiled in or not).
#include <cstdio>

#include "tools/cli.h"

namespace {
jrt::cli::Runner setup(CLI::App& app) {
  app.add_subcommand("version", "Print the version and the backends compiled in");
  return [] {
#ifdef JRT_HAVE_CUDA
    std::printf("jrt 0.1.0 (cpu, cuda)\n");
#else
    std::printf("jrt 0.1.0 (cpu)\n");
#endif
    return 0;
  };
}
JRT_REGISTER_COMMAND("version", setup);
}  // namespace
