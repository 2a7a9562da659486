// BPE training for our own models: byte-level (the 256 bytes first, in byte order), merges learned from a corpus,
// then the special tokens a diffusion model needs. Deterministic: the same corpus and options give the same file.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "unmask/tokenizer/vocab.h"

namespace unmask {

struct TrainOptions {
  int32_t vocab_size = 4096;  // including the 256 bytes and the 4 special tokens
  std::string pre = "gpt-2";  // the pre-tokenizer that cuts the corpus into words (a tokenizer.ggml.pre name)
  int64_t min_count = 2;      // stop early when the best pair occurs fewer times than this
  // Called after each merge with (merges done, merges wanted); for a progress bar.
  std::function<void(int64_t, int64_t)> progress;
};

// The special tokens, after the bytes and merges, in this order; their roles are set on the vocabulary.
inline constexpr const char* kTrainedSpecials[] = {"<|bos|>", "<|eos|>", "<|pad|>", "<|mask|>"};

// Learns merges on `corpus`. Pairs are counted over distinct words weighted by frequency; the most frequent pair
// merges first, ties going to the smaller (left id, right id). Error for a vocab_size below 256 + 4.
Vocab train_bpe(std::string_view corpus, const TrainOptions& opts);

// The byte-level tokenizer for character-style experiments: ids 0..255 are the bytes, then the 4 specials.
Vocab byte_level_vocab();

}  // namespace unmask
