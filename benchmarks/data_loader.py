"""Data pipeline speed: ganforge's in-memory MNIST batches vs torchvision's MNIST + DataLoader.

Both deliver shuffled batches of 32x32 MNIST images as float tensors in [-1, 1] with their labels, from
the same files. ganforge: the split parsed once into one uint8 tensor, a batch is one index into it,
scaled to [-1, 1] per batch (on the training device in a real run; on the CPU here). torchvision:
``MNIST(root, transform=Compose([Resize(32), ToTensor(), Normalize(0.5, 0.5)]))`` in a
``DataLoader(num_workers=W)``, the usual recipe (a PIL image and a transform per sample). Rounds
alternate between the two; the median batches/s of each and the ratio are printed from one run.

    python benchmarks/data_loader.py --root ../shared/data --split test
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch


def ganforge_batches(root: str, split: str, batch_size: int, n_batches: int):
    from ganforge.data import MNISTDataModule

    t0 = time.perf_counter()
    dm = MNISTDataModule(root=root, split=split, resolution=32, download=False, val_fraction=0.01, batch_size=batch_size)
    dm.setup()
    setup_s = time.perf_counter() - t0

    def run() -> float:
        loader = dm.train_dataloader()
        t = time.perf_counter()
        n = 0
        while n < n_batches:
            for x, y in loader:
                x = dm.to_model_space(x)
                n += 1
                if n == n_batches:
                    break
        return n_batches / (time.perf_counter() - t)

    return run, setup_s


def torchvision_batches(root: str, split: str, batch_size: int, n_batches: int, workers: int):
    from torchvision import datasets, transforms

    class MNIST(datasets.MNIST):
        # torchvision insists on both splits' files being present; the shared copy has the test split only
        def _check_exists(self) -> bool:
            prefix = "train" if self.train else "t10k"
            return all((Path(self.raw_folder) / f"{prefix}-{k}-ubyte").is_file() for k in ("images-idx3", "labels-idx1"))

    tf = transforms.Compose([transforms.Resize(32), transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    ds = MNIST(root, train=split == "train", transform=tf, download=False)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=workers, persistent_workers=workers > 0
    )

    def run() -> float:
        t = time.perf_counter()
        n = 0
        while n < n_batches:
            for x, y in loader:
                n += 1
                if n == n_batches:
                    break
        return n_batches / (time.perf_counter() - t)

    return run


def uncompressed_copy(root: str, out: str) -> str:
    """torchvision's MNIST reads only the uncompressed raw files (its download unpacks them): give both
    loaders the same uncompressed copy of ``root/MNIST/raw``."""
    src, dst = Path(root) / "MNIST" / "raw", Path(out) / "MNIST" / "raw"
    dst.mkdir(parents=True)
    for f in src.iterdir():
        if f.suffix == ".gz":
            with gzip.open(f, "rb") as fin, open(dst / f.stem, "wb") as fout:
                shutil.copyfileobj(fin, fout)
        else:
            shutil.copyfile(f, dst / f.name)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--batches", type=int, default=150)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)  # a data pipeline's share of a busy machine; both sides alike
    tmp = tempfile.TemporaryDirectory()
    args.root = uncompressed_copy(args.root, tmp.name)
    ours, setup_s = ganforge_batches(args.root, args.split, args.batch_size, args.batches)
    theirs = torchvision_batches(args.root, args.split, args.batch_size, args.batches, args.workers)
    ours(), theirs()  # warm-up (worker start-up, first-touch)
    rates = {"ganforge": [], "torchvision": []}
    for _ in range(args.rounds):
        rates["ganforge"].append(ours())
        rates["torchvision"].append(theirs())
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(json.dumps({
        "batch_size": args.batch_size, "batches_per_round": args.batches, "rounds": args.rounds,
        "torchvision_workers": args.workers, "ganforge_setup_s": round(setup_s, 3),
        "ganforge_batches_per_s": round(med["ganforge"], 1), "torchvision_batches_per_s": round(med["torchvision"], 1),
        "ratio_ganforge_over_torchvision": round(med["ganforge"] / med["torchvision"], 1),
    }))


if __name__ == "__main__":
    main()
