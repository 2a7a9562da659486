#include "unmask/model/weights.h"

#include <fmt/format.h>

#include "unmask/base/error.h"
#include "unmask/base/parallel.h"
#include "unmask/base/rng.h"
#include "unmask/io/gguf.h"
#include "unmask/kernels/quant.h"

namespace unmask {

namespace {

// Tensors lie back to back (4-byte aligned), so that q/k/v and gate/up form stacked matrices in place and their
// gradients are stacked the same way in a gradient buffer of the same layout.
constexpr size_t kAlign = 4;

size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

TensorView view_of(const TensorSpec& s, const void* data) {
  TensorView v;
  v.data = data;
  v.dtype = s.type;
  v.ndim = int(s.ne.size());
  for (int i = 0; i < v.ndim; ++i) v.ne[i] = s.ne[i];
  return v;
}

bool is_norm_or_bias(const std::string& name) {
  return name.ends_with("norm.weight") || name.ends_with(".bias");
}

// Fills n values of s's type at dst: norms 1, everything else N(0, std²).
void fill_random(const TensorSpec& s, void* dst, Rng rng, float std) {
  int64_t n = 1;
  for (int64_t d : s.ne) n *= d;
  std::vector<float> tmp(size_t(n), 1.0f);
  if (!s.name.ends_with("norm.weight"))
    for (auto& x : tmp) x = float(rng.normal() * std);
  from_f32(s.type, tmp.data(), dst, n);
}

}  // namespace

std::vector<TensorSpec> tensor_specs(const ModelConfig& c) {
  const int64_t C = c.d_model, V = c.vocab, F = c.ffn, Q = c.q_dim(), KV = c.kv_dim();
  const DType w = c.wtype, f = DType::F32;
  std::vector<TensorSpec> s = {{"token_embd.weight", {C, V}, w}, {"output_norm.weight", {C}, f}};
  if (!c.tied_output) s.push_back({"output.weight", {C, V}, w});
  for (int l = 0; l < c.n_layers; ++l) {
    auto name = [l](const char* what) { return fmt::format("blk.{}.{}", l, what); };
    s.push_back({name("attn_norm.weight"), {C}, f});
    s.push_back({name("attn_q.weight"), {C, Q}, w});
    s.push_back({name("attn_k.weight"), {C, KV}, w});
    s.push_back({name("attn_v.weight"), {C, KV}, w});
    if (c.qkv_bias) {
      s.push_back({name("attn_q.bias"), {Q}, f});
      s.push_back({name("attn_k.bias"), {KV}, f});
      s.push_back({name("attn_v.bias"), {KV}, f});
    }
    if (c.qk_norm) {
      s.push_back({name("attn_q_norm.weight"), {c.head_dim}, f});
      s.push_back({name("attn_k_norm.weight"), {c.head_dim}, f});
    }
    s.push_back({name("attn_output.weight"), {Q, C}, w});
    s.push_back({name("ffn_norm.weight"), {C}, f});
    if (c.n_experts > 0) {
      const int64_t E = c.n_experts, FE = c.expert_ffn;
      s.push_back({name("ffn_gate_inp.weight"), {C, E}, f});  // the router stays f32, as llama.cpp's converter keeps it
      s.push_back({name("ffn_gate_exps.weight"), {C, FE, E}, w});
      s.push_back({name("ffn_up_exps.weight"), {C, FE, E}, w});
      s.push_back({name("ffn_down_exps.weight"), {FE, C, E}, w});
    } else {
      s.push_back({name("ffn_gate.weight"), {C, F}, w});
      s.push_back({name("ffn_up.weight"), {C, F}, w});
      s.push_back({name("ffn_down.weight"), {F, C}, w});
    }
  }
  return s;
}

// Every tensor of c, f32 where the config says f32 (and for all norms), in one zeroed, owned buffer.
ModelWeights ModelWeights::allocate(const ModelConfig& c) {
  c.validate();
  ModelWeights m;
  auto specs = tensor_specs(c);
  std::vector<size_t> offsets;
  size_t total = 0;
  for (const auto& s : specs) {
    offsets.push_back(total);
    total += align_up(view_of(s, nullptr).nbytes());
  }
  m.owned_.assign(total, 0);
  for (size_t i = 0; i < specs.size(); ++i) m.all_.emplace_back(specs[i], view_of(specs[i], m.owned_.data() + offsets[i]));
  m.bind(c);
  return m;
}

ModelWeights ModelWeights::random(const ModelConfig& c, uint64_t seed, float std) {
  ModelWeights m = allocate(c);
  Rng root(seed);
  parallel_for(int64_t(m.all_.size()), [&](int64_t i) {
    auto& [spec, view] = m.all_[size_t(i)];
    fill_random(spec, const_cast<void*>(view.data), root.split(uint64_t(i)), std);
  });
  return m;
}

ModelWeights ModelWeights::to_owned_f32(const ModelConfig& c) const {
  ModelConfig f = c;
  f.wtype = DType::F32;
  ModelWeights m = allocate(f);
  for (size_t i = 0; i < all_.size(); ++i) {
    const TensorView& src = all_[i].second;
    row_to_f32(src.dtype, src.data, static_cast<float*>(const_cast<void*>(m.all_[i].second.data)), src.nelements());
  }
  return m;
}

std::span<float> ModelWeights::flat() {
  check(!owned_.empty() && !file_, "training needs owned weights: convert a loaded model with to_trainable()");
  for (const auto& [spec, view] : all_)
    check(view.dtype == DType::F32, "training needs f32 weights; tensor {} is {}", spec.name, dtype_name(view.dtype));
  return {reinterpret_cast<float*>(owned_.data()), owned_.size() / sizeof(float)};
}

size_t ModelWeights::offset_of(const TensorView& t) const {
  auto p = static_cast<const uint8_t*>(t.data);
  check(p >= owned_.data() && p < owned_.data() + owned_.size(), "offset_of: tensor is not in the owned buffer");
  return size_t(p - owned_.data()) / sizeof(float);
}

ModelWeights ModelWeights::from_gguf(std::shared_ptr<const gguf::Reader> file, const ModelConfig& c) {
  std::vector<TensorView> views;
  for (const auto& s : tensor_specs(c)) {
    const gguf::TensorInfo& t = file->tensor(s.name, s.ne);
    views.push_back(view_of({s.name, s.ne, t.type}, t.data));
  }
  try {
    return from_views(file, views, c);
  } catch (const Error& e) {
    fail("{}: {}", file->path(), e.what());
  }
}

namespace {

// Matrices and embeddings may be of any type the GEMMs and the embedding lookup take; norms and biases are read
// as f32 (converted from f16/bf16 at load).
void check_tensor(const TensorSpec& s, const TensorView& v) {
  check(v.shape() == s.ne, "tensor {} has shape {}, expected {}", s.name, gguf::shape_str(v.shape()),
        gguf::shape_str(s.ne));
  const bool plain = v.dtype == DType::F32 || v.dtype == DType::F16 || v.dtype == DType::BF16;
  check(plain || (is_quant_dtype(v.dtype) && !is_norm_or_bias(s.name)), "tensor {} has type {}, expected {}", s.name,
        dtype_name(v.dtype), is_norm_or_bias(s.name) ? "f32, f16 or bf16" : "f32, f16, bf16, q8_0, q4_0, q4_k or q6_k");
}

}  // namespace

ModelWeights ModelWeights::from_views(std::shared_ptr<const void> owner, const std::vector<TensorView>& views,
                                      const ModelConfig& c) {
  const auto specs = tensor_specs(c);
  check(views.size() == specs.size(), "{} tensors given, the configuration needs {}", views.size(), specs.size());
  ModelWeights m;
  size_t converted = 0;  // bytes of the f32 copies of norms and biases stored in another type
  for (size_t i = 0; i < specs.size(); ++i) {
    check_tensor(specs[i], views[i]);
    if (is_norm_or_bias(specs[i].name) && views[i].dtype != DType::F32)
      converted += align_up(size_t(views[i].nelements()) * sizeof(float));
  }
  m.owned_.assign(converted, 0);
  size_t at = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    TensorSpec s = specs[i];
    TensorView v = views[i];
    if (is_norm_or_bias(s.name) && v.dtype != DType::F32) {
      auto* dst = reinterpret_cast<float*>(m.owned_.data() + at);
      to_f32(v.dtype, v.data, dst, v.nelements());
      at += align_up(size_t(v.nelements()) * sizeof(float));
      v.data = dst, v.dtype = DType::F32;
    }
    s.type = v.dtype;
    m.all_.emplace_back(s, v);
  }
  m.file_ = std::move(owner);
  m.bind(c);
  return m;
}

