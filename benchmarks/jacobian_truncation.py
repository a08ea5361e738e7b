"""The toy benchmark's generators with their most-stretched samples dropped (Jacobian truncation, ganforge.rejection).

    python benchmarks/mode_collapse.py --methods ganforge --datasets ring8 --out results/mc   # train first
    python benchmarks/jacobian_truncation.py results/mc --reject 0.05,0.1                     # then this

For every completed run under ``<out>/<method>/`` and each fraction q of --reject: the protocol's 2,500
samples as ``jacobian_truncation=q`` draws them (the first 2,500 of mode_collapse.py's fixed evaluation noise
whose ||dG/dz||_F is below the generator's calibrated (1 - q) quantile; ganforge.rejection), scored with the
published protocol, and all the kept samples of a pool of --pool from that noise, for a low-noise figure.
G alone decides: no data, no D. What truncation costs is shown too: ``width``, the mode width of all the kept samples
(ganforge.metrics.modes: their high-quality samples' RMS distance to their mode over the data's; 1 = as wide as
the data; below 1, the modes' own tails were cut with the bridges, which the protocol's HQ rewards), and ``min_share``,
the emptiest mode's share of all the kept samples over a fair share (a mode that only G's bridges cross scores ~0
though the 2,500 may count it). Writes ``<out>/jacobian_truncation.md`` and ``<out>/jacobian_truncation.csv``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ganforge.cli.sample import latents, load_generator, sample
from ganforge.cli.train import build_datamodule
from ganforge.metrics.modes import mode_coverage
from ganforge.rejection import calibration_norms, jacobian_norms, jacobian_threshold
from ganforge.toy_benchmark import EVAL_SAMPLES, EVAL_SEED, cell, completed_checkpoints, offline_parser, write_csv

FIELDS = ["run", "reject", "modes", "hq", "kl", "hq_all", "kl_all", "width", "min_share"]


def evaluate(ckpt: Path, pool: int, rejects: list[float]) -> list[dict]:
    """One row per fraction (0 first: the generator's own samples) for the run's final generator."""
    gen, meta = load_generator(ckpt)
    dm = build_datamodule(meta["config"]["dataset"])
    z = latents(gen, pool, seed=EVAL_SEED)
    with torch.no_grad():
        x = torch.cat([gen(c) for c in z.split(4096)])
    norms, cal = jacobian_norms(gen, z), calibration_norms(gen)
    rows = []
    for q in [0.0, *rejects]:
        limit = jacobian_threshold(cal, q)  # the generator's calibrated threshold, as sample() sets it
        kept = x if q == 0 else x[norms <= limit]
        protocol = torch.from_numpy(sample(gen, EVAL_SAMPLES, seed=EVAL_SEED, jacobian_truncation=q, jacobian_limit=limit))  # what ganforge-modes scores
        first, all_ = mode_coverage(protocol, dm.modes, dm.stds), mode_coverage(kept, dm.modes, dm.stds)
        rows.append({"reject": q, "modes": first.modes, "hq": 100 * first.hq_frac, "kl": first.mode_kl,
                     "hq_all": 100 * all_.hq_frac, "kl_all": all_.mode_kl, "width": all_.mode_width, "min_share": all_.min_share})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    p = offline_parser(__doc__.split("\n\n")[0], "samples per generator, for the all-kept figures")
    p.add_argument("--reject", default="0.02,0.05,0.1,0.2", help="comma-separated fractions of the pool to drop")
    a = p.parse_args(argv)
    rejects = [float(q) for q in a.reject.split(",")]
    if any(not 0 < q < 1 for q in rejects):
        p.error(f"--reject fractions must lie in (0, 1), got {a.reject}")
    rows = []
    for name, ckpt in completed_checkpoints(a.out / a.method, a.dataset):
        rows += [{"run": name, **r} for r in evaluate(ckpt, a.pool, rejects)]
        print(f"{name}: " + "; ".join(f"drop {100 * r['reject']:g}%: {r['modes']} modes, HQ {r['hq']:.2f}% (all {r['hq_all']:.2f}%), "
                                      f"KL {r['kl']:.4f}, width {r['width']:.3f}, min share {r['min_share']:.2f}" for r in rows[-len(rejects) - 1 :]), flush=True)  # fmt: skip
    if not rows:
        print(f"no completed runs under {a.out / a.method}", file=sys.stderr)
        return 1
    write_csv(a.out / "jacobian_truncation.csv", FIELDS, rows)

    def c(q: float, key: str, digits: int, pct: bool = False) -> str:
        return cell([float(r[key]) for r in rows if r["reject"] == q], digits, pct)

    n = len(rows) // (len(rejects) + 1)
    lines = [f"| {a.method} on {a.dataset}, {n} runs | modes | HQ (2,500) | rev. KL (2,500) | HQ (all kept) | rev. KL (all kept) | mode width / data's | emptiest mode / fair share |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for q in [0.0, *rejects]:
        what = "generator's samples" if q == 0 else f"largest {100 * q:g}% of ‖dG/dz‖ dropped"
        lines.append(f"| {what} | {c(q, 'modes', 1)} | {c(q, 'hq', 2, True)} | {c(q, 'kl', 4)} | "
                     f"{c(q, 'hq_all', 2, True)} | {c(q, 'kl_all', 4)} | {c(q, 'width', 3)} | {c(q, 'min_share', 2)} |")  # fmt: skip
    (a.out / "jacobian_truncation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
