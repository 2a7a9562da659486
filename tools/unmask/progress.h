// A progress bar on stderr for the long commands: "\rLABEL [#######.............] 1234/4092 UNIT  EXTRA",
// redrawn at each whole percent (or at every call with extra text), with a newline when done. When stderr is not a
// terminal (a log file, CI), one line at each tenth instead.
#pragma once

#include <fmt/format.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace unmask::cli {

inline void draw_progress(std::string_view label, int64_t done, int64_t total, std::string_view unit,
                          std::string_view extra = {}) {
  if (total <= 0) return;
  static const bool tty = isatty(2);
  if (!tty) {
    if (done * 10 / total == (done - 1) * 10 / total && done != total) return;
    fmt::print(stderr, "{} {}/{} {}  {}\n", label, done, total, unit, extra);
    return;
  }
  if (extra.empty() && done * 100 / total == (done - 1) * 100 / total && done != total) return;
  const int width = 30, fill = int(done * width / total);
  fmt::print(stderr, "\r{} [{}{}] {}/{} {}  {}\033[K", label, std::string(size_t(fill), '#'),
             std::string(size_t(width - fill), '.'), done, total, unit, extra);
  if (done == total) std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace unmask::cli
