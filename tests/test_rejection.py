"""Rejection sampling with the discriminator's density ratio (exact when D is optimal, packed or not), and
truncation by the generator's Jacobian norm (exact norms; it drops the samples between disconnected modes)."""

import math

import pytest
import torch
from torch import nn

from ganforge.models.mlp import MLPGenerator
from ganforge.cli.sample import latents, sample
from ganforge.rejection import calibrate_jacobian_threshold, density_ratio_logits, jacobian_norms, jacobian_threshold, rejection_sample


def log_normal(x, mu, sd):
    return -0.5 * ((x - mu) / sd) ** 2 - math.log(sd * math.sqrt(2 * math.pi))


class OptimalD(nn.Module):
    """The optimal discriminator's logit, log p_data/p_G, for p_data = N(0, 1) and p_G = N(1, 1.5^2)."""

    pack = 1

    def forward(self, x):
        return (log_normal(x, 0.0, 1.0) - log_normal(x, 1.0, 1.5)).reshape(-1)


def test_the_optimal_ratio_turns_generated_samples_into_data_samples():
    g = torch.Generator().manual_seed(0)
    x = 1.0 + 1.5 * torch.randn(400_000, 1, generator=g)
    kept = rejection_sample(x, density_ratio_logits(OptimalD(), x), generator=g)
    assert abs(x.mean() - 1.0) < 0.01 and abs(x.std() - 1.5) < 0.01  # the candidates are far from p_data ...
    assert abs(kept.mean()) < 0.01 and abs(kept.std() - 1.0) < 0.01  # ... the kept samples are p_data
    # exact rejection keeps 1 / sup(p/q) of the candidates: sup p/q = 1.5 e^0.4 (at x = -0.8), so 44.7%
    assert len(kept) / len(x) == pytest.approx(1 / (1.5 * math.exp(0.4)), rel=0.02)


class SumOfPerSampleLogits(nn.Module):
    """A packed D at its optimum: the group's logit is the sum of each member's log ratio f(x)."""

    pack = 3

    @staticmethod
    def f(x):
        return torch.sin(3 * x[:, 0]) + 0.5 * x[:, 1] ** 2

    def forward(self, x):
        return self.f(x).reshape(-1, self.pack).sum(1)


def test_a_packed_discriminator_scores_each_candidate_beside_fixed_companions():
    g = torch.Generator().manual_seed(1)
    x, companions = torch.randn(1000, 2, generator=g), torch.randn(2, 2, generator=g)
    disc = SumOfPerSampleLogits()
    logits = density_ratio_logits(disc, x, companions, batch_size=300)  # chunks must not mix groups
    offset = logits - disc.f(x)
    assert torch.allclose(offset, disc.f(companions).sum().expand(1000), atol=1e-5)
    with pytest.raises(ValueError, match="packed by 3 needs 2 real companions"):
        density_ratio_logits(disc, x)
    with pytest.raises(ValueError, match="one logit per sample"):
        rejection_sample(x, logits[:10])


def test_jacobian_norms_are_exact():
    torch.manual_seed(0)
    gen = MLPGenerator(latent_dim=3, out_shape=[2, 2], hidden=16, layers=2).eval()
    z = torch.randn(50, 3)
    want = torch.stack([torch.autograd.functional.jacobian(lambda v: gen(v[None])[0], zi).flatten(0, -2).norm() for zi in z])
    assert torch.allclose(jacobian_norms(gen, z, batch_size=16), want, atol=1e-5)
    lin = nn.Linear(3, 4)  # an affine G: the same norm, ||A||_F, everywhere
    assert torch.allclose(jacobian_norms(lin, z), lin.weight.norm().expand(50), atol=1e-5)
    # an output smaller than the latent (the 2D toys with an 8-d z) takes the backward-mode path
    wide = MLPGenerator(latent_dim=8, out_shape=[2], hidden=16, layers=2, batchnorm=True).eval()
    z8 = torch.randn(40, 8)
    want = torch.stack([torch.autograd.functional.jacobian(lambda v: wide(v[None])[0], zi).norm() for zi in z8])
    assert torch.allclose(jacobian_norms(wide, z8, batch_size=16), want, atol=1e-5)


class TwoModes(nn.Module):
    """A continuous G from a 1-d latent onto two modes at -2 and +2 (std ~0.05): a steep step between them,
    so the few samples it puts in between come from where it stretches z the most."""

    def forward(self, z):
        return 2 * torch.tanh(20 * z) + 0.05 * z


def test_jacobian_truncation_drops_the_samples_between_modes():
    z = torch.randn(100_000, 1, generator=torch.Generator().manual_seed(0))
    gen = TwoModes()
    x = gen(z).detach().squeeze(1)
    between = (x.abs() < 1.8).float().mean()
    norms = jacobian_norms(gen, z)
    keep = norms <= jacobian_threshold(norms, 0.1)
    assert keep.float().mean() == pytest.approx(0.9, abs=1e-3)
    assert between > 0.05  # ~ 6% of the samples sit between the modes ...
    assert (x[keep].abs() < 1.8).float().mean() < 0.002  # ... and dropping the top 10% of ||dG/dz|| clears them
    # the two modes keep their balance: what is dropped is the bridge, symmetrically
    assert (x[keep] > 0).float().mean() == pytest.approx(0.5, abs=0.01)
    assert (norms <= jacobian_threshold(norms, 0.0)).all()
    with pytest.raises(ValueError, match="reject_frac"):
        jacobian_threshold(norms, 1.0)


def test_truncated_sampling_keeps_the_first_n_of_the_noise_stream_under_the_calibrated_threshold():
    torch.manual_seed(0)
    gen = MLPGenerator(latent_dim=2, out_shape=[2], hidden=16, layers=2).eval()
    x = torch.from_numpy(sample(gen, 1500, seed=5, jacobian_truncation=0.1))
    z = latents(gen, 3000, seed=5)
    keep = jacobian_norms(gen, z) <= calibrate_jacobian_threshold(gen, 0.1)
    assert 0.85 < keep.float().mean() < 0.95  # the threshold, set on other noise, drops ~10% of this draw too
    assert x.shape == (1500, 2) and torch.allclose(x, gen(z[keep])[:1500].detach())
    assert (sample(gen, 100, seed=5, jacobian_truncation=0.0) == sample(gen, 100, seed=5)).all()
