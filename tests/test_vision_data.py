"""The standard image datasets from their real on-disk formats: the shared MNIST test split, and small
Fashion-MNIST (IDX/gzip), CIFAR-10 (pickle batches), image-folder and CelebA files written here."""

import gzip
import os
import re
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import MNIST_RAW, run_benchmark
from ganforge.config import ConfigError
from ganforge.data import (
    CelebADataModule,
    CIFAR10DataModule,
    DatasetUnavailable,
    FashionMNISTDataModule,
    ImageFolderDataModule,
    MNISTDataModule,
)
from ganforge.data.idx import read_idx
from ganforge.data.vision import resize_uint8


def loaded(dm):
    dm.setup()
    return dm.train_data, dm.val_data


@pytest.mark.skipif(not MNIST_RAW.is_dir(), reason="needs ../shared/data/MNIST/raw beside the repo")
def test_mnist_test_split_from_the_shared_raw_files():
    dm = MNISTDataModule(root=str(MNIST_RAW.parents[1]), split="test", subset=1000, resolution=32, download=False)
    (xt, yt), (xv, yv) = loaded(dm)
    assert (xt.shape, xv.shape) == ((900, 1, 32, 32), (100, 1, 32, 32)) and xt.dtype == torch.uint8
    images = read_idx(MNIST_RAW / "t10k-images-idx3-ubyte.gz")[:1000]
    labels = read_idx(MNIST_RAW / "t10k-labels-idx1-ubyte.gz")[:1000].long()
    assert sorted(torch.cat([yt, yv]).tolist()) == sorted(labels.tolist())
    # every stored image is one of the first 1000 test images, resized once, with its own label
    resized = resize_uint8(images.unsqueeze(1), 32)
    match = (xt[:20, None].float() - resized[None].float()).abs().flatten(2).amax(-1).argmin(1)
    assert torch.equal(labels[match], yt[:20])
    assert int(images[0].max()) == 255 and 200 < int(xt.max()) <= 255
    full = MNISTDataModule(root=str(MNIST_RAW.parents[1]), split="test", resolution=28, download=False)
    (xt, _), (xv, _) = loaded(full)
    assert len(xt) + len(xv) == 10_000


def _write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_gzipped_idx_files(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (50, 28, 28)), rng.integers(0, 10, 50)
    _write_idx(raw / "train-images-idx3-ubyte.gz", images)
    _write_idx(raw / "train-labels-idx1-ubyte.gz", labels)
    dm = FashionMNISTDataModule(root=str(tmp_path), resolution=28, val_fraction=0.2, download=False)
    (xt, yt), (xv, yv) = loaded(dm)
    x, y = torch.cat([xt, xv]), torch.cat([yt, yv])
    order = torch.cat(list(dm_split_order(50, 0.2)))
    assert torch.equal(x[:, 0], torch.from_numpy(images.astype(np.uint8))[order])
    assert torch.equal(y, torch.from_numpy(labels)[order])
    with pytest.raises(DatasetUnavailable, match=r"dataset fashion_mnist: .*t10k-images-idx3-ubyte.gz not found and dataset.download=false"):
        FashionMNISTDataModule(root=str(tmp_path), split="test", download=False).prepare()


def dm_split_order(n, val_fraction):
    from ganforge.data.images import split_indices

    return split_indices(n, val_fraction, 0)


