"""PacGAN's Table 1 (Lin et al. 2018) in one command: mode collapse on the 2D ring and grid, over seeds.

``python benchmarks/mode_collapse.py`` (``ganforge-modes``) trains every method on ``ring8`` and ``grid25`` for
each seed as one Hydra multirun per method (joblib launcher: ``--jobs`` runs at once), then evaluates every
run's final generator on 2,500 samples with the published protocol (:func:`ganforge.metrics.modes.mode_coverage`:
high quality = within 3 stds of the nearest mode, a mode is captured with >= 1 such sample, reverse KL =
KL(histogram of HQ samples over modes || uniform)) and writes, in ``--out``:

- ``table.md``: mean ± standard error over seeds of modes, HQ % and reverse KL per method and dataset, beside
  the published rows, then each dataset's *mode width* (HQ samples' RMS distance to their mode over the data's:
  what HQ cannot see, since modes drawn too narrow score higher), with the command, commit, machine and wall time,
  and the runs with a mode the 2,500 samples count but G does not hold (see ``HELD_SHARE``);
- ``runs.csv``: one row per run (with its last logged ``val/jsd_d``, D's held-out JSD estimate); ``scatter_<method>_<dataset>.png``: one panel per seed against the true modes.

Sweeps are resumable (see :mod:`ganforge.sweeps`): re-running the command skips finished runs.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ganforge.metrics.modes import mode_coverage
from ganforge.sweeps import read_status

DATASETS = ("ring8", "grid25")
EVAL_SAMPLES = 2500  # the published protocol's sample count
EVAL_SEED = 2333  # fixed noise for the final evaluation (PacGAN's GraphLogger seed)
# The protocol counts a mode on one sample of 2,500, which a bridge G draws between two other modes can supply
# (grid seed 203 of the recipe: a mode lost in training, crossed by 0.04% of G's samples). So every run is also
# sampled POOL_SAMPLES times, by the same sampler from other noise, and a mode is *held* when at least HELD_SHARE
# of a fair share (1/K of the high-quality samples) lands on it.
POOL_SAMPLES, POOL_SEED, HELD_SHARE = 100_000, EVAL_SEED + 1, 0.1


@dataclass(frozen=True)
class Method:
    label: str
    overrides: tuple[str, ...]


METHODS: dict[str, Method] = {
    "gan": Method("GAN (ganforge, paper's setup)", ("experiment=pacgan_toy", "pack=1")),
    "pacgan2": Method("PacGAN2 (ganforge, paper's setup)", ("experiment=pacgan_toy", "pack=2")),
    "pacgan3": Method("PacGAN3 (ganforge, paper's setup)", ("experiment=pacgan_toy", "pack=3")),
    "pacgan4": Method("PacGAN4 (ganforge, paper's setup)", ("experiment=pacgan_toy", "pack=4")),
    "ganforge": Method("**ganforge recipe** (`experiment=modes_best`)", ("experiment=modes_best",)),
}

# PacGAN, Table 1 (mean ± standard error over 10 trials): (modes, se), (HQ %, se), (reverse KL, se) per dataset
PUBLISHED: dict[str, dict[str, tuple[tuple[float, float], ...]]] = {
    "GAN (published)": {"ring8": ((6.3, 0.5), (98.2, 0.2), (0.45, 0.09)), "grid25": ((17.3, 0.8), (94.8, 0.7), (0.70, 0.07))},
    "ALI (published)": {"ring8": ((6.6, 0.3), (97.6, 0.4), (0.36, 0.04)), "grid25": ((24.1, 0.4), (95.7, 0.6), (0.14, 0.03))},
    "PacGAN2 (published)": {"ring8": ((7.9, 0.1), (95.6, 2.0), (0.07, 0.03)), "grid25": ((23.8, 0.7), (91.3, 0.8), (0.13, 0.04))},
    "PacGAN3 (published)": {"ring8": ((7.8, 0.1), (97.7, 0.3), (0.10, 0.02)), "grid25": ((24.6, 0.4), (94.2, 0.4), (0.06, 0.02))},
    "PacGAN4 (published)": {"ring8": ((7.8, 0.1), (95.9, 1.4), (0.07, 0.02)), "grid25": ((24.8, 0.2), (93.6, 0.6), (0.04, 0.01))},
}
N_MODES = {"ring8": 8, "grid25": 25}


# ------------------------------------------------------------------ training
def multirun_command(overrides: list[str], seeds: list[int] | range, sweep_dir: Path, subdir: str, jobs: int, extra: list[str]) -> list[str]:
    """One Hydra multirun of ``train.py`` over ``seeds``, each run in ``sweep_dir/<subdir>``, ``jobs`` at a time."""
    cmd = [sys.executable, "-m", "ganforge.cli.train", "-m", *overrides, f"seed={','.join(map(str, seeds))}",
           f"hydra.sweep.dir={sweep_dir}", f"hydra.sweep.subdir={subdir}", "logger=csv", *extra]  # fmt: skip
    if jobs > 1:
        cmd += ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}"]
    return cmd


def multirun_env(jobs: int) -> dict[str, str]:
    """The environment of a multirun: with ``jobs`` > 1, one intra-op thread share per job, so the processes share
    the cores instead of fighting over them (an OMP_NUM_THREADS the user set is kept)."""
    env = dict(os.environ)
    if jobs > 1:
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    return env


def run_multirun(name: str, cmd: list[str], jobs: int) -> int:
    """Run one multirun command, printing it and its wall time; its exit status."""
    print(f"[{name}] {shlex.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=multirun_env(jobs))
    print(f"[{name}] finished in {time.perf_counter() - t0:.0f} s (exit {proc.returncode})", flush=True)
    return proc.returncode


def sweep_command(method: str, datasets: list[str], seeds: range, out: Path, jobs: int, extra: list[str]) -> list[str]:
    return multirun_command([*METHODS[method].overrides, f"dataset={','.join(datasets)}"], seeds, out / method,
                            "${dataset.name}-seed${seed}", jobs, extra)  # fmt: skip


def train(methods: list[str], datasets: list[str], seeds: range, out: Path, jobs: int, extra: list[str]) -> None:
    for method in methods:
        run_multirun(method, sweep_command(method, datasets, seeds, out, jobs, extra), jobs)


# ------------------------------------------------------------------ evaluation
@dataclass
class RunResult:
    method: str
    dataset: str
    seed: int
    status: str
    modes: float = math.nan
    hq: float = math.nan  # percent
    kl: float = math.nan
    width: float = math.nan  # HQ samples' RMS distance to their mode / the data's (ganforge.metrics.modes)
    held: float = math.nan  # modes holding >= HELD_SHARE of a fair share of POOL_SAMPLES samples
    min_share: float = math.nan  # the emptiest mode's share of those, over a fair share
    wall_s: float = math.nan
    threads: str = ""  # torch's intra-op threads as the run trained, and ganforge's commit (status.json's "run")
    commit: str = ""
    span: tuple[str, str] = ("", "")  # started, finished (ISO times from status.json)
    iters: int = 0
    weights: str = ""  # the generator scored: g_ema (the EMA copy, when the run kept one) or generator
    jsd_d: float = math.nan  # the run's last logged val/jsd_d (D's held-out JSD estimate, of packs when D packs), at its last iteration
    extra: tuple[str, ...] = ()  # the run's Hydra overrides beyond its method's and the BOOKKEEPING ones (a candidate's change)
    samples: torch.Tensor | None = None


# overrides that leave the training itself as it was: which run, where it logs, how often it records, a resume
BOOKKEEPING = ("dataset", "seed", "logger", "ckpt_path", "val_every", "log_every", "ckpt_every", "sample_every")


def extra_overrides(overrides: list[str], method: str) -> tuple[str, ...]:
    """What a run changed beyond its method: its overrides less the method's own and the bookkeeping ones
    (``BOOKKEEPING``, ``hydra.*``, ``hydra/*``)."""
    fixed = set(METHODS[method].overrides) if method in METHODS else set()
    key = lambda o: o.split("=", 1)[0].lstrip("+~")  # noqa: E731
    return tuple(o for o in overrides if o not in fixed and key(o) not in BOOKKEEPING and not key(o).startswith(("hydra.", "hydra/")))


def method_label(method: str, results: list[RunResult], markdown: bool = True) -> str:
    """The method's label in the table and figures, with the overrides its runs added (``+ `loss.gp_weight=0.1```)
    so that a candidate's runs are not shown under the bare recipe's name; runs that differ list each set."""
    label = METHODS[method].label
    extras = sorted({r.extra for r in results if r.method == method and r.extra})
    if extras:
        label += " + " + " / ".join(f"`{' '.join(e)}`" for e in extras)
    return label if markdown else label.replace("*", "").replace("`", "")


def _wall(st: dict) -> float:
    try:
        t0, t1 = (dt.datetime.fromisoformat(st[k]) for k in ("started", "updated"))
        return (t1 - t0).total_seconds()
    except (KeyError, ValueError):
        return math.nan


def short_head(cwd: str | Path | None = None) -> str:
    """``git rev-parse --short HEAD`` in ``cwd`` (the current directory by default), "?" outside git: the commit a
    benchmark's table names."""
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=cwd).stdout.strip() or "?"


def _short(commit: str) -> str:
    return commit[:10] + ("+dirty" if commit.endswith("+dirty") else "")


def evaluate_run(run_dir: Path, method: str, jacobian_truncation: float | None = None, stopped: bool = False, ema: bool = True) -> RunResult | None:
    """The final generator of one run, scored on the protocol's 2,500 samples; ``jacobian_truncation`` overrides
    the run's own (None: the run's config decides; older runs, without the key, sample plainly). ``stopped``:
    score a run stopped early by SIGTERM too (status ``interrupted``), at its last checkpoint. ``ema=False``
    scores G itself where the run kept an EMA copy too (the copy otherwise)."""
    from ganforge.cli.sample import load_generator, sample
    from ganforge.cli.train import build_datamodule
    from ganforge.rejection import calibrate_jacobian_threshold
    from ganforge.report import read_metrics

    st = read_status(run_dir)
    if st is None:
        return None
    ov = dict(o.split("=", 1) for o in st.get("overrides", []) if "=" in o)
    env = st.get("run", {})  # absent in runs older than the record
    res = RunResult(method, ov.get("dataset", "?"), int(ov.get("seed", 0)), st.get("status", "?"), wall_s=_wall(st),
                    span=(st.get("started", ""), st.get("updated", "")), threads=env.get("threads", ""), commit=_short(env.get("git_commit", "")),
                    extra=extra_overrides(st.get("overrides", []), method))
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    accepted = ("completed", "interrupted") if stopped else ("completed",)
    if res.status not in accepted or not ckpt.is_file():
        return res
    gen, meta = load_generator(ckpt, ema=ema)
    dm = build_datamodule(meta["config"]["dataset"])
    q = meta["config"].get("jacobian_truncation", 0.0) if jacobian_truncation is None else jacobian_truncation
    limit = calibrate_jacobian_threshold(gen, q) if q else None  # once for both draws below
    x = torch.from_numpy(sample(gen, EVAL_SAMPLES, seed=EVAL_SEED, jacobian_truncation=q, jacobian_limit=limit))
    cov = mode_coverage(x, dm.modes, dm.stds)
    res.modes, res.hq, res.kl, res.width, res.samples = float(cov.modes), 100 * cov.hq_frac, cov.mode_kl, cov.mode_width, x
    pool = mode_coverage(torch.from_numpy(sample(gen, POOL_SAMPLES, seed=POOL_SEED, jacobian_truncation=q, jacobian_limit=limit)), dm.modes, dm.stds)
    res.held, res.min_share = float(modes_held(pool.counts)), pool.min_share
    res.iters, res.weights = int(meta.get("global_step") or 0), meta["weights"]
    res.jsd_d = dict(read_metrics(run_dir).get("val/jsd_d", [])).get(res.iters, math.nan)  # no mode labels needed
    return res


def modes_held(counts: list[int], share: float = HELD_SHARE) -> int:
    """How many modes hold at least ``share`` of a fair share (the mean count) of the high-quality samples."""
    total = sum(counts)
    return sum(c >= share * total / len(counts) for c in counts) if total else 0


def run_dirs(d: Path, pattern: str = "*") -> list[Path]:
    """The run directories of one method's sweep, seed 2 before seed 10."""
    return sorted((p for p in d.glob(pattern) if p.is_dir()), key=lambda p: (len(p.name), p.name))


def completed_checkpoints(d: Path, dataset: str) -> list[tuple[str, Path]]:
    """(run name, final checkpoint) of every completed ``<dataset>-seed<N>`` run under ``d``."""
    out = []
    for run in run_dirs(d, f"{dataset}-seed*"):
        st, ckpt = read_status(run), run / "checkpoints" / "last.ckpt"
        if st is not None and st.get("status") == "completed" and ckpt.is_file():
            out.append((run.name, ckpt))
    return out


def evaluate(out: Path, methods: list[str], jacobian_truncation: float | None = None, stopped: bool = False, ema: bool = True) -> list[RunResult]:
    results = []
    for method in methods:
        for run_dir in run_dirs(out / method):
            r = evaluate_run(run_dir, method, jacobian_truncation, stopped, ema)
            if r is not None:
                results.append(r)
    return results


def mean_se(values: list[float]) -> tuple[float, float]:
    v = [x for x in values if not math.isnan(x)]
    if not v:
        return math.nan, math.nan
    m = sum(v) / len(v)
    if len(v) < 2:
        return m, math.nan
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))
    return m, sd / math.sqrt(len(v))


def offline_parser(description: str, pool_help: str) -> argparse.ArgumentParser:
    """The arguments shared by the offline re-evaluations of a ``--out`` directory's final checkpoints
    (benchmarks/d_rejection.py, benchmarks/jacobian_truncation.py)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("out", type=Path, help="a --out directory of benchmarks/mode_collapse.py")
    p.add_argument("--method", default="ganforge")
    p.add_argument("--dataset", default="ring8", help="runs named <dataset>-seed<N>")
    p.add_argument("--pool", type=int, default=100_000, help=pool_help)
    return p


def write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        w.writerows(rows)


def cell(values: list[float], digits: int, pct: bool = False) -> str:
    """``mean ± standard error`` of ``values`` for a table cell."""
    return _fmt(*mean_se(values), digits, pct)


def _fmt(m: float, se: float, digits: int, pct: bool = False) -> str:
    if math.isnan(m):
        return "–"
    s = f"{m:.{digits}f}" + ("" if math.isnan(se) else f" ± {se:.{digits}f}")
    return s + ("%" if pct else "")


def table(results: list[RunResult], methods: list[str], datasets: list[str]) -> str:
    """The published columns per dataset, then each dataset's mode width (not published: –)."""
    head = "| method | " + " | ".join(f"{d} modes /{N_MODES.get(d, '?')} | {d} HQ | {d} rev. KL" for d in datasets)
    head += "".join(f" | {d} mode width" for d in datasets) + " | runs |"
    lines = [head, "|---|" + "---|" * (4 * len(datasets) + 1)]
    for label, row in PUBLISHED.items():
        cells = []
        for d in datasets:
            (m, ms), (h, hs), (k, ks) = row[d]
            cells += [_fmt(m, ms, 1), _fmt(h, hs, 1, True), _fmt(k, ks, 2)]
        cells += ["–"] * len(datasets)
        lines.append(f"| {label} | " + " | ".join(cells) + " | 10 |")
    for method in methods:
        cells, counts, widths = [], [], []
        for d in datasets:
            rs = [r for r in results if r.method == method and r.dataset == d]
            ok = [r for r in rs if not math.isnan(r.modes)]  # scored: completed (or, with --stopped, stopped early)
            early = sum(r.status != "completed" for r in ok)
            counts.append((f"{len(ok)}/{len(rs)}" if len(ok) != len(rs) else str(len(ok))) + (f" ({early} stopped early)" if early else ""))
            cells += [_fmt(*mean_se([r.modes for r in ok]), 1), _fmt(*mean_se([r.hq for r in ok]), 1, True),
                      _fmt(*mean_se([r.kl for r in ok]), 3)]  # fmt: skip
            widths.append(_fmt(*mean_se([r.width for r in ok]), 2))
        lines.append(f"| {method_label(method, results)} | " + " | ".join(cells + widths) + f" | {', '.join(counts)} |")
    return "\n".join(lines)


def scatter_grids(results: list[RunResult], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ganforge.data import Grid25DataModule, Ring8DataModule

    modes = {"ring8": Ring8DataModule().modes, "grid25": Grid25DataModule().modes}
    paths = []
    for method, dataset in sorted({(r.method, r.dataset) for r in results}):
        rs = sorted((r for r in results if r.method == method and r.dataset == dataset), key=lambda r: r.seed)
        cols = min(5, len(rs))
        rows = math.ceil(len(rs) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.4 * rows), squeeze=False)
        for ax in axes.flat:
            ax.set_axis_off()
        for ax, r in zip(axes.flat, rs):
            lim = 2.6 if dataset == "ring8" else 5.2
            if dataset in modes:
                mu = modes[dataset]
                ax.scatter(mu[:, 0], mu[:, 1], s=40, facecolors="none", edgecolors="tab:red", linewidths=0.8)
            if r.samples is not None:
                ax.scatter(r.samples[:, 0], r.samples[:, 1], s=1, c="k", alpha=0.3, rasterized=True, zorder=3)
                title = f"seed {r.seed}: {r.modes:.0f} modes, {r.hq:.0f}% HQ"
            else:
                title = f"seed {r.seed}: {r.status}"
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=title)
            ax.title.set_fontsize(8)
        fig.suptitle(f"{method_label(method, rs, markdown=False)} on {dataset}", fontsize=10 if len(rs) > 2 else 8)
        fig.tight_layout()
        p = out / f"scatter_{method}_{dataset}.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths.append(p)
    return paths


def write_outputs(results: list[RunResult], methods: list[str], datasets: list[str], out: Path, command: str) -> str:
    with open(out / "runs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "dataset", "seed", "status", "modes", "hq_percent", "reverse_kl", "mode_width", "modes_held_100k", "min_share_100k",
                    "iterations", "wall_s", "threads", "commit", "generator", "val_jsd_d"])  # fmt: skip
        for r in results:
            w.writerow([r.method, r.dataset, r.seed, r.status, r.modes, r.hq, r.kl, r.width, r.held, r.min_share, r.iters, r.wall_s, r.threads, r.commit, r.weights,
                        r.jsd_d])  # fmt: skip
    crossed = [f"{r.method} {r.dataset} seed {r.seed} ({r.modes - r.held:.0f})" for r in results if r.held < r.modes]
    ended = [r for r in results if r.status != "running"]  # a run still training (--summarize-only mid-sweep) has no run time yet
    walls = [r.wall_s for r in ended if not math.isnan(r.wall_s)]
    starts, ends = [r.span[0] for r in ended if r.span[0]], [r.span[1] for r in ended if r.span[1]]
    elapsed = (dt.datetime.fromisoformat(max(ends)) - dt.datetime.fromisoformat(min(starts))).total_seconds() if starts and ends else math.nan
    running = len(results) - len(ended)
    per_method = []
    for method in methods:
        for d in datasets:
            w = [r.wall_s for r in ended if r.method == method and r.dataset == d and not math.isnan(r.wall_s)]
            if w:
                per_method.append(f"{method}/{d} {sum(w) / len(w):.0f} s")
    commit = short_head()
    text = (
        f"{table(results, methods, datasets)}\n\n"
        f"Command: `{command}`  \nCommit: {commit}; machine: {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__}; {EVAL_SAMPLES} samples per evaluation, mean ± standard error over seeds.  \n"
        f"Wall time: {elapsed / 60:.1f} min from the first run's start to the last run's end (runs: {sum(walls) / 60:.1f} min "
        f"in all, several at once); mean per run: {', '.join(per_method)}"
        + (f"; {running} run{'s' * (running > 1)} still running, not counted" if running else "") + ".  \n"
        f"Modes counted on the {EVAL_SAMPLES:,} samples that hold under {HELD_SHARE:g} of a fair share of {POOL_SAMPLES:,} "
        f"more (crossed by G, not drawn; runs.csv `modes_held_100k`): " + (", ".join(crossed) if crossed else "none") + ".\n"
    )
    (out / "table.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="ganforge-modes", description=__doc__.splitlines()[0])
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--seeds", type=int, default=10, help="N seeds per method and dataset: first-seed .. first-seed+N-1")
    p.add_argument("--first-seed", type=int, default=0, help="the first seed (fresh seeds for a held-out check of a recipe)")
    p.add_argument("--jobs", type=int, default=2, help="runs at once (joblib launcher); 1 = Hydra's basic launcher")
    p.add_argument("--out", type=Path, default=Path("results/mode_collapse"))
    p.add_argument("--summarize-only", action="store_true", help="only evaluate the runs already in --out")
    p.add_argument("--jacobian-truncation", type=float, default=None, metavar="Q",
                   help="evaluate with this jacobian_truncation instead of each run's own (e.g. 0 or 0.02 on runs already in --out)")
    p.add_argument("--stopped", action="store_true",
                   help="also score runs stopped early by SIGTERM (status interrupted) at their last checkpoint; runs.csv has their iterations")
    p.add_argument("--no-ema", action="store_true",
                   help="score each run's generator itself, not the EMA copy that runs with ema_decay set keep and sample from")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run, e.g. max_iters=100")
    a = p.parse_args(argv)
    if a.jacobian_truncation is not None and not 0 <= a.jacobian_truncation < 1:
        p.error(f"--jacobian-truncation must be a fraction in [0, 1), got {a.jacobian_truncation}")
    methods = [m for m in a.methods.split(",") if m]
    datasets = [d for d in a.datasets.split(",") if d]
    unknown = [m for m in methods if m not in METHODS] + [d for d in datasets if d not in DATASETS]
    if unknown:
        p.error(f"unknown method or dataset {', '.join(unknown)}: methods are {', '.join(METHODS)}; datasets {', '.join(DATASETS)}")
    if a.seeds < 1 or a.first_seed < 0:
        p.error("--seeds must be >= 1 and --first-seed >= 0")
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not a.summarize_only:
        train(methods, datasets, range(a.first_seed, a.first_seed + a.seeds), out, a.jobs, a.overrides)
    results = evaluate(out, methods, a.jacobian_truncation, a.stopped, ema=not a.no_ema)
    if not results:
        print(f"error: no runs found under {out}: run without --summarize-only first", file=sys.stderr)
        return 1
    scatter_grids(results, out)
    command = shlex.join(["python", "benchmarks/mode_collapse.py", *argv])
    print(write_outputs(results, methods, datasets, out, command))
    print(f"written: {out / 'table.md'}, {out / 'runs.csv'}, {out}/scatter_*.png")
    failed = [r for r in results if math.isnan(r.modes)]  # neither completed nor, with --stopped, stopped early
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
