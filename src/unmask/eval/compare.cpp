#include "unmask/eval/compare.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>

#include "unmask/base/error.h"
#include "unmask/base/mmap.h"
#include "unmask/base/rng.h"
#include "unmask/diffusion/noise.h"
#include "unmask/eval/gen_eval.h"
#include "unmask/eval/likelihood.h"
#include "unmask/eval/report.h"
#include "unmask/eval/tasks.h"
#include "unmask/io/gguf.h"
#include "unmask/sampling/text.h"
#include "unmask/train/shards.h"

namespace unmask {

namespace fs = std::filesystem;
using json = nlohmann::json;

void CompareConfig::validate() const {
  check(!out_dir.empty(), "compare: an output directory is required (--out)");
  check(training() != !diffusion_model.empty(), "compare: give both --ar and --diffusion-model, or neither (and "
        "--data to train the twins)");
  check(!training() || !data_dir.empty(), "compare: give --data DIR (from `unmask data prepare`) to train the twins, "
        "or --ar and --diffusion-model to compare two checkpoints");
  check(training() || !text.empty() || !data_dir.empty(), "compare: give the held-out text (--text FILE, or --data DIR "
        "for its val.bin)");
  check(diffusion == "mdlm" || diffusion == "bd3", "compare: --diffusion-objective {}: expected mdlm or bd3", diffusion);
  check(task_fraction > 0 && task_fraction < 1, "compare: --task-fraction {} must be in (0, 1)", task_fraction);
  for (const std::string& t : tasks) parse_task_kind(t);
  check(elbo_samples >= 1, "compare: --elbo-samples {}: need at least 1", elbo_samples);
  check(gen_samples >= 2 && gen_length >= 1 && prompt_tokens >= 0, "compare: --gen-samples {} (>= 2), --gen-length {} "
        "(>= 1), --prompt-tokens {} (>= 0)", gen_samples, gen_length, prompt_tokens);
  check(!temperatures.empty(), "compare: at least one temperature");
  for (int k : parallel) check(k >= 1, "compare: --parallel {}: at least 1 token per step", k);
  for (const std::string& s : samplers)
    check(parse_sampler_kind(s) != SamplerKind::kAr, "compare: --samplers {}: the diffusion twin's samplers (the AR "
          "twin always decodes with ar)", s);
  if (training()) {
    check(train.steps >= 1 && train.batch >= 1 && train.seq_len >= 2, "compare: a budget of {} steps of {} x {} tokens "
          "trains nothing", train.steps, train.batch, train.seq_len);
  }
}

json to_json(const CompareConfig& c) {
  json j = {{"data", c.data_dir}, {"train", json::parse(to_json(c.train))}, {"diffusion", c.diffusion},
          {"diffusion_arch", c.diffusion_arch}, {"task_fraction", c.task_fraction}, {"ar_model", c.ar_model},
          {"diffusion_model", c.diffusion_model}, {"text", c.text}, {"tasks", c.tasks}, {"task_items", c.task_items},
          {"parallel", c.parallel}, {"elbo_samples", c.elbo_samples}, {"eval_tokens", c.eval_tokens},
          {"temperatures", c.temperatures}, {"gen_samples", c.gen_samples}, {"gen_length", c.gen_length},
          {"prompt_tokens", c.prompt_tokens}, {"seed", c.seed}};
  if (!c.samplers.empty()) j["samplers"] = c.samplers;  // only when given: reports begun before it still resume
  return j;
}

namespace {

// What every phase reads: the settings, the paths, the progress callback.
struct Run {
  const CompareConfig& c;
  const CompareReport& report;
  const std::function<bool()>& stop;
  fs::path out;
  std::vector<std::string> phases;
  int index = 0;

