// The text-level half of generation: defaults, option table, chat and stops, canvases, valid UTF-8.
#include "unmask/sampling/text.h"

#include <algorithm>
#include <iterator>

#include "unmask/base/error.h"
#include "unmask/sampling/infill.h"
#include "unmask/tokenizer/unicode.h"

namespace unmask {

namespace {

// The diffusion families and their authors' sampler.
constexpr std::pair<std::string_view, SamplerKind> kFamilySampler[] = {
    {"llada", SamplerKind::kLlada}, {"llada-moe", SamplerKind::kLlada}, {"dream", SamplerKind::kDream}};

constexpr ChatDefaults kChatDefaults[] = {
    {"llada", Remasking::kLowConfidence, DreamAlg::kEntropy, 0.0, 1.0, 32},
    {"llada-moe", Remasking::kLowConfidence, DreamAlg::kEntropy, 0.0, 1.0, 32},
    {"dream", Remasking::kLowConfidence, DreamAlg::kEntropy, 0.2, 0.95, 0},
    {"llama", Remasking::kLowConfidence, DreamAlg::kEntropy, 0.0, 1.0, 0},
    {"qwen2", Remasking::kLowConfidence, DreamAlg::kEntropy, 0.0, 1.0, 0},
};

// Which samplers read an option: a bit per SamplerKind.
constexpr unsigned bit(SamplerKind k) { return 1u << unsigned(k); }
constexpr unsigned kAr = bit(SamplerKind::kAr), kLlada = bit(SamplerKind::kLlada), kDream = bit(SamplerKind::kDream),
                   kMdlm = bit(SamplerKind::kMdlm), kBd3 = bit(SamplerKind::kBd3), kRemdm = bit(SamplerKind::kRemdm), kSpec = bit(SamplerKind::kSpec);

struct OptionReaders {
  std::string_view option;
  unsigned readers;
};
constexpr OptionReaders kOptionReaders[] = {
    {"--steps", kLlada | kDream | kMdlm | kBd3 | kRemdm},  // ar: one token per step
    {"--block-length", kLlada | kBd3},                    // llada_blocks, bd3's block
    {"--threshold", kLlada | kBd3},                       // llada commit_count, bd3 reveal
    {"--factor", kLlada},
    {"--cache", kLlada},
    {"--cfg-scale", kLlada | kDream | kMdlm | kRemdm},    // Run::logits_full's guided pair (no cache)
    {"--remasking", kLlada},
    {"--eos-last", kLlada},
    {"--alg", kDream},
    {"--alg-temp", kDream},
    {"--eps", kDream | kMdlm | kRemdm},                   // the time grid linspace(1, eps, steps + 1)
    {"--first-hitting", kBd3},
    {"--remdm", kRemdm},
    {"--eta", kRemdm},
    {"--repeat-penalty", kAr},
    {"--repeat-last-n", kAr},
    {"--no-kv-cache", kAr | kBd3},                        // the exact caches
    {"--no-ddpm-cache", kMdlm},
    {"--draft-length", kSpec},
    {"--no-fuse", kSpec},
    {"--adaptive-draft", kSpec},
    {"--draft-model", kSpec},
    {"--stop", kAr | kSpec},                              // stop strings: the caller decodes the text per step
};

}  // namespace

SamplerKind default_sampler(const ModelConfig& mc) {
  if (mc.mask == MaskKind::kCausal) return SamplerKind::kAr;
  if (mc.block_size > 0) return SamplerKind::kBd3;
  for (const auto& [arch, kind] : kFamilySampler)
    if (arch == mc.arch) return kind;
  return SamplerKind::kLlada;
}

const ChatDefaults* chat_defaults(std::string_view arch) {
  const auto* d = std::find_if(std::begin(kChatDefaults), std::end(kChatDefaults),
                               [&](const ChatDefaults& x) { return x.arch == arch; });
  return d == std::end(kChatDefaults) ? nullptr : d;
}

void apply_chat_defaults(SamplerConfig& c, std::string_view arch,
                         const std::function<bool(std::string_view)>& given) {
  const ChatDefaults* d = chat_defaults(arch);
  if (d == nullptr) return;
  auto unset = [&](std::string_view option) { return !given(option) && sampler_reads(c.kind, option); };
  if (unset("--remasking")) c.remasking = d->remasking;
  if (unset("--alg")) c.alg = d->alg;
  if (unset("--temp")) c.temperature = d->temperature;
  if (unset("--top-p")) c.top_p = d->top_p;
  if (unset("--block-length")) c.block_length = d->block_length;
}

std::vector<std::string_view> sampler_specific_options() {
  std::vector<std::string_view> names;
  for (const OptionReaders& o : kOptionReaders) names.push_back(o.option);
  return names;
}

bool sampler_reads(SamplerKind k, std::string_view option) {
  for (const OptionReaders& o : kOptionReaders)
    if (o.option == option) return (o.readers & bit(k)) != 0;
  return true;
}

void check_given_options(const SamplerConfig& c, std::span<const std::string> given) {
  for (const std::string& option : given)
    check(sampler_reads(c.kind, option), "{} does not apply to --sampler {} (that sampler never reads it)", option,
          sampler_kind_name(c.kind));
  auto was_given = [&](std::string_view o) { return std::find(given.begin(), given.end(), o) != given.end(); };
  check(!was_given("--steps") || c.steps >= 1, "--steps {}: expected at least 1 denoising step", c.steps);
  check(!was_given("--threshold") || (c.threshold > 0 && c.threshold <= 1),
        "--threshold {}: expected a value in (0, 1]", c.threshold);
}

bool Chat::is_stop(int32_t id) const { return std::find(stop_ids.begin(), stop_ids.end(), id) != stop_ids.end(); }

Chat make_chat(const Tokenizer& tok, std::string_view template_name) {
  Chat c{&resolve_chat_template(tok, template_name), {tok.role(TokenRole::kEos), tok.role(TokenRole::kEot)}};
  const std::vector<int32_t> end = tok.encode(c.tmpl->after_content, false, true);
  if (!end.empty() && tok.is_control(end[0])) c.stop_ids.push_back(end[0]);
  std::erase(c.stop_ids, -1);
  return c;
}

bool ended_turn(const Chat& chat, const StepEvent& e) {
  return std::any_of(e.committed.begin(), e.committed.end(),
                     [&](int p) { return chat.is_stop(e.canvas[size_t(p)]); });
}

std::vector<int32_t> cut_at_stop_id(std::vector<int32_t> ids, const Chat& chat) {
  ids.erase(std::find_if(ids.begin(), ids.end(), [&](int32_t id) { return chat.is_stop(id); }), ids.end());
  return ids;
}

bool holds_stop(std::string_view text, std::span<const std::string> stop) {
  return std::any_of(stop.begin(), stop.end(), [&](const std::string& s) { return text.find(s) != text.npos; });
}

std::string cut_at_stop(std::string text, std::span<const std::string> stop) {
  for (const std::string& s : stop)
    if (size_t at = text.find(s); at != std::string::npos) text.resize(at);
  return text;
}

std::string StopFilter::push(std::string_view piece) {
  if (stopped_) return {};
  held_.append(piece);
  size_t at = std::string::npos;
  for (const std::string& s : stop_) at = std::min(at, held_.find(s));
  if (at != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, at);
    held_.clear();
    return out;
  }
  size_t keep = 0;  // the longest tail of held_ that is a proper prefix of a stop string
  for (const std::string& s : stop_)
    for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k)
      if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
        keep = k;
        break;
      }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopFilter::finish() {
  std::string out;
  out.swap(held_);
  return out;
}

