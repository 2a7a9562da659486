// unmask: diffusion language models and their autoregressive twins.
#include <cstdio>
#include <exception>

#include "commands.h"
#include "unmask/base/error.h"

int main(int argc, char** argv) {
  CLI::App app{"unmask: diffusion language models and their autoregressive twins"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "unmask 0.1.0");
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
  unmask::cli::add_convert(app);
  unmask::cli::add_quantize(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const unmask::Error& e) {
    std::fprintf(stderr, "unmask: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "unmask: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
