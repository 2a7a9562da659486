#include "unmask/eval/report.h"

#include <fmt/format.h>

#include <cmath>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/base/mmap.h"
#include "unmask/base/plot.h"
#include "unmask/train/curve.h"

namespace unmask {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kTwins[] = {"ar", "diffusion"};

double num(const json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : NAN;
}

std::string fmt_num(double v, int digits = 3) { return std::isnan(v) ? "–" : fmt::format("{:.{}f}", v, digits); }

// A markdown table: header cells, then rows.
std::string table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows) {
  std::string s = "|";
  for (const auto& h : head) s += " " + h + " |";
  s += "\n|";
  for (size_t i = 0; i < head.size(); ++i) s += i == 0 ? "---|" : "---:|";
  s += "\n";
  for (const auto& r : rows) {
    s += "|";
    for (const auto& c : r) s += " " + c + " |";
    s += "\n";
  }
  return s + "\n";
}

// ---- loss against training tokens

std::string loss_section(const fs::path& out, const std::map<std::string, json>& ph, const json& settings) {
  if (!ph.contains("train-ar")) return {};
  const json& t = settings["train"];
  const double per_step = num(t, "batch") * num(t, "accum") * num(t, "seq_len");
  Chart c;
  c.title = "Validation loss against training tokens", c.x_label = "training tokens";
  c.y_label = "nats per token (AR: NLL; diffusion: bound)";
  std::vector<std::vector<std::string>> rows;
  for (const char* twin : kTwins) {
    const fs::path log = out / twin / "log.csv";
    if (!fs::exists(log)) continue;
    Series s;
    s.name = twin;
    for (const CurvePoint& p : parse_curve_csv(read_file(log.string()), log.string()))
      if (p.val_loss) s.x.push_back(double(p.step) * per_step), s.y.push_back(*p.val_loss);
    if (s.y.empty()) continue;
    rows.push_back({twin, fmt::format("{}", int64_t(s.x.back())), fmt_num(s.y.back(), 4)});
    c.series.push_back(std::move(s));
  }
  write_file(out / "loss.svg", chart_svg(c));
  return "## Training\n\nBoth twins: the same data, tokens, steps and size (settings in compare.json).\n\n" +
         table({"model", "training tokens", "last validation loss (nats/token)"}, rows) + "![loss](loss.svg)\n\n";
}

// ---- likelihood

std::string likelihood_section(const json& l) {
  std::vector<std::vector<std::string>> rows;
  for (const char* twin : kTwins) {
    const json& f = l[twin];
    const bool bound = f["method"] != "ar";
    rows.push_back({twin, f["method"].get<std::string>(),
                    (bound ? "≤ " : "") + fmt_num(num(f, "nll_per_token"), 4) +
                        (bound ? fmt::format(" ± {:.4f}", num(f, "se_per_token")) : ""),
                    (bound ? "≤ " : "") + fmt_num(num(f, "ppl"), 2), fmt::format("{}", f["tokens"].get<int64_t>())});
  }
  return fmt::format("## Likelihood on held-out text\n\nWindows of {} tokens; the diffusion figure is the ELBO (an upper "
                     "bound on its NLL, {} schedule, Monte-Carlo with one standard error).\n\n",
                     l["window"].get<int>(), l["schedule"].get<std::string>()) +
         table({"model", "estimator", "NLL (nats/token)", "perplexity", "tokens"}, rows);
}

// ---- generation quality

std::string gen_section(const fs::path& out, const json& g) {
  Chart c;
  c.title = "Generation: gen-ppl against unigram entropy (judge: the AR twin)";
  c.x_label = "unigram entropy (nats)", c.y_label = "gen-ppl (judge)", c.log_y = true;
  std::vector<std::vector<std::string>> rows;
  for (const char* twin : kTwins) {
    Series s;
    s.name = fmt::format("{} ({})", twin, g[twin]["sampler"].get<std::string>());
    for (const json& p : g[twin]["points"]) {
      s.x.push_back(num(p, "entropy")), s.y.push_back(num(p, "gen_ppl"));
      s.labels.push_back(fmt::format("T={}", num(p, "temperature")));
      rows.push_back({twin, fmt_num(num(p, "temperature"), 2), fmt_num(num(p, "gen_ppl"), 1),
                      fmt_num(num(p, "entropy"), 2), fmt_num(p["distinct"][3].get<double>(), 3),
                      fmt_num(num(p, "rep4"), 3), fmt_num(num(p, "mauve"), 3), fmt_num(num(p, "exact_match"), 3),
                      fmt_num(num(p, "cer"), 3), fmt_num(num(p, "tokens_per_second"), 0),
                      fmt_num(num(p, "tokens_per_forward"), 2)});
    }
    c.series.push_back(std::move(s));
  }
  const json& ref = g["ar"]["reference"];
  if (ref.is_object()) {
    Series data;
    data.name = "held-out text", data.x = {num(ref, "entropy")}, data.y = {num(ref, "gen_ppl")}, data.line = false;
    c.series.push_back(std::move(data));
    rows.push_back({"held-out text", "", fmt_num(num(ref, "gen_ppl"), 1), fmt_num(num(ref, "entropy"), 2),
                    fmt_num(ref["distinct"][3].get<double>(), 3), fmt_num(num(ref, "rep4"), 3), "", "", "", "", ""});
  }
  write_file(out / "gen_frontier.svg", chart_svg(c));
  return "## Generation quality\n\nSamples continue prompts cut from the held-out text; the AR twin judges both (it "
         "favours its own samples, so read its gen-ppl with that in mind). A low gen-ppl at low entropy or low "
         "distinct-4 is repetition, not quality; MAUVE compares the samples with the true continuations.\n\n" +
         table({"model", "T", "gen-ppl", "entropy", "distinct-4", "rep-4", "MAUVE", "EM", "CER", "tok/s", "tok/fwd"},
               rows) +
         "![gen-ppl against entropy](gen_frontier.svg)\n\n";
}