Canvas text_canvas(const Tokenizer& tok, std::string_view prompt) { return ids_canvas(tok.encode(prompt, true, true)); }

Canvas ids_canvas(std::vector<int32_t> ids) {
  const int n = int(ids.size());
  return Canvas{std::move(ids), n};
}

Canvas chat_canvas(const Tokenizer& tok, const Chat& chat, std::string_view message) {
  const ChatMessage m{"user", std::string(message)};
  return chat_canvas(tok, chat, {&m, 1});
}

Canvas chat_canvas(const Tokenizer& tok, const Chat& chat, std::span<const ChatMessage> messages) {
  return ids_canvas(tok.encode(apply_chat_template(*chat.tmpl, messages, true), false, true));
}

Canvas infill_text_canvas(const Tokenizer& tok, std::string_view pattern, int32_t mask_token) {
  auto enc = [&](std::string_view s) { return tok.encode(s, false, true); };
  return infill_canvas(encode_pieces(parse_infill_pattern(pattern), enc), mask_token);
}

Canvas infill_ids_canvas(std::string_view list, int32_t mask_token) {
  return infill_canvas(parse_infill_tokens(list), mask_token);
}

void check_sampler_fits(SamplerKind k, const ModelConfig& mc, bool infill, bool drafter) {
  const bool causal = mc.mask == MaskKind::kCausal, joint = mc.draft_block > 0;
  const bool spec = k == SamplerKind::kSpec && (joint || drafter);
  check(k == SamplerKind::kAr || !causal || spec || (joint && k == SamplerKind::kBd3),
        "--sampler {}: this {} model is causal; a diffusion sampler needs a bidirectional or block-causal model (use "
        "--sampler ar{})", sampler_kind_name(k), mc.arch,
        joint ? ", spec or bd3: it was trained with both" : ", or spec with a separate --draft-model");
  check(k != SamplerKind::kSpec || spec, "--sampler spec needs a model trained to decode both ways (train "
        "--objective joint), or a causal model and a separate --draft-model");
  check(k != SamplerKind::kSpec || !infill, "--infill: the spec sampler only continues a prompt");
  check(k != SamplerKind::kAr || causal, "--sampler ar needs a causal model; this {} model is {} (its default "
        "sampler is {})", mc.arch, mask_kind_name(mc.mask), sampler_kind_name(default_sampler(mc)));
  check(k != SamplerKind::kAr || !infill, "--infill: the ar sampler only continues a prompt; fill holes with a "
        "diffusion model");
}

