#!/usr/bin/env python3
"""unmask beside llama.cpp on the same GGUF files, in one run: per model size and weight type, AR decode tok/s, one
256-token pass tok/s and time to first token (load + first token, as a user waits for it) for both, with the ratios,
and decode's bytes of weights read per second against the machine's read bandwidth measured in the same run.

The files are random llama models made by `unmask init --tokenizer` (a real vocabulary: llama.cpp needs one) and
`unmask quantize`, so both engines read the very same bytes. llama.cpp's side: llama-bench (pp256: one 256-token
pass; tg64: 64 decode steps from an empty context) and llama-completion (-n 1) for the first token; unmask's:
bench_quant_model (--step 256, --decode 64) and `unmask generate -n 1`. Both at the same thread count, run in turn
(llama.cpp, then unmask, file by file) so that a noisy spell hits both; medians of --reps.

llama.cpp: build llama-bench and llama-completion from a snapshot, for example the one node-llama-cpp ships
(tests/tools/llama_cpp/node_modules/node-llama-cpp/llama/gitRelease.bundle, after `bash scripts/setup.sh --test`):
    git clone .../gitRelease.bundle /tmp/llama-src && cd /tmp/llama-src &&
    cmake -B build -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF &&
    cmake --build build -j2 --target llama-bench llama-completion

    python3 bench/llama_cpp.py --llama-bench /tmp/llama-src/build/bin/llama-bench \\
        [--sizes small,medium] [--types f32,f16,bf16,q8_0,q4_k_m,...] [--threads 2] [--reps 5] [--json out.json]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TYPES = ["f32", "f16", "bf16", "q8_0", "q6_k", "q5_k_m", "q5_0", "q5_1", "q4_k_m", "q4_0", "q4_1", "q3_k_m", "q2_k"]
PROMPT = "And the LORD said unto Moses"


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return r.stdout


def wall(cmd):
    t = time.perf_counter()
    run(cmd)
    return time.perf_counter() - t


def make_files(a, tmp):
    """(size, type, path) for every file, written once."""
    tokenizer = os.path.join(ROOT, "models", "kjv-ar.gguf")
    files = []
    for size in a.sizes:
        f32 = os.path.join(tmp, f"{size}-f32.gguf")
        run([a.unmask, "init", "--config", size, "--arch", "llama", "--tokenizer", tokenizer, "-o", f32])
        for t in a.types:
            path = f32 if t == "f32" else os.path.join(tmp, f"{size}-{t}.gguf")
            if t != "f32":
                run([a.unmask, "quantize", f32, path, "--type", t])
            files.append((size, t, path))
    return files


def llama_side(a, path):
    out = json.loads(run([a.llama_bench, "-m", path, "-t", str(a.threads), "-p", "256", "-n", "64", "-r",
                          str(a.reps), "-o", "json"]))
    pp = next(r["avg_ts"] for r in out if r["n_prompt"] == 256 and r["n_gen"] == 0)
    tg = next(r["avg_ts"] for r in out if r["n_gen"] == 64 and r["n_prompt"] == 0)
    return {"decode_tok_s": tg, "pass_tok_s": pp}


def unmask_side(a, path):
    out = json.loads(run([a.bench_quant_model, path, "--decode", "64", "--reps", str(a.reps), "--threads",
                          str(a.threads), "--json", "1"]).strip().splitlines()[-1])
    return {"decode_tok_s": out["decode_tok_s"], "pass_tok_s": out["step_tok_s"], "decode_gb_s": out["decode_gb_s"],
            "read_gb_s": out["read_gb_s"]}


def first_token(a, path):
    """Median seconds from start to the first generated token, each engine started afresh, in turn."""
    completion = os.path.join(os.path.dirname(a.llama_bench), "llama-completion")
    ours = [a.unmask, "generate", "-m", path, "-p", PROMPT, "-n", "1", "--temp", "0", "-t", str(a.threads)]
    theirs = [completion, "-m", path, "-p", PROMPT, "-n", "1", "--temp", "0", "-t", str(a.threads), "-no-cnv",
              "--no-display-prompt", "--log-disable"]
    wall(ours), wall(theirs)  # the file in the page cache for both
    t_ours, t_theirs = [], []
    for _ in range(a.reps):
        t_ours.append(wall(ours))
        t_theirs.append(wall(theirs))
    return statistics.median(t_ours), statistics.median(t_theirs)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--llama-bench", required=True, help="llama.cpp's llama-bench (llama-completion beside it)")
    p.add_argument("--unmask", default=os.path.join(ROOT, "build", "release", "unmask"))
    p.add_argument("--bench-quant-model", default=os.path.join(ROOT, "build", "release", "bench", "bench_quant_model"))
    p.add_argument("--sizes", default="small,medium", help="unmask init --config sizes (small 13.8M, medium ~98M)")
    p.add_argument("--types", default=",".join(TYPES))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--json", help="also write the rows here")
    a = p.parse_args()
    a.sizes, a.types = a.sizes.split(","), a.types.split(",")

    rows = []
    print(f"{'size':7} {'type':7} | {'decode tok/s':>21} {'x':>5} {'GB/s':>5} {'%bw':>4} | "
          f"{'256-token pass tok/s':>21} {'x':>5} | {'first token s':>13} {'x':>5}")
    print(f"{'':15} | {'unmask':>10} {'llama.cpp':>10} {'':>16} | {'unmask':>10} {'llama.cpp':>10} {'':>5} | "
          f"{'unmask':>6} {'l.cpp':>6}")
    with tempfile.TemporaryDirectory(prefix="unmask-vs-llama-cpp-") as tmp:
        for size, t, path in make_files(a, tmp):
            theirs = llama_side(a, path)
            ours = unmask_side(a, path)
            ttft_ours, ttft_theirs = first_token(a, path)
            row = {"size": size, "type": t, "unmask": ours, "llama_cpp": theirs, "ttft_unmask_s": ttft_ours,
                   "ttft_llama_cpp_s": ttft_theirs, "decode_ratio": ours["decode_tok_s"] / theirs["decode_tok_s"],
                   "pass_ratio": ours["pass_tok_s"] / theirs["pass_tok_s"], "ttft_ratio": ttft_theirs / ttft_ours}
            rows.append(row)
            print(f"{size:7} {t:7} | {ours['decode_tok_s']:10.1f} {theirs['decode_tok_s']:10.1f} "
                  f"{row['decode_ratio']:5.2f} {ours['decode_gb_s']:5.1f} "
                  f"{100 * ours['decode_gb_s'] / ours['read_gb_s']:3.0f}% | {ours['pass_tok_s']:10.1f} "
                  f"{theirs['pass_tok_s']:10.1f} {row['pass_ratio']:5.2f} | {ttft_ours:6.3f} {ttft_theirs:6.3f} "
                  f"{row['ttft_ratio']:5.2f}", flush=True)
    print("x: unmask's speed over llama.cpp's (first token: llama.cpp's time over unmask's); %bw: decode's weight "
          "bytes per second over the read bandwidth measured in the same run")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
