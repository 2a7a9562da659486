// unmask: diffusion language models and their autoregressive twins.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "cli_util.h"
#include "commands.h"
#include "unmask/base/error.h"
#include "version.h"

namespace {

// The deepest subcommand the command line reached, and its path ("tokenizer train"; "" at the top).
std::pair<const CLI::App*, std::string> reached(const CLI::App& app) {
  const CLI::App* at = &app;
  std::string path;
  while (!at->get_subcommands().empty()) {
    at = at->get_subcommands().front();
    path += path.empty() ? at->get_name() : " " + at->get_name();
  }
  return {at, path};
}

// "a command is required; one of: info, init, ..." or "unknown command 'x'; one of: ...".
std::string missing_command(const CLI::App& at) {
  std::vector<std::string> names;
  for (const CLI::App* sub : at.get_subcommands([](const CLI::App*) { return true; })) names.push_back(sub->get_name());
  const std::vector<std::string> rest = at.remaining();
  return fmt::format("{}; one of: {}", rest.empty() ? "a command is required" : "unknown command '" + rest[0] + "'",
                     fmt::join(names, ", "));
}

// A parse error as one line: "train: --out is required (see `unmask train --help`)".
std::string parse_error_line(const CLI::App& app, const CLI::ParseError& e) {
  const auto [at, cmd] = reached(app);
  std::string msg = std::string(e.what()).starts_with("A subcommand is required") ? missing_command(*at) : e.what();
  std::replace(msg.begin(), msg.end(), '\n', ' ');
  return fmt::format("{}{} (see `unmask{} --help`)", cmd.empty() ? "" : cmd + ": ", msg, cmd.empty() ? "" : " " + cmd);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"unmask: diffusion language models and their autoregressive twins"};
  app.require_subcommand(1);
  app.footer("`unmask COMMAND --help` describes each command; the conventions they share: docs/command-line.md");
  app.set_version_flag("--version", fmt::format("unmask {} (commit {})", UNMASK_VERSION, UNMASK_COMMIT));
  unmask::cli::add_info(app);
  unmask::cli::add_init(app);
  unmask::cli::add_forward(app);
  unmask::cli::add_grad(app);
  unmask::cli::add_data(app);
  unmask::cli::add_train(app);
  unmask::cli::add_tokenize(app);
  unmask::cli::add_detokenize(app);
  unmask::cli::add_tokenizer(app);
  unmask::cli::add_generate(app);
  unmask::cli::add_demo(app);
  unmask::cli::add_convert(app);
  unmask::cli::add_quantize(app);
  unmask::cli::add_export(app);
  unmask::cli::add_eval(app);
  unmask::cli::add_compare(app, argc, argv);
  unmask::cli::add_serve(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "unmask: error: %s\n", parse_error_line(app, e).c_str());
    return 1;
  } catch (const unmask::cli::ExitStatus& e) {
    return e.code;
  } catch (const unmask::Error& e) {
    std::fprintf(stderr, "unmask: error: %s\n", e.what());
    return 1;
  } catch (const std::filesystem::filesystem_error& e) {  // a path the user gave: not a bug
    std::string msg = e.what();
    if (msg.starts_with("filesystem error: ")) msg.erase(0, 18);
    std::fprintf(stderr, "unmask: error: %s\n", msg.c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unmask: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
