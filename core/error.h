// core/error.h — the one error type of jrt and the checks that raise it.
// Every failure a user can cause (bad file, bad flag, bad shape) becomes a jrt::Error whose message
// names the file / field / value; the CLI prints it and exits non-zero.
#pragma once
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace jrt {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

template <typename... Args>
[[noreturn]] inline void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace jrt

// JRT_CHECK(cond, "fmt", args...) throws jrt::Error with the formatted message when cond is false.
#define JRT_CHECK(cond, ...)          \
  do {                                \
    if (!(cond)) ::jrt::fail(__VA_ARGS__); \
  } while (0)
