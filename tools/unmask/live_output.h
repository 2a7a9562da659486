// What generate and the demo share around a run: the prompt file, AR text streamed to stdout token by
// token (whole UTF-8 characters only, stop strings and end-of-turn ids held back), a progress line for diffusion on a
// terminal's stderr, and the one line of figures at the end.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "unmask/sampling/sampler.h"
#include "unmask/sampling/text.h"
#include "unmask/tokenizer/tokenizer.h"

namespace unmask::cli {

// -f FILE: the prompt in a file, as llama.cpp reads it (the file less one final newline).
std::string read_prompt_file(const std::string& path);

// AR text to `out` as it is produced. A token in skip (EOS, a chat's stop ids) is not printed; once a stop string
// appears, stopped() is true and nothing after it is printed.
class ArStream {
 public:
  ArStream(std::FILE* out, const Tokenizer* tok, std::span<const std::string> stop, std::vector<int32_t> skip);
  void update(const StepEvent& e);
  void finish();  // the held tail and a newline
  bool stopped() const { return stop_.stopped(); }

 private:
  void write(const std::string& s);

  std::FILE* out_;
  const Tokenizer* tok_;
  std::optional<TextStream> text_;  // empty without a tokenizer: ids are printed
  StopFilter stop_;
  std::vector<int32_t> skip_;
  bool first_ = true;
};

// "denoising [#####.....] 24/64 tokens" on stderr while masks are filled, only when stderr is a terminal.
class DenoiseProgress {
 public:
  // total: the positions to fill; on: whether to draw at all (it never draws when stderr is not a terminal).
  DenoiseProgress(int64_t total, bool on);
  void update(const StepEvent& e);
  void finish();  // ends the line when the run stopped early (EOS in block diffusion, a stop)

 private:
  int64_t total_ = 0, done_ = 0;
  bool on_;
};

// "llada: 64 tokens, 32 forward passes (2.00 tokens/forward), 0.41 s (156.1 tokens/s; forward 0.39 s, sampling
// 0.02 s)".
std::string figures_line(std::string_view label, const GenerateStats& s);

}  // namespace unmask::cli
