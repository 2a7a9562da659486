#include "unmask/base/plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "unmask/base/error.h"

namespace unmask {

// ---- numbers and text ----

namespace {

// 10^e, exact for |e| <= 22 (and correctly rounded for negative e there).
double pow10(int e) {
  double p = 1;
  for (int i = 0; i < std::abs(e); ++i) p *= 10;
  return e < 0 ? 1 / p : p;
}

// k × 10^e with one rounding, so that 3 × 10^-1 is the double nearest 0.3.
double scaled(double k, int e) { return e >= 0 ? k * pow10(e) : k / pow10(-e); }

// A tick or value label with at most `digits` significant digits: 0.25, 3, 1.5M, 1e-05.
std::string format_number(double v, int digits) {
  double a = std::abs(v);
  if (v == 0) return "0";
  if (a >= 1e4 && a < 1e15) {
    static const char* const suffix[] = {"k", "M", "G", "T"};
    int i = std::min(3, int(std::floor(std::log10(a) / 3 + 1e-9)) - 1);
    return fmt::format("{:.{}g}{}", v / pow10(3 * (i + 1)), digits, suffix[i]);
  }
  return fmt::format("{:.{}g}", v, digits);
}
std::string tick_text(double v) { return format_number(v, 6); }
std::string value_text(double v) { return format_number(v, 3); }

int code_points(std::string_view s) {
  return int(
      std::count_if(s.begin(), s.end(), [](char ch) { return (static_cast<unsigned char>(ch) & 0xC0) != 0x80; }));
}

// About how wide sans-serif text draws, in pixels.
double text_width(std::string_view s, double font_size) { return 0.6 * font_size * code_points(s); }

// s cut to at most n code points, the last one an ellipsis when cut.
std::string clip(std::string_view s, int n) {
  if (code_points(s) <= n) return std::string(s);
  size_t end = 0;
  for (int kept = 0; end < s.size(); ++end)
    if ((static_cast<unsigned char>(s[end]) & 0xC0) != 0x80 && kept++ == n - 1) break;
  return std::string(s.substr(0, end)) + "…";
}

// Okabe & Ito's palette for colour-blind readers; the yellow, weakest on white, last.
const char* colour(size_t i) {
  static const char* const palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                        "#E69F00", "#56B4E9", "#000000", "#F0E442"};
  return palette[i % 8];
}

}  // namespace

std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += static_cast<unsigned char>(ch) < 0x20 && ch != '\n' && ch != '\t' ? ' ' : ch;
    }
  }
  return out;
}

// ---- ticks ----

std::vector<double> nice_ticks(double lo, double hi, int target) {
  check(std::isfinite(lo) && std::isfinite(hi) && lo <= hi && std::isfinite(hi - lo),
        "nice_ticks: [{}, {}] is not a finite range", lo, hi);
  check(target >= 1, "nice_ticks: target {} intervals, expected at least 1", target);
  if (hi - lo <= 1e-9 * std::max(std::abs(lo), std::abs(hi))) {  // zero width: widen around the value
    double pad = lo == 0 ? 1 : std::abs(lo) * 0.05;
    lo -= pad, hi += pad;
  }
  double raw = (hi - lo) / target;
  int e = int(std::floor(std::log10(raw)));
  double norm = raw / scaled(1, e);  // in [1, 10)
  int m = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
  if (m == 10) m = 1, ++e;
  double step = scaled(m, e);
  double k0 = std::floor(lo / step + 1e-9), k1 = std::ceil(hi / step - 1e-9);
  std::vector<double> ticks;
  for (double k = k0; k <= k1; ++k) ticks.push_back(scaled(k * m, e) + 0.0);  // + 0.0: no -0
  return ticks;
}

std::vector<double> log_ticks(double lo, double hi) {
  check(std::isfinite(lo) && std::isfinite(hi) && lo > 0 && lo <= hi, "log_ticks: [{}, {}] is not a positive range", lo,
        hi);
  int e0 = int(std::floor(std::log10(lo) + 1e-9)), e1 = int(std::ceil(std::log10(hi) - 1e-9));
  if (e1 == e0) ++e1;
  std::vector<double> ticks;
  if (e1 - e0 <= 2) {  // 1, 2, 5 × 10^k, trimmed to the last <= lo and the first >= hi
    for (int e = e0; e <= e1; ++e)
      for (int m : {1, 2, 5}) ticks.push_back(scaled(m, e));
    auto first = std::upper_bound(ticks.begin(), ticks.end(), lo * (1 + 1e-9)) - 1;
    auto last = std::lower_bound(ticks.begin(), ticks.end(), hi * (1 - 1e-9));
    if (last == first) ++last;
    return {first, last + 1};
  }
  int stride = (e1 - e0 + 7) / 8;
  int e = e0 >= 0 ? e0 / stride * stride : -((-e0 + stride - 1) / stride * stride);  // e0 rounded down
  for (;; e += stride) {
    ticks.push_back(scaled(1, e));
    if (e >= e1) break;
  }
  return ticks;
}

