"""Training throughput: ganforge (Lightning GANModule) vs a plain PyTorch loop doing the same updates.

Both run the same models (same initial weights), optimizers, batch size and in-memory data, in one
process, in alternating rounds (warm-up iterations excluded from timing); the median of the rounds
is reported, with the ratio ganforge / plain. Peak memory is measured per method in a fresh child
process (RSS on CPU, ``torch.cuda.max_memory_allocated`` on CUDA).

The plain loop is the shape of pytorch/examples' dcgan/main.py: per iteration one D update on m real
and m generated samples (G under no_grad), then one G update through a frozen D, with fresh noise;
no logging at all. ganforge runs as users run it: CSV logger every 50 iterations, progress bar on.
On ring8 ganforge also runs with ``iters_per_batch=10`` (10 GAN iterations per Lightning batch, the
same updates: see GANModule), reported as ``ganforge_ipb10``.

    python benchmarks/throughput.py                 # both workloads
    python benchmarks/throughput.py --workload ring8 --iters 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
import warnings

import lightning as L
import torch

from ganforge.data import DigitsDataModule, Ring8DataModule
from ganforge.losses import make_loss
from ganforge.models import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator
from ganforge.module import GANModule

WORKLOADS = {
    # name: (datamodule factory (batch, minibatches per step), G factory, D factory, batch, default iters, ganforge's iters_per_batch values)
    "dcgan32": (
        lambda b, m=1: DigitsDataModule(resolution=32, batch_size=b, batch_multiplier=m),
        lambda: DCGANGenerator(100, [1, 32, 32], base_width=64),
        lambda: DCGANDiscriminator([1, 32, 32], base_width=64),
        64,
        30,
        (1,),
    ),
    "ring8": (
        lambda b, m=1: Ring8DataModule(batch_size=b, batch_multiplier=m),
        lambda: MLPGenerator(8, [2], hidden=128, layers=3),
        lambda: MLPDiscriminator([2], hidden=128, layers=3),
        256,
        1500,
        (1, 10),
    ),
}


def adam(params):
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))


class _Timer(L.Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.t0, self.t1 = warmup, None, None

    def on_train_batch_end(self, trainer, *args) -> None:
        # synchronize only where the clock is read: a sync every batch would forbid the CPU to run ahead of the GPU,
        # which the plain loop (synchronized only at its start and end) is allowed
        if trainer.global_step == self.warmup:
            self._sync(trainer)
            self.t0 = time.perf_counter()
        elif trainer.global_step >= trainer.max_steps:
            self._sync(trainer)
            self.t1 = time.perf_counter()

    @staticmethod
    def _sync(trainer) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()


def run_ganforge(g, d, make_dm, iters: int, warmup: int, device: str, iters_per_batch: int = 1, loss=None) -> float:
    from ganforge.callbacks import GANProgressBar
    from lightning.pytorch.loggers import CSVLogger

    k = iters_per_batch
    if iters % k or warmup % k:
        raise SystemExit(f"--iters ({iters}) and --warmup ({warmup}) must be multiples of iters_per_batch={k}")
    dm = make_dm(k)  # k iterations' minibatches in one loader batch
    log_every = 50
    loss = make_loss("nonsaturating") if loss is None else loss
    module = GANModule(copy.deepcopy(g), copy.deepcopy(d), loss, adam, adam, log_every=log_every, iters_per_batch=k)
    timer = _Timer(warmup)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = L.Trainer(
            accelerator=device, devices=1, max_steps=warmup + iters, max_epochs=-1, logger=CSVLogger(tmp, name="b"),
            log_every_n_steps=log_every // k, callbacks=[timer, GANProgressBar(refresh_rate=5)], enable_checkpointing=False,
            enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp,
        )
        trainer.fit(module, datamodule=dm)
    return iters / (timer.t1 - timer.t0)


def run_plain(g, d, make_dm, iters: int, warmup: int, device: str) -> float:
    g, d = copy.deepcopy(g).to(device), copy.deepcopy(d).to(device)
    opt_g, opt_d = adam(g.parameters()), adam(d.parameters())
    loss = make_loss("nonsaturating")
    dm = make_dm()
    dm.setup()
    x_all = dm.to_model_space(dm.train_data[0].to(device))
    n, m = x_all.shape[0], dm.batch_size
    gen = torch.Generator(device=device).manual_seed(0)
    perm, pos = torch.randperm(n, device=device, generator=gen), 0
    t0 = None
    for it in range(warmup + iters):
        if it == warmup:
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        if pos + m > n:
            perm, pos = torch.randperm(n, device=device, generator=gen), 0
        real = x_all[perm[pos : pos + m]]
        pos += m
        z_d, z_g = torch.randn(2, m, g.latent_dim, device=device, generator=gen)
        plain_iteration(g, d, loss, opt_g, opt_d, real, z_d, z_g)
    if device == "cuda":
        torch.cuda.synchronize()
    return iters / (time.perf_counter() - t0)


def plain_iteration(g, d, loss, opt_g, opt_d, real, z_d, z_g, g_fwd=None, d_fwd=None) -> None:
    """One D step then one G step, the pytorch/examples dcgan way. ``g_fwd``/``d_fwd``: the networks'
    DDP wrappers (used for the forward of the network being updated), or the networks themselves."""
    g_fwd, d_fwd = g_fwd or g, d_fwd or d
    with torch.no_grad():
        fake = g(z_d)
    d_loss = loss.d_loss(d(real), d_fwd(fake))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    fake = g_fwd(z_g)
    d.requires_grad_(False)
    g_loss = loss.g_loss(d(fake))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    d.requires_grad_(True)
    opt_g.step()


RUNNERS = {"ganforge": run_ganforge, "plain": run_plain}


def runners(workload: str) -> dict:
    """The methods timed on ``workload``: ganforge (per iters_per_batch value) and the plain loop."""
    out = {"ganforge" if k == 1 else f"ganforge_ipb{k}": functools.partial(run_ganforge, iters_per_batch=k) for k in WORKLOADS[workload][5]}
    return {**out, "plain": run_plain}


def _peak_memory_child(method: str, workload: str, device: str, q) -> None:
    warnings.filterwarnings("ignore")
    make_dm, make_g, make_d, batch, *_ = WORKLOADS[workload]
    torch.manual_seed(0)
    g, d = make_g(), make_d()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    runners(workload)[method](g, d, functools.partial(make_dm, batch), 20, 10, device)
    # CUDA: peak allocated by the run; CPU: growth of the process's peak RSS during the run (imports excluded)
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    q.put(peak / 2**20)


def peak_memory_mib(method: str, workload: str, device: str) -> float:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_peak_memory_child, args=(method, workload, device, q))
    p.start()
    value = q.get(timeout=600)
    p.join()
    return value


def bench(workload: str, iters: int, rounds: int, warmup: int, device: str) -> dict:
    make_dm, make_g, make_d, batch, *_ = WORKLOADS[workload]
    torch.manual_seed(0)
    g, d = make_g(), make_d()
    methods = runners(workload)
    speeds: dict[str, list[float]] = {k: [] for k in methods}
    for r in range(rounds):
        order = list(methods) if r % 2 == 0 else list(methods)[::-1]  # alternate who goes first
        for method in order:
            speeds[method].append(methods[method](g, d, functools.partial(make_dm, batch), iters, warmup, device))
    med = {k: statistics.median(v) for k, v in speeds.items()}
    variants = [k for k in methods if k.startswith("ganforge_")]
    return {
        "workload": workload,
        "batch": batch,
        "device": device,
        "iters_per_round": iters,
        "rounds": rounds,
        "it_per_s": med,
        "all_rounds": speeds,
        "ratio_ganforge_over_plain": med["ganforge"] / med["plain"],
        # each round runs both methods back to back, so per-round ratios cancel slow drifts of the machine
        "median_round_ratio": statistics.median(a / b for a, b in zip(speeds["ganforge"], speeds["plain"])),
        **{f"ratio_{k}_over_plain": med[k] / med["plain"] for k in variants},
        **{f"median_round_ratio_{k}": statistics.median(a / b for a, b in zip(speeds[k], speeds["plain"])) for k in variants},
        "peak_mem_mib": {k: peak_memory_mib(k, workload, device) for k in methods},
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", choices=[*WORKLOADS, "all"], default="all")
    p.add_argument("--iters", type=int, default=None, help="timed iterations per round (default per workload)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    names = list(WORKLOADS) if args.workload == "all" else [args.workload]
    results = []
    for name in names:
        iters = args.iters or WORKLOADS[name][4]
        warmup = args.warmup if args.warmup is not None else max(10, iters // 100 * 10)  # a multiple of iters_per_batch
        res = bench(name, iters, args.rounds, warmup, args.device)
        results.append(res)
        s = res["it_per_s"]
        print(
            f"{name:8s} batch {res['batch']:4d} on {args.device} ({torch.get_num_threads()} threads): "
            f"ganforge {s['ganforge']:8.1f} it/s | plain {s['plain']:8.1f} it/s | ratio {res['ratio_ganforge_over_plain']:.3f} (median per-round {res['median_round_ratio']:.3f}) | "
            f"peak mem ganforge {res['peak_mem_mib']['ganforge']:.0f} MiB, plain {res['peak_mem_mib']['plain']:.0f} MiB"
            + (" (peak RSS growth while training)" if args.device == "cpu" else " (CUDA peak allocated)"),
            flush=True,
        )
        for k in (k for k in s if k.startswith("ganforge_")):
            print(
                f"{'':8s} {k}: {s[k]:8.1f} it/s | ratio {res[f'ratio_{k}_over_plain']:.3f} "
                f"(median per-round {res[f'median_round_ratio_{k}']:.3f}) | peak mem {res['peak_mem_mib'][k]:.0f} MiB",
                flush=True,
            )
    print(json.dumps(results, indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
