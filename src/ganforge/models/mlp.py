"""Fully connected G and D for low-dimensional data (1D/2D toy mixtures)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ganforge.models.common import apply_spectral_norm, check_latent_dist, check_pack, pack


def _flat_dim(shape: Sequence[int]) -> int:
    return int(math.prod(shape))


def normal_init(module: nn.Module, std: float | None) -> None:
    """Linear weights ~ N(0, std), biases 0 (PacGAN's and ALI's init: std 0.02); ``None`` keeps PyTorch's."""
    if std is None:
        return
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, float(std))
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Maxout(nn.Module):
    """Maxout (Goodfellow et al. 2013): a linear map to ``out * pieces`` units, then the max of each ``pieces``."""

    def __init__(self, in_features: int, out_features: int, pieces: int) -> None:
        super().__init__()
        if pieces < 2:
            raise ValueError(f"maxout needs at least 2 pieces, got {pieces}")
        self.out_features, self.pieces = int(out_features), int(pieces)
        self.linear = nn.Linear(in_features, self.out_features * self.pieces)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).unflatten(-1, (self.out_features, self.pieces)).amax(-1)


class MLPGenerator(nn.Module):
    """z [B, latent_dim] -> x [B, *out_shape], unbounded output (raw data coordinates)."""

    def __init__(
        self,
        latent_dim: int,
        out_shape: Sequence[int],
        hidden: int = 128,
        layers: int = 3,
        batchnorm: bool = False,
        init_std: float | None = None,
        latent_dist: str = "normal",
    ) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.latent_dist = check_latent_dist(latent_dist)
        self.out_shape = tuple(int(s) for s in out_shape)
        blocks: list[nn.Module] = []
        width = self.latent_dim
        for _ in range(layers):
            blocks.append(nn.Linear(width, hidden))
            if batchnorm:
                blocks.append(nn.BatchNorm1d(hidden))
            blocks.append(nn.ReLU())
            width = hidden
        blocks.append(nn.Linear(width, _flat_dim(self.out_shape)))
        self.net = nn.Sequential(*blocks)
        normal_init(self.net, init_std)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).reshape(z.shape[0], *self.out_shape)


class FourierFeatures(nn.Module):
    """x [B, d] -> [sin 2πxW, cos 2πxW] [B, 2 * features], W [d, features] ~ N(0, scale²) drawn once and fixed (a
    buffer: saved with the weights). Random Fourier features (Tancik et al. 2020): an MLP fed raw low-dimensional
    coordinates learns high-frequency functions slowly, and a D that must pick out 0.05-wide modes from a blurred G
    is one (``benchmarks/d_spectral_bias.py``). ``scale`` is in cycles per data unit."""

    def __init__(self, in_features: int, features: int, scale: float) -> None:
        super().__init__()
        if isinstance(features, bool) or int(features) != features or features < 1:
            raise ValueError(f"fourier_features={features}: the number of random frequencies, an integer >= 1 (0 = off)")
        if not math.isfinite(float(scale)) or float(scale) <= 0:
            raise ValueError(f"fourier_scale={scale}: the frequencies' std in cycles per data unit, a number > 0")
        self.register_buffer("freqs", torch.randn(int(in_features), int(features)) * float(scale))
        self.out_features = 2 * int(features)

    def forward(self, x: Tensor) -> Tensor:
        phase = (2 * math.pi) * (x @ self.freqs)
        return torch.cat([phase.sin(), phase.cos()], dim=-1)


class MLPDiscriminator(nn.Module):
    """x [B, *in_shape] -> logits [B // pack]; LeakyReLU(0.2) hidden layers, or maxout units of
    ``maxout`` pieces each (PacGAN's toy D: 3 layers of 200 units x 5 pieces). With ``fourier_features=F`` each
    sample is first mapped to 2F random Fourier features (:class:`FourierFeatures`), then packed."""

    def __init__(
        self,
        in_shape: Sequence[int],
        hidden: int = 128,
        layers: int = 3,
        pack: int = 1,
        spectral_norm: bool = False,
        maxout: int = 1,
        init_std: float | None = None,
        fourier_features: int = 0,
        fourier_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.pack = check_pack(pack)
        self.fourier = FourierFeatures(_flat_dim(self.in_shape), fourier_features, fourier_scale) if fourier_features else None
        blocks: list[nn.Module] = []
        width = (self.fourier.out_features if self.fourier is not None else _flat_dim(self.in_shape)) * self.pack
        for _ in range(layers):
            blocks += [Maxout(width, hidden, maxout)] if maxout > 1 else [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        blocks.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*blocks)
        normal_init(self.net, init_std)
        if spectral_norm:
            apply_spectral_norm(self.net)

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], -1)
        if self.fourier is not None:
            x = self.fourier(x)
        return self.net(pack(x, self.pack)).squeeze(1)