// ---- layout ----

namespace {

constexpr double kTickFont = 11, kLabelFont = 12, kTitleFont = 15, kLegendFont = 12, kPointFont = 10;
constexpr int kLegendChars = 24;  // longer legend entries are clipped

// The plot area in pixels; y grows downward.
struct Box {
  double left, top, right, bottom;
  double w() const { return right - left; }
  double h() const { return bottom - top; }
};

// One axis: its range is its first and last tick.
struct Scale {
  std::vector<double> ticks;
  bool log = false;
  double lo() const { return ticks.front(); }
  double hi() const { return ticks.back(); }
  // 0 at the first tick, 1 at the last.
  double frac(double v) const {
    return log ? (std::log10(v) - std::log10(lo())) / (std::log10(hi()) - std::log10(lo()))
               : (v - lo()) / (hi() - lo());
  }
};

// An axis over the values (finite, positive when log); [0, 1] ([1, 10] when log) without any.
Scale make_scale(const std::vector<double>& values, bool log, int target) {
  if (values.empty()) return {log ? std::vector<double>{1, 10} : std::vector<double>{0, 0.5, 1}, log};
  auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  return {log ? log_ticks(*lo, *hi) : nice_ticks(*lo, *hi, target), log};
}

// About one y tick per 50 pixels of height, one x tick per 90 of width.
int y_target(int height) { return std::clamp((height - 100) / 50, 2, 10); }
int x_target(double plot_width) { return std::clamp(int(plot_width / 90), 2, 10); }

double px(const Box& b, const Scale& s, double v) { return b.left + s.frac(v) * b.w(); }
double py(const Box& b, const Scale& s, double v) { return b.bottom - s.frac(v) * b.h(); }

double widest_tick(const Scale& s) {
  double w = 0;
  for (double t : s.ticks) w = std::max(w, text_width(tick_text(t), kTickFont));
  return w;
}

// What surrounds the plot area, in pixels beyond a fixed border: the y label and tick labels (left), the legend
// (right), what stands above it besides the title (bar values), and the tick labels and x label under it (below).
struct Edges {
  double left, right, above, below;
};

double left_edge(bool y_label, const Scale& sy) { return (y_label ? 22 : 0) + widest_tick(sy); }

Box make_box(int width, int height, const std::string& title, const Edges& e) {
  Box b{18 + e.left, (title.empty() ? 16.0 : 40.0) + e.above, width - 16.0 - e.right, height - 8.0 - e.below};
  check(b.w() >= 40 && b.h() >= 40, "chart '{}': {}x{} pixels leave no room for the plot", title, width, height);
  return b;
}

// ---- drawing ----

std::string svg_open(int width, int height, const std::string& title) {
  std::string s = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" font-family=\"sans-serif\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      width, height);
  if (!title.empty())
    s += fmt::format("<text class=\"title\" x=\"{:.1f}\" y=\"24\" font-size=\"{}\" text-anchor=\"middle\">{}</text>\n",
                     width / 2.0, kTitleFont, xml_escape(title));
  return s;
}

// Horizontal grid lines with their tick labels, the frame, and the y label turned on its side.
std::string y_axis(const Box& b, const Scale& s, const std::string& label) {
  std::string out;
  for (double t : s.ticks)
    out += fmt::format(
        "<line x1=\"{0:.1f}\" x2=\"{1:.1f}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"#e4e4e4\"/>"
        "<text x=\"{3:.1f}\" y=\"{4:.1f}\" font-size=\"{5}\" text-anchor=\"end\">{6}</text>\n",
        b.left, b.right, py(b, s, t), b.left - 5, py(b, s, t) + 4, kTickFont, tick_text(t));
  out += fmt::format(
      "<rect class=\"frame\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"none\" "
      "stroke=\"#888\"/>\n",
      b.left, b.top, b.w(), b.h());
  if (!label.empty()) {
    double x = 18, y = (b.top + b.bottom) / 2;
    out += fmt::format(
        "<text x=\"{0:.1f}\" y=\"{1:.1f}\" font-size=\"{2}\" text-anchor=\"middle\" "
        "transform=\"rotate(-90 {0:.1f} {1:.1f})\">{3}</text>\n",
        x, y, kLabelFont, xml_escape(label));
  }
  return out;
}

// Vertical grid lines with their tick labels, and the x label under them.
std::string x_axis(const Box& b, const Scale& s, const std::string& label) {
  std::string out;
  for (double t : s.ticks)
    out += fmt::format(
        "<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1:.1f}\" y2=\"{2:.1f}\" stroke=\"#e4e4e4\"/>"
        "<text x=\"{0:.1f}\" y=\"{3:.1f}\" font-size=\"{4}\" text-anchor=\"middle\">{5}</text>\n",
        px(b, s, t), b.top, b.bottom, b.bottom + 16, kTickFont, tick_text(t));
  if (!label.empty())
    out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"{}\" text-anchor=\"middle\">{}</text>\n",
                       (b.left + b.right) / 2, b.bottom + 36, kLabelFont, xml_escape(label));
  return out;
}

