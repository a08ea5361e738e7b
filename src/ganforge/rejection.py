"""Rejection sampling with the discriminator's density ratio (Azadi et al. 2019, "Discriminator Rejection Sampling").

For a fixed G the optimal discriminator is D*(x) = p_data(x) / (p_data(x) + p_G(x)), so its logit is
log p_data(x)/p_G(x). Accepting a generated x with probability exp(logit(x) - M), M the largest logit,
turns samples of p_G into samples of p_data wherever D is optimal (and p_data/p_G is bounded by e^M): it
is the textbook rejection sampler with the ratio that D estimates. Where D is not optimal, the samples
move toward what D believes the data to be, no further.

A packed D (PacGAN) scores ``pack`` samples jointly. At the optimum its logit is the sum of the per-sample
log ratios, so scoring each candidate beside the same ``pack - 1`` real *companions* gives its own log ratio
plus one constant, which the normalisation by M removes.
"""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def density_ratio_logits(disc: torch.nn.Module, x: Tensor, companions: Tensor | None = None, batch_size: int = 4096) -> Tensor:
    """D's logit for each sample of ``x`` [N, ...]: log p_data/p_G up to one constant shared by all N.

    A packed D (``disc.pack`` > 1) needs ``companions``: ``pack - 1`` real samples [pack - 1, ...] that sit
    beside every candidate in its group."""
    p = int(getattr(disc, "pack", 1))
    if p > 1:
        if companions is None or companions.shape[0] != p - 1 or companions.shape[1:] != x.shape[1:]:
            got = None if companions is None else list(companions.shape)
            raise ValueError(f"a discriminator packed by {p} needs {p - 1} real companions shaped like the samples "
                             f"[{p - 1}, {', '.join(map(str, x.shape[1:]))}], got {got}")
    out = []
    for chunk in x.split(batch_size):
        if p > 1:
            comp = companions.to(chunk)[None].expand(len(chunk), *companions.shape)
            chunk = torch.cat([chunk[:, None], comp], 1).flatten(0, 1)  # [n * pack, ...], candidate first in each group
        out.append(disc(chunk).float().reshape(-1))
    return torch.cat(out)


def rejection_sample(x: Tensor, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """The samples of ``x`` kept, each with probability exp(logit - max logit), in their original order."""
    if logits.shape != x.shape[:1]:
        raise ValueError(f"need one logit per sample: {x.shape[0]} samples, logits {list(logits.shape)}")
    accept = torch.exp(logits - logits.max())
    keep = torch.rand(len(x), generator=generator, device=accept.device) < accept
    return x[keep.to(x.device)]
