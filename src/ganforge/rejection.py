"""Keeping some of a generator's samples: by the discriminator's density ratio, or by the generator's Jacobian.

**Discriminator rejection** (Azadi et al. 2019, "Discriminator Rejection Sampling").

For a fixed G the optimal discriminator is D*(x) = p_data(x) / (p_data(x) + p_G(x)), so its logit is
log p_data(x)/p_G(x). Accepting a generated x with probability exp(logit(x) - M), M the largest logit,
turns samples of p_G into samples of p_data wherever D is optimal (and p_data/p_G is bounded by e^M): it
is the textbook rejection sampler with the ratio that D estimates. Where D is not optimal, the samples
move toward what D believes the data to be, no further.

A packed D (PacGAN) scores ``pack`` samples jointly. At the optimum its logit is the sum of the per-sample
log ratios, so scoring each candidate beside the same ``pack - 1`` real *companions* gives its own log ratio
plus one constant, which the normalisation by M removes.

**Jacobian truncation** (Tanielian et al. 2020, "Learning disconnected manifolds: a no GAN's land"). A
continuous G on a connected latent space cannot map onto disconnected modes without putting some mass
between them, and it does so where it stretches the latent space most: where ||dG/dz||_F is large. Dropping
the samples whose Jacobian norm is in the top ``reject_frac`` of the draw removes those bridges first. It
uses G alone (no data, no D), so it is a property of the trained generator that any sampler can apply.
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


def jacobian_norms(gen: torch.nn.Module, z: Tensor, batch_size: int = 4096) -> Tensor:
    """||dG/dz||_F at each row of ``z`` [N, latent_dim], exactly, since G maps each row of a batch on its own
    (as it does in eval mode): one backward pass per output coordinate (row j of every sample's Jacobian is the
    gradient of output j) when the output is smaller than the latent, as on the 2D toys, else one forward-mode
    pass per latent dimension (column i is the JVP along e_i)."""
    with torch.no_grad():
        out_dim = gen(z[:1]).numel()
    out = []
    for chunk in z.split(batch_size):
        if out_dim < z.shape[1]:
            with torch.enable_grad():
                zc = chunk.detach().requires_grad_(True)
                x = gen(zc).flatten(1)
                sq = sum(torch.autograd.grad(x[:, j].sum(), zc, retain_graph=True)[0].float().square().sum(1) for j in range(out_dim))
        else:
            sq = torch.zeros(len(chunk), dtype=torch.float32, device=z.device)
            for e in torch.eye(z.shape[1], dtype=z.dtype, device=z.device):
                _, col = torch.func.jvp(gen, (chunk,), (e.expand_as(chunk),))
                sq += col.float().flatten(1).square().sum(1)
        out.append(sq.detach().sqrt())
    return torch.cat(out)


def jacobian_threshold(norms: Tensor, reject_frac: float) -> float:
    """The (1 - reject_frac) quantile of ``norms``: the largest Jacobian norm kept (``norms <= it`` keeps all
    but ``reject_frac`` of them; 0 keeps every one)."""
    if not 0.0 <= reject_frac < 1.0:
        raise ValueError(f"reject_frac must be in [0, 1), got {reject_frac}")
    if not torch.isfinite(norms).all():
        raise ValueError(f"{int((~torch.isfinite(norms)).sum())} of {len(norms)} Jacobian norms are NaN or inf: the generator's output is not finite")
    return float(torch.quantile(norms.double(), 1.0 - reject_frac))


CALIBRATION_SEED = 20200712  # the noise that sets a generator's truncation threshold, apart from any sampling seed


def calibration_norms(gen: torch.nn.Module, n: int = 100_000, device: str = "cpu") -> Tensor:
    """||dG/dz|| at ``n`` draws of the fixed calibration noise: the distribution thresholds are read from."""
    from ganforge.models.common import sample_latent

    z = sample_latent(gen, n, generator=torch.Generator(device=device).manual_seed(CALIBRATION_SEED), device=device)
    return jacobian_norms(gen, z)


def calibrate_jacobian_threshold(gen: torch.nn.Module, reject_frac: float, n: int = 100_000, device: str = "cpu") -> float:
    """The Jacobian norm above which ``reject_frac`` of ``gen``'s samples lie, read off ``n`` draws from a fixed
    calibration noise: a property of the generator, the same whatever seed its samples are then drawn with.
    For several fractions, compute :func:`calibration_norms` once and take :func:`jacobian_threshold` of each."""
    return jacobian_threshold(calibration_norms(gen, n, device), reject_frac)
