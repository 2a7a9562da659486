// unmask eval task NAME: the tasks generated from a seed (reversal, infill, dependency, length). With --make-data DIR
// it writes the task's training text and evaluation items; with -m MODEL it scores the model on the items (from
// --items, or made again from --seed) with any sampler and prints the rows, the speed/quality points, the frontier and
// its area (--json: every figure and every generation). The tasks and the scoring are the library's
// (unmask/eval/tasks.h); this file reads flags and prints.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "cli_util.h"
#include "commands.h"
#include "model_file.h"
#include "progress.h"
#include "sampler_options.h"
#include "unmask/base/error.h"
#include "unmask/base/parallel.h"
#include "unmask/eval/tasks.h"
#include "unmask/model/model.h"
#include "unmask/tokenizer/tokenizer.h"

namespace unmask::cli {

namespace {

namespace fs = std::filesystem;

struct TaskOptions {
  std::string name, make_data, model, items, text;
  int n = 0, context_words = 8, fixed_length = 16, threads = 0;
  std::vector<int> parallel, lengths;
  SamplerOptions sampler;
  bool json = false, force = false;
  std::function<bool(const std::string&)> given;
};

// The items' generator options: the seed is -s (one seed for the items and the sampler when the items are made again).
MakeTaskOptions make_options(const TaskOptions& o) {
  MakeTaskOptions m;
  m.seed = o.sampler.cfg.seed, m.n = o.n, m.context_words = o.context_words;
  if (!o.text.empty()) m.text = read_text_file(o.text), m.text_name = o.text;
  return m;
}

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  out.close();
  check(bool(out), "{}: cannot write", path.string());
}

// --make-data DIR: DIR/train.txt and DIR/items.jsonl.
void make_data(const TaskOptions& o, TaskKind task) {
  check(o.model.empty() && o.items.empty(), "--make-data writes the task's files; -m and --items score a model, "
        "in a separate run");
  const TaskData d = make_task(task, make_options(o));
  const fs::path dir(o.make_data), train = dir / "train.txt", items = dir / "items.jsonl";
  check_new_output(train.string(), o.force), check_new_output(items.string(), o.force);
  fs::create_directories(dir);
  std::string lines;
  for (const TaskItem& it : d.items) lines += item_json_line(it) + "\n";
  write_file(train, d.train);
  write_file(items, lines);
  fmt::print(stderr, "{}: wrote {} ({} training lines) and {} ({} items), seed {}\n", o.name, train.string(),
             std::count(d.train.begin(), d.train.end(), '\n'), items.string(), d.items.size(), o.sampler.cfg.seed);
}

std::vector<TaskItem> load_items(const TaskOptions& o, TaskKind task) {
  if (o.items.empty()) return make_task(task, make_options(o)).items;
  check(!o.given("--n") && !o.given("--text") && !o.given("--context-words"), "--items {}: the items are given; "
        "--n, --text and --context-words make new ones (without --items)", o.items);
  return parse_items(read_text_file(o.items), o.items, task);
}

// The sampler settings: --parallel (default 1,2,4,8 for dependency, 1 otherwise), or --steps / --threshold /
// --factor as given; AR decodes one token per forward.
TaskRunOptions run_options(const TaskOptions& o, TaskKind task, const ModelConfig& mc) {
  check(!o.given("--n-predict"), "-n/--n-predict does not apply to eval task: each item sets its generation's length "
        "(length: --lengths)");
  TaskRunOptions r;
  r.cfg = sampler_config(o.sampler, mc, false, o.given);
  const bool as_given = o.given("--steps") || o.given("--threshold") || o.given("--factor");
  check(!o.given("--parallel") || r.cfg.kind != SamplerKind::kAr, "--parallel does not apply to --sampler ar (one "
        "token per forward)");
  check(!o.given("--parallel") || !as_given, "--parallel sets the steps of each setting; give it or --steps / "
        "--threshold / --factor, not both");
  r.parallel = o.given("--parallel") ? o.parallel : std::vector<int>{1};
  if (task == TaskKind::kDependency && !o.given("--parallel")) r.parallel = {1, 2, 4, 8};
  if (as_given) r.parallel.clear();
  check(task == TaskKind::kInfill || !o.given("--fixed-length"), "--fixed-length applies to the infill task");
  check(task == TaskKind::kLength || !o.given("--lengths"), "--lengths applies to the length task");
  r.fixed_length = o.fixed_length;
  r.lengths = o.lengths;
  return r;
}

void print_rows(const TaskReport& r) {
  const bool length = r.task == TaskKind::kLength, infill = r.task == TaskKind::kInfill;
  fmt::print("{:<14} {:<24} {:>5}  {}\n", "setting", "kind", "n",
             length ? "no-EOS  mean EOS at  repeated 4-grams" : infill ? "accuracy  CER" : "accuracy");
  for (const TaskRow& w : r.rows) {
    std::string figures = length ? fmt::format("{:>6.3f}  {:>11.1f}  {:>16.3f}", w.no_eos, w.mean_eos_at, w.repeated)
                                 : fmt::format("{:>8.3f}", w.accuracy);
    if (infill || w.kind.starts_with("backward-infill")) figures += fmt::format("  {:.3f}", w.cer);
    fmt::print("{:<14} {:<24} {:>5}  {}\n", w.setting, w.kind, w.n, figures);
  }
}

void print_points(const TaskReport& r) {
  const bool scored = r.task != TaskKind::kLength;
  fmt::print("\n{:<14} {:>10} {:>10} {:>10} {:>14}{}\n", "setting", "tok/fwd", "fwd/tok", "tok/s", "first tok ms",
             scored ? "  accuracy  frontier" : "");
  for (size_t i = 0; i < r.points.size(); ++i) {
    const SpeedPoint& p = r.points[i];
    const bool on = std::find(r.frontier.begin(), r.frontier.end(), i) != r.frontier.end();
    fmt::print("{:<14} {:>10.2f} {:>10.2f} {:>10.1f} {:>14.2f}{}\n", p.label, p.tokens_per_forward,
               p.forwards_per_token, p.tokens_per_second, p.first_token_seconds * 1e3,
               scored ? fmt::format("  {:>8.3f}  {}", p.accuracy, on ? "*" : "") : "");
  }
  if (scored) fmt::print("frontier area (accuracy over tokens per forward, from 0): {:.3f}\n", r.area);
}

void score_model(const TaskOptions& o, TaskKind task) {
  set_num_threads(o.threads);
  Model m = Model::load(o.model);
  const std::unique_ptr<Tokenizer> tok = model_tokenizer(o.model);
  check(tok != nullptr, "{} carries no tokenizer; the tasks are text", o.model);
  TaskRunOptions r = run_options(o, task, m.config());
  const std::vector<TaskItem> items = load_items(o, task);
  r.progress = [&](int done, int total) { draw_progress(o.name, done, total, "generations"); };
  const TaskReport rep = run_task(m, *tok, task, items, r);
  if (o.json) {
    nlohmann::json j = report_json(rep, true);
    j["model"] = o.model, j["items"] = o.items.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.items);
    j["seed"] = o.sampler.cfg.seed;
    return fmt::print("{}\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  fmt::print("{} on {} ({} items), sampler {}\n\n", o.name, o.model, items.size(), sampler_kind_name(rep.sampler));
  print_rows(rep);
  print_points(rep);
}

void run_eval_task(const TaskOptions& o) {
  const TaskKind task = parse_task_kind(o.name);
  if (!o.make_data.empty()) return make_data(o, task);
  check(!o.model.empty(), "give -m MODEL to score a model, or --make-data DIR to write the task's files");
  score_model(o, task);
}

}  // namespace

void add_eval_task(CLI::App& eval) {
  auto* cmd = eval.add_subcommand("task", "Tasks generated from a seed (reversal, infill, dependency, length): write "
                                  "their training text and items (--make-data), or score a model on them (-m)");
  auto o = std::make_shared<TaskOptions>();
  cmd->add_option("name", o->name, "The task: " + task_kind_names())->required();
  cmd->add_option("--make-data", o->make_data, "Write DIR/train.txt (text to train on) and DIR/items.jsonl (the "
                  "evaluation items) from -s/--seed");
  cmd->add_option("-m,--model", o->model, "Score this model (GGUF file or Hugging Face folder, with a tokenizer)");
  cmd->add_option("--items", o->items, "The items to score (items.jsonl from --make-data); without it they are made "
                  "again from -s/--seed, --n, --text, --context-words");
  cmd->add_option("--n", o->n, "Items to make: facts (reversal, 3 queries each) or items (default: reversal 200, "
                  "infill 100, dependency 200, length 20)")->check(positive());
  cmd->add_option("--text", o->text, "infill and length: the held-out text the items are cut from");
  cmd->add_option("--context-words", o->context_words, "infill: words of context on each side of the span; length: "
                  "words of prompt")->check(positive())->capture_default_str();
  cmd->add_option("--parallel", o->parallel, "Diffusion: settings of k tokens per step, steps = ceil(length / k), "
                  "as 1,2,4,8 (default: 1,2,4,8 for dependency, 1 otherwise)")->delimiter(',')->check(positive());
  cmd->add_option("--fixed-length", o->fixed_length, "infill: masks (AR: tokens) of the fixed-length condition")
      ->check(positive())->capture_default_str();
  cmd->add_option("--lengths", o->lengths, "length: generation lengths, as 32,64 (default: those of 32, 64, 128, 256 "
                  "that fit the model)")->delimiter(',')->check(positive());
  add_sampler_options(cmd, o->sampler);
  cmd->add_flag("--json", o->json, "Print every figure and every generation as JSON");
  cmd->add_flag("--force", o->force, "--make-data: replace existing files");
  add_threads_option(cmd, o->threads);
  cmd->callback([o, cmd] {
    o->given = given_flags(cmd);
    run_eval_task(*o);
  });
}

}  // namespace unmask::cli
