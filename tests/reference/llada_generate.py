"""A PyTorch transcription of LLaDA's published generate() (semi-autoregressive low-confidence remasking), written
from the algorithm as described in the LLaDA paper and its public reference, plus Fast-dLLM's threshold rule.

model(x) here is a callable returning logits (T, V) for one sequence x (T,). With temperature 0 no randomness is
involved, so token ids can be compared exactly with `unmask generate --sampler llada`.

Besides the tokens, generate() returns the smallest margins met on the way, so that a caller can tell a real
disagreement from a near-tie that float32 and float64 may break differently:
  argmax  - the gap between the best and second-best logit at a committed position,
  select  - the relative gap between the last confidence selected and the best one left out at a step.
"""
import torch
import torch.nn.functional as F


def add_gumbel_noise(logits, temperature, generator=None):
    """Gumbel-max in float64: exp(logits) / (-log u)^temperature has the argmax of a tempered categorical draw."""
    if temperature == 0:
        return logits
    logits = logits.to(torch.float64)
    noise = torch.rand(logits.shape, dtype=torch.float64, generator=generator)
    return logits.exp() / (-torch.log(noise)) ** temperature


def num_transfer_tokens(masked, steps):
    """masked // steps per step, plus one for the first masked % steps steps."""
    base, rem = divmod(int(masked), steps)
    return [base + (1 if i < rem else 0) for i in range(steps)]


class Margins:
    def __init__(self):
        self.argmax = float("inf")
        self.select = float("inf")
        self.mask_chosen = False  # the argmax was the mask id itself (unmask never commits the mask id)

    def see_argmax(self, logits_rows):
        if logits_rows.shape[0] == 0:
            return
        top2 = logits_rows.topk(2, dim=-1).values
        self.argmax = min(self.argmax, float((top2[:, 0] - top2[:, 1]).min()))

    def see_select(self, conf_sorted, k):
        finite = conf_sorted[torch.isfinite(conf_sorted)]
        if 0 < k < finite.shape[0]:
            a, b = float(finite[k - 1]), float(finite[k])
            self.select = min(self.select, (a - b) / max(abs(a), 1e-300))


def transfer_index(logits, x, mask_index, mask_id, k, temperature, remasking, threshold, margins, generator=None):
    """The positions to commit at one step (LLaDA's fixed count k, or the threshold rule when threshold is set)."""
    x0 = torch.argmax(add_gumbel_noise(logits, temperature, generator), dim=-1)
    if remasking == "low_confidence":
        p = F.softmax(logits.to(torch.float64), dim=-1)
        x0_p = torch.gather(p, -1, x0[:, None])[:, 0]
    elif remasking == "random":
        x0_p = torch.rand(x0.shape, dtype=torch.float64, generator=generator)
    else:
        raise NotImplementedError(remasking)
    x0 = torch.where(mask_index, x0, x)
    confidence = torch.where(mask_index, x0_p, torch.tensor(-float("inf"), dtype=torch.float64))
    if threshold is not None:
        k = int(mask_index.sum())
    values, order = torch.sort(confidence, descending=True, stable=True)
    select = order[:k]
    if threshold is not None:
        keep = [0] + [i for i in range(1, k) if float(values[i]) >= threshold]
        finite = values[:k]
        margins.select = min(margins.select, float(((finite - threshold).abs() / threshold).min()))
        select = order[keep]
    else:
        margins.see_select(values, k)
    margins.see_argmax(logits[mask_index])
    transfer = torch.zeros_like(mask_index)
    transfer[select] = True
    margins.mask_chosen |= bool((x0[transfer] == mask_id).any())
    return x0, transfer


def generate(model, prompt, mask_id, steps=128, gen_length=128, block_length=128, temperature=0.0, cfg_scale=0.0,
             remasking="low_confidence", threshold=None, generator=None, cache=None, cached_model=None):
    """Returns (x, forward_passes, margins). threshold: Fast-dLLM's rule (loop until the block is done).
    cache: Fast-dLLM's "prefix" or "dual" cache, through cached_model(tokens, kv, start, window) -> logits (T, V)
    with kv a dict of each layer's K/V (llama_ref.Reference.forward's contract). At a block's first step a full
    pass keeps every position's K/V; after it the prefix cache runs x[block start:] over the K/V before the block,
    the dual cache runs only the block over the K/V of every other position, replacing the block's."""
    assert cache is None or (cached_model is not None and cfg_scale == 0), "a cache needs cached_model, no CFG"
    P = len(prompt)
    x = torch.full((P + gen_length,), mask_id, dtype=torch.long)
    x[:P] = torch.as_tensor(prompt)
    prompt_index = x != mask_id
    assert gen_length % block_length == 0, "block_length must divide gen_length"
    num_blocks = gen_length // block_length
    assert threshold is not None or steps % num_blocks == 0, "steps must be a multiple of the number of blocks"
    steps_per_block = steps // num_blocks
    margins, passes = Margins(), 0

    def logits_of(x):
        nonlocal passes
        passes += 1
        if cfg_scale > 0:
            un_x = x.clone()
            un_x[prompt_index] = mask_id
            cond, un = model(x), model(un_x)
            return un + (cfg_scale + 1) * (cond - un)
        return model(x)

    kv = {}

    def cached_logits(x, lo, hi, first):
        nonlocal passes, kv
        passes += 1
        if first:
            kv = {}
            out = cached_model(x.tolist(), kv, 0, False)
            if cache == "prefix":
                kv = {p: (k[:lo], v[:lo]) for p, (k, v) in kv.items()}
            return out
        end = len(x) if cache == "prefix" else hi
        out = cached_model(x[lo:end].tolist(), dict(kv) if cache == "prefix" else kv, lo, cache == "dual")
        logits = torch.zeros((len(x), out.shape[1]), dtype=out.dtype)  # rows outside [lo, end) are not read
        logits[lo:end] = out
        return logits

    for b in range(num_blocks):
        lo, hi = P + b * block_length, P + (b + 1) * block_length
        schedule = num_transfer_tokens(int((x[lo:hi] == mask_id).sum()), steps_per_block)
        i, first = 0, True
        while bool((x[lo:hi] == mask_id).any()):
            if threshold is None and i >= steps_per_block:
                break
            k = schedule[i] if threshold is None else None
            i += 1
            if k == 0:
                continue  # nothing to commit: the pass would change nothing
            mask_index = x == mask_id
            mask_index[hi:] = False
            logits = logits_of(x) if cache is None else cached_logits(x, lo, hi, first)
            first = False
            x0, transfer = transfer_index(logits, x, mask_index, mask_id, k, temperature, remasking, threshold, margins,
                                          generator)
            x[transfer] = x0[transfer]
    return x, passes, margins
