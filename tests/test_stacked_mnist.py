"""Stacked MNIST (PacGAN Table 2): 3-digit stacks, 1,000 modes read back by ganforge's LeNet, and the recipe's pipeline."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import MNIST_RAW
from ganforge.data import StackedMNISTDataModule
from ganforge.metrics.modes import digit_stack_counts, histogram_kl
from test_vision_data import _write_idx


def test_stacks_are_three_digits_whose_label_is_the_mode(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    labels = np.arange(40) % 10
    images = np.zeros((40, 28, 28), np.uint8)
    images[:, 0, 0] = np.arange(40)  # each digit image carries its own index in one pixel
    _write_idx(raw / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(raw / "t10k-labels-idx1-ubyte.gz", labels)
    dm = StackedMNISTDataModule(root=str(tmp_path), split="test", download=False, resolution=28, n_train=500, n_val=50)
    (x, y), (xv, yv) = dm.build()
    assert x.shape == (500, 3, 28, 28) and x.dtype == torch.uint8 and xv.shape == (50, 3, 28, 28)
    for xs, ys in ((x, y), (xv, yv)):
        digits = labels[xs[:, :, 0, 0].long().numpy()]  # the digit of the image in each channel
        assert torch.equal(ys, torch.from_numpy(digits @ np.array([100, 10, 1])))
    # validation stacks use only held-out digit images
    assert not set(x[:, :, 0, 0].flatten().tolist()) & set(xv[:, :, 0, 0].flatten().tolist())


class _ByMean(nn.Module):
    """A stand-in classifier: the digit is the image's mean brightness bucket."""

    def forward(self, x):
        d = ((x.mean((1, 2, 3)) + 1) * 5).clamp(0, 9.99).floor().long()
        return nn.functional.one_hot(d, 10).float()


def test_digit_stack_counts_and_kl():
    levels = lambda d: d / 5 - 1 + 0.1  # noqa: E731 (a grey level the stand-in reads as digit d)
    stacks = torch.stack([torch.full((3, 8, 8), 0.0) for _ in range(4)])
    for i, (r, g, b) in enumerate([(1, 2, 3), (1, 2, 3), (9, 0, 0), (0, 0, 7)]):
        stacks[i, 0], stacks[i, 1], stacks[i, 2] = levels(r), levels(g), levels(b)
    counts = digit_stack_counts(stacks, _ByMean(), batch_size=3)
    assert counts.sum() == 4 and counts[123] == 2 and counts[900] == 1 and counts[7] == 1
    assert histogram_kl(torch.ones(1000)) == pytest.approx(0.0)
    assert histogram_kl(torch.tensor([5.0] + [0.0] * 999)) == pytest.approx(math.log(1000))
    assert histogram_kl(torch.zeros(10)) == pytest.approx(math.log(10))
    with pytest.raises(ValueError, match="3, H, W"):
        digit_stack_counts(torch.zeros(2, 1, 8, 8), _ByMean())


@pytest.mark.skipif(not MNIST_RAW.is_dir(), reason="needs ../shared/data/MNIST/raw beside the repo")
def test_real_stacks_cover_all_1000_modes_as_read_by_the_lenet():
    """The metric's ceiling: 26,000 real stacks (the paper's sample count) read by the LeNet vs their true labels."""
    from ganforge.metrics.fid import LeNetFeatures

    dm = StackedMNISTDataModule(root=str(MNIST_RAW.parents[1]), split="test", download=False, n_train=26000, n_val=10)
    (x, y), _ = dm.build()
    counts = digit_stack_counts(dm.to_model_space(x), LeNetFeatures().net.eval())
    true = torch.bincount(y, minlength=1000)
    assert int((counts > 0).sum()) >= 995 and int((true > 0).sum()) >= 995
    assert abs(histogram_kl(counts) - histogram_kl(true)) < 0.01 and histogram_kl(counts) < 0.05


@pytest.mark.slow
@pytest.mark.skipif(not MNIST_RAW.is_dir(), reason="needs ../shared/data/MNIST/raw beside the repo")
def test_stacked_mnist_recipe_runs_on_cpu(run_train):
    """The whole Table-2 pipeline for a few steps: stacks from the shipped MNIST split, packed DCGAN, the mode metrics."""
    import csv

    proc, run_dir = run_train(
        "experiment=dcgan_stacked_mnist", f"dataset.root={MNIST_RAW.parents[1]}", "dataset.split=test", "dataset.download=false",
        "trainer=cpu", "logger=csv", "pack=2", "max_iters=3", "val_every=3", "ckpt_every=3", "sample_every=3",
        "metrics.n_samples=600", "dataset.n_train=640", "dataset.n_val=128",
    )  # fmt: skip
    rows = [r for r in csv.DictReader(open(run_dir / "csv" / "metrics.csv")) if r.get("val/modes")]
    assert rows and 1 <= float(rows[-1]["val/modes"]) <= 600 and 0 <= float(rows[-1]["val/mode_kl"]) <= math.log(1000) + 1e-6
    assert (run_dir / "samples" / "latest.png").is_file()
