"""Mode coverage on Gaussian-mixture toys, as in VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018).

A generated sample is *high quality* when it lies within ``threshold`` standard deviations of its nearest
mode (Mahalanobis distance with the mode's isotropic std; PacGAN's code: 3). A mode is *covered* when at
least ``min_count`` high-quality samples landed on it (the published protocol: 1, from 2,500 samples).
``mode_kl`` is KL(h || uniform) in nats, with h the histogram of the high-quality samples over modes
(PacGAN's "reverse KL"): 0 when every mode gets the same share, log K when all sit on one mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class ModeCoverage:
    modes: int  # modes covered
    n_modes: int
    hq_frac: float  # fraction of samples within `threshold` stds of some mode
    mode_kl: float  # KL(histogram of HQ samples over modes || uniform), nats; log K when no sample is HQ
    counts: list[int]  # HQ samples per mode

    def to_dict(self) -> dict:
        return {"modes": self.modes, "n_modes": self.n_modes, "hq_frac": self.hq_frac, "mode_kl": self.mode_kl, "counts": self.counts}


def mode_coverage(samples: Tensor, modes: Tensor, stds: Tensor | float, threshold: float = 3.0, min_count: int = 1) -> ModeCoverage:
    """Coverage statistics of ``samples`` [N, D] against mixture ``modes`` [K, D] with isotropic ``stds`` [K] (or one)."""
    x, mu = samples.double().cpu(), modes.double().cpu()
    if x.dim() != 2 or x.shape[1] != mu.shape[1]:
        raise ValueError(f"samples must be [N, {mu.shape[1]}] to compare with {mu.shape[0]} modes, got {list(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{int((~torch.isfinite(x)).any(1).sum())} of {len(x)} samples are NaN or inf")
    sd = torch.as_tensor(stds, dtype=torch.float64).expand(mu.shape[0])
    k = mu.shape[0]
    dist = torch.cdist(x, mu) / sd  # [N, K] distances in each mode's stds
    nearest_d, nearest = dist.min(1)
    hq = nearest_d < threshold
    counts = torch.bincount(nearest[hq], minlength=k)
    n_hq = int(hq.sum())
    if n_hq:
        h = counts.double() / n_hq
        nz = h > 0
        kl = float((h[nz] * (h[nz] * k).log()).sum())
    else:
        kl = math.log(k)
    return ModeCoverage(
        modes=int((counts >= min_count).sum()), n_modes=k, hq_frac=n_hq / len(x), mode_kl=kl, counts=counts.tolist()
    )
