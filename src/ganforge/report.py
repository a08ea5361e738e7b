"""A run report anyone can read without a dashboard: ``<run dir>/report.html``, one self-contained file.

Drawn with matplotlib from what the CSV logger wrote (``csv/metrics.csv``, plus the ``metrics.part*.csv``
segments a resumed run kept), and the sample pictures in ``samples/``: loss curves, D(x) and D(G(z)),
the JSD estimates against their ceiling log 2, FID/KID and mode coverage over time, the first and
last sample pictures, and a table of final values. Written at the end of training (the ``report``
callback) and on demand: ``ganforge-report RUN_DIR`` / ``python -m ganforge.report RUN_DIR``.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import re
import sys
from collections import defaultdict
from pathlib import Path

Series = dict[str, list[tuple[int, float]]]

# (title, y label, keys or key patterns, reference lines)
PANELS = [
    ("Losses", "loss", ["train/d_loss", "train/g_loss", "val/d_loss"], []),
    ("Discriminator outputs", "mean D", ["train/d_real", "train/d_fake", "val/d_real", "val/d_fake"], [(0.5, "D* = 1/2 at p_G = p_data")]),
    ("JSD estimates (nats; lower bounds except jsd_true)", "JSD", ["train/jsd_batch", "val/jsd_d", "val/jsd_probe", "val/jsd_true"], [(math.log(2), "log 2 (disjoint supports)")]),
    ("Fréchet distance (val/fid: Inception; val/fid_<net>: another feature network)", "FID", [r"val/fid(_\w+)?"], []),
    ("Kernel distance", "KID", [r"val/kid(_\w+)?"], []),
    ("Inception Score (Inception logits only)", "IS", ["val/is"], []),
    ("Mode coverage", "modes captured", ["val/modes"], []),
    ("Sample quality", "fraction / KL", ["val/hq_frac", "val/mode_kl"], []),
]


def read_metrics(run_dir: str | Path) -> Series:
    """Every logged scalar as ``key -> [(iteration, value), ...]``, resumed segments in order, later values
    of an iteration replacing earlier ones (a resumed run re-logs from its checkpoint)."""
    csv_dir = Path(run_dir) / "csv"
    files = sorted(csv_dir.glob("metrics.part*.csv"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
    files += [csv_dir / "metrics.csv"] if (csv_dir / "metrics.csv").is_file() else []
    merged: dict[str, dict[int, float]] = defaultdict(dict)
    for f in files:
        with open(f, newline="") as fh:
            for row in csv.DictReader(fh):
                step = row.get("step")
                if not step:
                    continue
                for k, v in row.items():
                    if k in ("step", "epoch") or v in ("", None):
                        continue
                    try:
                        merged[k][int(float(step))] = float(v)
                    except ValueError:
                        continue
    return {k: sorted(v.items()) for k, v in merged.items()}


def _matching(series: Series, patterns: list[str]) -> list[str]:
    return [k for p in patterns for k in sorted(series) if re.fullmatch(p, k)]


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode()


def plot_panels(series: Series) -> list[tuple[str, str]]:
    """``(title, base64 PNG)`` for each panel that has data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    for title, ylabel, patterns, refs in PANELS:
        keys = _matching(series, patterns)
        if not keys:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        for k in keys:
            xs, ys = zip(*series[k])
            style = dict(marker="o", ms=3) if k.startswith("val/") else dict(lw=1.2)
            ax.plot(xs, ys, label=k, **style)
        for y, label in refs:
            ax.axhline(y, ls="--", c="0.5", lw=0.8, label=label)
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        out.append((title, _png(fig)))
        plt.close(fig)
    return out


def _sample_pictures(run_dir: Path) -> list[tuple[str, str]]:
    pics = sorted((run_dir / "samples").glob("iter_*.png"))
    chosen = pics[:1] + pics[-1:] if len(pics) > 1 else pics
    return [(f"iteration {int(p.stem.split('_')[1])}", base64.b64encode(p.read_bytes()).decode()) for p in chosen]


def _overrides(run_dir: Path) -> str:
    f = run_dir / ".hydra" / "overrides.yaml"
    if not f.is_file():
        return ""
    items = [line[2:].strip() for line in f.read_text().splitlines() if line.startswith("- ")]
    return " ".join(items)


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``report.html`` for ``run_dir`` (or ``out``) and return its path."""
    run_dir = Path(run_dir)
    series = read_metrics(run_dir)
    if not series and not (run_dir / "samples").is_dir():
        raise FileNotFoundError(f"{run_dir} has no csv/metrics.csv and no samples/: is it a ganforge run dir (logger=csv or default)?")
    panels = plot_panels(series)
    pictures = _sample_pictures(run_dir)
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(k)}</td><td>{v[-1][0]}</td><td>{v[-1][1]:.5g}</td></tr>" for k, v in sorted(series.items())
    )
    overrides = _overrides(run_dir)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>ganforge report: {e(run_dir.name)}</title>",
        "<style>body{font-family:sans-serif;max-width:1400px;margin:2em auto;color:#222}"
        "img{max-width:100%}.grid{display:flex;flex-wrap:wrap;gap:12px}.grid figure{margin:0}"
        "table{border-collapse:collapse}td,th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:left}</style>",
        "</head><body>",
        f"<h1>ganforge run report</h1><p>run dir: <code>{e(str(run_dir.resolve()))}</code><br>",
        f"overrides: <code>{e(overrides) or '(defaults)'}</code></p>",
        "<h2>Samples: first and last</h2><div class='grid'>",
        *(f"<figure><img src='data:image/png;base64,{b}'><figcaption>{e(c)}</figcaption></figure>" for c, b in pictures),
        "</div>" + ("" if pictures else "<p>(no sample pictures: sample_every=0)</p>"),
        "<h2>Training curves</h2><div class='grid'>",
        *(f"<figure><img src='data:image/png;base64,{b}'><figcaption>{e(t)}</figcaption></figure>" for t, b in panels),
        "</div>" + ("" if panels else "<p>(no metrics logged)</p>"),
        "<p>JSD estimates are in nats, at most log 2 = 0.693. <code>train/jsd_batch</code> and <code>val/jsd_d</code> come from "
        "the training discriminator, <code>val/jsd_probe</code> from a classifier trained afresh on held-out samples: all are "
        "lower bounds on the true JSD (<code>val/jsd_true</code>, where the generator's density is known).</p>",
        "<h2>Final values</h2><table><tr><th>metric</th><th>iteration</th><th>value</th></tr>",
        rows,
        "</table></body></html>",
    ]
    out = Path(out) if out else run_dir / "report.html"
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("\n".join(parts))
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: ganforge-report RUN_DIR   (writes RUN_DIR/report.html)", file=sys.stderr)
        return 2
    try:
        print(write_report(argv[0]))
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
