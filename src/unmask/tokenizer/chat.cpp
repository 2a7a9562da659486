#include "unmask/tokenizer/chat.h"

#include "unmask/base/error.h"
#include "unmask/tokenizer/tokenizer.h"

namespace unmask {

namespace {

constexpr std::string_view kHeaderOpen = "<|start_header_id|>";
constexpr std::string_view kHeaderClose = "<|end_header_id|>\n\n";

const ChatTemplate kTemplates[] = {
    {"llada", "<|startoftext|>", kHeaderOpen, kHeaderClose, "<|eot_id|>", true, ""},
    {"llama3", "<|begin_of_text|>", kHeaderOpen, kHeaderClose, "<|eot_id|>", true, ""},
    {"chatml", "", "<|im_start|>", "\n", "<|im_end|>\n", false, ""},
    {"qwen2", "", "<|im_start|>", "\n", "<|im_end|>\n", false, "You are a helpful assistant."},
    {"dream", "", "<|im_start|>", "\n", "<|im_end|>\n", false, "You are a helpful assistant."},
    {"smollm2", "", "<|im_start|>", "\n", "<|im_end|>\n", false,
     "You are a helpful AI assistant named SmolLM, trained by Hugging Face"},
};

std::string_view trim(std::string_view s) {
  const auto ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// A Jinja string literal: '...' with quotes, backslashes and newlines escaped.
std::string jinja_literal(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\'' || c == '\\') out += '\\', out += c;
    else out += c;
  }
  return out + "'";
}

}  // namespace

std::string chat_template_names() {
  std::string out;
  for (const auto& t : kTemplates) out += (out.empty() ? "" : ", ") + std::string(t.name);
  return out;
}

const ChatTemplate& chat_template_by_name(std::string_view name) {
  for (const auto& t : kTemplates) {
    if (t.name == name) return t;
  }
  fail("unknown chat template '{}'; known: {}", name, chat_template_names());
}

const ChatTemplate* detect_chat_template(std::string_view src, std::string_view bos_text) {
  auto has = [&](std::string_view s) { return src.find(s) != std::string_view::npos; };
  if (has("<|start_header_id|>")) {
    const bool llada = has("<|startoftext|>") || bos_text == "<|startoftext|>";
    return &chat_template_by_name(llada ? "llada" : "llama3");
  }
  if (has("<|im_start|>")) {
    if (has("SmolLM")) return &chat_template_by_name("smollm2");
    if (has("You are a helpful assistant.")) return &chat_template_by_name("qwen2");
    return &chat_template_by_name("chatml");
  }
  return nullptr;
}

std::string chat_template_source(const ChatTemplate& t) {
  const std::string open = jinja_literal(t.before_role), close = jinja_literal(t.after_role);
  std::string src = t.prefix.empty() ? "" : "{{ " + jinja_literal(t.prefix) + " }}";
  if (!t.default_system.empty())
    src += "{% if messages|length == 0 or messages[0]['role'] != 'system' %}{{ " + open + " + 'system' + " + close +
           " + " + jinja_literal(t.default_system) + " + " + jinja_literal(t.after_content) + " }}{% endif %}";
  src += "{% for message in messages %}{{ " + open + " + message['role'] + " + close + " + " +
         (t.trim_content ? "(message['content'] | trim)" : "message['content']") + " + " +
         jinja_literal(t.after_content) + " }}{% endfor %}";
  return src + "{% if add_generation_prompt %}{{ " + open + " + 'assistant' + " + close + " }}{% endif %}";
}

const ChatTemplate& resolve_chat_template(const Tokenizer& tok, std::string_view override_name) {
  if (!override_name.empty()) return chat_template_by_name(override_name);
  const auto& v = tok.vocab();
  check(!v.chat_template.empty(),
        "the tokenizer has no chat template (tokenizer.chat_template); pass --chat-template NAME, one of: {}",
        chat_template_names());
  const std::string bos = v.bos >= 0 ? v.tokens[v.bos] : "";
  const ChatTemplate* t = detect_chat_template(v.chat_template, bos);
  check(t != nullptr, "the tokenizer's chat template is not one we know; pass --chat-template NAME, one of: {}",
        chat_template_names());
  return *t;
}

std::string apply_chat_template(const ChatTemplate& t, std::span<const ChatMessage> messages,
                                bool add_generation_prompt) {
  std::string out(t.prefix);
  auto turn = [&](std::string_view role, std::string_view content) {
    out.append(t.before_role).append(role).append(t.after_role);
    out.append(t.trim_content ? trim(content) : content).append(t.after_content);
  };
  if (!t.default_system.empty() && (messages.empty() || messages.front().role != "system")) {
    turn("system", t.default_system);
  }
  for (const auto& m : messages) {
    check(!m.role.empty(), "chat message has an empty role (expected system, user or assistant)");
    turn(m.role, m.content);
  }
  if (add_generation_prompt) out.append(t.before_role).append("assistant").append(t.after_role);
  return out;
}

}  // namespace unmask
