"""Likelihood against the independent PyTorch reference (llama_ref.py) on small random models.

- `unmask eval ppl` on a causal model: the per-token NLL and the perplexity exp(mean NLL), computed here in float64
  from the reference's logits, for one window and for a sliding window (each window's tokens scored only when the
  previous window did not score them; consecutive windows overlap as unmask documents).
- `unmask eval elbo --exact` on a bidirectional model (and a shifted, Dream-style one): the bound by enumerating every
  mask M of the maskable positions, sum over M of 1 / (|M| C(L, |M|)) times the masked cross-entropies, written here
  from the definition NELBO = E_t[w(t) sum_masked CE] integrated over t for the linear schedule.
Bound: float32 against float64 logits; a relative 1e-4 of the total NLL is far above the rounding (~1e-6) and far
below any error of method (a token scored twice or missed moves the total by ~log V / n, a few percent).
A negative control: the reference with the other RoPE layout must differ by more than the bound.
Run: /usr/bin/python3 tests/reference/test_eval.py --unmask build/release/unmask
"""
import itertools
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import main, run  # noqa: E402
from llama_ref import Reference  # noqa: E402

REL = 1e-4


def token_nll(ref, tokens):
    """NLL of tokens[1:] given the tokens before them, from one causal forward pass."""
    with torch.no_grad():
        logp = torch.log_softmax(ref.forward(tokens), dim=-1)
    return [-logp[p - 1, tokens[p]].item() for p in range(1, len(tokens))]


def sliding_nll(ref, tokens, context, stride):
    out, scored, begin = [], 1, 0
    while True:
        end = min(len(tokens), begin + context)
        nll = token_nll(ref, tokens[begin:end])
        out += nll[scored - begin - 1:]
        scored = end
        if end == len(tokens):
            return out
        begin = min(begin + stride, scored - 1)


def check(name, got, want, total):
    err = abs(got - want)
    ok = err <= REL * abs(total)
    print(f"{'ok  ' if ok else 'FAIL'} {name:48s} unmask {got:.6f}  reference {want:.6f}  |diff| {err:.2e}")
    return ok


def check_ppl(unmask, tmp):
    model = os.path.join(tmp, "ar.gguf")
    run([unmask, "init", "--config", "tiny", "--vocab", "97", "--ctx", "64", "--seed", "3", "--out", model])
    ref = Reference(model)
    tokens = np.random.default_rng(1).integers(0, 97, 50).tolist()
    ids = ",".join(map(str, tokens))
    res = []
    for flags, want in [([], token_nll(ref, tokens)), (["--context", "16", "--stride", "5"],
                                                       sliding_nll(ref, tokens, 16, 5))]:
        j = json.loads(run([unmask, "eval", "ppl", "-m", model, "--tokens", ids, "--json"] + flags))
        label = "eval ppl " + (" ".join(flags) or "(one window)")
        res.append(len(j["token_nll"]) == len(want) == 49)
        res.append(check(label + ": total NLL", j["nll"], sum(want), sum(want)))
        res.append(check(label + ": perplexity", j["ppl"], math.exp(sum(want) / len(want)), math.exp(sum(want) / 49)))
        worst = max(abs(a - b) for a, b in zip(j["token_nll"], want))
        res.append(worst <= REL * sum(want))
        print(f"{'ok  ' if res[-1] else 'FAIL'} {label}: per-token max|diff| {worst:.2e}")
    ref.neox = not ref.neox
    wrong = sum(token_nll(ref, tokens))
    caught = abs(wrong - j["nll"]) > REL * abs(wrong)
    print(f"{'ok  ' if caught else 'FAIL'} negative control (other RoPE layout): |diff| {abs(wrong - j['nll']):.2e}")
    return res + [caught]


def exact_elbo(ref, tokens, mask_id, shift):
    """Sum over every nonempty mask M of the maskable positions of CE(M) / (|M| C(L, |M|))."""
    first = 1 if shift else 0
    L = len(tokens) - first
    total = 0.0
    for m in range(1, L + 1):
        for M in itertools.combinations(range(first, len(tokens)), m):
            xt = [mask_id if i in M else t for i, t in enumerate(tokens)]
            with torch.no_grad():
                logp = torch.log_softmax(ref.forward(xt), dim=-1)
            ce = sum(-logp[i - 1 if shift else i, tokens[i]].item() for i in M)
            total += ce / (m * math.comb(L, m))
    return total


def check_elbo(unmask, tmp):
    res = []
    for arch in ["llada", "dream"]:
        model = os.path.join(tmp, f"{arch}.gguf")
        run([unmask, "init", "--config", "tiny", "--arch", arch, "--vocab", "61", "--seed", "5", "--out", model])
        ref = Reference(model)
        mask_id = ref.meta["tokenizer.ggml.mask_token_id"]
        tokens = np.random.default_rng(2).integers(0, mask_id, 7).tolist()
        j = json.loads(run([unmask, "eval", "elbo", "-m", model, "--exact", "--json", "--tokens",
                            ",".join(map(str, tokens))]))
        want = exact_elbo(ref, tokens, mask_id, arch == "dream")
        res.append(check(f"eval elbo --exact ({arch})", j["nll"], want, want))
    return res


if __name__ == "__main__":
    main(lambda unmask, tmp: check_ppl(unmask, tmp) + check_elbo(unmask, tmp))
