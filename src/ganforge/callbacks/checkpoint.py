"""Checkpoints that are never half-written, and that carry what is needed to rebuild the models."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temporary file in the target directory, fsync, then ``os.replace``.

    ``os.replace`` is atomic on POSIX and Windows, so a crash (or SIGKILL, or a full disk) mid-save
    leaves the previous ``last.ckpt`` intact instead of a truncated file.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class IterationCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` whose ``{step}`` in file names is always the iterations done.

    ganforge logs a ``step`` value to put curves at "iterations done" (Lightning's default x lags one
    behind inside a training step); Lightning would otherwise name the file after that last logged value.
    """

    def _monitor_candidates(self, trainer: L.Trainer) -> dict[str, torch.Tensor]:
        candidates = super()._monitor_candidates(trainer)
        candidates["step"] = torch.tensor(trainer.global_step)
        return candidates


class RunConfigInCheckpoint(L.Callback):
    """Stores the run's resolved config (plain containers) in every checkpoint under ``"ganforge"``.

    ``ganforge.sample`` and ``ganforge.evaluate`` rebuild the generator from it, so a checkpoint is
    self-contained; plain containers keep ``torch.load(weights_only=True)`` possible. The wandb run id
    rides along (``"wandb_id"``), so a resumed run continues its dashboard run.
    """

    def __init__(self, config: dict[str, Any], data_shape: list[int]) -> None:
        self.config, self.data_shape = config, list(data_shape)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        from ganforge import __version__

        from ganforge.tracking import wandb_loggers

        checkpoint["ganforge"] = {"config": self.config, "data_shape": self.data_shape, "version": __version__}
        for lg in wandb_loggers(trainer.loggers):  # resuming from this checkpoint continues the same wandb run
            if lg.version:
                checkpoint["ganforge"]["wandb_id"] = str(lg.version)


class CheckpointOnSigterm(L.Callback):
    """On SIGTERM (SLURM pre-emption or time limit, ``scancel``, a spot instance going away), save
    ``last.ckpt`` at a whole iteration and exit; ``ckpt_path=last`` resumes it exactly.

    Lightning's own SIGTERM handler runs a collective inside the signal handler, which can pair with a
    gradient all-reduce of another rank and hang a DDP run. This callback replaces it, for the training
    loop, with one that only sets a flag and forwards the signal to the ranks this process launched. The
    ranks agree on the flag every ``check_every`` batches (one 1-element all-reduce; every batch on a
    single device), then all stop after the same batch, so the checkpoint holds one consistent
    state. SLURM's SIGUSR1 auto-requeue stays Lightning's (``SLURMEnvironment(auto_requeue=True)``).
    """

    def __init__(self, check_every: int = 10) -> None:
        self.check_every = max(1, int(check_every))
        self.saved: str | None = None
        self._flag = False
        self._launcher = None
        self._previous: Any = None
        self._batches = 0  # batches this process has trained: the same count on every rank

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flag, self._launcher, self._batches = False, trainer.strategy.launcher, 0
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        if not self._flag and self._launcher is not None:
            self._launcher.kill(signum)  # the other ranks of this node stop with us
        self._flag = True

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if trainer.world_size > 1:
            self._batches += 1
            if self._batches % self.check_every:
                return
            flag = torch.tensor([float(self._flag)], device=pl_module.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            stop = bool(flag.item())
        else:
            stop = self._flag
        if stop:  # Lightning raises SIGTERMException after this iteration, on every rank
            trainer._signal_connector.received_sigterm = True

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        from lightning.pytorch.callbacks import ModelCheckpoint
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if not isinstance(exception, SIGTERMException) or not trainer.training:
            return
        ckpt = trainer.checkpoint_callback
        dirpath = Path(ckpt.dirpath) if isinstance(ckpt, ModelCheckpoint) and ckpt.dirpath else Path(trainer.default_root_dir) / "checkpoints"
        path = dirpath / f"{ModelCheckpoint.CHECKPOINT_NAME_LAST}{ModelCheckpoint.FILE_EXTENSION}"
        if isinstance(ckpt, ModelCheckpoint):  # so that a resumed run keeps writing last.ckpt, not last-v1.ckpt
            ckpt.last_model_path = str(path)
        trainer.save_checkpoint(path)
        self.saved = str(path)
        if trainer.is_global_zero:
            print(f"SIGTERM: saved iteration {trainer.global_step} to {path}; resume with ckpt_path={path}", file=sys.stderr, flush=True)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous)
        self._previous = None
