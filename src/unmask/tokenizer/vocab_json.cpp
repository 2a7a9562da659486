// Hugging Face tokenizer.json (+ tokenizer_config.json beside it) -> Vocab.
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "unmask/base/error.h"
#include "unmask/tokenizer/pretokenize.h"
#include "unmask/tokenizer/vocab.h"

namespace unmask {

namespace {

using nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream in(path);
  check(bool(in), "{}: cannot open for reading", path);
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
}

std::string escape_regex(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}-/").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

// Appends the regexes of one pre-tokenizer node; sets byte_level when a ByteLevel step is present.
void add_pre(const json& node, const std::string& path, std::vector<std::string>& out, bool& byte_level) {
  if (node.is_null()) return;
  const std::string type = node.value("type", "");
  if (type == "Sequence") {
    for (const auto& child : node.at("pretokenizers")) add_pre(child, path, out, byte_level);
  } else if (type == "ByteLevel") {
    byte_level = true;
    check(!node.value("add_prefix_space", false), "{}: ByteLevel with add_prefix_space is not supported", path);
    if (node.value("use_regex", true)) out.push_back(tok::kGpt2Pattern);
  } else if (type == "Split") {
    const std::string behavior = node.value("behavior", "Isolated");
    check(behavior == "Isolated", "{}: Split behavior '{}' is not supported (expected Isolated)", path, behavior);
    check(!node.value("invert", false), "{}: Split with invert is not supported", path);
    const json& pat = node.at("pattern");
    out.push_back(pat.contains("Regex") ? pat.at("Regex").get<std::string>()
                                        : escape_regex(pat.at("String").get<std::string>()));
  } else if (type == "Digits") {
    out.push_back(node.value("individual_digits", false) ? "\\p{N}" : "\\p{N}+");
  } else {
    fail("{}: pre_tokenizer type '{}' is not supported (expected ByteLevel, Split, Digits or Sequence)", path, type);
  }
}

void read_merges(const json& merges, const std::string& path, Vocab& v) {
  for (const auto& m : merges) {
    if (m.is_string()) {  // "a b"
      const auto s = m.get<std::string>();
      const size_t sp = s.find(' ', 1);
      check(sp != std::string::npos, "{}: merge '{}' has no space between its two tokens", path, s);
      v.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else {  // ["a", "b"]
      check(m.is_array() && m.size() == 2, "{}: merge {} is neither \"a b\" nor [a, b]", path, m.dump());
      v.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    }
  }
}

// Places text at the id j holds into v.tokens, growing it, and returns the id; holes are checked by the caller.
// The id must be a JSON integer in 0..2^24: nlohmann's get<int64_t>() converts a float such as 2.7e62 unchecked
// (undefined behaviour). Nonnegative JSON integers parse as unsigned.
int64_t place(Vocab& v, const json& j, const std::string& text, TokenType type, const std::string& path) {
  check(j.is_number_unsigned() && j.get<uint64_t>() < (uint64_t(1) << 24),
        "{}: token '{}' has id {}, expected an integer in 0..2^24", path, text, j.dump());
  const auto id = int64_t(j.get<uint64_t>());
  if (id >= v.size()) {
    v.tokens.resize(id + 1);
    v.types.resize(id + 1, TokenType::kUndefined);
  }
  v.tokens[id] = text;
  v.types[id] = type;
  return id;
}

std::string token_content(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content")) return j.at("content").get<std::string>();
  return {};
}

void read_config(const std::string& config_path, Vocab& v) {
  const json c = read_json(config_path);
  auto role = [&](const char* key, int32_t& id) {
    if (!c.contains(key)) return;
    const std::string text = token_content(c.at(key));
    for (int32_t i = 0; i < v.size() && !text.empty(); ++i) {
      if (v.tokens[i] == text) id = i;
    }
  };
  role("bos_token", v.bos);
  role("eos_token", v.eos);
  role("pad_token", v.pad);
  role("mask_token", v.mask);
  role("unk_token", v.unk);
  if (c.contains("add_bos_token") && c.at("add_bos_token").is_boolean()) v.add_bos = c.at("add_bos_token");
  if (c.contains("add_eos_token") && c.at("add_eos_token").is_boolean()) v.add_eos = c.at("add_eos_token");
  if (c.contains("chat_template") && c.at("chat_template").is_string()) v.chat_template = c.at("chat_template");
}

Vocab parse_tokenizer_json(const json& j, const std::string& path) {
  check(j.contains("model") && j.at("model").is_object(), "{}: no \"model\" object", path);
  const json& model = j.at("model");
  const std::string type = model.value("type", "BPE");
  check(type == "BPE", "{}: model type '{}' is not supported (expected BPE)", path, type);
  Vocab v;
  v.kind = VocabKind::kBpe;
  v.pre = "custom";
  v.add_space_prefix = false;
  bool byte_level = j.contains("decoder") && j.at("decoder").is_object() &&
                    j.at("decoder").value("type", "") == "ByteLevel";
  if (j.contains("pre_tokenizer")) add_pre(j.at("pre_tokenizer"), path, v.pre_patterns, byte_level);
  check(byte_level, "{}: only byte-level BPE is supported (expected a ByteLevel pre-tokenizer or decoder)", path);
  if (v.pre_patterns.empty()) v.pre_patterns.push_back("(?s).+");  // no split: the whole text is one word
  v.ignore_merges = model.value("ignore_merges", false);
  for (const auto& [text, id] : model.at("vocab").items()) place(v, id, text, TokenType::kNormal, path);
  if (model.contains("merges")) read_merges(model.at("merges"), path, v);
  if (j.contains("added_tokens")) {
    for (const auto& a : j.at("added_tokens")) {
      const int64_t id = place(v, a.at("id"), a.at("content").get<std::string>(),
                               a.value("special", false) ? TokenType::kControl : TokenType::kUserDefined, path);
      v.lstrip.resize(v.tokens.size(), 0);
      v.rstrip.resize(v.tokens.size(), 0);
      v.lstrip[id] = a.value("lstrip", false);
      v.rstrip[id] = a.value("rstrip", false);
    }
  }
  if (!v.lstrip.empty()) {
    v.lstrip.resize(v.tokens.size(), 0);
    v.rstrip.resize(v.tokens.size(), 0);
  }
  for (int32_t i = 0; i < v.size(); ++i) {
    check(v.types[i] != TokenType::kUndefined, "{}: no token has id {} (ids must be 0..{} without gaps)", path, i,
          v.size() - 1);
  }
  const auto config = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(config)) read_config(config.string(), v);
  return v;
}

}  // namespace

Vocab vocab_from_json(const std::string& path) {
  const json j = read_json(path);
  Vocab v;
  try {
    v = parse_tokenizer_json(j, path);
  } catch (const json::exception& e) {  // a field of the wrong type or missing
    fail("{}: unexpected tokenizer.json layout: {}", path, e.what());
  }
  validate_vocab(v, path);
  infer_roles(v);
  return v;
}

}  // namespace unmask
