#include "unmask/model/config.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <string>

#include "unmask/base/error.h"
#include "unmask/io/gguf.h"

namespace unmask {

namespace {

constexpr ArchInfo kArchs[] = {
    // name        mask                        rope              qkv_bias shift  qk_norm moe
    {"llama",     MaskKind::kCausal,        RopeLayout::kNorm, false, false, false, false},
    {"qwen2",     MaskKind::kCausal,        RopeLayout::kNeox, true,  false, false, false},
    {"llada",     MaskKind::kBidirectional, RopeLayout::kNorm, false, false, false, false},
    {"dream",     MaskKind::kBidirectional, RopeLayout::kNeox, true,  true,  false, false},
    // LLaDA-MoE-7B-A1B: llama.cpp's LLM_ARCH_LLADA_MOE (NEOX rope, the converter does not permute q/k).
    {"llada-moe", MaskKind::kBidirectional, RopeLayout::kNeox, false, false, true,  true},
};

std::string key(const ModelConfig& c, std::string_view k) { return fmt::format("{}.{}", c.arch, k); }

int read_count(const gguf::Reader& r, const std::string& k, int64_t lo, int64_t hi) {
  int64_t v = r.get_int(k);
  check(v >= lo && v <= hi, "{}: key {} = {}, expected a value in [{}, {}]", r.path(), k, v, lo, hi);
  return int(v);
}

// llama.cpp's keys; without expert_feed_forward_length the expert width is feed_forward_length / expert_used_count,
// as llama.cpp falls back to.
void read_experts(const gguf::Reader& r, ModelConfig& c) {
  c.n_experts = read_count(r, key(c, "expert_count"), 1, 4096);
  c.n_experts_used = read_count(r, key(c, "expert_used_count"), 1, c.n_experts);
  c.expert_ffn = r.has(key(c, "expert_feed_forward_length"))
                     ? read_count(r, key(c, "expert_feed_forward_length"), 1, 1 << 20)
                     : c.ffn / c.n_experts_used;
  c.expert_norm = r.get_bool(key(c, "expert_weights_norm"), false);
}

// unmask.diffusion.schedule / .eps; else the schedule of the training run that wrote the file (unmask.train.config,
// files written before the keys existed); else linear.
void read_noise_schedule(const gguf::Reader& r, ModelConfig& c) {
  if (r.has("unmask.diffusion.schedule")) {
    c.noise_schedule = r.get_string("unmask.diffusion.schedule");
    c.noise_eps = r.get_float("unmask.diffusion.eps", c.noise_eps);
    return;
  }
  if (!r.has("unmask.train.config")) return;
  const auto j = nlohmann::json::parse(r.get_string("unmask.train.config"), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return;
  if (j.contains("schedule") && j["schedule"].is_string()) c.noise_schedule = j["schedule"].get<std::string>();
  if (j.contains("eps") && j["eps"].is_number()) c.noise_eps = j["eps"].get<double>();
}

}  // namespace

std::string_view mask_kind_name(MaskKind m) {
  switch (m) {
    case MaskKind::kCausal: return "causal";
    case MaskKind::kBidirectional: return "bidirectional";
    case MaskKind::kBlockCausal: return "block-causal";
  }
  return "?";
}

const ArchInfo& arch_info(std::string_view name) {
  std::string known;
  for (const auto& a : kArchs) {
    if (a.name == name) return a;
    known += (known.empty() ? "" : ", ") + std::string(a.name);
  }
  fail("unknown architecture '{}'; known: {}", name, known);
}

int64_t ModelConfig::n_params() const {
  int64_t d = d_model, per_layer = 0;
  per_layer += 2 * d;                                          // attn_norm, ffn_norm
  per_layer += d * q_dim() + 2 * d * kv_dim() + q_dim() * d;  // q, k, v, o
  if (qkv_bias) per_layer += q_dim() + 2 * kv_dim();
  if (qk_norm) per_layer += 2 * head_dim;
  if (n_experts > 0)
    per_layer += n_experts * d + 3 * d * int64_t(expert_ffn) * n_experts;  // router; gate, up, down per expert
  else
    per_layer += 3 * d * int64_t(ffn);  // gate, up, down
  int64_t total = int64_t(vocab) * d + d + n_layers * per_layer;
  if (!tied_output) total += int64_t(vocab) * d;
  return total;
}

void ModelConfig::validate() const {
  arch_info(arch);
  auto positive = [](int v, std::string_view name) { check(v > 0, "model config: {} = {}, expected > 0", name, v); };
  positive(vocab, "vocab");
  positive(d_model, "d_model");
  positive(n_layers, "n_layers");
  positive(n_heads, "n_heads");
  positive(n_kv_heads, "n_kv_heads");
  positive(head_dim, "head_dim");
  positive(ffn, "ffn");
  positive(ctx, "ctx");
  check(n_heads % n_kv_heads == 0, "model config: n_heads = {} is not a multiple of n_kv_heads = {}", n_heads,
        n_kv_heads);
  check(head_dim % 2 == 0, "model config: head_dim = {} must be even for RoPE", head_dim);
  check(norm_eps > 0 && rope_theta > 0, "model config: norm_eps and rope_theta must be > 0");
  if (mask == MaskKind::kBlockCausal)
    check(block_size > 0, "model config: block-causal attention needs block_size > 0, got {}", block_size);
  if (draft_block > 0)
    check(mask == MaskKind::kCausal && mask_token >= 0, "model config: a joint model (draft block {}) must be causal "
          "with a mask token", draft_block);
  for (int32_t t : {mask_token, bos_token, eos_token})
    check(t >= -1 && t < vocab, "model config: special token id {} is outside the vocabulary of {}", t, vocab);
  validate_experts();
}

void ModelConfig::validate_experts() const {
  if (!arch_info(arch).moe) {
    check(n_experts == 0, "model config: architecture {} has no experts, got n_experts = {}", arch, n_experts);
    return;
  }
  check(n_experts > 0, "model config: architecture {} is a mixture of experts, n_experts = {}, expected > 0", arch,
        n_experts);
  check(n_experts_used > 0 && n_experts_used <= n_experts,
        "model config: n_experts_used = {}, expected 1 to n_experts = {}", n_experts_used, n_experts);
  check(expert_ffn > 0, "model config: expert_ffn = {}, expected > 0", expert_ffn);
}

std::string ModelConfig::summary() const {
  return fmt::format(
      "arch {}, {} attention{}, vocab {}, d_model {}, layers {}, heads {} (kv {}), head_dim {}, ffn {}, ctx {}, "
      "rope {} theta {}, eps {}, qkv bias {}, {} output, weights {}{}{}",
      arch, mask_kind_name(mask), mask == MaskKind::kBlockCausal ? fmt::format(" (block {})", block_size) : "",
      vocab, d_model, n_layers, n_heads, n_kv_heads, head_dim, ffn, ctx, rope == RopeLayout::kNorm ? "norm" : "neox",
      rope_theta, norm_eps, qkv_bias ? "yes" : "no", tied_output ? "tied" : "untied", dtype_name(wtype),
      qk_norm ? ", q/k norm" : "",
      n_experts > 0 ? fmt::format(", experts {} (top {}{}, width {})", n_experts, n_experts_used,
                                  expert_norm ? ", renormalised" : "", expert_ffn)
                    : "");
}

ModelConfig preset_config(std::string_view name) {
  ModelConfig c;
  auto set = [&](int vocab, int d, int layers, int heads, int kv, int ffn, int ctx) {
    c.vocab = vocab, c.d_model = d, c.n_layers = layers, c.n_heads = heads, c.n_kv_heads = kv;
    c.head_dim = d / heads, c.ffn = ffn, c.ctx = ctx;
  };
  if (name == "tiny") set(512, 64, 2, 4, 2, 176, 512);
  else if (name == "nano") set(96, 128, 4, 4, 4, 512, 256);
  else if (name == "small") set(4096, 384, 6, 6, 6, 1024, 2048);
  else if (name == "medium") set(8192, 768, 12, 12, 12, 2048, 2048);
  else fail("unknown config '{}'; known: tiny (~0.1M), nano (~0.8M), small (13.8M), medium (~98M)", name);
  return c;
}

ModelConfig read_config(const gguf::Reader& r) {
  ModelConfig c;
  c.arch = r.get_string("general.architecture");
  const ArchInfo& a = arch_info(c.arch);
  c.rope = a.rope, c.qkv_bias = a.qkv_bias, c.shift_logits = a.shift_logits, c.mask = a.mask;
  constexpr int64_t kMaxDim = 1 << 20;
  c.d_model = read_count(r, key(c, "embedding_length"), 1, kMaxDim);
  c.n_layers = read_count(r, key(c, "block_count"), 1, 4096);
  c.ffn = read_count(r, key(c, "feed_forward_length"), 1, kMaxDim);
  c.n_heads = read_count(r, key(c, "attention.head_count"), 1, 4096);
  c.n_kv_heads = r.has(key(c, "attention.head_count_kv")) ? read_count(r, key(c, "attention.head_count_kv"), 1, 4096)
                                                          : c.n_heads;
  c.head_dim = r.has(key(c, "attention.key_length")) ? read_count(r, key(c, "attention.key_length"), 1, 65536)
                                                     : c.d_model / c.n_heads;
  c.ctx = read_count(r, key(c, "context_length"), 1, 1 << 24);
  c.norm_eps = float(r.get_float(key(c, "attention.layer_norm_rms_epsilon"), 1e-5));
  c.rope_theta = float(r.get_float(key(c, "rope.freq_base"), 10000.0));
  if (r.has(key(c, "attention.causal")))
    c.mask = r.get_bool(key(c, "attention.causal")) ? MaskKind::kCausal : MaskKind::kBidirectional;
  c.shift_logits = r.get_bool("diffusion.shift_logits", c.shift_logits);
  c.block_size = int(r.get_int("unmask.block_size", 0));
  if (c.block_size > 0) c.mask = MaskKind::kBlockCausal;
  c.draft_block = int(r.get_int("unmask.joint.block", 0));
  c.mask_token = int32_t(r.get_int("tokenizer.ggml.mask_token_id", -1));
  c.bos_token = int32_t(r.get_int("tokenizer.ggml.bos_token_id", -1));
  c.eos_token = int32_t(r.get_int("tokenizer.ggml.eos_token_id", -1));
  const gguf::TensorInfo* emb = r.find_tensor("token_embd.weight");
  check(emb != nullptr, "{}: tensor token_embd.weight is missing", r.path());
  check(emb->ne.size() == 2 && emb->ne[0] == c.d_model, "{}: tensor token_embd.weight has shape {}, expected [{}, vocab]",
        r.path(), gguf::shape_str(emb->ne), c.d_model);
  c.vocab = int(emb->ne[1]);
  c.wtype = emb->type;
  c.tied_output = r.find_tensor("output.weight") == nullptr;
  c.qkv_bias = r.find_tensor("blk.0.attn_q.bias") != nullptr;
  c.qk_norm = r.find_tensor("blk.0.attn_q_norm.weight") != nullptr;
  if (a.moe) read_experts(r, c);
  read_noise_schedule(r, c);
  try {
    c.validate();
  } catch (const Error& e) {
    fail("{}: {}", r.path(), e.what());
  }
  return c;
}

void mark_vocabulary(gguf::Writer& w) {
  if (!w.has("tokenizer.ggml.model")) w.set("tokenizer.ggml.model", gguf::Value::str("none"));
}

void write_config(const ModelConfig& c, gguf::Writer& w) {
  using gguf::Value;
  w.set("general.architecture", Value::str(c.arch));
  w.set(key(c, "context_length"), Value::u32(uint32_t(c.ctx)));
  w.set(key(c, "embedding_length"), Value::u32(uint32_t(c.d_model)));
  w.set(key(c, "block_count"), Value::u32(uint32_t(c.n_layers)));
  w.set(key(c, "feed_forward_length"), Value::u32(uint32_t(c.ffn)));
  w.set(key(c, "attention.head_count"), Value::u32(uint32_t(c.n_heads)));
  w.set(key(c, "attention.head_count_kv"), Value::u32(uint32_t(c.n_kv_heads)));
  w.set(key(c, "attention.key_length"), Value::u32(uint32_t(c.head_dim)));
  w.set(key(c, "attention.value_length"), Value::u32(uint32_t(c.head_dim)));
  w.set(key(c, "rope.dimension_count"), Value::u32(uint32_t(c.head_dim)));
  w.set(key(c, "attention.layer_norm_rms_epsilon"), Value::f32(c.norm_eps));
  w.set(key(c, "rope.freq_base"), Value::f32(c.rope_theta));
  w.set(key(c, "vocab_size"), Value::u32(uint32_t(c.vocab)));
  w.set(key(c, "attention.causal"), Value::boolean(c.mask == MaskKind::kCausal));
  // llama.cpp's diffusion CLI shifts the logits of a file without the key: a diffusion model that does not shift
  // (LLaDA's) must say so.
  if (c.shift_logits != arch_info(c.arch).shift_logits || (c.mask != MaskKind::kCausal && !c.shift_logits))
    w.set("diffusion.shift_logits", Value::boolean(c.shift_logits));
  if (c.mask == MaskKind::kBlockCausal) w.set("unmask.block_size", Value::u32(uint32_t(c.block_size)));
  if (c.draft_block > 0) w.set("unmask.joint.block", Value::u32(uint32_t(c.draft_block)));
  if (c.noise_schedule != "linear") {
    w.set("unmask.diffusion.schedule", Value::str(c.noise_schedule));
    w.set("unmask.diffusion.eps", Value::f32(float(c.noise_eps)));
  }
  if (c.n_experts > 0) {
    w.set(key(c, "expert_count"), Value::u32(uint32_t(c.n_experts)));
    w.set(key(c, "expert_used_count"), Value::u32(uint32_t(c.n_experts_used)));
    w.set(key(c, "expert_feed_forward_length"), Value::u32(uint32_t(c.expert_ffn)));
    if (c.expert_norm) w.set(key(c, "expert_weights_norm"), Value::boolean(true));
  }
  if (c.mask_token >= 0) w.set("tokenizer.ggml.mask_token_id", Value::u32(uint32_t(c.mask_token)));
  if (c.bos_token >= 0) w.set("tokenizer.ggml.bos_token_id", Value::u32(uint32_t(c.bos_token)));
  if (c.eos_token >= 0) w.set("tokenizer.ggml.eos_token_id", Value::u32(uint32_t(c.eos_token)));
}

}  // namespace unmask
