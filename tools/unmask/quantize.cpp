// unmask quantize IN.gguf OUT.gguf --type TYPE: the model of IN with its tensors in the scheme's types (llama.cpp's
// rules, model/quantize.h; a quantized IN is dequantized first), every metadata key of IN kept (tokenizer
// included) and general.file_type set; written atomically. A tensor whose rows are not whole blocks of the type the
// rules want falls back as llama.cpp's does, with a line saying so. IN may be a training checkpoint (or its run directory):
// its optimizer state is dropped, with a line saying so.
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
#include "unmask/base/parallel.h"
#include "unmask/io/gguf.h"
#include "unmask/model/quantize.h"

namespace unmask::cli {

namespace {

struct QuantizeOptions {
  std::string in, out, type;
  int threads = 0;
  bool force = false;
};

void run_quantize(const QuantizeOptions& o) {
  set_num_threads(o.threads);
  const QuantScheme scheme = parse_quant_scheme(o.type);  // before touching the disk
  check_new_output(o.out, o.force);
  const SourceModel src = open_source_model(o.in);
  const gguf::Reader& in = *src.file;
  const ModelWeights& weights = src.weights;
  gguf::Writer w = writer_with_metadata(in);
  std::vector<std::vector<uint8_t>> store;
  const auto notes = add_quantized_tensors(w, weights, src.config, scheme, store, [](size_t done, size_t total) {
    draw_progress("quantize", int64_t(done), int64_t(total), "tensors");
  });
  mark_vocabulary(w);
  w.write(o.out);
  for (const auto& n : notes) fmt::print(stderr, "quantize: {}\n", n);  // after the progress bar
  fmt::print(stderr, "{}: {} tensors as {} (general.file_type {}), {:.1f} MB -> {:.1f} MB\n", o.out,
             weights.tensors().size(), quant_scheme_name(scheme), quant_file_type(scheme),
             double(in.file_size()) / 1e6, double(std::filesystem::file_size(o.out)) / 1e6);
}

}  // namespace

void add_quantize(CLI::App& app) {
  auto* cmd = app.add_subcommand("quantize", "Write a GGUF model with its tensors in another type (llama.cpp's mixes)");
  auto o = std::make_shared<QuantizeOptions>();
  cmd->add_option("in", o->in, "Input GGUF model (any supported tensor types), a training checkpoint or run directory (the optimizer state is dropped)")->required();
  cmd->add_option("out", o->out, "Output GGUF file")->required();
  cmd->add_option("--type", o->type,
                  "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, "
                  "q5_k_s, q5_k_m or q6_k: llama.cpp's mixes (norms stay f32)")
      ->required();
  cmd->add_flag("--force", o->force, "Replace OUT if it exists (atomically)");
  add_threads_option(cmd, o->threads);
  cmd->callback([o] { run_quantize(*o); });
}

}  // namespace unmask::cli
