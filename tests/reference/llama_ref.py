"""An independent PyTorch reference of unmask's transformer, in plain tensor ops (float64 by default).

It loads a GGUF written with llama.cpp's names and keys and computes logits for one sequence with the mask kind the
file declares (causal, bidirectional, or block-causal through unmask.block_size), grouped-query attention, optional
q/k/v biases, and RoPE in the layout of the architecture: adjacent pairs for llama/llada, half-split for
qwen2/dream/llada-moe. LLaDA-MoE adds an RMSNorm of each head of q and k before RoPE (attn_q_norm, attn_k_norm) and a
mixture of SwiGLU experts in place of the FFN: softmax over the router's logits, each row's expert_used_count most
probable experts (equal probabilities: the lower index), their outputs summed weighted by those probabilities
(divided by their sum when {arch}.expert_weights_norm). The smallest router logit gap between a chosen expert and the
best one left out is kept in router_margin (the largest |router logit| in router_scale), so that a test can tell a
tie from a mismatch.
With act_bf16=True every matmul input, and q, k, v of attention, are rounded to bfloat16 first, as unmask does for
bf16 weights.
"""
import torch
import torch.nn.functional as F

from gguf_reader import read_gguf

NEOX_ARCHS = {"qwen2", "dream", "llada-moe"}
BIDIRECTIONAL_ARCHS = {"llada", "dream", "llada-moe"}


class TensorOps:
    """The matmul and RMSNorm both references use: weights by name in self.w, epsilon self.eps."""

    def linear(self, x, name, act_bf16):
        if act_bf16:
            x = x.to(torch.bfloat16).to(x.dtype)
        return F.linear(x, self.w[name + ".weight"], self.w.get(name + ".bias"))

    def rmsnorm(self, x, name):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.w[name + ".weight"]


