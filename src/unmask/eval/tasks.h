// Tasks generated from a seed, so that anyone can rerun them (`unmask eval task NAME`), and the scoring of a model on
// them with any sampler:
//
//   reversal    invented facts "The mentor of Zorvak is Telmira." stated forward only in the training text (a quarter
//               of them, the two-way control group, in both directions); queried forward ("The mentor of Zorvak is"
//               -> "Telmira"), backward ("Telmira is the mentor of" -> "Zorvak"), and for diffusion models backward
//               as infilling ("The mentor of [MASK:k] is Telmira.").
//   infill      spans of 1 to 4 words of a held-out text masked between words of context on each side; diffusion
//               fills them with both sides visible, AR continues the left side; with the true length and a fixed one.
//   dependency  copy / reverse / sort / replace / shuffle a list of short words (ParallelBench-style closed forms);
//               accuracy as the tokens committed per step grow.
//   length      prompts from a held-out text continued for 32..256 tokens: where EOS lands, how often none comes,
//               how repetitive the text is (repeated 4-grams).
//
// A task makes (a) training text to mix into the twins' corpus (train.txt) and (b) evaluation items (items.jsonl):
//
//   TaskData d = make_task(TaskKind::kReversal, {.seed = 1, .n = 200});
//   TaskReport r = run_task(model, *tok, TaskKind::kReversal, d.items, opts);   // rows, speed points, frontier
//
// Every figure is deterministic by seed: the generators draw from Rng(seed) only, and item i is sampled with a seed
// derived from the sampler's seed and i. docs/evaluation-tasks.md defines each task and its scoring exactly.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "unmask/eval/frontier.h"
#include "unmask/model/model.h"
#include "unmask/sampling/sampler.h"
#include "unmask/tokenizer/tokenizer.h"

namespace unmask {

enum class TaskKind { kReversal, kInfill, kDependency, kLength };

TaskKind parse_task_kind(std::string_view name);  // throws Error listing the names
std::string_view task_kind_name(TaskKind k);
std::string task_kind_names();  // "reversal, infill, dependency, length"

// One evaluation item: the text before the answer, the answer, and (infill) the text after it. The three joined are
// the original text; the answer keeps its leading white space (" Telmira"), comparisons trim it.
struct TaskItem {
  TaskKind task = TaskKind::kReversal;
  int id = 0;
  std::string kind;    // reversal: forward, backward, backward-infill; dependency: copy, reverse, sort, replace,
                       // shuffle; infill: span; length: open
  std::string group;   // reversal: one-way (trained forward only) or two-way (trained in both directions)
  std::string prompt;  // text before the answer
  std::string answer;  // the expected text (empty for length)
  std::string suffix;  // infill items: the text after the answer
  bool infill = false; // the answer is a hole between prompt and suffix
};

struct MakeTaskOptions {
  uint64_t seed = 0;
  int n = 0;              // facts (reversal) or items; 0: the task's default (200, 100, 200, 20)
  std::string text;       // infill and length: the held-out text items are cut from
  std::string text_name;  // its name in messages (the file)
  int context_words = 8;  // infill: words of context on each side; length: words of prompt
};

struct TaskData {
  std::string train;             // training text, one example per line (empty for infill and length)
  std::vector<TaskItem> items;
};

// Throws Error for n < 1, a missing or too short text (infill, length), context_words < 1.
TaskData make_task(TaskKind task, const MakeTaskOptions& o);

// items.jsonl: one JSON object per line. parse_items throws "PATH:LINE: ..." for a line that is not an item of the
// task, and for a file without items.
std::string item_json_line(const TaskItem& item);
std::vector<TaskItem> parse_items(std::string_view text, std::string_view path, TaskKind task);

// ---- scoring

// Whether an output answers the item: reversal continuations must start with the answer (trimmed) followed by a
// character that is not a letter or digit, or end; infill spans and reversal infills must equal it (trimmed);
// dependency outputs, up to the first newline and trimmed, must equal it (shuffle: hold the same words in any order).
bool item_correct(const TaskItem& item, std::string_view output);
// One generation.
struct TaskOutcome {
  int item = 0;
  std::string kind;       // the row it counts in: the item's kind (and group), or the infill length condition
  std::string setting;    // the sampler setting (a speed point): "k=2", "threshold=0.9", "steps=8", "ar"
  bool primary = true;    // counted in the setting's accuracy (infill: only the true length)
  std::string output;     // the generated text (infill: the filled span), valid UTF-8
  bool correct = false;
  double cer = 0;         // infill: char_error_rate of the trimmed output against the trimmed answer (quality.h)
  int length = 0;         // positions generated
  int eos_at = -1;        // length: index of the first EOS among the generated tokens, -1 for none
  double repeated = 0;    // length: repetition_rate (rep-4, quality.h) of the tokens before the EOS
  double first_token_seconds = 0;  // from the start of the request to its first committed token
  GenerateStats stats;
};

// A row of the report: the outcomes of one kind under one setting.
struct TaskRow {
  std::string kind, setting;
  int n = 0;
  double accuracy = 0, cer = 0;                     // cer: infill
  double no_eos = 0, mean_eos_at = 0, repeated = 0;  // length: fraction without EOS, mean EOS index among the
                                                     // runs with one (-1: none had), mean repeated 4-gram fraction
};

struct TaskRunOptions {
  SamplerConfig cfg;             // the sampler (its kind fits the model); item i runs with a seed from cfg.seed and i
  std::vector<int> parallel{1};  // diffusion: one setting per k, steps = ceil(positions / k) (a multiple of the
                                 // blocks with --block-length); empty: cfg.steps and cfg.threshold as given
  int fixed_length = 16;         // infill: the masks (AR: tokens) of the fixed-length condition
  std::vector<int> lengths;      // length: generation lengths; empty: those of 32, 64, 128, 256 that fit the model
  std::function<void(int done, int total)> progress;  // after each generation
};

struct TaskReport {
  TaskKind task = TaskKind::kReversal;
  SamplerKind sampler = SamplerKind::kAr;
  std::vector<TaskOutcome> outcomes;
  std::vector<TaskRow> rows;        // per (setting, kind), in order of first appearance
  std::vector<SpeedPoint> points;   // per setting (length: accuracy 0, it has none)
  std::vector<size_t> frontier;     // pareto_frontier(points)
  double area = 0;                  // frontier_area(points)
};

// Runs every item (reversal's backward-infill only on diffusion models) and scores it. Throws Error when an item does
// not fit the model's context ("item 3: 70 positions; the model's context is 64"), for a length of the options that
// does not fit, or for a parallel k below 1.
TaskReport run_task(Model& model, const Tokenizer& tok, TaskKind task, std::span<const TaskItem> items,
                    const TaskRunOptions& o);

// The rows, points and frontier from outcomes (what run_task does after generating; public for tests).
void summarize(TaskReport& r);

// Every figure of the report, and each outcome when with_outcomes.
nlohmann::json report_json(const TaskReport& r, bool with_outcomes);

}  // namespace unmask
