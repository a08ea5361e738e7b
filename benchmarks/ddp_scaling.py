"""Data-parallel throughput on one machine: 1 process vs 2 DDP processes at the same global batch, and
ganforge's DDP against a plain ``torch.nn.parallel.DistributedDataParallel`` loop doing the same updates.

Three runs per round, in rotating order, medians over rounds:
  - ``ganforge_1proc``: GANModule on one process, global batch B;
  - ``ganforge_ddp``:  GANModule under GANDDPStrategy, ``--procs`` processes, B / procs per rank;
  - ``plain_ddp``:     the loop of throughput.py with G and D each in DDP (one wrapped forward per phase,
    as ganforge does), same processes and per-rank batch, no logging.
Printed: iterations/s, the scaling efficiency speedup / procs = (ddp it/s / 1proc it/s) / procs, and the
overhead ratio ganforge_ddp / plain_ddp. On CPU each process gets cores / procs threads.

    python benchmarks/ddp_scaling.py --workload dcgan32 --iters 30 --rounds 3
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import WORKLOADS, _Timer, adam, plain_iteration, run_ganforge  # noqa: E402

from ganforge.losses import make_loss  # noqa: E402
from ganforge.module import GANModule  # noqa: E402
from ganforge.strategies import GANDDPStrategy  # noqa: E402


class _RankZeroTimer(_Timer):
    def __init__(self, warmup: int, out: str) -> None:
        super().__init__(warmup)
        self.out = out

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            Path(self.out).write_text(json.dumps({"seconds": self.t1 - self.t0}))


def run_ganforge_ddp(workload: str, procs: int, iters: int, warmup: int) -> float:
    from lightning.pytorch.loggers import CSVLogger

    from ganforge.callbacks import GANProgressBar

    make_dm, make_g, make_d, batch, *_ = WORKLOADS[workload]
    torch.manual_seed(0)
    module = GANModule(make_g(), make_d(), make_loss("nonsaturating"), adam, adam, log_every=50)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "t.json")
        trainer = L.Trainer(
            accelerator="cpu", devices=procs, strategy=GANDDPStrategy(start_method="spawn"), max_steps=warmup + iters,
            max_epochs=-1, logger=CSVLogger(tmp, name="b"), log_every_n_steps=50, enable_checkpointing=False,
            callbacks=[_RankZeroTimer(warmup, out), GANProgressBar(refresh_rate=5)], enable_model_summary=False,
            limit_val_batches=0, default_root_dir=tmp,
        )
        trainer.fit(module, datamodule=make_dm(batch // procs))
        return iters / json.loads(Path(out).read_text())["seconds"]


def _plain_rank(rank: int, procs: int, port: int, workload: str, iters: int, warmup: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // procs))
    dist.init_process_group("gloo", rank=rank, world_size=procs)
    make_dm, make_g, make_d, batch, *_ = WORKLOADS[workload]
    torch.manual_seed(0)
    g, d = make_g(), make_d()
    kw = GANDDPStrategy()._ddp_kwargs  # the same buffer-sync setting as ganforge's wrappers
    dg, dd = (torch.nn.parallel.DistributedDataParallel(m, **kw) for m in (g, d))
    opt_g, opt_d = adam(g.parameters()), adam(d.parameters())
    loss = make_loss("nonsaturating")
    dm = make_dm(batch)
    dm.setup()
    x_all = dm.to_model_space(dm.train_data[0])
    n, m = x_all.shape[0], batch // procs
    gen = torch.Generator().manual_seed(0)
    perm, pos = torch.randperm(n, generator=gen), 0
    t0 = 0.0
    for it in range(warmup + iters):
        if it == warmup:
            dist.barrier()
            t0 = time.perf_counter()
        if pos + batch > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        real = x_all[perm[pos : pos + batch][rank::procs]]
        pos += batch
        z_d = torch.randn(batch, g.latent_dim, generator=gen)[rank::procs]
        z_g = torch.randn(batch, g.latent_dim, generator=gen)[rank::procs]
        plain_iteration(g, d, loss, opt_g, opt_d, real, z_d, z_g, g_fwd=dg, d_fwd=dd)
    dist.barrier()
    if rank == 0:
        Path(out).write_text(json.dumps({"seconds": time.perf_counter() - t0}))
    dist.destroy_process_group()


def run_plain_ddp(workload: str, procs: int, iters: int, warmup: int) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "t.json")
        mp.spawn(_plain_rank, args=(procs, port, workload, iters, warmup, out), nprocs=procs, join=True)
        return iters / json.loads(Path(out).read_text())["seconds"]


def run_one_process(workload: str, procs: int, iters: int, warmup: int) -> float:
    make_dm, make_g, make_d, batch, *_ = WORKLOADS[workload]
    torch.manual_seed(0)
    return run_ganforge(make_g(), make_d(), functools.partial(make_dm, batch), iters, warmup, "cpu")


RUNNERS = {"ganforge_1proc": run_one_process, "ganforge_ddp": run_ganforge_ddp, "plain_ddp": run_plain_ddp}


def bench(workload: str, procs: int, iters: int, rounds: int, warmup: int) -> dict:
    speeds: dict[str, list[float]] = {k: [] for k in RUNNERS}
    names = list(RUNNERS)
    for r in range(rounds):
        for name in names[r % 3 :] + names[: r % 3]:  # rotate who goes first
            speeds[name].append(RUNNERS[name](workload, procs, iters, warmup))
    med = {k: statistics.median(v) for k, v in speeds.items()}
    return {
        "workload": workload,
        "global_batch": WORKLOADS[workload][3],
        "procs": procs,
        "cpu_count": os.cpu_count(),
        "iters_per_round": iters,
        "rounds": rounds,
        "it_per_s": med,
        "all_rounds": speeds,
        "scaling_efficiency": med["ganforge_ddp"] / med["ganforge_1proc"] / procs,
        "ratio_ganforge_ddp_over_plain_ddp": med["ganforge_ddp"] / med["plain_ddp"],
        "median_round_ratio": statistics.median(a / b for a, b in zip(speeds["ganforge_ddp"], speeds["plain_ddp"])),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", choices=list(WORKLOADS), default="dcgan32")
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=5)
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    r = bench(args.workload, args.procs, args.iters, args.rounds, args.warmup)
    s = r["it_per_s"]
    print(
        f"{r['workload']} global batch {r['global_batch']}, {r['procs']} procs on {r['cpu_count']} CPU cores: "
        f"1 process {s['ganforge_1proc']:.2f} it/s, ganforge DDP {s['ganforge_ddp']:.2f} it/s, plain DDP {s['plain_ddp']:.2f} it/s; "
        f"scaling efficiency {r['scaling_efficiency']:.3f}; ratio ganforge/plain DDP {r['ratio_ganforge_ddp_over_plain_ddp']:.3f} "
        f"(median per-round {r['median_round_ratio']:.3f})"
    )
    print(json.dumps(r))


if __name__ == "__main__":
    main()
