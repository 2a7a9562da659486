// The tokenizer interface: text <-> token ids for byte-level BPE and SentencePiece vocabularies, special tokens by
// role, and a streaming decoder that never emits half a UTF-8 character.
//
//   auto tok = unmask::load_tokenizer(reader);              // from a GGUF file's tokenizer.ggml.* keys
//   auto ids = tok->encode("Hello world");                  // [15496, 995] for GPT-2; no BOS unless add_special
//   std::string text = tok->decode(ids);                    // the bytes back
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "unmask/tokenizer/vocab.h"

namespace unmask {

namespace gguf {
class Reader;
}

enum class TokenRole { kBos, kEos, kEot, kPad, kMask, kUnk };

class Tokenizer {
 public:
  virtual ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Encodes text. add_special: put the BOS in front when the vocabulary asks for one (and the text does not already
  // start with it) and the EOS at the end when it asks for that. parse_special: control tokens written in the text
  // ("<|eot_id|>") become their ids; otherwise they are encoded as the plain text they are. User-defined tokens
  // (added, non-special) are always recognised, as llama.cpp and Hugging Face do. Invalid UTF-8 is encoded as its
  // bytes.
  std::vector<int32_t> encode(std::string_view text, bool add_special = false, bool parse_special = false) const;

  // The bytes the ids stand for. Control tokens print their text unless skip_special. For SentencePiece the space
  // the encoder put in front is removed again.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  // One token's bytes as decode() prints it in mid-text; throws on an id outside the vocabulary.
  const std::string& token_bytes(int32_t id) const;
  const std::string& token_text(int32_t id) const;  // as stored in the vocabulary ("Ġworld", "▁world")
  int32_t find_token(std::string_view text) const;  // exact vocabulary entry, or -1
  bool is_control(int32_t id) const;                // control or unknown: hidden by skip_special
  int32_t n_vocab() const { return vocab_.size(); }
  int32_t role(TokenRole r) const;                  // -1 when the vocabulary has none
  const Vocab& vocab() const { return vocab_; }
  // SentencePiece with add_space_prefix: decode drops one leading space of the text's first token.
  bool strips_leading_space() const { return vocab_.kind == VocabKind::kSpm && vocab_.add_space_prefix; }

 protected:
  explicit Tokenizer(Vocab vocab);
  // Encodes text holding no special tokens. at_start: the text opens the input or follows a special token.
  virtual void encode_text(std::string_view text, bool at_start, std::vector<int32_t>& out) const = 0;
  // The bytes of a token in mid-text; called once per token by init_pieces().
  virtual std::string piece_of(int32_t id) const = 0;
  void init_pieces();  // derived constructors call this last
  void check_id(int32_t id) const;

  Vocab vocab_;
  std::unordered_map<std::string_view, int32_t> index_;  // token text -> id (views into vocab_.tokens)

 private:
  struct Fragment {
    std::string_view text;
    int32_t id = -1;  // >= 0: a special token found in the text
  };
  void split_special(std::string_view text, bool parse_special, std::vector<Fragment>& out) const;
  std::vector<std::string> pieces_;
  std::vector<std::vector<int32_t>> specials_by_byte_;  // first byte -> candidate ids, longest first
};

// Builds the tokenizer a vocabulary calls for (BPE or SentencePiece), after validating it.
std::unique_ptr<Tokenizer> make_tokenizer(Vocab vocab);
// A BPE tokenizer whose merges use the plain quadratic reference (for tests and the benchmark's baseline).
std::unique_ptr<Tokenizer> make_reference_bpe_tokenizer(Vocab vocab);
std::unique_ptr<Tokenizer> load_tokenizer(const gguf::Reader& reader);
std::unique_ptr<Tokenizer> load_tokenizer_json(const std::string& path);
// A GGUF file, a tokenizer.json when the path ends in .json, or a Hugging Face folder's tokenizer.json (for a model
// folder, padded to its embedding's rows: hf_vocab in model/hf.h).
std::unique_ptr<Tokenizer> load_tokenizer_file(const std::string& path);
// The tokenizer of a model (a GGUF file or a Hugging Face folder); null for a GGUF file without a vocabulary.
std::unique_ptr<Tokenizer> model_tokenizer(const std::string& path);

// Feeds ids one at a time and returns only whole UTF-8 characters; the bytes of a character split across tokens
// wait for the token that completes it. Concatenating every push() and finish() equals decode() of all ids.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = false) : tok_(tok), skip_special_(skip_special) {}
  std::string push(int32_t id);
  std::string finish();  // whatever is still held (an incomplete character at the very end)

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  bool started_ = false;
  std::string held_;
};

}  // namespace unmask
