#include "unmask/train/shards.h"

#include <cstring>

#include "unmask/base/error.h"

namespace unmask {

namespace {

constexpr char kMagic[8] = {'U', 'N', 'M', 'A', 'S', 'K', 'T', 'K'};
constexpr uint32_t kVersion = 1;

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t width;
  uint64_t count;
  uint32_t vocab;
  uint32_t reserved;
};
static_assert(sizeof(Header) == 32);

}  // namespace

void write_shard(const std::string& path, std::span<const int32_t> tokens, int32_t vocab) {
  check(vocab > 0, "{}: vocabulary size {} must be > 0", path, vocab);
  Header h{};
  std::memcpy(h.magic, kMagic, 8);
  h.version = kVersion;
  h.width = vocab <= 65536 ? 2 : 4;
  h.count = tokens.size();
  h.vocab = uint32_t(vocab);
  AtomicFile f(path);
  f.write(&h, sizeof h);
  std::vector<uint8_t> buf;
  buf.reserve(tokens.size() * h.width);
  for (size_t i = 0; i < tokens.size(); ++i) {
    check(tokens[i] >= 0 && tokens[i] < vocab, "{}: token {} at {} is outside the vocabulary of {}", path, tokens[i],
          i, vocab);
    uint32_t t = uint32_t(tokens[i]);
    buf.insert(buf.end(), reinterpret_cast<uint8_t*>(&t), reinterpret_cast<uint8_t*>(&t) + h.width);
  }
  f.write(buf.data(), buf.size());
  f.commit();
}

Shard::Shard(const std::string& path) : file_(path) {
  Header h;
  check(file_.size() >= sizeof h, "{}: {} bytes, too short for a token shard header ({} bytes)", path, file_.size(),
        sizeof h);
  std::memcpy(&h, file_.data(), sizeof h);
  check(std::memcmp(h.magic, kMagic, 8) == 0, "{}: not a token shard (bad magic; expected UNMASKTK)", path);
  check(h.version == kVersion, "{}: shard version {}, expected {}", path, h.version, kVersion);
  check(h.width == 2 || h.width == 4, "{}: {} bytes per token, expected 2 or 4", path, h.width);
  check(h.vocab > 0 && h.vocab <= (1u << 31) - 1, "{}: vocabulary size {} is invalid", path, h.vocab);
  check(h.count <= (file_.size() - sizeof h) / h.width && h.count * h.width == file_.size() - sizeof h,
        "{}: header says {} tokens ({} bytes) but the file holds {} bytes of tokens", path, h.count,
        h.count * h.width, file_.size() - sizeof h);
  check(h.count > 0, "{}: the shard holds no tokens", path);
  count_ = int64_t(h.count), vocab_ = int32_t(h.vocab), width_ = h.width;
}

int32_t Shard::at(int64_t i) const {
  const uint8_t* p = file_.data() + sizeof(Header) + size_t(i) * width_;
  uint32_t v = 0;
  std::memcpy(&v, p, width_);
  return int32_t(v);
}

void Shard::read(int64_t start, int64_t n, int32_t* out) const {
  check(start >= 0 && n >= 0 && start + n <= count_, "{}: window [{}, {}) is outside its {} tokens", file_.path(),
        start, start + n, count_);
  for (int64_t i = 0; i < n; ++i) {
    out[i] = at(start + i);
    check(out[i] < vocab_, "{}: token {} at {} is outside the vocabulary of {}", file_.path(), out[i], start + i,
          vocab_);
  }
}

void sample_windows(const Shard& s, int B, int n, Rng& rng, std::vector<int32_t>& out) {
  check(s.size() >= n, "the data holds {} tokens, fewer than one window of {}", s.size(), n);
  out.resize(size_t(B) * size_t(n));
  for (int b = 0; b < B; ++b) {
    int64_t start = int64_t(rng.below(uint64_t(s.size() - n + 1)));
    s.read(start, n, out.data() + size_t(b) * size_t(n));
  }
}

}  // namespace unmask
