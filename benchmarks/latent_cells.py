"""Where each mode of a toy mixture lives in G's latent space, per checkpoint: which modes G draws from the
centre of its prior, which from the outside, and how a lost mode's latent cell shrank.

    python benchmarks/mode_collapse.py --methods ganforge --datasets grid25 --out results/mc   # train first
    python benchmarks/latent_cells.py results/mc --dataset grid25                               # final checkpoints
    python benchmarks/latent_cells.py results/mc --dataset grid25 --runs grid25-seed203 \\
        --iters 35000,40000,60000,150000 --mark 2,0                                              # one mode's history
    python benchmarks/latent_cells.py results/mc --dataset grid25 --iters 20000:150000:5000 --no-plane
    python benchmarks/share_traces.py --out traces.png "label=results/mc/latent_cells.csv"      # those as curves

For each run and checkpoint, --pool latents of mode_collapse.py's fixed evaluation noise are drawn through the
run's sampler without truncation (G, or its EMA copy where the run kept one), and each sample is given to its
nearest mode when high quality (within 3 standard deviations, the protocol's test). A mode is *interior* when it
lies strictly inside the convex hull of the modes (the 9 inner modes of the 5x5 grid; none on the ring). Columns:
``r_interior`` and ``r_exterior``, the mean ||z|| of the latents whose samples land on an interior / exterior mode
(1.25 for any part of a standard normal 2-d latent that ignores ||z||; 0.60 and 1.62 if the grid's 9 interior
modes took the central disc; under a uniform prior U(-1, 1)^2, 0.77, and 0.46 and 0.94 if they took the middle 3x3
block of 25 equal squares); ``interior_share``, the interior modes' share of the high-quality samples over
their fair share (1: as many as the data's); ``min_share``, the emptiest mode's share of the high-quality samples
over a fair share, and ``emptiest``, which mode that is; ``mark_share``, the --mark mode's share. Writes
``<out>/latent_cells.csv`` and, for a 2-d latent, ``<out>/latent_cells.png``: the latent plane (runs by rows,
checkpoints by columns), each point shaded by the kind of mode its sample lands on (white: off every mode).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ganforge.cli.sample import latents, load_generator, read_checkpoint
from ganforge.cli.train import build_datamodule
from ganforge.metrics.modes import HQ_STDS, interior_modes, nearest_modes
from ganforge.models.common import latent_bound
from ganforge.toy_benchmark import EVAL_SEED, completed_checkpoints, offline_parser, write_csv

FIELDS = ["run", "iteration", "latent_dim", "hq", "r_interior", "r_exterior", "interior_share", "min_share", "emptiest", "mark_share"]
PLANE = 2.5  # the latent plane drawn for a Gaussian prior: [-PLANE, PLANE]^2 (98.8% of a standard normal's mass)


def plane_extent(gen: torch.nn.Module) -> float:
    """Half the side of the latent square drawn: the whole support of a bounded prior (U(-1, 1)^2); PLANE otherwise."""
    return latent_bound(gen) or PLANE


def assign(gen: torch.nn.Module, z: torch.Tensor, modes: torch.Tensor, stds) -> torch.Tensor:
    """Each latent's mode index, -1 where its sample is off every mode."""
    with torch.no_grad():
        x = torch.cat([gen(c) for c in z.split(4096)]).double()
    k, d = nearest_modes(x, modes.double(), stds)
    return torch.where(d < HQ_STDS, k, torch.full_like(k, -1))


def stats(z: torch.Tensor, lab: torch.Tensor, inner: torch.Tensor, mark: int | None) -> dict:
    n_modes = len(inner)
    counts = torch.bincount(lab[lab >= 0], minlength=n_modes).double()
    fair, r = counts.sum() / n_modes, z.norm(dim=1)
    hq = lab >= 0
    on_inner = hq & inner[lab.clamp(min=0)]
    on_outer = hq & ~on_inner
    nan = float("nan")
    return {"hq": 100 * float(hq.double().mean()),
            "r_interior": float(r[on_inner].mean()) if on_inner.any() else nan,
            "r_exterior": float(r[on_outer].mean()) if on_outer.any() else nan,
            "interior_share": float(counts[inner].sum() / (fair * inner.sum())) if fair > 0 and inner.any() else nan,
            "min_share": float(counts.min() / fair) if fair > 0 else nan,
            "emptiest": int(counts.argmin()),
            "mark_share": float(counts[mark] / fair) if mark is not None and fair > 0 else nan}  # fmt: skip


def mode_name(mode: torch.Tensor) -> str:
    return "(" + ", ".join(f"{c:g}" for c in mode.tolist()) + ")"


def expand_iters(spec: str) -> list[str]:
    """``20000:30000:5000,last`` -> ``["20000", "25000", "30000", "last"]`` (a range includes its stop)."""
    out = []
    for part in spec.split(","):
        if ":" in part:
            start, stop, step = (int(x) for x in part.split(":"))
            if step < 1:
                raise ValueError(part)
            out += [str(i) for i in range(start, stop + 1, step)]
        else:
            out.append(part if part == "last" else str(int(part)))
    return out


def checkpoint(run: Path, it: str) -> Path:
    return run / "checkpoints" / ("last.ckpt" if it == "last" else f"iter_{int(it):06d}.ckpt")


