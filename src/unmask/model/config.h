// The hyper-parameters of the one transformer every model family runs on, and the table of architectures.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "unmask/kernels/rope.h"
#include "unmask/tensor/dtype.h"

namespace unmask {

namespace gguf {
class Reader;
class Writer;
}  // namespace gguf

// Which keys a query may see.
enum class MaskKind {
  kCausal,         // keys at positions <= the query's
  kBidirectional,  // every key of the sequence
  kBlockCausal,    // keys up to the end of the query's block of block_size positions
};
std::string_view mask_kind_name(MaskKind m);

// What differs between LLaMA, Qwen2, LLaDA and Dream: a table, read once at load (GGUF general.architecture).
struct ArchInfo {
  std::string_view name;  // "llada"
  MaskKind mask;          // default mask kind ({arch}.attention.causal and unmask.block_size may override)
  RopeLayout rope;        // adjacent pairs (NORM) or half-split (NEOX)
  bool qkv_bias;          // q/k/v projections carry a bias
  bool shift_logits;      // position i is predicted from row i-1 (Dream)
  bool qk_norm;           // per-head RMSNorm of q and k before RoPE (a loaded file: whether it holds the weights)
  bool moe;               // the FFN is a mixture of experts ({arch}.expert_count > 0 required)
};
// Throws Error listing the known names.
const ArchInfo& arch_info(std::string_view name);

struct ModelConfig {
  std::string arch = "llama";
  int vocab = 0;
  int d_model = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int ffn = 0;
  int ctx = 0;  // longest sequence the model takes
  RopeLayout rope = RopeLayout::kNorm;
  float rope_theta = 10000.0f;
  float norm_eps = 1e-5f;
  bool qkv_bias = false;
  bool tied_output = false;
  bool shift_logits = false;
  MaskKind mask = MaskKind::kCausal;
  int block_size = 0;  // kBlockCausal only
  // > 0: a causal model trained with the joint objective (diffusion/objective.h), which also decodes by diffusion: a
  // block of this many masks after a causal prefix (its KV cache) is a draft (self-speculation, the spec sampler).
  // GGUF unmask.joint.block; needs the mask token.
  int draft_block = 0;
  int32_t mask_token = -1, bos_token = -1, eos_token = -1;
  // The type of the matrices and the embedding of a model made here (random, init); a loaded file may mix types per
  // tensor (a Q4_K_M file holds Q4_K and Q6_K matrices) and its tensors keep theirs. Norms and biases are f32.
  DType wtype = DType::F32;
  // q/k norm (llada-moe): RMSNorm over each head of q and of k, per-head weights (head_dim), before RoPE.
  bool qk_norm = false;
  // Mixture of experts (llada-moe): each layer's FFN is n_experts SwiGLU experts of width expert_ffn; a softmax
  // router picks n_experts_used per token, whose weights are renormalised to sum to 1 when expert_norm.
  // n_experts = 0: the dense FFN of width ffn.
  int n_experts = 0, n_experts_used = 0, expert_ffn = 0;
  bool expert_norm = false;
  // Masked diffusion: the noise schedule α(t) the model was trained with (linear, cosine, loglinear) and its eps,
  // which the ELBO and the samplers' time grids use. GGUF unmask.diffusion.schedule / .eps, written when not linear;
  // a file without them that holds a training run's configuration takes the schedule from there.
  std::string noise_schedule = "linear";
  double noise_eps = 1e-3;

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
  int64_t n_params() const;
  // Throws Error saying which field is inconsistent and what was expected.
  void validate() const;
  void validate_experts() const;  // part of validate(): the expert counts against the architecture
  std::string summary() const;
};

// Named sizes: tiny (tests), nano (nanoGPT's char model), small (13.8M), medium (~100M). Throws on an unknown name.
ModelConfig preset_config(std::string_view name);

// Reads/writes the hyper-parameters with llama.cpp's metadata keys ({arch}.embedding_length, ...).
ModelConfig read_config(const gguf::Reader& r);
void write_config(const ModelConfig& c, gguf::Writer& w);
// Call before writing a model file: one without tokenizer keys says so (tokenizer.ggml.model = "none", with the
// vocabulary size in <arch>.vocab_size), as llama.cpp requires of every file (it refuses one without the key).
void mark_vocabulary(gguf::Writer& w);

}  // namespace unmask
