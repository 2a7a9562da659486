#include "unmask/model/model.h"

#include <unistd.h>

#include <cstdlib>
#include <string_view>

#include "unmask/base/error.h"
#include "unmask/io/gguf.h"
#include "unmask/kernels/quant_gemm.h"
#include "unmask/model/hf.h"
#include "unmask/model/scratch.h"

namespace unmask {

KVCache::KVCache(const ModelConfig& c, int capacity)
    : k_(size_t(c.n_layers) * size_t(capacity) * size_t(c.kv_dim())),
      v_(k_.size()),
      kv_dim_(c.kv_dim()),
      cap_(capacity) {}

void KVCache::truncate(int n) {
  check(n >= 0 && n <= len_, "KV cache: cannot truncate to {} positions, it holds {}", n, len_);
  len_ = n;
}

void KVCache::advance(int n) {
  check(len_ + n <= cap_, "KV cache: {} + {} positions exceed its capacity of {}", len_, n, cap_);
  len_ += n;
}

void Batch::add(std::span<const int32_t> seq) {
  tokens.insert(tokens.end(), seq.begin(), seq.end());
  begin.push_back(int32_t(tokens.size()));
}

void Model::release_scratch(int keep_rows) {
  s_ = std::make_unique<Scratch>();
  for (LayerLinears& L : lin_) {
    for (Linear* lin : {&L.qkv, &L.o, &L.gate_up, &L.down}) lin->release(keep_rows);
    for (auto* experts : {&L.gate_e, &L.up_e, &L.down_e})
      for (Linear& lin : *experts) lin.release(keep_rows);
  }
  out_.release(keep_rows);
}

Model::Model(ModelConfig c, ModelWeights w) : cfg_(std::move(c)), w_(std::move(w)), s_(std::make_unique<Scratch>()) {
  prepare();
}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

Model Model::load(const std::string& path) {
  if (is_hf_folder(path)) return load_hf(path);
  auto file = std::make_shared<const gguf::Reader>(path);
  ModelConfig c = read_config(*file);
  ModelWeights w = ModelWeights::from_gguf(std::move(file), c);
  return Model(std::move(c), std::move(w));
}

Model Model::random(const ModelConfig& c, uint64_t seed) { return Model(c, ModelWeights::random(c, seed)); }

Model Model::from_weights(ModelConfig c, ModelWeights w) { return Model(std::move(c), std::move(w)); }

namespace {

bool back_to_back(std::initializer_list<const TensorView*> parts) {
  const TensorView* prev = nullptr;
  for (const TensorView* t : parts) {
    if (prev && static_cast<const uint8_t*>(prev->data) + prev->nbytes() != t->data) return false;
    prev = t;
  }
  return true;
}

bool plain(DType t) { return t == DType::F32 || t == DType::BF16; }

// f32 or bf16 matrices of one type run on oneDNN as one stacked weight; any other type or mix is read in place,
// part by part (gemm.h).
bool one_plain_type(std::initializer_list<const TensorView*> parts) {
  const DType t = (*parts.begin())->dtype;
  for (const TensorView* p : parts)
    if (p->dtype != t) return false;
  return plain(t);
}

// Matrices (OC_i, IC) stacked as (Σ OC_i, IC) for oneDNN: f32/bf16 of one type in place when they lie back to
// back, else copied into buf. Returns the stacked data, or null for parts that a Linear reads in place.
const void* stack(std::vector<uint8_t>& buf, std::initializer_list<const TensorView*> parts, bool prepack) {
  const TensorView& first = **parts.begin();
  if (!prepack || !one_plain_type(parts)) return nullptr;
  if (back_to_back(parts)) return first.data;
  for (const TensorView* t : parts)
    buf.insert(buf.end(), static_cast<const uint8_t*>(t->data), static_cast<const uint8_t*>(t->data) + t->nbytes());
  return buf.data();
}

Linear stacked_linear(const void* data, std::initializer_list<const TensorView*> parts, bool repack) {
  if (!data) {
    std::vector<LinearPart> in_place;
    for (const TensorView* t : parts) in_place.push_back({t->data, t->dtype, int(t->ne[1])});
    return Linear(std::move(in_place), int((*parts.begin())->ne[0]), repack);
  }
  int oc = 0;
  for (const TensorView* t : parts) oc += int(t->ne[1]);
  return Linear(data, (*parts.begin())->dtype, oc, int((*parts.begin())->ne[0]));
}

// Whether to copy the matrices `copied` selects into a faster layout (as large again as those matrices): yes, unless
// the weights are mapped from a file and the copies would take more than 1/`share` of the machine's memory: then
// they are read in place, at the in-place kernels' speed, and resident memory stays near the file's size (a file
// larger than memory still runs from its pages). UNMASK_PREPACK=0/1 overrides (mapped weights only). f32/bf16:
// oneDNN's prepacked copies, a quarter; quantized: Linear's repack for the int8 tiles, half.
bool copies_fit(const ModelWeights& w, bool (*copied)(DType), size_t share) {
  if (!w.mapped()) return true;  // owned weights (training reads the stacked f32 masters)
  if (const char* e = std::getenv("UNMASK_PREPACK")) return std::string_view(e) != "0";
  size_t bytes = 0;
  for (const auto& [spec, view] : w.tensors())
    if (view.ndim >= 2 && copied(view.dtype)) bytes += view.nbytes();
  const size_t phys = size_t(sysconf(_SC_PHYS_PAGES)) * size_t(sysconf(_SC_PAGE_SIZE));
  return bytes <= phys / share;
}

}  // namespace

Linear Model::matrix_linear(const void* data, DType t, int oc, int ic) const {
  if (prepack_ && plain(t)) return Linear(data, t, oc, ic);
  return Linear(std::vector<LinearPart>{{data, t, oc}}, ic, repack_);
}

void Model::prepare() {
  const Weights& w = w_.get();
  prepack_ = copies_fit(w_, plain, 4);
  repack_ = copies_fit(w_, quant_repacks, 2);
  rope_ = RopeTable(cfg_.head_dim, cfg_.rope_theta);
  lin_ = std::vector<LayerLinears>(w.layers.size());
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& W = w.layers[l];
    LayerLinears& L = lin_[l];
    const void* qkv = stack(L.qkv_copy, {&W.wq, &W.wk, &W.wv}, prepack_);
    L.qkv = stacked_linear(qkv, {&W.wq, &W.wk, &W.wv}, repack_);
    L.qkv_w = static_cast<const float*>(qkv);
    L.o = matrix_linear(W.wo);
    if (cfg_.n_experts > 0) {
      prepare_experts(l);
    } else {
      const void* gu = stack(L.gate_up_copy, {&W.w_gate, &W.w_up}, prepack_);
      L.gate_up = stacked_linear(gu, {&W.w_gate, &W.w_up}, repack_);
      L.gate_up_w = static_cast<const float*>(gu);
      L.down = matrix_linear(W.w_down);
    }
    if (W.bq.data && back_to_back({&W.bq, &W.bk, &W.bv})) {
      L.qkv_b = W.bq.f32();
    } else if (W.bq.data) {
      for (const TensorView* b : {&W.bq, &W.bk, &W.bv}) L.qkv_b_copy.insert(L.qkv_b_copy.end(), b->f32(), b->f32() + b->nelements());
      L.qkv_b = L.qkv_b_copy.data();
    }
  }
  out_ = matrix_linear(w.output);
}

void Model::add_to(gguf::Writer& out) const {
  write_config(cfg_, out);
  out.set("general.name", gguf::Value::str("unmask " + cfg_.arch));
  for (const auto& [spec, view] : w_.tensors()) out.add_tensor(spec.name, view.dtype, spec.ne, view.data);
}

void Model::save(const std::string& path) const {
  gguf::Writer out;
  add_to(out);
  mark_vocabulary(out);
  out.write(path);
}

KVCache Model::make_cache(int capacity) const { return KVCache(cfg_, capacity > 0 ? capacity : cfg_.ctx); }

void Model::check_tokens(std::span<const int32_t> tokens) const {
  for (size_t i = 0; i < tokens.size(); ++i)
    check(tokens[i] >= 0 && tokens[i] < cfg_.vocab, "token {} at position {} is outside the vocabulary [0, {})",
          tokens[i], i, cfg_.vocab);
}

}  // namespace unmask
