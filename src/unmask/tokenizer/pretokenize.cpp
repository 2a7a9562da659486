#define PCRE2_CODE_UNIT_WIDTH 8
#include "unmask/tokenizer/pretokenize.h"

#include <pcre2.h>

#include <algorithm>
#include <utility>

#include "unmask/base/error.h"

namespace unmask::tok {

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

// The contractions of LLaMA-3 and Qwen2, written case-insensitive by hand as those tokenizer.json files mean.
constexpr const char* kLlama3Pattern =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|)"
    R"( ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Pattern =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|)"
    R"( ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Ling / BailingMoE (LLaDA-MoE, LLaDA 2): one digit at a time, newlines one at a time after whitespace.
constexpr const char* kBailingPattern =
    R"('(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|)"
    R"( ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)";
constexpr const char* kGpt2NoTail = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
constexpr const char* kDeepseekLetters =
    "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af\u0370-\u0373"
    "\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481\u048a-\u052f"
    "\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77"
    "\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d"
    "\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4"
    "\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139"
    "\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d"
    "\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a"
    "\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2"
    "\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943]+";
constexpr const char* kCjk = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+";

struct Named {
  std::vector<std::string_view> names;
  std::vector<std::string> patterns;
};

const std::vector<Named>& table() {
  static const std::vector<Named> t = {
      {{"default"},
       {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2NoTail, R"(\p{N}+)", "[0-9][0-9][0-9]"}},
      {{"gpt2", "gpt-2", "gpt-neox", "mpt", "olmo", "phi-2", "jais", "exaone4"}, {kGpt2Pattern}},
      {{"llama3", "llama-bpe", "llama-v3", "falcon3", "dbrx", "smaug-bpe", "chatglm-bpe", "glm4"}, {kLlama3Pattern}},
      {{"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez", "hunyuan"}, {kQwen2Pattern}},
      {{"bailingmoe", "bailingmoe2", "llada", "llada-moe", "ling"}, {kBailingPattern}},
      {{"deepseek-llm"},
       {"[\r\n]", kDeepseekLetters, "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+", "\\s+$",
        kCjk, "\\p{N}+"}},
      {{"deepseek-coder"}, {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kCjk, "\\p{N}"}},
      {{"falcon"}, {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2NoTail, "[0-9][0-9][0-9]"}},
      {{"starcoder", "refact", "smollm", "command-r", "codeshell", "exaone", "minerva-7b"},
       {R"(\p{N})", kGpt2NoTail}},
  };
  return t;
}

}  // namespace

std::vector<std::string> Pretokenizer::patterns_for(std::string_view name) {
  for (const auto& entry : table()) {
    if (std::find(entry.names.begin(), entry.names.end(), name) != entry.names.end()) return entry.patterns;
  }
  fail("unknown pre-tokenizer '{}' (tokenizer.ggml.pre); known: {}", name, known_names());
}

bool Pretokenizer::is_known(std::string_view name) {
  for (const auto& entry : table()) {
    if (std::find(entry.names.begin(), entry.names.end(), name) != entry.names.end()) return true;
  }
  return false;
}

std::string Pretokenizer::known_names() {
  std::string out;
  for (const auto& entry : table()) {
    for (auto n : entry.names) {
      if (!out.empty()) out += ", ";
      out += n;
    }
  }
  return out;
}

Pretokenizer Pretokenizer::by_name(std::string_view name) { return Pretokenizer(patterns_for(name)); }

// ---------------------------------------------------------------------------------------------------------------

struct Pretokenizer::Regex {
  pcre2_code* code = nullptr;
  bool jit = false;
  std::string pattern;
  ~Regex() { pcre2_code_free(code); }

  explicit Regex(std::string p) : pattern(std::move(p)) {
    int err = 0;
    PCRE2_SIZE off = 0;
    const uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY;
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), opts, &err, &off, nullptr);
    if (!code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      fail("pre-tokenizer regex '{}': {} at offset {}", pattern, reinterpret_cast<const char*>(msg), off);
    }
    jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  }

  // Cuts one piece into matches and gaps.
  void cut(std::string_view s, pcre2_match_data* md, pcre2_match_context* mc,
           std::vector<std::string_view>& out) const;
};

void Pretokenizer::Regex::cut(std::string_view s, pcre2_match_data* md, pcre2_match_context* mc,
                              std::vector<std::string_view>& out) const {
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
  size_t pos = 0, emitted = 0;
  while (pos < s.size()) {
    const int rc = jit ? pcre2_jit_match(code, subject, s.size(), pos, 0, md, mc)
                       : pcre2_match(code, subject, s.size(), pos, 0, md, mc);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      fail("pre-tokenizer regex '{}': matching failed at byte {}: {}", pattern, pos,
           reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (e == b) {  // an empty match cuts nothing; move on one byte
      pos = b + 1;
      continue;
    }
    if (b > emitted) out.push_back(s.substr(emitted, b - emitted));
    out.push_back(s.substr(b, e - b));
    emitted = pos = e;
  }
  if (emitted < s.size()) out.push_back(s.substr(emitted));
}

Pretokenizer::Pretokenizer(const std::vector<std::string>& patterns) {
  for (const auto& p : patterns) regexes_.push_back(std::make_unique<Regex>(p));
}
Pretokenizer::~Pretokenizer() = default;
Pretokenizer::Pretokenizer(Pretokenizer&&) noexcept = default;
Pretokenizer& Pretokenizer::operator=(Pretokenizer&&) noexcept = default;

void Pretokenizer::split(std::string_view text, std::vector<std::string_view>& pieces) const {
  if (text.empty()) return;
  if (regexes_.empty()) {
    pieces.push_back(text);
    return;
  }
  // Scratch for this call: match data sized for the largest pattern, and a JIT stack big enough for long runs.
  pcre2_match_data* md = pcre2_match_data_create(8, nullptr);
  pcre2_match_context* mc = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
  pcre2_jit_stack_assign(mc, nullptr, stack);
  std::vector<std::string_view> cur{text}, next;
  try {
    for (size_t r = 0; r < regexes_.size(); ++r) {
      auto& dst = r + 1 == regexes_.size() ? pieces : next;
      for (auto piece : cur) regexes_[r]->cut(piece, md, mc, dst);
      if (&dst == &next) {
        cur.swap(next);
        next.clear();
      }
    }
  } catch (...) {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(mc);
    pcre2_match_data_free(md);
    throw;
  }
  pcre2_jit_stack_free(stack);
  pcre2_match_context_free(mc);
  pcre2_match_data_free(md);
}

}  // namespace unmask::tok
