"""PacGAN's Table 2 (Stacked MNIST, 1,000 modes): DCGAN against PacDCGAN, side by side on one machine.

Starts one ``train.py experiment=dcgan_stacked_mnist pack=P seed=S`` per (pack, seed), all at once (on a GPU
the small DCGAN steps are bound by kernel launches, so several processes share one GPU well), stops each at
its ``max_iters`` or after ``--wall`` seconds (SIGTERM: ganforge saves a resumable checkpoint and exits), then
reads every run's validation curve (``val/modes`` of 1,000 and ``val/mode_kl`` on ``metrics.n_samples``
generated stacks, 26,000 as in the paper's code, each channel read by ganforge's LeNet) and writes in ``--out``:

- ``table.md``: the last evaluation of each run and the mean per method, beside the published rows;
- ``runs.csv`` (one row per run) and ``curves.csv`` (every evaluation), ``curves.png``, ``samples.png``.

Running the same command again continues every run from its ``checkpoints/last.ckpt`` (``ckpt_path=last``; a
run with none starts fresh), so a budget of short calls adds up to the full 100k iterations; each run's curve
joins its segments (``metrics.part*.csv`` and ``metrics.csv``).

    python benchmarks/stacked_mnist.py --out results/stacked_mnist                    # the paper's 100k iterations
    python benchmarks/stacked_mnist.py --packs 1,2 --seeds 0,1 --wall 420 dataset.root=data dataset.split=test
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from ganforge.report import read_metrics
from ganforge.toy_benchmark import mean_se, short_head

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = {1: ("DCGAN (published)", 99.0, 3.40), 2: ("PacDCGAN2 (published)", 1000.0, 0.06)}


def label(pack: int) -> str:
    return "DCGAN" if pack == 1 else f"PacDCGAN{pack}"


def run_command(pack: int, seed: int, run: Path, overrides: list[str]) -> list[str]:
    """``train.py`` for one (pack, seed); ``ckpt_path=last`` unless the overrides name a checkpoint, so running
    the benchmark again continues each run where its last call stopped it."""
    resume = [] if any(o.startswith("ckpt_path=") for o in overrides) else ["ckpt_path=last"]
    return [sys.executable, str(ROOT / "train.py"), "experiment=dcgan_stacked_mnist", f"pack={pack}", f"seed={seed}",
            "logger=csv", f"hydra.run.dir={run}", *resume, *overrides]  # fmt: skip


def launch(packs: list[int], seeds: list[int], out: Path, overrides: list[str]) -> dict[tuple[int, int], subprocess.Popen]:
    procs = {}
    for pack in packs:
        for seed in seeds:
            run = out / f"pack{pack}-seed{seed}"
            run.mkdir(parents=True, exist_ok=True)
            cmd = run_command(pack, seed, run, overrides)
            print(f"[{label(pack)} seed {seed}] {shlex.join(cmd)}", flush=True)
            procs[pack, seed] = subprocess.Popen(cmd, stdout=open(run / "stdout.log", "a"), stderr=subprocess.STDOUT)
    return procs


def wait(procs: dict[tuple[int, int], subprocess.Popen], wall: float | None) -> None:
    t0 = time.monotonic()
    while any(p.poll() is None for p in procs.values()):
        if wall is not None and time.monotonic() - t0 > wall:
            for p in procs.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)  # ganforge saves iteration N to checkpoints/ and exits
            deadline = time.monotonic() + 120
            while any(p.poll() is None for p in procs.values()) and time.monotonic() < deadline:
                time.sleep(1)
            for p in procs.values():
                if p.poll() is None:
                    p.kill()
            break
        time.sleep(2)
    print(f"all runs stopped after {time.monotonic() - t0:.0f} s", flush=True)


def curve(run: Path) -> list[tuple[int, float, float]]:
    """(iteration, modes, KL) of every validation in the run's CSV log, resumed segments joined."""
    series = read_metrics(run)
    kl = dict(series.get("val/mode_kl", []))
    return [(i, m, kl[i]) for i, m in series.get("val/modes", []) if i in kl]


def fmt_mean_se(v: list[float]) -> str:
    """Mean ± standard error over seeds (toy_benchmark's mean_se), the mean alone for one seed, '-' for none."""
    if not v:
        return "-"
    m, se = mean_se(v)
    return f"{m:.4g}" if math.isnan(se) else f"{m:.4g} ± {se:.2g}"


