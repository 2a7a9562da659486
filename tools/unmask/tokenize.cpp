// unmask tokenize / detokenize / tokenizer train: text <-> ids with a model's tokenizer, and BPE training.
#include <fmt/format.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <sstream>

#include "cli_util.h"
#include "commands.h"
#include "progress.h"
#include "unmask/base/error.h"
#include "unmask/base/timer.h"
#include "unmask/io/gguf.h"
#include "unmask/tokenizer/chat.h"
#include "unmask/tokenizer/tokenizer.h"
#include "unmask/tokenizer/train.h"

namespace unmask::cli {

namespace {

// Control characters and invalid bytes escaped, so that a piece shows on one line.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s) {
    const auto u = uint8_t(c);
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\\') out += "\\\\";
    else if (u < 0x20 || u == 0x7F) out += fmt::format("\\x{:02x}", u);
    else out += c;
  }
  return out;
}

struct TokenizeArgs {
  std::string model, text, file, chat_template;
  bool text_given = false, add_special = false, parse_special = false, show_pieces = false, chat = false;
};

void run_tokenize(const TokenizeArgs& a) {
  auto tok = load_tokenizer_file(a.model);
  std::string text = a.file.empty() ? a.text : read_text_file(a.file);
  bool parse_special = a.parse_special;
  if (a.chat || !a.chat_template.empty()) {
    const ChatMessage msg{"user", text};
    text = apply_chat_template(resolve_chat_template(*tok, a.chat_template), {&msg, 1}, true);
    parse_special = true;
  }
  const auto ids = tok->encode(text, a.add_special, parse_special);
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
  std::printf("%s\n", line.c_str());
  if (a.show_pieces) {
    for (int32_t id : ids) std::printf("%8d  '%s'\n", id, printable(tok->token_bytes(id)).c_str());
  }
}

std::vector<int32_t> checked_ids(std::vector<int32_t> ids, int32_t n_vocab) {
  for (int32_t v : ids)
    check(v >= 0 && v < n_vocab, "detokenize: token id {} is outside the vocabulary [0, {})", v, n_vocab);
  return ids;
}

// ids: from --tokens, else read from stdin.
void run_detokenize(const std::string& model, std::vector<int32_t> ids, bool skip_special) {
  auto tok = load_tokenizer_file(model);
  if (ids.empty()) {
    std::stringstream ss;
    ss << std::cin.rdbuf();
    ids = parse_token_list(ss.str(), "detokenize (stdin)");
  }
  const std::string text = tok->decode(checked_ids(std::move(ids), tok->n_vocab()), skip_special);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
}

struct TrainArgs {
  std::string input, out, pre = "gpt-2";
  int32_t vocab_size = 0;
  int64_t min_count = 2;
  bool byte_level = false, force = false;
};

void draw_merges(int64_t done, int64_t total) { draw_progress("training BPE", done, total, "merges"); }

void run_train(const TrainArgs& a) {
  check_new_output(a.out, a.force);
  Timer timer;
  Vocab v;
  if (a.byte_level) {
    v = byte_level_vocab();
  } else {
    check(a.vocab_size > 0, "tokenizer train: --vocab-size is required (or --byte-level)");
    check(!a.input.empty(), "tokenizer train: --file is required (or --byte-level)");
    const std::string corpus = read_text_file(a.input);
    check(!corpus.empty(), "{}: the corpus is empty", a.input);
    v = train_bpe(corpus, {a.vocab_size, a.pre, a.min_count, draw_merges});
    if (v.size() < a.vocab_size) std::fputc('\n', stderr);
  }
  gguf::Writer w;
  w.set("general.name", gguf::Value::str(a.byte_level ? "unmask-bytes" : "unmask-bpe"));
  vocab_to_gguf(v, w);
  w.write(a.out);
  std::fprintf(stderr, "wrote %s: %d tokens (%zu merges, specials bos %d eos %d pad %d mask %d) in %.2f s\n",
               a.out.c_str(), v.size(), v.merges.size(), v.bos, v.eos, v.pad, v.mask, timer.seconds());
}

}  // namespace

void add_tokenize(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "Print the token ids of a text, space-separated on one line");
  auto a = std::make_shared<TokenizeArgs>();
  cmd->add_option("-m,--model", a->model, "GGUF file, tokenizer.json or Hugging Face folder")->required();
  auto* text = cmd->add_option("-p,--prompt,--text", a->text, "The text to encode");
  auto* file = cmd->add_option("-f,--file", a->file, "Read the text from this file");
  text->excludes(file);
  cmd->add_flag("--add-special", a->add_special, "Add BOS/EOS as the vocabulary asks");
  cmd->add_flag("--parse-special", a->parse_special, "Turn special tokens written in the text into their ids");
  cmd->add_flag("--show-pieces", a->show_pieces, "Also print each token and its text, one per line");
  cmd->add_flag("--chat", a->chat, "Wrap the text as a user turn in the model's chat template");
  cmd->add_option("--chat-template", a->chat_template,
                  "Chat template by name (implies --chat): " + chat_template_names());
  cmd->callback([a, text, file] {
    check(text->count() + file->count() == 1, "tokenize: give the text with -p/--prompt or -f/--file");
    run_tokenize(*a);
  });
}

void add_detokenize(CLI::App& app) {
  auto* cmd = app.add_subcommand("detokenize", "Print the text of token ids (from --tokens or stdin)");
  auto model = std::make_shared<std::string>();
  auto ids = std::make_shared<std::vector<int32_t>>();
  auto skip = std::make_shared<bool>(false);
  cmd->add_option("-m,--model", *model, "GGUF file, tokenizer.json or Hugging Face folder")->required();
  add_tokens_option(cmd, "--tokens,--ids", *ids, "Token ids (default: read from stdin)");
  cmd->add_flag("--skip-special", *skip, "Leave out control tokens");
  cmd->callback([model, ids, skip] { run_detokenize(*model, *ids, *skip); });
}

void add_tokenizer(CLI::App& app) {
  auto* group = app.add_subcommand("tokenizer", "Tokenizer tools");
  group->require_subcommand(1);
  auto* cmd = group->add_subcommand("train", "Train a byte-level BPE tokenizer and write it as GGUF");
  auto a = std::make_shared<TrainArgs>();
  cmd->add_option("-f,--file,--input", a->input, "Training text (UTF-8)");
  cmd->add_option("--vocab-size", a->vocab_size, "Tokens in all: 256 bytes + merges + 4 specials")
      ->check(in_range(int64_t(260), int64_t(1) << 24));
  add_out_option(cmd, a->out, a->force, "Output GGUF file");
  cmd->add_option("--pre", a->pre, "Pre-tokenizer (a tokenizer.ggml.pre name)")->capture_default_str();
  cmd->add_option("--min-count", a->min_count, "Stop when the best pair is rarer than this")
      ->capture_default_str()
      ->check(positive());
  cmd->add_flag("--byte-level", a->byte_level, "Write the plain byte tokenizer (256 + specials), no training");
  cmd->callback([a] { run_train(*a); });
}

}  // namespace unmask::cli
