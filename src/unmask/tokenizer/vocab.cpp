#include "unmask/tokenizer/vocab.h"

#include <algorithm>
#include <string_view>
#include <unordered_set>

#include "unmask/base/error.h"
#include "unmask/io/gguf.h"
#include "unmask/tokenizer/pretokenize.h"

namespace unmask {

void validate_vocab(const Vocab& v, const std::string& where) {
  check(!v.tokens.empty(), "{}: the vocabulary is empty (expected at least one token)", where);
  check(v.types.size() == v.tokens.size(), "{}: {} token types for {} tokens", where, v.types.size(),
        v.tokens.size());
  check(v.scores.empty() || v.scores.size() == v.tokens.size(), "{}: {} scores for {} tokens", where,
        v.scores.size(), v.tokens.size());
  check(v.lstrip.empty() || v.lstrip.size() == v.tokens.size(), "{}: lstrip flags do not match tokens", where);
  check(v.rstrip.empty() || v.rstrip.size() == v.tokens.size(), "{}: rstrip flags do not match tokens", where);
  const std::pair<const char*, int32_t> roles[] = {{"bos", v.bos}, {"eos", v.eos}, {"eot", v.eot},
                                                   {"pad", v.pad}, {"mask", v.mask}, {"unk", v.unk}};
  for (auto [name, id] : roles) {
    check(id >= -1 && id < v.size(), "{}: {} token id {} is outside the vocabulary [0, {})", where, name, id,
          v.size());
  }
  check(!v.add_bos || v.bos >= 0, "{}: add_bos_token is set but there is no bos token id", where);
  check(!v.add_eos || v.eos >= 0, "{}: add_eos_token is set but there is no eos token id", where);
  if (v.kind == VocabKind::kSpm) check(!v.scores.empty(), "{}: a SentencePiece vocabulary needs scores", where);
  if (v.kind == VocabKind::kBpe && v.pre_patterns.empty()) {
    check(tok::Pretokenizer::is_known(v.pre), "{}: unknown pre-tokenizer '{}' (tokenizer.ggml.pre); known: {}", where,
          v.pre, tok::Pretokenizer::known_names());
  }
}

namespace {

int32_t find_text(const Vocab& v, std::string_view text) {
  for (int32_t i = 0; i < v.size(); ++i) {
    if (v.tokens[i] == text) return i;
  }
  return -1;
}

void infer_one(const Vocab& v, int32_t& id, std::initializer_list<std::string_view> texts) {
  for (auto t : texts) {
    if (id >= 0) return;
    id = find_text(v, t);
  }
}

bool is_llama3_name(std::string_view pre) {
  return pre == "llama3" || pre == "llama-bpe" || pre == "llama-v3" || pre == "falcon3";
}

}  // namespace

void infer_roles(Vocab& v) {
  infer_one(v, v.eot, {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>"});
  infer_one(v, v.mask, {"<|mdm_mask|>", "<|mask|>", "[MASK]", "<mask>"});
  infer_one(v, v.bos, {"<|begin_of_text|>", "<|startoftext|>", "<s>", "<|bos|>"});
  infer_one(v, v.eos, {"<|end_of_text|>", "<|endoftext|>", "</s>", "<|eos|>"});
  if (v.eot < 0) v.eot = v.eos;
}

bool has_vocabulary(const gguf::Reader& r) {
  if (!r.has("tokenizer.ggml.model")) return false;
  const std::string model = r.get_string("tokenizer.ggml.model");
  return model != "none" && model != "no_vocab";
}

Vocab vocab_from_gguf(const gguf::Reader& r) {
  Vocab v;
  const std::string model = r.get_string("tokenizer.ggml.model");
  check(has_vocabulary(r), "{}: the file carries no vocabulary "
        "(tokenizer.ggml.model is '{}'); give token ids, or a tokenizer file", r.path(), model);
  if (model == "gpt2") {
    v.kind = VocabKind::kBpe;
  } else if (model == "llama") {
    v.kind = VocabKind::kSpm;
  } else {
    fail("{}: tokenizer.ggml.model is '{}', expected 'gpt2' (byte-level BPE) or 'llama' (SentencePiece)", r.path(),
         model);
  }
  v.pre = r.has("tokenizer.ggml.pre") ? r.get_string("tokenizer.ggml.pre") : "default";
  v.tokens = r.get_strings("tokenizer.ggml.tokens");
  if (r.has("tokenizer.ggml.token_type")) {
    for (int64_t t : r.get_ints("tokenizer.ggml.token_type")) {
      check(t >= 0 && t <= 6, "{}: tokenizer.ggml.token_type holds {}, expected 0..6", r.path(), t);
      v.types.push_back(TokenType(t));
    }
  } else {
    v.types.assign(v.tokens.size(), TokenType::kNormal);
  }
  if (r.has("tokenizer.ggml.scores")) v.scores = r.get_floats("tokenizer.ggml.scores");
  if (r.has("tokenizer.ggml.merges")) {
    for (const auto& m : r.get_strings("tokenizer.ggml.merges")) {
      const size_t sp = m.find(' ', 1);
      check(sp != std::string::npos, "{}: merge '{}' has no space between its two tokens", r.path(), m);
      v.merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
    }
  }
  auto id = [&](const char* key) { return int32_t(r.get_int(key, -1)); };
  v.bos = id("tokenizer.ggml.bos_token_id");
  v.eos = id("tokenizer.ggml.eos_token_id");
  v.eot = id("tokenizer.ggml.eot_token_id");
  v.pad = id("tokenizer.ggml.padding_token_id");
  v.mask = id("tokenizer.ggml.mask_token_id");
  v.unk = id("tokenizer.ggml.unknown_token_id");
  const bool spm = v.kind == VocabKind::kSpm;
  v.add_bos = r.get_bool("tokenizer.ggml.add_bos_token", spm || is_llama3_name(v.pre));
  v.add_eos = r.get_bool("tokenizer.ggml.add_eos_token", false);
  v.add_space_prefix = r.get_bool("tokenizer.ggml.add_space_prefix", spm);
  v.ignore_merges = !spm && is_llama3_name(v.pre);
  if (r.has("tokenizer.chat_template")) v.chat_template = r.get_string("tokenizer.chat_template");
  validate_vocab(v, r.path());
  infer_roles(v);
  return v;
}

void vocab_to_gguf(const Vocab& v, gguf::Writer& w) {
  using gguf::Value;
  w.set("tokenizer.ggml.model", Value::str(v.kind == VocabKind::kBpe ? "gpt2" : "llama"));
  w.set("tokenizer.ggml.pre", Value::str(v.pre));
  w.set("tokenizer.ggml.tokens", Value::strings(v.tokens));
  std::vector<int32_t> types(v.types.size());
  std::transform(v.types.begin(), v.types.end(), types.begin(), [](TokenType t) { return int32_t(t); });
  w.set("tokenizer.ggml.token_type", Value::i32s(types));
  if (!v.scores.empty()) w.set("tokenizer.ggml.scores", Value::f32s(v.scores));
  if (v.kind == VocabKind::kBpe) {
    std::vector<std::string> merges;
    merges.reserve(v.merges.size());
    for (const auto& [a, b] : v.merges) merges.push_back(a + " " + b);
    w.set("tokenizer.ggml.merges", Value::strings(merges));
  }
  const std::pair<const char*, int32_t> ids[] = {
      {"tokenizer.ggml.bos_token_id", v.bos},     {"tokenizer.ggml.eos_token_id", v.eos},
      {"tokenizer.ggml.eot_token_id", v.eot},     {"tokenizer.ggml.padding_token_id", v.pad},
      {"tokenizer.ggml.mask_token_id", v.mask},   {"tokenizer.ggml.unknown_token_id", v.unk}};
  for (auto [key, id] : ids) {
    if (id >= 0) w.set(key, Value::u32(uint32_t(id)));
  }
  w.set("tokenizer.ggml.add_bos_token", Value::boolean(v.add_bos));
  w.set("tokenizer.ggml.add_eos_token", Value::boolean(v.add_eos));
  if (!v.chat_template.empty()) w.set("tokenizer.chat_template", Value::str(v.chat_template));
}

}  // namespace unmask
