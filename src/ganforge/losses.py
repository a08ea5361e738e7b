"""GAN objectives as small pure functions of discriminator outputs.

Every discriminator in ganforge returns one real number per (packed) sample, called the *logit*
below. For the sigmoid losses it is the log-odds of "real": D(x) = sigmoid(logit). For the others
(WGAN, hinge, LSGAN) it is the raw critic value. ``r`` = logits on real data, ``f`` = logits on
generated data; all losses are means over the batch and are *minimized*.

=================  ===========================================================  ====================================
loss               discriminator loss                                           generator loss
=================  ===========================================================  ====================================
``minimax``        -E log D(x) - E log(1 - D(G(z)))   (= BCE, i.e. -V)          E log(1 - D(G(z)))   (saturating)
``nonsaturating``  same as minimax                                              -E log D(G(z))
``wgan``           E f - E r, D's weights clipped to [-c, c] after each step   -E f
``wgan_gp``        E f - E r + lambda E (||grad_x D(x_hat)||_2 - c)^2, c = 1   -E f
``hinge``          E relu(1 - r) + E relu(1 + f)                                -E f
``lsgan``          1/2 E (r - 1)^2 + 1/2 E f^2                                  1/2 E (f - 1)^2
=================  ===========================================================  ====================================

Numerics: log D(x) = -softplus(-r) and log(1 - D(x)) = -softplus(r), so no sigmoid is ever taken
before a log. For the sigmoid losses the empirical value function is V~ = -d_loss, hence the
batch JSD estimate (V~ + log 4) / 2 (Goodfellow et al. 2014, Theorem 1).

Any loss but ``wgan`` can add the interpolate gradient penalty ``gp_weight * E (||grad_x D(x_hat)||_2 - gp_center)^2``
at x_hat uniform on the segments between real and fake samples: centred on 1 it is WGAN-GP's (Gulrajani et al.
2017; Kurach et al. 2019 also pair it with the non-saturating loss), centred on 0 it is the zero-centred "0-GP" of
Thanh-Tung et al. (2019), which keeps D's slope small on the paths from G's samples to the data (logged ``train/gp``;
d_loss and the JSD estimate leave it out).
Any loss but ``wgan_gp`` can add the R1 penalty, ``r1_weight / 2 * E ||grad_x D(x)||^2`` on real data
(Mescheder et al. 2018), to D's loss; the logged d_loss and JSD estimate leave the penalty out (``train/r1``).
With ``r1_every=k`` it is taken lazily (Karras et al. 2020, StyleGAN2): on every k-th D update only, weighted k
times, so its mean weight is unchanged and its double backward costs 1/k as much. Its effect is not unchanged:
D's slope at the data regrows between penalties, and on gaussian1d (``benchmarks/r1_lazy.py``, docs/benchmarks.md)
k = 4 and 16 trained measurably worse than k = 1.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ganforge.config import ConfigError

LOG4 = math.log(4.0)


def bce_d_loss(r: Tensor, f: Tensor) -> Tensor:
    """-V~ = -E log D(x) - E log(1 - D(G(z))): binary cross-entropy with real=1, fake=0."""
    return F.softplus(-r).mean() + F.softplus(f).mean()


def minimax_g_loss(f: Tensor) -> Tensor:
    """E log(1 - D(G(z))): the generator's side of the original minimax game (saturates early)."""
    return -F.softplus(f).mean()


def nonsaturating_g_loss(f: Tensor) -> Tensor:
    """-E log D(G(z)): same fixed point as minimax, strong gradients when D rejects the fakes."""
    return F.softplus(-f).mean()


def wasserstein_d_loss(r: Tensor, f: Tensor) -> Tensor:
    """E f - E r: the negated Kantorovich-Rubinstein dual (the critic maximizes E r - E f)."""
    return f.mean() - r.mean()


def wasserstein_g_loss(f: Tensor) -> Tensor:
    """-E f: shared by wgan, wgan_gp and hinge."""
    return -f.mean()


def hinge_d_loss(r: Tensor, f: Tensor) -> Tensor:
    return F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean()


def lsgan_d_loss(r: Tensor, f: Tensor) -> Tensor:
    """Least squares with targets a=0 (fake), b=1 (real) (Mao et al. 2017)."""
    return 0.5 * (r - 1.0).pow(2).mean() + 0.5 * f.pow(2).mean()


def lsgan_g_loss(f: Tensor) -> Tensor:
    return 0.5 * (f - 1.0).pow(2).mean()


def jsd_from_d_loss(d_loss: Tensor) -> Tensor:
    """JSD estimate in nats from a BCE discriminator loss: (V~ + log 4) / 2 with V~ = -d_loss.

    A lower bound on JSD(p_data || p_G) unless D is the optimal D*; may be negative on a batch
    where D is worse than chance.
    """
    return 0.5 * (LOG4 - d_loss)


