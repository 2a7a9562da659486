// Streaming, progress and figures for generate and the demo.
#include "live_output.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>

#include "cli_util.h"
#include "progress.h"

namespace unmask::cli {

std::string read_prompt_file(const std::string& path) {
  std::string text = read_text_file(path);
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

ArStream::ArStream(std::FILE* out, const Tokenizer* tok, std::span<const std::string> stop, std::vector<int32_t> skip)
    : out_(out), tok_(tok), stop_(stop), skip_(std::move(skip)) {
  if (tok) text_.emplace(*tok);
}

void ArStream::write(const std::string& s) {
  if (s.empty()) return;
  std::fwrite(s.data(), 1, s.size(), out_);
  std::fflush(out_);
}

void ArStream::update(const StepEvent& e) {
  for (int p : e.committed) {
    const int32_t id = e.canvas[size_t(p)];
    if (stop_.stopped() || std::find(skip_.begin(), skip_.end(), id) != skip_.end()) continue;
    write(stop_.push(text_ ? text_->push(id) : fmt::format("{}{}", first_ ? "" : " ", id)));
    first_ = false;
  }
}

void ArStream::finish() {
  if (text_) write(stop_.push(text_->finish()));
  write(stop_.finish() + "\n");
}

DenoiseProgress::DenoiseProgress(int64_t total, bool on)
    : total_(total), on_(on && isatty(STDERR_FILENO)) {}

void DenoiseProgress::update(const StepEvent& e) {
  if (!on_) return;
  done_ = std::min(done_ + int64_t(e.committed.size()) - int64_t(e.remasked.size()), total_);
  draw_progress("denoising", done_, total_, "tokens", fmt::format("step {}", e.step + 1));
}

void DenoiseProgress::finish() {
  if (on_ && done_ > 0 && done_ != total_) std::fputc('\n', stderr);
}

std::string figures_line(std::string_view label, const GenerateStats& s) {
  std::string drafts = s.drafted > 0 ? fmt::format(", {} of {} drafted tokens accepted ({:.0f}%)", s.accepted,
                                                   s.drafted, 100.0 * s.accepted / s.drafted)
                                     : "";
  if (s.draft_passes > 0) drafts += fmt::format(", {} drafter passes", s.draft_passes);
  return fmt::format("{}: {} tokens, {} forward passes ({:.2f} tokens/forward{}), {:.2f} s ({:.1f} tokens/s; forward "
                     "{:.2f} s, sampling {:.2f} s)", label, s.generated, s.forward_passes, s.tokens_per_forward(),
                     drafts, s.seconds_total, s.seconds_total > 0 ? s.generated / s.seconds_total : 0.0,
                     s.seconds_forward, s.seconds_sample);
}

}  // namespace unmask::cli
