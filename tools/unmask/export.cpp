// unmask export RUN_DIR|CHECKPOINT OUT.gguf: the model of a training run alone (its tensors as they are, or in
// --type's types), every metadata key kept, the optimizer state dropped: a file llama.cpp-style loaders and
// `quantize` take. --set KEY=VALUE adds string metadata (scripts/train-default-models.sh records its commands so).
#include <fmt/format.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli_util.h"
#include "commands.h"
#include "model_file.h"
#include "progress.h"
#include "unmask/base/error.h"
#include "unmask/io/gguf.h"
#include "unmask/model/quantize.h"

namespace unmask::cli {

namespace {

struct ExportOptions {
  std::string in, out, type;
  std::vector<std::string> set;
  bool force = false;
};

void add_set_keys(gguf::Writer& w, const std::vector<std::string>& set) {
  for (const std::string& kv : set) {
    const size_t eq = kv.find('=');
    check(eq != std::string::npos && eq > 0, "--set '{}': expected KEY=VALUE", kv);
    w.set(kv.substr(0, eq), gguf::Value::str(kv.substr(eq + 1)));
  }
}

void run_export(const ExportOptions& o) {
  check_new_output(o.out, o.force);
  const SourceModel src = open_source_model(o.in);
  const gguf::Reader& in = *src.file;
  gguf::Writer w = writer_with_metadata(in);
  add_set_keys(w, o.set);
  std::vector<std::vector<uint8_t>> store;
  if (!o.type.empty()) {
    for (const auto& n : add_quantized_tensors(w, src.weights, src.config, parse_quant_scheme(o.type), store))
      fmt::print(stderr, "export: {}\n", n);
  } else {
    for (const auto& t : in.tensors())
      if (!t.name.starts_with("optim.")) w.add_tensor(t.name, t.type, t.ne, t.data);
  }
  mark_vocabulary(w);
  w.write(o.out);
  fmt::print(stderr, "{}: the model of {} ({} tensors{}), {:.1f} MB\n", o.out, in.path(),
             src.weights.tensors().size(),
             o.type.empty() ? "" : ", as " + o.type, double(std::filesystem::file_size(o.out)) / 1e6);
}

}  // namespace

void add_export(CLI::App& app) {
  auto* cmd = app.add_subcommand("export", "Write the model of a training run (or checkpoint) alone, without the "
                                           "optimizer state");
  auto o = std::make_shared<ExportOptions>();
  cmd->add_option("in", o->in, "A training run's directory, its checkpoint.gguf, or any GGUF model")->required();
  cmd->add_option("out", o->out, "Output GGUF file (written atomically)")->required();
  cmd->add_option("--type", o->type, "Convert the tensors: f32, f16, bf16, or a llama.cpp mix as unmask quantize "
                                     "takes (q8_0 ... q6_k; default: keep the checkpoint's types)");
  cmd->add_option("--set", o->set, "Add a string metadata key, KEY=VALUE (repeatable)");
  cmd->add_flag("--force", o->force, "Replace OUT if it exists (atomically)");
  cmd->callback([o] { run_export(*o); });
}

}  // namespace unmask::cli
