// unmask convert HF_DIR --out FILE.gguf: a Hugging Face folder as a GGUF file llama.cpp reads (its architecture
// names, metadata keys and tensor names, q/k permuted into adjacent pairs for llama/llada, the tokenizer), with the
// tensors in the type --type asks for.
#include <fmt/format.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli_util.h"
#include "commands.h"
#include "progress.h"
#include "unmask/base/error.h"
#include "unmask/base/parallel.h"
#include "unmask/io/gguf.h"
#include "unmask/model/hf.h"
#include "unmask/model/quantize.h"
#include "unmask/tokenizer/pretokenize.h"
#include "unmask/tokenizer/vocab.h"

namespace unmask::cli {

namespace {

struct ConvertOptions {
  std::string dir, out, type;  // type "": the folder's own
  int threads = 0;
  bool force = false;
};

// Text on which the pre-tokenizers of GGUF's names cut differently: contractions in both cases, runs of digits,
// letters of several scripts, emoji, runs of spaces, tabs and newlines, punctuation runs.
constexpr const char* kProbe =
    "I've 'RE you'll 'd WE'VE it's\n \n\n\n\t\t x  y   z\r\n7 42 1234 12345 3.14 -- == ''' ... !!?? "
    "Straße naïve Ελληνικά русский 日本語テキスト 한국어 مرحبا 🦙🚀 end  ";

std::vector<std::string_view> pieces_of(const tok::Pretokenizer& p) {
  std::vector<std::string_view> out;
  p.split(kProbe, out);
  return out;
}

// The llama.cpp name (tokenizer.ggml.pre) of the pre-tokenizer a tokenizer.json describes: the first whose pieces
// of the probe text are the same, as llama.cpp's converter identifies it by the tokens of its own probe.
std::string pre_name_of(const Vocab& v, const std::string& where) {
  const auto want = pieces_of(tok::Pretokenizer(v.pre_patterns));
  constexpr std::string_view kNames[] = {"gpt-2", "llama-bpe", "qwen2",  "bailingmoe", "deepseek-llm",
                                         "deepseek-coder", "falcon", "starcoder", "default"};
  for (auto name : kNames) {
    if (pieces_of(tok::Pretokenizer::by_name(name)) == want) return std::string(name);
  }
  fail("{}: its pre-tokenizer matches none that llama.cpp knows by name ({})", where, fmt::join(kNames, ", "));
}

// The folder's vocabulary for the GGUF: hf_vocab (padded to the embedding's rows, roles from config.json) with
// llama.cpp's pre-tokenizer name.
Vocab gguf_vocab(const std::string& dir, const ModelConfig& c) {
  Vocab v = hf_vocab(dir, c);
  v.pre = pre_name_of(v, (std::filesystem::path(dir) / "tokenizer.json").string());
  v.pre_patterns.clear();
  return v;
}

// "LLaDA-8B-Instruct" for "models/LLaDA-8B-Instruct/".
std::string folder_name(const std::string& dir) {
  auto p = std::filesystem::absolute(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

void run_convert(const ConvertOptions& o) {
  set_num_threads(o.threads);
  const std::optional<QuantScheme> given =
      o.type.empty() ? std::nullopt : std::optional(parse_quant_scheme(o.type));  // flags first, then the disk
  check(is_hf_folder(o.dir), "{}: not a Hugging Face checkpoint folder (expected a directory with config.json)",
        o.dir);
  check_new_output(o.out, o.force);
  const GgufWeights g = hf_weights_for_gguf(o.dir);
  const QuantScheme scheme = given ? *given : parse_quant_scheme(dtype_name(g.config.wtype));
  const Vocab v = gguf_vocab(o.dir, g.config);
  gguf::Writer w;
  write_config(g.config, w);
  // llama.cpp's diffusion example shifts the logits when this key is absent; its converter writes it for LLaDA.
  if (g.config.mask != MaskKind::kCausal)
    w.set("diffusion.shift_logits", gguf::Value::boolean(g.config.shift_logits));
  w.set("general.name", gguf::Value::str(folder_name(o.dir)));
  vocab_to_gguf(v, w);
  std::vector<std::vector<uint8_t>> store;
  const auto notes = add_quantized_tensors(w, g.weights, g.config, scheme, store, [](size_t done, size_t total) {
    draw_progress("convert", int64_t(done), int64_t(total), "tensors");
  });
  mark_vocabulary(w);
  w.write(o.out);
  for (const auto& n : notes) fmt::print(stderr, "convert: {}\n", n);
  fmt::print(stderr, "{}: {} tensors written as {}, vocabulary {}; model {}\n", o.out, g.weights.tensors().size(),
             quant_scheme_name(scheme), v.size(), g.config.summary());
}

}  // namespace

void add_convert(CLI::App& app) {
  auto* cmd = app.add_subcommand("convert", "Convert a Hugging Face checkpoint folder into a GGUF file");
  auto o = std::make_shared<ConvertOptions>();
  cmd->add_option("dir,-m,--model", o->dir, "Folder with config.json, the safetensors and tokenizer.json")
      ->required();
  add_out_option(cmd, o->out, o->force, "Output GGUF file");
  cmd->add_option("--type", o->type,
                  "Tensor type: f32, f16, bf16, or a llama.cpp mix as unmask quantize takes (q8_0 ... q6_k; default: "
                  "the folder's own, lossless; norms stay f32)");
  add_threads_option(cmd, o->threads);
  cmd->callback([o] { run_convert(*o); });
}

}  // namespace unmask::cli
