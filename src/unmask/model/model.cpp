#include "unmask/model/model.h"

#include "unmask/base/error.h"
#include "unmask/io/gguf.h"
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

Model::Model(ModelConfig c, ModelWeights w) : cfg_(std::move(c)), w_(std::move(w)), s_(std::make_unique<Scratch>()) {
  prepare();
}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

Model Model::load(const std::string& path) {
  auto file = std::make_shared<const gguf::Reader>(path);
  ModelConfig c = read_config(*file);
  ModelWeights w = ModelWeights::from_gguf(std::move(file), c);
  return Model(std::move(c), std::move(w));
}

Model Model::random(const ModelConfig& c, uint64_t seed) { return Model(c, ModelWeights::random(c, seed)); }

// The Linear of a weight (OC, IC) stored with ne = {IC, OC}.
static Linear linear_of(const TensorView& t) { return Linear(t.data, t.dtype, int(t.ne[1]), int(t.ne[0])); }

void Model::prepare() {
  const Weights& w = w_.get();
  lin_.clear();
  for (const LayerWeights& L : w.layers)
    lin_.push_back({linear_of(L.wq), linear_of(L.wk), linear_of(L.wv), linear_of(L.wo), linear_of(L.w_gate),
                    linear_of(L.w_up), linear_of(L.w_down)});
  out_ = linear_of(w.output);
}

void Model::add_to(gguf::Writer& out) const {
  write_config(cfg_, out);
  out.set("general.name", gguf::Value::str("unmask " + cfg_.arch));
  for (const auto& [spec, view] : w_.tensors()) out.add_tensor(spec.name, view.dtype, spec.ne, view.data);
}

void Model::save(const std::string& path) const {
  gguf::Writer out;
  add_to(out);
  out.write(path);
}

KVCache Model::make_cache(int capacity) const { return KVCache(cfg_, capacity > 0 ? capacity : cfg_.ctx); }

void Model::check_tokens(std::span<const int32_t> tokens) const {
  for (size_t i = 0; i < tokens.size(); ++i)
    check(tokens[i] >= 0 && tokens[i] < cfg_.vocab, "token {} at position {} is outside the vocabulary [0, {})",
          tokens[i], i, cfg_.vocab);
}

}  // namespace unmask
