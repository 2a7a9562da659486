// What the commands share about model files: the tokenizer a model carries (generate, eval, compare), and for
// `quantize` and `export`, opening a model file or a training run (a run directory or its checkpoint.gguf) and
// telling the model's tensors from a checkpoint's optimizer state, which both drop.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "unmask/io/gguf.h"
#include "unmask/model/config.h"
#include "unmask/model/weights.h"

namespace unmask {
class Tokenizer;
}

namespace unmask::cli {


// A model about to be written again: the file (PATH, or PATH/checkpoint.gguf for a training run's directory), its
// configuration and weights. A checkpoint's optimizer state (optim.*) is left out, with one line on stderr saying
// so; any other tensor that is not the model's is refused (writing the model alone would drop it).
struct SourceModel {
  std::shared_ptr<const gguf::Reader> file;
  ModelConfig config;
  ModelWeights weights;
};
SourceModel open_source_model(const std::string& path);

// The tokenizer keys (tokenizer.*) of a vocabulary named by spec: "byte" for the byte-level vocabulary, else a GGUF
// file's or a tokenizer.json's. With a chat template by name, its Jinja source becomes tokenizer.chat_template, so
// that a model trained on data prepared with these keys (its checkpoint copies them) chats in that template.
gguf::Writer tokenizer_keys(const std::string& spec, const std::string& chat_template = "");

// A writer that holds every metadata key of the source, in its order.
gguf::Writer writer_with_metadata(const gguf::Reader& in);

// The shipped default models (scripts/train-default-models.sh), and where they are looked for: $UNMASK_MODELS, an
// install's share/unmask/models, the source tree's models/.
inline constexpr const char* kDiffusionFile = "kjv-mdlm.gguf";
inline constexpr const char* kArFile = "kjv-ar.gguf";
// The first of those folders holding `file`; flag names the option that overrides it in the error.
std::string default_model_path(const char* file, const char* flag);

}  // namespace unmask::cli
