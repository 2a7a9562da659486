"""Hugging Face LLaDA-MoE folders (LLaDAMoEModelLM): unmask opens them directly and converts them to GGUF, and both
give the logits of an independent PyTorch reference in the HF layout.

The folders are built here as test_hf.py builds the others (its safetensors and tokenizer writers), with
LLaDA-MoE's config.json keys (num_experts, num_experts_per_tok, expert_intermediate_size, norm_topk_prob,
qk_layernorm, moe_layer_freq) and tensor names: self_attn.q_norm / k_norm (per-head RMSNorm weights), mlp.gate (the
router) and one Linear per expert, mlp.experts.E.{gate,up,down}_proj, which unmask stacks into llama.cpp's 3-D
ffn_{gate,up,down}_exps. The reference (LLaDAMoEReference below, on hf_ref.py) follows the modeling code: q/k normed
per head before RoPE (half-split), softmax over the router's logits, each token's num_experts_per_tok most probable
experts (equal probabilities: the lower index), their outputs weighted by those probabilities, renormalised when
norm_topk_prob — token by token and expert by expert, unlike llama_ref.py's grouped form.
For each folder:
  (a) `unmask forward -m DIR` against the reference,
  (b) `unmask convert DIR --type f32`, then `unmask forward` on the GGUF against the reference,
  (c) the converted GGUF read by llama_ref.py against the HF reference, both in float64: names, keys and the
      stacking order of the experts, checked without unmask's forward,
  (d) a negative control: the reference with its experts in reverse order (what a wrong stacking computes) must
      differ from unmask's logits on the folder by more than the bound,
  (e) a folder with a dense layer (moe_layer_freq 0 somewhere), which unmask does not implement, is refused with a
      message naming the key.
The bound and the router gap rule are test_parity.py's (logit_bound, router_gap_needed): the smallest router logit
gap between a chosen expert and the best one left out is printed and must clear what the bound allows.
Run: /usr/bin/python3 tests/reference/test_hf_moe.py --unmask build/release/unmask
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import main, run  # noqa: E402
from hf_ref import HfReference  # noqa: E402
from llama_ref import Reference  # noqa: E402
from test_hf import report, unmask_logits, write_safetensors, write_tokenizer  # noqa: E402
from test_parity import logit_bound, router_gap_needed  # noqa: E402

# name, sizes, options
CASES = [
    ("llada-moe f32 experts 8 top-2 sharded", dict(d=64, layers=2, heads=4, kv=4, experts=8, used=2, fe=40, vocab=270),
     dict(dtype="F32", shards=2, norm_topk=False)),
    ("llada-moe f32 GQA experts 6 top-3 norm_topk_prob",
     dict(d=48, layers=3, heads=6, kv=2, experts=6, used=3, fe=32, vocab=270), dict(dtype="F32", shards=1,
                                                                                    norm_topk=True)),
    # bf16: the router's error allowance is ~1% of its logits, so few experts keep every choice clear of it
    ("llada-moe bf16 experts 2 top-1", dict(d=64, layers=2, heads=4, kv=4, experts=2, used=1, fe=48, vocab=270),
     dict(dtype="BF16", shards=1, norm_topk=False)),
]
SEQ_LEN = 23


class LLaDAMoEReference(HfReference):
    """LLaDAMoEModelLM in plain tensor ops, from its HF tensors (see the module docstring)."""

    def __init__(self, folder):
        super().__init__(folder)
        with open(os.path.join(folder, "config.json")) as f:
            cfg = json.load(f)
        self.n_experts, self.top_k = cfg["num_experts"], cfg["num_experts_per_tok"]
        self.norm_topk = cfg.get("norm_topk_prob", False)
        self.expert_order = list(range(self.n_experts))  # which stored expert serves as expert e (the control)
        self.router_margin, self.router_scale = float("inf"), 0.0

    def names(self, l):
        b = f"model.layers.{l}."
        return super().names(l) | dict(q_norm=b + "self_attn.q_norm", k_norm=b + "self_attn.k_norm",
                                       router=b + "mlp.gate", experts=b + "mlp.experts.")

    def head_norm(self, x, n, which):  # x (T, H, D): RMSNorm over each head
        return self.rmsnorm(x, n[which + "_norm"])

    def ffn(self, h, n, act_bf16):
        logits = F.linear(h, self.w[n["router"] + ".weight"])  # (T, E)
        top = torch.sort(logits, dim=-1, descending=True, stable=True)
        self.router_scale = max(self.router_scale, float(logits.abs().max()))
        if self.top_k < self.n_experts:
            gap = top.values[:, self.top_k - 1] - top.values[:, self.top_k]
            self.router_margin = min(self.router_margin, float(gap.min()))
        probs = logits.softmax(-1)
        out = torch.zeros_like(h)
        for t in range(h.shape[0]):
            chosen = top.indices[t, :self.top_k].tolist()
            weights = probs[t, chosen]
            if self.norm_topk:
                weights = weights / weights.sum()
            for e, w in zip(chosen, weights):
                out[t] += w * self.expert(h[t:t + 1], n["experts"] + f"{self.expert_order[e]}.", act_bf16)[0]
        return out

    def expert(self, x, prefix, act_bf16):
        g = F.silu(self.linear(x, prefix + "gate_proj", act_bf16)) * self.linear(x, prefix + "up_proj", act_bf16)
        return self.linear(g, prefix + "down_proj", act_bf16)


# ---- writing a folder -------------------------------------------------------------------------------------------

def moe_tensors(s, rng):
    """Random weights under LLaDA-MoE's names: matrices (out, in) ~ N(0, 1/in), norms ~ 1 + N(0, 0.1²)."""
    d, hd, E = s["d"], s["d"] // s["heads"], s["experts"]
    q, kv = s["heads"] * hd, s["kv"] * hd
    mat = lambda o, i: rng.normal(0, i ** -0.5, (o, i))  # noqa: E731
    norm = lambda n: 1 + rng.normal(0, 0.1, n)  # noqa: E731
    t = {"model.embed_tokens.weight": rng.normal(0, 1, (s["vocab"], d))}
    for l in range(s["layers"]):
        b = f"model.layers.{l}."
        t |= {b + "input_layernorm.weight": norm(d), b + "self_attn.q_proj.weight": mat(q, d),
              b + "self_attn.k_proj.weight": mat(kv, d), b + "self_attn.v_proj.weight": mat(kv, d),
              b + "self_attn.q_norm.weight": norm(hd), b + "self_attn.k_norm.weight": norm(hd),
              b + "self_attn.o_proj.weight": mat(d, q), b + "post_attention_layernorm.weight": norm(d),
              b + "mlp.gate.weight": mat(E, d)}
        for e in range(E):
            x = f"{b}mlp.experts.{e}."
            t |= {x + "gate_proj.weight": mat(s["fe"], d), x + "up_proj.weight": mat(s["fe"], d),
                  x + "down_proj.weight": mat(d, s["fe"])}
    t["model.norm.weight"] = norm(d)
    t["lm_head.weight"] = mat(s["vocab"], d)
    return t


