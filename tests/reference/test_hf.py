"""Hugging Face folders: unmask opens them directly and converts them to GGUF, and both give the logits of the
independent PyTorch reference of each architecture in its HF layout (hf_ref.py).

The script builds tiny folders itself with numpy: config.json with each model's real keys, safetensors written by
hand (8-byte header length, JSON header, data; BF16 through torch), single or sharded with
model.safetensors.index.json, F32, F16 or BF16, the real tensor names, and a small byte-level BPE tokenizer.json with
tokenizer_config.json. For each folder:
  (a) `unmask forward -m DIR` against the reference,
  (b) `unmask convert DIR --type f32` and `unmask forward -m x.gguf` against the reference, with the same bound:
      the GGUF holds llama/llada's q/k permuted into adjacent pairs (RoPE NORM), qwen2/dream's as they are (NEOX),
  (c) the converted GGUF read by the GGUF reference (llama_ref.py, which applies RoPE in the GGUF architecture's
      layout) against the HF reference, both in float64: the converter's names, keys and permutation, checked
      without unmask's forward,
  (d) the converted GGUF's tokenizer encodes a text as the folder's tokenizer.json does, its pre-tokenizer named as
      llama.cpp names it (the folders use GPT-2's ByteLevel regex and the real Qwen2 and LLaMA-3 Split regexes),
  (e) for bf16 folders, `unmask convert` without --type (the folder's own type) against the reference with the
      folder's bf16 bound, and for qwen2/dream (nothing permuted) bit-identical to the folder's logits.
The bound is test_parity.py's: (2L + 1) · K · eps32 · max|logit| for f32 weights, plus for bf16 weights the
bf16 rounding terms (2L + 1) · 2^-8 / sqrt(K) + L · 2^-8 (see there). In (c) eps is float64's 2^-53.
A folder without tokenizer.json, or without one of its shards, is refused with one line naming the file.
Negative controls that can fail: the reference with adjacent-pair RoPE on the HF weights (what a GGUF without the
permutation computes) must differ from unmask's output on the folder and on the converted file by more than the
bound.
Run: /usr/bin/python3 tests/reference/test_hf.py --unmask build/release/unmask
"""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import main, run  # noqa: E402
from hf_ref import HfReference  # noqa: E402
from gguf_reader import read_gguf  # noqa: E402
from llama_ref import Reference  # noqa: E402

# name, HF architecture, sizes, options
CASES = [
    ("llada f32 MHA untied padded", "LLaDAModelLM",
     dict(d=64, layers=2, heads=4, kv=4, ffn=96, vocab=263, rows=272),
     dict(dtype="F32", shards=1, tied=False, pre="gpt-2")),
    ("llada bf16 GQA tied sharded", "LLaDAModelLM",
     dict(d=64, layers=2, heads=8, kv=2, ffn=80, vocab=263, rows=263),
     dict(dtype="BF16", shards=2, tied=True, pre="gpt-2")),
    ("dream f16 GQA q/k/v bias sharded", "DreamModel",
     dict(d=72, layers=2, heads=6, kv=2, ffn=100, vocab=280, rows=280),
     dict(dtype="F16", shards=3, tied=False, pre="qwen2")),
    ("llama f32 GQA tied head_dim 24", "LlamaForCausalLM",
     dict(d=64, layers=3, heads=4, kv=2, ffn=90, vocab=270, rows=270, head_dim=24),
     dict(dtype="F32", shards=1, tied=True, pre="llama-bpe")),
    ("qwen2 bf16 q/k/v bias untied", "Qwen2ForCausalLM",
     dict(d=48, layers=2, heads=4, kv=2, ffn=64, vocab=270, rows=270),
     dict(dtype="BF16", shards=1, tied=False, pre="qwen2")),
]
# The Split regexes of the real Qwen2 and LLaMA-3 tokenizer.json files (before a ByteLevel step without regex);
# gpt-2's is the ByteLevel step's own. convert must name each as llama.cpp does (tokenizer.ggml.pre).
PRE_REGEX = {
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
             r"\s*[\r\n]+|\s+(?!\S)|\s+",
    "llama-bpe": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                 r"\s*[\r\n]+|\s+(?!\S)|\s+",
}
SEQ_LEN = 29
PROBE_TEXT = "the cat in a hat, then the end 12345 I'VE it's\n\n\n  x<|endoftext|>"


# ---- writing a folder -------------------------------------------------------------------------------------------

