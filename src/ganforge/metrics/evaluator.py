"""One evaluation of a generator against a dataset: the metrics that apply to it, counted once across ranks.

Used by the training callback (:class:`ganforge.callbacks.GANMetrics`) and by ``python -m ganforge.evaluate``.
Samples come from a fixed noise batch drawn for all ``n`` samples from ``seed``; under data parallelism rank r
generates rows r, r + world, ... of it, so N ranks evaluate exactly the sample set one process would:
FID sums feature statistics over ranks (one all-reduce), KID, the probe and mode coverage all-gather.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ganforge.metrics.fid import (
    FeatureStats, MetricUnavailable, extract, get_extractor, inception_score, kernel_distance, metric_suffix, reference_stats,
)  # fmt: skip
from ganforge.metrics.jsd import generator_jsd_1d, probe_jsd
from ganforge.metrics.modes import digit_stack_counts, histogram_kl, mode_coverage
from ganforge.models.common import sample_latent

log = logging.getLogger("ganforge")

KNOWN = ("fid", "kid", "is", "jsd_probe", "modes", "jsd_true")


@dataclass
class Collective:
    """What the evaluation needs from torch.distributed; the defaults are a single process."""

    rank: int = 0
    world: int = 1
    all_gather: Callable[[Tensor], Tensor] = lambda t: t[None]  # -> [world, *t.shape]
    all_reduce: Callable[[Tensor], Tensor] = lambda t: t  # sum
    broadcast: Callable[[Any], Any] = lambda obj: obj  # rank 0's object on every rank

    @classmethod
    def of_trainer(cls, trainer) -> Collective:
        if trainer.world_size == 1:
            return cls()
        s = trainer.strategy

        def all_reduce(t: Tensor) -> Tensor:
            torch.distributed.all_reduce(t)
            return t

        return cls(trainer.global_rank, trainer.world_size, lambda t: s.all_gather(t), all_reduce, lambda o: s.broadcast(o, src=0))

    def gather_rows(self, local: Tensor) -> Tensor:
        """Undo the rank::world split: the rows in the order one process would hold them."""
        if self.world == 1:
            return local
        g = self.all_gather(local.contiguous())  # [world, n_local, ...]
        return g.transpose(0, 1).reshape(-1, *local.shape[1:])


@dataclass
class GANEvaluator:
    """Computes ``metrics`` (of fid, kid, is, jsd_probe, modes, jsd_true) that apply to the data; returns ``{name: value}``.

    Args:
        metrics: wanted metrics; fid/kid/is apply to images (is only with the Inception network, i.e. when
            ``inception`` is among ``extractors``), modes to mixture toys and Stacked MNIST, jsd_probe to everything,
            jsd_true to 1-D data of known density with a generator of 1-D latent (exact pushforward density).
        extractors: feature networks for fid/kid (see :mod:`ganforge.metrics.fid`); ``inception`` gives the
            standard ``fid``/``kid``, any other name ``fid_<name>``.
        n_samples: generated samples per evaluation (rounded down to a multiple of the world size).
        strict: raise when a wanted metric is unavailable (e.g. Inception weights offline) instead of
            warning once and going on without it.
        cache_dir: where reference statistics are cached (None: not cached).
    """

    metrics: Sequence[str] = KNOWN
    extractors: Sequence[str] = ("lenet",)
    n_samples: int = 2048
    seed: int = 0
    strict: bool = False
    cache_dir: str | None = None
    inception_weights: str | None = None
    kid_subsets: int = 50
    kid_subset_size: int = 1000
    probe_steps: int = 1000
    batch_size: int = 500
    _nets: dict[str, nn.Module] = field(default_factory=dict, repr=False)
    _unavailable: set[str] = field(default_factory=set, repr=False)
    _refs: dict[str, tuple] = field(default_factory=dict, repr=False)  # extractor -> reference (stats, features)

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in KNOWN]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}: choose from {', '.join(KNOWN)}")
        if int(self.n_samples) < 2:
            raise ValueError(f"metrics.n_samples must be >= 2, got {self.n_samples}")

    @property
    def unavailable(self) -> list[str]:
        """Feature networks that could not be loaded (their metrics were skipped, with a warning)."""
        return sorted(self._unavailable)

    def _extractor(self, name: str, device: torch.device) -> nn.Module | None:
        if name in self._unavailable:
            return None
        if name not in self._nets:
            try:
                kw = {"weights": self.inception_weights} if name == "inception" else {}
                self._nets[name] = get_extractor(name, **kw)
            except MetricUnavailable as e:
                if self.strict:
                    raise
                log.warning("metrics: skipping %s-based metrics: %s", name, e)
                self._unavailable.add(name)
                return None
        return self._nets[name].to(device)

    @torch.no_grad()
    def generate(self, generator: nn.Module, n: int, device: torch.device, coll: Collective) -> Tensor:
        """This rank's share of ``n`` samples from the fixed evaluation noise (generator in eval mode)."""
        g = torch.Generator(device=device).manual_seed(self.seed)
        z = sample_latent(generator, n, device=device, generator=g)[coll.rank :: coll.world]
        was = generator.training
        generator.eval()
        try:
            return torch.cat([generator(c).float() for c in z.split(self.batch_size)])
        finally:
            generator.train(was)

    def evaluate(self, generator: nn.Module, datamodule: Any, device: torch.device | str = "cpu", coll: Collective | None = None) -> dict[str, float]:
        coll, device = coll or Collective(), torch.device(device)
        n = (int(self.n_samples) // coll.world) * coll.world
        fake_local = self.generate(generator, n, device, coll)
        if not torch.isfinite(fake_local).all():
            raise ValueError("the generator produced NaN or inf samples: metrics cannot be computed (check the run's losses)")
        out: dict[str, float] = {}
        is_image = fake_local.dim() == 4
        if is_image and ({"fid", "kid", "is"} & set(self.metrics)):
            out.update(self._feature_metrics(fake_local, datamodule, device, coll))
        need_all = "jsd_probe" in self.metrics or ("modes" in self.metrics and hasattr(datamodule, "modes"))
        fake = coll.gather_rows(fake_local) if need_all else None
        if "modes" in self.metrics and hasattr(datamodule, "modes") and not is_image:
            cov = mode_coverage(fake.cpu(), datamodule.modes, datamodule.stds)
            out.update({"modes": float(cov.modes), "hq_frac": cov.hq_frac, "mode_kl": cov.mode_kl, "mode_width": cov.mode_width,
                        "mode_min_share": cov.min_share})  # fmt: skip
        if "modes" in self.metrics and is_image and getattr(datamodule, "n_modes", None) == 1000:  # Stacked MNIST
            lenet = self._extractor("lenet", device)
            if lenet is not None:
                counts = coll.all_reduce(digit_stack_counts(fake_local, lenet.net).to(device))
                out.update({"modes": float((counts > 0).sum()), "mode_kl": histogram_kl(counts.cpu())})
        if "jsd_true" in self.metrics and _true_jsd_applies(generator, datamodule):
            # exact up to binning: the 1-D data density is known, and so is G's pushforward of a 1-D latent
            lo = float(datamodule.modes.min() - 8 * datamodule.stds.max())
            hi = float(datamodule.modes.max() + 8 * datamodule.stds.max())
            out["jsd_true"] = generator_jsd_1d(generator, lambda x: datamodule.log_prob(x.float()).double(), lo, hi)
        if "jsd_probe" in self.metrics:
            real = datamodule.to_model_space(datamodule.val_data[0])
            m = min(len(real), len(fake))
            value = None
            if coll.rank == 0:
                est = probe_jsd(real[:m], fake[:m].cpu(), seed=self.seed, max_steps=self.probe_steps, device=device, n_boot=200)
                value = est.jsd
            out["jsd_probe"] = float(coll.broadcast(value))
        return out

    def _feature_metrics(self, fake_local: Tensor, datamodule: Any, device: torch.device, coll: Collective) -> dict[str, float]:
        out = {}
        real = datamodule.train_data[0]
        label = f"{getattr(datamodule, 'name', type(datamodule).__name__)}-train-{'x'.join(map(str, real.shape[1:]))}"
        want_fid_kid = bool({"fid", "kid"} & set(self.metrics))
        for name in self.extractors:
            want_is = name == "inception" and "is" in self.metrics
            if not (want_fid_kid or want_is):
                continue  # e.g. only IS wanted: no other network is loaded or run
            net = self._extractor(name, device)
            if net is None:
                continue
            if want_is:  # IS from the logits of the same forward pass
                feats, logits = extract(net, fake_local, self.batch_size, device, logits=True)
                out["is"] = inception_score(coll.gather_rows(logits).cpu())[0]
            else:
                feats = extract(net, fake_local, self.batch_size, device)
            if not want_fid_kid:
                continue
            if name not in self._refs:  # once per evaluator: the real data does not change during a run
                self._refs[name] = reference_stats(net, real, self.cache_dir, label, device=device)
            ref_stats, ref_feats = self._refs[name]
            suffix = metric_suffix(name)
            if "fid" in self.metrics:
                s = FeatureStats.of(feats)
                s.total, s.outer = coll.all_reduce(s.total), coll.all_reduce(s.outer)
                s.n = int(coll.all_reduce(torch.tensor(float(s.n), dtype=torch.float64, device=device)).item())
                if s.n <= net.feature_dim:
                    log.warning("metrics: fid%s from %d samples <= %d feature dims is strongly biased: raise metrics.n_samples", suffix, s.n, net.feature_dim)
                out[f"fid{suffix}"] = FeatureStats(s.n, s.total.cpu(), s.outer.cpu()).fid_to(ref_stats)
            if "kid" in self.metrics:
                all_feats = coll.gather_rows(feats)
                mean, _ = kernel_distance(ref_feats.to(device), all_feats, self.kid_subsets, self.kid_subset_size, seed=self.seed)
                out[f"kid{suffix}"] = mean
        return out


def _true_jsd_applies(generator: nn.Module, datamodule: Any) -> bool:
    return getattr(generator, "latent_dim", None) == 1 and hasattr(datamodule, "log_prob") and tuple(datamodule.shape) == (1,)

