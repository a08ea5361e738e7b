"""Fully connected G and D for low-dimensional data (1D/2D toy mixtures)."""

from __future__ import annotations

import math
from collections.abc import Sequence

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


class MLPDiscriminator(nn.Module):
    """x [B, *in_shape] -> logits [B // pack]; LeakyReLU(0.2) hidden layers, or maxout units of
    ``maxout`` pieces each (PacGAN's toy D: 3 layers of 200 units x 5 pieces)."""

    def __init__(
        self,
        in_shape: Sequence[int],
        hidden: int = 128,
        layers: int = 3,
        pack: int = 1,
        spectral_norm: bool = False,
        maxout: int = 1,
        init_std: float | None = None,
    ) -> None:
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.pack = check_pack(pack)
        blocks: list[nn.Module] = []
        width = _flat_dim(self.in_shape) * self.pack
        for _ in range(layers):
            blocks += [Maxout(width, hidden, maxout)] if maxout > 1 else [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        blocks.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*blocks)
        normal_init(self.net, init_std)
        if spectral_norm:
            apply_spectral_norm(self.net)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(pack(x.reshape(x.shape[0], -1), self.pack)).squeeze(1)
