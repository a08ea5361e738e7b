"""Fréchet distance (FID), kernel distance (KID) and the Inception Score (IS) on features from named extractors,
with cached reference statistics.

Extractors live in a registry (the torch-fidelity pattern). Metric keys carry the extractor's name:

- ``inception``: torch-fidelity's ``inception-v3-compat`` (the TF-FID network, pool3 2048-d features). Only this
  one gives numbers comparable with published FID/KID/IS, so only it is logged as ``val/fid`` / ``val/kid`` /
  ``val/is`` (IS from its 1008 logits, computed in the same forward pass as the features). Offline
  it needs a local weights file (``metrics.inception_weights`` or ``$GANFORGE_INCEPTION_WEIGHTS``, or the file
  in torch hub's cache); without one it raises :class:`MetricUnavailable` and is never replaced by another net.
- ``lenet``: a LeNet-5 classifier trained by ganforge on digits + MNIST (``python -m ganforge.metrics.train_lenet``),
  84-d penultimate features, logged as ``val/fid_lenet`` / ``val/kid_lenet``: for grey digit-like images only,
  and not comparable with Inception FID.

Images enter as float NCHW in [-1, 1] (ganforge's model space); each extractor converts as it needs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

log = logging.getLogger("ganforge")

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed here (e.g. Inception weights offline); the message says how to enable it."""


# ----------------------------------------------------------------------------- the math
def frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """||mu1 - mu2||^2 + tr(C1) + tr(C2) - 2 tr((C1 C2)^(1/2)), in float64.

    tr((C1 C2)^(1/2)) = sum of sqrt(eigenvalues of C1^(1/2) C2 C1^(1/2)), a symmetric PSD matrix, so this
    needs two symmetric eigendecompositions and no complex ``sqrtm`` (which is slow and can return
    imaginary parts on near-singular covariances).
    """
    mu1, mu2, cov1, cov2 = (t.double() for t in (mu1, mu2, cov1, cov2))
    w, v = torch.linalg.eigh(cov1)
    s1 = (v * w.clamp_min(0).sqrt()) @ v.T
    m = s1 @ cov2 @ s1
    tr_covmean = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()
    diff = mu1 - mu2
    return float(diff @ diff + cov1.trace() + cov2.trace() - 2 * tr_covmean)


@dataclass
class FeatureStats:
    """Running sums of features (float64), so shares from several ranks add up to the whole set exactly once."""

    n: int
    total: Tensor  # [F]
    outer: Tensor  # [F, F], sum of f f^T

    @classmethod
    def empty(cls, dim: int, device: torch.device | str = "cpu") -> FeatureStats:
        z = torch.zeros(dim, dtype=torch.float64, device=device)
        return cls(0, z, torch.zeros(dim, dim, dtype=torch.float64, device=device))

    @classmethod
    def of(cls, features: Tensor) -> FeatureStats:
        s = cls.empty(features.shape[1], features.device)
        s.update(features)
        return s

    def update(self, features: Tensor) -> None:
        f = features.double()
        self.n += f.shape[0]
        self.total += f.sum(0)
        self.outer += f.T @ f

    @property
    def mean(self) -> Tensor:
        return self.total / self.n

    @property
    def cov(self) -> Tensor:
        mu = self.mean
        return (self.outer - self.n * torch.outer(mu, mu)) / (self.n - 1)

    def fid_to(self, other: FeatureStats) -> float:
        return frechet_distance(self.mean, self.cov, other.mean, other.cov)

    def to_dict(self) -> dict:
        return {"n": self.n, "total": self.total.cpu(), "outer": self.outer.cpu()}

    @classmethod
    def from_dict(cls, d: dict) -> FeatureStats:
        return cls(int(d["n"]), d["total"], d["outer"])


