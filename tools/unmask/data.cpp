// unmask data prepare: tokenize a corpus into train/val token shards with the tokenizer beside them.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "commands.h"
#include "progress.h"
#include "unmask/base/error.h"
#include "unmask/base/timer.h"
#include "unmask/io/gguf.h"
#include "unmask/tokenizer/tokenizer.h"
#include "unmask/tokenizer/train.h"
#include "unmask/train/shards.h"

namespace unmask::cli {

namespace {

namespace fs = std::filesystem;

struct PrepareOptions {
  std::string input, tokenizer = "byte", out;
  double val_fraction = 0.1;
};

std::string read_corpus(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check(bool(in), "{}: cannot open", path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  check(!text.empty(), "{}: the corpus is empty", path);
  return text;
}

// The tokenizer's vocabulary as a GGUF of its own: "byte" for the byte-level one, else a GGUF or tokenizer.json.
void write_tokenizer(const std::string& spec, const std::string& path) {
  gguf::Writer w;
  if (spec == "byte") {
    vocab_to_gguf(byte_level_vocab(), w);
  } else if (spec.ends_with(".json")) {
    vocab_to_gguf(load_tokenizer_json(spec)->vocab(), w);
  } else {
    gguf::Reader r(spec);
    for (const auto& [k, v] : r.metadata())
      if (k.starts_with("tokenizer.")) w.set(k, v);
  }
  w.write(path);
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

void run_prepare(const PrepareOptions& o) {
  check(o.val_fraction > 0 && o.val_fraction < 1, "--val-fraction {} must be in (0, 1)", o.val_fraction);
  Timer t;
  const std::string text = read_corpus(o.input);
  fs::create_directories(o.out);
  const std::string tok_path = (fs::path(o.out) / "tokenizer.gguf").string();
  write_tokenizer(o.tokenizer, tok_path);
  gguf::Reader r(tok_path);
  auto tok = load_tokenizer(r);
  auto ids = encode_corpus(*tok, text);
  const size_t n_val = std::max<size_t>(1, size_t(double(ids.size()) * o.val_fraction));
  check(ids.size() > n_val + 1, "{}: {} tokens are too few to split into train and validation", o.input, ids.size());
  const size_t n_train = ids.size() - n_val;
  write_shard((fs::path(o.out) / "train.bin").string(), std::span(ids).first(n_train), tok->n_vocab());
  write_shard((fs::path(o.out) / "val.bin").string(), std::span(ids).subspan(n_train), tok->n_vocab());
  fmt::print("{}: {} train + {} validation tokens (vocabulary {}), {:.1f} s\n", o.out, n_train, n_val,
             tok->n_vocab(), t.seconds());
}

}  // namespace

void add_data(CLI::App& app) {
  auto* data = app.add_subcommand("data", "Prepare training data");
  data->require_subcommand(1);
  auto* cmd = data->add_subcommand("prepare", "Tokenize a corpus into DIR/train.bin, DIR/val.bin, DIR/tokenizer.gguf");
  auto o = std::make_shared<PrepareOptions>();
  cmd->add_option("--input", o->input, "Text corpus")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "'byte' (256 bytes + specials), a GGUF with a vocabulary, or a "
                                               "tokenizer.json")->capture_default_str();
  cmd->add_option("--out", o->out, "Output directory")->required();
  cmd->add_option("--val-fraction", o->val_fraction, "Share of the tokens (at the end) kept for validation")
      ->capture_default_str();
  cmd->callback([o] { run_prepare(*o); });
}

}  // namespace unmask::cli
