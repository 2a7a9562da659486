// SVG charts (unmask/base/plot.h): nice ticks on linear and log axes, well-formed XML for ordinary and awkward input
// (checked by a small tag-balancing reader below, itself shown to reject broken XML), points at the pixels the axes
// put them, escaping, hollow markers and the frontier line, refusals, bars with missing values, and the training
// curve drawn through chart_svg.
#include "unmask/base/plot.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "unmask/base/error.h"
#include "unmask/train/curve.h"

namespace unmask {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

bool entity_at(const std::string& s, size_t i) {
  for (const char* e : {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"})
    if (s.compare(i, std::strlen(e), e) == 0) return true;
  return false;
}

// Where s stops being well-formed XML, or "" when it is: one root, tags balanced, attribute values quoted, '<' only
// as markup and '&' only as an entity.
std::string xml_problem(const std::string& s) {
  std::vector<std::string> open;
  bool root_seen = false;
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '&' && !entity_at(s, i)) return "bare & at " + std::to_string(i);
    if (s[i] != '<') {
      if (open.empty() && !std::isspace(static_cast<unsigned char>(s[i])))
        return "text outside the root at " + std::to_string(i);
      ++i;
      continue;
    }
    if (s.compare(i, 2, "<?") == 0) {
      size_t e = s.find("?>", i);
      if (e == std::string::npos || root_seen) return "bad processing instruction at " + std::to_string(i);
      i = e + 2;
      continue;
    }
    size_t j = i + 1;
    for (char quote = 0; j < s.size() && (quote || s[j] != '>'); ++j) {
      if (s[j] == '<') return "< inside a tag at " + std::to_string(j);
      if (quote && s[j] == '&' && !entity_at(s, j)) return "bare & in an attribute at " + std::to_string(j);
      if (s[j] == '"' || s[j] == '\'') quote = !quote ? s[j] : quote == s[j] ? 0 : quote;
      if (!quote && s[j] == '=' && j + 1 < s.size() && s[j + 1] != '"' && s[j + 1] != '\'')
        return "unquoted attribute at " + std::to_string(j);
    }
    if (j >= s.size()) return "unterminated tag at " + std::to_string(i);
    std::string tag = s.substr(i + 1, j - i - 1);
    i = j + 1;
    bool closing = !tag.empty() && tag[0] == '/', self = !tag.empty() && tag.back() == '/';
    std::string name = tag.substr(closing, tag.find_first_of(" \t\n/", closing) - closing);
    if (name.empty()) return "tag without a name before " + std::to_string(i);
    if (closing) {
      if (open.empty() || open.back() != name) return "</" + name + "> does not close the open tag";
      open.pop_back();
    } else if (open.empty() && root_seen) {
      return "a second root <" + name + ">";
    } else if (!self) {
      open.push_back(name);
    }
    root_seen = true;
  }
  if (!open.empty()) return "<" + open.back() + "> is never closed";
  return root_seen ? "" : "no root element";
}

// The attributes of every <name ...> tag in svg, in order.
std::vector<std::map<std::string, std::string>> tags(const std::string& svg, const std::string& name) {
  std::vector<std::map<std::string, std::string>> out;
  for (size_t i = svg.find("<" + name + " "); i != std::string::npos; i = svg.find("<" + name + " ", i + 1)) {
    std::map<std::string, std::string> attrs;
    size_t end = svg.find('>', i);
    for (size_t eq = svg.find("=\"", i); eq < end; eq = svg.find("=\"", eq + 2)) {
      size_t key = svg.rfind(' ', eq) + 1, close = svg.find('"', eq + 2);
      attrs[svg.substr(key, eq - key)] = svg.substr(eq + 2, close - eq - 2);
      eq = close - 1;
    }
    out.push_back(attrs);
  }
  return out;
}

double num(const std::map<std::string, std::string>& attrs, const std::string& key) {
  auto it = attrs.find(key);
  return it == attrs.end() ? kNaN : std::stod(it->second);
}

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (size_t i = s.find(what); i != std::string::npos; i = s.find(what, i + 1)) ++n;
  return n;
}

Series series(std::string name, std::vector<double> x, std::vector<double> y) {
  Series s;
  s.name = std::move(name), s.x = std::move(x), s.y = std::move(y);
  return s;
}

Chart chart(std::vector<Series> ss, std::string title = "t") {
  Chart c;
  c.title = std::move(title), c.x_label = "x", c.y_label = "y", c.series = std::move(ss);
  return c;
}

