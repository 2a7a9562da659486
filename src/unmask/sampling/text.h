// The text-level half of generation, shared by the command line, the demo and (later) the server: the sampler each
// model family decodes with by default and its authors' chat settings, which sampler options each sampler reads,
// chat templates and stops, canvases built from text, ids or infill patterns, and text that is always valid UTF-8.
//
//   const SamplerKind kind = default_sampler(model.config());          // ar for a causal model, llada for LLaDA ...
//   Canvas c = text_canvas(*tok, "And God said");                      // prompt ids (with BOS), prompt_length = 3
//   GenerateResult r = generate(bb, cfg, c.tokens);
//   std::string text = valid_utf8(tok->decode(r.output(eos)));        // U+FFFD where the bytes are not UTF-8
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "unmask/model/config.h"
#include "unmask/sampling/sampler.h"
#include "unmask/tokenizer/chat.h"
#include "unmask/tokenizer/tokenizer.h"

namespace unmask {

// ---- per-architecture defaults

// The sampler a model decodes with when none is asked for: ar for a causal model, bd3 for a block-causal one
// (block_size > 0), and its authors' sampler for each diffusion family (llada and llada-moe: llada; dream: dream;
// any other bidirectional model: llada).
SamplerKind default_sampler(const ModelConfig& mc);

// The sampler settings each instruct family's authors publish (LLaDA's generate.py/chat.py; Dream's README:
// diffusion_generate(steps = max_new_tokens, temperature 0.2, top_p 0.95, alg "entropy")); steps stay one per
// generated token, the default.
struct ChatDefaults {
  std::string_view arch;
  Remasking remasking;
  DreamAlg alg;
  double temperature, top_p;
  int block_length;  // 0: the whole generation
};
const ChatDefaults* chat_defaults(std::string_view arch);  // null for a family without published settings
// The chat defaults of c.kind's family for the options the user did not give and the sampler reads; given(option):
// whether the user set it, by command-line name ("--temp"). Nothing changes for a family without defaults.
void apply_chat_defaults(SamplerConfig& c, std::string_view arch,
                         const std::function<bool(std::string_view)>& given);

// ---- which options each sampler reads

// The options only some samplers read, by command-line name ("--threshold"), from the sampler code (ar.cpp,
// llada.cpp, dream.cpp, mdlm.cpp, bd3.cpp, run.cpp). Options every sampler reads (-n, --temp, --top-k, --top-p,
// --min-p, --seed, --ignore-eos) are not listed.
std::vector<std::string_view> sampler_specific_options();
bool sampler_reads(SamplerKind k, std::string_view option);  // true for an option every sampler reads
// Throws Error for the first of `given` (the options the user passed, by command-line name) that the sampler c.kind
// does not read ("--threshold does not apply to --sampler mdlm"), and for a given value that the library would take
// as unset: --steps below 1 (inside, -1 means one per position), --threshold outside (0, 1] (inside, 0 means off).
void check_given_options(const SamplerConfig& c, std::span<const std::string> given);

// ---- chat and stops

// A chat: the template a message goes into, and the ids that end the assistant's turn (the vocabulary's EOS and EOT,
// and the template's end-of-turn token: LLaDA's <|eot_id|>, ChatML's <|im_end|>).
struct Chat {
  const ChatTemplate* tmpl = nullptr;
  std::vector<int32_t> stop_ids;
  bool is_stop(int32_t id) const;
};
// The model's template, or the one named by template_name when it is not empty.
Chat make_chat(const Tokenizer& tok, std::string_view template_name);

// Whether the generated part of an AR step's canvas ends the chat's turn (its committed token is a stop id).
bool ended_turn(const Chat& chat, const StepEvent& e);
// The ids before the first stop id (a diffusion sampler fills the rest of the canvas after it, as LLaDA's reference
// pads with EOS).
std::vector<int32_t> cut_at_stop_id(std::vector<int32_t> ids, const Chat& chat);

bool holds_stop(std::string_view text, std::span<const std::string> stop);  // text contains one of the strings
std::string cut_at_stop(std::string text, std::span<const std::string> stop);  // text before the first of them

// Streams text past stop strings: push() returns what can be printed now, that is everything before the first stop
// string once one has appeared (stopped() is then true and the rest is dropped), otherwise all but the longest tail
// that could still become the start of one. The pieces and finish() concatenated equal cut_at_stop() of the whole.
class StopFilter {
 public:
  explicit StopFilter(std::span<const std::string> stop) : stop_(stop.begin(), stop.end()) {}
  std::string push(std::string_view piece);
  std::string finish();  // the held tail (empty once stopped)
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stop_;
  std::string held_;
  bool stopped_ = false;
};

// ---- canvases from text


// The prompt's ids with the vocabulary's BOS (special tokens written in the text are parsed), prompt_length = all.
Canvas text_canvas(const Tokenizer& tok, std::string_view prompt);
// Ids as given, prompt_length = all.
Canvas ids_canvas(std::vector<int32_t> ids);
// A user message in the chat's template with the assistant's turn opened (as Hugging Face's apply_chat_template:
// the template carries the BOS, nothing is added around it).
Canvas chat_canvas(const Tokenizer& tok, const Chat& chat, std::string_view message);
Canvas chat_canvas(const Tokenizer& tok, const Chat& chat, std::span<const ChatMessage> messages);  // a conversation
// Infill patterns: "The [MASK:12] of the world" (text), "1,2,M12,3" (ids); prompt_length 0.
Canvas infill_text_canvas(const Tokenizer& tok, std::string_view pattern, int32_t mask_token);
Canvas infill_ids_canvas(std::string_view list, int32_t mask_token);

// Throws Error when the sampler cannot run on the model: a diffusion sampler on a causal model (whatever its
// vocabulary holds), ar on a bidirectional one, ar over an infill canvas (it only continues a prompt). drafter: spec
// has a separate draft model (--draft-model), so a plain causal model may run it.
void check_sampler_fits(SamplerKind k, const ModelConfig& mc, bool infill, bool drafter = false);

// Throws Error when the canvas's prompt alone does not fit the model's context (one clear line, before any
// generation-length arithmetic): "the prompt is 600 tokens; the model's context is 512 positions".
void check_prompt_fits(const Canvas& c, const ModelConfig& mc);

// ---- text that is always valid UTF-8

// bytes as valid UTF-8: each sequence that is not a character (a stray continuation byte, a byte that never occurs
// in UTF-8, a lead byte with the continuation bytes that follow it but not enough of them) becomes one U+FFFD.
std::string valid_utf8(std::string_view bytes);

// ids as valid UTF-8 text (the tokenizer's decode through valid_utf8), or the ids joined by spaces without one.
std::string decode_text(const Tokenizer* tok, std::span<const int32_t> ids);

// Streams ids as valid UTF-8: a character split across tokens waits for the token that completes it; bytes that can
// never become a character come out as U+FFFD at once. The pieces concatenated equal decode_text() of all ids.
class TextStream {
 public:
  explicit TextStream(const Tokenizer& tok) : dec_(tok) {}
  std::string push(int32_t id) { return valid_utf8(dec_.push(id)); }
  std::string finish() { return valid_utf8(dec_.finish()); }