// ---- tasks and speed

// The decoders a task phase ran: "ar", "diffusion", then "diffusion-SAMPLER" for further samplers.
std::vector<std::string> decoders(const json& t) {
  std::vector<std::string> d;
  for (const auto& [k, v] : t.items()) d.push_back(k);
  return d;
}

std::string task_table(const std::string& task, const json& t) {
  std::vector<std::vector<std::string>> rows;
  for (const std::string& twin : decoders(t))
    for (const json& r : t[twin]["rows"]) {
      std::string extra = r.contains("cer") ? "CER " + fmt_num(num(r, "cer"), 3) : "";
      if (r.contains("no_eos"))
        extra = fmt::format("no EOS {:.2f}, EOS at {:.1f}, repeated 4-grams {:.3f}", num(r, "no_eos"),
                            num(r, "mean_eos_at"), num(r, "repeated_4grams"));
      rows.push_back({twin, r["setting"].get<std::string>(), r["kind"].get<std::string>(),
                      fmt::format("{}", r["n"].get<int>()), task == "length" ? "" : fmt_num(num(r, "accuracy"), 3),
                      extra});
    }
  return table({"model", "setting", "kind", "n", "accuracy", ""}, rows);
}

std::string speed_table(const json& t, Chart& c) {
  std::vector<std::vector<std::string>> rows;
  for (const std::string& twin : decoders(t)) {
    Series s;
    s.name = fmt::format("{} ({})", twin, t[twin]["sampler"].get<std::string>());
    for (const json& p : t[twin]["points"]) {
      if (!p.contains("accuracy")) continue;
      s.x.push_back(num(p, "tokens_per_forward")), s.y.push_back(num(p, "accuracy"));
      s.labels.push_back(p["setting"].get<std::string>());
      s.hollow.push_back(!p["frontier"].get<bool>());
      rows.push_back({twin, p["setting"].get<std::string>(), fmt_num(num(p, "tokens_per_forward"), 2),
                      fmt_num(num(p, "tokens_per_second"), 0), fmt_num(1000 * num(p, "first_token_seconds"), 1),
                      fmt_num(num(p, "accuracy"), 3), p["frontier"].get<bool>() ? "yes" : ""});
    }
    if (!s.x.empty()) c.series.push_back(std::move(s));
  }
  std::string areas;
  for (const std::string& twin : decoders(t))
    if (t[twin].contains("frontier_area"))
      areas += fmt::format("{}: {:.3f}  ", twin, num(t[twin], "frontier_area"));
  return table({"model", "setting", "tok/fwd", "tok/s", "first token (ms)", "accuracy", "frontier"}, rows) +
         "Frontier area (accuracy integrated over tokens per forward): " + areas + "\n\n";
}

std::string tasks_section(const fs::path& out, const std::map<std::string, json>& ph) {
  std::string s = "## Tasks\n\nGenerated from the seed (items in tasks/). AR decodes greedily one token per forward; the "
                  "diffusion twin commits k tokens per step (setting k=…).\n\n";
  BarChart bars;
  bars.title = "Task accuracy (AR, and diffusion at one token per step)", bars.y_label = "accuracy";
  bars.series = {"ar", "diffusion"};
  bars.values.resize(2);
  bars.y_max = 1.0;
  for (const auto& [name, t] : ph) {
    if (!name.starts_with("task-")) continue;
    const std::string task = name.substr(5);
    s += "### " + task + "\n\n" + task_table(task, t);
    if (task == "length") continue;
    Chart c;
    c.title = "Speed against quality: " + task, c.x_label = "tokens per forward pass", c.y_label = "accuracy";
    c.x_include = {0}, c.y_include = {0, 1};
    s += speed_table(t, c);
    write_file(out / ("speed_" + task + ".svg"), chart_svg(c));
    s += fmt::format("![speed/quality {}](speed_{}.svg)\n\n", task, task);
    for (size_t i = 0; i < 2; ++i)
      for (const json& r : t[kTwins[i]]["rows"]) {
        const std::string setting = r["setting"];
        if (setting != "ar" && setting != "k=1") continue;
        const std::string group = task + ": " + r["kind"].get<std::string>();
        auto at = std::find(bars.groups.begin(), bars.groups.end(), group);
        if (at == bars.groups.end()) {
          bars.groups.push_back(group);
          for (auto& v : bars.values) v.push_back(NAN);
          at = bars.groups.end() - 1;
        }
        bars.values[i][size_t(at - bars.groups.begin())] = num(r, "accuracy");
      }
  }
  if (!bars.groups.empty()) {
    write_file(out / "tasks.svg", bar_chart_svg(bars));
    s += "![task accuracy](tasks.svg)\n\n";
  }
  return s;
}

