"""In-memory data without per-sample Python: one tensor index per batch, resumable mid-epoch."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor


class TensorBatches:
    """An iterable of batches cut from in-memory tensors, for the Lightning Trainer.

    Each epoch draws one permutation from ``seed + epoch`` (not from the global RNG), shards it across
    ranks (rank r takes positions r, r + world, ...), and yields ``tuple(t[idx] for t in tensors)``.
    ``state_dict``/``load_state_dict`` record the position, so a run resumed from a mid-epoch checkpoint
    sees exactly the batches an uninterrupted run would (Lightning saves stateful loaders; with a
    length it does not prefetch, so the saved position is the number of batches consumed).
    """

    def __init__(
        self,
        tensors: tuple[Tensor, ...],
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError("all tensors must have the same number of rows")
        self.tensors, self.batch_size, self.shuffle, self.drop_last = tensors, int(batch_size), shuffle, drop_last
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.n_local = n // self.world_size
        if (self.n_local < self.batch_size) and drop_last:
            raise ValueError(
                f"{n} samples over {world_size} rank(s) cannot fill one batch of {self.batch_size}: "
                "lower the batch size (dataset.batch_size) or use more data"
            )
        self.epoch = 0
        self._next_batch = 0

    def __len__(self) -> int:
        full, rest = divmod(self.n_local, self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def _local_indices(self) -> Tensor:
        n = self.tensors[0].shape[0]
        if self.shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(n)
        return order[self.rank :: self.world_size][: self.n_local]

    def __iter__(self):
        if self._next_batch >= len(self):
            # the last pass took every batch but stopped before the generator's end (Lightning's validation
            # loop stops at len()): that epoch is over, start the next one instead of yielding nothing
            self.epoch += 1
            self._next_batch = 0
        idx = self._local_indices().to(self.tensors[0].device)  # one copy per epoch when the data lives on a GPU
        for i in range(self._next_batch, len(self)):
            self._next_batch = i + 1
            sel = idx[i * self.batch_size : (i + 1) * self.batch_size]
            yield tuple(t[sel] for t in self.tensors)
        self.epoch += 1
        self._next_batch = 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "next_batch": self._next_batch, "global_batch": self.batch_size * self.world_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        # a run resumed with another global batch (e.g. another iters_per_batch) goes on from the same
        # position in the epoch's permutation; other world sizes with the same global batch resume exactly
        here = self.batch_size * self.world_size
        saved = int(state.get("global_batch", here))
        self.epoch, self._next_batch = int(state["epoch"]), int(state["next_batch"]) * saved // here


class InMemoryDataModule(L.LightningDataModule):
    """Base for datasets that fit in memory: subclasses implement :meth:`build`.

    Images are stored as uint8 [N, C, H, W] and scaled to [-1, 1] on the device, per batch, in
    ``on_after_batch_transfer``; vector data is stored as float32 [N, D] in raw coordinates.
    Batches are ``(x, y)`` with y an int64 label (class, or mixture component for toys).

    Args:
        batch_size: m, samples per discriminator (and generator) step, per rank.
        batch_multiplier: minibatches drawn per training step; the module splits them over its
            ``iters_per_batch`` iterations of ``d_steps`` discriminator updates, so each D step sees
            fresh real data.
        seed: seeds the shuffling (epoch e uses ``seed + e``).
    """

    kind: str = "vector"  # or "image"
    shape: tuple[int, ...] = ()
    # training tensors up to this size are copied to the accelerator once: batches are then cut there, with no
    # host-to-device copy per step (a copy from pageable memory waits for the GPU, which stalls small models)
    resident_max_bytes: int = 1 << 30

    def __init__(self, batch_size: int = 64, batch_multiplier: int = 1, seed: int = 0) -> None:
        super().__init__()
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size, self.batch_multiplier, self.seed = int(batch_size), int(batch_multiplier), int(seed)
        self.train_data: tuple[Tensor, Tensor] | None = None
        self.val_data: tuple[Tensor, Tensor] | None = None
        self._resident: tuple[Tensor, ...] | None = None

    def build(self) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """Return ((x_train, y_train), (x_val, y_val))."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.train_data is None:
            self.train_data, self.val_data = self.build()

    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> TensorBatches:
        self.setup()
        rank, world = self._rank_world()
        return TensorBatches(
            self._training_tensors(), self.batch_size * self.batch_multiplier, shuffle=True, seed=self.seed, rank=rank, world_size=world
        )

    def _training_tensors(self) -> tuple[Tensor, ...]:
        """The training tensors, on the accelerator when training runs on one and they fit ``resident_max_bytes``."""
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        size = sum(t.numel() * t.element_size() for t in self.train_data)
        if device.type == "cpu" or size > self.resident_max_bytes:
            return self.train_data
        if self._resident is None or self._resident[0].device != device:
            self._resident = tuple(t.to(device) for t in self.train_data)
        return self._resident

    def val_dataloader(self) -> TensorBatches:
        self.setup()
        rank, world = self._rank_world()
        return TensorBatches(self.val_data, self.batch_size, shuffle=False, drop_last=False, rank=rank, world_size=world)

    def to_model_space(self, x: Tensor) -> Tensor:
        """Stored form -> what models see: uint8 images to float in [-1, 1]; vectors unchanged."""
        if x.dtype == torch.uint8:
            return x.float().div_(127.5).sub_(1.0)
        return x

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        x, *rest = batch
        return (self.to_model_space(x), *rest)
