"""Pieces shared by the model families: the latent prior, DCGAN init, PacGAN packing, spectral norm."""

from __future__ import annotations

import torch
from torch import Tensor, nn

LATENT_DISTS = ("normal", "uniform")


def check_latent_dist(name: str) -> str:
    if name not in LATENT_DISTS:
        raise ValueError(f"model.generator.latent_dist must be one of {', '.join(LATENT_DISTS)}, got {name!r}")
    return name


def sample_latent(
    gen: nn.Module, n: int, *, generator: torch.Generator | None = None, device: torch.device | str | None = None
) -> Tensor:
    """z [n, gen.latent_dim] from the generator's prior: ``gen.latent_dist`` "normal" (N(0, I), the default for a
    generator without the attribute) or "uniform" (U(-1, 1)^d, as in DCGAN's and PacGAN's code)."""
    shape = (int(n), int(gen.latent_dim))
    if (bound := latent_bound(gen)) is not None:
        return torch.rand(shape, generator=generator, device=device).mul_(2 * bound).sub_(bound)
    return torch.randn(shape, generator=generator, device=device)


def latent_bound(gen: nn.Module) -> float | None:
    """Half the side of the cube the generator's prior fills: 1.0 for "uniform" (U(-1, 1)^d), None for the
    unbounded "normal" (the default for a generator without ``latent_dist``)."""
    return 1.0 if getattr(gen, "latent_dist", "normal") == "uniform" else None


def dcgan_init(module: nn.Module) -> None:
    """Radford et al. 2016: conv/linear weights ~ N(0, 0.02), norm scales ~ N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalization (Miyato et al. 2018) on every conv and linear layer of ``module``."""
    for name, child in module.named_children():
        if isinstance(child, (nn.Conv2d, nn.Linear)):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            apply_spectral_norm(child)
    return module


def pack(x: Tensor, pack_size: int) -> Tensor:
    """PacGAN (Lin et al. 2018): [B, C, ...] -> [B // pack, pack * C, ...], consecutive samples grouped.

    The discriminator then judges ``pack`` samples jointly, which penalizes a generator whose samples
    lack diversity.
    """
    if pack_size == 1:
        return x
    b = x.shape[0]
    if b % pack_size:
        raise ValueError(f"batch of {b} is not divisible by pack={pack_size}: use a batch size that is a multiple of pack")
    return x.reshape(b // pack_size, pack_size * x.shape[1], *x.shape[2:])


def check_pack(pack_size: int) -> int:
    if int(pack_size) < 1:
        raise ValueError(f"pack must be >= 1, got {pack_size}")
    return int(pack_size)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["apply_spectral_norm", "check_pack", "count_parameters", "dcgan_init", "pack"]
