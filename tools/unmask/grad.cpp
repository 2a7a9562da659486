// unmask grad: the loss and the gradient of every parameter for one sequence — a debugging tool, and what the
// PyTorch autograd comparison (tests/reference/test_gradients.py) reads.
//   loss = mean over rows i with targets[i] >= 0 of CE(logits_i, targets[i]); row i from hidden state i.
// With --objective, the tokens are one training window (T + 1) and the loss is the objective's Σ w · CE over the
// loss batch it draws (seeded); --batch-json writes that batch (tokens, positions, rows, targets, weights) so that a
// reference can rebuild its attention from the objective's definition and check the rest.
// Output: float32 loss, then each tensor's gradient in file order (the order of `unmask info`), f32, row-major.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <memory>
#include <vector>

#include "cli_util.h"
#include "commands.h"
#include "unmask/base/error.h"
#include "unmask/base/mmap.h"
#include "unmask/base/parallel.h"
#include "unmask/base/rng.h"
#include "unmask/diffusion/objective.h"
#include "unmask/kernels/backward.h"
#include "unmask/model/model.h"

namespace unmask::cli {

namespace {

struct GradOptions {
  std::string model, out, objective, batch_json;
  std::vector<int32_t> tokens, targets;
  int threads = 0, block = 0, mask_token = -1;
  double diffusion_weight = 0.3;
  uint64_t seed = 1;
  bool force = false;
};

// The loss batch: one sequence under the model's mask with the mean CE over its targets, or an objective's draw.
LossBatch loss_batch(const GradOptions& o, const ModelConfig& c) {
  LossBatch lb;
  if (o.objective.empty()) {
    check(o.tokens.size() == o.targets.size(), "--targets: {} targets for {} tokens", o.targets.size(),
          o.tokens.size());
    lb.batch.add(o.tokens, c.mask, c.block_size);
    const int valid = int(std::count_if(o.targets.begin(), o.targets.end(), [](int32_t t) { return t >= 0; }));
    check(valid > 0, "--targets: every target is -1, there is no loss");
    for (size_t i = 0; i < o.targets.size(); ++i) lb.batch.rows.push_back(int32_t(i));
    lb.targets = o.targets;
    lb.weights.assign(o.targets.size(), 1.0f / float(valid));
    return lb;
  }
  check(o.targets.empty(), "--targets: an objective draws its own targets");
  check(o.tokens.size() >= 2, "--objective: give a window of at least 2 tokens (T + 1)");
  Objective obj;
  obj.kind = parse_objective(o.objective);
  obj.block = o.block, obj.mask_token = o.mask_token >= 0 ? o.mask_token : c.mask_token;
  obj.diffusion_weight = o.diffusion_weight;
  obj.shift = c.shift_logits;
  obj.validate(c);
  Rng rng(o.seed);
  return make_loss_batch(obj, o.tokens, 1, int(o.tokens.size()) - 1, rng);
}

void write_batch_json(const std::string& path, const LossBatch& lb) {
  std::vector<int32_t> rows(lb.batch.rows);
  const nlohmann::json j = {{"tokens", lb.batch.tokens}, {"pos", lb.batch.pos}, {"rows", rows},
                            {"targets", lb.targets}, {"weights", lb.weights}};
  write_file(path, j.dump() + "\n");
}

void run_grad(const GradOptions& o) {
  set_num_threads(o.threads);
  check_new_output(o.out, o.force);
  Model m = Model::load(o.model).to_trainable();
  const ModelConfig& c = m.config();
  LossBatch lb = loss_batch(o, c);
  // Targets of -1 carry no loss: their rows are left out.
  for (size_t r = lb.targets.size(); r-- > 0;)
    if (lb.targets[r] < 0) {
      lb.targets.erase(lb.targets.begin() + ptrdiff_t(r)), lb.weights.erase(lb.weights.begin() + ptrdiff_t(r));
      lb.batch.rows.erase(lb.batch.rows.begin() + ptrdiff_t(r));
    }
  if (!o.batch_json.empty()) write_batch_json(o.batch_json, lb);
  const int R = int(lb.targets.size());
  std::vector<float> logits(size_t(R) * size_t(c.vocab)), losses(static_cast<size_t>(R));
  m.forward_train(lb.batch, logits.data());
  cross_entropy_forward(losses.data(), logits.data(), lb.targets.data(), R, c.vocab);
  float loss = 0;
  for (int r = 0; r < R; ++r) loss += lb.weights[size_t(r)] * losses[size_t(r)];
  cross_entropy_backward(logits.data(), logits.data(), lb.targets.data(), lb.weights.data(), R, c.vocab);
  std::vector<float> grads(m.params().size(), 0.0f);
  m.backward(lb.batch, logits.data(), grads.data());
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
  add_tokens_option(cmd, "--targets", o->targets, "Target id per position (-1: no loss); not with --objective");
  cmd->add_option("--objective", o->objective, "Instead of --targets: the tokens are a training window (T + 1) and the "
                  "loss is this objective's (ar, mdlm, bd3, joint) on one draw of it");
  cmd->add_option("--block-size", o->block, "--objective bd3/joint: the block size");
  cmd->add_option("--diffusion-weight", o->diffusion_weight, "--objective joint: the diffusion loss's weight")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "--objective: the seed of the draw (times and masks)")->capture_default_str();
  cmd->add_option("--mask-token", o->mask_token, "--objective: the mask token (default: the model's)");
  cmd->add_option("--batch-json", o->batch_json, "--objective: write the drawn batch here as JSON");
  add_out_option(cmd, o->out, o->force, "Output file: float32 loss, then the gradients in file order");
  add_threads_option(cmd, o->threads);
  cmd->callback([o] { run_grad(*o); });
}

}  // namespace unmask::cli
