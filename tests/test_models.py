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


def test_fourier_features_map_each_sample_before_packing_and_travel_with_the_weights():
    torch.manual_seed(0)
    d = MLPDiscriminator([2], hidden=8, layers=1, pack=3, fourier_features=5, fourier_scale=2.0)
    assert d.net[0].in_features == 2 * 5 * 3  # sin and cos of 5 frequencies, per sample, 3 samples a pack
    x = torch.randn(6, 2)
    phase = 2 * torch.pi * (x @ d.fourier.freqs)
    feats = torch.cat([phase.sin(), phase.cos()], 1)
    assert torch.allclose(d(x), d.net(feats.reshape(2, -1)).squeeze(1), atol=1e-6)
    assert "fourier.freqs" in d.state_dict() and not any(p is d.fourier.freqs for p in d.parameters())
    wide = MLPDiscriminator([2], hidden=8, layers=1, fourier_features=2000, fourier_scale=2.0)
    assert wide.fourier.freqs.std().item() == pytest.approx(2.0, rel=0.05)  # N(0, scale^2), cycles per unit
    torch.manual_seed(1)
    e = MLPDiscriminator([2], hidden=8, layers=1, pack=3, fourier_features=5, fourier_scale=2.0)
    assert not torch.equal(e.fourier.freqs, d.fourier.freqs)
    e.load_state_dict(d.state_dict())  # a checkpoint restores the frequencies, not only the weights
    assert torch.equal(e(x), d(x))
    assert MLPDiscriminator([2], hidden=8, layers=1).fourier is None  # 0 = off: raw coordinates


@pytest.mark.parametrize(
    "kwargs,match",
    [({"fourier_features": -1}, r"fourier_features=-1: .*integer >= 1"), ({"fourier_features": 2.5}, "fourier_features=2.5"),
     ({"fourier_features": 4, "fourier_scale": 0.0}, r"fourier_scale=0.0: .*> 0")],
)
def test_fourier_features_reject_bad_settings_in_one_line(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLPDiscriminator([2], **kwargs)


def test_fourier_features_let_d_tell_the_grid_from_a_blurred_g_where_raw_coordinates_do_not(capsys):
    """benchmarks/d_spectral_bias.py in small: 300 steps of D alone against the frozen blur of the recipe's grid runs."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "d_spectral_bias.py"
    spec = importlib.util.spec_from_file_location("d_spectral_bias", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    raw, _ = bench.train_d("raw", seed=0, steps=300, every=300, scale=1.0, gp=0.03)
    ff, _ = bench.train_d("ff16", seed=0, steps=300, every=300, scale=1.0, gp=0.03)
    assert abs(raw[0]) < 0.02 and abs(ff[0]) < 0.02  # untrained: no information
    assert raw[-1] < 0.05 and ff[-1] > 0.3, (raw, ff)
