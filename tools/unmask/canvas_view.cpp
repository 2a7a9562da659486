// The denoising canvas in the terminal: layout into coloured lines, the step palette, and the in-place redraw.
#include "canvas_view.h"

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>

#include "unmask/sampling/text.h"
#include "unmask/tokenizer/unicode.h"

namespace unmask::cli {

namespace {

// A rainbow of 256-colour cube hues (16 + 36 r + 6 g + b) of middle lightness: red, orange, gold, olive, green,
// teal, cyan, azure, blue, indigo, violet, purple, magenta, rose: neighbours differ in hue, and none is too pale for
// a white background or too dark for a black one.
constexpr int kRainbow[] = {160, 166, 172, 136, 142, 70, 34, 36, 37, 31, 26, 62, 92, 128, 162, 161};
constexpr int kHues = int(std::size(kRainbow));

constexpr const char* kReset = "\x1b[0m";
constexpr const char* kMaskStyle = "\x1b[2m";  // faint
constexpr const char* kMaskGlyph = "\xE2\x96\x91";  // U+2591 light shade

// Lines of at most `width` columns (one per code point), each closing its own colour so that it prints alone.
class Layout {
 public:
  explicit Layout(int width) : width_(std::max(width, 1)) { lines_.emplace_back(); }

  // One character (a code point's bytes, or '\n') in `style` ("" for the terminal's own).
  void put(std::string_view ch, const std::string& style) {
    if (ch == "\n") return newline();
    if (col_ == width_) newline();
    std::string& line = lines_.back();
    if (style != style_) {
      if (!style_.empty()) line += kReset;
      line += style;
      style_ = style;
    }
    line.append(ch);
    ++col_;
  }
  int line() const { return int(lines_.size()) - 1; }
  std::vector<std::string> take() {
    if (!style_.empty()) lines_.back() += kReset;
    return std::move(lines_);
  }

 private:
  void newline() {
    if (!style_.empty()) lines_.back() += kReset;
    style_.clear();
    lines_.emplace_back();
    col_ = 0;
  }

  int width_, col_ = 0;
  std::string style_;
  std::vector<std::string> lines_;
};

// A token's text for the screen: valid UTF-8, tabs as a space, other control bytes dropped.
std::string shown(const Tokenizer* tok, int32_t id) {
  std::string s = tok ? valid_utf8(tok->token_bytes(id)) : fmt::format("{} ", id);
  std::replace(s.begin(), s.end(), '\t', ' ');
  std::erase_if(s, [](char c) { return (uint8_t(c) < 0x20 && c != '\n') || c == 0x7f; });
  return s;
}

void put_text(Layout& out, std::string_view s, const std::string& style) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = std::min(size_t(tok::utf8_seq_len(uint8_t(s[i]))), s.size() - i);
    out.put(s.substr(i, n), style);
    i += n;
  }
}

int terminal_rows_cols(int& cols) {
  winsize ws{};
  const bool ok = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0;
  cols = ok ? ws.ws_col : 80;
  return ok ? ws.ws_row : 24;
}

}  // namespace

std::string step_colour(int step, int total) {
  const int hue = total <= 1 ? 0 : std::clamp(int(int64_t(step) * kHues / total), 0, kHues - 1);
  return fmt::format("\x1b[38;5;{}m", kRainbow[hue]);
}

CanvasLines render_canvas(const CanvasPaint& p, int width) {
  Layout out(width);
  CanvasLines r;
  const std::string mask_style = kMaskStyle;
  for (size_t i = 0; i < p.canvas.size(); ++i) {
    const int32_t id = p.canvas[i];
    if (id == p.mask_token) {
      if (r.first_mask_line < 0) r.first_mask_line = out.line();
      out.put(kMaskGlyph, mask_style);
      continue;
    }
    const int step = i < p.commit_step.size() ? p.commit_step[i] : -1;
    if (step < 0 && p.tok && p.tok->is_control(id)) continue;  // the prompt's BOS and other control tokens
    put_text(out, shown(p.tok, id), step < 0 ? std::string() : step_colour(step, p.total_steps));
  }
  r.lines = out.take();
  return r;
}

LiveCanvas::LiveCanvas(const Tokenizer* tok, int32_t mask_token, int total_steps)
    : tok_(tok), mask_(mask_token), total_(std::max(total_steps, 1)), on_(enabled()) {}

bool LiveCanvas::enabled() { return isatty(STDERR_FILENO) != 0; }

void LiveCanvas::update(const StepEvent& e) {
  steps_.resize(e.canvas.size(), -1);
  for (int p : e.committed) steps_[size_t(p)] = e.step;
  for (int p : e.remasked) steps_[size_t(p)] = -1;
  if (!on_) return;
  draw(e.canvas, fmt::format("step {}/{}  block {}  committed {}", e.step + 1, std::max(total_, e.step + 1),
                             e.block, e.committed.size()));
}

void LiveCanvas::draw(std::span<const int32_t> canvas, const std::string& status) {
  int cols = 80;
  const int rows = terminal_rows_cols(cols);
  // One column spare: a line filling the last column would leave the cursor there on some terminals.
  const CanvasLines c = render_canvas({canvas, steps_, mask_, total_, tok_}, cols - 1);
  const int n = int(c.lines.size()), room = std::max(rows - 2, 1);
  int first = 0;
  if (n > room) first = c.first_mask_line >= 0 ? std::clamp(c.first_mask_line - room / 3, 0, n - room) : n - room;
  const int shown_lines = std::min(n, room);
  std::string out = drawn_ > 0 ? fmt::format("\x1b[{}A\r", drawn_) : "\r";
  for (int i = first; i < first + shown_lines; ++i) out += c.lines[size_t(i)] + "\x1b[K\n";
  out += fmt::format("{}{}{}\x1b[K\n\x1b[J", kMaskStyle, status, kReset);
  drawn_ = shown_lines + 1;
  std::fwrite(out.data(), 1, out.size(), stderr);
  std::fflush(stderr);
}

}  // namespace unmask::cli