def test_cifar10_reads_the_pickle_batches_channel_first(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(1)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data, labels = rng.integers(0, 256, (4, 3072)).astype(np.uint8), rng.integers(0, 10, 4).tolist()
        batches[name] = (data, labels)
        with open(d / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, f)
    dm = CIFAR10DataModule(root=str(tmp_path), split="test", val_fraction=0.25, download=False)
    (xt, yt), (xv, yv) = loaded(dm)
    x, y = torch.cat([xt, xv]), torch.cat([yt, yv])
    order = torch.cat(list(dm_split_order(4, 0.25)))
    data, labels = batches["test_batch"]
    # a row is 1024 red, then 1024 green, then 1024 blue values, each row-major 32x32
    assert torch.equal(x[0, 1], torch.from_numpy(data[order[0], 1024:2048].reshape(32, 32)))
    assert y.tolist() == [labels[i] for i in order]
    train = CIFAR10DataModule(root=str(tmp_path), val_fraction=0.25, download=False)
    (xt, _), (xv, _) = loaded(train)
    assert len(xt) + len(xv) == 20 and xt.shape[1:] == (3, 32, 32)
    (d / "data_batch_3").unlink()
    with pytest.raises(DatasetUnavailable, match=r"cifar-10-batches-py/data_batch_3 not found .* set dataset.root"):
        CIFAR10DataModule(root=str(tmp_path), download=False).prepare()


def _folder(tmp_path):
    rng = np.random.default_rng(2)
    for cls, n in (("cats", 3), ("dogs", 4)):
        (tmp_path / cls / "deeper").mkdir(parents=True)
        for i in range(n):
            sub = tmp_path / cls / ("deeper" if i % 2 else "")
            Image.fromarray(rng.integers(0, 256, (40, 60, 3)).astype(np.uint8)).save(sub / f"{i}.png")
    (tmp_path / "dogs" / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "notes.txt").write_text("ignored")


def test_image_folder_classes_crop_and_corrupt_files(tmp_path, caplog):
    _folder(tmp_path)
    dm = ImageFolderDataModule(root=str(tmp_path), resolution=16, val_fraction=0.3)
    with caplog.at_level("WARNING", logger="ganforge"):
        (xt, yt), (xv, yv) = loaded(dm)
    assert len(xt) + len(xv) == 7 and xt.shape[1:] == (3, 16, 16)
    assert sorted(torch.cat([yt, yv]).tolist()) == [0, 0, 0, 1, 1, 1, 1]
    assert "skipped 1 unreadable image(s), first: " in caplog.text and "broken.jpg" in caplog.text
    # centre crop: a 60x40 image whose middle 40x40 is white comes out white
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, 10:50] = 255
    single = tmp_path / "single"
    single.mkdir()
    for i in range(2):
        Image.fromarray(img).save(single / f"{i}.png")
    (xt, _), _ = loaded(ImageFolderDataModule(root=str(single), resolution=8, channels=1, val_fraction=0.5))
    assert xt.shape == (1, 1, 8, 8) and int(xt.min()) == 255
    with pytest.raises(ConfigError, match=r"cannot read .*broken.jpg .*set dataset.on_error=skip"):
        loaded(ImageFolderDataModule(root=str(tmp_path), resolution=16, on_error="raise"))
    with pytest.raises(DatasetUnavailable, match="no images"):
        ImageFolderDataModule(root=str(tmp_path / "nothing")).prepare()


def test_image_folder_decodes_once_into_a_cache_that_every_later_run_maps(tmp_path, caplog, monkeypatch):
    root, cache = tmp_path / "images", tmp_path / "cache"
    _folder(root)
    make = lambda **kw: ImageFolderDataModule(root=str(root), val_fraction=0.3, cache_dir=str(cache), **{"resolution": 16, **kw})
    (xt, yt), (xv, yv) = loaded(ImageFolderDataModule(root=str(root), resolution=16, val_fraction=0.3))
    first = make()
    first.prepare_data()  # what Lightning runs once per node before every rank's setup
    (entry,) = [p for p in cache.iterdir()]
    assert not entry.name.startswith(".") and {p.name for p in entry.iterdir()} == {"x_train.npy", "y_train.npy", "x_val.npy", "y_val.npy", "meta.json"}

    def no_decoding(self):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(ImageFolderDataModule, "load", no_decoding)
    again = make()
    with caplog.at_level("WARNING", logger="ganforge"):
        (ct, cyt), (cv, cyv) = loaded(again)
    assert torch.equal(ct, xt) and torch.equal(cyt, yt) and torch.equal(cv, xv) and torch.equal(cyv, yv)
    assert "broken.jpg" in caplog.text and again.skipped and again.skipped[0].name == "broken.jpg"
    # another resolution, or a changed folder, is another entry: never stale pixels
    monkeypatch.undo()
    assert loaded(make(resolution=8))[0][0].shape[-1] == 8
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / "cats" / "new.png")
    (nt, _), (nv, _) = loaded(make())
    assert len(nt) + len(nv) == 8 and len(list(cache.iterdir())) == 3
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temporary directory left behind