std::string thrown(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(PlotXml, CheckerRejectsBrokenXml) {
  EXPECT_EQ(xml_problem("<svg><g a=\"1\"/><text>1 &lt; 2</text></svg>"), "");
  EXPECT_NE(xml_problem("<svg><g></svg>"), "");
  EXPECT_NE(xml_problem("<svg><text>a & b</text></svg>"), "");
  EXPECT_NE(xml_problem("<svg><text>1 < 2</text></svg>"), "");
  EXPECT_NE(xml_problem("<svg a=\"<\"/>"), "");
  EXPECT_NE(xml_problem("<svg a=1/>"), "");
  EXPECT_NE(xml_problem("<svg/><svg/>"), "");
  EXPECT_NE(xml_problem("<svg>"), "");
}

TEST(PlotTicks, StepsOfOneTwoFive) {
  using V = std::vector<double>;
  EXPECT_EQ(nice_ticks(0, 1), (V{0, 0.2, 0.4, 0.6, 0.8, 1}));
  EXPECT_EQ(nice_ticks(0, 10), (V{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(nice_ticks(2.13, 4.5), (V{2, 2.5, 3, 3.5, 4, 4.5}));
  EXPECT_EQ(nice_ticks(0, 3000), (V{0, 500, 1000, 1500, 2000, 2500, 3000}));
  EXPECT_EQ(nice_ticks(-3, 7), (V{-4, -2, 0, 2, 4, 6, 8}));
  EXPECT_EQ(nice_ticks(0.31, 0.74, 4), (V{0.3, 0.4, 0.5, 0.6, 0.7, 0.8}));
  EXPECT_EQ(nice_ticks(1e6, 9e6), (V{0, 2e6, 4e6, 6e6, 8e6, 1e7}));
}

TEST(PlotTicks, CoverEveryRangeWithARoundStep) {
  double lo = -0.0371;
  for (double width : {1e-7, 0.003, 0.9, 7.0, 130.0, 4.4e5, 2e9}) {
    for (int target : {2, 5, 9}) {
      auto t = nice_ticks(lo, lo + width, target);
      ASSERT_GE(t.size(), 2u);
      double step = t[1] - t[0], slack = 1e-9 * step;  // nice_ticks forgives a billionth of a step
      EXPECT_LE(t.front(), lo + slack) << "width " << width;
      EXPECT_GE(t.back(), lo + width - slack) << "width " << width;
      double mantissa = step / std::pow(10, std::floor(std::log10(step)));
      EXPECT_TRUE(std::abs(mantissa - 1) < 1e-6 || std::abs(mantissa - 2) < 1e-6 || std::abs(mantissa - 5) < 1e-6)
          << "width " << width << ": step " << step;
      EXPECT_LE(int(t.size()) - 1, 2 * target + 1) << "width " << width << ", target " << target;
      for (size_t i = 1; i < t.size(); ++i) EXPECT_NEAR(t[i] - t[i - 1], step, step * 1e-9);
    }
  }
}

TEST(PlotTicks, ZeroWidthRangeIsWidened) {
  for (double v : {0.0, 5.0, -0.25, 1e9}) {
    auto t = nice_ticks(v, v);
    ASSERT_GE(t.size(), 2u) << v;
    EXPECT_LT(t.front(), v);
    EXPECT_GT(t.back(), v);
  }
  EXPECT_THROW(nice_ticks(1, 0), Error);
  EXPECT_THROW(nice_ticks(0, kInf), Error);
}

TEST(PlotTicks, LogAxesUseDecades) {
  using V = std::vector<double>;
  EXPECT_EQ(log_ticks(1, 1000), (V{1, 10, 100, 1000}));
  EXPECT_EQ(log_ticks(0.5, 2e4), (V{0.1, 1, 10, 100, 1e3, 1e4, 1e5}));
  EXPECT_EQ(log_ticks(1e-3, 1e6), (V{1e-4, 1e-2, 1, 1e2, 1e4, 1e6}));  // every other decade beyond 8
  EXPECT_EQ(log_ticks(3, 40), (V{2, 5, 10, 20, 50}));                  // 1-2-5 within two decades
  EXPECT_EQ(log_ticks(10, 10), (V{10, 20}));
  EXPECT_THROW(log_ticks(0, 1), Error);
  EXPECT_THROW(log_ticks(-1, 1), Error);
}

TEST(PlotChart, IsWellFormedForAwkwardInput) {
  std::string long_name(300, 'n');
  std::vector<Chart> charts = {
      chart({}),
      chart({series("empty", {}, {})}),
      chart({series("one point", {3}, {0.5})}),
      chart({series("flat", {1, 2, 3}, {7, 7, 7})}),
      chart({series("same point", {2, 2}, {7, 7})}),
      chart({series("gaps", {0, kNaN, 2, 3, kInf}, {1, 2, kNaN, 4, 5})}),
      chart({series(long_name, {0, 1}, {0, 1}), series("", {1, 2}, {3, 4})}, long_name),
      chart({series("é ü 東京", {1e-9, 2e-9}, {1e12, 3e12})}),
  };
  charts.back().log_x = charts.back().log_y = true;
  for (size_t i = 0; i < charts.size(); ++i) {
    std::string svg = chart_svg(charts[i]);
    EXPECT_EQ(xml_problem(svg), "") << "chart " << i << ":\n" << svg;
    EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  }
  EXPECT_EQ(count(chart_svg(charts[5]), "class=\"marker\""), 2 + 1);  // the two finite points, and the legend
}

TEST(PlotChart, PointsLandWhereTheAxesPutThem) {
  for (bool log : {false, true}) {
    Chart c = chart({series("", log ? std::vector<double>{1, 10, 100} : std::vector<double>{0, 5, 10},
                            log ? std::vector<double>{1, 10, 100} : std::vector<double>{0, 0.5, 1})});
    c.log_x = c.log_y = log;
    std::string svg = chart_svg(c);
    auto frame = tags(svg, "rect")[1];  // after the background
    ASSERT_EQ(frame["class"], "frame");
    double left = num(frame, "x"), top = num(frame, "y"), right = left + num(frame, "width"),
           bottom = top + num(frame, "height");
    auto m = tags(svg, "circle");
    ASSERT_EQ(m.size(), 3u);
    double tol = 0.051;  // coordinates are written to 0.1 pixel
    EXPECT_NEAR(num(m[0], "cx"), left, tol) << "log " << log;
    EXPECT_NEAR(num(m[0], "cy"), bottom, tol);
    EXPECT_NEAR(num(m[1], "cx"), (left + right) / 2, tol);
    EXPECT_NEAR(num(m[1], "cy"), (top + bottom) / 2, tol);
    EXPECT_NEAR(num(m[2], "cx"), right, tol);
    EXPECT_NEAR(num(m[2], "cy"), top, tol);
  }
}

TEST(PlotChart, EscapesText) {
  Series s = series("<model & \"co\">", {0, 1}, {0, 1});
  s.labels = {"T<1", "a&b"};
  Chart c = chart({s}, "loss < 2 & \"ppl\"");
  c.x_label = "x's";
  std::string svg = chart_svg(c);
  EXPECT_EQ(xml_problem(svg), "") << svg;
  for (const char* want :
       {"loss &lt; 2 &amp; &quot;ppl&quot;", "&lt;model &amp; &quot;co&quot;&gt;", "T&lt;1", "a&amp;b", "x&apos;s"})
    EXPECT_NE(svg.find(want), std::string::npos) << want;
  EXPECT_EQ(svg.find("loss < 2"), std::string::npos);
  EXPECT_EQ(xml_escape("a\x01<"), "a &lt;");
}

TEST(PlotChart, DominatedPointsAreHollowAndOffTheFrontierLine) {
  Series s = series("sampler", {1, 2, 3, 4}, {0.9, 0.6, 0.8, 0.5});
  s.hollow = {false, true, false, false};
  s.labels = {"k=1", "k=2", "k=3", "k=4"};
  std::string svg = chart_svg(chart({s}));
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_EQ(count(svg, "class=\"marker hollow\""), 1);
  EXPECT_EQ(count(svg, "class=\"marker\""), 3 + 1);  // and one in the legend
  auto lines = tags(svg, "polyline");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(count(lines[0]["points"], ","), 3) << lines[0]["points"];
  for (const char* label : {">k=1<", ">k=2<", ">k=4<"}) EXPECT_NE(svg.find(label), std::string::npos);
}

TEST(PlotChart, LogAxisRefusesNonPositiveValues) {
  Chart c = chart({series("fine", {1, 2}, {1, 2}), series("sampler B", {3, 0}, {1, 2})});
  c.log_x = true;
  std::string msg = thrown([&] { chart_svg(c); });
  EXPECT_NE(msg.find("sampler B"), std::string::npos) << msg;
  EXPECT_NE(msg.find("x = 0"), std::string::npos) << msg;
  c.log_x = false, c.log_y = true, c.series[1].y = {-2, 1};
  msg = thrown([&] { chart_svg(c); });
  EXPECT_NE(msg.find("y = -2"), std::string::npos) << msg;
  c.series[1].y = {kNaN, 1};  // skipped, not refused
  EXPECT_EQ(thrown([&] { chart_svg(c); }), "");
  c.series[1].y = {1};
  EXPECT_NE(thrown([&] { chart_svg(c); }), "");  // lengths differ
}

BarChart bars(std::vector<std::string> groups, std::vector<std::vector<double>> values) {
  BarChart b;
  b.title = "accuracy", b.y_label = "accuracy", b.groups = std::move(groups), b.values = std::move(values);
  for (size_t k = 0; k < b.values.size(); ++k) b.series.push_back("model " + std::to_string(k));
  return b;
}

TEST(PlotBars, MissingValuesPrintNa) {
  BarChart b = bars({"reversal", "infill"}, {{0.5, kNaN}, {0.25, 0.75}});
  b.y_max = 1.0;
  std::string svg = bar_chart_svg(b);
  EXPECT_EQ(xml_problem(svg), "") << svg;
  EXPECT_EQ(count(svg, ">n/a<"), 1);
  EXPECT_EQ(count(svg, "class=\"bar\""), 3);
  for (const char* v : {">0.5<", ">0.25<", ">0.75<"}) EXPECT_NE(svg.find(v), std::string::npos) << v;
}

TEST(PlotBars, HeightsFollowTheValues) {
  BarChart b = bars({"a", "b"}, {{0.5, 1.0}});
  b.y_max = 1.0;
  std::string svg = bar_chart_svg(b);
  auto frame = tags(svg, "rect")[1];
  ASSERT_EQ(frame["class"], "frame");
  auto r = tags(svg, "rect");
  std::vector<std::map<std::string, std::string>> bar_rects;
  for (auto& t : r)
    if (t["class"] == "bar") bar_rects.push_back(t);
  ASSERT_EQ(bar_rects.size(), 2u);
  double h = num(frame, "height"), bottom = num(frame, "y") + h;
  EXPECT_NEAR(num(bar_rects[0], "height"), h / 2, 0.1);
  EXPECT_NEAR(num(bar_rects[1], "height"), h, 0.1);
  EXPECT_NEAR(num(bar_rects[0], "y") + num(bar_rects[0], "height"), bottom, 0.1);
  EXPECT_LT(num(bar_rects[0], "x"), num(bar_rects[1], "x"));
}

TEST(PlotBars, LongGroupLabelsTurn) {
  auto turned = [](const std::string& svg) {
    int n = 0;
    for (auto& t : tags(svg, "text"))
      if (t["class"] == "group") n += t.count("transform") ? 1 : 0;
    return n;
  };
  std::string short_svg = bar_chart_svg(bars({"a", "b", "c"}, {{1, 2, 3}}));
  EXPECT_EQ(turned(short_svg), 0);
  std::vector<std::string> groups(8, "a rather long task row name");
  std::string long_svg = bar_chart_svg(bars(groups, {std::vector<double>(8, 0.5), std::vector<double>(8, -0.5)}));
  EXPECT_EQ(xml_problem(long_svg), "");
  EXPECT_EQ(turned(long_svg), 8);
}

TEST(PlotBars, EdgeCasesAndRefusals) {
  for (const BarChart& b :
       {bars({}, {}), bars({"g"}, {}), bars({}, {{}, {}}), bars({"a", "b"}, {{kNaN, kNaN}}), bars({"<&>"}, {{1e6}})})
    EXPECT_EQ(xml_problem(bar_chart_svg(b)), "");
  EXPECT_NE(bar_chart_svg(bars({"<&>"}, {{1e6}})).find("&lt;&amp;&gt;"), std::string::npos);
  EXPECT_THROW(bar_chart_svg(bars({"a", "b"}, {{1}})), Error);
  BarChart b = bars({"a"}, {{1}});
  b.series.push_back("extra");
  EXPECT_THROW(bar_chart_svg(b), Error);
}

TEST(PlotCurve, TrainingCurveIsAChart) {
  std::vector<CurvePoint> pts;
  for (int s = 0; s <= 100; s += 10) {
    CurvePoint p;
    p.step = s, p.loss = 4.0 - s / 50.0;
    if (s % 50 == 0) p.val_loss = 4.1 - s / 50.0;
    pts.push_back(p);
  }
  std::string svg = curve_svg(pts, "run <1>");
  EXPECT_EQ(xml_problem(svg), "") << svg;
  for (const char* want : {"train loss", "validation", "run &lt;1&gt;", ">step<"})
    EXPECT_NE(svg.find(want), std::string::npos) << want;
  EXPECT_EQ(count(svg, "class=\"marker\""), 3 + 1);  // validation points and its legend entry
  EXPECT_EQ(xml_problem(curve_svg({}, "empty")), "");
}

}  // namespace
}  // namespace unmask
