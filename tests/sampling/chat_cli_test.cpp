// `unmask generate --chat`: the prompt is the model's chat template around the message (checked against the template
// written out by hand, id by id), the turn ends at the end-of-turn token, and the sampler defaults follow the model's
// family. The models are tiny random ones patched so that <|eot_id|> wins the argmax at every position: a turn then
// ends as early as it can, and without --chat the same model fills the whole generation with it.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "unmask/io/gguf.h"
#include "unmask/model/model.h"
#include "unmask/tokenizer/train.h"
#include "unmask/tokenizer/vocab.h"
#include "../common/test_util.h"

namespace unmask {
namespace {

using nlohmann::json;

int32_t add_control(Vocab& v, const char* text) {
  v.tokens.push_back(text);
  v.types.push_back(TokenType::kControl);
  return v.size() - 1;
}

// LLaDA-8B-Instruct's special tokens over a byte-level vocabulary (byte b is token b; no merges), with a chat
// template that names them.
struct ChatVocab {
  Vocab v = byte_level_vocab();
  int32_t bos, start_header, end_header, eot;

  ChatVocab() {
    bos = v.bos = add_control(v, "<|startoftext|>");
    start_header = add_control(v, "<|start_header_id|>");
    end_header = add_control(v, "<|end_header_id|>");
    eot = v.eot = add_control(v, "<|eot_id|>");
    v.chat_template = "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
                      "{{ m['content'] | trim }}<|eot_id|>{% endfor %}";
  }
};

// Adds every tensor of r (all f32) to w, patched by f; keep holds the data until w is written.
void copy_patched(const gguf::Reader& r, gguf::Writer& w, std::vector<std::vector<float>>& keep,
                  const std::function<void(const std::string&, std::vector<float>&)>& f) {
  for (const gguf::TensorInfo& t : r.tensors()) {
    ASSERT_EQ(t.type, DType::F32) << t.name;
    const auto* p = static_cast<const float*>(t.data);
    keep.emplace_back(p, p + t.nbytes / sizeof(float));
    f(t.name, keep.back());
    w.add_tensor(t.name, t.type, t.ne, keep.back().data());
  }
}

// A random model of architecture `arch` with the vocabulary above, whose logits favour `winner` everywhere: every
// embedding carries +1000 in component 0, the final norm keeps only that component, and only winner's output row
// reads it.
std::string write_model(const std::string& arch, const Vocab& v, int32_t winner) {
  ModelConfig c = preset_config("tiny");
  const ArchInfo& a = arch_info(arch);
  c.arch = arch, c.mask = a.mask, c.rope = a.rope, c.qkv_bias = a.qkv_bias, c.shift_logits = a.shift_logits;
  c.vocab = v.size(), c.tied_output = false, c.ctx = 128;
  c.mask_token = c.mask == MaskKind::kCausal ? -1 : v.mask;
  c.bos_token = v.bos, c.eos_token = v.eos;
  const std::string random = test::temp_path("chat", arch + "_random.gguf");
  const std::string path = test::temp_path("chat", arch + ".gguf");
  gguf::Writer w0;
  const Model random_model = Model::random(c, 5);  // alive until written: w0 points into its weights
  random_model.add_to(w0);
  w0.write(random);
  gguf::Reader r(random);
  gguf::Writer w;
  for (const auto& [key, value] : r.metadata()) w.set(key, value);
  vocab_to_gguf(v, w);
  std::vector<std::vector<float>> keep;
  const int64_t d = c.d_model;
  copy_patched(r, w, keep, [&](const std::string& name, std::vector<float>& x) {
    if (name == "token_embd.weight") {
      for (size_t i = 0; i < x.size(); i += size_t(d)) x[i] = 1000.0f;
    } else if (name == "output_norm.weight" || name == "output.weight") {
      const size_t keep_at = name == "output.weight" ? size_t(winner * d) : 0;
      for (size_t i = 0; i < x.size(); ++i) x[i] = i == keep_at ? 1.0f : 0.0f;
    }
  });
  w.write(path);
  std::filesystem::remove(random);
  return path;
}

json run_json(const std::string& args) {
  test::Result r = test::sh("generate " + args + " --json");
  EXPECT_EQ(r.code, 0) << args << "\n" << r.out;
  return r.code == 0 ? json::parse(r.out) : json::object();
}

std::vector<int32_t> bytes(std::string_view s) { return std::vector<int32_t>(s.begin(), s.end()); }

std::vector<int32_t> generated(const json& j) {
  const auto canvas = j["canvas"].get<std::vector<int32_t>>();
  return std::vector<int32_t>(canvas.begin() + std::ptrdiff_t(j["prompt"].size()), canvas.end());
}

std::string join_ids(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) {
    if (!s.empty()) s += ',';
    s += std::to_string(id);
  }
  return s;
}

TEST(ChatCli, LladaPromptIsTheTemplateAndTheTurnEndsAtEot) {
  const ChatVocab cv;
  const std::string m = write_model("llada", cv.v, cv.eot);
  const json j = run_json("-m " + m + " --chat '  Hi there ' -n 64");
  // LLaDA's template by hand: BOS, the user's header, the trimmed message, <|eot_id|>, the assistant's header.
  std::vector<int32_t> want = {cv.bos, cv.start_header};
  for (const auto& part : {bytes("user"), std::vector<int32_t>{cv.end_header}, bytes("\n\nHi there"),
                           std::vector<int32_t>{cv.eot, cv.start_header}, bytes("assistant"),
                           std::vector<int32_t>{cv.end_header}, bytes("\n\n")}) {
    want.insert(want.end(), part.begin(), part.end());
  }
  EXPECT_EQ(j["prompt"].get<std::vector<int32_t>>(), want);
  EXPECT_EQ(j["sampler"], "llada") << "LLaDA's default sampler";
  EXPECT_EQ(generated(j), std::vector<int32_t>(64, cv.eot)) << "the patched model proposes <|eot_id|> everywhere";
  EXPECT_TRUE(j["ids"].empty()) << "the turn ends at the first <|eot_id|>: " << j["ids"];
  EXPECT_EQ(j["text"], "");

  // Control: the same prompt without --chat keeps the <|eot_id|> tokens (only EOS ends a plain generation).
  const json plain = run_json("-m " + m + " --prompt-tokens " + join_ids(want) + " -n 64");
  EXPECT_EQ(plain["ids"].size(), 64u);
  std::filesystem::remove(m);
}

TEST(ChatCli, ArModelStopsAtEotWithItsOwnDefaults) {
  const ChatVocab cv;
  const std::string m = write_model("llama", cv.v, cv.eot);
  // No --sampler: a llama model decodes with ar, its default.
  const json j = run_json("-m " + m + " --chat hello -n 8");
  EXPECT_EQ(j["sampler"], "ar");
  EXPECT_EQ(generated(j), std::vector<int32_t>{cv.eot}) << "decoding stops after the end-of-turn token";
  EXPECT_TRUE(j["ids"].empty());
  const json plain = run_json("-m " + m + " --prompt-tokens " + join_ids(j["prompt"]) + " --sampler ar -n 8");
  EXPECT_EQ(generated(plain), std::vector<int32_t>(8, cv.eot));
  std::filesystem::remove(m);
}

// Dream's ChatML template (with Qwen2's default system turn); <|im_end|> ends the turn although the vocabulary's
// EOT role is <|endoftext|>: the template's end-of-turn token is a stop token of its own.
TEST(ChatCli, DreamTurnEndsAtImEnd) {
  Vocab v = byte_level_vocab();
  const int32_t start = add_control(v, "<|im_start|>"), end = add_control(v, "<|im_end|>");
  ASSERT_NE(v.eot, end);
  v.chat_template = "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant."
                    "<|im_end|>\n{% endif %}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                    "<|im_end|>\n{% endfor %}";
  const std::string m = write_model("dream", v, end);
  const json j = run_json("-m " + m + " --chat hello -n 16");
  std::vector<int32_t> want;
  for (const auto& part : {std::vector<int32_t>{start}, bytes("system\nYou are a helpful assistant."),
                           std::vector<int32_t>{end}, bytes("\n"), std::vector<int32_t>{start}, bytes("user\nhello"),
                           std::vector<int32_t>{end}, bytes("\n"), std::vector<int32_t>{start},
                           bytes("assistant\n")}) {
    want.insert(want.end(), part.begin(), part.end());
  }
  EXPECT_EQ(j["prompt"].get<std::vector<int32_t>>(), want);
  EXPECT_EQ(j["sampler"], "dream") << "Dream's default sampler";
  EXPECT_EQ(generated(j), std::vector<int32_t>(16, end));
  EXPECT_TRUE(j["ids"].empty()) << j["ids"];
  std::filesystem::remove(m);
}

TEST(ChatCli, BadChatFlagsAreOneClearLine) {
  const ChatVocab cv;
  const std::string m = write_model("llada", cv.v, cv.eot);
  const std::pair<std::string, std::string> cases[] = {
      {"--chat hi --prompt-tokens 1,2", "give exactly one of"},
      {"--prompt-tokens 1,2 --chat-template chatml", "--chat-template chatml: give the message with --chat"},
      {"--chat hi --chat-template nope", "unknown chat template 'nope'"},
      {"--chat hi -n 40", "does not divide"},
  };
  for (const auto& [args, want] : cases) {
    test::Result r = test::sh("generate -m " + m + " " + args);
    EXPECT_EQ(r.code, 1) << args << "\n" << r.out;
    EXPECT_NE(r.out.find(want), std::string::npos) << args << "\n" << r.out;
  }
  std::filesystem::remove(m);
}

}  // namespace
}  // namespace unmask
