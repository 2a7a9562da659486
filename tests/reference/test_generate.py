"""Exactness: `unmask generate` against PyTorch transcriptions of LLaDA's generate (llada_generate.py), Fast-dLLM's
threshold rule with and without its prefix and dual caches, and Dream's diffusion_generate (dream_generate.py), run on
the same small random models with temperature 0. The token ids must be identical.

The transcriptions run the model in float64 (llama_ref.Reference), unmask in float32. Where the two could break a
near-tie differently, the case reports the smallest margin it met (argmax: logit gap at a committed position;
select: relative gap between the last confidence chosen and the first one left out, or to the threshold), so that a
mismatch can be told apart from a tie. A mismatch fails the case either way; the cases below were chosen (model seeds,
lengths) with margins far above float32 rounding (~1e-6 relative), and the margins are printed so that this stays
visible.
Run: /usr/bin/python3 tests/reference/test_generate.py --unmask build/release/unmask
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dream_generate  # noqa: E402
import gguf_reader  # noqa: E402
import llada_generate  # noqa: E402
from harness import main, run  # noqa: E402
import numpy as np  # noqa: E402
from llama_ref import Reference  # noqa: E402

LLADA_MODEL = "--arch llada --vocab 96 --d-model 64 --heads 4 --kv-heads 2 --ffn 128 --layers 2 --seed 3"
DREAM_MODEL = "--arch dream --vocab 96 --d-model 64 --heads 4 --kv-heads 2 --ffn 128 --layers 2 --seed 4"
PROMPT = [5, 17, 33, 2, 71, 40, 9]
# A random model's next-token distributions are nearly flat (logits of std ~0.15): confidences of different
# positions then differ in the 6th digit. Scaling the final norm multiplies every logit by this factor, which
# makes the model decisive the way a trained one is, and the comparison robust to float32 rounding.
LOGIT_SCALE = 12.0

# name, sampler flags for unmask, keyword arguments for the transcription
LLADA_CASES = [
    ("llada one per step, one block", dict(steps=16, gen_length=16, block_length=16)),
    ("llada 2 per step, blocks of 8", dict(steps=8, gen_length=16, block_length=8)),
    ("llada semi-AR blocks of 4", dict(steps=16, gen_length=16, block_length=4)),
    ("llada steps not dividing block", dict(steps=10, gen_length=24, block_length=12)),
    ("llada cfg 1.5", dict(steps=8, gen_length=16, block_length=8, cfg_scale=1.5)),
]
THRESHOLD_CASES = [
    ("threshold whole", dict(gen_length=16, block_length=16, threshold=None)),
    ("threshold blocks of 8", dict(gen_length=24, block_length=8, threshold=None)),
    ("threshold blocks of 8, prefix cache", dict(gen_length=24, block_length=8, threshold=None, cache="prefix")),
    ("threshold blocks of 6, dual cache", dict(gen_length=24, block_length=6, threshold=None, cache="dual")),
]
# A model and threshold on which the approximate caches change the output, each differently (checked below), so
# that matching the transcription's cached tokens shows the same approximation, not the exact pass or the other cache.
CACHE_MODEL = LLADA_MODEL.replace("--seed 3", "--seed 5")
CACHE_THRESHOLD = 0.2
CACHE_CASES = [("threshold blocks of 8, " + c + " cache, drifting", c) for c in ("prefix", "dual")]
DREAM_CASES = [
    ("dream entropy", dict(gen_length=16, steps=8, alg="entropy")),
    ("dream maskgit_plus", dict(gen_length=16, steps=16, alg="maskgit_plus")),
    ("dream topk_margin", dict(gen_length=20, steps=6, alg="topk_margin")),
]


def scale_logits(path, factor):
    """Multiplies output_norm.weight (f32) in the GGUF file in place, so every logit is scaled by factor."""
    gguf_reader.rewrite_f32(path, "output_norm.weight", lambda w: w * np.float32(factor))


def unmask_generate(unmask, model, sampler, kw):
    cmd = [unmask, "generate", "-m", model, "--json", "--sampler", sampler,
           "--prompt-tokens", ",".join(map(str, PROMPT)), "-n", str(kw["gen_length"])]
    flags = {"steps": "--steps", "block_length": "--block-length", "cfg_scale": "--cfg-scale",
             "threshold": "--threshold", "alg": "--alg", "cache": "--cache"}
    for k, flag in flags.items():
        if kw.get(k) is not None:
            cmd += [flag, str(kw[k])]
    out = json.loads(run(cmd))
    return out["canvas"], out["stats"]["forward_passes"]


MIN_GAP = 1e-5  # below this a case could flip on float32 rounding: it proves nothing and counts as failed


def report(name, want, got, passes, margins):
    ok = want == got and not margins.mask_chosen and margins.select > MIN_GAP
    first = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), None)
    print(f"{'ok  ' if ok else 'FAIL'} {name:34s} passes {passes[0]:3d}/{passes[1]:3d}  min argmax gap "
          f"{margins.argmax:.2e}  min select gap {margins.select:.2e}"
          + ("" if first is None else f"  first difference at position {first}")
          + ("  (reference committed the mask id)" if margins.mask_chosen else "")
          + (f"  (inconclusive: a select gap below {MIN_GAP})" if margins.select <= MIN_GAP else ""))
    if not ok:
        print(f"     torch  {want}\n     unmask {got}")
    return ok


def pick_threshold(ref, mask_id):
    """A threshold between the confidences of the first step, so that the rule commits several but not all."""
    x = PROMPT + [mask_id] * 16
    p = ref.forward(x)[len(PROMPT):].softmax(-1).max(-1).values
    return float(p.sort(descending=True).values[4:6].mean())


def transcription_model(model):
    """The float64 reference of the model file, its mask id, and its forward as the transcriptions call it: plain
    (tokens -> logits) and cached (tokens, kv, start, window -> logits)."""
    ref = Reference(model, torch.float64)
    fwd = lambda x: ref.forward(x.tolist())  # noqa: E731
    cached = lambda x, kv, start, window: ref.forward(x, cache=kv, start=start, window=window)  # noqa: E731
    return ref, ref.w["token_embd.weight"].shape[0] - 1, fwd, cached


def llada_cases(unmask, model):
    ref, mask_id, fwd, cached = transcription_model(model)
    thr = pick_threshold(ref, mask_id)
    results = []
    cases = LLADA_CASES + [(n, dict(kw, threshold=thr)) for n, kw in THRESHOLD_CASES]
    for name, kw in cases:
        kw = dict(kw)
        got, passes = unmask_generate(unmask, model, "llada", kw)
        with torch.no_grad():
            want, ref_passes, margins = llada_generate.generate(fwd, PROMPT, mask_id, cached_model=cached, **kw)
        results.append(report(name, want.tolist(), got, (ref_passes, passes), margins))
    return results


def cache_cases(unmask, model):
    _, mask_id, fwd, cached = transcription_model(model)
    kw = dict(gen_length=24, block_length=8, threshold=CACHE_THRESHOLD)
    with torch.no_grad():
        want = {c: llada_generate.generate(fwd, PROMPT, mask_id, cache=c, cached_model=cached, **kw)
                for c in (None, "prefix", "dual")}
    exact, prefix, dual = (want[c][0] for c in (None, "prefix", "dual"))
    distinct = bool((prefix != exact).any() and (dual != exact).any() and (prefix != dual).any())
    print(f"     tokens changed by the cache: prefix {int((prefix != exact).sum())}, dual {int((dual != exact).sum())} "
          f"of {kw['gen_length']}; prefix and dual differ in {int((prefix != dual).sum())}")
    results = []
    for name, c in CACHE_CASES:
        got, passes = unmask_generate(unmask, model, "llada", dict(kw, cache=c))
        x, ref_passes, margins = want[c]
        results.append(report(name, x.tolist(), got, (ref_passes, passes), margins) and distinct)
    return results


def dream_cases(unmask, model):
    _, mask_id, fwd, _ = transcription_model(model)
    results = []
    for name, kw in DREAM_CASES:
        got, passes = unmask_generate(unmask, model, "dream", kw)
        with torch.no_grad():
            want, ref_passes, margins = dream_generate.generate(fwd, PROMPT, mask_id, **kw)
        results.append(report(name, want.tolist(), got, (ref_passes, passes), margins))
    return results


def check_all(unmask, tmp):
    paths = {}
    for name, flags in (("llada", LLADA_MODEL), ("cache", CACHE_MODEL), ("dream", DREAM_MODEL)):
        paths[name] = os.path.join(tmp, name + ".gguf")
        run([unmask, "init", "--config", "tiny", "--out", paths[name]] + flags.split())
        scale_logits(paths[name], LOGIT_SCALE)
    return (llada_cases(unmask, paths["llada"]) + cache_cases(unmask, paths["cache"]) +
            dream_cases(unmask, paths["dream"]))


if __name__ == "__main__":
    main(check_all)
