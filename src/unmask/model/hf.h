// Hugging Face checkpoint folders: config.json (LLaDAModelLM, DreamModel, LlamaForCausalLM, Qwen2ForCausalLM,
// LLaDAMoEModelLM), the safetensors beside it and the tokenizer files, opened as a Model without conversion.
//
// Each architecture is a table row: its config.json keys, its tensor names (HF name -> llama.cpp name) and its RoPE
// layout. HF checkpoints keep q/k in the half-split RoPE layout, so a folder opens with RoPE NEOX; the GGUF
// converter permutes the q/k rows of llama/llada into adjacent pairs (RoPE NORM), as llama.cpp's converter does.
// Both give the same logits.
#pragma once

#include <memory>
#include <string>

#include "unmask/model/config.h"
#include "unmask/model/model.h"

namespace unmask {

class Tokenizer;

// True when path is a directory holding a config.json.
bool is_hf_folder(const std::string& path);

// The configuration of a folder's config.json (architectures[0] picks the table row). Throws naming the file and
// the key on a missing or inconsistent value, and listing the known architectures on an unknown one.
ModelConfig read_hf_config(const std::string& dir);

// The folder's model, its weights mapped from the safetensors files.
Model load_hf(const std::string& dir);

// The folder's tokenizer (tokenizer.json, with tokenizer_config.json for roles and the chat template).
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& dir);

}  // namespace unmask
