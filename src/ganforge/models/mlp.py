"""Fully connected G and D for low-dimensional data (1D/2D toy mixtures)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from ganforge.models.common import apply_spectral_norm, check_pack, pack


def _flat_dim(shape: Sequence[int]) -> int:
    return int(math.prod(shape))


class MLPGenerator(nn.Module):
    """z [B, latent_dim] -> x [B, *out_shape], unbounded output (raw data coordinates)."""

    def __init__(
        self, latent_dim: int, out_shape: Sequence[int], hidden: int = 128, layers: int = 3, batchnorm: bool = False
    ) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
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

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).reshape(z.shape[0], *self.out_shape)


class MLPDiscriminator(nn.Module):
    """x [B, *in_shape] -> logits [B // pack]; LeakyReLU(0.2) hidden layers."""

    def __init__(
        self,
        in_shape: Sequence[int],
        hidden: int = 128,
        layers: int = 3,
        pack: int = 1,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.pack = check_pack(pack)
        blocks: list[nn.Module] = []
        width = _flat_dim(self.in_shape) * self.pack
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        blocks.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*blocks)
        if spectral_norm:
            apply_spectral_norm(self.net)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(pack(x.reshape(x.shape[0], -1), self.pack)).squeeze(1)
