"""Sweeps: each job's status on disk, resuming an interrupted sweep, and a summary people can read.

Every run writes ``<run dir>/status.json`` (``running`` -> ``completed`` | ``failed`` | ``interrupted``,
with its overrides, final metrics and, when it failed, the one-line reason). In a Hydra multirun that
file makes a sweep resumable: re-running the same command with the same ``hydra.sweep.dir`` skips the
jobs that completed and continues the others from their ``checkpoints/last.ckpt``.

``ganforge-sweep SWEEP_DIR`` (``python -m ganforge.sweeps``) reads a multirun directory and prints one
row per configuration (the overrides but the seed) with mean ± std over seeds of the final metrics,
failed jobs as failed; it writes ``sweep_summary.csv`` (one row per job) and ``sweep_summary.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"
SEED_KEYS = ("seed",)


# ------------------------------------------------------------------ job status
def read_status(run_dir: str | Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(run_dir) / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None


def write_status(run_dir: str | Path, status: str, **fields: Any) -> None:
    """Atomically (re)write ``status.json``, keeping the fields written before."""
    path = Path(run_dir) / STATUS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {**(read_status(run_dir) or {}), **fields, "status": status, "updated": time.strftime("%Y-%m-%dT%H:%M:%S")}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1, default=str))
    tmp.replace(path)


def previous_job(run_dir: str | Path, overrides: list[str]) -> dict[str, Any] | None:
    """What an earlier run of this sweep job left: ``None`` when nothing. A job dir that holds another
    configuration's run is an error (re-running a sweep with changed overrides into the same dir)."""
    from ganforge.config import ConfigError

    prev = read_status(run_dir)
    if prev is None:
        return None
    if sorted(prev.get("overrides", [])) != sorted(overrides):
        raise ConfigError(
            f"{run_dir} holds a run of other overrides ({' '.join(prev.get('overrides', []))}): "
            "to resume a sweep repeat its exact command; for a new sweep use a new hydra.sweep.dir"
        )
    return prev


# ------------------------------------------------------------------ summary
@dataclass
class Job:
    dir: Path
    overrides: dict[str, str]
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""

    def config_key(self, varying: set[str] | None = None, seed_keys: tuple[str, ...] = SEED_KEYS) -> str:
        keep = [(k, v) for k, v in self.overrides.items() if k not in seed_keys and (varying is None or k in varying)]
        return " ".join(f"{k}={v}" for k, v in keep) or "(all the same)"


def varying_keys(jobs: list[Job]) -> set[str]:
    """Override keys whose value differs between jobs (the sweep's axes); the rest are fixed settings."""
    keys = {k for j in jobs for k in j.overrides}
    return {k for k in keys if len({j.overrides.get(k) for j in jobs}) > 1}


def fixed_overrides(jobs: list[Job]) -> str:
    vary = varying_keys(jobs)
    return " ".join(f"{k}={v}" for k, v in jobs[0].overrides.items() if k not in vary) if jobs else ""


def _overrides(job_dir: Path) -> list[str]:
    f = job_dir / ".hydra" / "overrides.yaml"
    if not f.is_file():
        return []
    from omegaconf import OmegaConf

    return [str(o) for o in OmegaConf.load(f)]


def load_jobs(sweep_dir: str | Path) -> list[Job]:
    """Every job of a multirun directory (a sub-directory with ``.hydra/``), in job order."""
    from ganforge.report import read_metrics

    sweep_dir = Path(sweep_dir)
    dirs = [d for d in sweep_dir.iterdir() if d.is_dir() and (d / ".hydra").is_dir()] if sweep_dir.is_dir() else []
    dirs.sort(key=lambda d: (0, int(d.name)) if d.name.isdigit() else (1, d.name))
    jobs = []
    for d in dirs:
        st = read_status(d) or {}
        overrides = st.get("overrides") or _overrides(d)
        metrics = dict(st.get("metrics") or {})
        if not metrics:  # interrupted/killed: the last logged values
            metrics = {k: v[-1][1] for k, v in read_metrics(d).items() if v}
        status = st.get("status", "incomplete")
        if status == "running":  # nothing updates it any more if the process died
            status = "incomplete"
        ov = dict(o.lstrip("+~").split("=", 1) for o in overrides if "=" in o)
        jobs.append(Job(d, ov, status, metrics, st.get("error", "")))
    return jobs


