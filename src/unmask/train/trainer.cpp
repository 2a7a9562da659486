#include "unmask/train/trainer.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <optional>

#include "unmask/base/error.h"
#include "unmask/base/mmap.h"
#include "unmask/base/timer.h"
#include "unmask/diffusion/objective.h"
#include "unmask/io/gguf.h"
#include "unmask/kernels/backward.h"
#include "unmask/model/model.h"
#include "unmask/train/adamw.h"
#include "unmask/train/curve.h"
#include "unmask/train/comm.h"
#include "unmask/train/sft_data.h"
#include "unmask/train/shards.h"

namespace unmask {

namespace fs = std::filesystem;

#define UNMASK_TRAIN_FIELDS(X)                                                                                     \
  X(objective) X(schedule) X(preset) X(d_model) X(layers) X(heads) X(ffn) X(block) X(data_dir) X(out_dir) X(steps) \
  X(batch) X(seq_len) X(accum) X(warmup) X(eval_every) X(eval_batches) X(ckpt_every) X(lr) X(min_lr)              \
  X(weight_decay) X(beta1) X(beta2) X(grad_clip) X(eps) X(seed)

// Fields added later: optional when reading, so that older checkpoints still resume.
#define UNMASK_TRAIN_LATER_FIELDS(X) X(init) X(bf16) X(diffusion_weight)

std::string to_json(const TrainConfig& c) {
  nlohmann::json j;
#define X(f) j[#f] = c.f;
  UNMASK_TRAIN_FIELDS(X)
  UNMASK_TRAIN_LATER_FIELDS(X)
#undef X
  if (!c.arch.empty()) j["arch"] = c.arch;  // only when chosen, so that earlier runs' configurations stay as written
  return j.dump();
}

TrainConfig train_config_from_json(const std::string& text) {
  TrainConfig c;
  try {
    auto j = nlohmann::json::parse(text);
#define X(f) j.at(#f).get_to(c.f);
    UNMASK_TRAIN_FIELDS(X)
#undef X
#define X(f) if (j.contains(#f)) j.at(#f).get_to(c.f);
    UNMASK_TRAIN_LATER_FIELDS(X)
    X(arch)
#undef X
  } catch (const std::exception& e) {
    fail("training configuration: {}", e.what());
  }
  return c;
}

namespace {

const char* kCheckpoint = "checkpoint.gguf";

// The architecture a diffusion objective trains: llada (row i predicts position i), or dream (row i predicts position
// i + 1, as an autoregressive model's row does, so that a masked token is first learned from its clean neighbour).
std::string diffusion_arch(const TrainConfig& c) { return c.arch.empty() ? "llada" : c.arch; }

void validate(const TrainConfig& c) {
  check(c.arch.empty() || ((c.arch == "llada" || c.arch == "dream") && (c.objective == "mdlm" || c.objective == "sft")),
        "train: --arch {} with --objective {}: the architecture is chosen for mdlm and sft only, llada or dream",
        c.arch, c.objective);
  check(c.steps > 0 && c.batch > 0 && c.seq_len > 1 && c.accum > 0, "train: steps, batch, accum must be > 0 and "
        "seq-len > 1 (got {}, {}, {}, {})", c.steps, c.batch, c.accum, c.seq_len);
  check(c.lr > 0 && c.min_lr >= 0 && c.min_lr <= c.lr, "train: need 0 <= min-lr <= lr and lr > 0 (got {}, {})",
        c.min_lr, c.lr);
  check(c.eval_every > 0 && c.eval_batches > 0 && c.ckpt_every > 0, "train: eval/checkpoint intervals must be > 0");
  const int procs = Comm::world().size();
  check(c.batch % procs == 0, "train: the batch of {} sequences does not split evenly over {} processes", c.batch,
        procs);
}

ModelConfig model_config(const TrainConfig& c, const Objective& o, const gguf::Reader& tok) {
  ModelConfig m = preset_config(c.preset);
  auto over = [](int& field, int v) { if (v > 0) field = v; };
  over(m.d_model, c.d_model), over(m.n_layers, c.layers), over(m.n_heads, c.heads), over(m.ffn, c.ffn);
  if (c.heads > 0) m.n_kv_heads = c.heads;
  m.head_dim = m.d_model / m.n_heads;
  m.vocab = int(tok.get_strings("tokenizer.ggml.tokens").size());
  const bool causal = o.kind == ObjectiveKind::kAR || o.kind == ObjectiveKind::kJoint;
  m.arch = causal ? "llama" : diffusion_arch(c);  // sft of a fresh model: bidirectional
  m.rope = arch_info(m.arch).rope, m.shift_logits = arch_info(m.arch).shift_logits;
  m.mask = o.mask_kind(), m.block_size = o.kind == ObjectiveKind::kBD3 ? o.block : 0;
  m.draft_block = o.kind == ObjectiveKind::kJoint ? o.block : 0;
  m.ctx = std::max(m.ctx, c.seq_len);
  m.mask_token = o.mask_token;
  if (o.kind != ObjectiveKind::kAR) m.noise_schedule = schedule_name(o.schedule), m.noise_eps = o.eps;
  m.bos_token = int32_t(tok.get_int("tokenizer.ggml.bos_token_id", -1));
  m.eos_token = int32_t(tok.get_int("tokenizer.ggml.eos_token_id", -1));
  m.validate();
  return m;
}

// One split of the data directory: token windows (DIR/NAME.bin) for ar, mdlm, bd3; examples (DIR/NAME.sft) for sft.
class DataSplit {
 public:
  DataSplit(const fs::path& dir, const std::string& name, bool sft) {
    const fs::path want = dir / (name + (sft ? ".sft" : ".bin")), other = dir / (name + (sft ? ".bin" : ".sft"));
    check(fs::exists(want) || !fs::exists(other), "{}: not found; {} holds {}, expected {}", want.string(),
          dir.string(), sft ? "a token stream (for ar, mdlm, bd3)" : "examples (for --objective sft)",
          sft ? "examples from `unmask data prepare --format jsonl`" : "a token stream from `unmask data prepare`");
    if (sft)
      examples_.emplace((dir / (name + ".sft")).string());
    else
      tokens_.emplace((dir / (name + ".bin")).string());
  }
  int32_t vocab() const { return tokens_ ? tokens_->vocab() : examples_->vocab(); }
  // The objective's loss batch of B sequences of T tokens, drawn from rng (windows or examples, then masks).
  LossBatch draw(const Objective& o, int B, int T, Rng& rng) {
    if (tokens_) {
      sample_windows(*tokens_, B, T + 1, rng, seqs_);
      return make_loss_batch(o, seqs_, B, T, rng);
    }
    sample_examples(*examples_, B, T, rng, seqs_, prompt_lens_);
    return make_sft_loss_batch(o, seqs_, prompt_lens_, B, T, rng);
  }
  // Throws when a sequence of T tokens cannot hold every example's prompt and one answer token.
  void check_fits(int T) const {
    if (examples_)
      check(examples_->max_prompt() < T, "{}: the longest prompt holds {} tokens; --seq-len {} leaves no room for its "
            "answer (expected > {})", examples_->path(), examples_->max_prompt(), T, examples_->max_prompt());
  }