def kernel_distance(f1: Tensor, f2: Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel (x.y / d + 1)^3, averaged
    over random subsets; returns (mean, std over subsets). ``subset_size`` shrinks to the smaller set."""
    x, y = f1.double(), f2.double()
    d = x.shape[1]
    m = min(subset_size, len(x), len(y))
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(x)} and {len(y)}")
    g = torch.Generator().manual_seed(seed)
    vals = torch.empty(subsets, dtype=torch.float64)
    for i in range(subsets):
        a = x[torch.randperm(len(x), generator=g)[:m].to(x.device)]
        b = y[torch.randperm(len(y), generator=g)[:m].to(y.device)]
        kxx, kyy, kxy = ((a @ a.T) / d + 1) ** 3, ((b @ b.T) / d + 1) ** 3, ((a @ b.T) / d + 1) ** 3
        vals[i] = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1)) - 2 * kxy.mean()
    return float(vals.mean()), float(vals.std(unbiased=False))


def inception_score(logits: Tensor, splits: int = 10) -> tuple[float, float]:
    """IS (Salimans et al. 2016) = exp(E_x KL(p(y|x) || p(y))), p(y) the mean prediction of the split; returns the
    mean and std over ``splits`` consecutive equal parts, as torch-fidelity computes it (its sample shuffle left out:
    generated samples come in random order already). Standard only on the TF-FID Inception's 1008 logits."""
    if len(logits) < splits:
        raise ValueError(f"the inception score needs at least splits={splits} samples, got {len(logits)}")
    log_p = logits.double().log_softmax(1)
    n = len(log_p)
    scores = []
    for i in range(splits):
        lp = log_p[i * n // splits : (i + 1) * n // splits]
        p = lp.exp()
        kl = (p * (lp - p.mean(0, keepdim=True).log())).sum(1).mean()
        scores.append(float(kl.exp()))
    t = torch.tensor(scores, dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=False))


# ----------------------------------------------------------------------------- extractors
EXTRACTORS: dict[str, Callable[..., nn.Module]] = {}


def register_extractor(name: str) -> Callable:
    def deco(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        EXTRACTORS[name] = factory
        return factory

    return deco


def get_extractor(name: str, **kwargs) -> nn.Module:
    """A feature extractor by registry name, in eval mode with gradients off."""
    if name not in EXTRACTORS:
        raise ValueError(f"unknown feature extractor '{name}': registered are {', '.join(sorted(EXTRACTORS))}")
    return EXTRACTORS[name](**kwargs).eval().requires_grad_(False)


def metric_suffix(extractor: str) -> str:
    """'' for Inception (the standard metric: ``fid``), ``_<name>`` for every other network (``fid_lenet``)."""
    return "" if extractor == "inception" else f"_{extractor}"


class LeNet(nn.Module):
    """LeNet-5 on 32x32 grey images; ``features`` = the 84-d penultimate activations."""

    feature_dim = 84

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(84, n_classes)

    @staticmethod
    def prepare(x: Tensor) -> Tensor:
        """[-1, 1] images of any size and channel count -> grey 32x32."""
        if x.shape[1] == 3:
            x = x.mean(1, keepdim=True)
        elif x.shape[1] != 1:
            raise ValueError(f"lenet features take 1- or 3-channel images, got {x.shape[1]} channels")
        if x.shape[-2:] != (32, 32):
            x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
        return x

    def features(self, x: Tensor) -> Tensor:
        return self.body(self.prepare(x.float()))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class LeNetFeatures(nn.Module):
    name = "lenet"
    feature_dim = LeNet.feature_dim

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__()
        path = Path(weights) if weights else WEIGHTS_DIR / "lenet.pt"
        if not path.is_file():
            raise MetricUnavailable(
                f"lenet weights not found at {path}: regenerate them with `python -m ganforge.metrics.train_lenet --out {path}`"
            )
        blob = torch.load(path, map_location="cpu", weights_only=True)
        self.net = LeNet()
        self.net.load_state_dict(blob["state_dict"])
        self.fingerprint = hashlib.sha256(path.read_bytes()).hexdigest()[:16]

    def forward(self, x: Tensor) -> Tensor:
        return self.net.features(x)


def to_uint8(x: Tensor) -> Tensor:
    """Images in [-1, 1] -> uint8 0..255, rounded: the quantization the TF-FID Inception (and torch-fidelity's
    inputs) expects of generated samples."""
    return ((x.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


class InceptionFeatures(nn.Module):
    """torch-fidelity's TF-compatible InceptionV3, pool3 features (2048-d), on [-1, 1] images quantized to uint8."""

    name = "inception"
    feature_dim = 2048
    URL_FILE = "weights-inception-2015-12-05-6726825d.pth"

    def __init__(self, weights: str | Path | None = None) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, FeatureExtractorInceptionV3

        path = weights or os.environ.get("GANFORGE_INCEPTION_WEIGHTS")
        hub = Path(torch.hub.get_dir()) / "checkpoints" / self.URL_FILE
        if path and not Path(path).is_file():
            raise MetricUnavailable(f"Inception weights file {path} does not exist: fix metrics.inception_weights / GANFORGE_INCEPTION_WEIGHTS")
        if not path and hub.is_file():
            path = str(hub)
        try:
            self.net = FeatureExtractorInceptionV3(
                "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=path, verbose=False
            )
        except Exception as e:  # offline: urllib's URLError, socket errors, ...
            raise MetricUnavailable(
                f"the Inception weights for FID/KID could not be downloaded ({type(e).__name__}); offline, fetch "
                f"{URL_INCEPTION_V3} on a connected machine and set metrics.inception_weights=PATH "
                "(or GANFORGE_INCEPTION_WEIGHTS)"
            ) from None
        self.fingerprint = "tf-inception-2015-12-05" if not path else hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """pool3 features [N, 2048] and the 1008 class logits (for IS) of one forward pass."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        features, logits = self.net(to_uint8(x))
        return features, logits

    def forward(self, x: Tensor) -> Tensor:
        return self.features_and_logits(x)[0]


register_extractor("lenet")(LeNetFeatures)
register_extractor("inception")(InceptionFeatures)


@torch.no_grad()
def extract(
    extractor: nn.Module, images: Tensor, batch_size: int = 500, device: torch.device | str | None = None, logits: bool = False
) -> Tensor | tuple[Tensor, Tensor]:
    """Features [N, F] of images [N, C, H, W] in [-1, 1] (or uint8 0..255), batched, no grad, on ``device``;
    with ``logits=True`` also the class logits of the same pass (extractors with ``features_and_logits``)."""
    dev = torch.device(device) if device is not None else next(extractor.parameters()).device
    feats, outs = [], []
    for chunk in images.split(batch_size):
        chunk = chunk.to(dev, non_blocking=True)
        if chunk.dtype == torch.uint8:
            chunk = chunk.float().div_(127.5).sub_(1.0)
        if logits:
            f, lg = extractor.features_and_logits(chunk)
            outs.append(lg.float())
        else:
            f = extractor(chunk)
        feats.append(f.float())
    return (torch.cat(feats), torch.cat(outs)) if logits else torch.cat(feats)


class ImageTensorDataset(torch.utils.data.Dataset):
    """A uint8 image tensor [N, 3, H, W] as the map-style dataset of tensors that torch-fidelity's
    ``calculate_metrics(input1=..., input2=...)`` takes: to cross-check ganforge's numbers with it."""

    def __init__(self, images: Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Tensor:
        return self.images[i]


# ----------------------------------------------------------------------------- reference statistics
def data_fingerprint(x: Tensor) -> str:
    """A content hash of a data tensor (shape, dtype and bytes): any change of dataset, split or resolution changes it."""
    h = hashlib.sha256(f"{list(x.shape)}{x.dtype}".encode())
    h.update(x.contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def reference_stats(
    extractor: nn.Module, images: Tensor, cache_dir: str | Path | None, label: str, device: torch.device | str | None = None
) -> tuple[FeatureStats, Tensor]:
    """Feature statistics (and features) of the real ``images``, cached in ``cache_dir`` under a file named by
    ``label`` (e.g. ``digits-train-32``), the extractor and the content hashes of data and weights, so a change
    to any of them computes anew. Returns (stats, features); features are cached too (KID needs them)."""
    key = {"label": label, "extractor": extractor.name, "weights": extractor.fingerprint, "data": data_fingerprint(images)}
    path = None
    if cache_dir is not None:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
        path = Path(cache_dir) / "fid_stats" / f"{label}-{extractor.name}-{digest}.pt"
        if path.is_file():
            blob = torch.load(path, map_location="cpu", weights_only=True)
            if blob.get("key") == key:
                return FeatureStats.from_dict(blob["stats"]), blob["features"]
    feats = extract(extractor, images, device=device).cpu()
    stats = FeatureStats.of(feats)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        torch.save({"key": key, "stats": stats.to_dict(), "features": feats}, tmp)
        tmp.replace(path)  # atomic: a concurrent job never reads half a file
        log.info("reference statistics for %s with %s cached at %s", label, extractor.name, path)
    return stats, feats