def _mapping_of(ptr: int) -> dict:
    """The /proc/self/smaps entry holding address ``ptr``: its file (\"\" when anonymous) and its kB counters.
    Per mapping, so unlike the process's totals it does not depend on what the allocator kept from earlier tests."""
    entry = None
    for line in open("/proc/self/smaps"):
        head = re.match(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$", line)
        if head:
            if entry is not None:
                return entry
            lo, hi = int(head.group(1), 16), int(head.group(2), 16)
            entry = {"file": head.group(3).strip()} if lo <= ptr < hi else None
        elif entry is not None and (kb := re.match(r"^(\w+):\s+(\d+) kB", line)):
            entry[kb.group(1)] = int(kb.group(2))
    if entry is None:
        raise AssertionError(f"no mapping holds address {ptr:#x}")
    return entry


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="reads Linux's per-mapping memory accounting")
def test_cached_pixels_are_mapped_not_copied_into_each_process(tmp_path, monkeypatch):
    """The point of the cache under DDP: a rank holds the pixels as file pages that every rank on the node
    shares, not as its own anonymous copy. ~84 MiB of pixels: decoded, they sit in anonymous memory; cached,
    in a map of the cache's file, which after every batch has been read still holds (almost) no private page."""
    from ganforge.data.base import TensorBatches

    _folder(tmp_path / "images")
    big = (torch.randint(0, 256, (8000, 3, 64, 64), dtype=torch.uint8), torch.zeros(8000, dtype=torch.long))
    monkeypatch.setattr(ImageFolderDataModule, "load", lambda self: big)
    for cache in (str(tmp_path / "cache"), None):
        dm = ImageFolderDataModule(root=str(tmp_path / "images"), resolution=64, cache_dir=cache)
        dm.prepare_data()
        dm.setup()
        pixels = dm.train_data[0]
        assert sum(len(b[0]) for b in TensorBatches(dm.train_data, 64)) > 7000  # every batch read once
        m = _mapping_of(pixels.data_ptr())
        mib = pixels.numel() / 2**20
        if cache is None:
            assert not m["file"].startswith("/"), m  # the decoded pixels are the process's own memory
        else:
            assert m["file"].startswith(str(tmp_path / "cache")) and m["file"].endswith("x_train.npy"), m
            assert m["Rss"] / 1024 > 0.9 * mib, m  # read: the file's pages are in memory ...
            assert m["Anonymous"] / 1024 < 1, m  # ... and none copied into private (anonymous) pages
        del dm, pixels


def test_image_folder_cache_write_that_fails_leaves_no_entry(tmp_path, monkeypatch):
    root, cache = tmp_path / "images", tmp_path / "cache"
    _folder(root)
    dm = ImageFolderDataModule(root=str(root), resolution=16, cache_dir=str(cache))

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        dm.prepare_data()
    assert list(cache.iterdir()) == []
    monkeypatch.undo()
    assert len(loaded(dm)[0][0]) > 0 and len(list(cache.iterdir())) == 1
    # a cache directory that cannot be made is one line naming the key and the fix, before any decoding
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setattr(ImageFolderDataModule, "load", lambda self: pytest.fail("decoded before checking the cache"))
    bad = ImageFolderDataModule(root=str(root), resolution=16, cache_dir=str(blocker / "cache"))
    with pytest.raises(ConfigError, match=r"dataset.cache_dir=.*a_file/cache is not writable .*or to null"):
        bad.prepare_data()


