"""unmask against PyTorch on the same weights, precision and threads, in one run.

For each model size and weight type: `unmask init` writes a bidirectional (llada) and a causal (llama) model with the
same seed, bench_forward measures unmask (forward over T tokens, the GEMM ceiling on the model's shapes, the decode
step with the KV cache), and the PyTorch peer (tests/reference/llama_ref.py in the same precision, no autograd) runs
the same three measurements. The table goes to stdout and, with --markdown FILE, to a Markdown file.

PyTorch is made fair: OPENBLAS_CORETYPE (preset to Haswell here) is unset and the OpenMP build of OpenBLAS is used.
Run: /usr/bin/python3 bench/compare_torch.py --build build/release [--configs small,medium] [--types f32,bf16]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peer import torch_env  # noqa: E402
REFERENCE = os.path.join(HERE, "..", "tests", "reference")


def torch_peer(bidir, causal, wtype, tokens, reps, decode, prefix, threads):
    """Runs in a child process (python3 compare_torch.py --peer ...) so that the environment above applies."""
    sys.path.insert(0, REFERENCE)
    import torch
    from llama_ref import Reference

    torch.set_num_threads(threads)
    dtype = torch.bfloat16 if wtype == "bf16" else torch.float32
    out = []
    with torch.inference_mode():
        model = Reference(bidir, dtype=dtype)
        vocab = model.w["token_embd.weight"].shape[0]
        for T in tokens:
            toks = torch.randint(0, vocab, (T,))
            model.forward(toks)
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                model.forward(toks)
                times.append(time.perf_counter() - t0)
            sec = statistics.median(times)
            out.append({"bench": "forward", "tokens": T, "seconds": sec, "tok_per_s": T / sec})
        model = Reference(causal, dtype=dtype)
        runs = []
        for _ in range(max(reps, 2)):
            cache = {}
            logits = model.forward(torch.ones(prefix, dtype=torch.long), cache=cache)
            tok = 2
            t0 = time.perf_counter()
            for i in range(decode):
                logits = model.forward(torch.tensor([tok]), cache=cache, start=prefix + i)
                tok = int(logits[-1].argmax())
            runs.append((time.perf_counter() - t0) / decode)
        sec = statistics.median(runs[1:])
        out.append({"bench": "decode", "tok_per_s": 1 / sec, "ms_per_token": sec * 1e3})
    for o in out:
        print(json.dumps(o))


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def measure(build, size, wtype, args, tmp):
    unmask = os.path.join(build, "unmask")
    files = {}
    for arch in ("llada", "llama"):
        files[arch] = os.path.join(tmp, f"{size}-{wtype}-{arch}.gguf")
        subprocess.run([unmask, "init", "--config", size, "--arch", arch, "--type", wtype, "--seed", "1",
                        "--out", files[arch]], check=True, capture_output=True)
    common = ["--tokens", ",".join(map(str, args.tokens)), "--reps", str(args.reps), "--decode", str(args.decode)]
    ours = subprocess.run([os.path.join(build, "bench", "bench_forward"), "--bidir", files["llada"], "--causal",
                           files["llama"], "--threads", str(args.threads)] + common,
                          check=True, capture_output=True, text=True).stdout
    theirs = subprocess.run([sys.executable, __file__, "--peer", files["llada"], files["llama"], wtype] + common +
                            ["--threads", str(args.threads)],
                            check=True, capture_output=True, text=True, env=torch_env(args.threads)).stdout
    return json_lines(ours), json_lines(theirs)


def rows_for(size, wtype, ours, theirs):
    params = next(o for o in ours if o["bench"] == "model")["params"]
    name = f"{size} ({params / 1e6:.1f}M), {wtype}"
    fw_ours = [o for o in ours if o["bench"] == "forward"]
    fw_theirs = [o for o in theirs if o["bench"] == "forward"]
    rows = []
    for a, b in zip(fw_ours, fw_theirs):
        rows.append(f"| {name} | bidirectional forward, {a['tokens']} tokens | {a['tok_per_s']:,.0f} tok/s | "
                    f"{b['tok_per_s']:,.0f} tok/s | {a['tok_per_s'] / b['tok_per_s']:.2f} | {a['gflops']:.0f} GFLOP/s, "
                    f"{100 * a['fraction_of_ceiling']:.0f}% of the {a['gemm_ceiling_gflops']:.0f} GFLOP/s GEMM ceiling |")
    a = next(o for o in ours if o["bench"] == "decode")
    b = next(o for o in theirs if o["bench"] == "decode")
    rows.append(f"| {name} | causal decode step, KV cache | {a['tok_per_s']:,.0f} tok/s | {b['tok_per_s']:,.0f} tok/s | "
                f"{a['tok_per_s'] / b['tok_per_s']:.2f} | {a['gb_per_s']:.1f} GB/s of weights "
                f"({a['weight_bytes'] / 1e6:.0f} MB per token; DRAM ≈ 48 GB/s) |")
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", nargs=3, metavar=("BIDIR", "CAUSAL", "TYPE"), help=argparse.SUPPRESS)
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--configs", default="small,medium")
    ap.add_argument("--types", default="f32,bf16")
    ap.add_argument("--tokens", default="256,1024", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args()
    if args.peer:
        torch_peer(*args.peer, args.tokens, args.reps, args.decode, 64, args.threads)
        return
    header = ["| model | measurement | unmask | PyTorch | ratio | notes |", "|---|---|---|---|---|---|"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.configs.split(","):
            for wtype in args.types.split(","):
                ours, theirs = measure(args.build, size, wtype, args, tmp)
                rows += rows_for(size, wtype, ours, theirs)
                print("\n".join(rows[-len(args.tokens) - 1:]), flush=True)
    table = "\n".join(header + rows)
    print("\n" + table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
