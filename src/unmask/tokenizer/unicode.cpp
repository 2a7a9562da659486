#include "unmask/tokenizer/unicode.h"

#include <array>

namespace unmask::tok {

int utf8_seq_len(uint8_t lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

int32_t decode_utf8(std::string_view s, size_t i, int& len) {
  len = 1;
  const auto lead = uint8_t(s[i]);
  const int n = utf8_seq_len(lead);
  if (n == 1) return lead < 0x80 ? int32_t(lead) : -1;
  if (i + n > s.size()) return -1;
  uint32_t cp = lead & (0x7F >> n);
  for (int k = 1; k < n; ++k) {
    const auto c = uint8_t(s[i + k]);
    if ((c & 0xC0) != 0x80) return -1;
    cp = (cp << 6) | (c & 0x3F);
  }
  static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
  len = n;
  return int32_t(cp);
}

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    int len = 1;
    if (decode_utf8(s, i, len) < 0) return false;
    i += len;
  }
  return true;
}

size_t utf8_printable_prefix(std::string_view s) {
  // Look back at most 3 bytes for the lead byte of an unfinished sequence.
  const size_t back = s.size() < 3 ? s.size() : 3;
  for (size_t k = 1; k <= back; ++k) {
    const size_t i = s.size() - k;
    const auto c = uint8_t(s[i]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for its lead
    const int n = utf8_seq_len(c);
    if (n == 1 || size_t(n) <= k) return s.size();  // ASCII, invalid lead, or a sequence already complete
    return i;                                       // lead of a sequence still missing bytes
  }
  return s.size();
}

namespace {

struct Alphabet {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 324> to_byte{};  // every alphabet code point is < 324
  Alphabet() {
    to_byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      to_cp[b] = printable ? uint32_t(b) : next++;
      to_byte[to_cp[b]] = int16_t(b);
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet a;
  return a;
}

}  // namespace

uint32_t byte_to_codepoint(uint8_t b) { return alphabet().to_cp[b]; }

int codepoint_to_byte(uint32_t cp) { return cp < 324 ? alphabet().to_byte[cp] : -1; }

std::string bytes_to_alphabet(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_utf8(out, byte_to_codepoint(uint8_t(c)));
  return out;
}

std::string alphabet_to_bytes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    int len = 1;
    const int32_t cp = decode_utf8(text, i, len);
    const int b = cp < 0 ? -1 : codepoint_to_byte(uint32_t(cp));
    if (b >= 0) {
      out += char(b);
    } else {
      out.append(text.substr(i, len));
    }
    i += len;
  }
  return out;
}

}  // namespace unmask::tok
