"""What the R1 penalty costs per GAN iteration, taken on every D update and lazily (``loss.r1_every=k``).

Times ganforge on the ring8 workload of ``throughput.py`` (MLPs 128 x 3, batch 256; pass ``--batch 768`` for the
grid recipe's packed batch) with the non-saturating loss: no penalty, R1 on every D update, and R1 on every k-th,
in one process, in alternating rounds after warm-up; reports the median iterations/s of each and its ratio to the
run without a penalty.

    python benchmarks/r1_cost.py                       # k = 16 (StyleGAN2's), 3 rounds of 1,500 iterations
    python benchmarks/r1_cost.py --every 4,16 --iters 3000 --rounds 5
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import WORKLOADS, run_ganforge  # noqa: E402

from ganforge.losses import make_loss  # noqa: E402


def bench(every: list[int], iters: int, rounds: int, warmup: int, batch: int, gamma: float = 0.1) -> dict:
    make_dm, make_g, make_d, *_ = WORKLOADS["ring8"]
    torch.manual_seed(0)
    g, d = make_g(), make_d()
    losses = {"none": make_loss("nonsaturating"), "r1": make_loss("nonsaturating", r1_weight=gamma)}
    losses |= {f"r1_every{k}": make_loss("nonsaturating", r1_weight=gamma, r1_every=k) for k in every}
    speeds: dict[str, list[float]] = {k: [] for k in losses}
    for r in range(rounds):
        for name in list(losses) if r % 2 == 0 else list(losses)[::-1]:  # alternate who goes first
            speeds[name].append(run_ganforge(g, d, functools.partial(make_dm, batch), iters, warmup, "cpu", loss=losses[name]))
    med = {k: statistics.median(v) for k, v in speeds.items()}
    return {
        "workload": f"ring8 MLPs 128x3, batch {batch}, nonsaturating + R1 gamma {gamma}",
        "threads": torch.get_num_threads(),
        "iters_per_s": {k: round(v, 1) for k, v in med.items()},
        "relative_to_none": {k: round(v / med["none"], 3) for k, v in med.items()},
        "rounds": {k: [round(x, 1) for x in v] for k, v in speeds.items()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--every", default="16", help="comma-separated r1_every values to time beside every update")
    p.add_argument("--iters", type=int, default=1500)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=256)
    a = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    print(json.dumps(bench([int(k) for k in a.every.split(",")], a.iters, a.rounds, a.warmup, a.batch), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