 private:
  std::optional<Shard> tokens_;
  std::optional<SftShard> examples_;
  std::vector<int32_t> seqs_, prompt_lens_;
};

}  // namespace

struct Trainer::State {
  TrainConfig cfg;
  Objective obj;
  fs::path out;
  std::shared_ptr<gguf::Reader> tok;  // DIR/tokenizer.gguf, copied into checkpoints
  DataSplit train, val;
  Model model;
  std::unique_ptr<AdamW> opt;
  std::vector<float> grads, logits, losses, dloss;
  std::vector<CurvePoint> curve;
  int64_t step = 0, first_step = 0;  // steps done; the step this process started from
  int64_t saved_step = -1;            // the step of the last checkpoint this process wrote

  State(TrainConfig c, Model m)
      : cfg(std::move(c)),
        out(cfg.out_dir),
        tok(std::make_shared<gguf::Reader>((fs::path(cfg.data_dir) / "tokenizer.gguf").string())),
        train(cfg.data_dir, "train", cfg.objective == "sft"),
        val(cfg.data_dir, "val", cfg.objective == "sft"),
        model(std::move(m)) {
    train.check_fits(cfg.seq_len), val.check_fits(cfg.seq_len);
    if (cfg.bf16) model.train_in_bf16();
  }

  double micro_step(DataSplit& data, Rng& rng, float scale, bool learn);
  void train_step(Timer& timer, const std::function<void(const StepReport&)>& report);
  double evaluate();
  void checkpoint();
};

namespace {

Objective make_objective(const TrainConfig& c, const gguf::Reader& tok) {
  Objective o;
  o.kind = parse_objective(c.objective);
  o.schedule = parse_schedule(c.schedule);
  o.eps = c.eps, o.block = c.block, o.diffusion_weight = c.diffusion_weight;
  o.mask_token = int32_t(tok.get_int("tokenizer.ggml.mask_token_id", -1));
  o.shift = o.kind != ObjectiveKind::kAR && arch_info(diffusion_arch(c)).shift_logits;
  return o;
}

// --init: the weights of a model file, checked against the data's tokenizer, the objective and the sequence length.
Model init_model(const TrainConfig& c, const Objective& o, const gguf::Reader& tok) {
  Model m = Model::load(c.init).to_trainable();
  const ModelConfig& mc = m.config();
  const int vocab = int(tok.get_strings("tokenizer.ggml.tokens").size());
  check(mc.vocab == vocab, "--init {}: the model's vocabulary ({}) differs from the tokenizer's in {} ({})", c.init,
        mc.vocab, c.data_dir, vocab);
  check(mc.mask == o.mask_kind(), "--init {}: the model's attention is {}, objective {} needs {}", c.init,
        mask_kind_name(mc.mask), c.objective, mask_kind_name(o.mask_kind()));
  check(o.kind != ObjectiveKind::kBD3 || mc.block_size == o.block, "--init {}: the model's block size is {}, "
        "--block-size {}", c.init, mc.block_size, o.block);
  check(o.kind != ObjectiveKind::kJoint || mc.draft_block == o.block, "--init {}: objective joint continues a joint "
        "model of draft block {} (this one's is {})", c.init, o.block, mc.draft_block);
  check(o.kind == ObjectiveKind::kAR || mc.mask_token < 0 || mc.mask_token == o.mask_token, "--init {}: the model's "
        "mask token is {}, the tokenizer's in {} is {}", c.init, mc.mask_token, c.data_dir, o.mask_token);
  check(c.seq_len <= mc.ctx, "--init {}: --seq-len {} exceeds the model's context of {}", c.init, c.seq_len, mc.ctx);
  check(o.kind == ObjectiveKind::kAR || mc.shift_logits == o.shift, "--init {}: the model is {} (logits {}shifted); "
        "give --arch {}", c.init, mc.arch, mc.shift_logits ? "" : "not ", mc.arch);
  return m;
}

}  // namespace

// One micro-batch: the loss Σ w · CE, and (learn) its gradient · scale accumulated into grads. Every process draws
// the whole batch and runs its share of the sequences; the caller sums losses and gradients over processes.
double Trainer::State::micro_step(DataSplit& data, Rng& rng, float scale, bool learn) {
  const Comm& comm = Comm::world();
  const int share = cfg.batch / comm.size();
  LossBatch lb = slice_sequences(data.draw(obj, cfg.batch, cfg.seq_len, rng), comm.rank() * share,
                                 (comm.rank() + 1) * share);
  const int R = int(lb.targets.size()), V = model.config().vocab;
  if (R == 0) return 0;  // nothing masked in this share: no loss, no gradient
  logits.resize(size_t(R) * V), losses.resize(size_t(R)), dloss.resize(size_t(R));
  model.forward_train(lb.batch, logits.data());
  cross_entropy_forward(losses.data(), logits.data(), lb.targets.data(), R, V);
  double loss = 0;
  for (int r = 0; r < R; ++r) loss += double(lb.weights[size_t(r)]) * losses[size_t(r)];
  if (!learn) return loss;
  for (int r = 0; r < R; ++r) dloss[size_t(r)] = lb.weights[size_t(r)] * scale;
  cross_entropy_backward(logits.data(), logits.data(), lb.targets.data(), dloss.data(), R, V);
  model.backward(lb.batch, logits.data(), grads.data());
  return loss;
}

double Trainer::State::evaluate() {
  Rng root(cfg.seed ^ 0x5eedf00dull);  // the same windows and masks at every evaluation
  double total = 0;
  for (int i = 0; i < cfg.eval_batches; ++i) {
    Rng rng = root.split(uint64_t(i));
    total += micro_step(val, rng, 1.0f, false);
  }
  Comm::world().sum(&total, 1);
  return total / cfg.eval_batches;
}

void Trainer::State::train_step(Timer& timer, const std::function<void(const StepReport&)>& report) {
  Timer step_timer;
  std::fill(grads.begin(), grads.end(), 0.0f);
  double loss = 0;
  for (int a = 0; a < cfg.accum; ++a) {
    Rng rng = Rng(cfg.seed).split(uint64_t(step) * uint64_t(cfg.accum) + uint64_t(a));
    loss += micro_step(train, rng, 1.0f / float(cfg.accum), true) / cfg.accum;
  }
  Comm::world().sum(&loss, 1);
  Comm::world().sum(grads.data(), grads.size());
  check(std::isfinite(loss), "step {}: the loss is {}; stopping (the last checkpoint in {} is intact)", step + 1,
        loss, out.string());  // the summed loss is the same on every process: all stop together
  double norm = clip_grad_norm(grads.data(), grads.size(), cfg.grad_clip);
  float lr = lr_at(step, cfg.steps, cfg.warmup, cfg.lr, cfg.min_lr);
  opt->step(model.params().data(), grads.data(), lr);
  model.params_changed();
  ++step;
  StepReport r;
  r.step = step, r.steps = cfg.steps, r.loss = loss, r.lr = lr, r.grad_norm = norm;
  r.tokens_per_s = double(cfg.batch) * cfg.seq_len * cfg.accum / step_timer.seconds();  // of all processes
  r.elapsed_s = timer.seconds();
  r.eta_s = r.elapsed_s / double(step - first_step) * double(cfg.steps - step);
  if (step % cfg.eval_every == 0 || step == cfg.steps) r.val_loss = evaluate();
  curve.push_back({step, loss, lr, norm, r.tokens_per_s, r.elapsed_s, r.val_loss});
  if ((step % cfg.ckpt_every == 0 || step == cfg.steps) && Comm::world().rank() == 0) {
    checkpoint();
    r.checkpointed = true;
  }
  report(r);
}

void Trainer::State::checkpoint() {
  gguf::Writer w;
  model.add_to(w);
  for (const auto& [k, v] : tok->metadata())
    if (k.starts_with("tokenizer.")) w.set(k, v);
  w.set("unmask.train.config", gguf::Value::str(to_json(cfg)));
  w.set("unmask.train.step", gguf::Value::u64(uint64_t(step)));
  const int64_t n = int64_t(opt->m().size());
  w.add_tensor("optim.adam_m", DType::F32, {n}, opt->m().data());
  w.add_tensor("optim.adam_v", DType::F32, {n}, opt->v().data());
  mark_vocabulary(w);
  w.write((out / kCheckpoint).string());
  saved_step = step;
  write_file(out / "log.csv", curve_csv(curve));
  write_file(out / "loss.svg", curve_svg(curve, fmt::format("{} · {} · {}", cfg.objective, cfg.preset, out.string())));
}

Trainer::Trainer(std::unique_ptr<State> s) : s_(std::move(s)) {}
Trainer::~Trainer() = default;
Trainer::Trainer(Trainer&&) noexcept = default;
const TrainConfig& Trainer::config() const { return s_->cfg; }
int64_t Trainer::step() const { return s_->step; }
std::string Trainer::model_summary() const { return s_->model.config().summary(); }

Trainer Trainer::start(const TrainConfig& c) {
  validate(c);
  check(!fs::exists(c.out_dir) || fs::is_directory(c.out_dir), "{}: exists and is not a directory (the run's "
        "directory, for its checkpoint and curve)", c.out_dir);
  check(!fs::exists(fs::path(c.out_dir) / kCheckpoint), "{} already holds a checkpoint: continue it with --resume {}",
        c.out_dir, c.out_dir);
  fs::create_directories(c.out_dir);
  gguf::Reader tok((fs::path(c.data_dir) / "tokenizer.gguf").string());
  Objective o = make_objective(c, tok);
  Model m = c.init.empty() ? Model::random(model_config(c, o, tok), c.seed) : init_model(c, o, tok);
  const ModelConfig mc = m.config();
  o.validate(mc);
  auto s = std::make_unique<State>(c, std::move(m));
  s->obj = o;
  check(s->train.vocab() == mc.vocab && s->val.vocab() == mc.vocab,
        "{}: the shards' vocabulary ({}) differs from the tokenizer's ({})", c.data_dir, s->train.vocab(), mc.vocab);
  s->grads.assign(s->model.params().size(), 0.0f);
  s->opt = std::make_unique<AdamW>(s->grads.size(), param_groups(s->model.weights()),
                                   AdamWConfig{c.beta1, c.beta2, 1e-8f, c.weight_decay});
  return Trainer(std::move(s));
}

Trainer Trainer::resume(const std::string& out_dir, int steps) {
  const std::string path = (fs::path(out_dir) / kCheckpoint).string();
  check(fs::exists(path), "{}: no checkpoint to resume from", path);
  TrainConfig c;
  int64_t at = 0;  // the checkpoint's step
  Model m = [&] {
    gguf::Reader r(path);
    c = train_config_from_json(r.get_string("unmask.train.config"));
    at = r.get_int("unmask.train.step");
    return Model::load(path).to_trainable();
  }();
  if (steps > 0) c.steps = steps;
  check(steps <= 0 || steps > at, "train --resume {0}: --steps {1} is not above the checkpoint's step {2}; give "
        "more than {2} steps to continue", out_dir, steps, at);
  check(c.steps > at, "train --resume {0}: the run's {1} steps are done (checkpoint at step {2}); give --steps "
        "above {2} to continue it", out_dir, c.steps, at);
  c.out_dir = out_dir;
  validate(c);
  auto s = std::make_unique<State>(c, std::move(m));
  s->obj = make_objective(c, *s->tok);
  gguf::Reader r(path);
  s->step = at;
  s->saved_step = at;
  s->grads.assign(s->model.params().size(), 0.0f);
  s->opt = std::make_unique<AdamW>(s->grads.size(), param_groups(s->model.weights()),
                                   AdamWConfig{c.beta1, c.beta2, 1e-8f, c.weight_decay});
  for (auto [name, dst] : {std::pair{"optim.adam_m", &s->opt->m()}, std::pair{"optim.adam_v", &s->opt->v()}}) {
    const auto& t = r.tensor(name, {int64_t(dst->size())});
    std::memcpy(dst->data(), t.data, dst->size() * sizeof(float));
  }
  s->opt->set_t(s->step);
  const fs::path log = fs::path(out_dir) / "log.csv";
  auto curve = parse_curve_csv(fs::exists(log) ? read_file(log.string()) : std::string(), log.string());
  std::erase_if(curve, [&](const CurvePoint& p) { return p.step > s->step; });
  s->curve = std::move(curve);
  return Trainer(std::move(s));
}

namespace {

// Whether any process was asked to stop (every process then stops after the same step).
bool stop_requested(const std::function<bool()>& stop) {
  double any = stop && stop() ? 1 : 0;
  if (Comm::world().size() > 1) Comm::world().sum(&any, 1);
  return any > 0;
}

}  // namespace

bool Trainer::run(const std::function<void(const StepReport&)>& report, const std::function<bool()>& stop) {
  Timer timer;
  s_->first_step = s_->step;
  while (s_->step < s_->cfg.steps) {
    s_->train_step(timer, report);
    if (s_->step < s_->cfg.steps && stop_requested(stop)) {
      if (s_->saved_step != s_->step && Comm::world().rank() == 0) s_->checkpoint();
      return false;
    }
  }
  return true;
}

}  // namespace unmask
