// Errors: library code throws unmask::Error with a message that says what was wrong, where, and what was
// expected. The tools catch it at the boundary and print one line on stderr. Nothing below tools/ exits.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace unmask {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// fail("{}: tensor {} has shape [{}], expected [{}]", path, name, got, want)
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

// check(cond, ...) throws with the message when cond is false.
template <typename... Args>
void check(bool cond, fmt::format_string<Args...> f, Args&&... args) {
  if (!cond) throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace unmask
