"""End-to-end generation benchmark: unmask's samplers side by side on one model, and unmask's LLaDA sampler against
the PyTorch transcription of LLaDA's generate (tests/reference/llada_generate.py) on the same weights, in one run.

  /usr/bin/python3 bench/generate_compare.py --unmask build/release/unmask [--config small] [--gen 128]
  /usr/bin/python3 bench/generate_compare.py --unmask build/release/unmask --model mdlm.gguf --ar-model ar.gguf \
      --prompt-text "ROMEO:"                   # trained checkpoints (byte-level vocabulary)

Rows: LLaDA one token per step; semi-AR blocks; threshold 0.9 (Fast-dLLM); threshold 0.9 + prefix cache; threshold
0.9 + dual cache; AR with the KV cache on the causal twin (same sizes, llama architecture). With no trained
checkpoint the models are random (`unmask init`) with the final norm scaled by --logit-scale so that their
predictions are decisive the way a trained model's are; how many tokens the threshold rule commits per forward
depends on that, so those figures describe that model, not real text. The PyTorch row runs the plain transcription
(no cache) in float32 with the same number of threads, in a process with the fair OpenBLAS setup (bench/peer.py).
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


def unmask_row(args, model, prompt, flags):
    cmd = [args.unmask, "generate", "-m", model, "--json", "-t", str(args.threads), "-n", str(args.gen),
           "--prompt-tokens", ",".join(map(str, prompt))] + flags
    best = None
    for _ in range(args.repeats):
        out = json.loads(run(cmd))
        if best is None or out["stats"]["seconds_total"] < best["stats"]["seconds_total"]:
            best = out
    return best


def torch_row(model, prompt, mask_id, gen, threads):
    torch.set_num_threads(threads)
    ref = Reference(model, torch.float32)
    fwd = lambda x: ref.forward(x.tolist())  # noqa: E731
    t0 = time.perf_counter()
    with torch.no_grad():
        x, passes, _ = llada_generate.generate(fwd, prompt, mask_id, steps=gen, gen_length=gen, block_length=gen)
    return x.tolist(), passes, time.perf_counter() - t0


def models(args, tmp):
    """The bidirectional model and its causal twin: the given checkpoints, or random ones with decisive logits."""
    if args.model:
        return args.model, args.ar_model or args.model
    llada, llama = os.path.join(tmp, "llada.gguf"), os.path.join(tmp, "llama.gguf")
    for arch, path in (("llada", llada), ("llama", llama)):
        run([args.unmask, "init", "--config", args.config, "--arch", arch, "--seed", "1", "--out", path])
        scale_logits(path, args.logit_scale)
    return llada, llama


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--unmask", required=True)
    ap.add_argument("--config", default="small")
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--block", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--logit-scale", type=float, default=12.0)
    ap.add_argument("--model", help="a trained bidirectional checkpoint instead of a random model")
    ap.add_argument("--ar-model", help="a trained causal checkpoint for the AR row")
    ap.add_argument("--prompt-text", help="prompt as the bytes of this text (byte-level vocabularies)")
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
        prompt = (list(args.prompt_text.encode()) if args.prompt_text else
                  [(7 * i + 3) % (vocab - 1) for i in range(args.prompt)])
        what = args.model or f"{args.config} preset, random, logits x{args.logit_scale}"
        print(f"model: {what}, prompt {len(prompt)}, generate {args.gen}, {args.threads} threads, "
              f"best of {args.repeats}")
        print(f"{'sampler':32s} {'forwards':>8s} {'tok/fwd':>8s} {'seconds':>8s} {'tok/s':>8s} {'fwd s':>7s} {'sample s':>8s}")
        results = {}
        for name, flags in rows + [("ar + kv cache (causal twin)", None)]:
            out = (unmask_row(args, llada, prompt, ["--sampler", "llada"] + flags) if flags is not None else
                   unmask_row(args, llama, prompt, ["--sampler", "ar", "--ignore-eos"]))
            s = results[name] = out["stats"]
            results[name]["canvas"] = out["canvas"]
            print(f"{name:32s} {s['forward_passes']:8d} {s['tokens_per_forward']:8.2f} {s['seconds_total']:8.3f} "
                  f"{s['tokens_per_second']:8.1f} {s['seconds_forward']:7.3f} {s['seconds_sample']:8.3f}")
        want, passes, secs = torch_row(llada, prompt, mask_id, args.gen, args.threads)
        print(f"{'pytorch llada 1 token/step':32s} {passes:8d} {args.gen / passes:8.2f} {secs:8.3f} "
              f"{args.gen / secs:8.1f}")
        base = results["llada 1 token/step"]
        cached = results["threshold 0.9 + prefix cache"]
        for name in ("threshold 0.9 + prefix cache", "threshold 0.9 + dual cache"):
            n = results[name]["forward_passes"]
            print(f"forward passes, 1 token/step vs {name}: {base['forward_passes']} / {n} = "
                  f"{base['forward_passes'] / n:.1f}x fewer")
        print(f"unmask llada vs pytorch transcription (same weights, same settings): {secs / base['seconds_total']:.1f}x "
              f"faster; same tokens: {want == base['canvas']}")
        same = results["threshold 0.9"]["canvas"] == cached["canvas"]
        print(f"threshold 0.9 output with and without the prefix cache identical: {same}")


if __name__ == "__main__":
    main()