  fs::path phase_file(const std::string& name) const { return out / "phases" / (name + ".json"); }
  void progress(int64_t done, int64_t total, const std::string& unit, const std::string& extra = {}) const {
    if (report) report({phases[size_t(index)], index + 1, int(phases.size()), done, total, unit, extra});
  }
  bool stopped() const { return stop && stop(); }
  fs::path ar_path() const { return c.training() ? out / "ar" / "checkpoint.gguf" : fs::path(c.ar_model); }
  fs::path diffusion_path() const {
    return c.training() ? out / "diffusion" / "checkpoint.gguf" : fs::path(c.diffusion_model);
  }
  int window() const;  // the held-out window: the training length, or the shorter context of the two checkpoints
};

int Run::window() const {
  if (c.training()) return c.train.seq_len;
  return std::min(read_config(gguf::Reader(ar_path().string())).ctx,
                  read_config(gguf::Reader(diffusion_path().string())).ctx);
}

// The same settings as the run in OUT, or none there yet: a rerun resumes, other settings are refused.
void check_settings(const fs::path& out, const CompareConfig& c) {
  const fs::path p = out / "compare.json";
  const json now = to_json(c);
  if (!fs::exists(p)) {
    fs::create_directories(out / "phases");
    write_file(p, now.dump(2) + "\n");
    return;
  }
  const json was = json::parse(read_file(p), nullptr, false);
  check(!was.is_discarded(), "{}: not valid JSON; remove it to start over", p.string());
  for (const auto& [k, v] : now.items())
    check(was.contains(k) && was[k] == v, "{}: this report was started with {} = {}, now {}: give the same settings "
          "to resume it, or another --out", p.string(), k, was.contains(k) ? was[k].dump() : "(none)", v.dump());
}

// ---- data

std::vector<int32_t> shard_tokens(const Shard& s, int64_t n) {
  std::vector<int32_t> out(static_cast<size_t>(std::min(n, s.size())));
  s.read(0, int64_t(out.size()), out.data());
  return out;
}

// The task text's lines, shuffled anew for each of `repeats` copies (so that no window learns one fixed order).
std::vector<int32_t> task_tokens(const Tokenizer& tok, const std::string& text, int64_t repeats, uint64_t seed) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) lines.push_back(l + "\n");
  Rng rng(seed);
  std::vector<int32_t> out;
  for (int64_t r = 0; r < repeats; ++r) {
    for (size_t i = lines.size(); i > 1; --i) std::swap(lines[i - 1], lines[rng.below(i)]);
    for (const std::string& l : lines) {
      auto ids = tok.encode(l);
      out.insert(out.end(), ids.begin(), ids.end());
    }
  }
  return out;
}

bool trained_task(const std::string& t) { return t == "reversal" || t == "dependency"; }

// Items of every task into OUT/tasks/NAME.jsonl; returns the training text of the tasks that have one.
std::string make_items(const Run& r, const std::string& heldout_text) {
  fs::create_directories(r.out / "tasks");
  std::string train;
  for (const std::string& name : r.c.tasks) {
    if (!r.c.training() && trained_task(name)) continue;
    MakeTaskOptions mo{r.c.seed, r.c.task_items, heldout_text, "the held-out text"};
    const TaskData d = make_task(parse_task_kind(name), mo);
    std::string lines;
    for (const TaskItem& it : d.items) lines += item_json_line(it) + "\n";
    write_file(r.out / "tasks" / (name + ".jsonl"), lines);
    train += d.train;
  }
  return train;
}

std::vector<std::string> vocabulary_of(const fs::path& model) {
  gguf::Reader rd(model.string());
  check(rd.has("tokenizer.ggml.tokens"), "{}: carries no tokenizer; compare needs one (the tasks are text)",
        model.string());
  return rd.get_strings("tokenizer.ggml.tokens");
}

json data_training(const Run& r) {
  const fs::path src(r.c.data_dir), dst = r.out / "data";
  for (const char* f : {"tokenizer.gguf", "train.bin", "val.bin"})
    check(fs::exists(src / f), "--data {}: no {} (prepare it with `unmask data prepare`)", src.string(), f);
  const auto tok = load_tokenizer_file((src / "tokenizer.gguf").string());
  const Shard train((src / "train.bin").string()), val((src / "val.bin").string());
  const std::vector<int32_t> heldout = shard_tokens(val, r.c.eval_tokens);
  const std::string task_text = make_items(r, tok->decode(heldout));
  std::vector<int32_t> ids = shard_tokens(train, train.size());
  const int64_t once = int64_t(task_tokens(*tok, task_text, 1, r.c.seed).size());
  const int64_t repeats = once == 0 ? 0 : int64_t(std::ceil(r.c.task_fraction / (1 - r.c.task_fraction) *
                                                            double(ids.size()) / double(once)));
  const std::vector<int32_t> tasks = task_tokens(*tok, task_text, repeats, r.c.seed);
  ids.insert(ids.end(), tasks.begin(), tasks.end());
  fs::create_directories(dst);
  write_shard((dst / "train.bin").string(), ids, tok->n_vocab());
  fs::copy_file(src / "val.bin", dst / "val.bin", fs::copy_options::overwrite_existing);
  fs::copy_file(src / "tokenizer.gguf", dst / "tokenizer.gguf", fs::copy_options::overwrite_existing);
  return {{"corpus_tokens", train.size()}, {"task_tokens", tasks.size()}, {"task_repeats", repeats},
          {"heldout_tokens", val.size()}, {"vocab", tok->n_vocab()}};
}

