// Hugging Face checkpoint folders: config.json (LLaDAModelLM, DreamModel, LlamaForCausalLM, Qwen2ForCausalLM,
// LLaDAMoEModelLM), the safetensors beside it and the tokenizer files, opened as a Model without conversion.
//
// Each architecture is a table row: its config.json keys, its tensor names (HF name -> llama.cpp name) and its RoPE
// layout. HF checkpoints keep q/k in the half-split RoPE layout, so a folder opens with RoPE NEOX; the GGUF
// converter permutes the q/k rows of llama/llada into adjacent pairs (RoPE NORM), as llama.cpp's converter does.
// Both give the same logits.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "unmask/model/config.h"
#include "unmask/model/model.h"
#include "unmask/tokenizer/vocab.h"

namespace unmask {

class Tokenizer;
namespace safetensors {
class Checkpoint;
}

// True when path is a directory holding a config.json.
bool is_hf_folder(const std::string& path);

// The configuration of a folder's config.json (architectures[0] picks the table row). Throws naming the file and
// the key on a missing or inconsistent value, and listing the known architectures on an unknown one.
ModelConfig read_hf_config(const std::string& dir);

// The tensors of a folder with config c, one view per spec of tensor_specs(c) and in that order, pointing into the
// mapped safetensors files that `files` keeps open. Shapes are checked against c, messages name the file. Sets
// c.wtype to the embedding's type, as a GGUF file's (bf16 models attend in bf16).
// A mixture's experts, one Linear per expert in the folder, are copied into llama.cpp's 3-D layout (stacked; their
// views point there, and the buffers keep their addresses when an HfTensors is moved).
struct HfTensors {
  std::shared_ptr<const safetensors::Checkpoint> files;
  std::vector<TensorView> views;
  std::vector<std::vector<uint8_t>> stacked;
};
HfTensors hf_tensors(const std::string& dir, ModelConfig& c);

// The folder's model, its weights mapped from the safetensors files (RoPE NEOX, q/k as the folder has them).
Model load_hf(const std::string& dir);

// The folder's weights laid out for a GGUF of its architecture (config.rope = the architecture's layout): the q/k
// rows (and biases) of llama/llada permuted from half-split into adjacent pairs, per head, as llama.cpp's converter
// does; every other tensor a view into the mapped files.
struct GgufWeights {
  ModelConfig config;
  ModelWeights weights;
};
GgufWeights hf_weights_for_gguf(const std::string& dir);

// The folder's vocabulary (tokenizer.json, with tokenizer_config.json for roles and the chat template) as the model
// with config c sees it: padded with unused [PAD<i>] tokens up to the embedding's c.vocab rows, as llama.cpp's
// converter does (Dream-7B and Qwen2.5 have more rows than tokens, and a model may sample a padding id), and the
// roles the tokenizer files lack (mask, bos, eos) taken from config.json. Throws when the tokenizer has more tokens
// than the embedding has rows. `convert` writes this vocabulary; a folder opened directly uses it too.
Vocab hf_vocab(const std::string& dir, const ModelConfig& c);

// The folder's tokenizer: make_tokenizer(hf_vocab(dir, read_hf_config(dir))).
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& dir);

}  // namespace unmask
