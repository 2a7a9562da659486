"""Self-speculation against AR and diffusion on one joint checkpoint, in one run (issue: diffusion faster than AR at
exactly AR's quality). For each weight type the model is converted to (f32, bf16, q8_0, q4_k_m) and each decoding:

  ar            AR with the KV cache (one pass per token)
  spec          self-speculation, verify and next draft fused in one pass (--sampler spec)
  spec-unfused  drafting and verifying in separate passes (--no-fuse)
  spec-adaptive fused, the draft length adapted to what the last round kept (--adaptive-draft; --draft-length the most)
  bd3           block diffusion over the causal cache (the model's draft block), one step per token
  spec-drafter  with --draft-model D: D (a diffusion model with the same tokenizer) drafts, the checkpoint verifies
  llada-dual    with --diffusion-model M: M (a bidirectional twin) with LLaDA's threshold 0.9 and the dual cache,
                blocks of 32 (Fast-dLLM's fastest configuration; its text is M's own, not AR's)

it reports tokens/s, forward passes, tokens per pass, accepted drafts per verify, and the weight bytes read per
generated token (the model's tensor bytes × passes / tokens: each pass reads every weight once), summed over the
prompts; and for spec, on how many prompts its greedy output equals AR's token for token (it must be all).

  /usr/bin/python3 bench/spec.py --unmask build/release/unmask --model joint.gguf --text heldout.txt \\
      [--prompts 8] [--gen 128] [--types f32,bf16,q8_0,q4_k_m] [--draft-length K] [--draft-model D]
      [--diffusion-model M] [--tokenizer T] [-t 2]

The drafter and the diffusion twin are converted to each weight type too; the weight bytes per token of spec-drafter
count both models' passes.

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
    ("spec-adaptive", ["--sampler", "spec", "--adaptive-draft"]),
    ("bd3", ["--sampler", "bd3"]),
]


def generate(unmask, model, prompt, gen, flags, threads):
    text = ["--prompt-tokens", prompt] if isinstance(prompt, TokenIds) else ["-p", prompt]
    cmd = [unmask, "generate", "-m", model] + text + ["-n", str(gen), "--json", "-t", str(threads)] + flags
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {res.stderr.strip()}")
    return json.loads(res.stdout)


class TokenIds(str):
    """A prompt already tokenized, "1,2,3" (for a model without a tokenizer)."""


def tokenized(unmask, tokenizer, prompts):
    out = []
    for p in prompts:
        res = subprocess.run([unmask, "tokenize", "-m", tokenizer, "-p", p], capture_output=True, text=True, check=True)
        out.append(TokenIds(",".join(res.stdout.split())))
    return out


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
    ap.add_argument("--model", required=True, help="a joint checkpoint (train --objective joint), or with "
                    "--draft-model any causal model (then only ar and spec-drafter run)")
    ap.add_argument("--text", required=True, help="text whose last 10%% gives the prompts")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--types", default="f32,bf16,q8_0,q4_k_m")
    ap.add_argument("--draft-length", type=int, default=0)
    ap.add_argument("--draft-model", help="a diffusion model with the checkpoint's tokenizer: the spec-drafter row")
    ap.add_argument("--diffusion-model", help="a bidirectional twin: the llada-dual row")
    ap.add_argument("--tokenizer", help="a model whose tokenizer encodes the prompts (for a model without one, such "
                    "as a random one from init --joint-block: its pass costs at a size not trained)")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    prompts = prompts_from(a.text, a.prompts)
    if a.tokenizer:
        prompts = tokenized(a.unmask, a.tokenizer, prompts)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for t in a.types.split(","):
            def typed(path, name):  # every model in type t (f32 too: a file may hold bf16)
                if path is None:
                    return path
                out = os.path.join(tmp, f"{name}-{t}.gguf")
                subprocess.run([a.unmask, "quantize", path, out, "--type", t], check=True, capture_output=True)
                return out
            model, drafter, twin = typed(a.model, "m"), typed(a.draft_model, "d"), typed(a.diffusion_model, "w")
            joint = "joint: draft block" in subprocess.run([a.unmask, "info", model], capture_output=True,
                                                           text=True).stdout
            configs = list(CONFIGS) if joint else CONFIGS[:1]  # a plain causal target: AR and the drafter alone
            if drafter:
                configs.append(("spec-drafter", ["--sampler", "spec", "--draft-model", drafter]))
            if twin:
                configs.append(("llada-dual", ["--sampler", "llada", "--threshold", "0.9", "--cache", "dual",
                                               "--block-length", "32"]))
            outputs = {}
            for name, flags in configs:
                if name.startswith("spec") and a.draft_length:
                    flags = flags + ["--draft-length", str(a.draft_length)]
                path = twin if name == "llada-dual" else model
                tot = {"tokens": 0, "seconds": 0.0, "passes": 0, "drafted": 0, "accepted": 0, "draft_passes": 0}
                outs = []
                for p in prompts:
                    r = generate(a.unmask, path, p, a.gen, flags, a.threads)
                    s = r["stats"]
                    tot["tokens"] += s["generated"]
                    tot["seconds"] += s["seconds_total"]
                    tot["passes"] += s["forward_passes"]
                    tot["drafted"] += s.get("drafted", 0)
                    tot["accepted"] += s.get("accepted", 0)
                    tot["draft_passes"] += s.get("draft_passes", 0)
                    outs.append(r["ids"])
                outputs[name] = outs
                verifies = max(tot["passes"], 1)
                read = tensor_bytes(path) * tot["passes"]
                if name == "spec-drafter":
                    read += tensor_bytes(drafter) * tot["draft_passes"]
                rows.append({"type": t, "decoding": name, "tokens": tot["tokens"], "seconds": tot["seconds"],
                             "tokens_per_s": tot["tokens"] / max(tot["seconds"], 1e-9), "passes": tot["passes"],
                             "draft_passes": tot["draft_passes"],
                             "tokens_per_pass": tot["tokens"] / verifies,
                             "accepted_per_verify": tot["accepted"] / verifies if name.startswith("spec") else None,
                             "acceptance": tot["accepted"] / tot["drafted"] if tot["drafted"] else None,
                             "weight_bytes_per_token": read / max(tot["tokens"], 1)})
            for r in rows:
                if r["type"] == t:
                    r["vs_ar"] = r["tokens_per_s"] / next(x["tokens_per_s"] for x in rows
                                                          if x["type"] == t and x["decoding"] == "ar")
                    if r["decoding"].startswith("spec"):
                        same = sum(o == g for o, g in zip(outputs[r["decoding"]], outputs["ar"]))
                        r["identical_to_ar"] = f"{same}/{len(prompts)}"
    extra = "".join(f"; {k} {v}" for k, v in (("drafter", a.draft_model), ("diffusion twin", a.diffusion_model)) if v)
    print(f"model {a.model}{extra}; {a.prompts} prompts × {a.gen} tokens; greedy; -t {a.threads}\n")
    print("| type | decoding | tokens/s | × AR | passes | tokens/pass | accepted/verify | acceptance | "
          "weight MB/token | greedy = AR |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        acc = f"{r['accepted_per_verify']:.2f}" if r["accepted_per_verify"] is not None else ""
        rate = f"{100 * r['acceptance']:.0f}%" if r["acceptance"] is not None else ""
        passes = f"{r['passes']} + {r['draft_passes']}" if r["draft_passes"] else f"{r['passes']}"
        print(f"| {r['type']} | {r['decoding']} | {r['tokens_per_s']:.1f} | {r['vs_ar']:.2f} | {passes} | "
              f"{r['tokens_per_pass']:.2f} | {acc} | {rate} | {r['weight_bytes_per_token'] / 1e6:.1f} | "
              f"{r.get('identical_to_ar', '')} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
