#include "unmask/tokenizer/tokenizer.h"

#include <algorithm>
#include <filesystem>

#include "unmask/base/error.h"
#include "unmask/io/gguf.h"
#include "unmask/model/hf.h"  // a model folder's vocabulary is padded to its embedding's rows
#include "unmask/tokenizer/unicode.h"

namespace unmask {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

bool splits_text(TokenType t) {
  return t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown;
}

}  // namespace

Tokenizer::~Tokenizer() = default;

Tokenizer::Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {
  index_.reserve(vocab_.tokens.size());
  for (int32_t i = 0; i < vocab_.size(); ++i) index_.emplace(vocab_.tokens[i], i);  // first id wins on duplicates
  specials_by_byte_.resize(256);
  for (int32_t i = 0; i < vocab_.size(); ++i) {
    if (splits_text(vocab_.types[i]) && !vocab_.tokens[i].empty()) {
      specials_by_byte_[uint8_t(vocab_.tokens[i][0])].push_back(i);
    }
  }
  for (auto& ids : specials_by_byte_) {
    std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
      return vocab_.tokens[a].size() > vocab_.tokens[b].size();
    });
  }
}

void Tokenizer::init_pieces() {
  pieces_.resize(vocab_.tokens.size());
  for (int32_t i = 0; i < vocab_.size(); ++i) pieces_[i] = piece_of(i);
}

void Tokenizer::check_id(int32_t id) const {
  check(id >= 0 && id < n_vocab(), "token id {} is outside the vocabulary [0, {})", id, n_vocab());
}

const std::string& Tokenizer::token_bytes(int32_t id) const {
  check_id(id);
  return pieces_[id];
}

const std::string& Tokenizer::token_text(int32_t id) const {
  check_id(id);
  return vocab_.tokens[id];
}

int32_t Tokenizer::find_token(std::string_view text) const {
  auto it = index_.find(text);
  return it == index_.end() ? -1 : it->second;
}

bool Tokenizer::is_control(int32_t id) const {
  check_id(id);
  return vocab_.types[id] == TokenType::kControl || vocab_.types[id] == TokenType::kUnknown;
}

int32_t Tokenizer::role(TokenRole r) const {
  switch (r) {
    case TokenRole::kBos: return vocab_.bos;
    case TokenRole::kEos: return vocab_.eos;
    case TokenRole::kEot: return vocab_.eot;
    case TokenRole::kPad: return vocab_.pad;
    case TokenRole::kMask: return vocab_.mask;
    case TokenRole::kUnk: return vocab_.unk;
  }
  return -1;
}

// Cuts text at the special tokens it holds, leftmost first and the longest at a position. A token with lstrip eats
// the whitespace before it, one with rstrip the whitespace after it.
void Tokenizer::split_special(std::string_view text, bool parse_special, std::vector<Fragment>& out) const {
  size_t start = 0;  // first byte of the pending plain text
  for (size_t i = 0; i < text.size();) {
    int32_t hit = -1;
    for (int32_t id : specials_by_byte_[uint8_t(text[i])]) {
      if (!parse_special && vocab_.types[id] != TokenType::kUserDefined) continue;
      if (text.substr(i).starts_with(vocab_.tokens[id])) {
        hit = id;
        break;
      }
    }
    if (hit < 0) {
      ++i;
      continue;
    }
    size_t end = i;
    if (!vocab_.lstrip.empty() && vocab_.lstrip[hit]) {
      while (end > start && is_space(text[end - 1])) --end;
    }
    if (end > start) out.push_back({text.substr(start, end - start), -1});
    out.push_back({{}, hit});
    i += vocab_.tokens[hit].size();
    if (!vocab_.rstrip.empty() && vocab_.rstrip[hit]) {
      while (i < text.size() && is_space(text[i])) ++i;
    }
    start = i;
  }
  if (start < text.size()) out.push_back({text.substr(start), -1});
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<Fragment> frags;
  split_special(text, parse_special, frags);
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  bool at_start = true;
  for (const auto& f : frags) {
    if (f.id >= 0) {
      out.push_back(f.id);
      at_start = true;
    } else {
      encode_text(f.text, at_start, out);
      at_start = false;
    }
  }
  if (add_special && vocab_.add_bos && (out.empty() || out.front() != vocab_.bos)) out.insert(out.begin(), vocab_.bos);
  if (add_special && vocab_.add_eos && (out.empty() || out.back() != vocab_.eos)) out.push_back(vocab_.eos);
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  StreamDecoder d(*this, skip_special);
  std::string out;
  for (int32_t id : ids) out += d.push(id);
  out += d.finish();
  return out;
}

std::string StreamDecoder::push(int32_t id) {
  const std::string& piece = tok_.token_bytes(id);
  if (skip_special_ && tok_.is_control(id)) return {};
  std::string_view p = piece;
  if (!started_ && !p.empty()) {
    started_ = true;
    if (tok_.strips_leading_space() && !tok_.is_control(id) && p.front() == ' ') p.remove_prefix(1);
  }
  held_.append(p);
  const size_t n = tok::utf8_printable_prefix(held_);
  std::string out = held_.substr(0, n);
  held_.erase(0, n);
  return out;
}

std::string StreamDecoder::finish() {
  std::string out;
  out.swap(held_);
  return out;
}

std::unique_ptr<Tokenizer> load_tokenizer(const gguf::Reader& reader) { return make_tokenizer(vocab_from_gguf(reader)); }

std::unique_ptr<Tokenizer> load_tokenizer_json(const std::string& path) { return make_tokenizer(vocab_from_json(path)); }

std::unique_ptr<Tokenizer> load_tokenizer_file(const std::string& path) {
  if (path.ends_with(".json")) return load_tokenizer_json(path);
  if (is_hf_folder(path)) return load_hf_tokenizer(path);  // padded to the embedding's rows
  if (std::filesystem::is_directory(path))
    return load_tokenizer_json((std::filesystem::path(path) / "tokenizer.json").string());
  gguf::Reader reader(path);
  return load_tokenizer(reader);
}

std::unique_ptr<Tokenizer> model_tokenizer(const std::string& path) {
  if (!std::filesystem::is_directory(path) && !has_vocabulary(gguf::Reader(path))) return nullptr;
  return load_tokenizer_file(path);
}

}  // namespace unmask