def moe_config(s, norm_topk):
    """config.json with LLaDA-MoE-7B-A1B's keys."""
    return {"architectures": ["LLaDAMoEModelLM"], "model_type": "lladamoe", "hidden_size": s["d"],
            "num_hidden_layers": s["layers"], "num_attention_heads": s["heads"], "num_key_value_heads": s["kv"],
            "dense_intermediate_size": 4 * s["d"], "expert_intermediate_size": s["fe"],
            "num_experts": s["experts"], "num_experts_per_tok": s["used"], "norm_topk_prob": norm_topk,
            "moe_layer_freq": [1] * s["layers"], "qk_layernorm": True, "vocab_size": s["vocab"],
            "max_position_embeddings": 8192, "rope_theta": 50000, "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
            "hidden_act": "silu", "attention_bias": False, "rope_scaling": None, "partial_rotary_factor": 1,
            "num_shared_expert": None, "pad_token_id": 261, "eos_token_id": 261, "torch_dtype": "bfloat16"}


def write_folder(folder, s, opts, seed):
    os.makedirs(folder)
    tensors = moe_tensors(s, np.random.default_rng(seed))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(moe_config(s, opts["norm_topk"]), f)
    write_tokenizer(folder, "gpt-2")
    n = opts["shards"]
    if n == 1:
        write_safetensors(os.path.join(folder, "model.safetensors"), tensors, opts["dtype"])
        return
    names, weight_map = list(tensors), {}  # round robin: one layer's experts spread over the shards
    for i in range(n):
        shard = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        write_safetensors(os.path.join(folder, shard), {k: tensors[k] for k in names[i::n]}, opts["dtype"])
        weight_map |= {k: shard for k in names[i::n]}
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)


