// The generated tasks (unmask/eval/tasks.h) and the speed/quality frontier (frontier.h): generators deterministic by
// seed, the closed-form answers of the dependency tasks checked by an independent reading of each prompt, scoring on
// hand-made outputs, items.jsonl read back and refused line by line, the frontier and its area on hand-made points,
// and `unmask eval task` on the tiny trained models of tests/tools (refusals, --make-data files, JSON figures, and
// generations equal to what `unmask generate` gives for the same prompt).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "../tools/tool_models.h"
#include "unmask/eval/frontier.h"
#include "unmask/eval/tasks.h"

namespace unmask {
namespace {

using json = nlohmann::json;

std::string text_corpus() {
  std::string s;
  for (int i = 0; i < 4; ++i) s += test::kVerses;
  return s;
}

MakeTaskOptions options(uint64_t seed, int n) {
  MakeTaskOptions o;
  o.seed = seed, o.n = n, o.text = text_corpus(), o.text_name = "verses", o.context_words = 5;
  return o;
}

std::string dump(const TaskData& d) {
  std::string s = d.train + "\n--\n";
  for (const TaskItem& it : d.items) s += item_json_line(it) + "\n";
  return s;
}

std::vector<std::string> words(std::string_view s) {
  std::vector<std::string> out;
  std::istringstream in{std::string(s)};
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

TEST(TaskGenerators, SameSeedSameFilesOtherSeedOtherFiles) {
  for (TaskKind t : {TaskKind::kReversal, TaskKind::kInfill, TaskKind::kDependency, TaskKind::kLength}) {
    const std::string a = dump(make_task(t, options(7, 20))), b = dump(make_task(t, options(7, 20)));
    const std::string c = dump(make_task(t, options(8, 20)));
    EXPECT_EQ(a, b) << task_kind_name(t);
    EXPECT_NE(a, c) << task_kind_name(t);
  }
}

TEST(TaskGenerators, CountsAndDefaults) {
  EXPECT_EQ(make_task(TaskKind::kReversal, options(1, 10)).items.size(), 30u);  // three queries per fact
  EXPECT_EQ(make_task(TaskKind::kDependency, options(1, 10)).items.size(), 10u);
  EXPECT_EQ(make_task(TaskKind::kInfill, options(1, 0)).items.size(), 100u);
  EXPECT_EQ(make_task(TaskKind::kLength, options(1, 0)).items.size(), 20u);
  EXPECT_EQ(make_task(TaskKind::kDependency, options(1, 10)).train.size() > 0, true);
  EXPECT_TRUE(make_task(TaskKind::kInfill, options(1, 3)).train.empty());
}

TEST(TaskGenerators, ReversalStatesOneWayFactsForwardOnly) {
  const TaskData d = make_task(TaskKind::kReversal, options(3, 40));
  std::set<std::string> answers;
  int one_way = 0, two_way = 0;
  for (const TaskItem& it : d.items) {
    if (it.kind == "backward-infill") {
      EXPECT_TRUE(it.infill);
      EXPECT_NE(d.train.find(it.prompt + it.answer + it.suffix + "\n"), std::string::npos) << it.prompt;
      continue;
    }
    const std::string sentence = it.prompt + it.answer + ".\n";
    const bool trained = d.train.find(sentence) != std::string::npos;
    if (it.kind == "forward") {
      EXPECT_TRUE(trained) << sentence;
    } else {
      EXPECT_EQ(trained, it.group == "two-way") << sentence;
    }
    (it.group == "two-way" ? two_way : one_way) += it.kind == "forward";
    if (it.kind == "backward") {
      EXPECT_TRUE(answers.insert(it.answer).second) << "two facts share " << it.answer;
    }
  }
  EXPECT_EQ(two_way, 10);
  EXPECT_EQ(one_way, 30);
}

// An independent reading of each prompt: "KIND: w1 w2 ... =>" or "replace X by Y: w1 ... =>".
std::vector<std::string> expected_dependency(const TaskItem& it) {
  const std::string body = it.prompt.substr(it.prompt.find(':') + 1);
  std::vector<std::string> w = words(body.substr(0, body.rfind("=>")));
  if (it.kind == "reverse") std::reverse(w.begin(), w.end());
  if (it.kind == "sort" || it.kind == "shuffle") std::sort(w.begin(), w.end());
  if (it.kind == "replace") {
    const std::vector<std::string> head = words(it.prompt.substr(0, it.prompt.find(':')));
    EXPECT_EQ(head.size(), 4u) << it.prompt;
    EXPECT_NE(std::find(w.begin(), w.end(), head[1]), w.end()) << it.prompt << ": the word replaced is in the list";
    std::replace(w.begin(), w.end(), head[1], head[3]);
  }
  return w;
}

TEST(TaskGenerators, DependencyAnswersAreTheClosedForms) {
  const TaskData d = make_task(TaskKind::kDependency, options(5, 60));
  std::set<std::string> kinds;
  for (const TaskItem& it : d.items) {
    kinds.insert(it.kind);
    std::vector<std::string> got = words(it.answer);
    if (it.kind == "shuffle") std::sort(got.begin(), got.end());
    EXPECT_EQ(got, expected_dependency(it)) << it.prompt << it.answer;
    EXPECT_EQ(d.train.find(it.prompt), std::string::npos) << "item prompt in the training text: " << it.prompt;
    EXPECT_TRUE(item_correct(it, it.answer + "\nsort: ba =>"));
  }
  EXPECT_EQ(kinds, (std::set<std::string>{"copy", "reverse", "sort", "replace", "shuffle"}));
  std::istringstream lines(d.train);
  for (std::string line; std::getline(lines, line);) {
    TaskItem it{TaskKind::kDependency, 0, line.substr(0, line.find(':')), "", line.substr(0, line.find("=>") + 2),
                line.substr(line.find("=>") + 2), "", false};
    if (it.kind.starts_with("replace")) it.kind = "replace";
    std::vector<std::string> got = words(it.answer);
    if (it.kind == "shuffle") std::sort(got.begin(), got.end());
    EXPECT_EQ(got, expected_dependency(it)) << line;
  }
}

TEST(TaskGenerators, InfillItemsAreCutFromTheText) {
  const MakeTaskOptions o = options(9, 50);
  for (const TaskItem& it : make_task(TaskKind::kInfill, o).items) {
    EXPECT_NE(o.text.find(it.prompt + it.answer + it.suffix), std::string::npos) << it.id;
    EXPECT_EQ(words(it.prompt).size(), 5u);
    EXPECT_EQ(words(it.suffix).size(), 5u);
    EXPECT_GE(words(it.answer).size(), 1u);
    EXPECT_LE(words(it.answer).size(), 4u);
    EXPECT_TRUE(it.infill);
  }
  for (const TaskItem& it : make_task(TaskKind::kLength, o).items) EXPECT_EQ(words(it.prompt).size(), 5u);
}

TEST(TaskGenerators, BadOptionsAreRefused) {
  MakeTaskOptions o = options(1, 5);
  o.text = "only four words here";
  EXPECT_NE(test::error_of([&] { make_task(TaskKind::kInfill, o); }).find("verses: 4 words; the infill task needs at "
                                                                        "least 14"), std::string::npos);
  o.text.clear();
  EXPECT_NE(test::error_of([&] { make_task(TaskKind::kLength, o); }).find("--text FILE"), std::string::npos);
  o = options(1, -1);
  EXPECT_NE(test::error_of([&] { make_task(TaskKind::kReversal, o); }).find("--n -1"), std::string::npos);
  EXPECT_NE(test::error_of([] { parse_task_kind("copy"); }).find("reversal, infill, dependency, length"),
            std::string::npos);
}

TEST(TaskScoring, HandMadeOutputs) {
  const TaskItem fwd{TaskKind::kReversal, 0, "forward", "one-way", "The mentor of Zorvak is", " Telmira", "", false};
  EXPECT_TRUE(item_correct(fwd, " Telmira."));
  EXPECT_TRUE(item_correct(fwd, "Telmira is the"));
  EXPECT_TRUE(item_correct(fwd, " Telmira"));
  EXPECT_FALSE(item_correct(fwd, " Telmiran."));
  EXPECT_FALSE(item_correct(fwd, " Telmir"));
  EXPECT_FALSE(item_correct(fwd, " Zorvak"));
  const TaskItem hole{TaskKind::kReversal, 2, "backward-infill", "one-way", "The mentor of", " Zorvak", " is Telmira.",
                      true};
  EXPECT_TRUE(item_correct(hole, " Zorvak "));
  EXPECT_FALSE(item_correct(hole, " Zorvak is"));
  const TaskItem shuf{TaskKind::kDependency, 0, "shuffle", "", "shuffle: ba ko ko =>", " ko ba ko", "", false};
  EXPECT_TRUE(item_correct(shuf, " ko ko ba\ncopy: x"));
  EXPECT_FALSE(item_correct(shuf, " ko ba ba"));
  EXPECT_FALSE(item_correct(shuf, " ko ba"));
  const TaskItem copy{TaskKind::kDependency, 1, "copy", "", "copy: ba ko =>", " ba ko", "", false};
  EXPECT_TRUE(item_correct(copy, " ba ko\n"));
  EXPECT_FALSE(item_correct(copy, " ko ba"));
  const TaskItem span{TaskKind::kInfill, 0, "span", "", "And God", " said, Let", " there be", true};
  EXPECT_TRUE(item_correct(span, "said, Let "));
  EXPECT_FALSE(item_correct(span, " said, Let there"));
}

TEST(TaskItems, RoundTripAndRefusalsNameTheLine) {
  const TaskData d = make_task(TaskKind::kReversal, options(2, 3));
  std::string file;
  for (const TaskItem& it : d.items) file += item_json_line(it) + "\n";
  const std::vector<TaskItem> back = parse_items(file, "items.jsonl", TaskKind::kReversal);
  ASSERT_EQ(back.size(), d.items.size());
  for (size_t i = 0; i < back.size(); ++i) EXPECT_EQ(item_json_line(back[i]), item_json_line(d.items[i]));
  auto error = [](const std::string& text, TaskKind t = TaskKind::kReversal) {
    return test::error_of([&] { parse_items(text, "f.jsonl", t); });
  };
  const std::string good = item_json_line(d.items[0]) + "\n";
  EXPECT_NE(error(good + "\n{not json\n").find("f.jsonl:3: not valid JSON"), std::string::npos);
  EXPECT_NE(error(good, TaskKind::kInfill).find("f.jsonl:1: an item of task \"reversal\", expected \"infill\""),
            std::string::npos);
  EXPECT_NE(error(good + R"({"task":"reversal","id":1,"kind":"forward","answer":" x"})").find(
                "f.jsonl:2: \"prompt\" is missing"), std::string::npos);
  EXPECT_NE(error(R"({"task":"reversal","id":1,"kind":"sideways","prompt":"a","answer":" x"})").find(
                "kind \"sideways\" is not one of"), std::string::npos);
  EXPECT_NE(error(R"({"task":"reversal","id":-1,"kind":"forward","prompt":"a","answer":" x"})").find("\"id\""),
            std::string::npos);
  EXPECT_NE(error("\n\n").find("f.jsonl: no items"), std::string::npos);
}

SpeedPoint point(const char* label, double tpf, double acc) {
  SpeedPoint p;
  p.label = label, p.tokens_per_forward = tpf, p.accuracy = acc;
  return p;
}

TEST(Frontier, DominatedPointsLeaveAndTheAreaIsTheTrapezoids) {
  const std::vector<SpeedPoint> pts = {point("k=4", 4, 0.5), point("k=1", 1, 0.9), point("slow-bad", 0.5, 0.4),
                                       point("k=2", 2, 0.8), point("k=2 again", 2, 0.8), point("worse", 2, 0.6)};
  const std::vector<size_t> f = pareto_frontier(pts);
  EXPECT_EQ(f, (std::vector<size_t>{1, 3, 0}));
  // flat 0..1 at 0.9, then (0.9 + 0.8) / 2 over 1..2, (0.8 + 0.5) / 2 over 2..4
  EXPECT_NEAR(frontier_area(pts), 0.9 + 0.85 + 1.3, 1e-12);
  EXPECT_NEAR(frontier_area(std::vector<SpeedPoint>{point("ar", 1, 0.7)}), 0.7, 1e-12);
  EXPECT_EQ(frontier_area(std::vector<SpeedPoint>{}), 0);
}

TaskOutcome outcome(const char* setting, const char* kind, bool primary, bool correct, int generated, int forwards) {
  TaskOutcome o;
  o.setting = setting, o.kind = kind, o.primary = primary, o.correct = correct;
  o.stats.generated = generated, o.stats.forward_passes = forwards, o.stats.seconds_total = 0.5;
  o.first_token_seconds = 0.1;
  return o;
}

TEST(Frontier, SummaryCountsPrimaryOutcomesAndEveryToken) {
  TaskReport r;
  r.task = TaskKind::kInfill;
  r.outcomes = {outcome("k=1", "true-length", true, true, 4, 4), outcome("k=1", "fixed-16", false, false, 16, 16),
                outcome("k=4", "true-length", true, false, 4, 1), outcome("k=4", "fixed-16", false, true, 16, 4),
                outcome("k=4", "true-length", true, true, 8, 2)};
  summarize(r);
  ASSERT_EQ(r.rows.size(), 4u);
  EXPECT_EQ(r.rows[2].kind, "true-length");
  EXPECT_EQ(r.rows[2].n, 2);
  EXPECT_DOUBLE_EQ(r.rows[2].accuracy, 0.5);
  ASSERT_EQ(r.points.size(), 2u);
  EXPECT_DOUBLE_EQ(r.points[0].accuracy, 1.0);
  EXPECT_DOUBLE_EQ(r.points[0].tokens_per_forward, 1.0);
  EXPECT_DOUBLE_EQ(r.points[1].accuracy, 0.5);
  EXPECT_DOUBLE_EQ(r.points[1].tokens_per_forward, 4.0);
  EXPECT_DOUBLE_EQ(r.points[1].forwards_per_token, 0.25);
  EXPECT_DOUBLE_EQ(r.points[1].tokens_per_second, 28 / 1.5);
  EXPECT_DOUBLE_EQ(r.area, 1.0 + 0.75 * 3);
}

// ---- the command line

std::string tmp(const std::string& name) { return test::temp_path("eval_task", name); }

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(EvalTaskCli, MakeDataIsDeterministicBySeed) {
  const std::string a = tmp("a"), b = tmp("b"), c = tmp("c");
  for (const auto& [dir, seed] : {std::pair{a, 4}, std::pair{b, 4}, std::pair{c, 5}}) {
    const test::Result r = test::sh("eval task dependency --make-data " + dir + " -s " + std::to_string(seed) +
                                    " --n 30");
    ASSERT_EQ(r.code, 0) << r.out;
  }
  EXPECT_EQ(read(a + "/train.txt"), read(b + "/train.txt"));
  EXPECT_EQ(read(a + "/items.jsonl"), read(b + "/items.jsonl"));
  EXPECT_NE(read(a + "/items.jsonl"), read(c + "/items.jsonl"));
  const std::string train = read(a + "/train.txt");
  EXPECT_EQ(std::count(train.begin(), train.end(), '\n'), 300);
  test::expect_error_line("eval task dependency --make-data " + a + " -s 4", "already exists; pass --force");
  for (const std::string& d : {a, b, c}) std::filesystem::remove_all(d);
}

TEST(EvalTaskCli, BadInputIsOneLineSayingWhatAndWhere) {
  const test::ToolModels m = test::tool_models();
  const std::string bad = tmp("bad.jsonl"), verses = tmp("verses.txt");
  std::ofstream(bad) << R"({"task":"reversal","id":0,"kind":"forward","prompt":"In the","answer":" beginning"})"
                     << "\n" << R"({"task":"reversal","id":1,"kind":"forward","prompt":"In the"})" << "\n";
  std::ofstream(verses) << test::kVerses;
  const std::pair<std::string, std::string> cases[] = {
      {"eval task poem --make-data " + tmp("x"), "unknown task \"poem\"; the tasks are reversal, infill, dependency, "
                                                 "length"},
      {"eval task reversal -m " + m.kjv_ar + " --items /nonexistent/items.jsonl", "/nonexistent/items.jsonl"},
      {"eval task reversal -m " + m.kjv_ar + " --items " + bad, bad + ":2: \"answer\" is missing"},
      {"eval task reversal --make-data " + tmp("x") + " --n 0", "--n"},
      {"eval task reversal", "give -m MODEL"},
      {"eval task infill --make-data " + tmp("x"), "--text FILE"},
      {"eval task reversal -m " + m.kjv_ar + " --parallel 2", "--parallel does not apply to --sampler ar"},
      {"eval task reversal -m " + m.kjv_mdlm + " -n 8", "-n/--n-predict does not apply"},
      {"eval task reversal -m " + m.kjv_mdlm + " --steps 4 --parallel 2", "not both"},
      {"eval task length -m " + m.kjv_mdlm + " --text " + verses + " --lengths 100000", "item 0 (n=100000): 100"},
      {"eval task reversal -m " + m.kjv_mdlm + " --lengths 8", "--lengths applies to the length task"},
  };
  for (const auto& [args, want] : cases) test::expect_error_line(args, want);
  std::filesystem::remove(bad), std::filesystem::remove(verses);
}

json run_json(const std::string& args) {
  const test::Result r = test::sh(args + " --json");
  EXPECT_EQ(r.code, 0) << args << "\n" << r.out;
  const size_t at = r.out.find('{');
  return at == std::string::npos ? json() : json::parse(r.out.substr(at), nullptr, false);
}

std::set<std::string> row_kinds(const json& j) {
  std::set<std::string> s;
  for (const json& row : j["rows"]) s.insert(row["kind"].get<std::string>());
  return s;
}

TEST(EvalTaskCli, EveryTaskRunsOnBothTwins) {
  const test::ToolModels m = test::tool_models();
  const std::string verses = tmp("verses.txt");
  std::ofstream(verses) << test::kVerses;
  json ar = run_json("eval task reversal -m " + m.kjv_ar + " --n 4");
  json dm = run_json("eval task reversal -m " + m.kjv_mdlm + " --n 4 --parallel 1,2");
  EXPECT_EQ(row_kinds(ar), (std::set<std::string>{"forward one-way", "backward one-way", "forward two-way",
                                                  "backward two-way"}));
  EXPECT_EQ(row_kinds(dm).count("backward-infill one-way"), 1u);
  ASSERT_EQ(ar["points"].size(), 1u);
  EXPECT_EQ(ar["points"][0]["setting"], "ar");
  EXPECT_DOUBLE_EQ(ar["points"][0]["tokens_per_forward"].get<double>(), 1.0);
  ASSERT_EQ(dm["points"].size(), 2u);
  EXPECT_GT(dm["points"][1]["tokens_per_forward"].get<double>(), dm["points"][0]["tokens_per_forward"].get<double>());
  EXPECT_EQ(dm["outcomes"].size(), 2u * 12u);
  json infill = run_json("eval task infill -m " + m.kjv_mdlm + " --text " + verses + " --context-words 3 --n 3");
  EXPECT_EQ(row_kinds(infill), (std::set<std::string>{"true-length", "fixed-16"}));
  EXPECT_TRUE(infill["rows"][0].contains("cer"));
  json dep = run_json("eval task dependency -m " + m.kjv_mdlm + " --n 5");
  EXPECT_EQ(dep["points"].size(), 4u);
  json len = run_json("eval task length -m " + m.kjv_ar + " --text " + verses + " --context-words 2 --n 2 --lengths "
                      "8,16");
  EXPECT_EQ(row_kinds(len), (std::set<std::string>{"n=8", "n=16"}));
  EXPECT_FALSE(len.contains("frontier_area"));
  std::filesystem::remove(verses);
}

// An item whose answer is what the AR model writes greedily: the task's generation is generate's, and it scores 1.
TEST(EvalTaskCli, TheGenerationIsGeneratesAndAnExactAnswerScores) {
  const test::ToolModels m = test::tool_models();
  const test::Result g = test::sh("generate -m " + m.kjv_ar + " -p \"And God said\" -n 12 --json");
  ASSERT_EQ(g.code, 0) << g.out;
  const std::string text = json::parse(g.out)["text"];
  ASSERT_EQ(text.find('\n'), std::string::npos) << text;
  const std::string items = tmp("exact.jsonl");
  std::ofstream(items) << json{{"task", "dependency"}, {"id", 0}, {"kind", "copy"}, {"prompt", "And God said"},
                               {"answer", text}}.dump() << "\n"
                       << json{{"task", "dependency"}, {"id", 1}, {"kind", "copy"}, {"prompt", "And God said"},
                               {"answer", text + "x"}}.dump() << "\n";
  json j = run_json("eval task dependency -m " + m.kjv_ar + " --items " + items);
  ASSERT_EQ(j["outcomes"].size(), 2u);
  EXPECT_EQ(j["outcomes"][0]["output"], text);
  EXPECT_EQ(j["outcomes"][0]["correct"], true);
  EXPECT_EQ(j["outcomes"][1]["correct"], false);
  EXPECT_DOUBLE_EQ(j["points"][0]["accuracy"].get<double>(), 0.5);
  std::filesystem::remove(items);
}

}  // namespace
}  // namespace unmask
