import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from ganforge.config import ConfigError
from ganforge.losses import LOG4, gradient_penalty, jsd_from_d_loss, make_loss, r1_penalty

R = torch.tensor([2.0, -1.0, 0.5])
FK = torch.tensor([-3.0, 0.0, 1.0])
sig = torch.sigmoid


def hand(name):
    r, f = R.tolist(), FK.tolist()
    s = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    bce = -mean([math.log(s(v)) for v in r]) - mean([math.log(1 - s(v)) for v in f])
    return {
        "minimax": (bce, mean([math.log(1 - s(v)) for v in f])),
        "nonsaturating": (bce, -mean([math.log(s(v)) for v in f])),
        "wgan": (mean(f) - mean(r), -mean(f)),
        "wgan_gp": (mean(f) - mean(r), -mean(f)),
        "hinge": (mean([max(0, 1 - v) for v in r]) + mean([max(0, 1 + v) for v in f]), -mean(f)),
        "lsgan": (0.5 * mean([(v - 1) ** 2 for v in r]) + 0.5 * mean([v**2 for v in f]), 0.5 * mean([(v - 1) ** 2 for v in f])),
    }[name]


@pytest.mark.parametrize("name", ["minimax", "nonsaturating", "wgan", "wgan_gp", "hinge", "lsgan"])
def test_losses_match_hand_computed_values(name):
    loss = make_loss(name)
    d, g = hand(name)
    assert loss.d_loss(R, FK).item() == pytest.approx(d, rel=1e-6)
    assert loss.g_loss(FK).item() == pytest.approx(g, rel=1e-6)


def test_minimax_d_loss_is_bce_on_logits():
    r, f = torch.randn(100) * 3, torch.randn(100) * 3
    bce = F.binary_cross_entropy_with_logits(r, torch.ones_like(r)) + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))
    assert make_loss("minimax").d_loss(r, f).item() == pytest.approx(bce.item(), rel=1e-6)


def test_sigmoid_losses_are_stable_for_extreme_logits():
    loss = make_loss("nonsaturating")
    r, f = torch.tensor([100.0, -100.0]), torch.tensor([100.0, -100.0])
    assert torch.isfinite(loss.d_loss(r, f)) and torch.isfinite(loss.g_loss(f))
    assert torch.isfinite(make_loss("minimax").g_loss(f))


def test_jsd_batch_is_zero_at_chance_and_log2_at_perfect_discrimination():
    # D = 1/2 everywhere: V = -log 4, JSD estimate 0
    assert jsd_from_d_loss(make_loss("minimax").d_loss(torch.zeros(4), torch.zeros(4))).item() == pytest.approx(0.0, abs=1e-7)
    # perfect D: V -> 0, JSD -> log 2
    perfect = make_loss("minimax").d_loss(torch.full((4,), 50.0), torch.full((4,), -50.0))
    assert jsd_from_d_loss(perfect).item() == pytest.approx(math.log(2), abs=1e-6)
    assert LOG4 == pytest.approx(2 * math.log(2))


def test_unknown_loss_names_the_choices():
    with pytest.raises(ValueError, match="unknown loss 'foo'.*hinge"):
        make_loss("foo")