json data_checkpoints(const Run& r) {
  const auto va = vocabulary_of(r.ar_path()), vd = vocabulary_of(r.diffusion_path());
  size_t i = 0;
  while (i < va.size() && i < vd.size() && va[i] == vd[i]) ++i;
  check(va.size() == vd.size() && i == va.size(), "compare: the checkpoints have different tokenizers ({} has {} "
        "tokens, {} has {}; first difference at id {}): a comparison needs one vocabulary", r.c.ar_model, va.size(),
        r.c.diffusion_model, vd.size(), i);
  const auto tok = load_tokenizer_file(r.ar_path().string());
  std::vector<int32_t> heldout;
  if (!r.c.text.empty()) {
    heldout = tok->encode(read_file(r.c.text));
  } else {
    heldout = shard_tokens(Shard((fs::path(r.c.data_dir) / "val.bin").string()), r.c.eval_tokens);
  }
  check(int64_t(heldout.size()) >= r.window(), "compare: the held-out text has {} tokens, shorter than one window of {}: "
        "give a longer text", heldout.size(), r.window());
  fs::create_directories(r.out / "data");
  write_shard((r.out / "data" / "val.bin").string(), heldout, tok->n_vocab());
  make_items(r, tok->decode(std::span(heldout).first(std::min<size_t>(heldout.size(), size_t(r.c.eval_tokens)))));
  return {{"heldout_tokens", heldout.size()}, {"vocab", tok->n_vocab()}};
}

// The held-out tokens every evaluation reads, checked to hold at least one window.
std::vector<int32_t> heldout(const Run& r) {
  const Shard s((r.out / "data" / "val.bin").string());
  const int W = r.window();
  check(s.size() >= W, "compare: the held-out text has {} tokens, shorter than one window of {}: give a longer text",
        s.size(), W);
  return shard_tokens(s, r.c.eval_tokens);
}

// ---- training

std::optional<json> train_twin(const Run& r, const std::string& name, const std::string& objective) {
  TrainConfig t = r.c.train;
  t.objective = objective;
  t.arch = objective == "mdlm" ? r.c.diffusion_arch : "";
  if (objective == "bd3" && t.block == 0) t.block = 16;
  t.data_dir = (r.out / "data").string(), t.out_dir = (r.out / name).string();
  const fs::path ckpt = r.out / name / "checkpoint.gguf";
  const bool resumed = fs::exists(ckpt);
  if (resumed && gguf::Reader(ckpt.string()).get_int("unmask.train.step") >= t.steps) return json{{"steps", t.steps}};
  Trainer tr = resumed ? Trainer::resume(t.out_dir) : Trainer::start(t);
  double last_val = NAN;
  const bool done = tr.run(
      [&](const StepReport& s) {
        if (s.val_loss) last_val = *s.val_loss;
        r.progress(s.step, s.steps, "steps", fmt::format("loss {:.4f}{}", s.loss,
                   std::isnan(last_val) ? "" : fmt::format("  val {:.4f}", last_val)));
      },
      r.stop);
  if (!done) return std::nullopt;
  return json{{"steps", t.steps}, {"tokens", int64_t(t.steps) * t.batch * t.accum * t.seq_len},
              {"summary", tr.model_summary()}};
}

// ---- evaluation

json likelihood_phase(const Run& r) {
  const std::vector<int32_t> ids = heldout(r);
  const int W = r.window();
  Model ar = Model::load(r.ar_path().string()), diff = Model::load(r.diffusion_path().string());
  const Likelihood a = ar_likelihood(ar, ids, {W, 0}, [&](int64_t d, int64_t t) { r.progress(d, t, "windows", "ar"); });
  const ElboOptions eo{W, r.c.elbo_samples, true, r.c.seed, model_schedule(diff.config())};
  const Likelihood d = diffusion_elbo(diff, ids, eo, [&](int64_t d, int64_t t) { r.progress(d, t, "tokens", "elbo"); });
  auto fig = [](const Likelihood& l) {
    return json{{"method", l.method}, {"tokens", l.count}, {"windows", l.windows}, {"nll_per_token", l.per_token()},
                {"se_per_token", l.per_token_se()}, {"ppl", l.ppl()}, {"samples", l.samples}};
  };
  return {{"window", W}, {"ar", fig(a)}, {"diffusion", fig(d)}, {"schedule", schedule_name(eo.schedule.kind)}};
}

// The sampler a twin decodes with in the comparison: its family's, one token per step for diffusion.
SamplerConfig twin_sampler(const ModelConfig& mc, int gen_length) {
  SamplerConfig s;
  s.kind = default_sampler(mc);
  s.gen_length = gen_length;
  if (s.kind == SamplerKind::kBd3) s.block_length = mc.block_size;
  return s;
}

