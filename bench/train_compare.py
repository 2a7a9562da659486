"""Training throughput: unmask against PyTorch training the same model, same batch, threads and precision, in one
run (f32; and bf16 GEMMs with f32 master weights: unmask --bf16 against torch.autocast bfloat16).

unmask: `unmask train --objective ar` on the prepared data, tokens/s as the median over the steps after warm-up
(from the run's log.csv). PyTorch: the reference model of tests/reference/llama_ref.py in float32 with autograd,
torch.optim.AdamW, the same batch shape, random windows; median seconds per step. OPENBLAS_CORETYPE is unset and the
OpenMP OpenBLAS is used so that the peer is fair. Achieved GFLOP/s count 6 FLOPs per matmul parameter per token plus
12 · T · d_attn per layer for attention (forward 4, backward 8).
Run: /usr/bin/python3 bench/train_compare.py --build build/release --data DIR [--markdown FILE]
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
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))

CONFIGS = [  # name, model flags, batch, seq_len, bf16 GEMMs (f32 master weights; PyTorch: autocast)
    ("nanoGPT char (4x128, ctx 64, batch 12)", ["--config", "nano"], 12, 64, False),
    ("~10M (6x384, ctx 256, batch 8)", ["--config", "small"], 8, 256, False),
    ("~10M (6x384, ctx 256, batch 8)", ["--config", "small"], 8, 256, True),
]


def torch_peer(model_path, batch, seq_len, steps, threads, bf16):
    import torch
    import torch.nn.functional as F
    from llama_ref import Reference

    torch.set_num_threads(threads)
    ref = Reference(model_path, dtype=torch.float32)
    params = list(ref.w.values())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    vocab = ref.w["token_embd.weight"].shape[0]
    times = []
    for _ in range(steps):
        x = torch.randint(0, vocab, (batch, seq_len + 1))
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = sum(F.cross_entropy(ref.forward(x[b, :-1]).float(), x[b, 1:]) for b in range(batch)) / batch
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
    sec = statistics.median(times[2:])
    print(json.dumps({"tok_per_s": batch * seq_len / sec}))


def flops_per_token(meta_params, d_attn, layers, seq_len):
    return 6 * meta_params + 12 * seq_len * d_attn * layers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--build", default="build/release")
    ap.add_argument("--data", required=False, help="directory from `unmask data prepare` (byte-level)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gemm-ceiling", type=float, default=0, help="GFLOP/s, for the fraction column")
    ap.add_argument("--markdown")
    args = ap.parse_args()
    if args.peer:
        torch_peer(args.peer[0], int(args.peer[1]), int(args.peer[2]), int(args.peer[3]), args.threads,
                   args.peer[4] == "bf16")
        return
    unmask = os.path.join(args.build, "unmask")
    rows = ["| configuration | unmask tok/s | PyTorch tok/s | ratio | unmask GFLOP/s |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags, batch, seq_len, bf16 in CONFIGS:
            run = os.path.join(tmp, "run" + str(len(rows)))
            subprocess.run([unmask, "train", "--objective", "ar", "--data", args.data, "--batch", str(batch),
                            "--seq-len", str(seq_len), "--steps", str(args.steps), "--eval-every", "100000",
                            "--eval-batches", "1", "--checkpoint-every", "100000", "-t", str(args.threads),
                            "--out", run] + flags + (["--bf16"] if bf16 else []), check=True, capture_output=True)
            with open(os.path.join(run, "log.csv")) as f:
                lines = [l.split(",") for l in f.read().splitlines()[1:]]
            ours = statistics.median(float(l[5]) for l in lines[3:])
            info = subprocess.run([unmask, "info", os.path.join(run, "checkpoint.gguf")], capture_output=True,
                                  text=True, check=True).stdout
            params = int(info.split("parameters: ")[1].split()[0])
            model = os.path.join(tmp, "peer.gguf")
            vocab = next(l for l in info.splitlines() if l.startswith("model:")).split("vocab ")[1].split(",")[0]
            subprocess.run([unmask, "init", "--arch", "llama", "--vocab", vocab, "--out", model] + flags, check=True,
                           capture_output=True)
            peer = subprocess.run([sys.executable, __file__, "--peer", model, str(batch), str(seq_len),
                                   str(min(args.steps, 12)), "bf16" if bf16 else "f32", "--threads",
                                   str(args.threads)], check=True,
                                  capture_output=True, text=True, env=torch_env(args.threads)).stdout
            theirs = json.loads(peer.strip().splitlines()[-1])["tok_per_s"]
            d = int(info.split("d_model ")[1].split(",")[0])
            layers = int(info.split("layers ")[1].split(",")[0])
            embed = int(vocab) * d
            gflops = ours * flops_per_token(params - embed, d, layers, seq_len) / 1e9
            rows.append(f"| {name}, {params / 1e6:.1f}M params, {'bf16 GEMMs' if bf16 else 'f32'} | {ours:,.0f} | "
                        f"{theirs:,.0f} | "
                        f"{ours / theirs:.2f} | {gflops:.0f} |")
            print(rows[-1], flush=True)
    table = "\n".join(rows)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