def summarize(out: Path, packs: list[int], seeds: list[int], command: str, elapsed: float) -> tuple[str, list[str]]:
    """Write table.md, runs.csv, curves.csv and the plots; return the table and the runs with no evaluation."""
    runs, curves, missing = [], [], []
    for pack in packs:
        for seed in seeds:
            c = curve(out / f"pack{pack}-seed{seed}")
            curves += [(pack, seed, *row) for row in c]
            if not c:
                missing.append(f"pack{pack}-seed{seed}")
            runs.append((pack, seed, *(c[-1] if c else (0, math.nan, math.nan))))
    with open(out / "runs.csv", "w", newline="") as f:
        csv.writer(f).writerows([("method", "pack", "seed", "iteration", "modes", "mode_kl")] + [(label(p), p, *r) for p, *r in runs])
    with open(out / "curves.csv", "w", newline="") as f:
        csv.writer(f).writerows([("pack", "seed", "iteration", "modes", "mode_kl")] + curves)
    lines = ["| method | seeds | iterations | modes /1000 | KL to uniform |", "|---|---|---|---|---|"]
    for pack in packs:
        if pack in PUBLISHED:
            name, modes, kl = PUBLISHED[pack]
            lines.append(f"| {name} | - | 100,000 | {modes:g} | {kl:g} |")
        mine = [r for r in runs if r[0] == pack and not math.isnan(r[3])]
        iters = sorted({r[2] for r in mine})
        lines.append(f"| {label(pack)} (ganforge) | {len(mine)} | {', '.join(f'{i:,}' for i in iters) or '-'} "
                     f"| {fmt_mean_se([r[3] for r in mine])} | {fmt_mean_se([r[4] for r in mine])} |")  # fmt: skip
    commit = short_head(ROOT)
    text = "\n".join(lines) + (
        f"\n\nCommand: `{command}`  \nCommit: {commit}; {device()}; {elapsed / 60:.1f} min of wall time in this call, "
        f"all runs at once (a resumed run also trained in earlier calls). "
        f"Each row is the last evaluation of each run (mean ± standard error over seeds).\n"
    )
    (out / "table.md").write_text(text)
    plot(out, packs, seeds, curves)
    return text, missing


def device() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{gpu}, {os.cpu_count()} CPU cores ({platform.machine()}), torch {torch.__version__}"


def plot(out: Path, packs: list[int], seeds: list[int], curves: list[tuple]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for pack in packs:
        for seed in seeds:
            c = [r for r in curves if r[0] == pack and r[1] == seed]
            if c:
                kw = {"color": f"C{packs.index(pack)}", "ls": "-:-."[seeds.index(seed) % 3], "label": f"{label(pack)} seed {seed}"}
                axes[0].plot([r[2] for r in c], [r[3] for r in c], marker="o", **kw)
                axes[1].plot([r[2] for r in c], [r[4] for r in c], marker="o", **kw)
    axes[0].set(xlabel="iteration", ylabel="modes captured (of 1,000)", ylim=(0, 1010))
    axes[1].set(xlabel="iteration", ylabel="KL(mode histogram ‖ uniform)", yscale="log")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    grids = [(pack, seed, out / f"pack{pack}-seed{seed}" / "samples" / "latest.png") for pack in packs for seed in seeds]
    grids = [g for g in grids if g[2].is_file()]
    if grids:
        fig, axes = plt.subplots(1, len(grids), figsize=(3.2 * len(grids), 3.5), squeeze=False)
        for ax, (pack, seed, png) in zip(axes[0], grids):
            ax.imshow(plt.imread(png))
            ax.set_title(f"{label(pack)}, seed {seed}", fontsize=9)
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(out / "samples.png", dpi=110)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--packs", default="1,2", help="comma-separated packing degrees: 1 = DCGAN, 2 = PacDCGAN2, ...")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--wall", type=float, default=None, help="stop every run after this many seconds (SIGTERM)")
    p.add_argument("--out", type=Path, default=Path("results/stacked_mnist"))
    p.add_argument("--summarize-only", action="store_true", help="only read the runs already in --out")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run, e.g. dataset.root=~/data")
    a = p.parse_args(argv)
    try:
        packs, seeds = [int(x) for x in a.packs.split(",") if x], [int(x) for x in a.seeds.split(",") if x]
    except ValueError:
        p.error("--packs and --seeds take comma-separated integers, e.g. --packs 1,2 --seeds 0,1")
    if not packs or not seeds or min(packs) < 1 or min(seeds) < 0:
        p.error("--packs needs integers >= 1 and --seeds integers >= 0")
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    if not a.summarize_only:
        wait(launch(packs, seeds, out, a.overrides), a.wall)
    text, missing = summarize(out, packs, seeds, shlex.join(["python", "benchmarks/stacked_mnist.py", *argv]), time.monotonic() - t0)
    print(text)
    if missing:
        print(f"error: no evaluation in {', '.join(missing)}: see stdout.log in each run folder", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
