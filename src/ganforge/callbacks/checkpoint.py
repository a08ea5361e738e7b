"""Checkpoints that are never half-written, and that carry what is needed to rebuild the models."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO


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


class RunConfigInCheckpoint(L.Callback):
    """Stores the run's resolved config (plain containers) in every checkpoint under ``"ganforge"``.

    ``ganforge.sample`` and ``ganforge.evaluate`` rebuild the generator from it, so a checkpoint is
    self-contained; plain containers keep ``torch.load(weights_only=True)`` possible.
    """

    def __init__(self, config: dict[str, Any], data_shape: list[int]) -> None:
        self.config, self.data_shape = config, list(data_shape)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        from ganforge import __version__

        checkpoint["ganforge"] = {"config": self.config, "data_shape": self.data_shape, "version": __version__}
