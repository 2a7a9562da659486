#include "unmask/train/curve.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "unmask/base/error.h"

namespace unmask {

std::string curve_csv(const std::vector<CurvePoint>& pts) {
  std::string s = "step,loss,val_loss,lr,grad_norm,tokens_per_s,elapsed_s\n";
  for (const auto& p : pts)
    s += fmt::format("{},{:.6f},{},{:.6g},{:.4f},{:.1f},{:.2f}\n", p.step, p.loss,
                     p.val_loss ? fmt::format("{:.6f}", *p.val_loss) : "", p.lr, p.grad_norm, p.tokens_per_s,
                     p.elapsed_s);
  return s;
}

std::vector<CurvePoint> parse_curve_csv(const std::string& text, const std::string& where) {
  std::vector<CurvePoint> pts;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);  // header
  for (int n = 2; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    std::vector<std::string> f;
    std::stringstream ls(line);
    for (std::string cell; std::getline(ls, cell, ',');) f.push_back(cell);
    if (line.back() == ',') f.push_back("");
    check(f.size() == 7, "{}:{}: {} fields, expected 7", where, n, f.size());
    try {
      CurvePoint p{std::stoll(f[0]), std::stod(f[1]), std::stod(f[3]), std::stod(f[4]), std::stod(f[5]),
                   std::stod(f[6]), std::nullopt};
      if (!f[2].empty()) p.val_loss = std::stod(f[2]);
      pts.push_back(p);
    } catch (const std::exception&) {
      fail("{}:{}: cannot parse '{}'", where, n, line);
    }
  }
  return pts;
}

namespace {

struct Frame {
  double x0, x1, y0, y1;  // data ranges
  static constexpr double W = 720, H = 400, L = 60, R = 20, T = 40, B = 50;
  double x(double v) const { return L + (v - x0) / std::max(1e-12, x1 - x0) * (W - L - R); }
  double y(double v) const { return H - B - (v - y0) / std::max(1e-12, y1 - y0) * (H - T - B); }
};

std::string polyline(const Frame& f, const std::vector<std::pair<double, double>>& xy, const char* style) {
  std::string pts;
  for (auto [a, b] : xy) pts += fmt::format("{:.1f},{:.1f} ", f.x(a), f.y(b));
  return fmt::format("<polyline fill=\"none\" {} points=\"{}\"/>\n", style, pts);
}

std::string axes(const Frame& f) {
  std::string s;
  for (int i = 0; i <= 4; ++i) {
    double v = f.y0 + (f.y1 - f.y0) * i / 4, sx = f.x0 + (f.x1 - f.x0) * i / 4;
    s += fmt::format("<line x1=\"{0}\" x2=\"{1}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"#ddd\"/>"
                     "<text x=\"{3}\" y=\"{4:.1f}\" font-size=\"11\" text-anchor=\"end\">{5:.2f}</text>\n",
                     Frame::L, Frame::W - Frame::R, f.y(v), Frame::L - 6, f.y(v) + 4, v);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{:.0f}</text>\n", f.x(sx),
                     Frame::H - Frame::B + 16, sx);
  }
  return s;
}

}  // namespace

std::string curve_svg(const std::vector<CurvePoint>& pts, const std::string& title) {
  std::vector<std::pair<double, double>> train, val;
  for (const auto& p : pts) {
    if (std::isfinite(p.loss)) train.emplace_back(double(p.step), p.loss);
    if (p.val_loss && std::isfinite(*p.val_loss)) val.emplace_back(double(p.step), *p.val_loss);
  }
  Frame f{0, 1, 0, 1};
  if (!train.empty()) {
    f.x0 = train.front().first, f.x1 = train.back().first;
    auto [lo, hi] = std::minmax_element(train.begin(), train.end(), [](auto a, auto b) { return a.second < b.second; });
    f.y0 = std::floor(lo->second * 10) / 10, f.y1 = std::ceil(hi->second * 10) / 10;
    for (auto [s, v] : val) f.y0 = std::min(f.y0, std::floor(v * 10) / 10), f.y1 = std::max(f.y1, std::ceil(v * 10) / 10);
  }
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{}\" y=\"24\" font-size=\"15\">{}</text>\n",
      Frame::W, Frame::H, Frame::L, title);
  s += axes(f);
  s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">step</text>\n",
                   (Frame::W + Frame::L) / 2, Frame::H - 12);
  s += polyline(f, train, "stroke=\"#7aa6d8\" stroke-width=\"1\"");
  s += polyline(f, val, "stroke=\"#d2691e\" stroke-width=\"2\"");
  for (auto [a, b] : val) s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"#d2691e\"/>\n", f.x(a), f.y(b));
  s += fmt::format("<text x=\"{0}\" y=\"{1}\" font-size=\"12\" fill=\"#7aa6d8\">train loss</text>"
                   "<text x=\"{0}\" y=\"{2}\" font-size=\"12\" fill=\"#d2691e\">validation</text>\n",
                   Frame::W - 140, Frame::T + 10, Frame::T + 26);
  return s + "</svg>\n";
}

}  // namespace unmask