class Reference(TensorOps):
    def __init__(self, path, dtype=torch.float64):
        meta, tensors = read_gguf(path)
        self.meta, self.dtype = meta, dtype
        self.arch = arch = meta["general.architecture"]
        self.n_layers = meta[f"{arch}.block_count"]
        self.n_heads = meta[f"{arch}.attention.head_count"]
        self.n_kv = meta.get(f"{arch}.attention.head_count_kv", self.n_heads)
        d = meta[f"{arch}.embedding_length"]
        self.head_dim = meta.get(f"{arch}.attention.key_length", d // self.n_heads)
        self.eps = meta.get(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)
        self.theta = meta.get(f"{arch}.rope.freq_base", 10000.0)
        self.neox = arch in NEOX_ARCHS
        self.causal = meta.get(f"{arch}.attention.causal", arch not in BIDIRECTIONAL_ARCHS)
        self.block = meta.get("unmask.block_size", 0)
        self.n_used = meta.get(f"{arch}.expert_used_count", 0)
        self.expert_norm = meta.get(f"{arch}.expert_weights_norm", False)
        self.router_margin, self.router_scale = float("inf"), 0.0
        self.w = {k: torch.from_numpy(v.copy()).to(dtype) for k, v in tensors.items()}

    def mask(self, T, start=0):  # queries at positions start .. start+T-1, keys at 0 .. start+T-1
        i = torch.arange(start, start + T)[:, None]
        j = torch.arange(start + T)[None, :]
        if self.block > 0:
            return j < (i // self.block + 1) * self.block
        if self.causal:
            return j <= i
        return torch.ones(T, start + T, dtype=torch.bool)

    def rope(self, x, pos):  # x (T, H, D)
        D = x.shape[-1]
        inv = self.theta ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
        ang = pos[:, None].to(torch.float64) * inv[None, :]
        cos, sin = ang.cos()[:, None, :].to(x.dtype), ang.sin()[:, None, :].to(x.dtype)
        if self.neox:
            x1, x2 = x[..., : D // 2], x[..., D // 2:]
            return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)

    def qk_norm(self, x, name):  # x (T, H, D): each head normed on its own, when the model has the weights
        return self.rmsnorm(x, name) if name + ".weight" in self.w else x

    def swiglu(self, h, p, act_bf16):
        return F.silu(self.linear(h, p + "ffn_gate", act_bf16)) * self.linear(h, p + "ffn_up", act_bf16)

    def ffn(self, h, p, act_bf16):
        if p + "ffn_gate_inp.weight" not in self.w:
            return self.linear(self.swiglu(h, p, act_bf16), p + "ffn_down", act_bf16)
        logits = F.linear(h, self.w[p + "ffn_gate_inp.weight"])  # (T, E), the router in full precision
        E, K = logits.shape[1], self.n_used
        order = torch.sort(logits, dim=-1, descending=True, stable=True)
        self.router_scale = max(self.router_scale, float(logits.abs().max()))
        if K < E:
            self.router_margin = min(self.router_margin, float((order.values[:, K - 1] - order.values[:, K]).min()))
        sel = order.indices[:, :K]  # (T, K)
        weight = logits.softmax(-1).gather(1, sel)
        if self.expert_norm:
            weight = weight / weight.sum(-1, keepdim=True)
        out = torch.zeros_like(h)
        for e in range(E):
            picked = sel == e  # (T, K)
            rows = picked.any(-1)
            if rows.any():
                w_e = (weight * picked).sum(-1)[rows, None]
                out[rows] += w_e * self.expert(h[rows], p, e, act_bf16)
        return out

    def expert(self, x, p, e, act_bf16):  # expert e of the 3-D tensors ffn_{gate,up,down}_exps (E, rows, cols)
        def lin(x, name):
            if act_bf16:
                x = x.to(torch.bfloat16).to(x.dtype)
            return F.linear(x, self.w[p + name + ".weight"][e])
        return lin(F.silu(lin(x, "ffn_gate_exps")) * lin(x, "ffn_up_exps"), "ffn_down_exps")

    def attention(self, h, pos, mask, p, act_bf16, cache, window=False):
        T = h.shape[0]
        q = self.linear(h, p + "attn_q", act_bf16).view(T, self.n_heads, self.head_dim)
        k = self.linear(h, p + "attn_k", act_bf16).view(T, self.n_kv, self.head_dim)
        v = self.linear(h, p + "attn_v", act_bf16).view(T, self.n_kv, self.head_dim)
        q, k = self.qk_norm(q, p + "attn_q_norm"), self.qk_norm(k, p + "attn_k_norm")
        q, k = self.rope(q, pos), self.rope(k, pos)
        if act_bf16:  # unmask's bf16 attention takes q, k, v rounded to bf16
            q, k, v = (t.to(torch.bfloat16).to(t.dtype) for t in (q, k, v))
        if cache is not None and window:  # the span's rows replace theirs among the cached K/V of every position
            start, (kc, vc) = int(pos[0]), cache[p]
            k, v = (torch.cat((c[:start], t, c[start + T:])) for c, t in ((kc, k), (vc, v)))
            cache[p] = (k, v)
        elif cache is not None:  # keys and values of earlier positions, extended by this span's
            if p in cache:
                k, v = torch.cat((cache[p][0], k)), torch.cat((cache[p][1], v))
            cache[p] = (k, v)
        group = self.n_heads // self.n_kv
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        scores = torch.einsum("thd,shd->hts", q, k) / self.head_dim ** 0.5  # (H, T, S)
        scores = scores.masked_fill(~mask[None], float("-inf"))
        out = torch.einsum("hts,shd->thd", scores.softmax(-1), v).reshape(T, -1)
        return self.linear(out, p + "attn_output", act_bf16)

    def forward(self, tokens, act_bf16=False, cache=None, start=0, window=False, mask=None, pos=None):
        """Logits (T, V) of tokens at positions start ...; cache: a dict that keeps each layer's K/V across calls.
        window (bidirectional models): the cache holds K/V of the whole sequence; this span's replace theirs and its
        queries see every position (Fast-dLLM's dual cache). mask (T, T) and pos (T): an attention pattern and
        positions of one's own instead of the model's (a training objective's layout)."""
        tokens = torch.as_tensor(tokens)
        T = tokens.shape[0]
        if mask is None:
            pos, mask = torch.arange(start, start + T), self.mask(T, start)
        else:
            pos = torch.as_tensor(pos)
        if window:
            assert not self.causal and self.block == 0, "a window over the cache needs a bidirectional model"
            mask = torch.ones(T, cache["blk.0."][0].shape[0], dtype=torch.bool)
        x = self.w["token_embd.weight"][tokens]
        for l in range(self.n_layers):
            p = f"blk.{l}."
            x = x + self.attention(self.rmsnorm(x, p + "attn_norm"), pos, mask, p, act_bf16, cache, window)
            x = x + self.ffn(self.rmsnorm(x, p + "ffn_norm"), p, act_bf16)
        x = self.rmsnorm(x, "output_norm")
        out = "output" if "output.weight" in self.w else "token_embd"
        return self.linear(x, out, act_bf16)
