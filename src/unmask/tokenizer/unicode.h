// UTF-8 helpers and the GPT-2 byte-to-unicode alphabet used by byte-level BPE vocabularies.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace unmask::tok {

// Length of the UTF-8 sequence that starts with `lead` (1 for ASCII, stray continuation or invalid bytes).
int utf8_seq_len(uint8_t lead);

// Appends code point cp (<= 0x10FFFF) as UTF-8.
void append_utf8(std::string& out, uint32_t cp);

// Decodes the code point at s[i]; on invalid UTF-8 returns -1 and sets len to 1.
int32_t decode_utf8(std::string_view s, size_t i, int& len);

bool is_valid_utf8(std::string_view s);

// How many leading bytes of s can be printed now: everything except a trailing sequence that is incomplete but
// could still become a valid character when more bytes arrive. Invalid bytes are never held back.
size_t utf8_printable_prefix(std::string_view s);

// GPT-2's reversible map from bytes to printable code points ("Ġ" is the space byte).
uint32_t byte_to_codepoint(uint8_t b);
// The inverse: the byte for a code point of the alphabet, or -1.
int codepoint_to_byte(uint32_t cp);

// "Hello world" -> "HelloĠworld": each byte becomes its alphabet character.
std::string bytes_to_alphabet(std::string_view bytes);
// The inverse. A character outside the alphabet is kept as its own UTF-8 bytes (as for user-defined tokens).
std::string alphabet_to_bytes(std::string_view text);

}  // namespace unmask::tok
