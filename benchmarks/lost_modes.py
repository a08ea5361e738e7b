"""How often a toy recipe ends with a mode lost, from mode_collapse.py's runs.csv files, and Fisher's exact test of
that rate against a reference count (a pre-registered comparison: docs/mode_collapse_grid25_uniform_reliability_rule.md).

    python benchmarks/lost_modes.py --dataset grid25 --against 5/44 OUT_A/runs.csv OUT_B/runs.csv

A run *fails* when it ends with a mode not held: fewer than all of the dataset's modes hold HELD_SHARE of a fair
share of the benchmark's 100,000-sample pool (runs.csv `modes_held_100k`, written by the benchmark's sampler). Only
completed runs count, one row per seed: a csv that scores each run under two samplers (a `sampler` column) needs
`--sampler`; one without that column, as the benchmark writes it, scores the runs' own sampler and is always read. The test is
one-sided (are failures rarer here than in the reference?); p is the chance of this few failures or fewer, given
the total, if both came from one rate.

A second line gives the same runs' means ± standard error over seeds (modes, HQ, reverse KL, mode width, as the
benchmark's table computes them) and the range of their emptiest mode's share; `--hq-against MEAN,SE` also compares
the HQ mean with a reference's: how far below it, against one standard error of the difference
(sqrt(SE^2 + SE_ref^2)), the margin docs/mode_collapse_grid25_gp003_rule.md allows.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

from scipy.stats import fisher_exact

from ganforge.toy_benchmark import N_MODES, mean_se


def read_runs(paths: list[Path], dataset: str, sampler: str | None) -> dict[int, dict]:
    """The completed runs of `dataset`, by seed; a seed found twice (two samplers, two files) is an error."""
    runs: dict[int, dict] = {}
    for path in paths:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row["dataset"] != dataset or row["status"] != "completed":
                    continue
                if sampler is not None and row.get("sampler", sampler) != sampler:
                    continue  # a csv with no sampler column is the benchmark's own: its runs' sampler
                seed = int(row["seed"])
                if seed in runs:
                    raise SystemExit(f"seed {seed} of {dataset} is in the csvs twice ({path}; samplers "
                                     f"{runs[seed].get('sampler')!r} and {row.get('sampler')!r}): pick one with --sampler")
                if not row.get("modes_held_100k"):
                    raise SystemExit(f"{path} has no modes_held_100k for seed {seed}: re-score it with "
                                     "mode_collapse.py --summarize-only")
                runs[seed] = row
    return runs


def failures(runs: dict[int, dict], n_modes: int) -> list[int]:
    """The seeds whose run ends with fewer than n_modes modes held."""
    return sorted(s for s, row in runs.items() if float(row["modes_held_100k"]) < n_modes)


def one_sided_p(failed: int, runs: int, ref_failed: int, ref_runs: int) -> float:
    """Fisher's exact p that failures are no rarer here than in the reference (alternative: rarer)."""
    return float(fisher_exact([[failed, runs - failed], [ref_failed, ref_runs - ref_failed]], alternative="less")[1])


# runs.csv column, label, digits, unit: the means line (a column the csv lacks is left out)
MEANS = (("modes", "modes", 2, ""), ("hq_percent", "HQ", 1, "%"), ("reverse_kl", "reverse KL", 4, ""), ("mode_width", "mode width", 2, ""))


def column(runs: dict[int, dict], name: str) -> list[float]:
    return [float(row[name]) for row in runs.values() if row.get(name) not in (None, "")]


def means_line(runs: dict[int, dict], hq_against: tuple[float, float] | None) -> str:
    """Mean ± SE over the runs of each MEANS column the csv has, the emptiest mode's share as a range, and with
    ``hq_against`` (mean, SE) how far the HQ mean falls below that reference, against one SE of the difference."""
    parts = []
    for name, label, digits, unit in MEANS:
        v = column(runs, name)
        if v:
            m, se = mean_se(v)
            parts.append(f"{label} {m:.{digits}f}" + ("" if math.isnan(se) else f" ± {se:.{digits}f}") + unit)
    share = column(runs, "min_share_100k")
    if share:
        parts.append(f"emptiest mode {min(share):.2f}-{max(share):.2f} of a fair share")
    text = f"over the {len(runs)}: " + ", ".join(parts)
    hq = column(runs, "hq_percent")
    if hq_against is not None and hq:
        m, se = mean_se(hq)
        ref, ref_se = hq_against
        gap, se_gap = ref - m, math.hypot(0.0 if math.isnan(se) else se, ref_se)
        verdict = "within" if gap <= se_gap else "more than"
        side = "below" if gap >= 0 else "above"  # above the reference passes whatever the margin
        text += (f"; HQ {abs(gap):.1f} points {side} the reference's {ref:g} ± {ref_se:g}%, {verdict} one SE of the difference "
                 f"({se_gap:.1f})")
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("csvs", nargs="+", type=Path, help="runs.csv files of mode_collapse.py")
    p.add_argument("--dataset", required=True, choices=sorted(N_MODES))
    p.add_argument("--against", required=True, help="the reference: FAILED/RUNS, e.g. 5/44")
    p.add_argument("--sampler", help="only rows of this runs.csv `sampler`, e.g. 'truncation 0.05'")
    p.add_argument("--hq-against", metavar="MEAN,SE", help="a reference HQ %% mean and its SE, e.g. 99.1,0.1")
    a = p.parse_args(argv)
    hq_against = None
    if a.hq_against is not None:
        try:
            hq_against = tuple(float(x) for x in a.hq_against.split(","))
        except ValueError:
            hq_against = ()
        if len(hq_against) != 2 or hq_against[1] < 0:
            p.error(f"--hq-against {a.hq_against!r}: give the reference HQ as MEAN,SE in percent, e.g. 99.1,0.1")
    ref_failed, slash, ref_runs = a.against.partition("/")
    if not (slash and ref_failed.isdigit() and ref_runs.isdigit() and int(ref_failed) <= int(ref_runs) > 0):
        p.error(f"--against {a.against!r}: give the reference as FAILED/RUNS, e.g. 5/44")
    for path in a.csvs:
        if not path.is_file():
            p.error(f"{path}: no such file (give mode_collapse.py's runs.csv)")
    runs = read_runs(a.csvs, a.dataset, a.sampler)
    if not runs:
        p.error(f"no completed {a.dataset} run in {', '.join(map(str, a.csvs))}")
    failed = failures(runs, N_MODES[a.dataset])
    pval = one_sided_p(len(failed), len(runs), int(ref_failed), int(ref_runs))
    seeds = sorted(runs)
    print(f"{a.dataset}: {len(runs)} completed runs (seeds {seeds[0]}-{seeds[-1]}), {len(failed)} with a mode not held"
          + (f" (seeds {', '.join(map(str, failed))})" if failed else "")
          + f"; against {a.against}: Fisher's exact, one-sided, p = {pval:.3f}")
    print(means_line(runs, hq_against))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
