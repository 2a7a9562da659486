// What `quantize` and `export` share: opening a model file or a training run (a run directory or its
// checkpoint.gguf), and telling the model's tensors from a checkpoint's optimizer state, which both drop.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "unmask/io/gguf.h"
#include "unmask/model/weights.h"

namespace unmask::cli {

// PATH itself, or PATH/checkpoint.gguf when PATH is a training run's directory.
std::shared_ptr<const gguf::Reader> open_model_or_run(const std::string& path);

// The names of IN's tensors that are a training checkpoint's optimizer state (optim.*); every other tensor must be
// one of the model's (throws naming the first that is neither: writing the model alone would drop it).
std::vector<std::string> optimizer_tensors(const gguf::Reader& in, const ModelWeights& w);

// One line on stderr saying that the optimizer state was left out, when there was some.
void say_dropped(const std::vector<std::string>& dropped, const std::string& from);

}  // namespace unmask::cli
