"""The emptiest mode's share per checkpoint, from latent_cells.py's csv: one panel per group, one line per run
(coloured and named: the runs whose last checkpoint leaves a mode under the held line; grey: the others).

    python benchmarks/latent_cells.py A --dataset grid25 --iters 20000:150000:5000 --no-plane
    python benchmarks/share_traces.py --out docs/traces.png "recipe=A/latent_cells.csv" "candidate=B/latent_cells.csv"
    python benchmarks/share_traces.py --out docs/traces.png "recipe=A/latent_cells.csv" "candidate=B/latent_cells.csv" \\
        --earlier candidate,recipe     # and does the candidate settle earlier? (Mann-Whitney)

The share is the emptiest mode's high-quality samples over a fair share (1: balanced), on a log scale; the dashed
line is HELD_SHARE, below which the benchmark's table counts a mode as not held. Prints, per group and checkpoint,
the median share and how many runs are below the line, and per run the last checkpoint it was below the line
(during the blur of a grid run every mode is thin: the line is crossed for good after it, or never).

A run's *settle time* is one checkpoint interval after that last checkpoint below the line (its first checkpoint if
none is; "never" if its last is below, ranked after every number). ``--earlier A,B`` prints each run's settle time
and tests whether group A settles earlier than group B: Mann-Whitney U, one-sided, scipy's, ties corrected for
(the pre-registered measure of docs/mode_collapse_grid25_noise_tail_rule.md).
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
from pathlib import Path

from ganforge.toy_benchmark import HELD_SHARE

FLOOR = 1e-4  # a share of 0 (a mode no sample lands on) is drawn here on the log scale


def read_traces(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Each run's (iteration, min_share) pairs, numbered checkpoints only, in iteration order."""
    runs: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["iteration"] != "last" and not math.isnan(share := float(row["min_share"])):
                runs.setdefault(row["run"], []).append((int(row["iteration"]), share))
    return {run: sorted(points) for run, points in runs.items()}


def summary(label: str, runs: dict[str, list[tuple[int, float]]]) -> list[str]:
    """Per checkpoint, the median share and the runs below HELD_SHARE; per run, its last checkpoint below it."""
    iters = sorted({it for points in runs.values() for it, _ in points})
    lines = [f"{label}: iteration, median min_share, runs below {HELD_SHARE} (of {len(runs)})"]
    for it in iters:
        shares = [s for points in runs.values() for i, s in points if i == it]
        lines.append(f"  {it:>7}  {statistics.median(shares):.3f}  {sum(s < HELD_SHARE for s in shares)}/{len(shares)}")
    for run, points in runs.items():
        low = [i for i, s in points if s < HELD_SHARE]
        lines.append(f"  {run}: " + (f"last below {HELD_SHARE} at {low[-1]}" if low else f"never below {HELD_SHARE}") + f", ends at {points[-1][1]:.3f}")
    return lines


def settle_time(points: list[tuple[int, float]]) -> float:
    """One checkpoint interval after the last checkpoint under HELD_SHARE (the first if none is); inf if the last is."""
    if len(points) < 2:
        raise SystemExit(f"a settle time needs two or more checkpoints, got {points}: run latent_cells.py with --iters START:STOP:STEP")
    if points[-1][1] < HELD_SHARE:
        return math.inf
    under = [i for i, s in points if s < HELD_SHARE]
    return float(under[-1] + points[1][0] - points[0][0]) if under else float(points[0][0])


def earlier_p(times: list[float], reference: list[float]) -> float:
    """One-sided Mann-Whitney p that ``times`` are not earlier than ``reference`` (alternative: earlier)."""
    from scipy.stats import mannwhitneyu

    big = 2 * max([t for t in times + reference if math.isfinite(t)], default=1.0) + 1.0  # "never": last, all tied
    a, b = ([t if math.isfinite(t) else big for t in xs] for xs in (times, reference))
    return float(mannwhitneyu(a, b, alternative="less").pvalue)