class Quadratic(torch.nn.Module):
    """D(x) = sum(w * x^2) per sample: grad_x = 2 w x, known in closed form."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([0.7, -1.3, 0.4], dtype=torch.float64))

    def forward(self, x):
        return (self.w * x.pow(2)).sum(1)


def test_gradient_penalty_matches_closed_form_and_double_backward_is_correct():
    torch.manual_seed(0)
    d = Quadratic()
    real, fake = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 3, dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    gp = gradient_penalty(d, real, fake, generator=g)
    alpha = torch.rand(16, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    x_hat = alpha * real + (1 - alpha) * fake

    def reference(w):
        return ((2 * w * x_hat).norm(dim=1) - 1).pow(2).mean()

    assert gp.item() == pytest.approx(reference(d.w.detach()).item(), rel=1e-10)
    # the penalty's gradient w.r.t. D's weights (double backward) against central finite differences
    (grad_w,) = torch.autograd.grad(gp, d.w)
    eps = 1e-6
    fd = torch.stack([(reference(d.w.detach() + eps * e) - reference(d.w.detach() - eps * e)) / (2 * eps) for e in torch.eye(3, dtype=torch.float64)])
    torch.testing.assert_close(grad_w, fd, rtol=1e-6, atol=1e-8)


def test_gradient_penalty_uses_per_packed_group_norm():
    from ganforge.models import MLPDiscriminator

    torch.manual_seed(0)
    d = MLPDiscriminator([2], hidden=8, layers=1, pack=2)
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    gp = gradient_penalty(d, real, fake, generator=torch.Generator().manual_seed(1))
    alpha = torch.rand(8, 1, generator=torch.Generator().manual_seed(1))
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(d(x_hat).sum(), x_hat)
    expected = (g.reshape(4, 4).norm(dim=1) - 1).pow(2).mean()
    assert gp.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("center", [1.0, 0.0, 2.5])
def test_gradient_penalty_centre_on_a_linear_d(center):
    """For a linear D(x) = w . x, grad D = w at every interpolate: the penalty is (||w|| - c)^2 whatever the draw,
    ||w||^2 for the zero-centred 0-GP, and its gradient in w is 2 (||w|| - c) w / ||w||."""
    w = torch.tensor([3.0, -4.0], requires_grad=True)  # ||w|| = 5
    pen = gradient_penalty(lambda x: x @ w, torch.randn(16, 2), torch.randn(16, 2), generator=torch.Generator().manual_seed(0), center=center)
    assert pen.item() == pytest.approx((5.0 - center) ** 2)
    (dw,) = torch.autograd.grad(pen, w)
    torch.testing.assert_close(dw, 2 * (5.0 - center) * w.detach() / 5.0)


def test_gradient_penalty_on_any_loss_but_wgan():
    """loss.gp_weight works on every loss with a gradient to shape (0-GP with gp_center=0); wgan clips instead, and
    one penalty at a time: each refusal is one line naming the fix."""
    ns0 = make_loss("nonsaturating", gp_weight=10.0, gp_center=0.0)
    assert (ns0.penalty, ns0.gp_weight, ns0.gp_center, ns0.sigmoid) == ("gp", 10.0, 0.0, True)
    assert make_loss("hinge", gp_weight=1.0).penalty == "gp" and make_loss("nonsaturating").penalty is None
    assert make_loss("wgan_gp").gp_weight == 10.0 and make_loss("wgan_gp", gp_weight=0.5).gp_weight == 0.5
    with pytest.raises(ConfigError, match="loss=wgan clips D's weights.*use loss=wgan_gp"):
        make_loss("wgan", gp_weight=1.0)
    with pytest.raises(ConfigError, match="loss.gp_weight penalizes D's gradient.*set loss.r1_weight=0 or loss.gp_weight=0"):
        make_loss("nonsaturating", gp_weight=1.0, r1_weight=1.0)
    for key, bad in (("gp_weight", -1.0), ("gp_center", -0.5), ("gp_center", float("nan")), ("gp_weight", True)):
        with pytest.raises(ConfigError, match=rf"loss.{key}={bad}: the gradient penalty's .* must be >= 0"):
            make_loss("nonsaturating", **{key: bad})


def test_r1_penalty_is_the_squared_slope_of_d_at_the_data_per_packed_group():
    """For a linear D(x) = w . x (x of pack=2 samples side by side), grad_x D = w for every group: the penalty is
    ||w||^2, and it stays differentiable in w (D's update sees d/dw = 2w)."""
    w = torch.tensor([1.0, -2.0, 0.5, 3.0], requires_grad=True)
    real = torch.randn(6, 2, requires_grad=True)  # 3 groups of 2 two-d samples
    logits = real.reshape(3, 4) @ w
    pen = r1_penalty(real, logits)
    assert pen.item() == pytest.approx(w.detach().pow(2).sum().item())
    (dw,) = torch.autograd.grad(pen, w)
    torch.testing.assert_close(dw, 2 * w.detach())


def test_r1_weight_is_checked_and_combines_with_any_loss_but_the_one_with_its_own_penalty():
    assert make_loss("hinge", r1_weight=5.0).penalty == "r1" and make_loss("hinge").penalty is None
    assert make_loss("wgan_gp").penalty == "gp" and make_loss("nonsaturating", r1_weight=1.0).sigmoid
    with pytest.raises(ConfigError, match=r"loss.r1_weight=-1.0: .* must be >= 0"):
        make_loss("nonsaturating", r1_weight=-1.0)
    with pytest.raises(ConfigError, match="loss=wgan_gp already penalizes D's gradient"):
        make_loss("wgan_gp", r1_weight=1.0)
    assert make_loss("nonsaturating", r1_weight=1.0, r1_every=16).r1_every == 16
    # how far apart the penalty is taken: lazy R1's k; the WGAN-GP penalty, and R1 when not lazy, every update
    assert make_loss("nonsaturating", r1_weight=1.0, r1_every=16).penalty_every == 16
    assert dataclasses.replace(make_loss("wgan_gp"), r1_every=16).penalty_every == 1
    assert make_loss("hinge", r1_weight=1.0).penalty_every == 1
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ConfigError, match=rf"loss.r1_every={bad}: .*an integer k >= 1"):
            make_loss("nonsaturating", r1_weight=1.0, r1_every=bad)
