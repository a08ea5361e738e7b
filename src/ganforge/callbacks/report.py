"""Write ``<run dir>/report.html`` when training ends (see :mod:`ganforge.report`)."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L

log = logging.getLogger("ganforge")


class RunReport(L.Callback):
    """At the end of training (also after an interruption that saved a checkpoint), flush the loggers
    and draw the report from the CSV metrics and sample pictures. Rank 0 only."""

    def __init__(self) -> None:
        self.path: Path | None = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.write(trainer)

    def write(self, trainer: L.Trainer) -> None:
        if not trainer.is_global_zero:
            return
        from ganforge.report import write_report

        for lg in trainer.loggers:  # the CSV logger buffers rows until its next flush
            lg.save()
        try:
            self.path = write_report(trainer.default_root_dir)
        except Exception as e:  # a report must never cost the run its checkpoint or exit status
            log.warning("report.html not written: %s: %s", type(e).__name__, e)
