// unmask data prepare: tokenize a corpus into train/val token shards (--format text), or prompt/response pairs into
// train/val example shards for supervised fine-tuning (--format jsonl), with the tokenizer beside them.
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <memory>

#include "cli_util.h"
#include "commands.h"
#include "model_file.h"
#include "progress.h"
#include "unmask/base/error.h"
#include "unmask/base/timer.h"
#include "unmask/io/gguf.h"
#include "unmask/tokenizer/chat.h"
#include "unmask/tokenizer/tokenizer.h"
#include "unmask/train/sft_data.h"
#include "unmask/train/shards.h"

namespace unmask::cli {

namespace {

namespace fs = std::filesystem;

struct PrepareOptions {
  std::string input, tokenizer = "byte", out, format = "text", chat_template;
  double val_fraction = 0.1;
  int seq_len = 0;  // jsonl: refuse prompts that leave no answer token in a sequence of this length
  bool force = false;
};

// What `data prepare` writes into its directory (either format's shards, so that none is left stale).
constexpr const char* kOutputs[] = {"tokenizer.gguf", "train.bin", "val.bin", "train.sft", "val.sft"};

// DIR must hold no prepared data unless --force; with --force the other format's shards, which this run does not
// replace, are removed (the rest is replaced atomically as it is written).
void check_out_dir(const PrepareOptions& o) {
  const std::string_view stale = o.format == "text" ? ".sft" : ".bin";
  for (const char* name : kOutputs) {
    const fs::path p = fs::path(o.out) / name;
    check_new_output(p.string(), o.force);
    if (o.force && std::string_view(name).ends_with(stale)) fs::remove(p);
  }
}

std::string read_corpus(const std::string& path) {
  std::string text = read_text_file(path);
  check(!text.empty(), "{}: the corpus is empty", path);
  return text;
}

// The tokenizer exactly as the trainer will read it back from DIR/tokenizer.gguf (the keys written to a temporary
// file and loaded), so that nothing is written into DIR before the shards are ready.
std::unique_ptr<Tokenizer> tokenizer_of(const gguf::Writer& keys) {
  const fs::path tmp = fs::temp_directory_path() / fmt::format("unmask_prepare_{}_tokenizer.gguf", getpid());
  keys.write(tmp.string());
  try {
    gguf::Reader r(tmp.string());
    auto tok = load_tokenizer(r);
    fs::remove(tmp);
    return tok;
  } catch (...) {
    fs::remove(tmp);
    throw;
  }
}

// Encodes text in pieces that end at a newline, so that a progress bar can follow a large corpus.
std::vector<int32_t> encode_corpus(const Tokenizer& tok, std::string_view text) {
  std::vector<int32_t> ids;
  constexpr size_t kPiece = 1 << 20;
  for (size_t at = 0; at < text.size();) {
    size_t end = std::min(text.size(), at + kPiece);
    size_t nl = end < text.size() ? text.rfind('\n', end) : std::string_view::npos;
    if (nl != std::string_view::npos && nl > at) end = nl + 1;
    auto part = tok.encode(text.substr(at, end - at));
    ids.insert(ids.end(), part.begin(), part.end());
    at = end;
    draw_progress("tokenizing", int64_t(at >> 10), int64_t((text.size() + 1023) >> 10), "KiB");
  }
  return ids;
}

// Every JSONL pair rendered through the chat template; with --seq-len, a prompt that leaves no room for an answer
// token is an error naming its line.
std::vector<SftExample> render_examples(const PrepareOptions& o, const Tokenizer& tok, const ChatTemplate& chat,
                                        std::string_view text) {
  const int32_t term = sft_terminator(chat, tok);
  std::vector<SftExample> out;
  for (const SftPair& p : parse_sft_jsonl(text, o.input)) {
    out.push_back(render_sft_example(p, chat, tok, term));
    check(o.seq_len == 0 || out.back().prompt_len < o.seq_len, "{}:{}: the prompt renders to {} tokens; --seq-len {} "
          "leaves no room for its answer", o.input, p.line, out.back().prompt_len, o.seq_len);
  }
  return out;
}

// Creates DIR and writes the tokenizer into it: called once the shards are ready to be written.
void write_tokenizer(const PrepareOptions& o, const gguf::Writer& keys) {
  fs::create_directories(o.out);
  keys.write((fs::path(o.out) / "tokenizer.gguf").string());
}

void prepare_examples(const PrepareOptions& o, const gguf::Writer& keys, const Tokenizer& tok, std::string_view text,
                      const Timer& t) {
  const ChatTemplate& chat = resolve_chat_template(tok, o.chat_template);
  auto ex = render_examples(o, tok, chat, text);
  const size_t n_val = std::max<size_t>(1, size_t(double(ex.size()) * o.val_fraction));
  check(ex.size() > n_val, "{}: {} examples are too few to split into train and validation", o.input, ex.size());
  const size_t n_train = ex.size() - n_val;
  const int32_t pad = sft_pad(tok);
  write_tokenizer(o, keys);
  write_sft_shard((fs::path(o.out) / "train.sft").string(), std::span(ex).first(n_train), tok.n_vocab(), pad);
  write_sft_shard((fs::path(o.out) / "val.sft").string(), std::span(ex).subspan(n_train), tok.n_vocab(), pad);
  size_t tokens = 0, longest_prompt = 0, longest = 0;
  for (const auto& e : ex)
    tokens += e.tokens.size(), longest_prompt = std::max(longest_prompt, size_t(e.prompt_len)),
        longest = std::max(longest, e.tokens.size());
  fmt::print("{}: {} train + {} validation examples, {} tokens (longest prompt {}, longest example {}); template {}, "
             "responses end with {}, padded with {}; {:.1f} s\n", o.out, n_train, n_val, tokens, longest_prompt,
             longest, chat.name, tok.token_text(sft_terminator(chat, tok)), tok.token_text(pad), t.seconds());
}

void run_prepare(const PrepareOptions& o) {
  check(o.val_fraction > 0 && o.val_fraction < 1, "--val-fraction {} must be in (0, 1)", o.val_fraction);
  check(o.format == "text" || o.format == "jsonl", "--format {}: expected text or jsonl", o.format);
  check(o.format == "jsonl" || (o.chat_template.empty() && o.seq_len == 0),
        "--chat-template and --seq-len apply to --format jsonl only");
  Timer t;
  const std::string text = read_corpus(o.input);
  check(!fs::exists(o.out) || fs::is_directory(o.out), "{}: exists and is not a directory", o.out);
  check_out_dir(o);
  const gguf::Writer keys = tokenizer_keys(o.tokenizer, o.chat_template);
  const auto tok = tokenizer_of(keys);
  if (o.format == "jsonl") return prepare_examples(o, keys, *tok, text, t);
  auto ids = encode_corpus(*tok, text);
  const size_t n_val = std::max<size_t>(1, size_t(double(ids.size()) * o.val_fraction));
  check(ids.size() > n_val + 1, "{}: {} tokens are too few to split into train and validation", o.input, ids.size());
  const size_t n_train = ids.size() - n_val;
  write_tokenizer(o, keys);
  write_shard((fs::path(o.out) / "train.bin").string(), std::span(ids).first(n_train), tok->n_vocab());
  write_shard((fs::path(o.out) / "val.bin").string(), std::span(ids).subspan(n_train), tok->n_vocab());
  fmt::print("{}: {} train + {} validation tokens (vocabulary {}), {:.1f} s\n", o.out, n_train, n_val,
             tok->n_vocab(), t.seconds());
}

}  // namespace

void add_data(CLI::App& app) {
  auto* data = app.add_subcommand("data", "Prepare training data");
  data->require_subcommand(1);
  auto* cmd = data->add_subcommand("prepare", "Tokenize a corpus into DIR/train.bin, DIR/val.bin, DIR/tokenizer.gguf "
                                               "(or prompt/response pairs into DIR/train.sft, DIR/val.sft)");
  auto o = std::make_shared<PrepareOptions>();
  cmd->add_option("-f,--file,--input", o->input, "Text corpus, or JSONL pairs with --format jsonl")->required();
  cmd->add_option("--format", o->format, "text (a corpus) or jsonl (one {\"prompt\", \"response\"} or "
                                         "{\"messages\": [...]} per line, for --objective sft)")->capture_default_str();
  cmd->add_option("--chat-template", o->chat_template, "jsonl: the template to render with (default: the "
                  "tokenizer's), recorded as DIR/tokenizer.gguf's tokenizer.chat_template; one of " +
                  chat_template_names());
  cmd->add_option("--seq-len", o->seq_len, "jsonl: refuse an example whose prompt leaves no answer token in this "
                                           "sequence length")->check(positive());
  cmd->add_option("--tokenizer", o->tokenizer, "'byte' (256 bytes + specials), a GGUF with a vocabulary, or a "
                                               "tokenizer.json")->capture_default_str();
  add_out_option(cmd, o->out, o->force, "Output directory (its prepared data, if any, is replaced only with --force)");
  cmd->add_option("--val-fraction", o->val_fraction, "Share of the tokens (or examples), at the end, kept for "
                                                     "validation")
      ->capture_default_str();
  cmd->callback([o] { run_prepare(*o); });
}

}  // namespace unmask::cli
