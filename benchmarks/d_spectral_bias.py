"""How fast can D tell the grid from a blurred G? The recipe's D against one fed random Fourier features.

On grid25 the recipe's runs spend their first 25-45k iterations blurred: G spreads over the square, 2% of its
samples high quality, and the held-out JSD estimate ``val/jsd_d`` stays near 0, as if D could not tell that G from
the 25 modes. This isolates D: G is frozen as that blur (uniform on [-4.6, 4.6]^2, the square the blurred runs fill)
and only D trains, as in the recipe (packing 6, 128 packed samples a step, Adam at 3e-3 with betas (0.5, 0.999), the
non-saturating BCE and the 0-GP at lambda 0.03), from ``--seeds`` seeds per arm. Every ``--every`` steps it scores
JSD ≈ (V + log 4) / 2 on held-out samples (6,000 of each, the same for every arm and seed): the lower bound on the
JSD between the packed distributions that the D of that moment gives. The true value is close to log 2 = 0.693 (the
modes are 0.05 wide; the uniform G puts 2% of its mass within 3 std of them).

Arms: ``raw`` (the recipe's D, raw coordinates), ``ffF`` (F random Fourier features per sample, scale
``--scale`` cycles per unit: ``model.discriminator.fourier_features=F``).

    python benchmarks/d_spectral_bias.py                          # raw, ff16, ff64; 3 seeds; 5,000 steps
    python benchmarks/d_spectral_bias.py --arms raw,ff64 --steps 300 --every 100 --seeds 1   # a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from ganforge.data.toy import Grid25DataModule
from ganforge.losses import bce_d_loss, gradient_penalty, jsd_from_d_loss
from ganforge.models import MLPDiscriminator

PACK, PACKED_BATCH, HALF_SIDE = 6, 128, 4.6


def blurred_g(n: int, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(n, 2, generator=generator) * 2 - 1) * HALF_SIDE


def make_d(arm: str, scale: float) -> MLPDiscriminator:
    if arm == "raw":
        return MLPDiscriminator([2], hidden=128, layers=3, pack=PACK)
    if arm.startswith("ff") and arm[2:].isdigit():
        return MLPDiscriminator([2], hidden=128, layers=3, pack=PACK, fourier_features=int(arm[2:]), fourier_scale=scale)
    raise SystemExit(f"unknown arm {arm!r}: raw or ffF (F random Fourier features, e.g. ff64)")


def jsd_estimate(d: MLPDiscriminator, real: torch.Tensor, fake: torch.Tensor) -> float:
    with torch.no_grad():
        return jsd_from_d_loss(bce_d_loss(d(real), d(fake))).item()


def train_d(arm: str, seed: int, steps: int, every: int, scale: float, gp: float) -> tuple[list[float], float]:
    """D alone against the frozen blur; returns the held-out JSD estimate at steps 0, every, 2*every, ... and seconds."""
    data = Grid25DataModule()
    val_real = data.sample(1000 * PACK, torch.Generator().manual_seed(10_001))[0]
    val_fake = blurred_g(1000 * PACK, torch.Generator().manual_seed(10_002))
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    d = make_d(arm, scale)
    opt = torch.optim.Adam(d.parameters(), lr=3e-3, betas=(0.5, 0.999))
    curve, t0 = [], time.perf_counter()
    for step in range(steps + 1):
        if step % every == 0:
            curve.append(jsd_estimate(d, val_real, val_fake))
        if step == steps:
            break
        real = data.sample(PACKED_BATCH * PACK, g)[0]
        fake = blurred_g(PACKED_BATCH * PACK, g)
        loss = bce_d_loss(d(real), d(fake))
        if gp:
            loss = loss + gp * gradient_penalty(d, real, fake, generator=g, center=0.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return curve, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arms", default="raw,ff16,ff64")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--every", type=int, default=500)
    ap.add_argument("--scale", type=float, default=1.0, help="std of the Fourier frequencies, cycles per data unit")
    ap.add_argument("--gp", type=float, default=0.03, help="0-GP weight, as the recipe's grid25 D (0 = none)")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.every < 1 or args.seeds < 1:
        raise SystemExit("--steps, --every and --seeds must be >= 1")
    torch.set_num_threads(1)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    for arm in arms:
        make_d(arm, args.scale)  # an unknown arm fails before any training
    marks = list(range(0, args.steps + 1, args.every))
    print(f"# held-out JSD estimate (nats) of D against a frozen blurred G on grid25; mean (min-max) over {args.seeds} seeds; "
          f"scale {args.scale}, 0-GP {args.gp}; torch {torch.__version__}, 1 thread")
    print("| arm | " + " | ".join(f"step {m:,}" for m in marks) + " | s per 1,000 steps |")
    print("|---" * (len(marks) + 2) + "|")
    for arm in arms:
        curves, secs = zip(*(train_d(arm, s, args.steps, args.every, args.scale, args.gp) for s in range(args.seeds)))
        cells = [f"{statistics.mean(c):.3f} ({min(c):.3f}-{max(c):.3f})" for c in zip(*curves)]
        print(f"| {arm} | " + " | ".join(cells) + f" | {1000 * statistics.mean(secs) / args.steps:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
