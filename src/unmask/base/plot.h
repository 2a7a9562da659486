// SVG charts for reports (`unmask compare`, the training curve): x/y charts with lines, markers and point labels, and
// grouped bar charts. Each is one self-contained SVG 1.1 document; every text is XML-escaped.
//
//   Chart c;
//   c.title = "gen-ppl against entropy", c.x_label = "entropy (nats)", c.y_label = "gen-ppl";
//   c.series.push_back({.name = "llada", .x = {5.1, 5.4, 5.6}, .y = {30, 45, 80}, .labels = {"T=0.7", "T=1", "T=2"}});
//   write_text(dir / "frontier.svg", chart_svg(c));
//
// Axes run over "nice" ticks that cover the data: steps of 1, 2 or 5 × 10^k, or powers of ten on a log axis, so
// the smallest tick lands on the left (bottom) edge of the plot area and the largest on the right (top) edge.
// Points with a non-finite coordinate are skipped; a log axis refuses zero and negative values.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace unmask {

struct Series {
  std::string name;                 // legend entry; an empty name has none
  std::vector<double> x, y;         // (n), (n)
  std::vector<std::string> labels;  // empty or (n): drawn beside each point ("T=0.7")
  bool line = true, markers = true;
  // Empty or (n): points drawn as outlines (dominated points). When given, the line joins only the filled points,
  // in the order given: a frontier through the non-dominated points, the others as hollow markers around it.
  std::vector<bool> hollow;
  double line_width = 1.5;  // pixels
};

struct Chart {
  std::string title, x_label, y_label;
  bool log_x = false, log_y = false;
  std::vector<Series> series;     // coloured in order from a fixed colour-blind-safe palette (Okabe-Ito)
  std::vector<double> x_include, y_include;  // values the axes cover besides the data ({0, 1} for an accuracy)
  int width = 640, height = 400;  // pixels
};

// Throws when a series' lengths differ, or when a log axis meets a value <= 0 (naming the series and the value).
std::string chart_svg(const Chart& c);

struct BarChart {
  std::string title, y_label;
  std::vector<std::string> groups;          // x categories (task rows); labels rotate when they do not fit
  std::vector<std::string> series;          // one bar per series in each group (models)
  std::vector<std::vector<double>> values;  // (series, groups); NaN = missing: no bar, "n/a"
  std::optional<double> y_max;              // the top of the axis at least (1.0 for accuracies)
  int width = 640, height = 400;            // pixels
};

// Bars start at 0; each prints its value above it. Throws when values is not (series, groups).
std::string bar_chart_svg(const BarChart& b);

// Ticks covering [lo, hi]: consecutive multiples of a step of 1, 2 or 5 × 10^k, about `target` intervals, the
// first <= lo and the last >= hi. A zero-width range is widened around its value (5%, or ±1 around 0).
std::vector<double> nice_ticks(double lo, double hi, int target = 5);
// Ticks covering [lo, hi] (0 < lo <= hi) on a log axis: powers of ten (every k-th when that gives more than 8), or
// 1, 2, 5 × 10^k when the range spans at most two decades.
std::vector<double> log_ticks(double lo, double hi);
// Text for an XML text node or attribute value: & < > " ' as entities, control characters as spaces.
std::string xml_escape(std::string_view s);

}  // namespace unmask
