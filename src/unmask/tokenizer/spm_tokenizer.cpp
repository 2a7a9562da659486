// SentencePiece (LLaMA-2, TinyLlama, SMDM): spaces become "▁", characters merge pairwise by the score of the token
// they form (highest first), and whatever is left without a token falls back to its bytes, <0xNN>.
#include <algorithm>
#include <array>
#include <cstdio>

#include "unmask/base/error.h"
#include "unmask/tokenizer/tokenizer.h"
#include "unmask/tokenizer/unicode.h"

namespace unmask {

namespace {

constexpr std::string_view kSpace = "\xe2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK

struct Sym {
  int32_t off, n, prev, next;  // bytes [off, off + n) of the escaped text; n == 0 once merged away
};
struct Pair {
  float score;
  int32_t left, right, n;
};
// The heap's order: highest score first, then leftmost.
bool later(const Pair& x, const Pair& y) { return x.score < y.score || (x.score == y.score && x.left > y.left); }

std::vector<Sym> utf8_symbols(const std::string& s) {
  std::vector<Sym> syms;
  const int32_t size = int32_t(s.size());
  for (int32_t off = 0; off < size;) {
    const int32_t n = std::min<int32_t>(tok::utf8_seq_len(uint8_t(s[off])), size - off);
    syms.push_back({off, n, int32_t(syms.size()) - 1, off + n < size ? int32_t(syms.size()) + 1 : -1});
    off += n;
  }
  return syms;
}

class SpmTokenizer final : public Tokenizer {
 public:
  explicit SpmTokenizer(Vocab vocab) : Tokenizer(std::move(vocab)) {
    for (int b = 0; b < 256; ++b) byte_ids_[b] = byte_token(uint8_t(b));
    init_pieces();
  }

 protected:
  void encode_text(std::string_view text, bool at_start, std::vector<int32_t>& out) const override;
  std::string piece_of(int32_t id) const override;

 private:
  int32_t byte_token(uint8_t b) const;
  void emit(std::string_view piece, std::vector<int32_t>& out) const;
  void push_pair(const std::string& s, std::vector<Sym>& syms, std::vector<Pair>& heap, int32_t l, int32_t r) const;
  std::array<int32_t, 256> byte_ids_{};
};

int32_t SpmTokenizer::byte_token(uint8_t b) const {
  const int32_t id = find_token(fmt::format("<0x{:02X}>", b));
  if (id >= 0) return id;
  const int32_t plain = find_token(std::string(1, char(b)));
  return plain >= 0 ? plain : vocab_.unk;  // -1 when neither: checked when such a byte is met
}

void SpmTokenizer::push_pair(const std::string& s, std::vector<Sym>& syms, std::vector<Pair>& heap, int32_t l,
                             int32_t r) const {
  if (l < 0 || r < 0) return;
  const int32_t n = syms[l].n + syms[r].n;
  const int32_t id = find_token(std::string_view(s).substr(syms[l].off, n));
  if (id < 0) return;
  heap.push_back({vocab_.scores[id], l, r, n});
  std::push_heap(heap.begin(), heap.end(), later);
}

void SpmTokenizer::encode_text(std::string_view text, bool at_start, std::vector<int32_t>& out) const {
  std::string s;
  if (vocab_.add_space_prefix && at_start) s += kSpace;
  for (char c : text) c == ' ' ? s.append(kSpace) : s.append(1, c);
  std::vector<Sym> syms = utf8_symbols(s);
  std::vector<Pair> heap;
  for (int32_t i = 1; i < int32_t(syms.size()); ++i) push_pair(s, syms, heap, i - 1, i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Pair p = heap.back();
    heap.pop_back();
    auto& l = syms[p.left];
    auto& r = syms[p.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != p.n) continue;  // stale
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = p.left;
    push_pair(s, syms, heap, l.prev, p.left);
    push_pair(s, syms, heap, p.left, l.next);
  }
  for (int32_t i = syms.empty() ? -1 : 0; i >= 0; i = syms[i].next) {
    emit(std::string_view(s).substr(syms[i].off, syms[i].n), out);
  }
}

// A symbol that is a token is that token; otherwise its bytes, <0xNN> each.
void SpmTokenizer::emit(std::string_view piece, std::vector<int32_t>& out) const {
  const int32_t id = find_token(piece);
  if (id >= 0) {
    out.push_back(id);
    return;
  }
  for (char c : piece) {
    const int32_t b = byte_ids_[uint8_t(c)];
    check(b >= 0, "SentencePiece: byte 0x{:02X} has no <0x..> token and the vocabulary has no unknown token",
          uint8_t(c));
    out.push_back(b);
  }
}

std::string SpmTokenizer::piece_of(int32_t id) const {
  const std::string& t = vocab_.tokens[id];
  switch (vocab_.types[id]) {
    case TokenType::kByte: {
      unsigned v = 0;
      if (t.size() == 6 && t.starts_with("<0x") && std::sscanf(t.c_str() + 3, "%2X", &v) == 1) return std::string(1, char(v));
      return t;
    }
    case TokenType::kNormal:
    case TokenType::kUndefined: {
      std::string out;
      for (size_t i = 0; i < t.size();) {
        if (std::string_view(t).substr(i).starts_with(kSpace)) {
          out += ' ';
          i += kSpace.size();
        } else {
          out += t[i++];
        }
      }
      return out;
    }
    case TokenType::kUnused: return {};
    default: return t;  // control, unknown, user-defined
  }
}

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(Vocab vocab) { return std::make_unique<SpmTokenizer>(std::move(vocab)); }

}  // namespace unmask