def resolve_runs(p: argparse.ArgumentParser, a: argparse.Namespace) -> tuple[list[Path], list[str]]:
    """The run directories (``a.runs``, else every completed ``<dataset>-seed<N>`` run under ``a.out/a.method``) and
    the checkpoint iterations (``a.iters``) a CLI reads; a bad ``--iters`` or a missing checkpoint exits through
    ``p.error`` (one line naming the fix, exit 2) before any work."""
    base = a.out / a.method
    runs = [base / r for r in a.runs.split(",")] if a.runs else [base / name for name, _ in completed_checkpoints(base, a.dataset)]
    try:
        iters = expand_iters(a.iters)
    except ValueError:
        p.error(f"--iters {a.iters}: give iterations like 35000,40000, a range like 20000:150000:5000, or last")
    missing = [str(checkpoint(r, it)) for r in runs for it in iters if not checkpoint(r, it).is_file()]
    if not runs or missing:
        p.error(f"no checkpoint {missing[0] if missing else f'of a completed run {a.dataset}-seed* under {base}'}: train first, or pick --iters from its checkpoints/")
    return runs, iters


def draw(panels: list[tuple[str, str, torch.nn.Module]], cols: int, modes: torch.Tensor, stds, inner: torch.Tensor, mark: int | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    n = 400
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.6 * rows), squeeze=False)
    cmap = ListedColormap(["white", "#d4d4d4", "#6e6e6e", "#d62728"])  # off every mode, exterior, interior, --mark
    lims = set()
    for ax, (run, it, gen) in zip(axes.flat, panels):
        lims.add(lim := plane_extent(gen))
        g = torch.linspace(-lim, lim, n)
        z = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)
        lab = assign(gen, z, modes, stds)
        kind = torch.where(lab < 0, 0, 1 + inner[lab.clamp(min=0)].long())
        if mark is not None:
            kind[lab == mark] = 3
        ax.imshow(kind.reshape(n, n).numpy(), origin="lower", extent=(-lim, lim, -lim, lim), cmap=cmap, vmin=-0.5, vmax=3.5, interpolation="nearest")
        for radius in (1, 2) if lim == PLANE else ():
            ax.add_patch(plt.Circle((0, 0), radius, fill=False, lw=0.4, ls=":", color="k"))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{run}, {it if it == 'last' else f'{int(it) // 1000}k'}", fontsize=7)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    what = "light: an exterior mode, dark: an interior mode" + (f", red: mode {mode_name(modes[mark])}" if mark is not None else "")
    frame = "; ".join(["circles: ||z|| = 1, 2"] * (PLANE in lims) + ["a uniform prior's panel: its whole square, [-1, 1]^2"] * bool(lims - {PLANE}))
    fig.suptitle(f"G's latent plane, each z shaded by the mode G(z) lands on\n({what}, white: none; {frame})", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = offline_parser(__doc__.split("\n\n")[0], "latents per checkpoint, for the statistics")
    p.add_argument("--runs", default=None, help="comma-separated run names (default: every completed <dataset>-seed<N> run)")
    p.add_argument("--iters", default="last", help="comma-separated checkpoint iterations, START:STOP:STEP ranges (STOP included), or last")
    p.add_argument("--mark", default=None, help="a mode's coordinates, e.g. 2,0: its share per checkpoint, drawn in red")
    p.add_argument("--plane", action=argparse.BooleanOptionalAction, default=True, help="draw the latent plane (a 2-d latent; --no-plane for many checkpoints)")
    a = p.parse_args(argv)
    runs, iters = resolve_runs(p, a)
    dm = build_datamodule(read_checkpoint(checkpoint(runs[0], iters[0]))[1]["config"]["dataset"])  # every run's: one --dataset
    modes = torch.as_tensor(dm.modes)
    inner, mark = interior_modes(modes), None
    if a.mark is not None:
        hit = (modes == torch.tensor([float(c) for c in a.mark.split(",")], dtype=modes.dtype)).all(1).nonzero()
        if len(hit) != 1:
            p.error(f"--mark {a.mark} is not a mode of {a.dataset}: pick one of {[tuple(m) for m in modes.tolist()]}")
        mark = int(hit[0])
    rows, panels, latent_dims = [], [], set()
    for run in runs:
        for it in iters:
            gen, _ = load_generator(checkpoint(run, it))
            z = latents(gen, a.pool, seed=EVAL_SEED)
            row = {"run": run.name, "iteration": it, "latent_dim": z.shape[1]}
            row.update(stats(z, assign(gen, z, modes, dm.stds), inner, mark))
            row["emptiest"] = mode_name(modes[row["emptiest"]])
            rows.append(row)
            latent_dims.add(z.shape[1])
            panels += [(run.name, it, gen)] if a.plane else []
            print(" ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    write_csv(a.out / "latent_cells.csv", FIELDS, rows)
    if not a.plane:
        note = " (no plane drawn: --no-plane)"
    elif latent_dims != {2}:
        note = " (no plane drawn: the latent is not 2-d)"
    else:
        draw(panels, len(iters), modes, dm.stds, inner, mark, a.out / "latent_cells.png")
        note = f" and {a.out / 'latent_cells.png'}"
    print(f"wrote {a.out / 'latent_cells.csv'}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
