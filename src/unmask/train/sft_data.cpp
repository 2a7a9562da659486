#include "unmask/train/sft_data.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>

#include "unmask/base/error.h"
#include "unmask/tokenizer/tokenizer.h"

namespace unmask {

namespace {

// ---- JSONL ------------------------------------------------------------------------------------------------------

std::string string_field(const nlohmann::json& j, const char* key, const std::string& where) {
  check(j.is_object() && j.contains(key), "{}: missing field \"{}\"", where, key);
  check(j.at(key).is_string(), "{}: field \"{}\" is a {}, expected a string", where, key, j.at(key).type_name());
  return j.at(key).get<std::string>();
}

SftPair pair_of_messages(const nlohmann::json& msgs, const std::string& where) {
  check(msgs.is_array() && msgs.size() >= 2, "{}: \"messages\" must be an array of at least two messages (a prompt "
        "and the assistant's response)", where);
  SftPair p;
  for (size_t i = 0; i < msgs.size(); ++i) {
    const std::string at = fmt::format("{}: message {}", where, i);
    p.prompt.push_back({string_field(msgs[i], "role", at), string_field(msgs[i], "content", at)});
  }
  check(p.prompt.back().role == "assistant", "{}: the last message has role \"{}\", expected \"assistant\" (it is "
        "the response)", where, p.prompt.back().role);
  p.response = std::move(p.prompt.back().content);
  p.prompt.pop_back();
  return p;
}

SftPair parse_line(std::string_view line, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON ({})", where, e.what());
  }
  check(j.is_object(), "{}: a {}, expected an object with \"prompt\" and \"response\" or with \"messages\"", where,
        j.type_name());
  if (j.contains("messages")) return pair_of_messages(j.at("messages"), where);
  check(j.contains("prompt") || j.contains("response"), "{}: neither \"prompt\"/\"response\" nor \"messages\"", where);
  SftPair p;
  p.prompt.push_back({"user", string_field(j, "prompt", where)});
  p.response = string_field(j, "response", where);
  return p;
}

// ---- the shard --------------------------------------------------------------------------------------------------

constexpr char kMagic[8] = {'U', 'N', 'M', 'A', 'S', 'K', 'S', 'F'};
constexpr uint32_t kVersion = 1;

struct Header {
  char magic[8];
  uint32_t version, vocab;
  uint64_t examples, tokens;
  int32_t pad;
  uint32_t max_prompt, max_len, reserved;
};
static_assert(sizeof(Header) == 48);

struct Record {
  uint32_t prompt_len, len;
};
static_assert(sizeof(Record) == 8);

std::string_view trim(std::string_view s) {
  const auto ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  return b == std::string_view::npos ? std::string_view{} : s.substr(b, s.find_last_not_of(ws) - b + 1);
}

}  // namespace

std::vector<SftPair> parse_sft_jsonl(std::string_view text, const std::string& path) {
  std::vector<SftPair> out;
  int line_no = 0;
  for (size_t at = 0; at < text.size();) {
    size_t end = std::min(text.find('\n', at), text.size());
    std::string_view line = text.substr(at, end - at);
    at = end + 1, ++line_no;
    if (trim(line).empty()) continue;
    out.push_back(parse_line(line, fmt::format("{}:{}", path, line_no)));
    out.back().line = line_no;
  }
  check(!out.empty(), "{}: no examples (the file is empty or blank); expected one JSON object per line", path);
  return out;
}

int32_t sft_terminator(const ChatTemplate& t, const Tokenizer& tok) {
  int32_t id = tok.find_token(trim(t.after_content));
  if (id < 0) id = tok.role(TokenRole::kEot);
  if (id < 0) id = tok.role(TokenRole::kEos);
  check(id >= 0, "chat template {}: the vocabulary has neither its end-of-turn token '{}' nor an EOT or EOS token to "
        "end a response", t.name, trim(t.after_content));
  return id;
}

int32_t sft_pad(const Tokenizer& tok) {
  int32_t id = tok.role(TokenRole::kEos);
  if (id < 0) id = tok.role(TokenRole::kEot);
  check(id >= 0, "the vocabulary has no EOS (or EOT) token to pad the answers of fine-tuning examples with");
  return id;
}

SftExample render_sft_example(const SftPair& p, const ChatTemplate& t, const Tokenizer& tok, int32_t terminator) {
  SftExample e;
  e.tokens = tok.encode(apply_chat_template(t, p.prompt, /*add_generation_prompt=*/true), false, true);
  e.prompt_len = int32_t(e.tokens.size());
  const std::string_view response = t.trim_content ? trim(p.response) : std::string_view(p.response);
  auto r = tok.encode(response, false, false);  // the response's text is text, never control tokens
  e.tokens.insert(e.tokens.end(), r.begin(), r.end());
  e.tokens.push_back(terminator);
  return e;
}

