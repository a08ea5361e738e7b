"""Validation curves of several runs, grouped: one panel per metric, one colour per group, one line per run.

    python benchmarks/val_curves.py --out docs/curves.png "no noise=RUN_DIR,RUN_DIR" "noise=RUN_DIR,..."
    python benchmarks/val_curves.py --out docs/curves.png --escape 0.10 "A=..." "B=..."   # and when each run left the blur

Reads each run's ``csv/metrics.csv`` (``logger=csv``; with a resumed run's ``metrics.part*.csv``); writes the figure and, beside it, the same numbers as a
long-format CSV (group, run, step, metric, value). ``--escape T`` also writes ``<out stem>_escape.md``: per run
the first validation step whose ``val/hq_frac`` is >= T (the step a grid run leaves its blurred phase), or
"stuck" if none, with the modes and HQ of its last validation; per group the stuck count and the mean escape step.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from ganforge.report import read_metrics


def is_csv_run(run: Path) -> bool:
    """Whether ``run`` is a run dir trained with ``logger=csv`` (it has ``csv/metrics.csv``)."""
    return (run / "csv" / "metrics.csv").is_file()


def read_curves(run: Path, metrics: list[str]) -> dict[str, list[tuple[int, float]]]:
    """Each metric's (step, value) pairs, a resumed run's segments joined (``ganforge.report.read_metrics``)."""
    if not is_csv_run(run):
        raise FileNotFoundError(f"{run / 'csv' / 'metrics.csv'}: not a run dir trained with logger=csv")
    series = read_metrics(run)
    return {m: series.get(m, []) for m in metrics}


def escape_table(groups: list[tuple[str, list[Path]]], threshold: float) -> str:
    """A markdown table: each run's first step with val/hq_frac >= threshold, and its last validation."""
    lines = [f"| group | run | escape step (HQ >= {threshold:.0%}) | last step | modes | HQ |", "|---|---|---|---|---|---|"]
    summary = []
    for label, dirs in groups:
        escapes, stuck = [], 0
        for d in dirs:
            c = read_curves(d, ["val/hq_frac", "val/modes"])
            hq, modes = c["val/hq_frac"], c["val/modes"]
            if not hq:
                lines.append(f"| {label} | {d.name} | no validation yet | | | |")
                continue
            esc = next((s for s, v in hq if v >= threshold), None)
            stuck += esc is None
            escapes += [esc] if esc is not None else []
            last = modes[-1][1] if modes else float("nan")
            lines.append(f"| {label} | {d.name} | {esc if esc is not None else 'stuck'} | {hq[-1][0]} | {last:.0f} | {hq[-1][1]:.1%} |")
        mean = f"{sum(escapes) / len(escapes):,.0f}" if escapes else "-"
        summary.append(f"| {label} | {len(dirs)} runs | mean escape of the {len(escapes)} that left: {mean} | stuck: {stuck} | | |")
    return "\n".join(lines + summary) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("groups", nargs="+", help='"LABEL=RUN_DIR[,RUN_DIR...]"')
    p.add_argument("--metrics", default="val/hq_frac,val/modes", help="comma-separated metric columns")
    p.add_argument("--out", type=Path, required=True, help="the figure (.png); the CSV goes beside it")
    p.add_argument("--escape", type=float, default=None, metavar="T", help="also tabulate each run's first step with val/hq_frac >= T")
    a = p.parse_args(argv)
    groups = [(label, [Path(x) for x in dirs.split(",")]) for label, _, dirs in (g.partition("=") for g in a.groups)]
    for g, (label, dirs) in zip(a.groups, groups):  # checked before any plotting
        missing = [str(d) for d in dirs if not is_csv_run(d)]
        if "=" not in g or missing:
            p.error(f"group {g[:80]!r}: {', '.join(missing)[:200] or 'no run dirs'}: not a run dir trained with logger=csv; "
                    "give LABEL=DIR,DIR,... (the first '=' ends the label, so a label cannot contain '=')")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = a.metrics.split(",")
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    rows = []
    for i, (label, dirs) in enumerate(groups):
        for j, d in enumerate(dirs):
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
    if a.escape is not None:
        table = escape_table(groups, a.escape)
        (a.out.parent / f"{a.out.stem}_escape.md").write_text(table)
        print(table, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
