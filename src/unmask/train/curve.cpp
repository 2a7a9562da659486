#include "unmask/train/curve.h"

#include <fmt/format.h>

#include <sstream>

#include "unmask/base/error.h"
#include "unmask/base/plot.h"

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

std::string curve_svg(const std::vector<CurvePoint>& pts, const std::string& title) {
  Series train, val;  // (steps), (evaluated steps)
  train.name = "train loss", train.markers = false, train.line_width = 1;
  val.name = "validation";
  for (const auto& p : pts) {
    train.x.push_back(double(p.step)), train.y.push_back(p.loss);
    if (p.val_loss) val.x.push_back(double(p.step)), val.y.push_back(*p.val_loss);
  }
  Chart c;
  c.title = title, c.x_label = "step", c.y_label = "loss", c.width = 720;
  c.series.push_back(std::move(train));
  if (!val.x.empty()) c.series.push_back(std::move(val));
  return chart_svg(c);
}

}  // namespace unmask
