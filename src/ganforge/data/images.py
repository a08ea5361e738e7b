"""Small image datasets that ship offline. Images are uint8 [N, C, R, R], scaled to [-1, 1] per batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganforge.data.base import InMemoryDataModule


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed train/validation split (independent of the training seed, so runs share it)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(n * val_fraction)))
    return perm[n_val:], perm[:n_val]


class DigitsDataModule(InMemoryDataModule):
    """scikit-learn's 1,797 handwritten 8x8 digits (UCI), upsampled bilinearly to ``resolution``.

    The offline default: it ships with scikit-learn, so nothing is downloaded.
    """

    kind = "image"

    def __init__(self, resolution: int = 32, val_fraction: float = 0.1, split_seed: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.resolution = int(resolution)
        if self.resolution < 8:
            raise ValueError(f"dataset.resolution must be >= 8 (digits are 8x8), got {resolution}")
        self.shape = (1, self.resolution, self.resolution)
        self.val_fraction, self.split_seed = float(val_fraction), int(split_seed)

    def build(self):
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = torch.from_numpy(digits.images).float().div(16.0).unsqueeze(1)  # [N, 1, 8, 8] in [0, 1]
        if self.resolution != 8:
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False)
        x = x.clamp(0, 1).mul(255).round().to(torch.uint8)
        y = torch.from_numpy(digits.target).long()
        tr, va = split_indices(len(y), self.val_fraction, self.split_seed)
        return (x[tr], y[tr]), (x[va], y[va])
