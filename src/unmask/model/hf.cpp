// Hugging Face folders: config.json -> ModelConfig, HF tensor names -> llama.cpp's, one table row per architecture.
#include "unmask/model/hf.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <span>
#include <utility>

#include "unmask/base/error.h"
#include "unmask/io/safetensors.h"
#include "unmask/tokenizer/tokenizer.h"

namespace unmask {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// The config.json key of each hyper-parameter ("" where the family has none; then the fallback in the reader).
struct ConfigKeys {
  std::string_view d_model, n_layers, n_heads, n_kv_heads, head_dim, ffn, ctx, rope_theta, norm_eps, tied;
  std::string_view vocab_rows;  // the embedding's row count when it differs from vocab_size (LLaDA pads it)
  std::string_view qkv_bias;    // a flag that adds q/k/v biases (the architecture may have them regardless)
  // A mixture of experts (architectures with ArchInfo::moe): counts, expert width, renormalisation, and the flag of
  // the q/k norms (architectures with ArchInfo::qk_norm, present unless it is false).
  std::string_view n_experts = "", n_experts_used = "", expert_ffn = "", expert_norm = "", qk_norm = "";
};

// LLaDA's own keys (configuration_llada.py, OLMo's names).
constexpr ConfigKeys kLLaDAKeys = {
    .d_model = "d_model", .n_layers = "n_layers", .n_heads = "n_heads", .n_kv_heads = "n_kv_heads",
    .head_dim = "", .ffn = "mlp_hidden_size", .ctx = "max_sequence_length", .rope_theta = "rope_theta",
    .norm_eps = "rms_norm_eps", .tied = "weight_tying", .vocab_rows = "embedding_size",
    .qkv_bias = "include_qkv_bias"};
// transformers' LlamaConfig / Qwen2Config (Dream's config is Qwen2's).
constexpr ConfigKeys kTransformersKeys = {
    .d_model = "hidden_size", .n_layers = "num_hidden_layers", .n_heads = "num_attention_heads",
    .n_kv_heads = "num_key_value_heads", .head_dim = "head_dim", .ffn = "intermediate_size",
    .ctx = "max_position_embeddings", .rope_theta = "rope_theta", .norm_eps = "rms_norm_eps",
    .tied = "tie_word_embeddings", .vocab_rows = "", .qkv_bias = ""};
// LLaDA-MoE's (configuration_lladamoe.py): transformers' names and its experts'. Without intermediate_size (the
// dense width, unused) feed_forward_length is expert width · experts used, as llama.cpp reads it back.
constexpr ConfigKeys kLLaDAMoEKeys = {
    .d_model = "hidden_size", .n_layers = "num_hidden_layers", .n_heads = "num_attention_heads",
    .n_kv_heads = "num_key_value_heads", .head_dim = "head_dim", .ffn = "intermediate_size",
    .ctx = "max_position_embeddings", .rope_theta = "rope_theta", .norm_eps = "rms_norm_eps",
    .tied = "tie_word_embeddings", .vocab_rows = "", .qkv_bias = "", .n_experts = "num_experts",
    .n_experts_used = "num_experts_per_tok", .expert_ffn = "expert_intermediate_size",
    .expert_norm = "norm_topk_prob", .qk_norm = "qk_layernorm"};

// Options the one transformer does not implement: a config.json that sets one of them (not null) to another value
// than this JSON text is rejected rather than computed wrongly.
struct Supported {
  std::string_view key, value;
};
constexpr Supported kLLaDASupported[] = {
    {"include_bias", "false"},         {"bias_for_layer_norm", "false"}, {"attention_layer_norm", "false"},
    {"input_emb_norm", "false"},       {"scale_logits", "false"},        {"layer_norm_type", "\"rms\""},
    {"layer_norm_with_affine", "true"}, {"block_type", "\"llama\""},    {"activation_type", "\"silu\""},
    {"alibi", "false"},                {"rope", "true"},                 {"block_group_size", "1"},
    {"multi_query_attention", "false"}, {"clip_qkv", "null"}};
constexpr Supported kTransformersSupported[] = {{"hidden_act", "\"silu\""},  {"attention_bias", "false"},
                                                {"mlp_bias", "false"},        {"rope_scaling", "null"},
                                                {"use_sliding_window", "false"}};
// Softmax routing without expert bias, group limits or shared experts; full rotary; every layer a mixture
// (moe_layer_freq, checked in read_experts).
constexpr Supported kLLaDAMoESupported[] = {
    {"hidden_act", "\"silu\""},       {"attention_bias", "false"},         {"rope_scaling", "null"},
    {"partial_rotary_factor", "1"},   {"moe_router_score_function", "\"softmax\""},
    {"moe_router_enable_expert_bias", "false"}, {"routed_scaling_factor", "1"}, {"num_shared_expert", "0"},
    {"router_num_group", "1"},        {"clip_qkv", "null"}};

// The HF name of each llama.cpp tensor: the model-wide ones in full, the per-layer ones as stems under the layer
// prefix ("{}" is the layer); .weight/.bias carry over.
struct Stem {
  std::string_view ours, theirs;  // "attn_q" -> "self_attn.q_proj"
};
struct TensorNames {
  std::string_view token_embd, output_norm, output;
  std::string_view layer;
  std::span<const Stem> stems;
};

constexpr Stem kLLaDAStems[] = {{"attn_norm", "attn_norm"}, {"attn_q", "q_proj"},     {"attn_k", "k_proj"},
                                {"attn_v", "v_proj"},       {"attn_output", "attn_out"}, {"ffn_norm", "ff_norm"},
                                {"ffn_gate", "ff_proj"},    {"ffn_up", "up_proj"},    {"ffn_down", "ff_out"}};
constexpr TensorNames kLLaDANames = {.token_embd = "model.transformer.wte.weight",
                                     .output_norm = "model.transformer.ln_f.weight",
                                     .output = "model.transformer.ff_out.weight",
                                     .layer = "model.transformer.blocks.{}.",
                                     .stems = kLLaDAStems};
constexpr Stem kTransformersStems[] = {
    {"attn_norm", "input_layernorm"},  {"attn_q", "self_attn.q_proj"},      {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"},    {"attn_output", "self_attn.o_proj"}, {"ffn_norm", "post_attention_layernorm"},
    {"ffn_gate", "mlp.gate_proj"},     {"ffn_up", "mlp.up_proj"},           {"ffn_down", "mlp.down_proj"}};
constexpr TensorNames kTransformersNames = {.token_embd = "model.embed_tokens.weight",
                                            .output_norm = "model.norm.weight",
                                            .output = "lm_head.weight",
                                            .layer = "model.layers.{}.",
                                            .stems = kTransformersStems};
// The experts' stems name one expert's Linear ("{}" is the expert): the folder holds one per expert, stacked into
// llama.cpp's 3-D tensor (stack_experts).
constexpr Stem kLLaDAMoEStems[] = {
    {"attn_norm", "input_layernorm"},    {"attn_q", "self_attn.q_proj"},       {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"},      {"attn_q_norm", "self_attn.q_norm"},  {"attn_k_norm", "self_attn.k_norm"},
    {"attn_output", "self_attn.o_proj"}, {"ffn_norm", "post_attention_layernorm"}, {"ffn_gate_inp", "mlp.gate"},
    {"ffn_gate_exps", "mlp.experts.{}.gate_proj"}, {"ffn_up_exps", "mlp.experts.{}.up_proj"},
    {"ffn_down_exps", "mlp.experts.{}.down_proj"}};
constexpr TensorNames kLLaDAMoENames = {.token_embd = "model.embed_tokens.weight",
                                        .output_norm = "model.norm.weight",
                                        .output = "lm_head.weight",
                                        .layer = "model.layers.{}.",
                                        .stems = kLLaDAMoEStems};

// One row per architecture (config.json's architectures[0]). Whether the converter permutes q/k follows from the
// GGUF architecture's RoPE layout (arch_info): NORM (adjacent pairs) needs the permutation, NEOX keeps HF's layout.
struct HfArch {
  std::string_view hf_name;  // "LLaDAModelLM"
  std::string_view arch;     // llama.cpp's architecture name
  const ConfigKeys* keys;
  std::span<const Supported> supported;
  const TensorNames* names;
  int32_t mask_token = -1;  // when config.json names none and the vocabulary has it (llama.cpp's converter's)
};

const HfArch kHfArchs[] = {
    {"LLaDAModelLM", "llada", &kLLaDAKeys, kLLaDASupported, &kLLaDANames},
    {"DreamModel", "dream", &kTransformersKeys, kTransformersSupported, &kTransformersNames},
    {"LlamaForCausalLM", "llama", &kTransformersKeys, kTransformersSupported, &kTransformersNames},
    {"Qwen2ForCausalLM", "qwen2", &kTransformersKeys, kTransformersSupported, &kTransformersNames},
    {"LLaDAMoEModelLM", "llada-moe", &kLLaDAMoEKeys, kLLaDAMoESupported, &kLLaDAMoENames, 156895},
};

struct ConfigFile {
  std::string path;
  json j;

  bool has(std::string_view key) const { return !key.empty() && j.contains(key) && !j.at(key).is_null(); }

  int64_t get_int(std::string_view key) const {
    check(has(key), "{}: key {} is missing", path, key);
    const json& v = j.at(key);
    check(v.is_number_integer(), "{}: key {} = {}, expected an integer", path, key, v.dump());
    return v.get<int64_t>();
  }

  int count(std::string_view key) const {
    const int64_t v = get_int(key);
    check(v > 0 && v <= (int64_t(1) << 30), "{}: key {} = {}, expected a positive count", path, key, v);
    return int(v);
  }

  double get_float(std::string_view key, double fallback) const {
    if (!has(key)) return fallback;
    check(j.at(key).is_number(), "{}: key {} = {}, expected a number", path, key, j.at(key).dump());
    return j.at(key).get<double>();
  }

  bool get_bool(std::string_view key, bool fallback) const {
    if (!has(key)) return fallback;
    check(j.at(key).is_boolean(), "{}: key {} = {}, expected true or false", path, key, j.at(key).dump());
    return j.at(key).get<bool>();
  }

  // A special token id: an integer, the first of a list (LLaMA 3.1's eos_token_id), or -1 when absent.
  int32_t token_id(std::string_view key) const {
    if (!has(key)) return -1;
    const json& v = j.at(key).is_array() && !j.at(key).empty() ? j.at(key)[0] : j.at(key);
    check(v.is_number_integer(), "{}: key {} = {}, expected a token id", path, key, j.at(key).dump());
    return int32_t(v.get<int64_t>());
  }
};

ConfigFile read_config_file(const std::string& dir) {
  ConfigFile f{(fs::path(dir) / "config.json").string(), {}};
  std::ifstream in(f.path);
  check(bool(in), "{}: cannot open for reading", f.path);
  try {
    f.j = json::parse(in);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", f.path, e.what());
  }
  check(f.j.is_object(), "{}: expected a JSON object", f.path);
  return f;
}

const HfArch& hf_arch(const ConfigFile& f) {
  check(f.j.contains("architectures") && f.j.at("architectures").is_array() && !f.j.at("architectures").empty() &&
            f.j.at("architectures")[0].is_string(),
        "{}: key architectures is missing (expected e.g. [\"LlamaForCausalLM\"])", f.path);
  const auto name = f.j.at("architectures")[0].get<std::string>();
  std::string known;
  for (const auto& a : kHfArchs) {
    if (a.hf_name == name) return a;
    known += (known.empty() ? "" : ", ") + std::string(a.hf_name);
  }
  fail("{}: unknown architecture '{}'; known: {}", f.path, name, known);
}

void check_supported(const ConfigFile& f, const HfArch& a) {
  for (const auto& r : a.supported) {
    if (!f.has(r.key)) continue;
    const json& got = f.j.at(r.key);
    check(got == json::parse(r.value), "{}: key {} = {}, unmask supports only {}", f.path, r.key, got.dump(),
          r.value);
  }
}

// The hyper-parameters of the row's keys; head_dim defaults to d_model / n_heads, which must then divide.
void read_sizes(const ConfigFile& f, const ConfigKeys& k, ModelConfig& c) {
  c.d_model = f.count(k.d_model);
  c.n_layers = f.count(k.n_layers);
  c.n_heads = f.count(k.n_heads);
  c.n_kv_heads = f.has(k.n_kv_heads) ? f.count(k.n_kv_heads) : c.n_heads;
  if (f.has(k.head_dim)) {
    c.head_dim = f.count(k.head_dim);
  } else {
    check(c.d_model % c.n_heads == 0, "{}: {} = {} is not a multiple of {} = {}", f.path, k.d_model, c.d_model,
          k.n_heads, c.n_heads);
    c.head_dim = c.d_model / c.n_heads;
  }
  check(c.n_heads % c.n_kv_heads == 0, "{}: {} = {} is not a multiple of {} = {}", f.path, k.n_heads, c.n_heads,
        k.n_kv_heads, c.n_kv_heads);
  c.ffn = f.has(k.ffn) || k.expert_ffn.empty() ? f.count(k.ffn) : 0;  // 0: read_experts sets it
  c.ctx = f.count(k.ctx);
  c.vocab = f.has(k.vocab_rows) ? f.count(k.vocab_rows) : f.count("vocab_size");
  c.rope_theta = float(f.get_float(k.rope_theta, 10000.0));
  c.norm_eps = float(f.get_float(k.norm_eps, 1e-6));
  c.tied_output = f.get_bool(k.tied, false);
}

// A mixture of experts' counts; every layer must be one (moe_layer_freq all nonzero).
void read_experts(const ConfigFile& f, const ConfigKeys& k, ModelConfig& c) {
  c.n_experts = f.count(k.n_experts);
  c.n_experts_used = f.count(k.n_experts_used);
  c.expert_ffn = f.count(k.expert_ffn);
  c.expert_norm = f.get_bool(k.expert_norm, false);
  if (c.ffn == 0) c.ffn = c.expert_ffn * c.n_experts_used;
  if (f.has("moe_layer_freq")) {
    const json& freq = f.j.at("moe_layer_freq");
    const bool all = freq.is_array() && std::all_of(freq.begin(), freq.end(), [](const json& v) {
      return v.is_number_integer() && v.get<int64_t>() != 0;
    });
    check(all, "{}: key moe_layer_freq = {}, unmask supports only every layer a mixture of experts", f.path,
          freq.dump());
  }
}

const HfArch& arch_of(const ModelConfig& c) {
  for (const auto& a : kHfArchs)
    if (a.arch == c.arch) return a;
  fail("architecture {} has no Hugging Face layout", c.arch);
}

// The HF name of a llama.cpp tensor name of tensor_specs().
std::string hf_name(const TensorNames& n, const std::string& name) {
  if (name == "token_embd.weight") return std::string(n.token_embd);
  if (name == "output_norm.weight") return std::string(n.output_norm);
  if (name == "output.weight") return std::string(n.output);
  int layer = -1, used = 0;
  check(std::sscanf(name.c_str(), "blk.%d.%n", &layer, &used) == 1 && used > 0, "tensor {} has no HF name", name);
  const std::string rest = name.substr(size_t(used));
  const size_t dot = rest.rfind('.');
  const std::string stem = rest.substr(0, dot), suffix = rest.substr(dot);
  for (const auto& st : n.stems) {
    if (stem == st.ours) return fmt::format(fmt::runtime(n.layer), layer) + std::string(st.theirs) + suffix;
  }
  fail("tensor {} has no HF name", name);
}

// Rows of one head, half-split [x_0 .. x_{D/2-1} | x_{D/2} .. x_{D-1}] -> adjacent pairs (x_0, x_{D/2}), (x_1,
// x_{D/2+1}) ...: llama.cpp's permute (rows (2, D/2) -> (D/2, 2) per head). rows = n_head * D rows of row_bytes.
std::vector<uint8_t> permute_rows(const void* src, size_t row_bytes, int n_head, int D) {
  std::vector<uint8_t> out(size_t(n_head) * size_t(D) * row_bytes);
  const auto* in = static_cast<const uint8_t*>(src);
  for (int h = 0; h < n_head; ++h) {
    for (int i = 0; i < D / 2; ++i) {
      for (int half = 0; half < 2; ++half) {
        const size_t from = size_t(h) * D + size_t(half) * (D / 2) + i, to = size_t(h) * D + 2 * size_t(i) + half;
        std::memcpy(out.data() + to * row_bytes, in + from * row_bytes, row_bytes);
      }
    }
  }
  return out;
}

}  // namespace

bool is_hf_folder(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::is_regular_file(fs::path(path) / "config.json", ec);
}

ModelConfig read_hf_config(const std::string& dir) {
  const ConfigFile f = read_config_file(dir);
  const HfArch& a = hf_arch(f);
  check_supported(f, a);
  ModelConfig c;
  c.arch = std::string(a.arch);
  const ArchInfo& info = arch_info(c.arch);
  c.mask = info.mask, c.shift_logits = info.shift_logits;
  c.rope = RopeLayout::kNeox;  // HF keeps q/k in the half-split layout
  read_sizes(f, *a.keys, c);
  c.qkv_bias = info.qkv_bias || f.get_bool(a.keys->qkv_bias, false);
  c.qk_norm = info.qk_norm && f.get_bool(a.keys->qk_norm, true);
  if (info.moe) read_experts(f, *a.keys, c);
  c.mask_token = f.token_id("mask_token_id");
  if (c.mask_token < 0 && a.mask_token >= 0 && a.mask_token < c.vocab) c.mask_token = a.mask_token;
  c.bos_token = f.token_id("bos_token_id");
  c.eos_token = f.token_id("eos_token_id");
  try {
    c.validate();
  } catch (const Error& e) {
    fail("{}: {}", f.path, e.what());
  }
  return c;
}

namespace {

// A 3-D tensor ne = {IC, OC, E} from the E matrices (OC, IC) that `pattern` names ("{}" the expert), copied back to
// back into an owned buffer of t.stacked. They must share one type.
TensorView stack_experts(HfTensors& t, const std::string& pattern, const TensorSpec& spec) {
  const std::vector<int64_t> shape = {spec.ne[1], spec.ne[0]};
  std::vector<uint8_t>& buf = t.stacked.emplace_back();
  TensorView out;
  for (int64_t e = 0; e < spec.ne[2]; ++e) {
    const std::string name = fmt::format(fmt::runtime(pattern), e);
    const TensorView v = safetensors::Checkpoint::view(t.files->tensor(name, shape));
    if (e == 0) out = v;
    check(v.dtype == out.dtype, "tensor {} has type {}, expected {} as the other experts of {}", name,
          dtype_name(v.dtype), dtype_name(out.dtype), spec.name);
    buf.insert(buf.end(), static_cast<const uint8_t*>(v.data), static_cast<const uint8_t*>(v.data) + v.nbytes());
  }
  out.data = buf.data(), out.ndim = 3;
  for (int i = 0; i < 3; ++i) out.ne[i] = spec.ne[size_t(i)];
  return out;
}

}  // namespace

HfTensors hf_tensors(const std::string& dir, ModelConfig& c) {
  const HfArch& a = arch_of(c);
  HfTensors t{std::make_shared<const safetensors::Checkpoint>(dir), {}, {}};
  for (const auto& spec : tensor_specs(c)) {
    const std::string name = hf_name(*a.names, spec.name);
    if (spec.ne.size() == 3) {
      t.views.push_back(stack_experts(t, name, spec));
      continue;
    }
    const std::vector<int64_t> shape(spec.ne.rbegin(), spec.ne.rend());  // the file's order, slowest first
    t.views.push_back(safetensors::Checkpoint::view(t.files->tensor(name, shape)));
  }
  c.wtype = t.views.front().dtype;  // token_embd, the first spec
  return t;
}

Model load_hf(const std::string& dir) {
  ModelConfig c = read_hf_config(dir);
  HfTensors t = hf_tensors(dir, c);
  const std::vector<TensorView> views = t.views;
  auto owner = std::make_shared<const HfTensors>(std::move(t));  // the files and the stacked experts
  try {
    return Model::from_weights(c, ModelWeights::from_views(owner, views, c));
  } catch (const Error& e) {
    fail("{}: {}", dir, e.what());
  }
}

GgufWeights hf_weights_for_gguf(const std::string& dir) {
  ModelConfig c = read_hf_config(dir);
  HfTensors t = hf_tensors(dir, c);
  c.rope = arch_info(c.arch).rope;
  // The permuted copies and the stacked experts, and the files the other views point into.
  struct Owner {
    std::shared_ptr<const safetensors::Checkpoint> files;
    std::vector<std::vector<uint8_t>> copies;
  };
  auto owner = std::make_shared<Owner>(Owner{t.files, std::move(t.stacked)});
  if (c.rope == RopeLayout::kNorm) {
    const auto specs = tensor_specs(c);
    for (size_t i = 0; i < specs.size(); ++i) {
      const std::string& name = specs[i].name;
      const bool q = name.ends_with("attn_q.weight") || name.ends_with("attn_q.bias");
      const bool k = name.ends_with("attn_k.weight") || name.ends_with("attn_k.bias");
      if (!q && !k) continue;
      TensorView& v = t.views[i];
      // A weight (heads·D, C) has rows of C elements; a bias (heads·D) rows of one.
      const size_t row = v.ndim == 2 ? row_bytes(v.dtype, v.ne[0]) : row_bytes(v.dtype, 1);
      v.data = owner->copies.emplace_back(permute_rows(v.data, row, q ? c.n_heads : c.n_kv_heads, c.head_dim)).data();
    }
  }
  try {
    return {c, ModelWeights::from_views(owner, t.views, c)};
  } catch (const Error& e) {
    fail("{}: {}", dir, e.what());
  }
}

Vocab hf_vocab(const std::string& dir, const ModelConfig& c) {
  const std::string path = (fs::path(dir) / "tokenizer.json").string();
  Vocab v = vocab_from_json(path);
  check(v.size() <= c.vocab, "{}: {} tokens, but the model's embedding has only {} rows", path, v.size(), c.vocab);
  for (int32_t i = v.size(); i < c.vocab; ++i) {
    v.tokens.push_back(fmt::format("[PAD{}]", i));
    v.types.push_back(TokenType::kUnused);
    if (!v.lstrip.empty()) v.lstrip.push_back(0), v.rstrip.push_back(0);
  }
  for (auto [role, id] : {std::pair{&v.mask, c.mask_token}, {&v.bos, c.bos_token}, {&v.eos, c.eos_token}})
    if (*role < 0) *role = id;
  validate_vocab(v, path);
  return v;
}

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& dir) {
  return make_tokenizer(hf_vocab(dir, read_hf_config(dir)));
}

}  // namespace unmask
