// unmask init: a randomly initialised model of a named size, or of sizes given as flags.
#include <fmt/format.h>

#include <memory>
#include <optional>
#include <type_traits>
#include <variant>

#include "cli_util.h"
#include "commands.h"
#include "model_file.h"
#include "unmask/base/error.h"
#include "unmask/base/timer.h"
#include "unmask/io/gguf.h"
#include "unmask/model/model.h"

namespace unmask::cli {

namespace {

struct InitOptions {
  std::string preset = "tiny", arch = "llama", out, wtype = "f32", tokenizer;
  int vocab = 0, d_model = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, ffn = 0, ctx = 0, block = 0;
  int joint_block = 0;
  int experts = 0, experts_used = 0, expert_ffn = 0;
  float rope_theta = 0;
  bool qkv_bias = false, tied = false, expert_norm = false, force = false;
  uint64_t seed = 1;
};

// The special ids a model takes from its vocabulary's keys (-1 where the vocabulary has none).
void take_specials(ModelConfig& c, const gguf::Writer& tok) {
  auto id = [&](const char* key) {
    const gguf::Value* v = tok.find(key);
    if (!v) return int32_t(-1);
    return std::visit([](const auto& x) -> int32_t {
      if constexpr (std::is_integral_v<std::decay_t<decltype(x)>>) return int32_t(x);
      return -1;
    }, v->v);
  };
  c.bos_token = id("tokenizer.ggml.bos_token_id"), c.eos_token = id("tokenizer.ggml.eos_token_id");
  c.mask_token = id("tokenizer.ggml.mask_token_id");
}

ModelConfig make_config(const InitOptions& o, const gguf::Writer* tok) {
  ModelConfig c = preset_config(o.preset);
  const ArchInfo& a = arch_info(o.arch);
  c.arch = o.arch, c.mask = a.mask, c.rope = a.rope, c.qkv_bias = a.qkv_bias || o.qkv_bias;
  c.shift_logits = a.shift_logits, c.qk_norm = a.qk_norm;
  auto over = [](int& field, int v) { if (v > 0) field = v; };
  over(c.vocab, o.vocab), over(c.d_model, o.d_model), over(c.n_layers, o.layers), over(c.n_heads, o.heads);
  c.n_kv_heads = o.kv_heads > 0 ? o.kv_heads : (o.heads > 0 ? o.heads : c.n_kv_heads);
  c.head_dim = o.head_dim > 0 ? o.head_dim : c.d_model / c.n_heads;
  over(c.ffn, o.ffn), over(c.ctx, o.ctx);
  if (o.rope_theta > 0) c.rope_theta = o.rope_theta;
  if (o.block > 0) c.mask = MaskKind::kBlockCausal, c.block_size = o.block;
  c.tied_output = o.tied;
  c.n_experts = o.experts, c.n_experts_used = o.experts_used, c.expert_ffn = o.expert_ffn;
  c.expert_norm = o.expert_norm;
  c.wtype = parse_dtype(o.wtype);
  c.draft_block = o.joint_block;
  check(o.joint_block == 0 || c.mask == MaskKind::kCausal, "--joint-block: a joint model is causal; --arch {}{} is "
        "not", o.arch, o.block > 0 ? " with --block-size" : "");
  const bool needs_mask = c.mask != MaskKind::kCausal || c.draft_block > 0;
  if (tok) {
    const int n = int(std::get<gguf::Value::Array>(tok->find("tokenizer.ggml.tokens")->v).size());
    check(o.vocab == 0 || o.vocab == n, "--vocab {}: the tokenizer {} holds {} tokens (a model's vocabulary is its "
          "tokenizer's)", o.vocab, o.tokenizer, n);
    c.vocab = n;
    take_specials(c, *tok);
    check(!needs_mask || c.mask_token >= 0, "--tokenizer {}: no tokenizer.ggml.mask_token_id, and a {} model needs a "
          "[MASK] token", o.tokenizer, o.arch);
    if (!needs_mask) c.mask_token = -1;
  } else if (needs_mask) {
    c.mask_token = c.vocab - 1;  // diffusion needs a [MASK] id
  }
  c.validate();
  return c;
}

void run_init(const InitOptions& o) {
  std::optional<gguf::Writer> tok;
  if (!o.tokenizer.empty()) tok = tokenizer_keys(o.tokenizer);
  ModelConfig c = make_config(o, tok ? &*tok : nullptr);
  check_new_output(o.out, o.force);
  Timer t;
  Model m = Model::random(c, o.seed);
  gguf::Writer out;
  m.add_to(out);
  if (tok)
    for (const auto& [k, v] : tok->metadata()) out.set(k, v);
  mark_vocabulary(out);
  out.write(o.out);
  fmt::print("{}: {}\n{} parameters (seed {}), written in {:.2f} s\n", o.out, c.summary(), c.n_params(), o.seed,
             t.seconds());
}

}  // namespace

void add_init(CLI::App& app) {
  auto* cmd = app.add_subcommand("init", "Write a randomly initialised model");
  auto o = std::make_shared<InitOptions>();
  cmd->add_option("--config", o->preset, "Size: tiny, nano, small (13.8M), medium (~98M)")->capture_default_str();
  cmd->add_option("--arch", o->arch, "llama (causal), qwen2 (causal, NEOX rope, qkv bias), llada (bidirectional), "
                                     "dream (bidirectional, NEOX rope, qkv bias), llada-moe (bidirectional, NEOX "
                                     "rope, q/k norms, experts: give --experts)")->capture_default_str();
  add_out_option(cmd, o->out, o->force, "Output GGUF file");
  cmd->add_option("--type", o->wtype, "Weight type: f32 or bf16")->capture_default_str();
  cmd->add_option("--vocab", o->vocab, "Vocabulary size")->check(positive());
  cmd->add_option("--tokenizer", o->tokenizer, "Give the model this vocabulary (its size, special ids and tokenizer "
                  "keys): byte, a tokenizer.json, or a GGUF file with one (say a `data prepare` DIR/tokenizer.gguf, "
                  "so that `train --init` can start from the model)");
  cmd->add_option("--d-model", o->d_model, "Model width")->check(positive());
  cmd->add_option("--layers", o->layers, "Number of layers")->check(positive());
  cmd->add_option("--heads", o->heads, "Attention heads")->check(positive());
  cmd->add_option("--kv-heads", o->kv_heads, "Key/value heads (grouped-query attention)")->check(positive());
  cmd->add_option("--head-dim", o->head_dim, "Head dimension (default d_model / heads)")->check(positive());
  cmd->add_option("--ffn", o->ffn, "Feed-forward width")->check(positive());
  cmd->add_option("-c,--ctx-size,--ctx", o->ctx, "Context length")->check(positive());
  cmd->add_option("--rope-theta", o->rope_theta, "RoPE base")->check(positive());
  cmd->add_option("--block-size", o->block, "Block-causal attention with this block size")->check(positive());
  cmd->add_option("--joint-block", o->joint_block, "A causal model marked as joint (what train --objective joint "
                  "writes): it drafts blocks of this size for --sampler spec and bd3 (to time the passes of a size "
                  "not trained)")->check(positive());
  cmd->add_flag("--qkv-bias", o->qkv_bias, "Add q/k/v biases");
  cmd->add_flag("--tied", o->tied, "Tie the output projection to the embedding");
  cmd->add_option("--experts", o->experts, "Experts per layer (llada-moe)")->check(positive());
  cmd->add_option("--experts-used", o->experts_used, "Experts each token is routed to")->check(positive());
  cmd->add_option("--expert-ffn", o->expert_ffn, "Feed-forward width of one expert")->check(positive());
  cmd->add_flag("--expert-norm", o->expert_norm, "Renormalise the chosen experts' weights to sum to 1");
  add_seed_option(cmd, o->seed, "Seed of the random weights");
  cmd->callback([o] { run_init(*o); });
}

}  // namespace unmask::cli
