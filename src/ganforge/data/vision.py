"""The standard image datasets, read from torchvision's on-disk layouts into one uint8 tensor.

``dataset.root`` is what you would pass to ``torchvision.datasets.X(root)``: MNIST reads
``<root>/MNIST/raw/*-idx?-ubyte[.gz]``, Fashion-MNIST ``<root>/FashionMNIST/raw/``, CIFAR-10
``<root>/cifar-10-batches-py/``. The files are parsed here (no per-sample Python, no PIL), resized
once to ``resolution`` and held as uint8 [N, C, R, R]; batches are scaled to [-1, 1] on the device
(:class:`~ganforge.data.base.InMemoryDataModule`). Labels are kept: batches are ``(x, y)``.

Missing files: with ``download: true`` torchvision downloads them (online); when that fails, or with
``download: false``, one ``DatasetUnavailable`` line names the dataset, the expected path and layout,
and the fix, raised by :meth:`prepare` before any model is built.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ganforge.config import ConfigError
from ganforge.data.base import InMemoryDataModule
from ganforge.data.idx import read_idx
from ganforge.data.images import split_indices

log = logging.getLogger("ganforge")


class DatasetUnavailable(ConfigError):
    """The dataset's files are not on disk and could not be downloaded."""


def resize_uint8(x: torch.Tensor, resolution: int, chunk: int = 4096) -> torch.Tensor:
    """uint8 [N, C, H, W] -> uint8 [N, C, R, R] (bilinear, antialiased when shrinking), in chunks."""
    if x.shape[-1] == resolution and x.shape[-2] == resolution:
        return x
    out = []
    for part in x.split(chunk):
        y = F.interpolate(part.float(), size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True)
        out.append(y.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


class FileDataModule(InMemoryDataModule):
    """Base for datasets read from files under ``root``: availability, download, split, subset.

    Args:
        root: the directory torchvision's class would get (``~/data`` holds ``MNIST/raw/...``).
        split: which of the dataset's own splits to train on, ``train`` or ``test``.
        download: download with torchvision when the files are missing (needs the network).
        resolution: side of the square images the models see (DCGAN wants a power of two).
        subset: use only the first ``subset`` images of the split (null = all).
        val_fraction: held out of the split for validation and metrics (a fixed split, ``split_seed``).
    """

    kind = "image"
    display_name = ""
    torchvision_class = ""
    channels = 1

    def __init__(
        self,
        root: str = "data",
        split: str = "train",
        download: bool = True,
        resolution: int = 32,
        subset: int | None = None,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if split not in ("train", "test"):
            raise ConfigError(f"dataset.split={split} is not one of train, test")
        if subset is not None and int(subset) < 2:
            raise ConfigError(f"dataset.subset={subset} must be at least 2 (or null for all)")
        self.root, self.split, self.download = Path(root).expanduser(), split, bool(download)
        self.resolution, self.subset = int(resolution), None if subset is None else int(subset)
        self.val_fraction, self.split_seed = float(val_fraction), int(split_seed)
        self.shape = (self.channels, self.resolution, self.resolution)

    # -- what subclasses say
    def files(self) -> list[Path]:
        """The files the chosen split needs."""
        raise NotImplementedError

    def layout(self) -> str:
        raise NotImplementedError

    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 [N, C, H, W], int64 [N]) of the chosen split."""
        raise NotImplementedError

    # -- shared
    def missing(self) -> list[Path]:
        return [f for f in self.files() if not f.is_file()]

    def prepare(self) -> None:
        """Make sure the files are there (downloading if allowed), or raise one clear line."""
        missing = self.missing()
        if not missing:
            return
        reason = "and dataset.download=false"
        if self.download:
            try:
                self._download()
            except Exception as e:  # offline, mirror down, checksum mismatch, ...
                reason = f"and downloading failed ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else 'no message'})"
            missing = self.missing()
            if not missing:
                return
        raise DatasetUnavailable(
            f"dataset {self.display_name}: {missing[0]} not found {reason}: download it on a connected machine "
            f"(torchvision.datasets.{self.torchvision_class}(root, download=True)) and set dataset.root to the directory "
            f"that holds {self.layout()}"
        )

    def _download(self) -> None:
        import torchvision

        cls = getattr(torchvision.datasets, self.torchvision_class)
        for train in (True, False):
            cls(str(self.root), train=train, download=True)

    def prepare_data(self) -> None:
        self.prepare()

    def build(self):
        self.prepare()
        x, y = self.load()
        if self.subset is not None:
            x, y = x[: self.subset], y[: self.subset]
        x = resize_uint8(x, self.resolution)
        tr, va = split_indices(len(y), self.val_fraction, self.split_seed)
        return (x[tr], y[tr]), (x[va], y[va])


class MNISTDataModule(FileDataModule):
    """MNIST (LeCun et al.): 60k train / 10k test 28x28 grey digits, torchvision's raw IDX files."""

    display_name, torchvision_class, folder = "mnist", "MNIST", "MNIST"

    def files(self) -> list[Path]:
        prefix = "train" if self.split == "train" else "t10k"
        raw = self.root / self.folder / "raw"
        return [self._either(raw / f"{prefix}-{k}-ubyte") for k in ("images-idx3", "labels-idx1")]

    @staticmethod
    def _either(path: Path) -> Path:
        gz = path.with_name(path.name + ".gz")
        return path if path.is_file() else gz

    def layout(self) -> str:
        return f"{self.folder}/raw/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte[.gz]"

    def load(self):
        images, labels = (read_idx(f) for f in self.files())
        if images.dim() != 3 or labels.shape[0] != images.shape[0]:
            raise ConfigError(f"dataset {self.display_name}: {self.files()[0]} holds {list(images.shape)}, not [N, H, W] images with N labels")
        return images.unsqueeze(1), labels.long()


class FashionMNISTDataModule(MNISTDataModule):
    """Fashion-MNIST (Xiao et al. 2017): MNIST's format and sizes, ten kinds of clothing."""

    display_name, torchvision_class, folder = "fashion_mnist", "FashionMNIST", "FashionMNIST"


class StackedMNISTDataModule(MNISTDataModule):
    """Stacked MNIST (Metz et al. 2017; VEEGAN, PacGAN Table 2): three MNIST digits as the R, G, B channels,
    so 1,000 modes (label = 100 * d_R + 10 * d_G + d_B). The split's digits are first divided into train and
    validation digits (``val_fraction``), then ``n_train`` / ``n_val`` triples are drawn from each with
    ``data_seed``: validation stacks never reuse a training digit.
    """

    display_name, channels = "stacked_mnist", 3
    n_modes = 1000

    def __init__(self, n_train: int = 50_000, n_val: int = 5_000, data_seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n_train, self.n_val, self.data_seed = int(n_train), int(n_val), int(data_seed)

    def build(self):
        (x, y), (xv, yv) = super().build()
        g = torch.Generator().manual_seed(self.data_seed)
        return self._stack(x, y, self.n_train, g), self._stack(xv, yv, self.n_val, g)

    @staticmethod
    def _stack(x: torch.Tensor, y: torch.Tensor, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        picks = torch.randint(len(y), (n, 3), generator=g)
        return x[picks, 0], (y[picks] * torch.tensor([100, 10, 1])).sum(1)


class CIFAR10DataModule(FileDataModule):
    """CIFAR-10 (Krizhevsky 2009): 50k train / 10k test 32x32 colour images, the python pickle batches."""

    display_name, torchvision_class, channels = "cifar10", "CIFAR10", 3
    folder = "cifar-10-batches-py"

    def files(self) -> list[Path]:
        names = [f"data_batch_{i}" for i in range(1, 6)] if self.split == "train" else ["test_batch"]
        return [self.root / self.folder / n for n in names]

    def layout(self) -> str:
        return f"{self.folder}/{{data_batch_1..5,test_batch}}"

    def load(self):
        xs, ys = [], []
        for f in self.files():
            with open(f, "rb") as fh:
                batch = pickle.load(fh, encoding="bytes")
            data = batch.get(b"data", batch.get("data"))
            labels = batch.get(b"labels", batch.get("labels"))
            if data is None or labels is None:
                raise ConfigError(f"dataset cifar10: {f} is not a CIFAR-10 python batch (no data/labels)")
            xs.append(np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(labels, dtype=np.int64))
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def _decode(path: Path, resolution: int, mode: str) -> np.ndarray:
    """One image file -> uint8 [C, R, R]: centre-cropped to a square, resized (DCGAN's Resize + CenterCrop)."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert(mode)
        w, h = im.size
        s = min(w, h)
        im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        im = im.resize((resolution, resolution), Image.BICUBIC if s < resolution else Image.LANCZOS)
        a = np.asarray(im, dtype=np.uint8)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


class ImageFolderDataModule(FileDataModule):
    """Any directory of images, searched recursively; first-level sub-directories are classes (sorted
    names -> 0, 1, ...; images directly in ``root`` get class 0). Decoded once, in ``num_workers``
    threads, centre-cropped and resized to ``resolution``, then held as one uint8 tensor.

    Args:
        channels: 3 (RGB) or 1 (grey).
        on_error: ``skip`` unreadable/corrupt files (one warning with the count and the first path) or
            ``raise`` (stop, naming the file).
        cache_dir: where to keep the decoded split (null = decode every time). The first run decodes and
            writes it (Lightning's ``prepare_data``: once per node, the other ranks wait); every later run,
            and every rank, memory-maps it instead, so N ranks on a node share one copy of the pixels in the
            page cache rather than holding N. Keyed by the file list (paths, sizes, mtimes) and every setting
            that changes the pixels or the split: edit the folder and a new entry is written.
    """

    display_name, torchvision_class = "image_folder", "ImageFolder"
    CACHE_VERSION = 1  # bump when decoding changes, so old caches are not read

    def __init__(
        self, channels: int = 3, on_error: str = "skip", num_workers: int = 4, cache_dir: str | None = None, **kwargs: Any
    ) -> None:
        kwargs.setdefault("download", False)
        kwargs.setdefault("resolution", 64)
        if int(channels) not in (1, 3):
            raise ConfigError(f"dataset.channels={channels} must be 1 (grey) or 3 (RGB)")
        if on_error not in ("skip", "raise"):
            raise ConfigError(f"dataset.on_error={on_error} is not one of skip, raise")
        self.channels = int(channels)
        super().__init__(**kwargs)
        self.on_error, self.num_workers = on_error, max(1, int(num_workers))
        self.cache_dir = None if cache_dir in (None, "") else Path(cache_dir).expanduser()
        self.skipped: list[Path] = []

    def image_dir(self) -> Path:
        return self.root

    def list_images(self) -> list[Path]:
        d = self.image_dir()
        return sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()) if d.is_dir() else []

    def missing(self) -> list[Path]:
        return [] if self.list_images() else [self.image_dir()]

    def layout(self) -> str:
        return "image files (any depth; first-level folders are classes)"

    def prepare(self) -> None:
        if self.missing():
            raise DatasetUnavailable(
                f"dataset {self.display_name}: no images ({', '.join(IMAGE_EXTENSIONS[:4])}, ...) under {self.image_dir()}: "
                "set dataset.root to a directory of images"
            )

    def load(self):
        from concurrent.futures import ThreadPoolExecutor

        paths = self.list_images()
        if self.subset is not None:
            paths = paths[: self.subset]
        top = self.image_dir()
        classes = sorted({p.relative_to(top).parts[0] for p in paths if len(p.relative_to(top).parts) > 1})
        index = {c: i for i, c in enumerate(classes)}
        mode = "RGB" if self.channels == 3 else "L"

        def one(p: Path):
            try:
                return _decode(p, self.resolution, mode)
            except Exception as e:  # PIL raises many types on bad files
                if self.on_error == "raise":
                    raise ConfigError(
                        f"dataset {self.display_name}: cannot read {p} ({type(e).__name__}: {e}): remove it or set dataset.on_error=skip"
                    ) from None
                return None

        with ThreadPoolExecutor(self.num_workers) as pool:  # PIL decodes with the GIL released
            arrays = list(pool.map(one, paths))
        keep = [i for i, a in enumerate(arrays) if a is not None]
        self.skipped = [paths[i] for i, a in enumerate(arrays) if a is None]
        if self.skipped:
            log.warning("dataset %s: skipped %d unreadable image(s), first: %s", self.display_name, len(self.skipped), self.skipped[0])
        if len(keep) < 2:
            raise DatasetUnavailable(f"dataset {self.display_name}: fewer than 2 readable images under {top}")
        x = torch.from_numpy(np.stack([arrays[i] for i in keep]))
        rel = [paths[i].relative_to(top).parts for i in keep]
        y = torch.tensor([index[r[0]] if len(r) > 1 else 0 for r in rel], dtype=torch.long)
        return x, y

    def decode_split(self):
        x, y = self.load()  # already at resolution, subset applied to the file list
        tr, va = split_indices(len(y), self.val_fraction, self.split_seed)
        return (x[tr], y[tr]), (x[va], y[va])

    def prepare_data(self) -> None:
        self.prepare()
        if self.cache_dir is not None:
            self.cache_entry()

    def build(self):
        self.prepare()
        return self.cache_entry() if self.cache_dir is not None else self.decode_split()

    # -- the decoded-split cache
    CACHE_ARRAYS = ("x_train", "y_train", "x_val", "y_val")

    def cache_path(self) -> Path:
        """This folder's entry: a directory named by a hash of the file list and the decoding settings."""
        import hashlib

        h = hashlib.sha256()
        settings = (self.CACHE_VERSION, type(self).__name__, str(self.image_dir().resolve()), self.resolution,
                    self.channels, self.subset, self.val_fraction, self.split_seed, self.on_error)
        h.update(repr(settings).encode())
        for p in self.list_images():
            st = p.stat()
            h.update(f"{p.relative_to(self.image_dir())}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return self.cache_dir / f"{self.display_name}-{self.resolution}px-{h.hexdigest()[:20]}"

    def cache_entry(self):
        """The split from the cache, memory-mapped; decoded and written there first if absent. The entry is
        written in a temporary directory and renamed into place, so a crash never leaves half an entry. The
        images must be there (:meth:`prepare`)."""
        import json
        import os
        import shutil
        import tempfile

        path = self.cache_path()
        if not (path / "meta.json").is_file():
            try:  # before decoding: a cache that cannot be written should not cost the decode first
                path.parent.mkdir(parents=True, exist_ok=True)
                tempfile.TemporaryFile(dir=path.parent).close()
            except OSError as e:
                raise ConfigError(
                    f"dataset.cache_dir={self.cache_dir} is not writable ({e.strerror or e}): "
                    "set it to a writable directory, or to null to decode on every run"
                ) from None
            (xt, yt), (xv, yv) = self.decode_split()
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
            try:
                for name, t in zip(self.CACHE_ARRAYS, (xt, yt, xv, yv)):
                    np.save(tmp / f"{name}.npy", t.numpy())
                meta = {"skipped": [str(p) for p in self.skipped]}
                (tmp / "meta.json").write_text(json.dumps(meta))
                os.replace(tmp, path)  # atomic; fails if another process won the race, whose entry is the same
            except OSError:
                if not (path / "meta.json").is_file():
                    raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            log.info("dataset %s: decoded %d images once, cached in %s", self.display_name, len(yt) + len(yv), path)
        else:
            meta = json.loads((path / "meta.json").read_text())
            self.skipped = [Path(p) for p in meta["skipped"]]
            if self.skipped:
                log.warning("dataset %s: %d unreadable image(s) left out (cached), first: %s", self.display_name, len(self.skipped), self.skipped[0])
        # copy-on-write maps: the pages are shared with every other process mapping the same files
        xt, yt, xv, yv = (torch.from_numpy(np.load(path / f"{n}.npy", mmap_mode="c")) for n in self.CACHE_ARRAYS)
        return (xt, yt), (xv, yv)


class CelebADataModule(ImageFolderDataModule):
    """CelebA's aligned faces (``<root>/celeba/img_align_celeba/*.jpg``, torchvision's layout) at 64x64,
    centre-cropped: the DCGAN recipe. ``download: true`` tries torchvision's (Google Drive) download."""

    display_name, torchvision_class = "celeba", "CelebA"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("download", True)
        super().__init__(**kwargs)

    def image_dir(self) -> Path:
        return self.root / "celeba" / "img_align_celeba"

    def layout(self) -> str:
        return "celeba/img_align_celeba/*.jpg"

    def prepare(self) -> None:
        if self.missing() and self.download:
            try:
                import torchvision

                torchvision.datasets.CelebA(str(self.root), split="all", download=True)
            except Exception as e:
                reason = f"and downloading failed ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else 'no message'})"
            else:
                return
        else:
            reason = "and dataset.download=false"
        if self.missing():
            raise DatasetUnavailable(
                f"dataset celeba: no images in {self.image_dir()} {reason}: download img_align_celeba.zip "
                "(torchvision.datasets.CelebA(root, download=True) or the CelebA website), unzip it there, and set dataset.root"
            )