def settle_report(label: str, runs: dict[str, list[tuple[int, float]]]) -> tuple[list[str], list[float]]:
    """Each run's settle time, and a line with their range and median."""
    times = {run: settle_time(points) for run, points in runs.items()}
    k = lambda t: "never" if math.isinf(t) else f"{t / 1000:g}k"  # noqa: E731
    finite = sorted(t for t in times.values() if math.isfinite(t))
    lines = [f"  {run}: settled {k(t)}" for run, t in times.items()]
    lines.append(f"{label}: {len(times)} runs, settled {k(finite[0]) + '-' + k(finite[-1]) if finite else 'none'}, "
                 f"median {k(statistics.median(times.values()))}, never: {sum(math.isinf(t) for t in times.values())}")
    return lines, list(times.values())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("groups", nargs="+", help='"LABEL=CSV[,CSV...]" (latent_cells.csv files)')
    p.add_argument("--out", type=Path, required=True, help="the figure (.png)")
    p.add_argument("--earlier", metavar="A,B", help="test whether group A settles earlier than group B (labels)")
    a = p.parse_args(argv)
    groups = []
    for label, eq, paths in (g.partition("=") for g in a.groups):
        if not eq or not paths:
            p.error(f"{label!r}: give each group as LABEL=CSV[,CSV...]")
        runs: dict[str, list[tuple[int, float]]] = {}
        for path in map(Path, paths.split(",")):
            if not path.is_file():
                p.error(f"{path}: no such file; give the latent_cells.csv that latent_cells.py wrote into its OUT directory")
            traces = read_traces(path)
            if not traces:
                p.error(f"{path}: no numbered checkpoint with a min_share: run latent_cells.py with --iters 20000:150000:5000")
            runs.update(traces)
        groups.append((label, runs))
    if a.earlier:
        pair = a.earlier.split(",")
        if len(pair) != 2 or not set(pair) <= {label for label, _ in groups} or pair[0] == pair[1]:
            p.error(f"--earlier {a.earlier}: give two different group labels, A,B, of {', '.join(label for label, _ in groups)}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.6), squeeze=False, sharey=True)
    for ax, (label, runs) in zip(axes[0], groups):
        short = {run: k for k, run in enumerate(r for r, points in runs.items() if points[-1][1] < HELD_SHARE)}  # ends not held
        for run, points in runs.items():
            xs, ys = zip(*points)
            style = dict(lw=1.3, alpha=0.9, color=f"C{short[run] % 10}", label=f"{run} (ends not held)") if run in short else dict(lw=0.8, alpha=0.45, color="0.55")
            ax.plot([x / 1000 for x in xs], [max(y, FLOOR) for y in ys], **style)
        ax.plot([], [], color="0.55", lw=0.8, label=f"the other {len(runs) - len(short)} runs" if short else f"all {len(runs)} runs (none ends not held)")
        ax.axhline(HELD_SHARE, color="k", ls="--", lw=0.8)
        ax.set(yscale="log", xlabel="iteration (k)")
        ax.set_title(f"{label} ({len(runs)} runs)", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6, loc="lower right")
    axes[0][0].set_ylabel("emptiest mode's share of a fair share")
    fig.suptitle(f"dashed: {HELD_SHARE}, below which a mode is not held; a share of 0 is drawn at {FLOOR:g}", fontsize=8)
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=120)
    plt.close(fig)
    for label, runs in groups:
        print("\n".join(summary(label, runs)))
    if a.earlier:
        (lines_a, times_a), (lines_b, times_b) = (settle_report(g, dict(groups)[g]) for g in a.earlier.split(","))
        print("\n".join(lines_a + lines_b))
        print(f"{a.earlier.replace(',', ' settles earlier than ')}? Mann-Whitney U, one-sided: p = {earlier_p(times_a, times_b):.3f}")
    print(f"written: {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
