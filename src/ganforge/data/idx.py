"""Readers for the IDX files of MNIST-family datasets (``*-idx3-ubyte[.gz]``), torchvision's raw layout."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> torch.Tensor:
    """The array in an IDX file (gzipped or not), e.g. images uint8 [N, 28, 28] or labels uint8 [N]."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ValueError(f"{p} is not an IDX file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=_DTYPES[data[2]], offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{p} is truncated: header says {dims}, file holds {arr.size} values")
    return torch.from_numpy(arr.reshape(dims).astype(arr.dtype.newbyteorder("=")).copy())


def read_mnist_split(raw_dir: str | Path, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 [N, 28, 28], labels int64 [N]) of an MNIST-layout ``raw/`` directory; split 'train' or 't10k'/'test'."""
    prefix = "train" if split == "train" else "t10k"
    d = Path(raw_dir)
    files = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        cands = [d / f"{prefix}-{kind}.gz", d / f"{prefix}-{kind}"]
        found = next((c for c in cands if c.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"{cands[0]} (or without .gz) not found: {d} must hold MNIST's raw IDX files")
        files.append(found)
    return read_idx(files[0]), read_idx(files[1]).long()
