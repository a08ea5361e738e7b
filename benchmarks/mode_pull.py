"""What a trained D tells G about G's emptiest mode: does D see the hole, and does G's gradient lead into it?

    python benchmarks/mode_collapse.py --methods ganforge --datasets grid25 --out results/mc   # train first
    python benchmarks/mode_pull.py results/mc --dataset grid25                                 # final checkpoints
    python benchmarks/mode_pull.py results/mc --dataset grid25 --runs grid25-seed120 --iters 50000:150000:10000

A lost mode can have two causes that the mode counts cannot tell apart: D does not see that the mode is empty,
or D sees it and G's samples get no gradient toward it. For each checkpoint, --pool latents of
mode_collapse.py's evaluation noise are drawn through G (untruncated) and each high-quality sample is given to
its nearest mode; the emptiest mode m* is the one with the fewest. Then:

- **Does D see the hole?** D's logit is log p_data/p_G plus a constant where D is optimal, so it should be
  highest on the real samples of the emptiest mode. ``logit_gap``: the mean logit over m*'s real samples minus
  the median over the modes of each mode's mean (--real real samples per mode; a packed D scores each beside one
  fixed set of pack - 1 real companions, as in ganforge.rejection). ``ideal_gap``: the same for an optimal D,
  log(median share / m*'s share) (with m*'s count floored at 1; modes of equal weight, as on the ring and grid).
- **Does G's gradient lead there?** G's samples are packed as in G's update (pack fakes a group) and
  ``-d/dx softplus(-D(pack))`` is the direction G's loss moves each sample (checkpoints are read without the
  instance noise a run may still add to its fakes). Around m*, in an annulus further than 3 stds and within one
  mode spacing plus 3 stds, two kinds of sample: the *bridges*, off every mode, and the *neighbours*, high
  quality on another mode. ``bridge_cos`` / ``neighbour_cos``: the mean cosine of that direction with the
  direction to m*, over each kind (+1: straight toward m*, 0: no preference); ``*_cos_others``: the median over
  the other modes of the same (what "no hole" looks like); ``n_bridge`` / ``n_neighbour``: how many samples;
  ``bridge_norm``: the bridges' mean gradient norm over the whole pool's (how strongly they are moved at all).

Beside them, ``val_jsd_d``: the run's own logged held-out JSD estimate at that iteration (``csv/metrics.csv``;
NaN where none was logged), which needs no mode labels; and ``hist_jsd``: the JSD between packs of the data's
and G's histograms over the modes (plus one bin "off every mode"; the data's from its Gaussians, G's from the
pool), which is what an optimal D that saw only those bins would give: by data processing, a lower bound on the
true JSD of packs that ``val_jsd_d`` also bounds from below. Writes ``<out>/mode_pull.csv``. Offline, no training;
about 2 s a checkpoint on one core.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from ganforge.cli.sample import latents, load_discriminator, load_generator, read_checkpoint
from ganforge.cli.train import build_datamodule
from ganforge.metrics.modes import HQ_STDS, nearest_modes
from ganforge.report import read_metrics
from ganforge.toy_benchmark import EVAL_SEED, write_csv

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latent_cells import checkpoint, resolve_runs  # noqa: E402  (a sibling script)

FIELDS = ["run", "iteration", "val_jsd_d", "hist_jsd", "emptiest", "share", "logit_gap", "ideal_gap", "bridge_cos", "bridge_cos_others", "bridge_norm", "n_bridge",
          "neighbour_cos", "neighbour_cos_others", "n_neighbour"]  # fmt: skip


def packed_histogram_jsd(p: torch.Tensor, q: torch.Tensor, pack: int, n: int = 200_000, seed: int = 0) -> float:
    """JSD(P^pack || Q^pack) in nats between two categorical distributions ``p``, ``q`` [K] (each summing to 1),
    by Monte Carlo over ``n`` packs from each: what an optimal D scoring packs of bin labels would estimate."""
    g = torch.Generator().manual_seed(seed)
    logp, logq = p.double().log(), q.double().log()
    total = 0.0
    for src in (p, q):  # JSD = 1/2 E_P[log 2P/(P+Q)] + 1/2 E_Q[log 2Q/(P+Q)], each over packs
        bins = torch.multinomial(src.double(), n * pack, replacement=True, generator=g).view(n, pack)
        lp, lq = logp[bins].sum(1), logq[bins].sum(1)
        own = lp if src is p else lq
        total += 0.5 * float((math.log(2) + own - torch.logaddexp(lp, lq)).mean())
    return total


def mode_logits(disc: torch.nn.Module, reals: torch.Tensor, labels: torch.Tensor, companions: torch.Tensor, n_modes: int) -> torch.Tensor:
    """[K] D's mean logit over each mode's real samples (each scored beside the same ``pack - 1`` companions)."""
    from ganforge.rejection import density_ratio_logits

    logits = density_ratio_logits(disc, reals, companions if int(getattr(disc, "pack", 1)) > 1 else None)
    return torch.stack([logits[labels == k].mean() for k in range(n_modes)])


def descent_directions(disc: torch.nn.Module, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """[N, D] minus the gradient of G's non-saturating loss with respect to each sample, the samples packed in a
    random order into groups of D's ``pack`` (as G's update packs its fakes); a last incomplete group is left out
    (its rows are NaN)."""
    p = int(getattr(disc, "pack", 1))
    order = torch.randperm(len(x), generator=generator)[: len(x) // p * p]
    xs = x[order].detach().clone().requires_grad_(True)
    F.softplus(-disc(xs).float()).sum().backward()
    out = torch.full_like(x, math.nan)
    out[order] = -xs.grad
    return out


def pull(x: torch.Tensor, d: torch.Tensor, centre: torch.Tensor, inner: float, outer: float, among: torch.Tensor) -> tuple[float, float, int]:
    """(mean cosine of ``d`` with the direction from each sample to ``centre``, mean norm of ``d``, count) over the
    samples selected by ``among`` at a distance in (inner, outer] of ``centre``."""
    to = centre - x
    r = to.norm(dim=1)
    sel = among & (r > inner) & (r <= outer) & torch.isfinite(d).all(1)
    if not sel.any():
        return math.nan, math.nan, 0
    cos = F.cosine_similarity(d[sel], to[sel], dim=1)
    return float(cos.mean()), float(d[sel].norm(dim=1).mean()), int(sel.sum())


def analyse(gen: torch.nn.Module, disc: torch.nn.Module, modes: torch.Tensor, stds: torch.Tensor, z: torch.Tensor,
            reals: torch.Tensor, labels: torch.Tensor, companions: torch.Tensor, seed: int = 0, weights: torch.Tensor | None = None) -> dict:  # fmt: skip
    """The row of one checkpoint (without run and iteration); see the module's docstring. ``weights`` [K]: the
    data's mixture weights (equal when None), for ``hist_jsd``."""
    k = modes.shape[0]
    with torch.no_grad():
        x = torch.cat([gen(c) for c in z.split(4096)]).float()
    near, dist = nearest_modes(x.double(), modes.double(), stds)
    hq = dist < HQ_STDS
    counts = torch.bincount(near[hq], minlength=k).double()
    m = int(counts.argmin())
    fair = counts.sum() / k
    # the same over bins (the K modes, then "off every mode"): the data puts 1 - P(r > 3 stds) on the modes, by weight
    off = float(torch.special.gammaincc(torch.tensor(modes.shape[1] / 2, dtype=torch.float64), torch.tensor(HQ_STDS**2 / 2, dtype=torch.float64)))  # P(chi^2_dim > 9)
    w = torch.ones(k, dtype=torch.double) if weights is None else weights.double()
    p_bins = torch.cat([(1 - off) * w / w.sum(), torch.tensor([off], dtype=torch.double)])
    q_bins = torch.cat([counts, (~hq).sum().double()[None]]) / len(x)
    mean_logit = mode_logits(disc, reals, labels, companions, k)
    d = descent_directions(disc, x, torch.Generator().manual_seed(seed))
    spacing = float(torch.cdist(modes.double(), modes.double()).fill_diagonal_(math.inf).min())
    inner, outer = HQ_STDS * float(stds.max()), spacing + HQ_STDS * float(stds.max())
    finite = torch.isfinite(d).all(1)
    row = {"hist_jsd": packed_histogram_jsd(p_bins, q_bins, int(getattr(disc, "pack", 1)), seed=seed), "emptiest": m, "share": float(counts[m] / fair) if fair > 0 else math.nan,
           "logit_gap": float(mean_logit[m] - mean_logit.median()),
           "ideal_gap": float(torch.log(counts.median() / counts[m].clamp(min=1.0)))}  # fmt: skip
    for name, among in (("bridge", ~hq), ("neighbour", hq)):
        cos, norm, n = pull(x, d, modes[m].float(), inner, outer, among)
        others = [pull(x, d, modes[j].float(), inner, outer, among)[0] for j in range(k) if j != m]
        row |= {f"{name}_cos": cos, f"{name}_cos_others": float(torch.tensor(others).nanmedian()), f"n_{name}": n}
        if name == "bridge":
            row["bridge_norm"] = norm / float(d[finite].norm(dim=1).mean())
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="a --out directory of benchmarks/mode_collapse.py")
    p.add_argument("--method", default="ganforge")
    p.add_argument("--dataset", default="grid25", help="runs named <dataset>-seed<N>")
    p.add_argument("--runs", default=None, help="comma-separated run names (default: every completed run)")
    p.add_argument("--iters", default="last", help="checkpoints: 'last', numbers, or ranges start:stop:step")
    p.add_argument("--pool", type=int, default=100_000, help="G samples per checkpoint")
    p.add_argument("--real", type=int, default=400, help="real samples per mode for D's logits")
    a = p.parse_args(argv)
    runs, iters = resolve_runs(p, a)
    # every run's data (one --dataset): the real samples per mode and a packed D's companions, drawn once
    cfg = read_checkpoint(checkpoint(runs[0], iters[0]))[1]["config"]
    dm = build_datamodule(cfg["dataset"])
    g = torch.Generator().manual_seed(0)
    k = dm.modes.shape[0]
    labels = torch.arange(k).repeat_interleave(a.real)
    reals = dm.modes[labels] + dm.stds[labels, None] * torch.randn(len(labels), dm.modes.shape[1], generator=g)
    companions, _ = dm.sample(int(cfg.get("pack", 1)) - 1, generator=g)  # pack - 1 of them: D's packing, as load_discriminator builds it
    rows = []
    for run in runs:
        jsd = dict(read_metrics(run).get("val/jsd_d", []))  # the run's own held-out JSD estimate, where it logged one
        for it in iters:
            gen, meta = load_generator(checkpoint(run, it), ema=False)
            disc = load_discriminator(checkpoint(run, it))
            step = meta["global_step"] if it == "last" else int(it)
            z = latents(gen, a.pool, seed=EVAL_SEED)
            row = {"run": run.name, "iteration": step, "val_jsd_d": jsd.get(step, math.nan), **analyse(gen, disc, dm.modes, dm.stds, z, reals, labels, companions, weights=dm.weights)}
            rows.append(row)
            print(f"{run.name} @ {row['iteration']}: val/jsd_d {row['val_jsd_d']:.3f}; emptiest {row['emptiest']} at {row['share']:.3f} of a fair share; "
                  f"logit gap {row['logit_gap']:+.2f} (ideal {row['ideal_gap']:+.2f}); bridges {row['n_bridge']}: cos "
                  f"{row['bridge_cos']:+.3f} (other modes {row['bridge_cos_others']:+.3f}), norm x{row['bridge_norm']:.2f}; "
                  f"neighbours {row['n_neighbour']}: cos {row['neighbour_cos']:+.3f} ({row['neighbour_cos_others']:+.3f})", flush=True)  # fmt: skip
    write_csv(a.out / "mode_pull.csv", FIELDS, rows)
    print(f"wrote {a.out / 'mode_pull.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
