"""The empirical Jensen-Shannon divergence of the GAN theorem, estimated and checked.

For a fixed G the optimal discriminator is D*(x) = p(x) / (p(x) + q(x)) (p = data, q = generator) and
max_D V(G, D) = -log 4 + 2 JSD(p || q). Any other D gives a smaller V, so for a classifier D evaluated on
samples it was not trained on

    JSD_hat = (V_tilde + log 4) / 2,   V_tilde = mean log D(x_real) + mean log(1 - D(x_fake))

estimates a **lower bound** on JSD (in nats, at most log 2), tight when D = D*. Three estimates use it:
the training D on its batch (``train/jsd_batch``), the training D on held-out data (``val/jsd_d``), and a
fresh *probe* classifier trained here on held-out real vs generated samples (``val/jsd_probe``), valid for
every GAN loss because it does not rely on the training D being a probability.

``python -m ganforge.metrics.jsd REAL.npy FAKE.npy`` prints one JSON object (see :func:`main`).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOG2 = math.log(2.0)
LOG4 = math.log(4.0)

LogDensity = Callable[[Tensor], Tensor]


# ----------------------------------------------------------------------------- ground truth
def jsd_numeric(log_p: LogDensity, log_q: LogDensity, lo: list[float], hi: list[float], n: int = 200_001) -> float:
    """JSD(p || q) in nats by a Riemann sum on a regular grid over the box [lo, hi] (1 or 2 dimensions).

    ``log_p``/``log_q`` map points [N, d] (float64) to log densities [N]. ``n`` grid points per axis in
    1D; in 2D ``int(sqrt(n))`` per axis is too coarse, so pass the per-axis count you want.
    """
    d = len(lo)
    axes = [torch.linspace(float(a), float(b), n, dtype=torch.float64) for a, b in zip(lo, hi)]
    cell = math.prod(float(ax[1] - ax[0]) for ax in axes)
    pts = torch.cartesian_prod(*axes).reshape(-1, d)
    total = 0.0
    for chunk in pts.split(1_000_000):
        lp, lq = log_p(chunk).double(), log_q(chunk).double()
        lm = torch.logaddexp(lp, lq) - LOG2  # log of the mixture (p + q) / 2
        total += float((0.5 * lp.exp() * (lp - lm) + 0.5 * lq.exp() * (lq - lm)).nansum())
    return total * cell


def optimal_d_terms(log_p: LogDensity, log_q: LogDensity, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample terms of V with the analytic D* = p / (p + q): log D*(x_real) and log(1 - D*(x_fake))."""
    lpr, lqr = log_p(real).double(), log_q(real).double()
    lpf, lqf = log_p(fake).double(), log_q(fake).double()
    return lpr - torch.logaddexp(lpr, lqr), lqf - torch.logaddexp(lpf, lqf)


def jsd_from_terms(real_terms: Tensor, fake_terms: Tensor) -> float:
    """(V_tilde + log 4) / 2 from per-sample log D(x_real) and log(1 - D(x_fake))."""
    return 0.5 * (float(real_terms.mean()) + float(fake_terms.mean()) + LOG4)


