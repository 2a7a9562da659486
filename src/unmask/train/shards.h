// Token shards: a 32-byte header (magic "UNMASKTK", u32 version 1, u32 bytes per token (2 or 4), u64 count,
// u32 vocabulary size, u32 reserved) then the ids, little-endian. `unmask data prepare` writes DIR/train.bin,
// DIR/val.bin and DIR/tokenizer.gguf; the loader memory-maps them and cuts random windows, deterministically from
// (seed, step): a resumed run reads exactly what an uninterrupted one would have.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "unmask/base/mmap.h"
#include "unmask/base/rng.h"

namespace unmask {

// Writes tokens atomically; ids must be in [0, vocab).
void write_shard(const std::string& path, std::span<const int32_t> tokens, int32_t vocab);

class Shard {
 public:
  // Validates the header against the file size; throws "PATH: ..." naming what is wrong.
  explicit Shard(const std::string& path);
  int64_t size() const { return count_; }
  int32_t vocab() const { return vocab_; }
  int32_t at(int64_t i) const;
  // out (n) = tokens [start, start + n)
  void read(int64_t start, int64_t n, int32_t* out) const;

 private:
  MappedFile file_;
  int64_t count_ = 0;
  int32_t vocab_ = 0;
  uint32_t width_ = 2;
};

// B windows of n tokens each, at starts drawn uniformly from rng: out (B, n).
void sample_windows(const Shard& s, int B, int n, Rng& rng, std::vector<int32_t>& out);

}  // namespace unmask
