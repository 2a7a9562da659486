"""End-to-end generation benchmark: unmask's samplers side by side on one model, and unmask's LLaDA sampler against
the PyTorch transcription of LLaDA's generate (tests/reference/llada_generate.py) on the same weights, in one run.

  /usr/bin/python3 bench/generate_compare.py --unmask build/release/unmask [--config small] [--gen 128]
  /usr/bin/python3 bench/generate_compare.py --unmask build/release/unmask --model mdlm.gguf --ar-model ar.gguf \
      --prompt-file ../shared/data/tinyshakespeare.txt --prompts 8   # trained byte-level checkpoints

Rows: LLaDA one token per step; semi-AR blocks; threshold 0.9 (Fast-dLLM); threshold 0.9 + prefix cache; threshold
0.9 + dual cache; AR with the KV cache on the causal twin (same sizes, llama architecture). With no trained
checkpoint the models are random (`unmask init`) with the final norm scaled by --logit-scale so that their
predictions are decisive the way a trained model's are; how many tokens the threshold rule commits per forward
depends on that, so those figures describe that model, not real text. The PyTorch rows run the transcription of
LLaDA's generate (tests/reference/llada_generate.py) one token per step, with the threshold rule, and with the
threshold rule and Fast-dLLM's dual cache, in float32 with the same number of threads, in a process
with the fair OpenBLAS setup (bench/peer.py). Every figure is summed over the prompts: --prompts windows of
--prompt-file (from its last 10% by default, tinyshakespeare's validation split), or synthetic ids.
"""
import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peer import torch_env  # noqa: E402

if "openblas-openmp" not in os.environ.get("LD_LIBRARY_PATH", ""):  # rerun with the fair PyTorch setup
    os.execve(sys.executable, [sys.executable] + sys.argv, torch_env(os.cpu_count() or 2))

import torch  # noqa: E402

sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
import llada_generate  # noqa: E402
from harness import run  # noqa: E402
from llama_ref import Reference  # noqa: E402
from test_generate import scale_logits  # noqa: E402


def unmask_row(args, model, prompts, flags):
    """The row's statistics summed over the prompts (each the best of --repeats), and the canvases."""
    total, canvases = {}, []
    for prompt in prompts:
        cmd = [args.unmask, "generate", "-m", model, "--json", "-t", str(args.threads), "-n", str(args.gen),
               "--prompt-tokens", ",".join(map(str, prompt))] + flags
        best = None
        for _ in range(args.repeats):
            out = json.loads(run(cmd))
            if best is None or out["stats"]["seconds_total"] < best["stats"]["seconds_total"]:
                best = out
        for k in ("forward_passes", "generated", "seconds_total", "seconds_forward", "seconds_sample"):
            total[k] = total.get(k, 0) + best["stats"][k]
        canvases.append(best["canvas"])
    return total, canvases


def torch_row(model, prompts, mask_id, args, threshold=None, cache=None):
    """The PyTorch transcription over the prompts: (canvases, forward passes, seconds)."""
    torch.set_num_threads(args.threads)
    ref = Reference(model, torch.float32)
    fwd = lambda x: ref.forward(x.tolist())  # noqa: E731
    cached = lambda x, kv, start, window: ref.forward(x, cache=kv, start=start, window=window)  # noqa: E731
    canvases, passes, secs = [], 0, 0.0
    for prompt in prompts:
        kw = (dict(steps=args.gen, block_length=args.gen) if threshold is None else
              dict(block_length=args.block, threshold=threshold, cache=cache, cached_model=cached))
        t0 = time.perf_counter()
        with torch.no_grad():
            x, n, _ = llada_generate.generate(fwd, prompt, mask_id, gen_length=args.gen, **kw)
        secs += time.perf_counter() - t0
        canvases.append(x.tolist())
        passes += n
    return canvases, passes, secs


def models(args, tmp):
    """The bidirectional model and its causal twin: the given checkpoints, or random ones with decisive logits."""
    if args.model:
        return args.model, args.ar_model  # no --ar-model: no AR row
    llada, llama = os.path.join(tmp, "llada.gguf"), os.path.join(tmp, "llama.gguf")
    for arch, path in (("llada", llada), ("llama", llama)):
        run([args.unmask, "init", "--config", args.config, "--arch", arch, "--seed", "1", "--out", path])
        scale_logits(path, args.logit_scale)
    return llada, llama