 private:
  StreamDecoder dec_;
};

// ---- the text of a run as it becomes final

// The generated text read left to right as positions become final: at each step the positions from `begin` on are
// taken in order while they are committed; a stop id (EOS, the chat's end of turn) or a stop string ends the text.
// The pieces update() returns and finish() concatenated equal the text of the finished canvas from `begin`, cut before
// its first stop id and its first stop string: what the run says, whether it is streamed or not. Once stopped() the
// rest of the canvas cannot change the text, so a run may be cut short there (not under ReMDM, which remasks
// committed positions: read it with finish() alone). Without a tokenizer the text is the ids joined by spaces.
class FinalText {
 public:
  // stop_ids empty: no id stops the text (an infill canvas is read whole).
  FinalText(const Tokenizer* tok, int32_t mask_token, int begin, std::vector<int32_t> stop_ids,
            std::vector<std::string> stop);
  std::string update(std::span<const int32_t> canvas);  // the text that became final since the last call
  std::string finish(std::span<const int32_t> canvas);  // the rest, at the end of the run
  bool stopped() const { return stopped_; }
  bool stopped_by_string() const { return filter_.stopped(); }
  int tokens() const { return read_; }  // positions read before the stop: the completion's tokens

 private:
  std::string take(std::string piece);

  const Tokenizer* tok_;
  int32_t mask_;
  int begin_;
  std::vector<int32_t> stop_ids_;
  std::optional<TextStream> text_;
  StopFilter filter_;
  int read_ = 0;
  bool stopped_ = false;
};

// A position's text for a drawing of the canvas: the token's bytes as valid UTF-8 (a control token: its vocabulary
// text, "<|eot_id|>"), or its id without a tokenizer.
std::string cell_text(const Tokenizer* tok, int32_t id);

}  // namespace unmask