def test_celeba_layout_is_centre_cropped_to_64(tmp_path):
    d = tmp_path / "celeba" / "img_align_celeba"
    d.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((218, 178, 3), 40 * i, np.uint8)).save(d / f"{i:06d}.jpg")
    (xt, _), (xv, _) = loaded(CelebADataModule(root=str(tmp_path), val_fraction=0.25, download=False))
    assert xt.shape[1:] == (3, 64, 64) and len(xt) + len(xv) == 4
    with pytest.raises(DatasetUnavailable, match=r"dataset celeba: no images in .*img_align_celeba and dataset.download=false"):
        CelebADataModule(root=str(tmp_path / "empty"), download=False).prepare()


def test_bad_split_and_subset_are_config_errors():
    with pytest.raises(ConfigError, match="dataset.split=val is not one of train, test"):
        MNISTDataModule(split="val")
    with pytest.raises(ConfigError, match="dataset.subset=1 must be at least 2"):
        MNISTDataModule(subset=1)


@pytest.mark.slow
def test_missing_dataset_stops_in_one_line_before_any_model_is_built(run_train, tmp_path):
    proc, run = run_train("dataset=cifar10", f"dataset.root={tmp_path / 'nowhere'}", "dataset.download=false", check=False)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert err[-1].startswith("error: dataset cifar10: ") and "cifar-10-batches-py/data_batch_1 not found" in err[-1]
    assert "Traceback" not in proc.stderr and not (run / "checkpoints").exists()


@pytest.mark.slow
@pytest.mark.skipif(not MNIST_RAW.is_dir(), reason="needs ../shared/data/MNIST/raw beside the repo")
def test_dcgan_on_the_mnist_test_split_gets_closer_to_the_data(run_train):
    proc, run = run_train(
        "dataset=mnist", f"dataset.root={MNIST_RAW.parents[1]}", "dataset.split=test", "dataset.subset=3000",
        "dataset.batch_size=32", "model.generator.base_width=16", "model.discriminator.base_width=16",
        "max_iters=300", "val_every=100", "log_every=50", "sample_every=300", "ckpt_every=300",
        "metrics.names=[fid]", "metrics.n_samples=1000", "logger=csv",
    )
    import csv

    rows = list(csv.DictReader(open(run / "csv" / "metrics.csv")))
    fid = [float(r["val/fid_lenet"]) for r in rows if r.get("val/fid_lenet")]
    assert len(fid) == 3 and fid[-1] < 0.7 * fid[0], fid
    assert (run / "samples" / "iter_000300.png").stat().st_size > 5000


@pytest.mark.slow
@pytest.mark.skipif(not MNIST_RAW.is_dir(), reason="needs ../shared/data/MNIST/raw beside the repo")
def test_loader_benchmark_runs_and_reports_a_ratio():
    import json

    out = json.loads(run_benchmark("data_loader.py", "--root", str(MNIST_RAW.parents[1]), "--batches", "10", "--rounds", "1").splitlines()[-1])
    assert out["ganforge_batches_per_s"] > 0 and out["torchvision_batches_per_s"] > 0
    assert out["ratio_ganforge_over_torchvision"] == pytest.approx(out["ganforge_batches_per_s"] / out["torchvision_batches_per_s"], rel=0.05)


@pytest.mark.parametrize("name", ["mnist", "cifar10", "celeba"])
def test_dcgan_recipes_have_the_published_settings(name):
    from hydra import compose, initialize_config_dir

    from conftest import REPO

    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", [f"experiment=dcgan_{name}"])
    assert cfg.dataset.name == name and cfg.dataset.resolution == 64 and cfg.dataset.batch_size == 128
    assert cfg.model.generator.base_width == cfg.model.discriminator.base_width == 64 and cfg.model.generator.latent_dim == 100
    for opt in (cfg.optim.generator, cfg.optim.discriminator):
        assert opt.lr == 2e-4 and list(opt.betas) == [0.5, 0.999]
    assert cfg.loss.name == "nonsaturating" and cfg.trainer.accelerator == "gpu"
