"""Sample pictures from a fixed noise batch: image grids, 2D scatter plots, 1D histograms."""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import Tensor

from ganforge.models.common import sample_latent


class SamplePlotter(L.Callback):
    """Every ``every_n_iters`` iterations (and at the end), draw samples from the same fixed noise and
    save a picture to ``<run dir>/samples/iter_XXXXXX.png`` (plus ``latest.png``), and send it to the
    loggers that take images (TensorBoard, wandb).

    Images: an 8-wide grid. 2D data: generated points over the real data and its modes.
    1D data: a histogram of generated samples against the true density.
    """

    def __init__(self, every_n_iters: int = 500, n_images: int = 64, n_points: int = 2000, seed: int = 1234) -> None:
        self.every_n_iters, self.n_images, self.n_points, self.seed = int(every_n_iters), n_images, n_points, seed
        self.saved: list[Path] = []
        self._z: Tensor | None = None
        self._last_step: int | None = None  # the iteration last drawn, on every rank

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.every_n_iters > 0 and trainer.global_step % self.every_n_iters == 0:
            self.plot(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module) -> None:
        if self._last_step != trainer.global_step:  # the same decision on every rank (only rank 0 has `saved`)
            self.plot(trainer, pl_module)

    @torch.no_grad()
    def sample(self, pl_module) -> Tensor:
        dm_kind = getattr(pl_module.trainer.datamodule, "kind", "image")
        n = self.n_images if dm_kind == "image" else self.n_points
        if self._z is None or self._z.shape[0] != n:
            g = torch.Generator().manual_seed(self.seed)
            self._z = sample_latent(pl_module.generator, n, generator=g)
        gen = pl_module.sampling_generator
        was_training = gen.training
        gen.eval()
        try:
            return gen(self._z.to(pl_module.device)).float().cpu()
        finally:
            gen.train(was_training)

    def plot(self, trainer: L.Trainer, pl_module) -> Path | None:
        # every rank draws (a sharded generator's forward is a collective under FSDP); rank 0 writes
        x = self.sample(pl_module)
        self._last_step = trainer.global_step
        if not trainer.is_global_zero:
            return None
        out_dir = Path(trainer.default_root_dir) / "samples"
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"iter_{trainer.global_step:06d}.png"
        render(x, trainer.datamodule, path, title=f"iteration {trainer.global_step}")
        shutil.copyfile(path, out_dir / "latest.png")
        self.saved.append(path)
        _send_to_loggers(trainer, path)
        return path


def render(x: Tensor, datamodule, path: Path, title: str = "") -> None:
    """Write a picture of samples ``x`` (in data space) to ``path``."""
    if x.dim() == 4:
        import torchvision

        torchvision.utils.save_image(x, path, nrow=8, normalize=True, value_range=(-1, 1), padding=2)
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5) if x.shape[1] == 2 else (6, 3.5), dpi=100)
    if x.shape[1] == 2:
        if datamodule is not None and datamodule.val_data is not None:
            real = datamodule.val_data[0][: len(x)]
            ax.scatter(real[:, 0], real[:, 1], s=4, c="0.7", label="real")
        ax.scatter(x[:, 0], x[:, 1], s=4, c="tab:red", alpha=0.6, label="generated")
        if hasattr(datamodule, "modes"):
            m = datamodule.modes
            ax.scatter(m[:, 0], m[:, 1], marker="x", c="k", s=30, label="modes")
            lim = float(m.abs().max()) * 1.4 + 0.5
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
    else:
        v = x[:, 0].numpy()
        ax.hist(v, bins=100, density=True, alpha=0.6, color="tab:red", label="generated")
        if hasattr(datamodule, "log_prob"):
            lo, hi = float(min(v.min(), datamodule.modes.min() - 4 * datamodule.stds.max())), float(
                max(v.max(), datamodule.modes.max() + 4 * datamodule.stds.max())
            )
            grid = torch.linspace(lo, hi, 500).reshape(-1, 1)
            ax.plot(grid[:, 0], datamodule.log_prob(grid).exp(), c="k", label="data density")
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _send_to_loggers(trainer: L.Trainer, path: Path) -> None:
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            from PIL import Image

            img = np.asarray(Image.open(path).convert("RGB"))
            logger.experiment.add_image("samples", img, trainer.global_step, dataformats="HWC")
        elif isinstance(logger, WandbLogger):
            logger.log_image(key="samples", images=[str(path)], step=trainer.global_step)
