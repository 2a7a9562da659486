"""Gradients: unmask's backward pass against PyTorch autograd through the independent reference (llama_ref.py).

For each configuration `unmask grad` writes the mean cross-entropy over the rows with a target and the gradient of
every parameter; the reference computes the same loss in float64 and differentiates it with autograd. Each tensor's
gradient must agree within (4L + 3) · K · eps32 · max|g| of that tensor: the forward's 2L + 1 matmul stages and the
backward's two products per stage each add at most K · eps relative rounding (K the longest reduction), bounded by
the gradient's own scale. A negative control checks that a reference with the other RoPE layout is caught.
Run: /usr/bin/python3 tests/reference/test_gradients.py --unmask build/release/unmask
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import main, run  # noqa: E402
from llama_ref import Reference  # noqa: E402

CASES = [
    ("llama causal GQA", "--arch llama --vocab 97 --d-model 48 --heads 4 --kv-heads 2 --ffn 80 --layers 2", 19),
    ("qwen2 causal NEOX bias", "--arch qwen2 --vocab 61 --d-model 32 --heads 4 --kv-heads 1 --ffn 48 --layers 2", 13),
    ("llada bidirectional tied", "--arch llada --tied --vocab 83 --d-model 32 --heads 2 --ffn 64 --layers 2", 17),
    ("dream bidirectional NEOX bias", "--arch dream --vocab 50 --d-model 48 --heads 6 --kv-heads 3 --ffn 40", 11),
    ("llada block-causal B=4", "--arch llada --block-size 4 --vocab 70 --d-model 32 --heads 4 --ffn 64", 14),
]


def reference_grads(ref, tokens, targets):
    for w in ref.w.values():
        w.requires_grad_(True)
        w.grad = None
    logits = ref.forward(tokens)
    t = torch.as_tensor(targets)
    loss = F.cross_entropy(logits[t >= 0], t[t >= 0])
    loss.backward()
    return float(loss), {k: w.grad.numpy() for k, w in ref.w.items()}


def compare(ours, want, stages, K):
    worst_ratio, worst_name = 0.0, ""
    for name, g in want.items():
        bound = stages * K * 2.0 ** -24 * max(np.abs(g).max(), 1e-30)
        ratio = np.abs(ours[name] - g).max() / bound
        if ratio > worst_ratio:
            worst_ratio, worst_name = ratio, name
    return worst_ratio, worst_name


def check_case(unmask, tmp, i, name, flags, T):
    model, out = os.path.join(tmp, f"m{i}.gguf"), os.path.join(tmp, f"g{i}.f32")
    run([unmask, "init", "--config", "tiny", "--seed", str(200 + i), "--out", model] + flags.split())
    ref = Reference(model)
    vocab = ref.w["token_embd.weight"].shape[0]
    rng = np.random.default_rng(i)
    tokens = rng.integers(0, vocab, T).tolist()
    targets = [int(x) if rng.random() < 0.7 else -1 for x in rng.integers(0, vocab, T)]
    targets[0] = int(rng.integers(0, vocab))
    run([unmask, "grad", "-m", model, "--tokens", ",".join(map(str, tokens)), "--targets",
         ",".join(map(str, targets)), "--out", out])
    raw = np.fromfile(out, dtype=np.float32)
    ours, at = {}, 1
    for k, w in ref.w.items():
        ours[k] = raw[at:at + w.numel()].reshape(w.shape)
        at += w.numel()
    loss, want = reference_grads(ref, tokens, targets)
    K = max(ref.w["token_embd.weight"].shape[1], ref.w["blk.0.ffn_up.weight"].shape[0], T, vocab)
    stages = 4 * ref.n_layers + 3
    ratio, worst = compare(ours, want, stages, K)
    ok = at == raw.size and abs(raw[0] - loss) <= K * 2.0 ** -24 * abs(loss) * stages and ratio <= 1
    print(f"{'ok  ' if ok else 'FAIL'} {name:32s} loss {raw[0]:.6f} vs {loss:.6f}; worst tensor {worst}: "
          f"max|diff| at {ratio:.3f} of its bound")
    if i == 0:
        ref.neox = not ref.neox
        _, wrong = reference_grads(ref, tokens, targets)
        caught, _ = compare(ours, wrong, stages, K)
        print(f"{'ok  ' if caught > 1 else 'FAIL'} negative control (other RoPE layout): worst at {caught:.1f} of bound")
        ok = ok and caught > 1
    return ok


if __name__ == "__main__":
    main(lambda unmask, tmp: [check_case(unmask, tmp, i, *c) for i, c in enumerate(CASES)])
