// A tokenizer vocabulary as data: the tokens, their types and scores, the BPE merges, the special ids by role and
// the flags that change encoding. Loaded from GGUF (llama.cpp's tokenizer.ggml.* keys) or a Hugging Face
// tokenizer.json, checked once, and written back to GGUF by `tokenizer train`.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace unmask::gguf {
class Reader;
class Writer;
}  // namespace unmask::gguf

namespace unmask {

// Numbered as in GGUF's tokenizer.ggml.token_type.
enum class TokenType : int32_t {
  kUndefined = 0, kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6,
};

enum class VocabKind {
  kBpe,  // byte-level BPE (tokenizer.ggml.model = gpt2)
  kSpm,  // SentencePiece with scores and byte fallback (tokenizer.ggml.model = llama)
};

struct Vocab {
  VocabKind kind = VocabKind::kBpe;
  std::string pre = "gpt-2";              // pre-tokenizer name (tokenizer.ggml.pre)
  std::vector<std::string> pre_patterns;  // when not empty, used instead of the patterns of `pre`
  std::vector<std::string> tokens;
  std::vector<TokenType> types;
  std::vector<float> scores;                                 // SPM only (may be empty for BPE)
  std::vector<std::pair<std::string, std::string>> merges;  // BPE only; rank = index
  std::vector<uint8_t> lstrip, rstrip;  // per token, for added tokens that eat whitespace beside them; may be empty

  int32_t bos = -1, eos = -1, eot = -1, pad = -1, mask = -1, unk = -1;
  bool add_bos = false;
  bool add_eos = false;
  bool add_space_prefix = true;  // SPM: a space in front of the text (and of text after a special token)
  bool ignore_merges = false;    // BPE: a word that is itself a token is taken whole (LLaMA-3)
  std::string chat_template;     // the Jinja source, if the file has one

  int32_t size() const { return int32_t(tokens.size()); }
};

// Checks sizes, ids in range, a non-empty vocabulary. `where` names the source in messages.
void validate_vocab(const Vocab& v, const std::string& where);

// Reads tokenizer.ggml.* from an open GGUF file; throws Error("PATH: ...") on anything missing or inconsistent.
Vocab vocab_from_gguf(const gguf::Reader& r);
// Whether a GGUF file carries a vocabulary: tokenizer.ggml.model is there and not llama.cpp's "none" / "no_vocab".
bool has_vocabulary(const gguf::Reader& r);

// Reads a Hugging Face tokenizer.json (model type BPE with a ByteLevel pre-tokenizer or decoder). If a
// tokenizer_config.json sits beside it, bos/eos/pad, add_bos_token and chat_template are taken from there.
Vocab vocab_from_json(const std::string& path);

// Sets the tokenizer.ggml.* keys of `v` on w.
void vocab_to_gguf(const Vocab& v, gguf::Writer& w);

// Fills eot and mask (and bos/eos when unset) from well-known token texts: "<|eot_id|>", "<|im_end|>", "<|mask|>",
// "<|mdm_mask|>", "[MASK]", ... Leaves set ids alone.
void infer_roles(Vocab& v);

}  // namespace unmask
