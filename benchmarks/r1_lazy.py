"""Lazy R1 against R1 on every D update, scored by the TRUE JSD(p_data || p_G), over seeds.

``experiment=jsd_gaussian1d`` (two 1-D Gaussians; G with a 1-D latent, so ``val/jsd_true`` is exact) is trained
once per seed and arm, one Hydra multirun per arm (``--jobs`` at once):

- ``none``: no penalty;  ``every``: ``loss.r1_weight=GAMMA`` (R1 on every D update);
- ``lazyK``: ``loss.r1_weight=GAMMA loss.r1_every=K`` (on every K-th D update, weighted K times; StyleGAN2).

Each run is summarized by ``val/jsd_true`` (every ``val_every`` iterations): ``J_all``, its mean over the whole
run, and ``J_late``, its mean over the last third (a curve that swings is not judged by one validation), and by
``train/r1`` (E‖∇ₓD‖² on real data, logged on the D updates that take the penalty: lazily, after K−1 without). Each arm
is compared with ``every`` seed by seed (mean ± standard error of the paired difference), as the rule written
before the first fresh-seed run reads it (``docs/r1_lazy_gaussian1d_rule.md``). Writes in ``--out``: ``table.md``,
``runs.csv`` (one row per run) and ``curves.png`` (each arm's mean curve over seeds, seeds faint).

    python benchmarks/r1_lazy.py --seeds 1-10                          # 4 arms x 10 seeds, ~45 min on 2 CPU cores
    python benchmarks/r1_lazy.py --seeds 0 --arms none,lazy16 max_iters=300 val_every=50   # a smoke run

Re-running skips the runs already finished (``ganforge.sweeps``); ``--summarize-only`` only reads them.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import re
import shlex
import sys
from pathlib import Path

from ganforge.report import read_metrics
from ganforge.sweeps import read_status
from ganforge.toy_benchmark import cell, mean_se, multirun_command, run_multirun, short_head

BASE = ["experiment=jsd_gaussian1d", "metrics.names=[jsd_true]", "max_iters=6000"]
KEY = "val/jsd_true"


def arm_overrides(arm: str, gamma: float) -> list[str]:
    """The loss overrides of one arm: ``none``, ``every`` or ``lazyK`` (K >= 2)."""
    if arm == "none":
        return []
    if arm == "every":
        return [f"loss.r1_weight={gamma}"]
    m = re.fullmatch(r"lazy(\d+)", arm)
    if m and int(m.group(1)) >= 2:
        return [f"loss.r1_weight={gamma}", f"loss.r1_every={int(m.group(1))}"]
    raise ValueError(f"unknown arm {arm!r}: use none, every or lazyK with K >= 2 (e.g. lazy16)")


def parse_seeds(text: str) -> list[int]:
    """``1-10`` or ``1,2,5`` (or both, ``0-3,7``) -> the seeds, in order."""
    seeds: list[int] = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        seeds += range(int(lo), int(hi or lo) + 1)
    if not seeds or min(seeds) < 0:
        raise ValueError(f"--seeds {text!r}: give seeds >= 0 as 1-10 or 1,2,5")
    return seeds


def summarize_run(run: Path) -> dict | None:
    """J_all and J_late of one run from its ``val/jsd_true`` curve (None when the run logged none)."""
    series = read_metrics(run)
    curve, r1 = series.get(KEY, []), [v for _, v in series.get("train/r1", [])]
    if not curve:
        return None
    last = curve[-1][0]
    late = [v for s, v in curve if s > last * 2 / 3]
    return {"iterations": last, "j_all": sum(v for _, v in curve) / len(curve), "j_late": sum(late) / len(late),
            "j_final": curve[-1][1], "r1": sum(r1) / len(r1) if r1 else math.nan, "curve": curve}  # fmt: skip


def collect(out: Path, arms: list[str], seeds: list[int]) -> dict[str, dict[int, dict]]:
    """The summaries of the runs that completed (``status.json``); a run that failed or was stopped part-way would
    be judged on part of its curve, so it is left out, and reported missing."""
    runs: dict[str, dict[int, dict]] = {}
    for arm in arms:
        for seed in seeds:
            run = out / arm / f"seed{seed}"
            st = read_status(run) or {}
            r = summarize_run(run) if st.get("status") == "completed" else None
            if r is not None:
                runs.setdefault(arm, {})[seed] = r
    return runs


def reading(diff: list[float]) -> str:
    """The rule's words for a paired difference (arm minus every): beyond 2 standard errors or not."""
    m, se = mean_se(diff)
    if math.isnan(se):
        return "one seed: no reading"
    if m > 2 * se:
        return "worse than every update"
    if m < -2 * se:
        return "better than every update"
    return f"no difference found (|diff| <= 2 SE = {2 * se:.4f})"