void write_sft_shard(const std::string& path, std::span<const SftExample> examples, int32_t vocab, int32_t pad) {
  check(vocab > 0 && pad >= 0 && pad < vocab, "{}: vocabulary size {} and pad token {} (expected 0 <= pad < vocab)",
        path, vocab, pad);
  check(!examples.empty(), "{}: no examples to write", path);
  Header h{};
  std::memcpy(h.magic, kMagic, 8);
  h.version = kVersion, h.vocab = uint32_t(vocab), h.pad = pad, h.examples = examples.size();
  std::vector<Record> recs;
  std::vector<uint32_t> toks;
  for (size_t i = 0; i < examples.size(); ++i) {
    const SftExample& e = examples[i];
    check(e.prompt_len >= 0 && size_t(e.prompt_len) < e.tokens.size(), "{}: example {} has a prompt of {} of its {} "
          "tokens; expected at least one answer token", path, i, e.prompt_len, e.tokens.size());
    for (int32_t t : e.tokens)
      check(t >= 0 && t < vocab, "{}: example {} holds token {}, outside the vocabulary of {}", path, i, t, vocab);
    recs.push_back({uint32_t(e.prompt_len), uint32_t(e.tokens.size())});
    toks.insert(toks.end(), e.tokens.begin(), e.tokens.end());
    h.max_prompt = std::max(h.max_prompt, uint32_t(e.prompt_len));
    h.max_len = std::max(h.max_len, uint32_t(e.tokens.size()));
  }
  h.tokens = toks.size();
  AtomicFile f(path);
  f.write(&h, sizeof h);
  f.write(recs.data(), recs.size() * sizeof(Record));
  f.write(toks.data(), toks.size() * sizeof(uint32_t));
  f.commit();
}

SftShard::SftShard(const std::string& path) : file_(path) {
  Header h;
  check(file_.size() >= sizeof h, "{}: {} bytes, too short for an example shard header ({} bytes)", path,
        file_.size(), sizeof h);
  std::memcpy(&h, file_.data(), sizeof h);
  check(std::memcmp(h.magic, kMagic, 8) == 0, "{}: not an example shard (bad magic; expected UNMASKSF)", path);
  check(h.version == kVersion, "{}: example shard version {}, expected {}", path, h.version, kVersion);
  check(h.vocab > 0 && h.vocab <= (1u << 31) - 1, "{}: vocabulary size {} is invalid", path, h.vocab);
  check(h.pad >= 0 && uint32_t(h.pad) < h.vocab, "{}: pad token {} is outside the vocabulary of {}", path, h.pad,
        h.vocab);
  check(h.examples > 0, "{}: the shard holds no examples", path);
  const size_t body = file_.size() - sizeof h;
  check(h.examples <= body / sizeof(Record) && h.tokens <= (body - h.examples * sizeof(Record)) / 4 &&
        h.examples * sizeof(Record) + h.tokens * 4 == body,
        "{}: header says {} examples and {} tokens ({} bytes) but the file holds {} bytes after the header", path,
        h.examples, h.tokens, h.examples * sizeof(Record) + h.tokens * 4, body);
  vocab_ = int32_t(h.vocab), pad_ = h.pad;
  const uint8_t* p = file_.data() + sizeof h;
  int64_t total = 0;
  for (uint64_t i = 0; i < h.examples; ++i) {
    Record r;
    std::memcpy(&r, p + i * sizeof r, sizeof r);
    check(r.prompt_len < r.len && uint64_t(r.len) <= h.tokens - uint64_t(total), "{}: example {} claims {} tokens "
          "with a prompt of {} ({} of the {} tokens left); expected 0 <= prompt < length <= tokens left", path, i,
          r.len, r.prompt_len, h.tokens - uint64_t(total), h.tokens);
    begin_.push_back(total), prompt_len_.push_back(int32_t(r.prompt_len)), len_.push_back(int32_t(r.len));
    max_prompt_ = std::max(max_prompt_, int32_t(r.prompt_len));
    total += r.len;
  }
  check(uint64_t(total) == h.tokens, "{}: the examples hold {} tokens, the header says {}", path, total, h.tokens);
  const uint8_t* toks = p + h.examples * sizeof(Record);
  for (uint64_t i = 0; i < h.tokens; ++i) {
    uint32_t t;
    std::memcpy(&t, toks + i * 4, 4);
    check(t < h.vocab, "{}: token {} at {} is outside the vocabulary of {}", path, t, i, h.vocab);
  }
}

int32_t SftShard::read(int64_t i, int T, int32_t* out) const {
  check(i >= 0 && i < size(), "{}: example {} of {}", path(), i, size());
  const int32_t P = prompt_len_[size_t(i)];
  check(P < T, "{}: example {} has a prompt of {} tokens; a sequence of {} leaves no room for its answer (raise "
        "--seq-len above {})", path(), i, P, T, max_prompt_);
  const int n = std::min(T, len_[size_t(i)]);  // the response is cut, the prompt never
  std::memcpy(out, file_.data() + sizeof(Header) + size_t(size()) * sizeof(Record) + size_t(begin_[size_t(i)]) * 4,
              size_t(n) * 4);
  std::fill(out + n, out + T, pad_);
  return P;
}

void sample_examples(const SftShard& s, int B, int T, Rng& rng, std::vector<int32_t>& seqs,
                     std::vector<int32_t>& prompt_lens) {
  seqs.resize(size_t(B) * size_t(T));
  prompt_lens.resize(size_t(B));
  for (int b = 0; b < B; ++b)
    prompt_lens[size_t(b)] = s.read(int64_t(rng.below(uint64_t(s.size()))), T, seqs.data() + size_t(b) * T);
}

}  // namespace unmask
