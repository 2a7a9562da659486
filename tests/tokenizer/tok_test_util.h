// Small vocabularies built by hand for the tokenizer tests.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "unmask/tokenizer/train.h"
#include "unmask/tokenizer/unicode.h"
#include "unmask/tokenizer/vocab.h"

namespace unmask::testing {

// Byte-level BPE: the 256 bytes, the 4 trained specials, then merges added with add_merge (raw bytes).
inline Vocab bytes_vocab() { return byte_level_vocab(); }

inline int32_t add_merge(Vocab& v, const std::string& a, const std::string& b) {
  v.merges.emplace_back(tok::bytes_to_alphabet(a), tok::bytes_to_alphabet(b));
  v.tokens.push_back(tok::bytes_to_alphabet(a + b));
  v.types.push_back(TokenType::kNormal);
  return v.size() - 1;
}

inline int32_t add_token(Vocab& v, const std::string& text, TokenType type) {
  v.tokens.push_back(text);
  v.types.push_back(type);
  if (!v.scores.empty()) v.scores.push_back(0.0f);
  return v.size() - 1;
}

// A temporary directory removed at the end of the test.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() / ("unmask_tok_" + std::to_string(::getpid()) + "_" +
                                                     std::to_string(reinterpret_cast<uintptr_t>(this)));
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string write(const std::string& name, const std::string& content) const {
    const auto p = (path / name).string();
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
};

}  // namespace unmask::testing