def prompts_of(args, vocab):
    """--prompts windows of --prompt bytes spread over --prompt-file (byte-level vocabularies), or synthetic ids."""
    if args.prompt_file:
        data = open(args.prompt_file, "rb").read()
        data = data[int(len(data) * args.prompt_from):]
        stride = (len(data) - args.prompt) // args.prompts
        return [list(data[i * stride:i * stride + args.prompt]) for i in range(args.prompts)]
    return [[(7 * i + 3 + 11 * j) % (vocab - 1) for i in range(args.prompt)] for j in range(args.prompts)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unmask", required=True)
    ap.add_argument("--config", default="small")
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--prompt", type=int, default=32, help="prompt length")
    ap.add_argument("--prompts", type=int, default=1, help="prompts per row (figures are summed over them)")
    ap.add_argument("--prompt-file", help="take the prompts as byte windows of this text (byte-level vocabularies)")
    ap.add_argument("--prompt-from", type=float, default=0.9,
                    help="with --prompt-file: the fraction of the file to skip (0.9: tinyshakespeare's validation)")
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--logit-scale", type=float, default=12.0)
    ap.add_argument("--model", help="a trained bidirectional checkpoint instead of a random model")
    ap.add_argument("--ar-model", help="a trained causal checkpoint for the AR row (with --model; without it, no AR row)")
    args = ap.parse_args()
    g, b = str(args.gen), str(args.block)
    rows = [
        ("llada 1 token/step", ["--steps", g, "--block-length", g]),
        (f"llada semi-AR blocks of {b}", ["--steps", g, "--block-length", b]),
        ("threshold 0.9", ["--threshold", "0.9", "--block-length", b]),
        ("threshold 0.9 + prefix cache", ["--threshold", "0.9", "--block-length", b, "--cache", "prefix"]),
        ("threshold 0.9 + dual cache", ["--threshold", "0.9", "--block-length", b, "--cache", "dual"]),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        llada, llama = models(args, tmp)
        ref = Reference(llada)
        vocab = ref.w["token_embd.weight"].shape[0]
        mask_id = ref.meta.get("tokenizer.ggml.mask_token_id", vocab - 1)
        prompts = prompts_of(args, vocab)
        what = args.model or f"{args.config} preset, random, logits x{args.logit_scale}"
        print(f"model: {what}; {len(prompts)} prompt(s) of {args.prompt} tokens, generate {args.gen} each, "
              f"{args.threads} threads, best of {args.repeats}; figures summed over the prompts")
        print(f"{'sampler':36s} {'forwards':>8s} {'tok/fwd':>8s} {'seconds':>8s} {'tok/s':>8s} {'fwd s':>7s} {'sample s':>8s}")
        results, canvases = {}, {}
        for name, flags in rows + ([("ar + kv cache (causal twin)", None)] if llama else []):
            s, canvases[name] = (unmask_row(args, llada, prompts, ["--sampler", "llada"] + flags) if flags is not None
                                 else unmask_row(args, llama, prompts, ["--sampler", "ar", "--ignore-eos"]))
            results[name] = s
            print(f"{name:36s} {s['forward_passes']:8d} {s['generated'] / s['forward_passes']:8.2f} "
                  f"{s['seconds_total']:8.3f} {s['generated'] / s['seconds_total']:8.1f} {s['seconds_forward']:7.3f} "
                  f"{s['seconds_sample']:8.3f}")
        gen = args.gen * len(prompts)
        torch_rows = {}
        for name, threshold, cache in (("llada 1 token/step", None, None), ("threshold 0.9", 0.9, None),
                                       ("threshold 0.9 + dual cache", 0.9, "dual")):
            want, passes, secs = torch_rows[name] = torch_row(llada, prompts, mask_id, args, threshold, cache)
            print(f"{'pytorch ' + name:36s} {passes:8d} {gen / passes:8.2f} {secs:8.3f} {gen / secs:8.1f}")
        base = results["llada 1 token/step"]
        for name in ("threshold 0.9", "threshold 0.9 + prefix cache", "threshold 0.9 + dual cache"):
            n = results[name]["forward_passes"]
            print(f"forward passes, 1 token/step vs {name}: {base['forward_passes']} / {n} = "
                  f"{base['forward_passes'] / n:.1f}x fewer")
        for name in torch_rows:
            want, _, secs = torch_rows[name]
            print(f"unmask vs pytorch transcription, {name} (same weights, same settings): "
                  f"{secs / results[name]['seconds_total']:.1f}x faster; same tokens: {want == canvases[name]}")
        secs = torch_rows["llada 1 token/step"][2]
        print(f"unmask threshold 0.9 + dual cache vs pytorch llada 1 token/step: "
              f"{secs / results['threshold 0.9 + dual cache']['seconds_total']:.1f}x faster (different tokens)")
        for name in ("threshold 0.9 + prefix cache", "threshold 0.9 + dual cache"):
            same = sum(a == b for a, b in zip(canvases["threshold 0.9"], canvases[name]))
            print(f"threshold 0.9 output with and without the {name[16:]}: {same} of {len(prompts)} identical")


if __name__ == "__main__":
    main()
