"""The toy benchmark's generators sampled through their own discriminator's density ratio (ganforge.rejection).

    python benchmarks/mode_collapse.py --methods ganforge --datasets ring8 --out results/mc   # train first
    python benchmarks/d_rejection.py results/mc                                                # then this

For every completed run under ``<out>/<method>/``: the protocol's evaluation (2,500 samples from the fixed
noise of mode_collapse.py) beside the same generator's samples kept by exact rejection with D's ratio (a pool
of --pool candidates from that noise, accepted with probability exp(logit - max logit); the first 2,500 kept
are scored, and all of them for a low-noise figure). Packed discriminators score each candidate beside the
same pack - 1 real samples. Nothing is tuned: no shift, no percentile, one fixed set of companions.
Writes ``<out>/d_rejection.md`` and ``<out>/d_rejection.csv``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ganforge.cli.sample import load_discriminator, load_generator, sample
from ganforge.cli.train import build_datamodule
from ganforge.metrics.modes import mode_coverage
from ganforge.rejection import density_ratio_logits, rejection_sample
from ganforge.toy_benchmark import EVAL_SAMPLES, EVAL_SEED, cell, completed_checkpoints, offline_parser, write_csv

FIELDS = ["run", "acceptance", "hq", "hq_kept", "hq_pool", "hq_kept_all", "modes", "modes_kept", "kl", "kl_kept", "kl_pool", "kl_kept_all"]


@torch.no_grad()
def evaluate(ckpt: Path, pool: int, seed: int = 0) -> dict:
    gen, meta = load_generator(ckpt)
    disc = load_discriminator(ckpt)
    dm = build_datamodule(meta["config"]["dataset"])
    g = torch.Generator().manual_seed(seed)
    companions, _ = dm.sample(int(getattr(disc, "pack", 1)) - 1, generator=g)
    x = torch.from_numpy(sample(gen, pool, seed=EVAL_SEED))
    kept = rejection_sample(x, density_ratio_logits(disc, x, companions), generator=g)
    cov = {name: mode_coverage(s, dm.modes, dm.stds) for name, s in
           {"": x[:EVAL_SAMPLES], "_kept": kept[:EVAL_SAMPLES], "_pool": x, "_kept_all": kept}.items()}
    row = {"acceptance": len(kept) / pool}
    for name, c in cov.items():
        row[f"hq{name}"], row[f"kl{name}"] = 100 * c.hq_frac, c.mode_kl
    row["modes"], row["modes_kept"] = cov[""].modes, cov["_kept"].modes
    return row


def main(argv: list[str] | None = None) -> int:
    a = offline_parser(__doc__.split("\n\n")[0], "candidates per generator").parse_args(argv)
    rows = []
    for name, ckpt in completed_checkpoints(a.out / a.method, a.dataset):
        rows.append({"run": name, **evaluate(ckpt, a.pool)})
        r = rows[-1]
        print(f"{name}: kept {100 * r['acceptance']:.1f}%; HQ {r['hq']:.2f} -> {r['hq_kept']:.2f}% "
              f"(all {r['hq_pool']:.2f} -> {r['hq_kept_all']:.2f}%); KL {r['kl']:.4f} -> {r['kl_kept']:.4f}", flush=True)
    if not rows:
        print(f"no completed runs under {a.out / a.method}", file=sys.stderr)
        return 1
    write_csv(a.out / "d_rejection.csv", FIELDS, rows)

    def c(key: str, digits: int, pct: bool = False) -> str:
        return cell([float(r[key]) for r in rows], digits, pct)

    lines = [f"| {a.method} on {a.dataset}, {len(rows)} runs | modes | HQ (2,500) | rev. KL (2,500) | HQ ({a.pool:,}) | rev. KL ({a.pool:,}) |",
             "|---|---|---|---|---|---|",
             f"| generator's samples | {c('modes', 1)} | {c('hq', 2, True)} | {c('kl', 4)} | {c('hq_pool', 2, True)} | {c('kl_pool', 4)} |",
             f"| kept by D's ratio ({c('acceptance', 3)} kept) | {c('modes_kept', 1)} | {c('hq_kept', 2, True)} | "
             f"{c('kl_kept', 4)} | {c('hq_kept_all', 2, True)} (all kept) | {c('kl_kept_all', 4)} (all kept) |"]
    (a.out / "d_rejection.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
