// The model's parameters: one flat buffer (owned after random initialisation, or the memory-mapped GGUF file),
// bound by name to the tensors of the one transformer with every shape checked.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "unmask/model/config.h"
#include "unmask/tensor/tensor.h"

namespace unmask {

struct LayerWeights {
  TensorView attn_norm;       // (C) f32
  TensorView wq, wk, wv, wo;  // (q_dim, C), (kv_dim, C), (kv_dim, C), (C, q_dim) row-major
  TensorView bq, bk, bv;      // (q_dim), (kv_dim), (kv_dim) f32, when qkv_bias
  TensorView q_norm, k_norm;  // (head_dim) f32, when qk_norm
  TensorView ffn_norm;        // (C) f32
  TensorView w_gate, w_up;    // (F, C)
  TensorView w_down;          // (C, F)
  // Mixture of experts (n_experts E > 0; the dense w_gate/w_up/w_down are then absent), expert width FE:
  TensorView gate_inp;                    // (E, C) router
  TensorView gate_exps, up_exps;          // (E, FE, C): ne = {C, FE, E}
  TensorView down_exps;                   // (E, C, FE): ne = {FE, C, E}
};

struct Weights {
  TensorView token_embd;  // (V, C)
  TensorView output_norm; // (C) f32
  TensorView output;      // (V, C); the embedding when tied
  std::vector<LayerWeights> layers;
};

// One named tensor of the model: its GGUF name, shape (ne order) and type.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> ne;
  DType type;
};
// Every tensor the configuration needs, in file order (llama.cpp's names: token_embd.weight, blk.N.attn_q.weight...).
std::vector<TensorSpec> tensor_specs(const ModelConfig& c);

namespace gguf {
class Reader;
}

class ModelWeights {
 public:
  // Random initialisation into one owned buffer: matrices and embeddings ~ N(0, std²), biases ~ N(0, std²),
  // norms = 1. Deterministic in the seed, whatever the thread count.
  static ModelWeights random(const ModelConfig& c, uint64_t seed, float std = 0.02f);
  // Binds the tensors of an open GGUF file (kept mapped), checking names, shapes and types.
  static ModelWeights from_gguf(std::shared_ptr<const gguf::Reader> file, const ModelConfig& c);
  // Binds tensors that live elsewhere (a mapped safetensors file, a converted buffer): one view per spec of
  // tensor_specs(c), in that order, each of the spec's shape in any supported type; `owner` keeps their memory
  // alive. Norms and biases of another type than f32 are converted into an owned f32 copy. Throws naming the
  // tensor on a wrong shape or an unsupported type.
  static ModelWeights from_views(std::shared_ptr<const void> owner, const std::vector<TensorView>& views,
                                 const ModelConfig& c);

  // An owned f32 copy with the layout of random(): the tensors back to back in one flat buffer.
  ModelWeights to_owned_f32(const ModelConfig& c) const;

  const Weights& get() const { return w_; }
  // The flat buffer of owned f32 weights (training); throws when the weights are mapped or not f32.
  std::span<float> flat();
  // Offset in floats of a tensor of the owned buffer.
  size_t offset_of(const TensorView& t) const;
  // Every tensor with its spec, in file order (for saving and for `unmask info`).
  const std::vector<std::pair<TensorSpec, TensorView>>& tensors() const { return all_; }
  size_t nbytes() const;
  // The tensors live in memory this object does not own (a mapped file), except converted norms and biases.
  bool mapped() const { return file_ != nullptr; }

 private:
  void bind(const ModelConfig& c);
  static ModelWeights allocate(const ModelConfig& c);
  std::vector<uint8_t> owned_;  // the flat buffer, when initialised here
  std::shared_ptr<const void> file_;  // what keeps mapped tensors alive (a gguf::Reader, safetensors files)
  std::vector<std::pair<TensorSpec, TensorView>> all_;
  Weights w_;
};

}  // namespace unmask