void check_prompt_fits(const Canvas& c, const ModelConfig& mc) {
  check(int(c.tokens.size()) <= mc.ctx, "the prompt is {} tokens; the model's context is {} positions", c.tokens.size(),
        mc.ctx);
}

std::string valid_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    int len = 1;
    if (tok::decode_utf8(bytes, i, len) >= 0) {
      out.append(bytes.substr(i, size_t(len)));
      i += size_t(len);
      continue;
    }
    // Not a character: the lead byte and the continuation bytes it claims (at most its length - 1) as one U+FFFD.
    const int claimed = tok::utf8_seq_len(uint8_t(bytes[i]));
    size_t j = i + 1;
    while (j < bytes.size() && int(j - i) < claimed && (uint8_t(bytes[j]) & 0xC0) == 0x80) ++j;
    out += "\xEF\xBF\xBD";
    i = j;
  }
  return out;
}

std::string decode_text(const Tokenizer* tok, std::span<const int32_t> ids) {
  if (tok) return valid_utf8(tok->decode(ids));
  std::string s;
  for (int32_t id : ids) {
    if (!s.empty()) s += ' ';
    s += std::to_string(id);
  }
  return s;
}

FinalText::FinalText(const Tokenizer* tok, int32_t mask_token, int begin, std::vector<int32_t> stop_ids,
                     std::vector<std::string> stop)
    : tok_(tok), mask_(mask_token), begin_(begin), stop_ids_(std::move(stop_ids)), filter_(stop) {
  if (tok) text_.emplace(*tok);
}

// A piece through the stop strings; a stop string ends the text.
std::string FinalText::take(std::string piece) {
  std::string out = filter_.push(piece);
  stopped_ = stopped_ || filter_.stopped();
  return out;
}

std::string FinalText::update(std::span<const int32_t> canvas) {
  std::string out;
  for (size_t p = size_t(begin_ + read_); !stopped_ && p < canvas.size() && canvas[p] != mask_; ++p) {
    const int32_t id = canvas[p];
    if (std::find(stop_ids_.begin(), stop_ids_.end(), id) != stop_ids_.end()) {
      stopped_ = true;
      break;
    }
    ++read_;
    out += take(text_ ? text_->push(id) : (read_ > 1 ? " " : "") + std::to_string(id));
  }
  return out;
}

std::string FinalText::finish(std::span<const int32_t> canvas) {
  std::string out = update(canvas);
  if (stopped_ && filter_.stopped()) return out;
  if (text_) out += take(text_->finish());
  return out + filter_.finish();
}

std::string cell_text(const Tokenizer* tok, int32_t id) {
  if (!tok) return std::to_string(id);
  return tok->is_control(id) ? tok->token_text(id) : valid_utf8(tok->token_bytes(id));
}

}  // namespace unmask
