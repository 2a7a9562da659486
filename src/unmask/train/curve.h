// The training curve: rows of log.csv, and the SVG plot drawn from them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace unmask {

struct CurvePoint {
  int64_t step = 0;
  double loss = 0, lr = 0, grad_norm = 0, tokens_per_s = 0, elapsed_s = 0;
  std::optional<double> val_loss;
};

// CSV with a header line; the val_loss column is empty on steps without evaluation.
std::string curve_csv(const std::vector<CurvePoint>& pts);
// Reads what curve_csv wrote (for resuming); throws naming the line that does not parse.
std::vector<CurvePoint> parse_curve_csv(const std::string& text, const std::string& where);
// A self-contained SVG: training loss (thin line) and validation loss (dots and line) against the step.
std::string curve_svg(const std::vector<CurvePoint>& pts, const std::string& title);

}  // namespace unmask
