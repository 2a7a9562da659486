// unmask grad: the loss and the gradient of every parameter for one sequence — a debugging tool, and what the
// PyTorch autograd comparison (tests/reference/test_gradients.py) reads.
//   loss = mean over rows i with targets[i] >= 0 of CE(logits_i, targets[i]); row i from hidden state i.
// Output: float32 loss, then each tensor's gradient in file order (the order of `unmask info`), f32, row-major.
#include <fmt/format.h>

#include <memory>
#include <vector>

#include "cli_util.h"
#include "commands.h"
#include "unmask/base/error.h"
#include "unmask/base/mmap.h"
#include "unmask/base/parallel.h"
#include "unmask/kernels/backward.h"
#include "unmask/model/model.h"

namespace unmask::cli {

namespace {

struct GradOptions {
  std::string model, out;
  std::vector<int32_t> tokens, targets;
  int threads = 0;
  bool force = false;
};

void run_grad(const GradOptions& o) {
  set_num_threads(o.threads);
  check_new_output(o.out, o.force);
  Model m = Model::load(o.model).to_trainable();
  const ModelConfig& c = m.config();
  check(o.tokens.size() == o.targets.size(), "--targets: {} targets for {} tokens", o.targets.size(), o.tokens.size());
  TrainBatch b;
  b.add(o.tokens, c.mask, c.block_size);
  const int T = int(o.tokens.size());
  std::vector<float> logits(size_t(T) * c.vocab), losses(static_cast<size_t>(T)), dloss(static_cast<size_t>(T));
  m.forward_train(b, logits.data());
  cross_entropy_forward(losses.data(), logits.data(), o.targets.data(), T, c.vocab);
  int valid = 0;
  for (int32_t t : o.targets) valid += t >= 0;
  check(valid > 0, "--targets: every target is -1, there is no loss");
  float loss = 0;
  for (int i = 0; i < T; ++i) {
    loss += losses[size_t(i)] / float(valid);
    dloss[size_t(i)] = 1.0f / float(valid);
  }
  cross_entropy_backward(logits.data(), logits.data(), o.targets.data(), dloss.data(), T, c.vocab);
  std::vector<float> grads(m.params().size(), 0.0f);
  m.backward(b, logits.data(), grads.data());
  AtomicFile f(o.out);
  f.write(&loss, sizeof loss);
  for (const auto& [spec, view] : m.weights().tensors())
    f.write(grads.data() + m.weights().offset_of(view), size_t(view.nelements()) * sizeof(float));
  f.commit();
  fmt::print(stderr, "{}: loss {:.6f}, gradients of {} tensors\n", o.out, loss, m.weights().tensors().size());
}

}  // namespace

void add_grad(CLI::App& app) {
  auto* cmd = app.add_subcommand("grad", "Write the loss and every parameter's gradient for one sequence (debugging)");
  auto o = std::make_shared<GradOptions>();
  cmd->add_option("-m,--model", o->model, "GGUF model file or Hugging Face folder")->required();
  add_tokens_option(cmd, "--tokens", o->tokens, "Input token ids")->required();
  add_tokens_option(cmd, "--targets", o->targets, "Target id per position (-1: no loss)")->required();
  add_out_option(cmd, o->out, o->force, "Output file: float32 loss, then the gradients in file order");
  add_threads_option(cmd, o->threads);
  cmd->callback([o] { run_grad(*o); });
}

}  // namespace unmask::cli