void ModelWeights::bind(const ModelConfig& c) {
  auto find = [this](const std::string& name) -> TensorView {
    for (const auto& [spec, view] : all_)
      if (spec.name == name) return view;
    return {};
  };
  w_.token_embd = find("token_embd.weight");
  w_.output_norm = find("output_norm.weight");
  w_.output = c.tied_output ? w_.token_embd : find("output.weight");
  w_.layers.resize(size_t(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) {
    auto t = [&](const char* what) { return find(fmt::format("blk.{}.{}", l, what)); };
    LayerWeights& L = w_.layers[size_t(l)];
    L.attn_norm = t("attn_norm.weight");
    L.wq = t("attn_q.weight"), L.wk = t("attn_k.weight"), L.wv = t("attn_v.weight");
    L.wo = t("attn_output.weight");
    L.bq = t("attn_q.bias"), L.bk = t("attn_k.bias"), L.bv = t("attn_v.bias");
    L.q_norm = t("attn_q_norm.weight"), L.k_norm = t("attn_k_norm.weight");
    L.ffn_norm = t("ffn_norm.weight");
    L.w_gate = t("ffn_gate.weight"), L.w_up = t("ffn_up.weight"), L.w_down = t("ffn_down.weight");
    L.gate_inp = t("ffn_gate_inp.weight");
    L.gate_exps = t("ffn_gate_exps.weight"), L.up_exps = t("ffn_up_exps.weight");
    L.down_exps = t("ffn_down_exps.weight");
  }
}

size_t ModelWeights::nbytes() const {
  size_t n = 0;
  for (const auto& [spec, view] : all_) n += view.nbytes();
  return n;
}

}  // namespace unmask
