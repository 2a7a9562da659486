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
A negative control checks that the comparison can fail: the reference with the other RoPE layout must differ by
more than the bound.
Run: /usr/bin/python3 tests/reference/test_parity.py --unmask build/release/unmask
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
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
]


def check_case(unmask, tmp, i, name, flags, T):
    model, out = os.path.join(tmp, f"m{i}.gguf"), os.path.join(tmp, f"l{i}.f32")
    run([unmask, "init", "--config", "tiny", "--seed", str(100 + i), "--out", model] + flags.split())
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
    ffn = ref.w["blk.0.ffn_up.weight"].shape[0]
    K = max(d, ffn, T, ref.n_heads * ref.head_dim)
    stages = 2 * ref.n_layers + 1
    per_stage = K * 2.0 ** -24 + (2.0 ** -8 / np.sqrt(K) if bf16 else 0.0)
    bound = (stages * per_stage + (ref.n_layers * 2.0 ** -8 if bf16 else 0.0)) * np.abs(want).max()
    err = np.abs(got - want).max()
    ok = err <= bound and np.isfinite(got).all()
    print(f"{'ok  ' if ok else 'FAIL'} {name:36s} T={T:3d} max|diff| {err:.3e}  bound {bound:.3e}  "
          f"max|logit| {np.abs(want).max():.3f}")
    if i == 0:  # negative control: a reference with the wrong RoPE layout must be caught
        ref.neox = not ref.neox
        with torch.no_grad():
            wrong = np.abs(got - ref.forward(tokens, act_bf16=bf16).numpy()).max()
        caught = wrong > bound
        print(f"{'ok  ' if caught else 'FAIL'} negative control (other RoPE layout): max|diff| {wrong:.3e} "
              f"{'>' if caught else '<='} bound")
        ok = ok and caught
    return ok


if __name__ == "__main__":
    main(lambda unmask, tmp: [check_case(unmask, tmp, i, *c) for i, c in enumerate(CASES)])