def write_safetensors(path, tensors, dtype):
    """tensors: {name: float32 array}, written as F32, F16 or BF16 (rounded to nearest even; BF16 through torch)."""
    header, blobs, at = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a in tensors.items():
        if dtype == "BF16":
            raw = torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(torch.bfloat16).view(torch.int16)
            raw = raw.numpy().tobytes()
        else:
            raw = np.ascontiguousarray(a, np.float16 if dtype == "F16" else np.float32).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def hf_tensors(arch, s, tied, rng):
    """Random weights under the architecture's real names: matrices (out, in) ~ N(0, 1/in), norms ~ 1 + N(0, 0.1²)."""
    d, f, hd = s["d"], s["ffn"], s.get("head_dim", s["d"] // s["heads"])
    q, kv = s["heads"] * hd, s["kv"] * hd
    mat = lambda o, i: rng.normal(0, i ** -0.5, (o, i))  # noqa: E731
    norm = lambda n: 1 + rng.normal(0, 0.1, n)  # noqa: E731
    bias = lambda n: rng.normal(0, 0.1, n)  # noqa: E731
    t = {}
    if arch == "LLaDAModelLM":
        t["model.transformer.wte.weight"] = rng.normal(0, 1, (s["rows"], d))
        for l in range(s["layers"]):
            b = f"model.transformer.blocks.{l}."
            t |= {b + "attn_norm.weight": norm(d), b + "q_proj.weight": mat(q, d), b + "k_proj.weight": mat(kv, d),
                  b + "v_proj.weight": mat(kv, d), b + "attn_out.weight": mat(d, q), b + "ff_norm.weight": norm(d),
                  b + "ff_proj.weight": mat(f, d), b + "up_proj.weight": mat(f, d), b + "ff_out.weight": mat(d, f)}
        t["model.transformer.ln_f.weight"] = norm(d)
        if not tied:
            t["model.transformer.ff_out.weight"] = mat(s["rows"], d)
        return t
    t["model.embed_tokens.weight"] = rng.normal(0, 1, (s["rows"], d))
    for l in range(s["layers"]):
        b = f"model.layers.{l}."
        t |= {b + "input_layernorm.weight": norm(d), b + "self_attn.q_proj.weight": mat(q, d),
              b + "self_attn.k_proj.weight": mat(kv, d), b + "self_attn.v_proj.weight": mat(kv, d),
              b + "self_attn.o_proj.weight": mat(d, q), b + "post_attention_layernorm.weight": norm(d),
              b + "mlp.gate_proj.weight": mat(f, d), b + "mlp.up_proj.weight": mat(f, d),
              b + "mlp.down_proj.weight": mat(d, f)}
        if arch in ("DreamModel", "Qwen2ForCausalLM"):
            t |= {b + "self_attn.q_proj.bias": bias(q), b + "self_attn.k_proj.bias": bias(kv),
                  b + "self_attn.v_proj.bias": bias(kv)}
    t["model.norm.weight"] = norm(d)
    if not tied:
        t["lm_head.weight"] = mat(s["rows"], d)
    return t


def hf_config(arch, s, tied):
    """config.json with the keys the real checkpoints use (LLaDA-8B's; transformers' for the others)."""
    if arch == "LLaDAModelLM":
        return {"architectures": [arch], "model_type": "llada", "d_model": s["d"], "n_layers": s["layers"],
                "n_heads": s["heads"], "n_kv_heads": s["kv"], "mlp_hidden_size": s["ffn"], "mlp_ratio": 4,
                "vocab_size": s["vocab"], "embedding_size": s["rows"], "max_sequence_length": 4096,
                "rope_theta": 500000.0, "rms_norm_eps": 1e-5, "include_bias": False, "include_qkv_bias": False,
                "weight_tying": tied, "activation_type": "silu", "block_type": "llama", "layer_norm_type": "rms",
                "rope": True, "alibi": False, "input_emb_norm": False, "scale_logits": False,
                "attention_layer_norm": False, "block_group_size": 1, "mask_token_id": 262, "eos_token_id": 261,
                "pad_token_id": 261, "torch_dtype": "bfloat16"}
    c = {"architectures": [arch], "hidden_size": s["d"], "num_hidden_layers": s["layers"],
         "num_attention_heads": s["heads"], "num_key_value_heads": s["kv"], "intermediate_size": s["ffn"],
         "vocab_size": s["rows"], "max_position_embeddings": 2048, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
         "tie_word_embeddings": tied, "hidden_act": "silu", "rope_scaling": None, "bos_token_id": 261,
         "eos_token_id": [261], "torch_dtype": "float32"}
    if "head_dim" in s:
        c["head_dim"] = s["head_dim"]
    if arch == "DreamModel":
        c |= {"model_type": "Dream", "mask_token_id": 262, "use_sliding_window": False}
    return c


def bytes_to_unicode():
    """GPT-2's byte -> printable character table of byte-level BPE."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def write_tokenizer(folder, pre):
    """A byte-level BPE: 256 byte tokens, a few merges, <|endoftext|> (261) and <|mdm_mask|> (262) as specials,
    pre-tokenized as the tokenizer.json of the models that use `pre` are."""
    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "a")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    added = [{"id": 261, "content": "<|endoftext|>", "special": True},
             {"id": 262, "content": "<|mdm_mask|>", "special": True}]
    vocab |= {"in": 260}
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": pre == "gpt-2"}
    if pre != "gpt-2":
        split = {"type": "Split", "pattern": {"Regex": PRE_REGEX[pre]}, "behavior": "Isolated", "invert": False}
        byte_level = {"type": "Sequence", "pretokenizers": [split, byte_level]}
    tok = {"version": "1.0", "added_tokens": added, "pre_tokenizer": byte_level,
           "decoder": {"type": "ByteLevel"},
           "model": {"type": "BPE", "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges] + ["i n"]}}
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        json.dump(tok, f)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"eos_token": "<|endoftext|>", "add_bos_token": False,
                   "chat_template": "{% for m in messages %}{{ m['content'] }}<|endoftext|>{% endfor %}"}, f)


def write_folder(folder, arch, s, opts, seed):
    os.makedirs(folder)
    rng = np.random.default_rng(seed)
    tensors = hf_tensors(arch, s, opts["tied"], rng)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(hf_config(arch, s, opts["tied"]), f)
    write_tokenizer(folder, opts["pre"])
    n = opts["shards"]
    if n == 1:
        write_safetensors(os.path.join(folder, "model.safetensors"), tensors, opts["dtype"])
        return
    names, weight_map = list(tensors), {}
    for i in range(n):
        shard = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        part = names[i::n]
        write_safetensors(os.path.join(folder, shard), {k: tensors[k] for k in part}, opts["dtype"])
        weight_map |= {k: shard for k in part}
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)


# ---- checks -----------------------------------------------------------------------------------------------------

def bound_of(ref, want, T, bf16, eps=2.0 ** -24):
    ffn = max(v.shape[0] for k, v in ref.w.items() if k.endswith(("up_proj.weight",)))
    K = max(ref.d, ffn, T, ref.n_heads * ref.head_dim)
    stages = 2 * ref.n_layers + 1
    per_stage = K * eps + (2.0 ** -8 / np.sqrt(K) if bf16 else 0.0)
    return (stages * per_stage + (ref.n_layers * 2.0 ** -8 if bf16 else 0.0)) * np.abs(want).max()


def report(ok, what, err, bound):
    print(f"{'ok  ' if ok else 'FAIL'} {what:58s} max|diff| {err:.3e}  {'<=' if err <= bound else '>'} "
          f"bound {bound:.3e}")
    return ok


def unmask_logits(unmask, model, tokens, out, vocab):
    run([unmask, "forward", "-m", model, "--tokens", ",".join(map(str, tokens)), "--out", out])
    return np.fromfile(out, dtype=np.float32).reshape(len(tokens), vocab)


def reference_logits(ref, tokens, bf16, half_split=True):
    ref.half_split = half_split
    with torch.no_grad():
        return ref.forward(tokens, act_bf16=bf16).numpy()


def check_case(unmask, tmp, i, name, arch, s, opts):
    folder, gguf = os.path.join(tmp, f"hf{i}"), os.path.join(tmp, f"hf{i}.gguf")
    write_folder(folder, arch, s, opts, seed=10 + i)
    ref = HfReference(folder)
    tokens = np.random.default_rng(i).integers(0, s["rows"], SEQ_LEN).tolist()
    bf16 = opts["dtype"] == "BF16"
    results = []

    info = run([unmask, "info", folder])
    want_info = f"weights {opts['dtype'].lower()}"
    print(f"{'ok  ' if want_info in info else 'FAIL'} {name}: unmask info says '{want_info}'")
    results.append(want_info in info)

    got = unmask_logits(unmask, folder, tokens, os.path.join(tmp, f"a{i}.f32"), s["rows"])
    want = reference_logits(ref, tokens, bf16)
    bound = bound_of(ref, want, SEQ_LEN, bf16)
    err = np.abs(got - want).max()
    results.append(report(err <= bound and np.isfinite(got).all(), f"{name}: folder", err, bound))

    run([unmask, "convert", folder, "--out", gguf, "--type", "f32"])
    got_gguf = unmask_logits(unmask, gguf, tokens, os.path.join(tmp, f"b{i}.f32"), s["rows"])
    want32 = reference_logits(ref, tokens, False)  # f32 tensors now: no bf16 rounding of activations
    bound32 = bound_of(ref, want32, SEQ_LEN, False)
    err = np.abs(got_gguf - want32).max()
    results.append(report(err <= bound32 and np.isfinite(got_gguf).all(), f"{name}: converted f32 GGUF", err,
                          bound32))

    with torch.no_grad():
        gguf_ref = Reference(gguf).forward(tokens).numpy()
    ref.eps, ref.theta = float(np.float32(ref.eps)), float(np.float32(ref.theta))  # GGUF holds them as float32
    want64 = reference_logits(ref, tokens, False)
    bound64 = bound_of(ref, want64, SEQ_LEN, False, eps=2.0 ** -53)
    err = np.abs(gguf_ref - want64).max()
    results.append(report(err <= bound64, f"{name}: GGUF reference vs HF reference (float64)", err, bound64))

    if bf16:  # bf16 tensors stay bf16: the same arithmetic as the folder, q/k permuted for llama/llada
        gguf16 = os.path.join(tmp, f"hf{i}.bf16.gguf")
        run([unmask, "convert", folder, "--out", gguf16])  # without --type: the folder's own type
        got16 = unmask_logits(unmask, gguf16, tokens, os.path.join(tmp, f"c{i}.f32"), s["rows"])
        err = np.abs(got16 - want).max()
        results.append(report(err <= bound and np.isfinite(got16).all(), f"{name}: converted bf16 GGUF", err, bound))
        # Without the permutation (NEOX archs) the file holds the folder's bytes: the logits must be identical.
        same = np.abs(got16 - got).max()
        if arch in ("DreamModel", "Qwen2ForCausalLM"):
            print(f"{'ok  ' if same == 0 else 'FAIL'} {name}: converted bf16 GGUF vs folder max|diff| {same:.3e}")
            results.append(same == 0)

    text = ["--text", PROBE_TEXT, "--parse-special"]
    same = run([unmask, "tokenize", "-m", folder] + text) == run([unmask, "tokenize", "-m", gguf] + text)
    pre = read_gguf(gguf)[0]["tokenizer.ggml.pre"]
    print(f"{'ok  ' if same else 'FAIL'} {name}: converted tokenizer encodes as tokenizer.json")
    print(f"{'ok  ' if pre == opts['pre'] else 'FAIL'} {name}: tokenizer.ggml.pre '{pre}', expected '{opts['pre']}'")
    results += [same, pre == opts["pre"]]

    if i == 0:  # adjacent-pair RoPE on the HF weights: what a GGUF without the q/k permutation computes
        wrong = reference_logits(ref, tokens, bf16, half_split=False)
        for what, logits, b in (("folder", got, bound), ("converted", got_gguf, bound32)):
            err = np.abs(logits - wrong).max()
            caught = err > b
            print(f"{'ok  ' if caught else 'FAIL'} negative control ({what} vs unpermuted layout): max|diff| "
                  f"{err:.3e} {'>' if caught else '<='} bound {b:.3e}")
            results.append(caught)
    return results


def fails_with(cmd, want):
    """True when cmd exits with status 1 and one line on stderr holding `want`."""
    res = subprocess.run(cmd, capture_output=True, text=True)
    ok = res.returncode == 1 and want in res.stderr and res.stderr.count("\n") == 1
    print(f"{'ok  ' if ok else 'FAIL'} {os.path.basename(cmd[0])} {cmd[1]} rejects: {res.stderr.strip()}")
    return ok


def check_broken_folders(unmask, tmp):
    """A folder without its tokenizer, and a sharded one without a shard, are refused naming the missing file."""
    name, arch, s, opts = CASES[1]  # sharded
    folder, out = os.path.join(tmp, "broken"), os.path.join(tmp, "broken.gguf")
    write_folder(folder, arch, s, opts, seed=99)
    os.remove(os.path.join(folder, "tokenizer.json"))
    results = [fails_with([unmask, "convert", folder, "--out", out], "tokenizer.json: cannot open")]
    shard = os.path.join(folder, "model-00002-of-00002.safetensors")
    os.remove(shard)
    results.append(fails_with([unmask, "forward", "-m", folder, "--tokens", "1,2", "--out", out],
                              f"{shard}: cannot open"))
    left = os.path.exists(out)
    print(f"{'FAIL' if left else 'ok  '} no output file left behind")
    return results + [not left]


if __name__ == "__main__":
    main(lambda unmask, tmp: [r for i, c in enumerate(CASES) for r in check_case(unmask, tmp, i, *c)] +
         check_broken_folders(unmask, tmp))
