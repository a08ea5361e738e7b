"""Evaluation metrics at every validation: FID/KID (images), mode coverage (toys), the probe JSD (all)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import lightning as L

from ganforge.metrics.evaluator import KNOWN, Collective, GANEvaluator

log = logging.getLogger("ganforge")


class GANMetrics(L.Callback):
    """After each validation pass, evaluate the sampling generator (the EMA copy when kept) and log
    ``val/<metric>``: ``val/fid_lenet``, ``val/kid_lenet`` (``val/fid``/``val/kid``/``val/is`` with Inception),
    ``val/modes``, ``val/hq_frac``, ``val/mode_kl``, ``val/mode_width``, ``val/mode_min_share`` (the emptiest mode over
    a fair share: a mode lost in training shows here while bridges still let ``val/modes`` count it), ``val/jsd_probe`` — those that apply to the data.

    Every rank generates its share of ``n_samples``; see :mod:`ganforge.metrics.evaluator`.
    """

    def __init__(
        self,
        metrics: Sequence[str] = KNOWN,
        extractors: Sequence[str] = ("lenet",),
        n_samples: int = 2048,
        seed: int = 0,
        strict: bool = False,
        cache_dir: str | None = None,
        inception_weights: str | None = None,
        kid_subsets: int = 50,
        kid_subset_size: int = 1000,
        probe_steps: int = 1000,
    ) -> None:
        self.evaluator = GANEvaluator(
            metrics=list(metrics), extractors=list(extractors), n_samples=n_samples, seed=seed, strict=strict, cache_dir=cache_dir,
            inception_weights=inception_weights, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, probe_steps=probe_steps,
        )  # fmt: skip
        self.last: dict[str, float] = {}

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.sanity_checking or not self.evaluator.metrics:
            return
        t0 = time.perf_counter()
        results = self.evaluator.evaluate(pl_module.sampling_generator, trainer.datamodule, pl_module.device, Collective.of_trainer(trainer))
        self.last = results
        if results:
            # identical on every rank already (all-reduced / gathered / broadcast): no sync_dist
            pl_module.log_dict({f"val/{k}": v for k, v in results.items()}, on_epoch=True)
            if trainer.is_global_zero:
                shown = ", ".join(f"{k} {v:.4g}" for k, v in results.items())
                log.info("iteration %d: %s (%.1fs)", trainer.global_step, shown, time.perf_counter() - t0)
