import pytest
import torch

from ganforge.models import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator, sample_latent


@pytest.mark.parametrize("res", [8, 16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes_and_range(res, channels):
    g = DCGANGenerator(latent_dim=16, out_shape=[channels, res, res], base_width=8)
    d = DCGANDiscriminator(in_shape=[channels, res, res], base_width=8)
    x = g(torch.randn(4, 16))
    assert x.shape == (4, channels, res, res)
    assert x.abs().max() <= 1.0
    assert d(x).shape == (4,)


def test_dcgan_widths_follow_the_paper_at_64():
    g = DCGANGenerator(latent_dim=100, out_shape=[3, 64, 64], base_width=64)
    convs = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [512, 256, 128, 64, 3]
    d = DCGANDiscriminator(in_shape=[3, 64, 64], base_width=64)
    assert [c.out_channels for c in d.modules() if isinstance(c, torch.nn.Conv2d)] == [64, 128, 256, 512, 1]


def test_dcgan_init_is_normal_0_002():
    g = DCGANGenerator(latent_dim=100, out_shape=[1, 64, 64], base_width=64)
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)])
    assert abs(w.mean().item()) < 1e-3 and w.std().item() == pytest.approx(0.02, rel=0.05)


@pytest.mark.parametrize(
    "shape,match",
    [([2], r"needs image data of shape \[C, H, W\].*model=mlp"), ([1, 48, 48], "power-of-two.*dataset.resolution"), ([1, 32, 16], "square")],
)
def test_dcgan_rejects_unsupported_shapes_with_a_fix(shape, match):
    with pytest.raises(ValueError, match=match):
        DCGANGenerator(latent_dim=8, out_shape=shape)
    with pytest.raises(ValueError, match=match):
        DCGANDiscriminator(in_shape=shape)


def test_packing_groups_consecutive_samples():
    d = MLPDiscriminator([2], hidden=8, layers=1, pack=4)
    assert d(torch.randn(12, 2)).shape == (3,)
    with pytest.raises(ValueError, match="not divisible by pack=4"):
        d(torch.randn(10, 2))
    dc = DCGANDiscriminator([1, 16, 16], base_width=8, pack=2)
    assert dc.net[0].in_channels == 2 and dc(torch.randn(6, 1, 16, 16)).shape == (3,)


def test_spectral_norm_bounds_the_layer_spectral_norm():
    torch.manual_seed(0)
    d = MLPDiscriminator([2], hidden=32, layers=2, spectral_norm=True)
    for _ in range(20):  # power iteration converges over forward passes in train mode
        d(torch.randn(64, 2))
    lin = d.net[0]
    sigma = torch.linalg.matrix_norm(lin.weight.detach(), ord=2).item()
    assert sigma == pytest.approx(1.0, rel=0.05)


def test_mlp_generator_output_shape():
    g = MLPGenerator(latent_dim=4, out_shape=[2], hidden=16, layers=2)
    assert g(torch.randn(5, 4)).shape == (5, 2)


@pytest.mark.parametrize("family", ["mlp", "dcgan"])
def test_sample_latent_draws_from_the_generators_prior(family):
    def make(dist):
        if family == "mlp":
            return MLPGenerator(3, [2], latent_dist=dist)
        return DCGANGenerator(3, [1, 8, 8], base_width=8, latent_dist=dist)

    u = sample_latent(make("uniform"), 30000, generator=torch.Generator().manual_seed(0))
    assert u.shape == (30000, 3) and u.min() >= -1 and u.max() < 1
    assert abs(float(u.mean())) < 0.01 and abs(float(u.var()) - 1 / 3) < 0.01  # U(-1, 1): variance 1/3
    n = sample_latent(make("normal"), 30000, generator=torch.Generator().manual_seed(0))
    assert abs(float(n.var()) - 1) < 0.03 and n.abs().max() > 3
    again = sample_latent(make("uniform"), 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, u[:5])  # a seeded generator gives the same z


def test_a_generator_without_latent_dist_gets_the_normal_prior_and_a_bad_prior_is_refused():
    class Bare(torch.nn.Module):
        latent_dim = 2

    z = sample_latent(Bare(), 20000, generator=torch.Generator().manual_seed(0))
    assert abs(float(z.var()) - 1) < 0.03
    with pytest.raises(ValueError, match="latent_dist must be one of normal, uniform, got 'cauchy'"):
        MLPGenerator(2, [2], latent_dist="cauchy")
