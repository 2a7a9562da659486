#include "unmask/sampling/infill.h"

#include <charconv>

#include "unmask/base/error.h"

namespace unmask {

namespace {

int parse_count(std::string_view s, std::string_view where) {
  int n = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  check(ec == std::errc() && p == s.data() + s.size() && n >= 1 && n <= 1000000,
        "{}: '{}' is not a hole size (expected a whole number >= 1)", where, s);
  return n;
}

}  // namespace

std::vector<InfillPiece> parse_infill_pattern(std::string_view pattern) {
  std::vector<InfillPiece> out;
  std::string text;
  size_t i = 0;
  while (i < pattern.size()) {
    if (pattern.compare(i, 5, "[MASK") != 0) {
      text += pattern[i++];
      continue;
    }
    const size_t close = pattern.find(']', i);
    check(close != std::string_view::npos, "--infill: unclosed [MASK marker at offset {}", i);
    std::string_view inner = pattern.substr(i + 5, close - i - 5);
    int n = 1;
    if (!inner.empty()) {
      check(inner[0] == ':', "--infill: malformed marker '{}' at offset {} (expected [MASK] or [MASK:n])",
            pattern.substr(i, close - i + 1), i);
      n = parse_count(inner.substr(1), "--infill at offset " + std::to_string(i));
    }
    out.push_back({std::move(text), n});
    text.clear();
    i = close + 1;
  }
  if (!text.empty()) out.push_back({std::move(text), 0});
  return out;
}

std::vector<InfillSpan> parse_infill_tokens(std::string_view list) {
  std::vector<InfillSpan> out(1);
  size_t i = 0;
  while (i <= list.size()) {
    size_t comma = std::min(list.find(',', i), list.size());
    std::string_view item = list.substr(i, comma - i);
    check(!item.empty(), "--infill-tokens: empty entry at offset {}", i);
    if (item[0] == 'M') {
      out.back().holes += item.size() == 1 ? 1 : parse_count(item.substr(1), "--infill-tokens");
      out.push_back({});
    } else {
      int32_t id = 0;
      auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), id);
      check(ec == std::errc() && p == item.data() + item.size() && id >= 0,
            "--infill-tokens: '{}' is neither a token id nor M<n>", item);
      out.back().tokens.push_back(id);
    }
    i = comma + 1;
  }
  return out;
}

Canvas infill_canvas(std::span<const InfillSpan> spans, int32_t mask_token) {
  check(mask_token >= 0, "infilling needs a model with a mask token");
  Canvas c;
  int holes = 0;
  for (const InfillSpan& s : spans) {
    c.tokens.insert(c.tokens.end(), s.tokens.begin(), s.tokens.end());
    c.tokens.insert(c.tokens.end(), size_t(s.holes), mask_token);
    holes += s.holes;
  }
  check(holes > 0, "infill pattern has no hole: write [MASK] or [MASK:n] where text should be filled in");
  return c;
}

std::vector<InfillSpan> encode_pieces(std::span<const InfillPiece> pieces,
                                      const std::function<std::vector<int32_t>(std::string_view)>& encode) {
  std::vector<InfillSpan> out;
  for (const InfillPiece& p : pieces) out.push_back({p.text.empty() ? std::vector<int32_t>{} : encode(p.text), p.holes});
  return out;
}

}  // namespace unmask
