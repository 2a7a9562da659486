// Pre-tokenizers: the regexes that cut text into words before BPE merges, by the names GGUF files carry in
// tokenizer.ggml.pre. Unicode classes (\p{L}, \p{N}) come from PCRE2 (UTF + UCP), compiled once, JIT when available.
//
// Several regexes apply in sequence, as llama.cpp and Hugging Face's Sequence(Split(..., "isolated")) do: each
// one cuts every piece from the step before into its matches and the gaps between them, and sees each piece as a
// whole subject (so `$` means the end of the piece). Invalid UTF-8 never matches; its bytes become their own pieces.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace unmask::tok {

class Pretokenizer {
 public:
  // Compiles the patterns; a bad pattern throws Error naming it and PCRE2's message with the offset.
  explicit Pretokenizer(const std::vector<std::string>& patterns);
  ~Pretokenizer();
  Pretokenizer(Pretokenizer&&) noexcept;
  Pretokenizer& operator=(Pretokenizer&&) noexcept;

  // The pre-tokenizer GGUF calls `name` ("gpt-2", "llama-bpe", "qwen2", ...). Unknown: Error listing the known.
  static Pretokenizer by_name(std::string_view name);
  static std::vector<std::string> patterns_for(std::string_view name);
  static bool is_known(std::string_view name);
  static std::string known_names();  // "default, gpt2, gpt-2, ..."

  // Appends the pieces of text, in order; together they cover text exactly.
  void split(std::string_view text, std::vector<std::string_view>& pieces) const;
  size_t size() const { return regexes_.size(); }

 private:
  struct Regex;
  std::vector<std::unique_ptr<Regex>> regexes_;
};

// The regex of GPT-2's tokenizer.json, also the default for `tokenizer train`.
extern const char* const kGpt2Pattern;

}  // namespace unmask::tok
