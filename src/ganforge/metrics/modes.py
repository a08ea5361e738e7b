"""Mode coverage on Gaussian-mixture toys and Stacked MNIST, as in VEEGAN (Srivastava et al. 2017) and PacGAN
(Lin et al. 2018).

A generated sample is *high quality* when it lies within ``threshold`` standard deviations of its nearest
mode (Mahalanobis distance with the mode's isotropic std; PacGAN's code: 3). A mode is *covered* when at
least ``min_count`` high-quality samples landed on it (the published protocol: 1, from 2,500 samples).
``mode_kl`` is KL(h || uniform) in nats, with h the histogram of the high-quality samples over modes
(PacGAN's "reverse KL"): 0 when every mode gets the same share, log K when all sit on one mode.
``mode_width`` is what HQ cannot see: the RMS distance of the high-quality samples to their mode, over that of
the data's own samples within the same threshold (1: as spread as the data; below 1, modes drawn too narrow,
which HQ rewards: a perfect generator of a 2-d mixture scores 98.9% HQ at threshold 3, a point mass 100%).
``min_share`` is the emptiest mode's count over the mean count (1: balanced; 0: a mode with no sample). On a large
pool it tells a mode G still draws from one its samples only cross: the protocol counts a mode on one sample of
2,500, which a generator's bridge between two neighbours can supply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class ModeCoverage:
    modes: int  # modes covered
    n_modes: int
    hq_frac: float  # fraction of samples within `threshold` stds of some mode
    mode_kl: float  # KL(histogram of HQ samples over modes || uniform), nats; log K when no sample is HQ
    counts: list[int]  # HQ samples per mode
    mode_width: float = math.nan  # RMS distance of HQ samples to their mode / the data's (1 = as wide); NaN when none

    @property
    def min_share(self) -> float:
        """The emptiest mode's high-quality count over the mean count (1 = every mode its fair share); NaN when none."""
        total = sum(self.counts)
        return self.n_modes * min(self.counts) / total if total else math.nan

    def to_dict(self) -> dict:
        return {"modes": self.modes, "n_modes": self.n_modes, "hq_frac": self.hq_frac, "mode_kl": self.mode_kl,
                "mode_width": self.mode_width, "counts": self.counts}  # fmt: skip


def gaussian_rms_within(dim: int, threshold: float) -> float:
    """RMS distance to its mean, in stds, of an isotropic ``dim``-d Gaussian's samples within ``threshold`` stds.
    r^2 is chi^2 with ``dim`` degrees of freedom, so E[r^2 | r < t] = dim P(dim/2 + 1, t^2/2) / P(dim/2, t^2/2)
    with P the regularized lower incomplete gamma function."""
    a, x = torch.tensor(dim / 2, dtype=torch.float64), torch.tensor(threshold**2 / 2, dtype=torch.float64)
    return math.sqrt(dim * float(torch.special.gammainc(a + 1, x) / torch.special.gammainc(a, x)))


HQ_STDS = 3.0  # the protocol's high-quality radius: a sample within this many stds of its nearest mode


def mode_coverage(samples: Tensor, modes: Tensor, stds: Tensor | float, threshold: float = HQ_STDS, min_count: int = 1) -> ModeCoverage:
    """Coverage statistics of ``samples`` [N, D] against mixture ``modes`` [K, D] with isotropic ``stds`` [K] (or one)."""
    x, mu = samples.double().cpu(), modes.double().cpu()
    if x.dim() != 2 or x.shape[1] != mu.shape[1]:
        raise ValueError(f"samples must be [N, {mu.shape[1]}] to compare with {mu.shape[0]} modes, got {list(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{int((~torch.isfinite(x)).any(1).sum())} of {len(x)} samples are NaN or inf")
    k = mu.shape[0]
    nearest, nearest_d = nearest_modes(x, mu, stds)
    hq = nearest_d < threshold
    counts = torch.bincount(nearest[hq], minlength=k)
    n_hq = int(hq.sum())
    kl = histogram_kl(counts)
    width = float(nearest_d[hq].square().mean().sqrt()) / gaussian_rms_within(mu.shape[1], threshold) if n_hq else math.nan
    return ModeCoverage(
        modes=int((counts >= min_count).sum()), n_modes=k, hq_frac=n_hq / len(x), mode_kl=kl, counts=counts.tolist(), mode_width=width
    )


def nearest_modes(samples: Tensor, modes: Tensor, stds: Tensor | float) -> tuple[Tensor, Tensor]:
    """Each sample's nearest mode [N] and its distance [N] in that mode's standard deviations (high quality
    below the protocol's 3)."""
    mu = modes.to(samples.dtype)
    sd = torch.as_tensor(stds, dtype=samples.dtype).expand(mu.shape[0])
    dist = torch.cdist(samples, mu) / sd  # [N, K] distances in each mode's stds
    nearest_d, nearest = dist.min(1)
    return nearest, nearest_d


def interior_modes(modes: Tensor) -> Tensor:
    """[K] bool: the modes strictly inside the convex hull of all of them (on no face of it)."""
    from scipy.spatial import ConvexHull  # scikit-learn's dependency; only this needs it

    m = modes.double().numpy()
    if m.shape[1] == 1:  # a line: all but the two ends (Qhull needs 2 dimensions)
        return torch.from_numpy((m[:, 0] > m.min()) & (m[:, 0] < m.max()))
    eq = ConvexHull(m).equations  # [F, D + 1]: normal . x + offset <= 0 inside, = 0 on a face
    slack = m @ eq[:, :-1].T + eq[:, -1]
    return torch.from_numpy((slack < -1e-9 * abs(m).max()).all(1))


def histogram_kl(counts: Tensor) -> float:
    """KL(counts / total || uniform over len(counts)) in nats; log K when there are no counts."""
    k, n = counts.numel(), float(counts.sum())
    if n == 0:
        return math.log(k)
    h = counts.double() / n
    nz = h > 0
    return float((h[nz] * (h[nz] * k).log()).sum())


@torch.no_grad()
def digit_stack_counts(images: Tensor, classifier: nn.Module, batch_size: int = 1000) -> Tensor:
    """Stacked MNIST: how many of ``images`` [N, 3, H, W] (in [-1, 1]) fall on each of the 1,000 modes, each
    channel read as a digit by ``classifier`` (grey [B, 1, H, W] -> 10 logits); mode = 100 d_R + 10 d_G + d_B."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"stacked-MNIST modes need [N, 3, H, W] images, got {list(images.shape)}")
    digits = []
    for chunk in images.split(batch_size):
        logits = classifier(chunk.float().reshape(-1, 1, *chunk.shape[2:]))
        digits.append(logits.argmax(1).reshape(-1, 3))
    d = torch.cat(digits)
    return torch.bincount(d[:, 0] * 100 + d[:, 1] * 10 + d[:, 2], minlength=1000)
