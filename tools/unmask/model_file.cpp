#include "model_file.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdlib>
#include <filesystem>

#include "unmask/base/error.h"
#include "unmask/tokenizer/chat.h"
#include "unmask/tokenizer/tokenizer.h"
#include "unmask/tokenizer/train.h"
#include "unmask/tokenizer/vocab.h"

namespace unmask::cli {

namespace {

std::shared_ptr<const gguf::Reader> open_model_or_run(const std::string& path) {
  const std::filesystem::path p(path);
  if (!std::filesystem::is_directory(p)) return std::make_shared<const gguf::Reader>(path);
  const std::filesystem::path ckpt = p / "checkpoint.gguf";
  check(std::filesystem::exists(ckpt), "{}: a directory without checkpoint.gguf (expected a GGUF model file or a "
        "training run's directory)", path);
  return std::make_shared<const gguf::Reader>(ckpt.string());
}

// The names of IN's tensors that are a checkpoint's optimizer state; throws at a tensor that is neither that nor the
// model's.
std::vector<std::string> optimizer_tensors(const gguf::Reader& in, const ModelWeights& w) {
  std::vector<std::string> dropped;
  for (const auto& t : in.tensors()) {
    bool known = false;
    for (const auto& [spec, view] : w.tensors()) known |= spec.name == t.name;
    if (known) continue;
    check(t.name.starts_with("optim."), "{}: tensor {} is neither one of the model's ({} architecture) nor a "
          "checkpoint's optimizer state; writing the model alone would drop it", in.path(), t.name,
          in.get_string("general.architecture"));
    dropped.push_back(t.name);
  }
  return dropped;
}

void say_dropped(const std::vector<std::string>& dropped, const std::string& from) {
  if (!dropped.empty())
    fmt::print(stderr, "{} is a training checkpoint: its optimizer state ({}) is left out\n", from,
               fmt::join(dropped, ", "));
}

}  // namespace

SourceModel open_source_model(const std::string& path) {
  std::shared_ptr<const gguf::Reader> in = open_model_or_run(path);
  ModelConfig c = read_config(*in);
  ModelWeights w = ModelWeights::from_gguf(in, c);
  say_dropped(optimizer_tensors(*in, w), in->path());
  return {in, c, std::move(w)};
}

gguf::Writer writer_with_metadata(const gguf::Reader& in) {
  gguf::Writer w;
  for (const auto& [key, value] : in.metadata()) w.set(key, value);
  return w;
}

std::string default_model_path(const char* file, const char* flag) {
  namespace fs = std::filesystem;
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("UNMASK_MODELS"); env && *env) dirs.emplace_back(env);
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) dirs.push_back(exe.parent_path() / ".." / "share" / "unmask" / "models");
  dirs.emplace_back(UNMASK_SOURCE_MODELS);
  std::string looked;
  for (const fs::path& d : dirs) {
    if (fs::is_regular_file(d / file)) return (d / file).lexically_normal().string();
    looked += (looked.empty() ? "" : ", ") + d.lexically_normal().string();
  }
  fail("no default model {} (looked in {}); pass {} PATH or set UNMASK_MODELS to its folder", file, looked, flag);
}

gguf::Writer tokenizer_keys(const std::string& spec, const std::string& chat_template) {
  gguf::Writer w;
  if (spec == "byte") {
    vocab_to_gguf(byte_level_vocab(), w);
  } else if (spec.ends_with(".json")) {
    vocab_to_gguf(load_tokenizer_json(spec)->vocab(), w);
  } else {
    gguf::Reader r(spec);
    check(has_vocabulary(r), "{}: the file carries no vocabulary (expected byte, a tokenizer.json, or a GGUF file "
          "with tokenizer.ggml.* keys)", spec);
    for (const auto& [k, v] : r.metadata())
      if (k.starts_with("tokenizer.")) w.set(k, v);
  }
  if (!chat_template.empty())
    w.set("tokenizer.chat_template", gguf::Value::str(chat_template_source(chat_template_by_name(chat_template))));
  return w;
}

}  // namespace unmask::cli
