// The task generators and items.jsonl, the scoring of outputs, and the runs of a model over the items.
#include "unmask/eval/tasks.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>
#include <utility>

#include "unmask/base/error.h"
#include "unmask/base/rng.h"
#include "unmask/base/timer.h"
#include "unmask/eval/quality.h"
#include "unmask/sampling/text.h"

namespace unmask {

namespace {

using json = nlohmann::json;

constexpr std::pair<std::string_view, TaskKind> kTasks[] = {{"reversal", TaskKind::kReversal},
                                                            {"infill", TaskKind::kInfill},
                                                            {"dependency", TaskKind::kDependency},
                                                            {"length", TaskKind::kLength}};
constexpr int kDefaultN[] = {200, 100, 200, 20};
constexpr int kMaxSpanWords = 4;

// Streams of the generators: items and training text draw from separate streams, so that one does not shift the other.
constexpr uint64_t kItemStream = 1, kTrainStream = 2;

// ---- invented names (reversal)

constexpr std::string_view kOnsets[] = {"b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
                                        "br", "dr", "gl", "kr", "sh", "th", "tr", "zh"};
constexpr std::string_view kVowels[] = {"a", "e", "i", "o", "u", "ai", "ei", "ou"};
constexpr std::string_view kCodas[] = {"", "", "", "n", "r", "l", "s", "k", "th", "m"};
constexpr std::string_view kRelations[] = {"mentor", "rival", "healer", "captain", "patron", "guardian", "heir",
                                           "herald"};

template <typename T, size_t N>
const T& pick(Rng& rng, const T (&a)[N]) {
  return a[rng.below(N)];
}

// Two or three syllables (onset, vowel, optional coda), capitalised: "Zorvak", "Telmira".
std::string invented_name(Rng& rng) {
  std::string s;
  const int syllables = 2 + int(rng.below(2));
  for (int i = 0; i < syllables; ++i) {
    s += pick(rng, kOnsets);
    s += pick(rng, kVowels);
    s += pick(rng, kCodas);
  }
  s[0] = char(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}

// A name not drawn before.
std::string fresh_name(Rng& rng, std::set<std::string>& used) {
  for (;;) {
    std::string s = invented_name(rng);
    if (used.insert(s).second) return s;
  }
}

template <typename T>
void shuffle(std::vector<T>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string s;
  for (const std::string& l : lines) s += l + "\n";
  return s;
}

// ---- reversal

struct Fact {
  std::string relation, a, b;  // "The {relation} of {a} is {b}."
  bool two_way;                // also stated backward in the training text (every fourth fact)
};

std::vector<TaskItem> fact_items(const Fact& f, int& id) {
  const std::string group = f.two_way ? "two-way" : "one-way";
  std::vector<TaskItem> out;
  out.push_back({TaskKind::kReversal, id++, "forward", group, "The " + f.relation + " of " + f.a + " is", " " + f.b,
                 "", false});
  out.push_back({TaskKind::kReversal, id++, "backward", group, f.b + " is the " + f.relation + " of", " " + f.a, "",
                 false});
  out.push_back({TaskKind::kReversal, id++, "backward-infill", group, "The " + f.relation + " of", " " + f.a,
                 " is " + f.b + ".", true});
  return out;
}

TaskData make_reversal(const MakeTaskOptions& o, int n) {
  Rng rng = Rng(o.seed).split(kItemStream);
  std::set<std::string> used;
  std::vector<std::string> lines;
  TaskData d;
  int id = 0;
  for (int i = 0; i < n; ++i) {
    Fact f{std::string(pick(rng, kRelations)), fresh_name(rng, used), fresh_name(rng, used), i % 4 == 3};
    lines.push_back("The " + f.relation + " of " + f.a + " is " + f.b + ".");
    if (f.two_way) lines.push_back(f.b + " is the " + f.relation + " of " + f.a + ".");
    for (TaskItem& it : fact_items(f, id)) d.items.push_back(std::move(it));
  }
  Rng order = Rng(o.seed).split(kTrainStream);
  shuffle(lines, order);
  d.train = join_lines(lines);
  return d;
}

// ---- dependency

constexpr std::string_view kWords[] = {"ba", "ko", "mi", "tu", "ze", "ra", "lo", "ne",
                                       "su", "vi", "da", "ke", "po", "fu", "gi", "ho"};
constexpr std::string_view kDependencyKinds[] = {"copy", "reverse", "sort", "replace", "shuffle"};

std::string join_words(const std::vector<std::string>& w) {
  std::string s;
  for (const std::string& x : w) s += (s.empty() ? "" : " ") + x;
  return s;
}

std::vector<std::string> split_on_spaces(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    size_t j = i;
    while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// A word of the pool that is not in w.
std::string word_not_in(const std::vector<std::string>& w, Rng& rng) {
  for (;;) {
    std::string x(pick(rng, kWords));
    if (std::find(w.begin(), w.end(), x) == w.end()) return x;
  }
}

// "KIND: w1 w2 w3 =>" and " ANSWER": 3 to 6 words of the pool (with repeats).
std::pair<std::string, std::string> dependency_example(std::string_view kind, Rng& rng) {
  std::vector<std::string> w(3 + rng.below(4));
  for (std::string& x : w) x = pick(rng, kWords);
  std::vector<std::string> a = w;
  std::string head(kind);
  if (kind == "reverse") std::reverse(a.begin(), a.end());
  if (kind == "sort") std::sort(a.begin(), a.end());
  if (kind == "shuffle") shuffle(a, rng);
  if (kind == "replace") {
    const std::string from = w[rng.below(w.size())], to = word_not_in(w, rng);
    std::replace(a.begin(), a.end(), from, to);
    head = "replace " + from + " by " + to;
  }
  return {head + ": " + join_words(w) + " =>", " " + join_words(a)};
}

// Items first (kind i % 5), then ten training lines per item, none with the prompt of an item.
TaskData make_dependency(const MakeTaskOptions& o, int n) {
  Rng rng = Rng(o.seed).split(kItemStream);
  TaskData d;
  std::set<std::string> held_out;
  for (int i = 0; i < n; ++i) {
    const std::string_view kind = kDependencyKinds[size_t(i) % std::size(kDependencyKinds)];
    auto [prompt, answer] = dependency_example(kind, rng);
    held_out.insert(prompt);
    d.items.push_back({TaskKind::kDependency, i, std::string(kind), "", prompt, answer, "", false});
  }
  Rng train = Rng(o.seed).split(kTrainStream);
  std::vector<std::string> lines;
  for (int i = 0; i < 10 * n;) {
    auto [prompt, answer] = dependency_example(kDependencyKinds[size_t(i) % std::size(kDependencyKinds)], train);
    if (held_out.count(prompt)) continue;
    lines.push_back(prompt + answer), ++i;
  }
  d.train = join_lines(lines);
  return d;
}

// ---- infill and length: cut from a held-out text

struct Word {
  size_t begin, end;  // byte offsets of a run of non-space characters
};

std::vector<Word> words_of(std::string_view text) {
  std::vector<Word> out;
  for (size_t i = 0; i < text.size();) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    size_t j = i;
    while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
    if (j > i) out.push_back({i, j});
    i = j;
  }
  return out;
}

std::vector<Word> enough_words(const MakeTaskOptions& o, std::string_view task, size_t need, std::string_view why) {
  check(!o.text.empty(), "the {} task cuts its items from a held-out text: give one (--text FILE)", task);
  std::vector<Word> w = words_of(o.text);
  check(w.size() >= need, "{}: {} words; the {} task needs at least {} ({})", o.text_name, w.size(), task, need, why);
  return w;
}

std::string_view between(std::string_view text, size_t from, size_t to) { return text.substr(from, to - from); }

// ctx words, a span of 1 to 4 words (with the white space before it), ctx words: prompt + answer + suffix.
TaskData make_infill(const MakeTaskOptions& o, int n) {
  const size_t ctx = size_t(o.context_words), need = 2 * ctx + kMaxSpanWords;
  const std::vector<Word> w = enough_words(o, "infill", need, fmt::format("{} words of context on each side of a "
                                           "span of up to {}", ctx, kMaxSpanWords));
  Rng rng = Rng(o.seed).split(kItemStream);
  TaskData d;
  for (int i = 0; i < n; ++i) {
    const size_t span = 1 + rng.below(kMaxSpanWords), a = rng.below(w.size() - need + 1);
    const size_t p = a + ctx - 1, s = p + span, e = s + ctx;  // last word of prompt, span, suffix
    d.items.push_back({TaskKind::kInfill, i, "span", "", std::string(between(o.text, w[a].begin, w[p].end)),
                       std::string(between(o.text, w[p].end, w[s].end)),
                       std::string(between(o.text, w[s].end, w[e].end)), true});
  }
  return d;
}

TaskData make_length(const MakeTaskOptions& o, int n) {
  const size_t ctx = size_t(o.context_words);
  const std::vector<Word> w = enough_words(o, "length", ctx, fmt::format("{} words of prompt", ctx));
  Rng rng = Rng(o.seed).split(kItemStream);
  TaskData d;
  for (int i = 0; i < n; ++i) {
    const size_t a = rng.below(w.size() - ctx + 1);
    d.items.push_back({TaskKind::kLength, i, "open", "", std::string(between(o.text, w[a].begin, w[a + ctx - 1].end)),
                       "", "", false});
  }
  return d;
}

// ---- items.jsonl

std::vector<std::string_view> kinds_of(TaskKind t) {
  switch (t) {
    case TaskKind::kReversal: return {"forward", "backward", "backward-infill"};
    case TaskKind::kInfill: return {"span"};
    case TaskKind::kDependency: return {std::begin(kDependencyKinds), std::end(kDependencyKinds)};
    case TaskKind::kLength: return {"open"};
  }
  return {};
}

std::string joined(const std::vector<std::string_view>& names) {
  std::string s;
  for (std::string_view x : names) s += (s.empty() ? "" : ", ") + std::string(x);
  return s;
}

// The string field `key` of item line `where`; optional ones may be absent ("").
std::string string_field(const json& j, const char* key, const std::string& where, bool required) {
  const auto it = j.find(key);
  if (it == j.end() && !required) return "";
  check(it != j.end() && it->is_string(), "{}: \"{}\" is missing or not a string", where, key);
  return it->get<std::string>();
}

TaskItem item_of(const json& j, const std::string& where, TaskKind task) {
  check(j.is_object(), "{}: expected a JSON object (an item)", where);
  const std::string name = string_field(j, "task", where, true);
  check(name == task_kind_name(task), "{}: an item of task \"{}\", expected \"{}\"", where, name, task_kind_name(task));
  TaskItem it;
  it.task = task;
  const auto id = j.find("id");
  check(id != j.end() && id->is_number_integer() && id->get<int64_t>() >= 0 && id->get<int64_t>() <= INT32_MAX,
        "{}: \"id\" is missing or not a non-negative integer", where);
  it.id = id->get<int>();
  it.kind = string_field(j, "kind", where, true);
  const std::vector<std::string_view> kinds = kinds_of(task);
  check(std::find(kinds.begin(), kinds.end(), it.kind) != kinds.end(), "{}: kind \"{}\" is not one of the {} task's "
        "({})", where, it.kind, name, joined(kinds));
  it.group = string_field(j, "group", where, false);
  it.prompt = string_field(j, "prompt", where, true);
  it.answer = string_field(j, "answer", where, task != TaskKind::kLength);
  it.infill = j.value("infill", false);
  it.suffix = string_field(j, "suffix", where, it.infill);
  check(task == TaskKind::kLength || !it.answer.empty(), "{}: \"answer\" is empty", where);
  return it;
}

}  // namespace

TaskKind parse_task_kind(std::string_view name) {
  for (const auto& [n, k] : kTasks)
    if (n == name) return k;
  fail("unknown task \"{}\"; the tasks are {}", name, task_kind_names());
}

std::string_view task_kind_name(TaskKind k) { return kTasks[size_t(k)].first; }

std::string task_kind_names() {
  std::vector<std::string_view> names;
  for (const auto& t : kTasks) names.push_back(t.first);
  return joined(names);
}

TaskData make_task(TaskKind task, const MakeTaskOptions& o) {
  check(o.n >= 0, "--n {}: expected at least 1 item", o.n);
  check(o.context_words >= 1, "--context-words {}: expected at least 1", o.context_words);
  const int n = o.n > 0 ? o.n : kDefaultN[size_t(task)];
  switch (task) {
    case TaskKind::kReversal: return make_reversal(o, n);
    case TaskKind::kInfill: return make_infill(o, n);
    case TaskKind::kDependency: return make_dependency(o, n);
    case TaskKind::kLength: return make_length(o, n);
  }
  fail("unknown task");
}

std::string item_json_line(const TaskItem& it) {
  nlohmann::ordered_json j = {{"task", task_kind_name(it.task)}, {"id", it.id}, {"kind", it.kind}};
  if (!it.group.empty()) j["group"] = it.group;
  j["prompt"] = it.prompt;
  if (it.task != TaskKind::kLength) j["answer"] = it.answer;
  if (it.infill) j["suffix"] = it.suffix, j["infill"] = true;
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::vector<TaskItem> parse_items(std::string_view text, std::string_view path, TaskKind task) {
  std::vector<TaskItem> items;
  size_t at = 0;
  for (int line = 1; at < text.size(); ++line) {
    size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view s = text.substr(at, end - at);
    at = end + 1;
    if (s.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const std::string where = fmt::format("{}:{}", path, line);
    const json j = json::parse(s, nullptr, false);
    check(!j.is_discarded(), "{}: not valid JSON (one item per line)", where);
    items.push_back(item_of(j, where, task));
  }
  check(!items.empty(), "{}: no items (one JSON object per line, as `unmask eval task {} --make-data` writes)", path,
        task_kind_name(task));
  return items;
}

// ---- scoring of outputs

namespace {

std::string_view trim(std::string_view s) {
  const size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string_view::npos) return {};
  return s.substr(a, s.find_last_not_of(" \t\r\n") - a + 1);
}

bool word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || static_cast<unsigned char>(c) >= 0x80; }

// The output starts (after white space) with the answer, and the answer ends a word there.
bool starts_with_word(std::string_view output, std::string_view answer) {
  const std::string_view o = trim(output), a = trim(answer);
  return o.starts_with(a) && (o.size() == a.size() || !word_char(o[a.size()]));
}

bool dependency_correct(const TaskItem& it, std::string_view output) {
  const std::string_view line = trim(output.substr(0, output.find('\n')));
  if (it.kind != "shuffle") return line == trim(it.answer);
  std::vector<std::string> got = split_on_spaces(line), want = split_on_spaces(it.answer);
  std::sort(got.begin(), got.end()), std::sort(want.begin(), want.end());
  return got == want;
}

}  // namespace

bool item_correct(const TaskItem& it, std::string_view output) {
  switch (it.task) {
    case TaskKind::kReversal: return it.infill ? trim(output) == trim(it.answer) : starts_with_word(output, it.answer);
    case TaskKind::kInfill: return trim(output) == trim(it.answer);
    case TaskKind::kDependency: return dependency_correct(it, output);
    case TaskKind::kLength: return false;
  }
  return false;
}

// ---- runs

namespace {

// One generation: a continuation of the prompt's ids, or the masks of an infill canvas filled.
struct Query {
  const TaskItem* item = nullptr;
  Canvas canvas;         // the prompt's ids (continuation), or the canvas with its masks (infill)
  bool infill = false;
  int positions = 0;     // tokens to generate, or masks to fill
  std::string kind;      // the report's row
  bool primary = true;   // counted in the setting's accuracy
};

struct Setting {
  std::string label;
  int k = 0;  // tokens per step; 0: the configuration's steps and threshold as given
};

int ceil_div(int a, int b) { return (a + b - 1) / b; }

std::vector<Setting> settings_of(const TaskRunOptions& o) {
  if (o.cfg.kind == SamplerKind::kAr) return {{"ar", 0}};
  if (o.parallel.empty()) {
    if (o.cfg.threshold > 0) return {{fmt::format("threshold={}", o.cfg.threshold), 0}};
    if (o.cfg.factor > 0) return {{fmt::format("factor={}", o.cfg.factor), 0}};
    if (o.cfg.steps > 0) return {{fmt::format("steps={}", o.cfg.steps), 0}};
    return {{"default", 0}};
  }
  std::vector<Setting> out;
  for (int k : o.parallel) {
    check(k >= 1, "--parallel {}: expected at least 1 token per step", k);
    out.push_back({fmt::format("k={}", k), k});
  }
  return out;
}

// A query's sampler configuration: a seed from the run's seed and the item (the same in every setting), its length,
// and under a setting k the steps that commit k tokens per step: ceil(positions / k), rounded up to a multiple of the
// blocks for llada with --block-length; bd3 counts steps per block of the model.
SamplerConfig query_config(const TaskRunOptions& o, const Setting& s, const Query& q, const ModelConfig& mc) {
  SamplerConfig c = o.cfg;
  c.seed = Rng(o.cfg.seed).split(uint64_t(q.item->id)).next_u64();
  c.gen_length = q.positions;
  if (s.k == 0 || c.kind == SamplerKind::kAr) return c;
  if (c.kind == SamplerKind::kBd3) {
    c.steps = ceil_div(std::max(mc.block_size, 1), s.k);
    return c;
  }
  c.steps = ceil_div(q.positions, s.k);
  if (c.kind == SamplerKind::kLlada && c.block_length > 0) {
    const int span = q.infill ? int(q.canvas.tokens.size()) - q.canvas.prompt_length : q.positions;
    const int blocks = ceil_div(span, c.block_length);
    c.steps = ceil_div(c.steps, blocks) * blocks;
  }
  return c;
}

Query continuation(const Tokenizer& tok, const TaskItem& it, int positions, std::string kind, bool primary) {
  return {&it, text_canvas(tok, it.prompt), false, positions, std::move(kind), primary};
}

// BOS and the prompt (as a continuation sees it), the masks, the suffix; no prompt positions (as generate --infill).
Query infill_query(const Tokenizer& tok, const TaskItem& it, int masks, int32_t mask, std::string kind, bool primary) {
  Canvas c = text_canvas(tok, it.prompt);
  c.tokens.insert(c.tokens.end(), size_t(masks), mask);
  const std::vector<int32_t> after = tok.encode(it.suffix, false, false);
  c.tokens.insert(c.tokens.end(), after.begin(), after.end());
  c.prompt_length = 0;
  return {&it, std::move(c), true, masks, std::move(kind), primary};
}

int answer_tokens(const Tokenizer& tok, const TaskItem& it) {
  return std::max(1, int(tok.encode(it.answer, false, false).size()));
}

// The generation lengths of the length task: as given, or those of 32..256 that fit after the longest prompt.
std::vector<int> lengths_of(const TaskRunOptions& o, const Tokenizer& tok, std::span<const TaskItem> items, int ctx) {
  if (!o.lengths.empty()) return o.lengths;
  size_t longest = 0;
  for (const TaskItem& it : items) longest = std::max(longest, text_canvas(tok, it.prompt).tokens.size());
  std::vector<int> out;
  for (int n : {32, 64, 128, 256})
    if (int(longest) + n <= ctx) out.push_back(n);
  check(!out.empty(), "no generation length of 32, 64, 128, 256 fits the model's context of {} positions after "
        "prompts of up to {} tokens; give the lengths (--lengths)", ctx, longest);
  return out;
}

std::vector<Query> queries_of(const Tokenizer& tok, const ModelConfig& mc, TaskKind task,
                              std::span<const TaskItem> items, const TaskRunOptions& o) {
  const bool ar = o.cfg.kind == SamplerKind::kAr;
  const std::string fixed = fmt::format("fixed-{}", o.fixed_length);
  const std::vector<int> lengths = task == TaskKind::kLength ? lengths_of(o, tok, items, mc.ctx) : std::vector<int>{};
  std::vector<Query> qs;
  for (const TaskItem& it : items) {
    const int n = task == TaskKind::kLength ? 0 : answer_tokens(tok, it);
    if (task == TaskKind::kReversal && it.infill && !ar)
      qs.push_back(infill_query(tok, it, n, mc.mask_token, it.kind + " " + it.group, false));
    if (task == TaskKind::kReversal && !it.infill) qs.push_back(continuation(tok, it, n, it.kind + " " + it.group, true));
    if (task == TaskKind::kDependency) qs.push_back(continuation(tok, it, n, it.kind, true));
    for (int len : lengths) qs.push_back(continuation(tok, it, len, fmt::format("n={}", len), true));
    if (task != TaskKind::kInfill) continue;
    check(o.fixed_length >= 1, "--fixed-length {}: expected at least 1", o.fixed_length);
    qs.push_back(ar ? continuation(tok, it, n, "true-length", true)
                    : infill_query(tok, it, n, mc.mask_token, "true-length", true));
    qs.push_back(ar ? continuation(tok, it, o.fixed_length, fixed, false)
                    : infill_query(tok, it, o.fixed_length, mc.mask_token, fixed, false));
  }
  return qs;
}

void check_fits(const Query& q, int ctx) {
  const int total = int(q.canvas.tokens.size()) + (q.infill ? 0 : q.positions);
  check(total <= ctx, "item {} ({}): {} positions with the {} {} to {}; the model's context is {} (make the items with "
        "fewer --context-words, or give shorter --lengths)", q.item->id, q.kind, total, q.positions,
        q.infill ? "masks" : "tokens", q.infill ? "fill" : "generate", ctx);
}

// The filled masks of an infill canvas, without EOS (a fixed-length hole padded with EOS reads as the shorter text).
std::vector<int32_t> filled(const Query& q, const GenerateResult& r, int32_t mask, int32_t eos) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < q.canvas.tokens.size() && i < r.canvas.size(); ++i)
    if (q.canvas.tokens[i] == mask && r.canvas[i] != eos && r.canvas[i] != mask) ids.push_back(r.canvas[i]);
  return ids;
}

void score(const Query& q, const GenerateResult& r, const std::vector<int32_t>& ids, int32_t eos, TaskOutcome& out) {
  const TaskItem& it = *q.item;
  if (it.task == TaskKind::kLength) {
    const auto first = r.canvas.begin() + std::min<size_t>(size_t(r.prompt_length), r.canvas.size());
    const auto e = std::find(first, r.canvas.end(), eos);
    out.eos_at = eos >= 0 && e != r.canvas.end() ? int(e - first) : -1;
    const std::vector<int32_t> sample[] = {ids};
    out.repeated = repetition_rate(sample, 4);
    return;
  }
  out.correct = item_correct(it, out.output);
  if (q.infill || it.task == TaskKind::kInfill) out.cer = char_error_rate(trim(out.output), trim(it.answer));
}

TaskOutcome run_query(Model& m, const Tokenizer& tok, const Query& q, const SamplerConfig& c) {
  ModelBackbone bb(m);
  Timer t;
  double first = -1;
  const StepCallback cb = [&](const StepEvent& e) {
    if (first < 0 && !e.committed.empty()) first = t.seconds();
    return true;
  };
  const GenerateResult r = q.infill ? generate_canvas(bb, c, q.canvas, cb) : generate(bb, c, q.canvas.tokens, cb);
  const int32_t eos = m.config().eos_token;
  const std::vector<int32_t> ids = q.infill ? filled(q, r, m.config().mask_token, eos) : r.output(eos);
  TaskOutcome out;
  out.item = q.item->id, out.kind = q.kind, out.primary = q.primary, out.length = q.positions;
  out.output = decode_text(&tok, ids);
  out.first_token_seconds = std::max(first, 0.0);
  out.stats = r.stats;
  score(q, r, ids, eos, out);
  return out;
}

}  // namespace

