"""Stacked MNIST (PacGAN Table 2): 3-digit stacks, 1,000 modes read back by ganforge's LeNet, and the recipe's pipeline."""

import csv
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
def test_stacked_mnist_benchmark_runs_dcgan_and_pacdcgan_on_cpu(tmp_path):
    """The whole Table-2 pipeline for a few steps, through its one command: stacks from the shipped MNIST split,
    DCGAN and packed DCGAN trained side by side, the mode metrics read back into the table."""
    from conftest import run_benchmark

    def bench(iters: int) -> str:
        return run_benchmark(
            "stacked_mnist.py", "--out", str(tmp_path), "--packs", "1,2", "--seeds", "0",
            f"dataset.root={MNIST_RAW.parents[1]}", "dataset.split=test", "dataset.download=false",
            "trainer=cpu", f"max_iters={iters}", "val_every=3", "ckpt_every=3", "sample_every=3",
            "metrics.n_samples=600", "dataset.n_train=640", "dataset.n_val=128",
        )  # fmt: skip

    out = bench(3)
    assert "| DCGAN (ganforge) | 1 | 3 |" in out and "| PacDCGAN2 (ganforge) | 1 | 3 |" in out
    for pack in (1, 2):
        run_dir = tmp_path / f"pack{pack}-seed0"
        rows = [r for r in csv.DictReader(open(run_dir / "csv" / "metrics.csv")) if r.get("val/modes")]
        assert rows and 1 <= float(rows[-1]["val/modes"]) <= 600 and 0 <= float(rows[-1]["val/mode_kl"]) <= math.log(1000) + 1e-6
        assert (run_dir / "samples" / "latest.png").is_file() and (run_dir / ".hydra" / "overrides.yaml").is_file()
        assert f"pack={pack}" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "curves.png").is_file()
    # the same command again, with a longer budget, continues both runs from their last checkpoints
    out = bench(6)
    assert "| DCGAN (ganforge) | 1 | 6 |" in out and "| PacDCGAN2 (ganforge) | 1 | 6 |" in out
    curves = list(csv.DictReader(open(tmp_path / "curves.csv")))
    assert sorted((r["pack"], int(r["iteration"])) for r in curves) == [("1", 3), ("1", 6), ("2", 3), ("2", 6)]
    for pack in (1, 2):
        assert (tmp_path / f"pack{pack}-seed0" / "csv" / "metrics.part0.csv").is_file()
        assert "resuming from" in (tmp_path / f"pack{pack}-seed0" / "stdout.log").read_text()


def _stacked_mnist_script():
    from conftest import load_benchmark

    return load_benchmark("stacked_mnist.py")


def test_stacked_mnist_table_is_the_last_evaluation_of_each_run_beside_the_published_rows(tmp_path):
    bench = _stacked_mnist_script()
    curves = {(1, 0): [(5000, 990, 0.4), (10000, 1000, 0.2)], (1, 1): [(5000, 980, 0.5), (10000, 996, 0.3)], (2, 0): [(5000, 999, 0.1)]}
    for (pack, seed), rows in curves.items():
        log = tmp_path / f"pack{pack}-seed{seed}" / "csv"
        log.mkdir(parents=True)
        lines = ["step,train/d_loss,val/modes,val/mode_kl", "100,1.0,,"] + [f"{i},,{m},{kl}" for i, m, kl in rows]
        (log / "metrics.csv").write_text("\n".join(lines) + "\n")
    text, missing = bench.summarize(tmp_path, [1, 2], [0, 1], "cmd", 60.0)
    assert "| DCGAN (published) | - | 100,000 | 99 | 3.4 |" in text and "| PacDCGAN2 (published) | - | 100,000 | 1000 | 0.06 |" in text
    assert "| DCGAN (ganforge) | 2 | 10,000 | 998 ± 2 | 0.25 ± 0.05 |" in text  # seeds 0 and 1 at their last evaluation
    assert "| PacDCGAN2 (ganforge) | 1 | 5,000 | 999 | 0.1 |" in text  # pack 2 seed 1 never evaluated: left out
    assert missing == ["pack2-seed1"]
    runs = list(csv.reader(open(tmp_path / "runs.csv")))
    assert runs[0] == ["method", "pack", "seed", "iteration", "modes", "mode_kl"] and len(runs) == 5
    assert runs[-1][:4] == ["PacDCGAN2", "2", "1", "0"] and runs[-1][4] == "nan"
    assert len(list(csv.reader(open(tmp_path / "curves.csv")))) == 1 + 5 and (tmp_path / "curves.png").is_file()
    assert bench.main(["--summarize-only", "--out", str(tmp_path), "--packs", "1,2", "--seeds", "0,1"]) == 1  # a run with no evaluation


def test_stacked_mnist_curve_joins_the_segments_of_a_resumed_run(tmp_path):
    bench = _stacked_mnist_script()
    log = tmp_path / "pack1-seed0" / "csv"
    log.mkdir(parents=True)
    # the first call evaluated 5k and 10k and was stopped at 12k; the second resumed from 10k's checkpoint
    (log / "metrics.part0.csv").write_text("step,val/modes,val/mode_kl\n5000,990,0.4\n10000,1000,0.2\n")
    (log / "metrics.csv").write_text("step,train/d_loss,val/modes,val/mode_kl\n10100,1.0,,\n15000,,1000,0.1\n")
    assert bench.curve(tmp_path / "pack1-seed0") == [(5000, 990.0, 0.4), (10000, 1000.0, 0.2), (15000, 1000.0, 0.1)]


def test_stacked_mnist_runs_continue_from_their_last_checkpoint(tmp_path):
    bench = _stacked_mnist_script()
    cmd = bench.run_command(2, 3, tmp_path, ["val_every=5000"])
    assert cmd[2:] == ["experiment=dcgan_stacked_mnist", "pack=2", "seed=3", "logger=csv", f"hydra.run.dir={tmp_path}",
                       "ckpt_path=last", "val_every=5000"]  # fmt: skip
    assert "ckpt_path=last" not in bench.run_command(1, 0, tmp_path, ["ckpt_path=/x/last.ckpt"])


def test_stacked_mnist_wall_limit_stops_runs_with_sigterm():
    import subprocess
    import sys
    import time

    bench = _stacked_mnist_script()
    # a stand-in run that, like train.py, exits cleanly on SIGTERM
    code = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); time.sleep(60)"
    procs = {(1, 0): subprocess.Popen([sys.executable, "-c", code])}
    t0 = time.monotonic()
    bench.wait(procs, wall=1.0)
    assert procs[1, 0].returncode == 0 and time.monotonic() - t0 < 30


def test_stacked_mnist_script_rejects_bad_packs(capsys):
    bench = _stacked_mnist_script()
    with pytest.raises(SystemExit):
        bench.main(["--packs", "one", "--summarize-only"])
    assert "comma-separated integers" in capsys.readouterr().err
