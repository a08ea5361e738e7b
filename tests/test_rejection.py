"""Rejection sampling with the discriminator's density ratio: exact when D is optimal, packed or not."""

import math

import pytest
import torch
from torch import nn

from ganforge.rejection import density_ratio_logits, rejection_sample


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