# ---- checks -----------------------------------------------------------------------------------------------------

def reference_logits(ref, tokens, bf16):
    with torch.no_grad():
        return ref.forward(tokens, act_bf16=bf16).numpy()


def check_case(unmask, tmp, i, name, s, opts):
    folder, gguf = os.path.join(tmp, f"moe{i}"), os.path.join(tmp, f"moe{i}.gguf")
    write_folder(folder, s, opts, seed=30 + i)
    ref = LLaDAMoEReference(folder)
    tokens = np.random.default_rng(i).integers(0, s["vocab"], SEQ_LEN).tolist()
    bf16 = opts["dtype"] == "BF16"
    K = max(s["d"], s["fe"], SEQ_LEN)
    results = []

    got = unmask_logits(unmask, folder, tokens, os.path.join(tmp, f"a{i}.f32"), s["vocab"])
    want = reference_logits(ref, tokens, bf16)
    scale = np.abs(want).max()
    bound = logit_bound(s["layers"], K, bf16, True, scale)
    gap, needed = ref.router_margin, router_gap_needed(bound, scale, ref.router_scale)
    err = np.abs(got - want).max()
    results.append(report(err <= bound and np.isfinite(got).all(), f"{name}: folder", err, bound))
    print(f"{'ok  ' if gap > needed else 'FAIL'} {name}: min router gap {gap:.2e} (needs > {needed:.2e})")
    results.append(gap > needed)

    run([unmask, "convert", folder, "--out", gguf, "--type", "f32"])
    got32 = unmask_logits(unmask, gguf, tokens, os.path.join(tmp, f"b{i}.f32"), s["vocab"])
    want32 = reference_logits(ref, tokens, False)  # f32 tensors now: no bf16 rounding of activations
    bound32 = logit_bound(s["layers"], K, False, True, np.abs(want32).max())
    err = np.abs(got32 - want32).max()
    results.append(report(err <= bound32 and np.isfinite(got32).all(), f"{name}: converted f32 GGUF", err, bound32))

    with torch.no_grad():
        gguf_ref = Reference(gguf).forward(tokens).numpy()
    ref.eps, ref.theta = float(np.float32(ref.eps)), float(np.float32(ref.theta))  # GGUF holds them as float32
    want64 = reference_logits(ref, tokens, False)
    bound64 = logit_bound(s["layers"], K, False, True, np.abs(want64).max(), eps=2.0 ** -53)
    err = np.abs(gguf_ref - want64).max()
    results.append(report(err <= bound64, f"{name}: GGUF reference vs HF reference (float64)", err, bound64))

    if i == 0:  # the experts in reverse order: what a stacking in the wrong order computes
        ref.expert_order.reverse()
        err = np.abs(got - reference_logits(ref, tokens, bf16)).max()
        caught = err > bound
        print(f"{'ok  ' if caught else 'FAIL'} negative control (experts in reverse order): max|diff| {err:.3e} "
              f"{'>' if caught else '<='} bound {bound:.3e}")
        results.append(caught)
        results.append(dense_layer_refused(unmask, folder, tokens, os.path.join(tmp, f"d{i}.f32")))
    return results


def dense_layer_refused(unmask, folder, tokens, out):
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["moe_layer_freq"][0] = 0
    with open(path, "w") as f:
        json.dump(cfg, f)
    try:
        unmask_logits(unmask, folder, tokens, out, cfg["vocab_size"])
        msg = "no error"
    except RuntimeError as e:
        msg = str(e)
    ok = "moe_layer_freq" in msg and "every layer a mixture of experts" in msg
    print(f"{'ok  ' if ok else 'FAIL'} a dense layer is refused: {msg.splitlines()[-1][-110:]}")
    return ok


if __name__ == "__main__":
    main(lambda unmask, tmp: [r for i, c in enumerate(CASES) for r in check_case(unmask, tmp, i, *c)])