std::string marker(double x, double y, const char* col, bool hollow) {
  if (hollow)
    return fmt::format(
        "<circle class=\"marker hollow\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.5\" fill=\"white\" stroke=\"{}\" "
        "stroke-width=\"1.5\"/>\n",
        x, y, col);
  return fmt::format("<circle class=\"marker\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.5\" fill=\"{}\"/>\n", x, y, col);
}

struct LegendEntry {
  std::string name;
  const char* col;
  bool line, marker, bar;
};

double legend_width(const std::vector<LegendEntry>& entries) {
  double w = 0;
  for (const auto& e : entries) w = std::max(w, text_width(clip(e.name, kLegendChars), kLegendFont));
  return w > 0 ? w + 40 : 0;
}

// The legend, right of the plot area, one entry per line.
std::string legend(const Box& b, const std::vector<LegendEntry>& entries) {
  std::string out;
  double x = b.right + 14, y = b.top + 8;
  for (const auto& e : entries) {
    if (e.name.empty()) continue;
    if (e.bar)
      out +=
          fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"12\" height=\"10\" fill=\"{}\"/>", x + 3, y - 5, e.col);
    if (e.line)
      out += fmt::format(
          "<line x1=\"{0:.1f}\" x2=\"{1:.1f}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"{3}\" stroke-width=\"2\"/>", x,
          x + 18, y, e.col);
    if (e.marker) out += marker(x + 9, y, e.col, false);
    out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"{}\">{}</text>\n", x + 24, y + 4, kLegendFont,
                       xml_escape(clip(e.name, kLegendChars)));
    y += 18;
  }
  return out;
}

// ---- x/y charts ----

bool finite_point(const Series& s, size_t i) { return std::isfinite(s.x[i]) && std::isfinite(s.y[i]); }
bool is_hollow(const Series& s, size_t i) { return !s.hollow.empty() && s.hollow[i]; }

void check_series(const Chart& c, const Series& s) {
  check(s.x.size() == s.y.size(), "chart '{}': series '{}' has {} x values and {} y values", c.title, s.name,
        s.x.size(), s.y.size());
  check(s.labels.empty() || s.labels.size() == s.x.size(), "chart '{}': series '{}' has {} labels for {} points",
        c.title, s.name, s.labels.size(), s.x.size());
  check(s.hollow.empty() || s.hollow.size() == s.x.size(), "chart '{}': series '{}' has {} hollow flags for {} points",
        c.title, s.name, s.hollow.size(), s.x.size());
  for (size_t i = 0; i < s.x.size(); ++i) {
    if (!finite_point(s, i)) continue;
    check(!c.log_x || s.x[i] > 0, "chart '{}': series '{}' has x = {} at point {}; a log axis needs x > 0", c.title,
          s.name, s.x[i], i);
    check(!c.log_y || s.y[i] > 0, "chart '{}': series '{}' has y = {} at point {}; a log axis needs y > 0", c.title,
          s.name, s.y[i], i);
  }
}

