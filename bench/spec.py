"""Self-speculation against AR and diffusion on one joint checkpoint, in one run (issue: diffusion faster than AR at
exactly AR's quality). For each weight type the model is converted to (f32, bf16, q8_0, q4_k_m) and each decoding:

  ar            AR with the KV cache (one pass per token)
  spec          self-speculation, verify and next draft fused in one pass (--sampler spec)
  spec-unfused  drafting and verifying in separate passes (--no-fuse)
  bd3           block diffusion over the causal cache (the model's draft block), one step per token

it reports tokens/s, forward passes, tokens per pass, accepted drafts per verify, and the weight bytes read per
generated token (the model's tensor bytes × passes / tokens: each pass reads every weight once), summed over the
prompts; and for spec, on how many prompts its greedy output equals AR's token for token (it must be all).

  /usr/bin/python3 bench/spec.py --unmask build/release/unmask --model joint.gguf --text heldout.txt \\
      [--prompts 8] [--gen 128] [--types f32,bf16,q8_0,q4_k_m] [--draft-length K] [-t 2]

Rows are ratios against AR measured in the same run (the machine is shared and noisy).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

CONFIGS = [
    ("ar", ["--sampler", "ar"]),
    ("spec", ["--sampler", "spec"]),
    ("spec-unfused", ["--sampler", "spec", "--no-fuse"]),
    ("bd3", ["--sampler", "bd3"]),
]


def generate(unmask, model, prompt, gen, flags, threads):
    cmd = [unmask, "generate", "-m", model, "-p", prompt, "-n", str(gen), "--json", "-t", str(threads)] + flags
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {res.stderr.strip()}")
    return json.loads(res.stdout)


def tensor_bytes(path):
    return os.path.getsize(path)  # the file: tensors and a small header, what a pass reads


def prompts_from(text_path, n, chars=120):
    with open(text_path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    text = text[len(text) * 9 // 10:]  # the held-out tail
    step = max(len(text) // (n + 1), chars)
    return [text[i * step:i * step + chars].strip() for i in range(n)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--unmask", required=True)
    ap.add_argument("--model", required=True, help="a joint checkpoint (train --objective joint)")
    ap.add_argument("--text", required=True, help="text whose last 10%% gives the prompts")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--types", default="f32,bf16,q8_0,q4_k_m")
    ap.add_argument("--draft-length", type=int, default=0)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    prompts = prompts_from(a.text, a.prompts)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for t in a.types.split(","):
            model = a.model
            if t != "f32":
                model = os.path.join(tmp, f"m-{t}.gguf")
                subprocess.run([a.unmask, "quantize", a.model, model, "--type", t], check=True, capture_output=True)
            size = tensor_bytes(model)
            outputs = {}
            for name, flags in CONFIGS:
                if name.startswith("spec") and a.draft_length:
                    flags = flags + ["--draft-length", str(a.draft_length)]
                tot = {"tokens": 0, "seconds": 0.0, "passes": 0, "drafted": 0, "accepted": 0}
                outs = []
                for p in prompts:
                    r = generate(a.unmask, model, p, a.gen, flags, a.threads)
                    s = r["stats"]
                    tot["tokens"] += s["generated"]
                    tot["seconds"] += s["seconds_total"]
                    tot["passes"] += s["forward_passes"]
                    tot["drafted"] += s.get("drafted", 0)
                    tot["accepted"] += s.get("accepted", 0)
                    outs.append(r["ids"])
                outputs[name] = outs
                verifies = max(tot["passes"], 1)
                rows.append({"type": t, "decoding": name, "tokens": tot["tokens"], "seconds": tot["seconds"],
                             "tokens_per_s": tot["tokens"] / max(tot["seconds"], 1e-9), "passes": tot["passes"],
                             "tokens_per_pass": tot["tokens"] / verifies,
                             "accepted_per_verify": tot["accepted"] / verifies if name.startswith("spec") else None,
                             "acceptance": tot["accepted"] / tot["drafted"] if tot["drafted"] else None,
                             "weight_bytes_per_token": size * tot["passes"] / max(tot["tokens"], 1)})
            for r in rows:
                if r["type"] == t:
                    r["vs_ar"] = r["tokens_per_s"] / next(x["tokens_per_s"] for x in rows
                                                          if x["type"] == t and x["decoding"] == "ar")
                    if r["decoding"].startswith("spec"):
                        same = sum(o == g for o, g in zip(outputs[r["decoding"]], outputs["ar"]))
                        r["identical_to_ar"] = f"{same}/{len(prompts)}"
    print(f"model {a.model}; {a.prompts} prompts × {a.gen} tokens; greedy; -t {a.threads}\n")
    print("| type | decoding | tokens/s | × AR | passes | tokens/pass | accepted/verify | acceptance | "
          "weight MB/token | greedy = AR |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        acc = f"{r['accepted_per_verify']:.2f}" if r["accepted_per_verify"] is not None else ""
        rate = f"{100 * r['acceptance']:.0f}%" if r["acceptance"] is not None else ""
        print(f"| {r['type']} | {r['decoding']} | {r['tokens_per_s']:.1f} | {r['vs_ar']:.2f} | {r['passes']} | "
              f"{r['tokens_per_pass']:.2f} | {acc} | {rate} | {r['weight_bytes_per_token'] / 1e6:.1f} | "
              f"{r.get('identical_to_ar', '')} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
