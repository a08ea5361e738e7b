"""Pieces shared by the model families: DCGAN init, PacGAN packing, spectral norm."""

from __future__ import annotations

from torch import Tensor, nn


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
