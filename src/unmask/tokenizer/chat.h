// Chat templates of the instruct models we target, as data: LLaDA-8B-Instruct and LLaMA-3 (header blocks),
// ChatML (Dream, Qwen2, SmolLM2). Picked from the file's tokenizer.chat_template or by name (--chat-template).
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace unmask {

class Tokenizer;

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

struct ChatTemplate {
  std::string_view name;            // "llada"
  std::string_view prefix;          // once, before the first message (the BOS text for header templates)
  std::string_view before_role;     // "<|start_header_id|>"
  std::string_view after_role;      // "<|end_header_id|>\n\n"
  std::string_view after_content;   // "<|eot_id|>"
  bool trim_content;                // the Jinja source trims message content
  std::string_view default_system;  // inserted when the conversation has no system message ("" for none)
};

// By name: llada, llama3, chatml, qwen2, dream, smollm2. Unknown: Error listing the known names.
const ChatTemplate& chat_template_by_name(std::string_view name);
std::string chat_template_names();

// Recognises a Jinja chat template from its source; bos_text is the vocabulary's BOS (tells LLaDA's from
// LLaMA-3's). nullptr when it is none of ours.
const ChatTemplate* detect_chat_template(std::string_view jinja_source, std::string_view bos_text);

// The template as Jinja source (for tokenizer.chat_template), rendering what apply_chat_template renders, that
// detect_chat_template recognises again (as t, or a twin that renders the same text).
std::string chat_template_source(const ChatTemplate& t);

// The override when given, else the one detected in the tokenizer's vocabulary; Error when neither works.
const ChatTemplate& resolve_chat_template(const Tokenizer& tok, std::string_view override_name);

// The prompt text; with add_generation_prompt, the opening of the assistant's turn follows. Encode it with
// parse_special = true; encode() then adds no second BOS.
std::string apply_chat_template(const ChatTemplate& t, std::span<const ChatMessage> messages,
                                bool add_generation_prompt);

}  // namespace unmask