// The series' lines: polylines through its filled points, broken where a point is not finite.
std::string series_lines(const Box& b, const Scale& sx, const Scale& sy, const Series& s, const char* col) {
  std::string out, pts;
  int n = 0;
  auto flush = [&] {
    if (n >= 2)
      out += fmt::format(
          "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" stroke-linejoin=\"round\" points=\"{}\"/>\n", col,
          s.line_width, pts);
    pts.clear(), n = 0;
  };
  for (size_t i = 0; i < s.x.size(); ++i) {
    if (!finite_point(s, i)) flush();
    if (!finite_point(s, i) || is_hollow(s, i)) continue;
    pts += fmt::format("{}{:.1f},{:.1f}", n ? " " : "", px(b, sx, s.x[i]), py(b, sy, s.y[i])), ++n;
  }
  flush();
  return out;
}

std::string series_points(const Box& b, const Scale& sx, const Scale& sy, const Series& s, const char* col) {
  std::string out;
  for (size_t i = 0; i < s.x.size(); ++i) {
    if (!finite_point(s, i)) continue;
    double x = px(b, sx, s.x[i]), y = py(b, sy, s.y[i]);
    if (s.markers) out += marker(x, y, col, is_hollow(s, i));
    if (!s.labels.empty() && !s.labels[i].empty())
      out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"{}\" fill=\"{}\">{}</text>\n", x + 5, y - 5,
                         kPointFont, col, xml_escape(s.labels[i]));
  }
  return out;
}

}  // namespace

std::string chart_svg(const Chart& c) {
  std::vector<double> xs, ys;
  std::vector<LegendEntry> entries;
  for (size_t k = 0; k < c.series.size(); ++k) {
    const Series& s = c.series[k];
    check_series(c, s);
    for (size_t i = 0; i < s.x.size(); ++i)
      if (finite_point(s, i)) xs.push_back(s.x[i]), ys.push_back(s.y[i]);
    entries.push_back({s.name, colour(k), s.line, s.markers, false});
  }
  xs.insert(xs.end(), c.x_include.begin(), c.x_include.end());
  ys.insert(ys.end(), c.y_include.begin(), c.y_include.end());
  Scale sy = make_scale(ys, c.log_y, y_target(c.height));
  Box b = make_box(c.width, c.height, c.title,
                   {left_edge(!c.y_label.empty(), sy), legend_width(entries), 0, c.x_label.empty() ? 22.0 : 40.0});
  Scale sx = make_scale(xs, c.log_x, x_target(b.w()));
  std::string out = svg_open(c.width, c.height, c.title) + y_axis(b, sy, c.y_label) + x_axis(b, sx, c.x_label);
  for (size_t k = 0; k < c.series.size(); ++k)
    if (c.series[k].line) out += series_lines(b, sx, sy, c.series[k], colour(k));
  for (size_t k = 0; k < c.series.size(); ++k) out += series_points(b, sx, sy, c.series[k], colour(k));
  return out + legend(b, entries) + "</svg>\n";
}

// ---- bar charts ----

