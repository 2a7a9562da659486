// unmask info FILE: what a GGUF model (or a Hugging Face folder) holds.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <memory>

#include "commands.h"
#include "unmask/io/gguf.h"
#include "unmask/io/safetensors.h"
#include "unmask/model/config.h"
#include "unmask/model/hf.h"

namespace unmask::cli {

namespace {

std::string value_str(const gguf::Value& v) {
  using gguf::ValueType;
  if (v.type == ValueType::kArray) {
    const auto& a = std::get<gguf::Value::Array>(v.v);
    return fmt::format("[{} × {}]", a.size(), gguf::value_type_name(v.elem));
  }
  if (auto* s = std::get_if<std::string>(&v.v)) return s->size() > 60 ? fmt::format("\"{}…\"", s->substr(0, 60)) : fmt::format("\"{}\"", *s);
  if (auto* b = std::get_if<bool>(&v.v)) return *b ? "true" : "false";
  if (auto* d = std::get_if<double>(&v.v)) return fmt::format("{:g}", *d);
  if (auto* i = std::get_if<int64_t>(&v.v)) return fmt::format("{}", *i);
  return fmt::format("{}", std::get<uint64_t>(v.v));
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, ++u;
  return fmt::format("{:.1f} {}", b, units[u]);
}

void print_model(const gguf::Reader& r) {
  ModelConfig c = read_config(r);
  fmt::print("model: {}\n", c.summary());
  fmt::print("parameters: {} ({:.2f}M)\n", c.n_params(), c.n_params() / 1e6);
  int64_t kv_per_token = int64_t(2) * c.n_layers * c.kv_dim() * 4;
  fmt::print("memory: weights {} (mapped), KV cache {} per token, {} at full context {}\n",
             human_bytes(double(r.file_size())), human_bytes(double(kv_per_token)),
             human_bytes(double(kv_per_token) * c.ctx), c.ctx);
  if (c.mask_token >= 0) fmt::print("mask token: {}\n", c.mask_token);
  if (c.draft_block > 0) fmt::print("joint: draft block {} (decodes as --sampler ar, bd3 and spec)\n", c.draft_block);
}

void print_file(const std::string& path, bool all_keys) {
  auto r = std::make_unique<gguf::Reader>(path);
  fmt::print("file: {} (GGUF v{}, {}, alignment {})\n", path, r->version(), human_bytes(double(r->file_size())),
             r->alignment());
  print_model(*r);
  fmt::print("\nmetadata ({} keys):\n", r->metadata().size());
  for (const auto& [k, v] : r->metadata()) {
    if (!all_keys && k.starts_with("tokenizer.ggml.") && v.type == gguf::ValueType::kArray) continue;
    fmt::print("  {:<48} {:<8} {}\n", k, gguf::value_type_name(v.type), value_str(v));
  }
  fmt::print("\ntensors ({}):\n", r->tensors().size());
  fmt::print("  {:<32} {:<6} {:<20} {:>12}\n", "name", "type", "shape", "bytes");
  int64_t total = 0;
  for (const auto& t : r->tensors()) {
    fmt::print("  {:<32} {:<6} {:<20} {:>12}\n", t.name, dtype_name(t.type), gguf::shape_str(t.ne), t.nbytes);
    total += t.nelements();
  }
  fmt::print("total: {} elements\n", total);
}

// A Hugging Face folder: the configuration unmask reads from config.json, and the safetensors tensors (shapes as
// the files give them, slowest first).
void print_folder(const std::string& dir) {
  ModelConfig c = read_hf_config(dir);
  const HfTensors t = hf_tensors(dir, c);  // every tensor the model needs, checked; sets the weight type
  const safetensors::Checkpoint& files = *t.files;
  fmt::print("folder: {} (Hugging Face)\n", dir);
  fmt::print("model: {}\n", c.summary());
  fmt::print("parameters: {} ({:.2f}M)\n", c.n_params(), c.n_params() / 1e6);
  if (c.mask_token >= 0) fmt::print("mask token: {}\n", c.mask_token);
  fmt::print("\ntensors ({}):\n", files.names().size());
  fmt::print("  {:<56} {:<6} {:<20} {:>12}\n", "name", "type", "shape", "bytes");
  for (const auto& name : files.names()) {
    const safetensors::TensorInfo& t = *files.find(name);
    const std::string shape = fmt::format("[{}]", fmt::join(t.shape, ", "));
    fmt::print("  {:<56} {:<6} {:<20} {:>12}\n", name, dtype_name(t.type), shape, t.nbytes);
  }
}

void run_info(const std::string& path, bool all_keys) {
  if (is_hf_folder(path)) return print_folder(path);
  print_file(path, all_keys);
}

}  // namespace

void add_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Show a model's architecture, hyper-parameters, tensors and memory");
  auto path = std::make_shared<std::string>();
  auto all = std::make_shared<bool>(false);
  cmd->add_option("file,-m,--model", *path, "GGUF model file or Hugging Face folder")->required();
  cmd->add_flag("--all-keys", *all, "Also list the tokenizer's array keys");
  cmd->callback([path, all] { run_info(*path, *all); });
}

}  // namespace unmask::cli