TaskReport run_task(Model& model, const Tokenizer& tok, TaskKind task, std::span<const TaskItem> items,
                    const TaskRunOptions& o) {
  const ModelConfig& mc = model.config();
  const std::vector<Setting> settings = settings_of(o);
  const std::vector<Query> qs = queries_of(tok, mc, task, items, o);
  for (const Query& q : qs) check_fits(q, mc.ctx);
  TaskReport r;
  r.task = task, r.sampler = o.cfg.kind;
  const int total = int(qs.size() * settings.size());
  if (!qs.empty()) run_query(model, tok, qs[0], query_config(o, settings[0], qs[0], mc));  // warm-up, not counted
  for (const Setting& s : settings)
    for (const Query& q : qs) {
      r.outcomes.push_back(run_query(model, tok, q, query_config(o, s, q, mc)));
      r.outcomes.back().setting = s.label;
      if (o.progress) o.progress(int(r.outcomes.size()), total);
    }
  summarize(r);
  return r;
}

// ---- summaries

namespace {

struct RowSum {
  TaskRow row;
  int correct = 0, eos_n = 0;
  double cer = 0, eos_at = 0, repeated = 0;
};

struct PointSum {
  SpeedPoint p;
  int64_t generated = 0, forwards = 0;
  double seconds = 0, first = 0;
  int primary = 0, correct = 0;
};

template <typename T>
T& entry(std::vector<T>& v, std::map<std::string, size_t>& at, const std::string& key) {
  const auto [it, fresh] = at.try_emplace(key, v.size());
  if (fresh) v.emplace_back();
  return v[it->second];
}

void add(RowSum& s, const TaskOutcome& o) {
  s.row.kind = o.kind, s.row.setting = o.setting, ++s.row.n;
  s.correct += o.correct, s.cer += o.cer, s.repeated += o.repeated;
  if (o.eos_at >= 0) s.eos_at += o.eos_at, ++s.eos_n;
}

void add(PointSum& s, const TaskOutcome& o) {
  s.p.label = o.setting, ++s.p.requests;
  s.generated += o.stats.generated, s.forwards += o.stats.forward_passes;
  s.seconds += o.stats.seconds_total, s.first += o.first_token_seconds;
  if (o.primary) ++s.primary, s.correct += o.correct;
}

TaskRow finish(const RowSum& s) {
  TaskRow r = s.row;
  const double n = std::max(r.n, 1);
  r.accuracy = s.correct / n, r.cer = s.cer / n, r.repeated = s.repeated / n;
  r.no_eos = (r.n - s.eos_n) / n;
  r.mean_eos_at = s.eos_n ? s.eos_at / s.eos_n : -1;
  return r;
}

SpeedPoint finish(const PointSum& s) {
  SpeedPoint p = s.p;
  p.tokens_per_forward = s.forwards ? double(s.generated) / double(s.forwards) : 0;
  p.forwards_per_token = s.generated ? double(s.forwards) / double(s.generated) : 0;
  p.tokens_per_second = s.seconds > 0 ? double(s.generated) / s.seconds : 0;
  p.first_token_seconds = p.requests ? s.first / p.requests : 0;
  p.accuracy = s.primary ? double(s.correct) / s.primary : 0;
  return p;
}

}  // namespace

