"""An independent PyTorch reference of the Hugging Face models unmask opens (LLaDAModelLM, DreamModel,
LlamaForCausalLM, Qwen2ForCausalLM), written from their modeling code, reading the folder itself.

It reads config.json with each model's own keys and the safetensors files (single or sharded through
model.safetensors.index.json) with a plain numpy reader, and computes the logits of one sequence in float64 with
the HF tensor names and HF's RoPE: rotate_half on the half-split layout, as modeling_llama.py, modeling_qwen2.py,
Dream's and LLaDA's modeling code do. Row i of the logits comes from hidden state i (Dream's shift is the
sampler's business). With act_bf16=True every matmul input and q, k, v of attention are rounded to bfloat16 first,
as unmask does for bf16 weights.
"""
import json
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

from llama_ref import TensorOps

DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}


def read_safetensors(path):
    """{name: float32 array} of one .safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        begin, end = e["data_offsets"]
        a = np.frombuffer(data[begin:end], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
        if e["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[name] = a.astype(np.float32)
    return out


def read_folder_tensors(folder):
    index = os.path.join(folder, "model.safetensors.index.json")
    if not os.path.exists(index):
        return read_safetensors(os.path.join(folder, "model.safetensors"))
    with open(index) as f:
        shards = sorted(set(json.load(f)["weight_map"].values()))
    out = {}
    for s in shards:
        out.update(read_safetensors(os.path.join(folder, s)))
    return out


class HfReference(TensorOps):
    def __init__(self, folder, dtype=torch.float64):
        with open(os.path.join(folder, "config.json")) as f:
            cfg = json.load(f)
        self.arch = cfg["architectures"][0]
        self.w = {k: torch.from_numpy(v).to(dtype) for k, v in read_folder_tensors(folder).items()}
        if self.arch == "LLaDAModelLM":
            self.d, self.n_layers, self.n_heads = cfg["d_model"], cfg["n_layers"], cfg["n_heads"]
            self.n_kv = cfg.get("n_kv_heads") or self.n_heads
            self.head_dim = self.d // self.n_heads
            self.tied = cfg.get("weight_tying", False)
            self.prefix = "model.transformer."
        else:
            self.d, self.n_layers = cfg["hidden_size"], cfg["num_hidden_layers"]
            self.n_heads = cfg["num_attention_heads"]
            self.n_kv = cfg.get("num_key_value_heads") or self.n_heads
            self.head_dim = cfg.get("head_dim") or self.d // self.n_heads
            self.tied = cfg.get("tie_word_embeddings", False)
        self.eps = cfg["rms_norm_eps"]
        self.theta = cfg.get("rope_theta", 10000.0)
        self.causal = self.arch in ("LlamaForCausalLM", "Qwen2ForCausalLM")
        self.half_split = True  # HF's layout; False gives adjacent pairs (the negative control)

    # The HF names of the model-wide tensors and of layer l's.
    def names(self, l):
        if self.arch == "LLaDAModelLM":
            b = f"model.transformer.blocks.{l}."
            return dict(attn_norm=b + "attn_norm", q=b + "q_proj", k=b + "k_proj", v=b + "v_proj",
                        o=b + "attn_out", ffn_norm=b + "ff_norm", gate=b + "ff_proj", up=b + "up_proj",
                        down=b + "ff_out")
        b = f"model.layers.{l}."
        return dict(attn_norm=b + "input_layernorm", q=b + "self_attn.q_proj", k=b + "self_attn.k_proj",
                    v=b + "self_attn.v_proj", o=b + "self_attn.o_proj", ffn_norm=b + "post_attention_layernorm",
                    gate=b + "mlp.gate_proj", up=b + "mlp.up_proj", down=b + "mlp.down_proj")

    def top(self):
        if self.arch == "LLaDAModelLM":
            emb = "model.transformer.wte"
            return emb, "model.transformer.ln_f", emb if self.tied else "model.transformer.ff_out"
        return "model.embed_tokens", "model.norm", "model.embed_tokens" if self.tied else "lm_head"

    def rope(self, x, pos):  # x (T, H, D)
        D = x.shape[-1]
        inv = 1.0 / self.theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D)
        ang = pos[:, None].to(torch.float64) * inv[None, :]
        if self.half_split:  # cos/sin repeated over both halves, rotate_half(x) = [-x2, x1]
            cos = torch.cat((ang.cos(), ang.cos()), -1)[:, None, :].to(x.dtype)
            sin = torch.cat((ang.sin(), ang.sin()), -1)[:, None, :].to(x.dtype)
            rot = torch.cat((-x[..., D // 2:], x[..., : D // 2]), -1)
            return x * cos + rot * sin
        cos, sin = ang.cos()[:, None, :].to(x.dtype), ang.sin()[:, None, :].to(x.dtype)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)

    def attention(self, h, n, act_bf16):
        T = h.shape[0]
        q = self.linear(h, n["q"], act_bf16).view(T, self.n_heads, self.head_dim)
        k = self.linear(h, n["k"], act_bf16).view(T, self.n_kv, self.head_dim)
        v = self.linear(h, n["v"], act_bf16).view(T, self.n_kv, self.head_dim)
        pos = torch.arange(T)
        q, k = self.head_norm(q, n, "q"), self.head_norm(k, n, "k")
        q, k = self.rope(q, pos), self.rope(k, pos)
        if act_bf16:
            q, k, v = (t.to(torch.bfloat16).to(t.dtype) for t in (q, k, v))
        group = self.n_heads // self.n_kv
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        scores = torch.einsum("thd,shd->hts", q, k) / self.head_dim ** 0.5
        if self.causal:
            scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril()[None], float("-inf"))
        out = torch.einsum("hts,shd->thd", scores.softmax(-1), v).reshape(T, -1)
        return self.linear(out, n["o"], act_bf16)

    # Hooks for architectures with more (test_hf_moe.py): a norm of each head of q and k before RoPE, the FFN.
    def head_norm(self, x, n, which):
        return x

    def ffn(self, h, n, act_bf16):
        g = F.silu(self.linear(h, n["gate"], act_bf16)) * self.linear(h, n["up"], act_bf16)
        return self.linear(g, n["down"], act_bf16)

    def forward(self, tokens, act_bf16=False):
        emb, norm, out = self.top()
        x = self.w[emb + ".weight"][torch.as_tensor(tokens)]
        for l in range(self.n_layers):
            n = self.names(l)
            x = x + self.attention(self.rmsnorm(x, n["attn_norm"]), n, act_bf16)
            x = x + self.ffn(self.rmsnorm(x, n["ffn_norm"]), n, act_bf16)
        return self.linear(self.rmsnorm(x, norm), out, act_bf16)
