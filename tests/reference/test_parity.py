"""Parity: unmask's logits against the independent PyTorch reference (llama_ref.py) on small random models.

For each configuration: `unmask init` writes a random model, `unmask forward` computes the logits of a sequence, the
reference computes them in float64 from the same GGUF, and the largest difference must stay within a bound derived
from the arithmetic:

  f32 weights:  (2L + 1) · K · eps32 · max|logit|, K the longest reduction (d, ffn or T), eps32 = 2^-24: each of the
                2L + 1 matmul stages may add a worst-case dot-product rounding error of K · eps relative to the sum
                of |terms|, bounded by the logits' scale.
  bf16 weights: the reference rounds every matmul input to bf16 as unmask does, so the same bound applies, plus
                the inputs whose f32 values differ by their rounding error across a bf16 rounding boundary: each such
                input moves by one bf16 step (2^-8 relative), about one term of typical size |sum| / sqrt(K) per
                dot product: (2L + 1) · (K · eps32 + 2^-8 / sqrt(K)) · max|logit|; and the attention's
                probabilities, rounded to bf16 for P·V (which the float64 reference cannot mimic: it has no
                online softmax): one bf16 step (2^-8) of each layer's attention output, carried to the logits at
                their scale: + L · 2^-8 · max|logit|.
  experts:      one more stage per layer for the router (its logits pick the experts and weigh their outputs), K
                including the expert width: (3L + 1) stages.
A negative control checks that the comparison can fail: the reference with the other RoPE layout must differ by
more than the bound; for the first mixture-of-experts case, so must the reference with the other choice of weight
renormalisation. A mixture of experts compares only where every row's choice of experts is far from a tie: the
smallest router logit gap between a chosen expert and the best one left out is printed, and where it is not above
the error the router's logits may carry the case fails as inconclusive. The router reads a hidden state that may
differ from the reference's by the logits' relative bound (bound / max|logit|), so its logits by that much of their
largest magnitude; and never less than float32 rounding (1e-6).
Run: /usr/bin/python3 tests/reference/test_parity.py --unmask build/release/unmask
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_reader import read_gguf, rewrite_f32  # noqa: E402
from harness import main, run  # noqa: E402
from llama_ref import Reference  # noqa: E402

CASES = [
    # name, init flags, sequence length
    ("llama causal GQA f32", "--arch llama --vocab 300 --d-model 80 --heads 4 --kv-heads 2 --ffn 150 --layers 2", 37),
    ("qwen2 causal NEOX bias GQA f32", "--arch qwen2 --vocab 257 --d-model 96 --heads 6 --kv-heads 2 --ffn 200", 29),
    ("llada bidirectional f32", "--arch llada --vocab 300 --d-model 64 --heads 4 --ffn 176 --layers 3", 41),
    ("dream bidirectional NEOX bias f32", "--arch dream --vocab 301 --d-model 72 --heads 6 --kv-heads 3 --ffn 130", 23),
    ("llada block-causal B=8 GQA f32", "--arch llada --block-size 8 --vocab 300 --d-model 64 --heads 4 --kv-heads 1",
     37),
    ("llama causal tied bf16", "--arch llama --type bf16 --tied --vocab 300 --d-model 80 --heads 4 --ffn 150", 33),
    ("llada bidirectional GQA bf16", "--arch llada --type bf16 --vocab 300 --d-model 64 --heads 8 --kv-heads 2", 40),
    ("qwen2 head_dim != d/heads f32", "--arch qwen2 --vocab 200 --d-model 64 --heads 4 --head-dim 24 --ffn 96", 19),
    ("llada-moe bidirectional experts 8 top-2 f32",
     "--arch llada-moe --experts 8 --experts-used 2 --expert-ffn 48 --vocab 300 --d-model 64 --heads 4", 33),
    ("llada-moe expert_norm experts 6 top-3 f32",
     "--arch llada-moe --expert-norm --experts 6 --experts-used 3 --expert-ffn 40 --vocab 280 --d-model 64 --layers 3",
     29),
    ("llada-moe GQA experts 4 top-2 f32",
     "--arch llada-moe --experts 4 --experts-used 2 --expert-ffn 56 --vocab 260 --d-model 96 --heads 8 --kv-heads 2",
     31),
    # bf16: the router's error allowance is ~1% of its logits, so few experts and rows keep every choice clear of it
    ("llada-moe experts 2 top-1 bf16",
     "--arch llada-moe --type bf16 --experts 2 --experts-used 1 --expert-ffn 48 --vocab 300 --d-model 64", 16),
]
MIN_ROUTER_GAP = 1e-6


def logit_bound(n_layers, K, bf16, moe, scale, eps=2.0 ** -24):
    """The bound above for logits of largest magnitude scale (eps: the arithmetic's unit roundoff)."""
    stages = (3 if moe else 2) * n_layers + 1
    per_stage = K * eps + (2.0 ** -8 / np.sqrt(K) if bf16 else 0.0)
    return (stages * per_stage + (n_layers * 2.0 ** -8 if bf16 else 0.0)) * scale


def router_gap_needed(bound, scale, router_scale):
    """The router logit gap below which a choice of experts could flip on the error the bound allows."""
    return max(MIN_ROUTER_GAP, bound / scale * router_scale)


def vary_qk_norms(path, seed):
    """Random q/k norm weights instead of init's ones, so that a norm ignored, swapped or applied across heads shows."""
    rng = np.random.default_rng(seed)
    for name in read_gguf(path)[1]:
        if name.endswith(("attn_q_norm.weight", "attn_k_norm.weight")):
            rewrite_f32(path, name, lambda w: 1 + 0.5 * rng.standard_normal(w.shape))


def check_case(unmask, tmp, i, name, flags, T):
    model, out = os.path.join(tmp, f"m{i}.gguf"), os.path.join(tmp, f"l{i}.f32")
    run([unmask, "init", "--config", "tiny", "--seed", str(100 + i), "--out", model] + flags.split())
    vary_qk_norms(model, i)
    ref = Reference(model)
    rng = np.random.default_rng(i)
    vocab = ref.w["token_embd.weight"].shape[0]
    tokens = rng.integers(0, vocab, T).tolist()
    run([unmask, "forward", "-m", model, "--tokens", ",".join(map(str, tokens)), "--out", out])
    got = np.fromfile(out, dtype=np.float32).reshape(T, vocab)
    bf16 = "bf16" in flags
    with torch.no_grad():
        want = ref.forward(tokens, act_bf16=bf16).numpy()
    d = ref.w["token_embd.weight"].shape[1]
    moe = "blk.0.ffn_up_exps.weight" in ref.w
    ffn = ref.w["blk.0.ffn_up_exps.weight"].shape[1] if moe else ref.w["blk.0.ffn_up.weight"].shape[0]
    K = max(d, ffn, T, ref.n_heads * ref.head_dim)
    bound = logit_bound(ref.n_layers, K, bf16, moe, np.abs(want).max())
    err = np.abs(got - want).max()
    min_gap = router_gap_needed(bound, np.abs(want).max(), ref.router_scale)
    ok = err <= bound and np.isfinite(got).all() and (not moe or ref.router_margin > min_gap)
    print(f"{'ok  ' if ok else 'FAIL'} {name:36s} T={T:3d} max|diff| {err:.3e}  bound {bound:.3e}  "
          f"max|logit| {np.abs(want).max():.3f}"
          + (f"  min router gap {ref.router_margin:.2e} (needs > {min_gap:.2e})" if moe else ""))
    if moe and name == next(c[0] for c in CASES if "--experts" in c[1]):
        ok = negative_control(ref, tokens, got, bound, bf16, "other expert weight renormalisation", "expert_norm") and ok
    if i == 0:  # negative control: a reference with the wrong RoPE layout must be caught
        ok = negative_control(ref, tokens, got, bound, bf16, "other RoPE layout", "neox") and ok
    return ok


def negative_control(ref, tokens, got, bound, bf16, what, flag):
    """The reference with the boolean attribute flag flipped must differ from unmask's logits by more than bound."""
    setattr(ref, flag, not getattr(ref, flag))
    with torch.no_grad():
        wrong = np.abs(got - ref.forward(tokens, act_bf16=bf16).numpy()).max()
    setattr(ref, flag, not getattr(ref, flag))
    caught = wrong > bound
    print(f"{'ok  ' if caught else 'FAIL'} negative control ({what}): max|diff| {wrong:.3e} {'>' if caught else '<='} "
          "bound")
    return caught


if __name__ == "__main__":
    main(lambda unmask, tmp: [check_case(unmask, tmp, i, *c) for i, c in enumerate(CASES)])