void summarize(TaskReport& r) {
  std::vector<RowSum> rows;
  std::vector<PointSum> points;
  std::map<std::string, size_t> row_at, point_at;
  for (const TaskOutcome& o : r.outcomes) {
    add(entry(rows, row_at, o.setting + "\n" + o.kind), o);
    add(entry(points, point_at, o.setting), o);
  }
  r.rows.clear(), r.points.clear();
  for (const RowSum& s : rows) r.rows.push_back(finish(s));
  for (const PointSum& s : points) r.points.push_back(finish(s));
  const bool scored = r.task != TaskKind::kLength;
  r.frontier = scored ? pareto_frontier(r.points) : std::vector<size_t>{};
  r.area = scored ? frontier_area(r.points) : 0;
}

namespace {

json row_json(TaskKind task, const TaskRow& r) {
  json j = {{"setting", r.setting}, {"kind", r.kind}, {"n", r.n}};
  if (task == TaskKind::kLength) {
    j["no_eos"] = r.no_eos, j["mean_eos_at"] = r.mean_eos_at, j["repeated_4grams"] = r.repeated;
    return j;
  }
  j["accuracy"] = r.accuracy;
  if (task == TaskKind::kInfill || r.kind.starts_with("backward-infill")) j["cer"] = r.cer;
  return j;
}

json point_json(const SpeedPoint& p, bool scored, bool on_frontier) {
  json j = {{"setting", p.label}, {"requests", p.requests}, {"tokens_per_forward", p.tokens_per_forward},
            {"forwards_per_token", p.forwards_per_token}, {"tokens_per_second", p.tokens_per_second},
            {"first_token_seconds", p.first_token_seconds}};
  if (scored) j["accuracy"] = p.accuracy, j["frontier"] = on_frontier;
  return j;
}

json outcome_json(const TaskOutcome& o) {
  json j = {{"item", o.item}, {"setting", o.setting}, {"kind", o.kind}, {"output", o.output},
            {"correct", o.correct}, {"length", o.length}, {"forward_passes", o.stats.forward_passes},
            {"generated", o.stats.generated}, {"seconds", o.stats.seconds_total},
            {"first_token_seconds", o.first_token_seconds}};
  if (o.kind.starts_with("n=")) j["eos_at"] = o.eos_at, j["repeated_4grams"] = o.repeated;
  const bool hole = o.kind == "true-length" || o.kind.starts_with("fixed-") || o.kind.starts_with("backward-infill");
  if (hole) j["cer"] = o.cer;
  return j;
}

}  // namespace

json report_json(const TaskReport& r, bool with_outcomes) {
  const bool scored = r.task != TaskKind::kLength;
  json j = {{"task", task_kind_name(r.task)}, {"sampler", sampler_kind_name(r.sampler)}};
  j["rows"] = json::array();
  for (const TaskRow& row : r.rows) j["rows"].push_back(row_json(r.task, row));
  j["points"] = json::array();
  for (size_t i = 0; i < r.points.size(); ++i)
    j["points"].push_back(point_json(r.points[i], scored,
                                     std::find(r.frontier.begin(), r.frontier.end(), i) != r.frontier.end()));
  if (scored) j["frontier_area"] = r.area;
  if (!with_outcomes) return j;
  j["outcomes"] = json::array();
  for (const TaskOutcome& o : r.outcomes) j["outcomes"].push_back(outcome_json(o));
  return j;
}

}  // namespace unmask
