// unmask forward: the logits of one sequence as raw little-endian float32 [T, vocab], row i from hidden state i.
#include <fmt/format.h>

#include <memory>
#include <vector>

#include "cli_util.h"
#include "commands.h"
#include "unmask/base/error.h"
#include "unmask/base/mmap.h"
#include "unmask/base/parallel.h"
#include "unmask/model/model.h"

namespace unmask::cli {

namespace {

struct ForwardOptions {
  std::string model, out;
  std::vector<int32_t> tokens;
  int threads = 0;
  bool force = false;
};

void run_forward(const ForwardOptions& o) {
  set_num_threads(o.threads);
  check_new_output(o.out, o.force);
  Model m = Model::load(o.model);
  Batch b;
  b.add(o.tokens);
  std::vector<float> logits(o.tokens.size() * size_t(m.config().vocab));
  m.forward(b, logits.data());
  AtomicFile f(o.out);
  f.write(logits.data(), logits.size() * sizeof(float));
  f.commit();
  fmt::print(stderr, "{}: logits [{}, {}] float32\n", o.out, o.tokens.size(), m.config().vocab);
}

}  // namespace

void add_forward(CLI::App& app) {
  auto* cmd = app.add_subcommand("forward", "Write the logits of one sequence (float32 [T, vocab], no shift)");
  auto o = std::make_shared<ForwardOptions>();
  cmd->add_option("-m,--model", o->model, "GGUF model file or Hugging Face folder")->required();
  add_tokens_option(cmd, "--tokens", o->tokens, "Token ids")->required();
  add_out_option(cmd, o->out, o->force, "Output file for the logits");
  add_threads_option(cmd, o->threads);
  cmd->callback([o] { run_forward(*o); });
}

}  // namespace unmask::cli
