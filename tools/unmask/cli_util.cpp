#include "cli_util.h"

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>

#include "unmask/base/error.h"

namespace unmask::cli {

namespace {

std::optional<double> number(const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || std::isnan(v)) return std::nullopt;
  return v;
}

// A validator that reads the value as a number and returns "" when ok(v), else "V is not WHAT".
template <typename Ok>
CLI::Validator number_check(std::string what, std::string desc, Ok ok) {
  return CLI::Validator(
      [what, ok](std::string& in) -> std::string {
        const auto v = number(in);
        if (!v) return fmt::format("'{}' is not a number", in);
        return ok(*v) ? std::string() : fmt::format("{} is not {}", in, what);
      },
      desc);
}

}  // namespace

CLI::Validator positive() { return number_check("a positive number", "> 0", [](double v) { return v > 0; }); }

CLI::Validator non_negative() { return number_check("0 or more", ">= 0", [](double v) { return v >= 0; }); }

CLI::Validator in_range(int64_t lo, int64_t hi) {
  const std::string range = fmt::format("in [{}, {}]", lo, hi);
  return number_check(range, range, [lo, hi](double v) { return v >= double(lo) && v <= double(hi); });
}

CLI::Validator in_range(double lo, double hi) {
  const std::string range = fmt::format("in [{:g}, {:g}]", lo, hi);
  return number_check(range, range, [lo, hi](double v) { return v >= lo && v <= hi; });
}

std::vector<int32_t> parse_token_list(std::string_view text, std::string_view what) {
  std::string t(text);
  for (char& c : t) c = (c == ',' || c == '[' || c == ']' || std::isspace(uint8_t(c))) ? ' ' : c;
  std::vector<int32_t> ids;
  for (size_t at = t.find_first_not_of(' '); at != std::string::npos; at = t.find_first_not_of(' ', at)) {
    const size_t end = std::min(t.find(' ', at), t.size());
    int32_t v = 0;
    const auto [ptr, ec] = std::from_chars(t.data() + at, t.data() + end, v);
    check(ec == std::errc() && ptr == t.data() + end, "{}: '{}' is not a token id (expected integers such as "
          "1,2,3 or [1, 2, 3])", what, t.substr(at, end - at));
    ids.push_back(v);
    at = end;
  }
  check(!ids.empty(), "{}: no token ids given", what);
  return ids;
}

CLI::Option* add_tokens_option(CLI::App* cmd, const std::string& name, std::vector<int32_t>& ids,
                               const std::string& help) {
  const std::string flag = name.substr(name.rfind(',') + 1);
  auto set = [&ids, flag](const std::string& text) { ids = parse_token_list(text, flag); };
  return cmd->add_option_function<std::string>(name, set, help + " (1,2,3 or \"1 2 3\" as `unmask tokenize` prints "
                                               "them, or \"[1, 2, 3]\")")
      ->type_name("IDS");
}

CLI::Option* add_out_option(CLI::App* cmd, std::string& out, bool& force, const std::string& help) {
  auto* opt = cmd->add_option("-o,--out", out, help)->required();
  cmd->add_flag("--force", force, "Replace the output if it exists (atomically; refused otherwise)");
  return opt;
}

void check_new_output(const std::string& path, bool force) {
  check(force || !std::filesystem::exists(path), "{} already exists; pass --force to replace it", path);
}

std::string read_text_file(const std::string& path) {
  check(!std::filesystem::is_directory(path), "{}: is a directory, expected a text file", path);
  std::ifstream in(path, std::ios::binary);
  check(bool(in), "{}: cannot open for reading", path);
  std::stringstream ss;
  ss << in.rdbuf();
  check(!in.bad(), "{}: read error", path);
  return ss.str();
}

CLI::Option* add_seed_option(CLI::App* cmd, uint64_t& seed, const std::string& help) {
  auto set = [&seed](int64_t v) {
    check(v >= -1, "--seed: {} is not a seed (0 or more, or -1 for a random one)", v);
    if (v >= 0) return void(seed = uint64_t(v));
    seed = std::random_device{}() & 0xffffffffu;
    fmt::print(stderr, "seed: {} (drawn at random)\n", seed);
  };
  return cmd->add_option_function<int64_t>("-s,--seed", set, help + "; -1: a random seed")
      ->default_str(std::to_string(seed));
}

CLI::Option* add_threads_option(CLI::App* cmd, int& threads) {
  return cmd->add_option("-t,--threads", threads, "Threads (default 0: all cores)")->check(non_negative());
}

}  // namespace unmask::cli