json gen_phase(const Run& r) {
  const std::vector<int32_t> ids = heldout(r);
  Model ar = Model::load(r.ar_path().string()), diff = Model::load(r.diffusion_path().string());
  const auto tok = load_tokenizer_file(r.ar_path().string());
  const EvalPrompts ps = cut_reference(ids, r.c.gen_samples, r.c.prompt_tokens, r.c.gen_length, ar.config().bos_token);
  json out;
  for (auto [name, m] : {std::pair<const char*, Model*>{"ar", &ar}, {"diffusion", &diff}}) {
    GenEvalOptions o;
    o.sampler = twin_sampler(m->config(), r.c.gen_length);
    o.temperatures = r.c.temperatures, o.seed = r.c.seed;
    const GenEvalReport g = run_gen_eval(*m, ar, ps, o, tok.get(), [&, name = name](int64_t d, int64_t t) {
      r.progress(d, t, "samples", name);
    });
    out[name] = report_json(g, tok.get());
    out[name]["sampler"] = sampler_kind_name(o.sampler.kind);
  }
  return out;
}

// The decoders a task runs: the AR twin, then the diffusion twin with each sampler ("diffusion" for the first, the
// model's own when none is named; "diffusion-NAME" for the others).
std::vector<std::pair<std::string, SamplerKind>> task_decoders(const CompareConfig& c, const ModelConfig& diffusion) {
  std::vector<std::pair<std::string, SamplerKind>> d{{"ar", SamplerKind::kAr}};
  if (c.samplers.empty()) d.emplace_back("diffusion", default_sampler(diffusion));
  for (size_t i = 0; i < c.samplers.size(); ++i)
    d.emplace_back(i == 0 ? "diffusion" : "diffusion-" + c.samplers[i], parse_sampler_kind(c.samplers[i]));
  return d;
}

json task_phase(const Run& r, const std::string& name) {
  const TaskKind kind = parse_task_kind(name);
  const fs::path items_path = r.out / "tasks" / (name + ".jsonl");
  const std::vector<TaskItem> items = parse_items(read_file(items_path), items_path.string(), kind);
  Model ar = Model::load(r.ar_path().string()), diff = Model::load(r.diffusion_path().string());
  const auto tok = load_tokenizer_file(r.ar_path().string());
  json out;
  for (const auto& [label, sampler] : task_decoders(r.c, diff.config())) {
    Model& m = sampler == SamplerKind::kAr ? ar : diff;
    TaskRunOptions o;
    o.cfg = twin_sampler(m.config(), 0);
    o.cfg.kind = sampler, o.cfg.seed = r.c.seed;
    o.parallel = sampler == SamplerKind::kAr ? std::vector<int>{} : r.c.parallel;
    o.progress = [&, label = label](int d, int t) { r.progress(d, t, "generations", label); };
    const TaskReport rep = run_task(m, *tok, kind, items, o);
    out[label] = report_json(rep, false);
    out[label]["sampler"] = sampler_kind_name(sampler);
  }
  return out;
}

// The phases of this run, in order.
std::vector<std::string> phase_names(const CompareConfig& c) {
  std::vector<std::string> p{"data"};
  if (c.training()) p.insert(p.end(), {"train-ar", "train-diffusion"});
  p.insert(p.end(), {"likelihood", "gen"});
  for (const std::string& t : c.tasks)
    if (c.training() || !trained_task(t)) p.push_back("task-" + t);
  p.push_back("report");
  return p;
}

std::optional<json> run_phase(const Run& r, const std::string& name) {
  if (name == "data") return r.c.training() ? data_training(r) : data_checkpoints(r);
  if (name == "train-ar") return train_twin(r, "ar", "ar");
  if (name == "train-diffusion") return train_twin(r, "diffusion", r.c.diffusion);
  if (name == "likelihood") return likelihood_phase(r);
  if (name == "gen") return gen_phase(r);
  return task_phase(r, name.substr(5));
}

}  // namespace

bool run_compare(const CompareConfig& c, const CompareReport& report, const std::function<bool()>& stop) {
  c.validate();
  Run r{c, report, stop, fs::path(c.out_dir), phase_names(c)};
  check(!fs::exists(r.out) || fs::is_directory(r.out), "{}: exists and is not a directory", c.out_dir);
  check_settings(r.out, c);
  std::map<std::string, json> done;
  for (r.index = 0; r.index + 1 < int(r.phases.size()); ++r.index) {
    const std::string& name = r.phases[size_t(r.index)];
    const fs::path p = r.phase_file(name);
    if (fs::exists(p)) {
      done[name] = json::parse(read_file(p));
      r.progress(1, 1, "done", "(finished before)");
      continue;
    }
    if (r.stopped()) return false;
    std::optional<json> j = run_phase(r, name);
    if (!j) return false;  // stopped inside training: checkpointed
    write_file(p, j->dump(2) + "\n");
    done[name] = *j;
  }
  write_report(r.out, to_json(c), done, c.command, c.machine);
  r.progress(1, 1, "done");
  return true;
}

}  // namespace unmask