def gradient_penalty(
    discriminator: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    generator: torch.Generator | None = None,
    alpha: Tensor | None = None,
    center: float = 1.0,
) -> Tensor:
    """E (||grad_x D(x_hat)||_2 - center)^2 at x_hat uniformly between real and fake: ``center=1`` is WGAN-GP's
    (Gulrajani et al. 2017), ``center=0`` the zero-centred 0-GP (Thanh-Tung et al. 2019).

    The norm is taken per row of D's output, so with PacGAN packing it is the gradient norm w.r.t.
    each packed group. ``create_graph=True`` keeps the penalty differentiable w.r.t. D's weights
    (the double backward). ``alpha`` ([B], uniform in [0, 1]) may be given; else it is drawn from ``generator``.
    """
    alpha_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    if alpha is None:
        alpha = torch.rand(alpha_shape, device=real.device, dtype=real.dtype, generator=generator)
    alpha = alpha.reshape(alpha_shape).to(real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = discriminator(x_hat)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    norms = grad.reshape(out.shape[0], -1).norm(2, dim=1)
    return (norms - center).pow(2).mean()


def r1_penalty(real: Tensor, real_logits: Tensor) -> Tensor:
    """E ||grad_x D(x)||_2^2 over real samples (R1, Mescheder et al. 2018); the D loss adds ``r1_weight / 2`` times it.

    ``real`` must have required grad when D was applied to it, giving ``real_logits``: the penalty reuses
    that forward pass. Zero-centred on the data, it damps D's slope where the data are, which makes the
    game locally convergent at p_G = p_data, where unregularized training (and instance noise decayed to
    0) can orbit the equilibrium. With packing the norm is taken per packed group (per row of D's output).
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.reshape(real_logits.shape[0], -1).pow(2).sum(1).mean()


@dataclass(frozen=True)
class GANLoss:
    """One GAN objective: what the module needs to know to run its D and G steps.

    Attributes:
        name: the config name (``loss=<name>``).
        d_loss: (real logits, fake logits) -> scalar to minimize.
        g_loss: fake logits -> scalar to minimize.
        sigmoid: True when logits are log-odds, so D(x) = sigmoid(logit) is a probability and the
            JSD estimate (V~ + log 4)/2 applies.
        gp_weight: lambda of the interpolate gradient penalty (0 = none).
        gp_center: c of that penalty, lambda * E (||grad D(x_hat)|| - c)^2: 1 for WGAN-GP, 0 for 0-GP.
        clip_value: WGAN weight clipping bound c (None = no clipping).
        r1_weight: gamma of the R1 penalty, gamma / 2 * E_data ||grad D||^2 (0 = none); any loss.
        r1_every: k, take R1 on D updates 0, k, 2k, ... only, with weight k * gamma / 2 (1 = every update).
    """

    name: str
    d_loss: Callable[[Tensor, Tensor], Tensor]
    g_loss: Callable[[Tensor], Tensor]
    sigmoid: bool = False
    gp_weight: float = 0.0
    gp_center: float = 1.0
    clip_value: float | None = None
    r1_weight: float = 0.0
    r1_every: int = 1

    @property
    def penalty(self) -> str | None:
        """The gradient penalty D's loss carries ("gp", "r1") or None: they need D's double backward."""
        return "gp" if self.gp_weight else "r1" if self.r1_weight else None

    @property
    def penalty_every(self) -> int:
        """How many D updates apart the penalty is taken: ``r1_every`` for lazy R1, else 1 (every update)."""
        return self.r1_every if self.penalty == "r1" else 1


def make_loss(
    name: str,
    gp_weight: float | None = None,
    clip_value: float = 0.01,
    r1_weight: float = 0.0,
    r1_every: int = 1,
    gp_center: float = 1.0,
) -> GANLoss:
    """Build a loss by name. ``gp_weight`` (the interpolate gradient penalty's lambda; None = the loss's default,
    10 for wgan_gp and 0 for the others) and its ``gp_center`` apply to any loss but wgan, whose weight clipping
    already bounds D; ``clip_value`` to wgan only; ``r1_weight`` (the R1 penalty's gamma) to any loss without the
    gradient penalty; ``r1_every`` to R1."""
    table = {
        "minimax": GANLoss("minimax", bce_d_loss, minimax_g_loss, sigmoid=True),
        "nonsaturating": GANLoss("nonsaturating", bce_d_loss, nonsaturating_g_loss, sigmoid=True),
        "wgan": GANLoss("wgan", wasserstein_d_loss, wasserstein_g_loss, clip_value=clip_value),
        "wgan_gp": GANLoss("wgan_gp", wasserstein_d_loss, wasserstein_g_loss, gp_weight=10.0),
        "hinge": GANLoss("hinge", hinge_d_loss, wasserstein_g_loss),
        "lsgan": GANLoss("lsgan", lsgan_d_loss, lsgan_g_loss),
    }
    if name not in table:
        raise ValueError(f"unknown loss '{name}': choose one of {sorted(table)}")
    gp_weight = table[name].gp_weight if gp_weight is None else gp_weight
    for key, value, what in (
        ("gp_weight", gp_weight, "the gradient penalty's lambda must be >= 0 (0 = off)"),
        ("gp_center", gp_center, "the gradient penalty's centre must be >= 0 (1 = WGAN-GP, 0 = 0-GP)"),
        ("r1_weight", r1_weight, "the R1 penalty's gamma must be >= 0 (0 = off)"),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
            raise ConfigError(f"loss.{key}={value}: {what}")
    if gp_weight and name == "wgan":
        raise ConfigError("loss=wgan clips D's weights instead of penalizing its gradient: use loss=wgan_gp, or loss.gp_weight=0")
    if r1_weight and gp_weight:
        what = f"loss={name} already penalizes" if name == "wgan_gp" else "loss.gp_weight penalizes"
        raise ConfigError(f"{what} D's gradient (gp_weight); take one penalty: set loss.r1_weight=0 or loss.gp_weight=0")
    if isinstance(r1_every, bool) or not isinstance(r1_every, int) or r1_every < 1:
        raise ConfigError(f"loss.r1_every={r1_every}: take R1 on every k-th D update, an integer k >= 1 (1 = every update)")
    return dataclasses.replace(
        table[name], gp_weight=float(gp_weight), gp_center=float(gp_center), r1_weight=float(r1_weight), r1_every=r1_every
    )