def table(runs: dict[str, dict[int, dict]], arms: list[str]) -> str:
    rows = ["| arm | seeds | J_all (mean JSD, nats) | J_late (last third) | final | J_all − every (paired) | J_late − every (paired) | E‖∇D‖² at the data when R1 is taken |",
            "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    ref = runs.get("every", {})
    verdicts = []
    for arm in arms:
        rs = runs.get(arm, {})
        if not rs:
            continue
        cells = [cell([r[k] for r in rs.values()], 4) for k in ("j_all", "j_late", "j_final")]
        paired = [s for s in rs if s in ref]
        diffs = {k: [rs[s][k] - ref[s][k] for s in paired] for k in ("j_all", "j_late")}
        dcells = ["–" if arm == "every" or not paired else cell(diffs[k], 4) for k in ("j_all", "j_late")]
        r1 = cell([r["r1"] for r in rs.values()], 4)
        rows.append(f"| {arm} | {len(rs)} | {' | '.join(cells)} | {' | '.join(dcells)} | {r1} |")
        if arm != "every" and paired:
            verdicts.append(f"- {arm} against every, over {len(paired)} seeds: J_all {reading(diffs['j_all'])}; "
                            f"J_late {reading(diffs['j_late'])}.")  # fmt: skip
    return "\n".join(rows + [""] + verdicts)


def plot(runs: dict[str, dict[int, dict]], arms: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for i, arm in enumerate(a for a in arms if a in runs):
        color = f"C{i}"
        curves = list(runs[arm].values())
        for r in curves:
            ax.plot(*zip(*r["curve"]), c=color, lw=0.6, alpha=0.25)
        by_step = [dict(r["curve"]) for r in curves]
        common = sorted(set.intersection(*(set(d) for d in by_step)))
        mean = [sum(d[s] for d in by_step) / len(by_step) for s in common]
        ax.plot(common, mean, c=color, lw=2, label=f"{arm} (mean of {len(curves)} seeds)")
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("true JSD(p_data || p_G), nats")
    ax.set_title("gaussian1d: no R1, R1 on every D update, lazy R1")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_outputs(runs: dict[str, dict[int, dict]], arms: list[str], out: Path, command: str) -> str:
    with open(out / "runs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arm", "seed", "iterations", "j_all", "j_late", "j_final", "r1_mean"])
        for arm in arms:
            for seed, r in sorted(runs.get(arm, {}).items()):
                w.writerow([arm, seed, r["iterations"], r["j_all"], r["j_late"], r["j_final"], r["r1"]])
    plot(runs, arms, out / "curves.png")
    commit = short_head()
    text = (f"{table(runs, arms)}\n\nCommand: `{command}`  \nCommit: {commit}; machine: {platform.machine()}, "
            f"{os.cpu_count()} CPU cores; mean ± standard error over seeds.\n")  # fmt: skip
    (out / "table.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="1-10", help="e.g. 1-10 or 1,2,5")
    p.add_argument("--arms", default="none,every,lazy4,lazy16", help="comma-separated: none, every, lazyK")
    p.add_argument("--gamma", type=float, default=10.0, help="R1's weight (loss.r1_weight) in every arm but none")
    p.add_argument("--jobs", type=int, default=2, help="runs at once (joblib launcher); 1 = Hydra's basic launcher")
    p.add_argument("--out", type=Path, default=Path("results/r1_lazy"))
    p.add_argument("--summarize-only", action="store_true", help="only read the runs already in --out")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run, e.g. max_iters=300")
    a = p.parse_args(argv)
    arms = [x for x in a.arms.split(",") if x]
    try:
        seeds = parse_seeds(a.seeds)
        per_arm = {arm: arm_overrides(arm, a.gamma) for arm in arms}
    except ValueError as e:
        p.error(str(e))
    if a.gamma <= 0:
        p.error(f"--gamma must be > 0, got {a.gamma}")
    out = a.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not a.summarize_only:
        for arm in arms:
            run_multirun(arm, multirun_command([*BASE, *per_arm[arm]], seeds, out / arm, "seed${seed}", a.jobs, a.overrides), a.jobs)
    runs = collect(out, arms, seeds)
    if not runs:
        print(f"error: no runs with {KEY} under {out}: run without --summarize-only first", file=sys.stderr)
        return 1
    print(write_outputs(runs, arms, out, shlex.join(["python", "benchmarks/r1_lazy.py", *argv])))
    print(f"written: {out / 'table.md'}, {out / 'runs.csv'}, {out / 'curves.png'}")
    missing = [f"{arm}/seed{s}" for arm in arms for s in seeds if s not in runs.get(arm, {})]
    if missing:
        print(f"error: no completed run with a {KEY} curve for {', '.join(missing)} (see each run's status.json and train.log)", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