def _mean_std(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, sd


def summarize(jobs: list[Job], metrics: list[str] | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    """Rows per configuration: completed/total jobs and mean ± std over the completed jobs (seeds)."""
    if metrics is None:  # the evaluation metrics (not D's own val/d_* outputs), else the training losses
        seen = {k for j in jobs for k in j.metrics}
        metrics = sorted(k for k in seen if k.startswith("val/") and not k.startswith("val/d_")) or sorted(
            k for k in seen if k.startswith("train/")
        )
    vary = varying_keys(jobs)
    groups: dict[str, list[Job]] = defaultdict(list)
    for j in jobs:
        groups[j.config_key(vary)].append(j)
    rows = []
    for key, js in groups.items():
        done = [j for j in js if j.status == "completed"]
        row: dict[str, Any] = {"config": key, "jobs": len(js), "completed": len(done), "failed": sum(j.status == "failed" for j in js)}
        for m in metrics:
            vals = [j.metrics[m] for j in done if m in j.metrics and math.isfinite(j.metrics[m])]
            row[m] = _mean_std(vals) + (len(vals),) if vals else None
        rows.append(row)
    return metrics, rows


def format_table(metrics: list[str], rows: list[dict[str, Any]], jobs: list[Job]) -> str:
    head = ["config", "done/jobs", *metrics]
    body = []
    for r in rows:
        cells = [r["config"], f"{r['completed']}/{r['jobs']}" + (f" ({r['failed']} failed)" if r["failed"] else "")]
        for m in metrics:
            v = r[m]
            cells.append("—" if v is None else (f"{v[0]:.4g} ± {v[1]:.2g}" if v[2] > 1 else f"{v[0]:.4g}"))
        body.append(cells)
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    fixed = fixed_overrides(jobs)
    out = [f"fixed: {fixed}"] if fixed else []
    out += [line(head), line(["-" * w for w in widths]), *map(line, body)]
    bad = [j for j in jobs if j.status != "completed"]
    if bad:
        out.append("")
        out += [f"job {j.dir.name} ({' '.join(f'{k}={v}' for k, v in j.overrides.items())}): {j.status}" + (f": {j.error}" if j.error else "") for j in bad]
    return "\n".join(out)


def write_outputs(sweep_dir: Path, metrics: list[str], rows: list[dict[str, Any]], jobs: list[Job]) -> tuple[Path, Path | None]:
    keys = sorted({k for j in jobs for k in j.overrides})
    csv_path = sweep_dir / "sweep_summary.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["job", *keys, "status", *metrics, "error"])
        for j in jobs:
            w.writerow([j.dir.name, *(j.overrides.get(k, "") for k in keys), j.status, *(j.metrics.get(m, "") for m in metrics), j.error])
    plotted = [m for m in metrics if any(r[m] for r in rows)]
    vary = varying_keys(jobs)
    if not plotted:
        return csv_path, None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(plotted), figsize=(max(4.0, 0.6 * len(rows) + 2) * len(plotted), 5.5), squeeze=False)
    for ax, m in zip(axes[0], plotted):
        pts = [(i, r[m]) for i, r in enumerate(rows) if r[m]]
        ax.errorbar([i for i, _ in pts], [v[0] for _, v in pts], yerr=[v[1] for _, v in pts], fmt="o", capsize=4)
        for j in jobs:  # every seed as a faint dot
            if j.status == "completed" and m in j.metrics:
                i = next(k for k, r in enumerate(rows) if r["config"] == j.config_key(vary))
                ax.plot(i, j.metrics[m], ".", c="0.6")
        ax.set_xticks(range(len(rows)), [r["config"] for r in rows], rotation=30, ha="right", fontsize=7)
        ax.set_xlim(-0.5, len(rows) - 0.5)
        ax.set_title(f"{m} (mean ± std over seeds)", fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    png = sweep_dir / "sweep_summary.png"
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return csv_path, png


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ganforge-sweep", description="Summarize a Hydra multirun directory of ganforge runs.")
    p.add_argument("sweep_dir", type=Path)
    p.add_argument("--metric", "-m", action="append", dest="metrics", help="a logged key to tabulate (repeatable; default: every val/*)")
    args = p.parse_args(argv)
    jobs = load_jobs(args.sweep_dir)
    if not jobs:
        print(f"error: {args.sweep_dir} holds no Hydra job directories (<n>/.hydra): pass a multirun dir such as multirun/<date>/<time>", file=sys.stderr)
        return 2
    metrics, rows = summarize(jobs, args.metrics)
    print(format_table(metrics, rows, jobs))
    csv_path, png = write_outputs(args.sweep_dir, metrics, rows, jobs)
    print(f"\nper job: {csv_path}" + (f"\nplot:    {png}" if png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
