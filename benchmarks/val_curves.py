"""Validation curves of several runs, grouped: one panel per metric, one colour per group, one line per run.

    python benchmarks/val_curves.py --out docs/curves.png "no noise=RUN_DIR,RUN_DIR" "noise=RUN_DIR,..."

Reads each run's ``csv/metrics.csv`` (``logger=csv``); writes the figure and, beside it, the same numbers as a
long-format CSV (group, run, step, metric, value).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def read_curves(run: Path, metrics: list[str]) -> dict[str, list[tuple[int, float]]]:
    rows = list(csv.DictReader(open(run / "csv" / "metrics.csv")))
    return {m: [(int(float(r["step"])), float(r[m])) for r in rows if r.get(m)] for m in metrics}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("groups", nargs="+", help='"LABEL=RUN_DIR[,RUN_DIR...]"')
    p.add_argument("--metrics", default="val/hq_frac,val/modes", help="comma-separated metric columns")
    p.add_argument("--out", type=Path, required=True, help="the figure (.png); the CSV goes beside it")
    a = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = a.metrics.split(",")
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    rows = []
    for i, group in enumerate(a.groups):
        label, _, dirs = group.partition("=")
        for j, d in enumerate(Path(x) for x in dirs.split(",")):
            curves = read_curves(d, metrics)
            for ax, m in zip(axes[0], metrics):
                xs, ys = zip(*curves[m]) if curves[m] else ((), ())
                ax.plot(xs, ys, color=f"C{i}", alpha=0.8, lw=1.2, label=label if j == 0 else None)
                rows += [(label, d.name, s, m, v) for s, v in curves[m]]
    for ax, m in zip(axes[0], metrics):
        ax.set(xlabel="iteration", title=m)
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=110)
    with open(a.out.with_suffix(".csv"), "w", newline="") as f:
        csv.writer(f).writerows([("group", "run", "step", "metric", "value"), *rows])
    print(f"written: {a.out}, {a.out.with_suffix('.csv')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
