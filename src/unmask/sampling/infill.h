// Infilling: any pattern of known and masked positions. Text patterns write holes as [MASK] (one position) or
// [MASK:n] (n positions): "The [MASK:12] of the world". Programs give spans directly.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "unmask/sampling/sampler.h"

namespace unmask {

// Known tokens followed by a hole of `holes` masked positions (either may be empty).
struct InfillSpan {
  std::vector<int32_t> tokens;
  int holes = 0;
};

// A piece of a text pattern: text, then a hole.
struct InfillPiece {
  std::string text;
  int holes = 0;
};

// Splits "The [MASK:12] of the world" into {"The ", 12}, {" of the world", 0}. Throws Error on a malformed marker
// ("[MASK:0]", "[MASK:x]", an unclosed "[MASK:") naming its offset.
std::vector<InfillPiece> parse_infill_pattern(std::string_view pattern);

// The token form "1,2,M12,3,M": ids, with M<n> for n masks (M alone: one).
std::vector<InfillSpan> parse_infill_tokens(std::string_view list);

// The canvas of the spans: every position is known or masked; prompt_length 0 (blocks and CFG see every known
// token as context). Throws when there is no hole.
Canvas infill_canvas(std::span<const InfillSpan> spans, int32_t mask_token);

// Text pieces encoded with `encode`.
std::vector<InfillSpan> encode_pieces(std::span<const InfillPiece> pieces,
                                      const std::function<std::vector<int32_t>(std::string_view)>& encode);

}  // namespace unmask