namespace {

constexpr int kGroupChars = 32;  // longer group labels are clipped
constexpr double kTurn = 40;     // degrees by which group labels turn when they do not fit

void check_bars(const BarChart& b) {
  check(b.values.size() == b.series.size(), "bar chart '{}': {} rows of values for {} series", b.title, b.values.size(),
        b.series.size());
  for (size_t k = 0; k < b.values.size(); ++k)
    check(b.values[k].size() == b.groups.size(), "bar chart '{}': series '{}' has {} values for {} groups", b.title,
          b.series[k], b.values[k].size(), b.groups.size());
}

// The y axis: from 0 (or the smallest value) to the largest value, or y_max when that is higher.
Scale bar_scale(const BarChart& b) {
  std::vector<double> vs = {0};
  if (b.y_max && std::isfinite(*b.y_max)) vs.push_back(*b.y_max);
  for (const auto& row : b.values)
    for (double v : row)
      if (std::isfinite(v)) vs.push_back(v);
  return make_scale(vs, false, y_target(b.height));
}

// How far the group labels reach below the axis when they run across (`turned` false) or turned.
double group_label_depth(const BarChart& b, double group_w, bool& turned) {
  double w = 0;
  for (const auto& g : b.groups) w = std::max(w, text_width(clip(g, kGroupChars), kTickFont));
  turned = w > group_w - 4;
  return turned ? w * std::sin(kTurn * std::numbers::pi / 180) + kTickFont + 8 : kTickFont + 10;
}

std::string group_labels(const Box& box, const BarChart& b, bool turned) {
  std::string out;
  double gw = box.w() / b.groups.size();
  for (size_t g = 0; g < b.groups.size(); ++g) {
    double x = box.left + (g + 0.5) * gw, y = box.bottom + 16;
    std::string text = xml_escape(clip(b.groups[g], kGroupChars));
    if (turned)
      out += fmt::format(
          "<text class=\"group\" x=\"{0:.1f}\" y=\"{1:.1f}\" font-size=\"{2}\" text-anchor=\"end\" "
          "transform=\"rotate(-{3} {0:.1f} {1:.1f})\">{4}</text>\n",
          x + 4, y - 4, kTickFont, kTurn, text);
    else
      out += fmt::format(
          "<text class=\"group\" x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"{}\" text-anchor=\"middle\">{}</text>\n", x, y,
          kTickFont, text);
  }
  return out;
}

// How bar values are written: as large a font as fits across the bars (8 to 10 pixels), else upright.
struct ValueStyle {
  double font;  // pixels
  bool upright;
  int chars;              // of the longest value
  double height() const;  // how far the values reach above the bars
};

ValueStyle value_style(const BarChart& b, double bar_w) {
  int chars = 1;
  for (const auto& row : b.values)
    for (double v : row)
      if (std::isfinite(v)) chars = std::max(chars, code_points(value_text(v)));
  double font = std::min(kPointFont, (bar_w + 4) / (0.6 * chars));
  return font >= 8 ? ValueStyle{font, false, chars} : ValueStyle{kPointFont, true, chars};
}

double ValueStyle::height() const { return (upright ? 0.6 * font * chars : font) + 6; }

// One bar with its value above it (below it when negative), or "n/a" where it is missing.
std::string bar(const Box& box, const Scale& sy, double x, double w, double v, const char* col, const ValueStyle& vs) {
  double y0 = py(box, sy, 0), cx = x + w / 2;
  if (!std::isfinite(v))
    return fmt::format(
        "<text class=\"value\" x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"{:.1f}\" fill=\"#777\" "
        "text-anchor=\"middle\">n/a</text>\n",
        cx, y0 - 4, vs.font);
  double y1 = py(box, sy, v);
  std::string out =
      fmt::format("<rect class=\"bar\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"/>", x,
                  std::min(y0, y1), w, std::abs(y1 - y0), col);
  if (!vs.upright)
    return out + fmt::format(
                     "<text class=\"value\" x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"{:.1f}\" "
                     "text-anchor=\"middle\">{}</text>\n",
                     cx, v >= 0 ? y1 - 4 : y1 + vs.font + 2, vs.font, value_text(v));
  return out + fmt::format(
                   "<text class=\"value\" x=\"{0:.1f}\" y=\"{1:.1f}\" font-size=\"{2:.1f}\" text-anchor=\"{3}\" "
                   "transform=\"rotate(-90 {0:.1f} {1:.1f})\">{4}</text>\n",
                   cx + 0.35 * vs.font, v >= 0 ? y1 - 3 : y1 + 3, vs.font, v >= 0 ? "start" : "end", value_text(v));
}

}  // namespace

std::string bar_chart_svg(const BarChart& b) {
  check_bars(b);
  std::vector<LegendEntry> entries;
  for (size_t k = 0; k < b.series.size(); ++k) entries.push_back({b.series[k], colour(k), false, false, true});
  Scale sy = bar_scale(b);
  // The width does not depend on what stands above or below the plot area: find it first, then the bar width, the
  // style of the values and whether the group labels fit.
  Edges e{left_edge(!b.y_label.empty(), sy), legend_width(entries), 0, 0};
  size_t groups = std::max<size_t>(1, b.groups.size());
  double gw = make_box(b.width, b.height, b.title, e).w() / groups,
         bw = gw * 0.8 / std::max<size_t>(1, b.series.size());
  ValueStyle vs = value_style(b, bw);
  bool turned = false;
  e.above = vs.height(), e.below = group_label_depth(b, gw, turned);
  Box box = make_box(b.width, b.height, b.title, e);
  std::string out = svg_open(b.width, b.height, b.title) + y_axis(box, sy, b.y_label);
  if (!b.groups.empty()) out += group_labels(box, b, turned);
  for (size_t g = 0; g < b.groups.size(); ++g)
    for (size_t k = 0; k < b.series.size(); ++k)
      out += bar(box, sy, box.left + g * gw + gw * 0.1 + k * bw, bw, b.values[k][g], colour(k), vs);
  return out + legend(box, entries) + "</svg>\n";
}

}  // namespace unmask
