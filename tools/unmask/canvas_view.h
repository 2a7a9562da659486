// The denoising canvas in the terminal, as the LLaDA paper's figure draws it: each token in the colour of the step
// that committed it (a rainbow over the steps, from 256-colour cube hues of middle lightness that read on dark and
// light backgrounds alike), masks as a dim placeholder, the prompt and other given tokens in the terminal's own
// colour (their control tokens, such as the BOS, left out). generate --visual and the demo draw with it.
//
//   LiveCanvas view(tok, mc.mask_token, total_steps);      // draws only when stderr is a terminal
//   generate(bb, cfg, prompt, [&](const StepEvent& e) { view.update(e); return true; });  // the last frame stays
#pragma once

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "unmask/sampling/sampler.h"
#include "unmask/tokenizer/tokenizer.h"

namespace unmask::cli {

// What render_canvas draws: canvas (T) and commit_step (T), the step that committed each position (-1: given).
struct CanvasPaint {
  std::span<const int32_t> canvas;
  std::span<const int> commit_step;
  int32_t mask_token = -1;
  int total_steps = 1;           // the rainbow spans steps 0 .. total_steps - 1
  const Tokenizer* tok = nullptr;  // null: tokens drawn as their ids
};

// Coloured lines of at most `width` columns (a token's newline starts a line); first_mask_line: the line holding the
// first masked position, -1 when none is left.
struct CanvasLines {
  std::vector<std::string> lines;
  int first_mask_line = -1;
};
CanvasLines render_canvas(const CanvasPaint& p, int width);

// The escape sequence that colours text committed at `step` of `total` (a hue of the rainbow).
std::string step_colour(int step, int total);

// A canvas redrawn in place on stderr at each step: the cursor goes back up over the previous frame (no clearing of
// the screen, nothing left in the scrollback but the last frame); a canvas taller than the terminal shows the rows
// around the first mask (the active region), or the last rows once nothing is masked. When stderr is not a terminal
// it writes nothing at all.
class LiveCanvas {
 public:
  LiveCanvas(const Tokenizer* tok, int32_t mask_token, int total_steps);
  void update(const StepEvent& e);  // records the step's commits and remasks, redraws

  static bool enabled();  // stderr is a terminal

 private:
  void draw(std::span<const int32_t> canvas, const std::string& status);

  const Tokenizer* tok_;
  int32_t mask_;
  int total_;
  std::vector<int> steps_;
  int drawn_ = 0;  // lines of the previous frame
  bool on_ = false;
};

}  // namespace unmask::cli
