"""A PyTorch transcription of Dream's diffusion_generate (written from the algorithm of the Dream 7B release):
time grid linspace(1, eps, steps + 1), logits shifted right by one (position i predicted from row i - 1), and per
step either `origin` or a confidence order (maskgit_plus, topk_margin, entropy) revealing
int(num_mask * (1 - s / t)) positions, every remaining one at the last step.

model(x) returns logits (T, V) for one sequence x (T,). With temperature 0 and alg_temp 0 nothing is random.
Returns (x, forward_passes, margins) like llada_generate.generate.
"""
import torch
import torch.nn.functional as F

from llada_generate import Margins


def top_p_logits(logits, top_p):
    sorted_logits, sorted_indices = torch.sort(logits, descending=True)
    cumulative = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
    remove = cumulative > top_p
    remove[..., 1:] = remove[..., :-1].clone()
    remove[..., 0] = False
    mask = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, sorted_indices, remove)
    return logits.masked_fill(mask, torch.finfo(logits.dtype).min)


def top_k_logits(logits, top_k):
    kth = torch.topk(logits, min(top_k, logits.size(-1)))[0][..., -1, None]
    return logits.masked_fill(logits < kth, torch.finfo(logits.dtype).min)


def sample_tokens(logits, temperature=0.0, top_p=None, top_k=None, margin=False, neg_entropy=False):
    if temperature > 0:
        logits = logits / temperature
    if top_p is not None and top_p < 1:
        logits = top_p_logits(logits, top_p)
    if top_k is not None:
        logits = top_k_logits(logits, top_k)
    probs = torch.softmax(logits, dim=-1)
    if temperature > 0:
        x0 = torch.distributions.Categorical(probs=probs).sample()
        confidence = torch.gather(probs, -1, x0[:, None])[:, 0]
    else:
        confidence, x0 = probs.max(dim=-1)
    if margin:
        top2 = torch.sort(probs, dim=-1, descending=True)[0]
        confidence = top2[:, 0] - top2[:, 1]
    if neg_entropy:
        confidence = torch.sum(probs * torch.log(probs + 1e-10), dim=-1)
    return confidence, x0


def generate(model, prompt, mask_id, gen_length, steps, eps=1e-3, alg="entropy", temperature=0.0, top_p=None,
             top_k=None):
    P = len(prompt)
    x = torch.full((P + gen_length,), mask_id, dtype=torch.long)
    x[:P] = torch.as_tensor(prompt)
    timesteps = torch.linspace(1, eps, steps + 1)
    margins, passes = Margins(), 0
    for i in range(steps):
        mask_index = x == mask_id
        num_mask = mask_index.sum() / 1  # a float32 tensor, as in the reference (sum / batch size)
        number = int(num_mask * (1 - timesteps[i + 1] / timesteps[i])) if i < steps - 1 else int(num_mask)
        if number == 0:
            continue  # nothing would be revealed: the pass changes nothing
        passes += 1
        logits = model(x)
        logits = torch.cat([logits[:1], logits[:-1]], dim=0)
        mask_logits = logits[mask_index]
        margins.see_argmax(mask_logits)
        confidence, x0 = sample_tokens(mask_logits, temperature, top_p, top_k, margin=alg == "topk_margin",
                                       neg_entropy=alg == "entropy")
        full = torch.full(x.shape, -float("inf"), dtype=confidence.dtype)
        full[mask_index] = confidence
        values, order = torch.sort(full, descending=True, stable=True)
        margins.see_select(values, number)
        select = order[:number]
        x_ = torch.full_like(x, mask_id)
        x_[mask_index] = x0
        margins.mask_chosen |= bool((x_[select] == mask_id).any())
        x[select] = x_[select]
    return x, passes, margins