// ---- the plain statements

// The best MAUVE each twin reached over the temperatures, and the gen-ppl it had there.
std::string gen_verdict(const json& g) {
  double best[2] = {-1, -1}, ppl[2] = {NAN, NAN}, temp[2] = {NAN, NAN};
  for (size_t i = 0; i < 2; ++i)
    for (const json& p : g[kTwins[i]]["points"])
      if (num(p, "mauve") > best[i]) best[i] = num(p, "mauve"), ppl[i] = num(p, "gen_ppl"), temp[i] = num(p, "temperature");
  return fmt::format("Generation: best MAUVE AR {:.3f} (T={}, gen-ppl {:.1f}), diffusion {:.3f} (T={}, gen-ppl {:.1f}): "
                     "{}.", best[0], temp[0], ppl[0], best[1], temp[1], ppl[1],
                     best[0] >= best[1] ? "diffusion loses" : "diffusion wins");
}

// Repetition at the longest generation length: AR against diffusion at one token per step.
std::string length_verdict(const json& t) {
  double rep[2] = {NAN, NAN};
  std::string at;
  for (size_t i = 0; i < 2; ++i)
    for (const json& r : t[kTwins[i]]["rows"])
      if (r["setting"] == "ar" || r["setting"] == "k=1") rep[i] = num(r, "repeated_4grams"), at = r["kind"];
  return fmt::format("Long generation ({}): repeated 4-grams AR {:.3f}, diffusion {:.3f}: {}.", at, rep[0], rep[1],
                     rep[0] <= rep[1] ? "diffusion repeats itself more" : "AR repeats itself more");
}

std::string verdicts(const std::map<std::string, json>& ph) {
  std::vector<std::string> v;
  if (ph.contains("likelihood")) {
    const json& l = ph.at("likelihood");
    const double a = num(l["ar"], "ppl"), d = num(l["diffusion"], "ppl");
    v.push_back(a <= d ? fmt::format("Likelihood: AR wins. Its perplexity {:.2f} is below the diffusion bound {:.2f} "
                                     "({:.0f}% higher); the bound is not the diffusion model's exact likelihood, which "
                                     "lies somewhere below it.", a, d, 100 * (d / a - 1))
                       : fmt::format("Likelihood: diffusion's bound {:.2f} is below AR's perplexity {:.2f}.", d, a));
  }
  if (ph.contains("gen")) v.push_back(gen_verdict(ph.at("gen")));
  for (const auto& [name, t] : ph) {
    if (name == "task-length") v.push_back(length_verdict(t));
    if (name.starts_with("task-") && name != "task-length" && t["ar"].contains("frontier_area"))
      v.push_back(fmt::format("{} speed against quality: frontier area AR {:.3f}, diffusion {:.3f} (accuracy × tokens "
                              "per forward; a sampler that keeps its accuracy while committing more tokens per step "
                              "gains area).", name.substr(5), num(t["ar"], "frontier_area"),
                              num(t["diffusion"], "frontier_area")));
    if (!name.starts_with("task-") || name == "task-length") continue;
    for (const json& r : t["diffusion"]["rows"]) {
      if (r["setting"] != "k=1") continue;
      for (const json& q : t["ar"]["rows"])
        if (q["kind"] == r["kind"]) {
          const double a = num(q, "accuracy"), d = num(r, "accuracy");
          v.push_back(fmt::format("{} / {}: AR {:.2f}, diffusion {:.2f}: {}.", name.substr(5),
                                  r["kind"].get<std::string>(), a, d,
                                  a > d ? "diffusion loses" : a < d ? "diffusion wins" : "a tie"));
        }
    }
  }
  std::string s = "## Where each wins\n\n";
  for (const auto& line : v) s += "- " + line + "\n";
  return s + "\n";
}

}  // namespace

void write_report(const fs::path& out, const json& settings, const std::map<std::string, json>& phases,
                  const std::string& command, const std::string& machine) {
  std::string md = "# unmask compare: an AR twin against a diffusion twin\n\n";
  md += fmt::format("Command: `{}`  \nMachine: {}  \nSeed: {}\n\n", command, machine, settings["seed"].get<uint64_t>());
  md += loss_section(out, phases, settings);
  if (phases.contains("likelihood")) md += likelihood_section(phases.at("likelihood"));
  if (phases.contains("gen")) md += gen_section(out, phases.at("gen"));
  md += tasks_section(out, phases);
  md += verdicts(phases);
  write_file(out / "report.md", md);
  json all = {{"command", command}, {"machine", machine}, {"settings", settings}, {"phases", phases}};
  write_file(out / "results.json", all.dump(1) + "\n");
}

}  // namespace unmask