def bootstrap_ci(real_terms: Tensor, fake_terms: Tensor, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of :func:`jsd_from_terms`, resampling real and fake terms independently."""
    g = torch.Generator().manual_seed(seed)
    r, f = real_terms.double().cpu(), fake_terms.double().cpu()
    stats = torch.empty(n_boot, dtype=torch.float64)
    for i in range(0, n_boot, 100):
        b = min(100, n_boot - i)
        ir = torch.randint(len(r), (b, len(r)), generator=g)
        jf = torch.randint(len(f), (b, len(f)), generator=g)
        stats[i : i + b] = 0.5 * (r[ir].mean(1) + f[jf].mean(1) + LOG4)
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    lo, hi = torch.quantile(stats, q).tolist()
    return lo, hi


@torch.no_grad()
def generator_jsd_1d(generator: nn.Module, log_p: LogDensity, lo: float, hi: float, bins: int = 4000, n_z: int = 400_001) -> float:
    """JSD(p || p_G) in nats for a generator with a 1-D latent z ~ N(0, 1) and 1-D output, against a known density p.

    p_G is the pushforward of N(0, 1): the z-axis on [-7, 7] is cut into ``n_z - 1`` intervals whose exact
    probability mass (differences of the normal CDF) is placed at G's value at each interval's midpoint,
    binned on ``bins`` equal bins over [lo, hi] (mass outside goes to the end bins); p is binned by the
    midpoint rule on the same bins. The JSD of the two binned distributions converges to the true JSD as
    the bins shrink (and is below it by the data-processing inequality). Works for any G, monotone or not.
    """
    if getattr(generator, "latent_dim", None) != 1:
        raise ValueError("generator_jsd_1d needs a generator with latent_dim=1 (set model.generator.latent_dim=1)")
    was = generator.training
    generator.eval()
    dev = next(generator.parameters()).device
    z = torch.linspace(-7.0, 7.0, n_z, dtype=torch.float64)
    mass = torch.special.ndtr(z[1:]) - torch.special.ndtr(z[:-1])
    mid = ((z[1:] + z[:-1]) / 2).float().reshape(-1, 1).to(dev)
    x = torch.cat([generator(c) for c in mid.split(50_000)]).double().cpu().reshape(-1)
    generator.train(was)
    width = (hi - lo) / bins
    idx = ((x - lo) / width).floor().clamp(0, bins - 1).long()
    q = torch.zeros(bins, dtype=torch.float64).index_add_(0, idx, mass)
    q = q / q.sum()
    centres = lo + width * (torch.arange(bins, dtype=torch.float64) + 0.5)
    p = log_p(centres.reshape(-1, 1)).double().exp() * width
    p = p / p.sum()
    m = (p + q) / 2
    kl = lambda a: float(torch.where(a > 0, a * (a / m).log(), torch.zeros_like(a)).sum())  # noqa: E731
    return 0.5 * kl(p) + 0.5 * kl(q)


# ----------------------------------------------------------------------------- the probe
class _MLPProbe(nn.Module):
    def __init__(self, in_dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(in_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)


class _CNNProbe(nn.Module):
    def __init__(self, channels: int, width: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, 2, 1), nn.SiLU(), nn.Conv2d(width, 2 * width, 3, 2, 1), nn.SiLU(),
            nn.Conv2d(2 * width, 2 * width, 3, 2, 1), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 1),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)


def _logistic(in_dim: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(in_dim, 1), nn.Flatten(0))


PROBES: dict[str, Callable[[tuple[int, ...]], nn.Module]] = {
    "mlp": lambda shape: _MLPProbe(math.prod(shape)),
    "cnn": lambda shape: _CNNProbe(shape[0]),
    "logistic": lambda shape: _logistic(math.prod(shape)),
}


@dataclass
class JSDEstimate:
    """A probe estimate: ``jsd`` in nats (a lower bound on the true JSD), its 95% bootstrap interval over the
    evaluation samples (it does not include the variability of the probe's training), and the counts."""

    jsd: float
    ci95: tuple[float, float]
    jsd_over_log2: float
    classifier: str
    n_real: int
    n_fake: int
    n_eval_real: int
    n_eval_fake: int
    train_steps: int
    units: str = "nats"
    bound: str = "lower"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ci95"] = list(self.ci95)
        return d


def check_sample_sets(real: Tensor, fake: Tensor, min_n: int = 20) -> None:
    """One-line errors for sample sets that cannot be compared, before any work is done."""
    if real.dim() < 2 or fake.dim() < 2:
        raise ValueError(f"samples must be arrays [N, ...] with N samples, got shapes {list(real.shape)} and {list(fake.shape)}")
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(
            f"real samples have shape {list(real.shape[1:])} but fake samples {list(fake.shape[1:])}: both sets must be in the same space"
        )
    for name, x in (("real", real), ("fake", fake)):
        if len(x) < min_n:
            raise ValueError(f"{name} has {len(x)} samples; the probe needs at least {min_n} per set (use thousands)")
        bad = int((~torch.isfinite(x)).flatten(1).any(1).sum()) if x.is_floating_point() else 0
        if bad:
            raise ValueError(f"{name} has {bad} samples with NaN or inf values: drop them or fix the generator first")


def probe_jsd(
    real: Tensor,
    fake: Tensor,
    classifier: str = "auto",
    eval_frac: float = 0.5,
    seed: int = 0,
    max_steps: int = 4000,
    batch_size: int = 256,
    lr: float = 1e-3,
    device: str | torch.device = "cpu",
    n_boot: int = 1000,
) -> JSDEstimate:
    """Estimate JSD(real || fake) with a fresh classifier (the probe).

    Each set is split once (``seed``): ``eval_frac`` is held out for the estimate; of the rest, 80% trains
    the probe (balanced minibatches of ``batch_size`` real + ``batch_size`` fake, i.e. ascent on V_tilde)
    and 20% picks the best training step (early stopping on V_tilde), so the held-out estimate is not
    biased upwards by overfitting. ``classifier``: ``mlp`` (vectors), ``cnn`` (images [N, C, H, W]),
    ``logistic`` (a linear probe: a looser bound), or ``auto`` (cnn for images, else mlp).
    Inputs are standardized with the pooled training mean and std.
    """
    # callable from Lightning's validation hooks, which run under inference mode: train on ordinary tensors
    with torch.inference_mode(False), torch.enable_grad():
        real, fake = torch.as_tensor(real).float().clone(), torch.as_tensor(fake).float().clone()
        return _probe_jsd(real, fake, classifier, eval_frac, seed, max_steps, batch_size, lr, device, n_boot)


def _probe_jsd(real, fake, classifier, eval_frac, seed, max_steps, batch_size, lr, device, n_boot) -> JSDEstimate:
    check_sample_sets(real, fake)
    if classifier == "auto":
        classifier = "cnn" if real.dim() == 4 else "mlp"
    if classifier not in PROBES:
        raise ValueError(f"unknown classifier '{classifier}': choose one of {', '.join(PROBES)} or auto")
    if classifier == "cnn" and real.dim() != 4:
        raise ValueError(f"classifier=cnn needs images [N, C, H, W], got samples of shape {list(real.shape[1:])}: use mlp")
    if not 0.0 < eval_frac < 1.0:
        raise ValueError(f"eval_frac must be in (0, 1), got {eval_frac}")
    g = torch.Generator().manual_seed(seed)
    parts = [_split(x, eval_frac, g) for x in (real, fake)]  # (fit, select, eval) for each set
    (r_fit, r_sel, r_ev), (f_fit, f_sel, f_ev) = parts
    pooled = torch.cat([r_fit, f_fit])
    mean, std = pooled.mean(0, keepdim=True), pooled.std(0, keepdim=True).clamp_min(1e-6)
    if real.dim() == 4:  # per-channel statistics for images
        mean = pooled.mean((0, 2, 3), keepdim=True)
        std = pooled.std((0, 2, 3), keepdim=True).clamp_min(1e-6)
    dev = torch.device(device)

    def prep(x: Tensor) -> Tensor:
        return ((x - mean) / std).to(dev)

    r_fit, r_sel, r_ev, f_fit, f_sel, f_ev = map(prep, (r_fit, r_sel, r_ev, f_fit, f_sel, f_ev))
    with torch.random.fork_rng(devices=[]):  # seeded initial weights, without touching the caller's global RNG
        torch.manual_seed(seed)
        net = PROBES[classifier](tuple(real.shape[1:])).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    best, best_state, best_step, since_best = -float("inf"), copy.deepcopy(net.state_dict()), 0, 0
    # early stopping: stop after `patience` checks without a gain of min_delta nats on the selection split
    check_every, patience, min_delta = 50, 10, 1e-3
    bs = min(batch_size, len(r_fit), len(f_fit))
    for step in range(1, max_steps + 1):
        ir = torch.randint(len(r_fit), (bs,), generator=g).to(dev)
        jf = torch.randint(len(f_fit), (bs,), generator=g).to(dev)
        v = F.logsigmoid(net(r_fit[ir])).mean() + F.logsigmoid(-net(f_fit[jf])).mean()
        opt.zero_grad(set_to_none=True)
        (-v).backward()
        opt.step()
        if step % check_every == 0 or step == max_steps:
            rt, ft = _terms(net, r_sel, f_sel)
            score = jsd_from_terms(rt, ft)
            if score > best:
                gained = score - best
                best, best_state, best_step = score, copy.deepcopy(net.state_dict()), step
            else:
                gained = 0.0
            if gained >= min_delta:
                since_best = 0
            else:
                since_best += 1
                if since_best >= patience:
                    break
    net.load_state_dict(best_state)
    rt, ft = _terms(net, r_ev, f_ev)
    jsd = jsd_from_terms(rt, ft)
    ci = bootstrap_ci(rt, ft, n_boot=n_boot, seed=seed)
    return JSDEstimate(
        jsd=jsd, ci95=ci, jsd_over_log2=jsd / LOG2, classifier=classifier, n_real=len(real), n_fake=len(fake),
        n_eval_real=len(r_ev), n_eval_fake=len(f_ev), train_steps=best_step,
    )  # fmt: skip


def _split(x: Tensor, eval_frac: float, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    perm = torch.randperm(len(x), generator=g)
    n_eval = max(1, int(round(len(x) * eval_frac)))
    n_sel = max(1, int(round((len(x) - n_eval) * 0.2)))
    ev, sel, fit = perm[:n_eval], perm[n_eval : n_eval + n_sel], perm[n_eval + n_sel :]
    return x[fit], x[sel], x[ev]


@torch.no_grad()
def _terms(net: nn.Module, real: Tensor, fake: Tensor, chunk: int = 4096) -> tuple[Tensor, Tensor]:
    was = net.training
    net.eval()
    rt = torch.cat([F.logsigmoid(net(c)) for c in real.split(chunk)])
    ft = torch.cat([F.logsigmoid(-net(c)) for c in fake.split(chunk)])
    net.train(was)
    return rt.double(), ft.double()


# ----------------------------------------------------------------------------- CLI
def load_samples(path: str | Path) -> Tensor:
    """Samples from ``.npy``, ``.npz`` (array ``x``, else the only array), or ``.pt``: [N, D] vectors or
    images [N, H, W], [N, C, H, W] or [N, H, W, C] (C in 1, 3); uint8 images are kept as 0..255 floats."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{path} does not exist")
    if p.suffix == ".pt":
        x = torch.load(p, map_location="cpu", weights_only=True)
        x = x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    elif p.suffix == ".npz":
        with np.load(p) as z:
            if "x" in z.files:
                x = torch.from_numpy(z["x"])
            elif len(z.files) == 1:
                x = torch.from_numpy(z[z.files[0]])
            else:
                raise ValueError(f"{path} holds arrays {z.files}: name the samples 'x' or keep one array")
    elif p.suffix == ".npy":
        x = torch.from_numpy(np.load(p, allow_pickle=False))
    else:
        raise ValueError(f"{path}: unsupported file type '{p.suffix}' (use .npy, .npz or .pt)")
    if x.dim() == 1:
        x = x[:, None]
    elif x.dim() == 3:
        x = x[:, None]
    elif x.dim() == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.permute(0, 3, 1, 2)
    return x.float()


def main(argv: list[str] | None = None) -> None:
    """``python -m ganforge.metrics.jsd REAL FAKE [--classifier auto|mlp|cnn|logistic] [--seed S]``.

    Prints one JSON object: ``jsd`` (nats, a lower bound), ``ci95`` [lo, hi], ``jsd_over_log2``,
    ``classifier``, ``n_real``, ``n_fake``, ``n_eval_real``, ``n_eval_fake``, ``train_steps``, ``units``,
    ``bound``. Exit status 2 with a one-line error on bad input.
    """
    ap = argparse.ArgumentParser(prog="python -m ganforge.metrics.jsd", description=main.__doc__.split("\n")[0])
    ap.add_argument("real", help="real samples (.npy/.npz/.pt), [N, D] or images")
    ap.add_argument("fake", help="generated samples, same shape per sample")
    ap.add_argument("--classifier", default="auto", choices=["auto", *PROBES])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-frac", type=float, default=0.5)
    ap.add_argument("--max-steps", type=int, default=4000)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    try:
        real, fake = load_samples(args.real), load_samples(args.fake)
        est = probe_jsd(
            real, fake, classifier=args.classifier, eval_frac=args.eval_frac, seed=args.seed,
            max_steps=args.max_steps, device=args.device,
        )  # fmt: skip
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(est.to_dict()))


if __name__ == "__main__":
    main()
