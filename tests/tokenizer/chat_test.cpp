// Each chat template against the literal prompt its model expects; detection; no second BOS.
#include <gtest/gtest.h>

#include "tok_test_util.h"
#include "unmask/base/error.h"
#include "unmask/tokenizer/chat.h"
#include "unmask/tokenizer/tokenizer.h"

namespace unmask {
namespace {

using M = std::vector<ChatMessage>;

const std::vector<ChatMessage> kConversation = {{"user", "  What is 2+2? "}, {"assistant", "4"}, {"user", "And 3+3?"}};

std::string render(std::string_view name, const std::vector<ChatMessage>& msgs) {
  return apply_chat_template(chat_template_by_name(name), msgs, true);
}

TEST(Chat, LladaInstruct) {
  EXPECT_EQ(render("llada", M{ChatMessage{"user", "Hello"}}),
            "<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render("llada", kConversation),
            "<|startoftext|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nAnd 3+3?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(Chat, Llama3) {
  EXPECT_EQ(render("llama3", M{ChatMessage{"system", "Be brief."}, ChatMessage{"user", "Hi"}}),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(Chat, ChatmlFamily) {
  EXPECT_EQ(render("chatml", M{ChatMessage{"user", "Hi"}}), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  const std::string qwen = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                           "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(render("qwen2", M{ChatMessage{"user", "Hi"}}), qwen);
  EXPECT_EQ(render("dream", M{ChatMessage{"user", "Hi"}}), qwen);
  EXPECT_EQ(render("smollm2", M{ChatMessage{"user", "Hi"}}),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(render("qwen2", M{ChatMessage{"system", "S"}, ChatMessage{"user", "Hi"}}),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(apply_chat_template(chat_template_by_name("chatml"), M{ChatMessage{"user", "Hi"}}, false),
            "<|im_start|>user\nHi<|im_end|>\n");
}

TEST(Chat, Detection) {
  const char* llada_src =
      "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
      "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
      "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}";
  EXPECT_EQ(detect_chat_template(llada_src, "<|startoftext|>")->name, "llada");
  EXPECT_EQ(detect_chat_template(llada_src, "<|begin_of_text|>")->name, "llama3");
  EXPECT_EQ(detect_chat_template("{% for m in messages %}<|im_start|>{{m.role}}...", "")->name, "chatml");
  EXPECT_EQ(detect_chat_template("...You are a helpful assistant.<|im_end|>...<|im_start|>", "")->name, "qwen2");
  EXPECT_EQ(detect_chat_template("<|im_start|>system\nYou are a helpful AI assistant named SmolLM", "")->name,
            "smollm2");
  EXPECT_EQ(detect_chat_template("{{ bos_token }}[INST]", "<s>"), nullptr);
  EXPECT_THROW(chat_template_by_name("vicuna"), Error);
}

// The Jinja source written into tokenizer.chat_template (data prepare --chat-template) is recognised again as a
// template rendering the same text (qwen2 and dream are twins), and reads as the template it stands for.
TEST(Chat, SourceIsRecognisedAgain) {
  for (std::string_view name : {"llada", "llama3", "chatml", "qwen2", "dream", "smollm2"}) {
    const ChatTemplate& t = chat_template_by_name(name);
    const ChatTemplate* back = detect_chat_template(chat_template_source(t), "");
    ASSERT_NE(back, nullptr) << name << ": " << chat_template_source(t);
    for (const auto& msgs : {kConversation, M{ChatMessage{"system", "S"}, ChatMessage{"user", "Hi"}}})
      EXPECT_EQ(apply_chat_template(*back, msgs, true), apply_chat_template(t, msgs, true)) << name;
  }
  EXPECT_EQ(chat_template_source(chat_template_by_name("chatml")),
            "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
            "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>' + 'assistant' + '\\n' }}"
            "{% endif %}");
}

TEST(Chat, ResolveAndNoSecondBos) {
  Vocab v = testing::bytes_vocab();
  const int32_t bos = testing::add_token(v, "<|startoftext|>", TokenType::kControl);
  for (const char* t : {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}) {
    testing::add_token(v, t, TokenType::kControl);
  }
  v.bos = bos;
  v.add_bos = true;
  v.chat_template = "{{ bos_token }}<|start_header_id|>...";
  auto tok = make_tokenizer(v);
  const ChatTemplate& t = resolve_chat_template(*tok, "");
  EXPECT_EQ(t.name, "llada");
  EXPECT_EQ(resolve_chat_template(*tok, "chatml").name, "chatml");
  const std::vector<ChatMessage> msgs = M{ChatMessage{"user", "Hi"}};
  const auto ids = tok->encode(apply_chat_template(t, msgs, true), true, true);
  EXPECT_EQ(ids.front(), bos);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), bos), 1);
  EXPECT_EQ(ids.back(), int32_t('\n'));  // the byte vocabulary: id = byte
  Vocab none = testing::bytes_vocab();
  auto plain = make_tokenizer(none);
  EXPECT_THROW(resolve_chat_template(*plain, ""), Error);
}

}  // namespace
}  // namespace unmask
