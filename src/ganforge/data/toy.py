"""Toy mixtures with known densities: 2D ring and grid of Gaussians, and 1D Gaussian mixtures.

Samples are drawn once, from ``data_seed``, and kept in memory (train and validation sets are
independent draws). Coordinates are raw (not rescaled): what a generator must output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ganforge.data.base import InMemoryDataModule


def sample_isotropic_mixture(
    modes: Tensor, std: Tensor, weights: Tensor, n: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """n samples from sum_k w_k N(modes[k], std[k]^2 I); returns (x [n, D], component [n])."""
    comp = torch.multinomial(weights, n, replacement=True, generator=generator)
    x = modes[comp] + std[comp, None] * torch.randn(n, modes.shape[1], generator=generator)
    return x, comp


class MixtureDataModule(InMemoryDataModule):
    """A Gaussian mixture with isotropic components; exposes ``modes`` [K, D], ``stds`` [K], ``weights`` [K]."""

    kind = "vector"

    def __init__(
        self,
        modes: Tensor,
        stds: Tensor,
        weights: Tensor | None = None,
        n_train: int = 50_000,
        n_val: int = 10_000,
        data_seed: int = 1234,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.modes = modes.float()
        self.stds = stds.float().expand(self.modes.shape[0]).clone()
        w = torch.ones(self.modes.shape[0]) if weights is None else torch.as_tensor(weights, dtype=torch.float)
        if w.shape != (self.modes.shape[0],) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"weights must be {self.modes.shape[0]} non-negative numbers, got {w.tolist()}")
        self.weights = w / w.sum()
        self.shape = (self.modes.shape[1],)
        self.n_train, self.n_val, self.data_seed = int(n_train), int(n_val), int(data_seed)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        g = generator if generator is not None else torch.Generator().manual_seed(self.data_seed)
        return sample_isotropic_mixture(self.modes, self.stds, self.weights, n, g)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log density of the mixture at x [N, D] (nats)."""
        d = self.modes.shape[1]
        sq = (x[:, None, :] - self.modes[None]).pow(2).sum(-1)  # [N, K]
        var = self.stds.pow(2)
        log_comp = -0.5 * sq / var - 0.5 * d * torch.log(2 * math.pi * var)
        return torch.logsumexp(log_comp + self.weights.log(), dim=1)

    def build(self):
        g = torch.Generator().manual_seed(self.data_seed)
        train = self.sample(self.n_train, g)
        val = self.sample(self.n_val, g)
        return train, val


class Ring8DataModule(MixtureDataModule):
    """8 equal Gaussians on a circle (radius 2, std 0.02 by default), as in VEEGAN/PacGAN up to scale."""

    def __init__(self, n_modes: int = 8, radius: float = 2.0, std: float = 0.02, **kwargs) -> None:
        angles = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
        modes = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
        super().__init__(modes=modes, stds=torch.tensor([float(std)]), **kwargs)


class Grid25DataModule(MixtureDataModule):
    """side x side equal Gaussians on a grid of the given spacing, centred on 0 (5x5, spacing 2, std 0.05)."""

    def __init__(self, side: int = 5, spacing: float = 2.0, std: float = 0.05, **kwargs) -> None:
        coords = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
        modes = torch.cartesian_prod(coords, coords)
        super().__init__(modes=modes, stds=torch.tensor([float(std)]), **kwargs)


class Gaussian1DDataModule(MixtureDataModule):
    """A 1D Gaussian mixture (one component by default) with closed-form density, for theory checks."""

    def __init__(
        self, means: Sequence[float] = (0.0,), stds: Sequence[float] = (1.0,), weights: Sequence[float] | None = None, **kwargs
    ) -> None:
        means_t = torch.tensor([float(m) for m in means]).reshape(-1, 1)
        stds_t = torch.tensor([float(s) for s in stds])
        if stds_t.numel() not in (1, means_t.shape[0]) or (stds_t <= 0).any():
            raise ValueError(f"stds must be one positive number or one per mean, got {list(stds)}")
        super().__init__(modes=means_t, stds=stds_t, weights=None if weights is None else list(weights), **kwargs)
