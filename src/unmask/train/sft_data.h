// Supervised fine-tuning data (LLaDA's SFT): prompt/response examples rendered through a chat template.
//
// JSONL input, one example per line (blank lines are skipped):
//   {"prompt": "...", "response": "..."}                      the prompt is one user turn
//   {"messages": [{"role": "...", "content": "..."}, ...]}    the last message, which must be the assistant's, is
//                                                             the response; the messages before it are the prompt
// An example renders as  tokens = prompt (the template's turns + the opening of the assistant's turn)
//                                 ++ response ++ [terminator]
// where the terminator is the template's end-of-turn token (<|eot_id|>, <|im_end|>) when the vocabulary has it,
// else the vocabulary's EOT, else its EOS. Training pads every example with the pad token (the vocabulary's EOS, as
// LLaDA does) to the sequence length; the padding counts as answer.
//
// Example shard (DIR/train.sft, DIR/val.sft), little-endian:
//   header (48 bytes): magic "UNMASKSF", u32 version 1, u32 vocab, u64 examples, u64 tokens, i32 pad token,
//                      u32 longest prompt, u32 longest example, u32 reserved (0)
//   examples × (u32 prompt length, u32 length)     with prompt length < length (at least the terminator answers)
//   tokens × u32                                   the examples back to back
// The reader checks every count against the file size, every length and every id before trusting them.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "unmask/base/mmap.h"
#include "unmask/base/rng.h"
#include "unmask/tokenizer/chat.h"

namespace unmask {

class Tokenizer;

// One parsed JSONL line.
struct SftPair {
  std::vector<ChatMessage> prompt;  // at least one message
  std::string response;
  int line = 0;  // 1-based line in the input file
};

// Parses JSONL text; throws "PATH:LINE: ..." naming what is wrong (bad JSON, a missing or non-string field, a
// conversation not ending with the assistant), or "PATH: ..." when the file holds no example.
std::vector<SftPair> parse_sft_jsonl(std::string_view text, const std::string& path);

struct SftExample {
  std::vector<int32_t> tokens;  // prompt, then the response and its terminator
  int32_t prompt_len = 0;       // < tokens.size()
};

// The end-of-turn token the template uses (see above); throws when the vocabulary has none of them.
int32_t sft_terminator(const ChatTemplate& t, const Tokenizer& tok);
// The padding token: the vocabulary's EOS, else its EOT; throws when it has neither.
int32_t sft_pad(const Tokenizer& tok);
SftExample render_sft_example(const SftPair& p, const ChatTemplate& t, const Tokenizer& tok, int32_t terminator);

// Writes examples atomically; ids must be in [0, vocab).
void write_sft_shard(const std::string& path, std::span<const SftExample> examples, int32_t vocab, int32_t pad);

class SftShard {
 public:
  // Validates header, lengths and token ids against the file; throws "PATH: ..." naming what is wrong.
  explicit SftShard(const std::string& path);
  int64_t size() const { return int64_t(prompt_len_.size()); }
  int32_t vocab() const { return vocab_; }
  int32_t pad() const { return pad_; }
  int32_t max_prompt() const { return max_prompt_; }
  const std::string& path() const { return file_.path(); }
  int32_t prompt_len(int64_t i) const { return prompt_len_[size_t(i)]; }
  // out (T) = example i, its response cut to fit, padded with pad(); returns its prompt length (< T, else throws).
  int32_t read(int64_t i, int T, int32_t* out) const;

 private:
  MappedFile file_;
  std::vector<int32_t> prompt_len_, len_;
  std::vector<int64_t> begin_;  // (examples) offset of each example's first token
  int32_t vocab_ = 0, pad_ = 0, max_prompt_ = 0;
};

// B examples drawn uniformly from rng, each as T tokens: seqs (B, T), prompt_lens (B).
void sample_examples(const SftShard& s, int B, int T, Rng& rng, std::vector<int32_t>& seqs,
                     std::vector<int32_t>& prompt_lens);

}  // namespace unmask
