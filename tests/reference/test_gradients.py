"""Gradients: unmask's backward pass against PyTorch autograd through the independent reference (llama_ref.py).

For each configuration `unmask grad` writes the mean cross-entropy over the rows with a target and the gradient of
every parameter; the reference computes the same loss in float64 and differentiates it with autograd. Each tensor's
gradient must agree within (4L + 3) · K · eps32 · max|g| of that tensor: the forward's 2L + 1 matmul stages and the
backward's two products per stage each add at most K · eps relative rounding (K the longest reduction), bounded by
the gradient's own scale. A negative control checks that a reference with the other RoPE layout is caught.
Run: /usr/bin/python3 tests/reference/test_gradients.py --unmask build/release/unmask
"""
import json
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


def joint_layout(x0, xt, block, mask_id):
    """The joint objective from its definition (diffusion/objective.h): [x_t ; x_0] at positions 0..T-1 twice; an x_t
    row of block [s, e) sees x_t keys in [s, e) and the x_0 keys before s; an x_0 row sees the x_0 keys up to its own
    (causal). Returns the mask (2T, 2T), the positions and the masked positions of x_t."""
    T = len(x0)
    mask = torch.zeros(2 * T, 2 * T, dtype=torch.bool)
    for i in range(T):
        s = (i // block) * block
        e = min(s + block, T)
        mask[i, s:e] = True
        mask[i, T:T + s] = True
        mask[T + i, T:T + i + 1] = True
    masked = [i for i in range(T) if xt[i] == mask_id]
    assert all(xt[i] == x0[i] for i in range(T) if i not in masked), "x_t keeps every unmasked token"
    return mask, list(range(T)) * 2, masked


def check_joint(unmask, tmp, T=14, block=4, weight=0.3):
    """The joint objective's loss and gradient: unmask's draw (which positions are masked, at which times) is read
    from --batch-json; the attention, the loss rows and their targets are rebuilt here from the definition, the
    weights checked against it (AR rows 1/T; a block's masked rows one weight, at least weight/T since w(t) = 1/t >= 1
    for the linear schedule), and the gradient compared as above."""
    name = f"joint objective B={block}"
    model, out, js = (os.path.join(tmp, f) for f in ("joint.gguf", "joint.f32", "joint.json"))
    run([unmask, "init", "--config", "tiny", "--seed", "300", "--out", model, "--arch", "llama", "--vocab", "61",
         "--d-model", "32", "--heads", "4", "--kv-heads", "2", "--ffn", "48", "--layers", "2"])
    ref = Reference(model)
    vocab, mask_id = 61, 60
    window = np.random.default_rng(7).integers(0, vocab - 1, T + 1).tolist()
    run([unmask, "grad", "-m", model, "--tokens", ",".join(map(str, window)), "--objective", "joint", "--block-size",
         str(block), "--mask-token", str(mask_id), "--seed", "11", "--diffusion-weight", str(weight), "--batch-json",
         js, "--out", out])
    with open(js) as f:
        batch = json.load(f)
    xt, x0 = batch["tokens"][:T], batch["tokens"][T:]
    ok = x0 == window[:T]
    attn, pos, masked = joint_layout(x0, xt, block, mask_id)
    want_rows = [(i, x0[i]) for i in masked] + [(T + i, window[i + 1]) for i in range(T)]
    got = sorted(zip(batch["rows"], batch["targets"]))
    ok = ok and got == sorted(want_rows) and batch["pos"] == pos and len(masked) > 0
    w = dict(zip(batch["rows"], batch["weights"]))
    ok = ok and all(abs(w[T + i] - 1 / T) < 1e-7 for i in range(T))
    for s in range(0, T, block):
        ws = [w[i] for i in masked if s <= i < s + block]
        ok = ok and all(abs(x - ws[0]) < 1e-7 and x >= weight / T * (1 - 1e-6) for x in ws)
    def grads(attn):
        for p in ref.w.values():
            p.requires_grad_(True)
            p.grad = None
        logits = ref.forward(batch["tokens"], mask=attn, pos=pos)
        rows = torch.as_tensor(batch["rows"])
        ce = F.cross_entropy(logits[rows], torch.as_tensor(batch["targets"]), reduction="none")
        loss = (ce * torch.as_tensor(batch["weights"], dtype=ce.dtype)).sum()
        loss.backward()
        return loss, {k: p.grad.numpy() for k, p in ref.w.items()}

    loss, want = grads(attn)
    bd3 = attn.clone()  # negative control: x_0 rows that see their whole block, as bd3's do
    for i in range(T):
        bd3[T + i, T:T + min((i // block + 1) * block, T)] = True
    raw = np.fromfile(out, dtype=np.float32)
    ours, at = {}, 1
    for k, p in ref.w.items():
        ours[k] = raw[at:at + p.numel()].reshape(p.shape)
        at += p.numel()
    K = max(32, 48, 2 * T, vocab)
    stages = 4 * ref.n_layers + 3
    ratio, worst = compare(ours, want, stages, K)
    ok = ok and at == raw.size and abs(raw[0] - float(loss)) <= K * 2.0 ** -24 * abs(float(loss)) * stages and ratio <= 1
    print(f"{'ok  ' if ok else 'FAIL'} {name:32s} loss {raw[0]:.6f} vs {float(loss):.6f}; {len(masked)} masked; worst "
          f"tensor {worst}: max|diff| at {ratio:.3f} of its bound")
    caught, _ = compare(ours, grads(bd3)[1], stages, K)
    print(f"{'ok  ' if caught > 1 else 'FAIL'} negative control (x_0 rows see their block): worst at {caught:.1f} of "
          f"bound")
    return ok and caught > 1


if __name__ == "__main__":
    main(lambda unmask, tmp: [check_case(unmask, tmp, i, *c) for i, c in enumerate(CASES)] + [check_joint(unmask, tmp)])
