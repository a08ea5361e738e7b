"""Metrics: FID/KID against independent references, their behaviour on real data, the JSD estimates against
ground truth computed by numerical integration, mode coverage, and the one-line errors."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.distributions import Normal

from conftest import MNIST_RAW
from ganforge.data.idx import read_mnist_split
from ganforge.data.images import DigitsDataModule
from ganforge.data.toy import Gaussian1DDataModule, Grid25DataModule, Ring8DataModule
from ganforge.metrics.evaluator import GANEvaluator
from ganforge.metrics.fid import (
    FeatureStats,
    InceptionFeatures,
    MetricUnavailable,
    extract,
    frechet_distance,
    get_extractor,
    kernel_distance,
    reference_stats,
)
from ganforge.metrics.jsd import LOG2, LOG4, jsd_from_terms, jsd_numeric, optimal_d_terms, probe_jsd
from ganforge.metrics.modes import gaussian_rms_within, interior_modes, mode_coverage, nearest_modes


# ----------------------------------------------------------------------------- FID / KID
def _correlated(n, d, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ a + shift


def test_frechet_distance_equals_scipy_sqrtm_and_torch_fidelity():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    for d, shift in ((16, 0.3), (84, 0.0), (84, 1.0)):
        x, y = _correlated(3000, d, 0), _correlated(2500, d, 1, shift)
        sx, sy = FeatureStats.of(x), FeatureStats.of(y)
        ours = sx.fid_to(sy)
        mu1, mu2 = x.mean(0).numpy(), y.mean(0).numpy()
        c1, c2 = np.cov(x.numpy(), rowvar=False), np.cov(y.numpy(), rowvar=False)
        covmean = scipy_linalg.sqrtm(c1 @ c2).real
        ref = float(((mu1 - mu2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * np.trace(covmean))
        tf = fid_statistics_to_metric({"mu": mu1, "sigma": c1}, {"mu": mu2, "sigma": c2}, verbose=False)
        assert ours == pytest.approx(ref, rel=1e-4)
        assert ours == pytest.approx(tf["frechet_inception_distance"], rel=1e-4)
    assert frechet_distance(sx.mean, sx.cov, sx.mean, sx.cov) == pytest.approx(0.0, abs=1e-6)


def test_feature_stats_of_shares_add_up_to_the_whole_set():
    x = _correlated(1000, 12, 3)
    whole, a, b = FeatureStats.of(x), FeatureStats.of(x[0::2]), FeatureStats.of(x[1::2])
    merged = FeatureStats(a.n + b.n, a.total + b.total, a.outer + b.outer)
    assert torch.allclose(merged.mean, whole.mean) and torch.allclose(merged.cov, whole.cov)
    assert torch.allclose(whole.cov, torch.from_numpy(np.cov(x.numpy(), rowvar=False)))


def test_kid_equals_torch_fidelity_on_the_full_sets():
    from torch_fidelity.metric_kid import kid_features_to_metric

    x, y = _correlated(300, 20, 4).float(), _correlated(300, 20, 5, 0.5).float()
    ours, _ = kernel_distance(x, y, subsets=1, subset_size=300)
    ref = kid_features_to_metric(x, y, kid_subsets=1, kid_subset_size=300, verbose=False, rng_seed=0,
                                 kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1)  # fmt: skip
    assert ours == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-4)


@pytest.fixture(scope="module")
def mnist():
    if not MNIST_RAW.is_dir():
        pytest.skip(f"shared MNIST test split not at {MNIST_RAW}")
    x, y = read_mnist_split(MNIST_RAW, "test")
    return x[:, None].float().div(127.5).sub(1), y


def _fid_lenet(reference, images):
    net = get_extractor("lenet")
    return FeatureStats.of(extract(net, reference)).fid_to(FeatureStats.of(extract(net, images)))


def test_fid_lenet_real_vs_real_is_near_zero_and_grows_with_noise_blur_and_dropped_classes(mnist):
    import torchvision.transforms.functional as TF

    x, y = mnist
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    ref, other, y_other = x[perm[:5000]], x[perm[5000:]], y[perm[5000:]]
    base = _fid_lenet(ref, other)
    g = torch.Generator().manual_seed(1)
    noise = [_fid_lenet(ref, (other + s * torch.randn(other.shape, generator=g)).clamp(-1, 1)) for s in (0.1, 0.2, 0.4)]
    blur = [_fid_lenet(ref, TF.gaussian_blur(other, 7, s)) for s in (0.7, 1.0, 1.5)]
    dropped = [_fid_lenet(ref, other[y_other >= k]) for k in (2, 5, 8)]  # mode collapse: classes missing
    assert base < 2.0, base
    for series in (noise, blur, dropped):
        assert base < series[0] < series[1] < series[2], (base, series)
    assert dropped[-1] > 50 * base


def test_fid_lenet_on_digits_disjoint_halves_is_small_against_a_collapsed_set():
    (x, y), _ = DigitsDataModule(resolution=32).build()
    x = x.float().div(127.5).sub(1)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    a, b, yb = x[perm[: len(x) // 2]], x[perm[len(x) // 2 :]], y[perm[len(x) // 2 :]]
    real_real, collapsed = _fid_lenet(a, b), _fid_lenet(a, b[yb < 3])
    assert real_real < 6.0 and collapsed > 15 * real_real, (real_real, collapsed)


def test_reference_stats_are_cached_and_recomputed_when_the_data_changes(tmp_path, monkeypatch):
    import ganforge.metrics.fid as fid

    net = get_extractor("lenet")
    (x, _), _ = DigitsDataModule(resolution=32).build()
    calls = []
    real_extract = fid.extract
    monkeypatch.setattr(fid, "extract", lambda *a, **k: calls.append(1) or real_extract(*a, **k))
    s1, _ = reference_stats(net, x, tmp_path, "digits-train-32")
    s2, _ = reference_stats(net, x, tmp_path, "digits-train-32")
    assert len(calls) == 1 and torch.equal(s1.total, s2.total)
    assert len(list((tmp_path / "fid_stats").glob("digits-train-32-lenet-*.pt"))) == 1
    reference_stats(net, x[:-10], tmp_path, "digits-train-32")  # another split/subset: another file
    (x16, _), _ = DigitsDataModule(resolution=16).build()
    reference_stats(net, x16, tmp_path, "digits-train-32")  # another resolution under the same label
    assert len(calls) == 3 and len(list((tmp_path / "fid_stats").glob("*.pt"))) == 3


def test_inception_offline_is_a_clear_skip_or_a_strict_error(monkeypatch, tmp_path, caplog):
    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tfi, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv("GANFORGE_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(MetricUnavailable, match="inception_weights=PATH"):
        InceptionFeatures()
    with pytest.raises(MetricUnavailable, match="does not exist"):
        InceptionFeatures(weights=str(tmp_path / "nope.pth"))
    dm = DigitsDataModule(resolution=32)
    dm.setup()
    gen = _TinyImageG()
    ev = GANEvaluator(metrics=["fid"], extractors=["inception", "lenet"], n_samples=64)
    with caplog.at_level("WARNING", logger="ganforge"):
        out = ev.evaluate(gen, dm)
        out2 = ev.evaluate(gen, dm)
    assert set(out) == set(out2) == {"fid_lenet"}  # no "fid": never another network under Inception's name
    assert sum("skipping inception" in r.message for r in caplog.records) == 1  # said once
    with pytest.raises(MetricUnavailable):
        GANEvaluator(metrics=["fid"], extractors=["inception"], n_samples=64, strict=True).evaluate(gen, dm)


class _TinyImageG(torch.nn.Module):
    latent_dim = 4

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 32 * 32)

    def forward(self, z):
        return self.lin(z).tanh().view(-1, 1, 32, 32)


def test_evaluator_refuses_nan_samples_and_unknown_metrics():
    dm = DigitsDataModule(resolution=32)
    dm.setup()
    gen = _TinyImageG()
    torch.nn.init.constant_(gen.lin.bias, float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        GANEvaluator(metrics=["fid"], n_samples=16).evaluate(gen, dm)
    with pytest.raises(ValueError, match="unknown metrics"):
        GANEvaluator(metrics=["fid", "inception_score"])


# ----------------------------------------------------------------------------- JSD: theory checked numerically
def _gauss(m, s):
    dist = Normal(torch.tensor(float(m), dtype=torch.float64), torch.tensor(float(s), dtype=torch.float64))
    return (lambda x: dist.log_prob(x[:, 0].double())), (lambda n, g: m + s * torch.randn(n, 1, generator=g, dtype=torch.float64))


def _mixture(dm):
    return (lambda x: dm.log_prob(x.float()).double()), (lambda n, g: dm.sample(n, g)[0].double())


PAIRS_1D = [((0, 1), (0, 1)), ((0, 1), (0.3, 1)), ((0, 1), (1, 1)), ((0, 1), (0, 2)), ((0, 1), (2, 1)), ((0, 1), (3, 0.5)), ((0, 1), (8, 1))]


def _pairs():
    for a, b in PAIRS_1D:
        yield f"N{a}-N{b}", _gauss(*a), _gauss(*b), [-20.0], [20.0]
    mix = Gaussian1DDataModule(means=(-2.0, 2.0), stds=(0.5, 0.5))
    yield "mixture-vs-one-component", _mixture(mix), _gauss(2.0, 0.5), [-10.0], [10.0]
    ring = Ring8DataModule(std=0.15)
    half = Ring8DataModule(std=0.15, n_modes=4)  # 4 of the ring's 8 modes: a collapsed generator
    yield "ring8-vs-4-modes", _mixture(ring), _mixture(half), [-3.5, -3.5], [3.5, 3.5]


@pytest.mark.parametrize("name", [p[0] for p in _pairs()])
def test_optimal_discriminator_value_is_minus_log4_plus_twice_the_true_jsd(name):
    _, (lp, sp), (lq, sq), lo, hi = next(p for p in _pairs() if p[0] == name)
    n_grid = 200_001 if len(lo) == 1 else 1_201
    true = jsd_numeric(lp, lq, lo, hi, n=n_grid)
    assert -1e-9 <= true <= LOG2 + 1e-9
    g = torch.Generator().manual_seed(0)
    rt, ft = optimal_d_terms(lp, lq, sp(100_000, g), sq(100_000, g))
    v = float(rt.mean() + ft.mean())
    se = math.sqrt(float(rt.var()) / len(rt) + float(ft.var()) / len(ft))
    assert abs(v + LOG4 - 2 * true) < 4 * se + 1e-6, (v + LOG4, 2 * true, se)
    assert jsd_from_terms(rt, ft) == pytest.approx(0.5 * (v + LOG4))


@pytest.mark.parametrize("name", [p[0] for p in _pairs()])
def test_probe_estimate_from_20k_samples_is_within_0_02_nats_of_the_truth(name):
    _, (lp, sp), (lq, sq), lo, hi = next(p for p in _pairs() if p[0] == name)
    true = jsd_numeric(lp, lq, lo, hi, n=200_001 if len(lo) == 1 else 1_201)
    g = torch.Generator().manual_seed(1)
    est = probe_jsd(sp(20_000, g).float(), sq(20_000, g).float(), seed=0)
    assert abs(est.jsd - true) < 0.02, (est.jsd, true)
    assert est.ci95[0] <= est.jsd <= est.ci95[1]


def test_logistic_probe_is_a_looser_lower_bound_on_a_mixture():
    (lp, sp), (lq, sq) = _mixture(Gaussian1DDataModule(means=(-2.0, 2.0), stds=(0.5, 0.5))), _gauss(0.0, 2.0)
    true = jsd_numeric(lp, lq, [-12.0], [12.0])
    g = torch.Generator().manual_seed(2)
    r, f = sp(20_000, g).float(), sq(20_000, g).float()
    lin, mlp = probe_jsd(r, f, classifier="logistic").jsd, probe_jsd(r, f, classifier="mlp").jsd
    assert lin < mlp - 0.05 and abs(mlp - true) < 0.02, (lin, mlp, true)  # a linear D cannot see a bimodal p


def test_jsd_cli_prints_the_stable_json_contract(tmp_path):
    g = torch.Generator().manual_seed(0)
    np.save(tmp_path / "real.npy", torch.randn(4000, 2, generator=g).numpy())
    np.save(tmp_path / "fake.npy", (torch.randn(4000, 2, generator=g) + 1.0).numpy())
    proc = subprocess.run([sys.executable, "-m", "ganforge.metrics.jsd", str(tmp_path / "real.npy"), str(tmp_path / "fake.npy")],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {"jsd", "ci95", "jsd_over_log2", "classifier", "n_real", "n_fake", "units"} <= set(out)
    true = jsd_numeric(lambda x: Normal(0.0, 1.0).log_prob(x.double()).sum(1), lambda x: Normal(1.0, 1.0).log_prob(x.double()).sum(1),
                       [-8.0, -8.0], [9.0, 9.0], n=1_201)  # fmt: skip
    assert out["units"] == "nats" and out["classifier"] == "mlp" and out["n_real"] == 4000
    assert out["ci95"][0] <= out["jsd"] <= out["ci95"][1] and abs(out["jsd"] - true) < 0.03, (out, true)


@pytest.mark.parametrize(
    "real,fake,message",
    [((100, 2), (100, 3), "same space"), ((100, 2), (5, 2), "at least"), ((100, 2), "nan", "NaN")],
)
def test_jsd_cli_bad_input_is_one_line_and_exit_2(tmp_path, real, fake, message):
    np.save(tmp_path / "r.npy", np.zeros(real, np.float32))
    f = np.zeros((100, 2), np.float32) if fake == "nan" else np.zeros(fake, np.float32)
    if fake == "nan":
        f[3, 1] = np.nan
    np.save(tmp_path / "f.npy", f)
    proc = subprocess.run([sys.executable, "-m", "ganforge.metrics.jsd", str(tmp_path / "r.npy"), str(tmp_path / "f.npy")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# ----------------------------------------------------------------------------- mode coverage
def test_mode_coverage_counts_modes_quality_and_kl():
    ring = Ring8DataModule()
    x, comp = ring.sample(2500, torch.Generator().manual_seed(0))
    full = mode_coverage(x, ring.modes, ring.stds)
    assert full.modes == 8 and full.hq_frac > 0.98 and full.mode_kl < 0.01
    half = mode_coverage(x[comp < 4], ring.modes, ring.stds)  # collapsed onto 4 equal modes: KL = log 2
    assert half.modes == 4 and half.mode_kl == pytest.approx(math.log(2), abs=0.02)
    one = mode_coverage(x[comp == 0], ring.modes, ring.stds)
    assert one.modes == 1 and one.mode_kl == pytest.approx(math.log(8), abs=1e-9)
    blurry = mode_coverage(x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1)), ring.modes, ring.stds)
    assert blurry.hq_frac < 0.2  # 10 stds of noise: few samples within 3 stds of a mode
    nothing = mode_coverage(torch.zeros(10, 2), ring.modes, ring.stds)
    assert nothing.modes == 0 and nothing.hq_frac == 0 and nothing.mode_kl == pytest.approx(math.log(8))
    with pytest.raises(ValueError, match="NaN"):
        mode_coverage(torch.full((3, 2), float("nan")), ring.modes, ring.stds)


def test_mode_width_is_one_for_the_data_and_sees_modes_drawn_too_narrow():
    """HQ rewards a generator for drawing its modes narrower than the data's; mode_width shows it."""
    grid = Grid25DataModule()
    x, comp = grid.sample(50_000, torch.Generator().manual_seed(0))
    data = mode_coverage(x, grid.modes, grid.stds)
    assert data.mode_width == pytest.approx(1.0, abs=0.01)
    narrow = mode_coverage(grid.modes[comp] + 0.5 * (x - grid.modes[comp]), grid.modes, grid.stds)
    assert narrow.hq_frac > data.hq_frac and narrow.mode_width == pytest.approx(0.513, abs=0.01)  # 0.5 sqrt(2) / 1.378: half as wide, now with no tail cut
    assert math.isnan(mode_coverage(torch.zeros(4, 2) + 100, grid.modes, grid.stds).mode_width)  # no HQ sample: undefined
    # the analytic reference: the data's RMS distance within t stds, against a direct draw (1, 2 and 3 dims)
    for dim in (1, 2, 3):
        r = torch.randn(400_000, dim, generator=torch.Generator().manual_seed(dim), dtype=torch.float64).norm(dim=1)
        assert gaussian_rms_within(dim, 3.0) == pytest.approx(float(r[r < 3].square().mean().sqrt()), rel=3e-3)


def test_min_share_tells_a_mode_only_crossed_from_a_balanced_one():
    """The protocol counts a mode on one sample; min_share sees that it holds almost none of G's mass."""
    grid = Grid25DataModule()
    x, comp = grid.sample(25_000, torch.Generator().manual_seed(1))
    assert mode_coverage(x, grid.modes, grid.stds).min_share == pytest.approx(1.0, abs=0.1)  # the data: each mode ~1,000
    crossed = torch.cat([x[comp != 17], grid.modes[17:18] + 0.01])  # mode 17 lost but for one sample on it
    cov = mode_coverage(crossed, grid.modes, grid.stds)
    assert cov.modes == 25 and cov.min_share == pytest.approx(25 / len(crossed), rel=0.02)  # 1 of ~24,000, 98.9% of them HQ
    assert math.isnan(mode_coverage(torch.zeros(4, 2) + 100, grid.modes, grid.stds).min_share)  # no HQ sample: undefined


def test_interior_modes_are_the_grids_inner_nine_and_none_of_the_ring():
    grid, ring = Grid25DataModule().modes, Ring8DataModule().modes
    inner = interior_modes(grid)
    assert inner.sum() == 9 and (grid[inner].abs().max(1).values < grid.abs().max()).all()  # not on the square's edge
    assert not interior_modes(ring).any() and interior_modes(torch.cat([ring, torch.zeros(1, 2)])).tolist() == [False] * 8 + [True]
    assert interior_modes(torch.tensor([[-2.0], [0.0], [3.0], [1.0]])).tolist() == [False, True, False, True]  # a 1-d mixture


def test_nearest_modes_measures_in_each_modes_own_stds():
    modes = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    k, d = nearest_modes(torch.tensor([[1.0, 0.0], [7.0, 0.0]]), modes, torch.tensor([1.0, 2.0]))
    assert k.tolist() == [0, 1] and d.tolist() == pytest.approx([1.0, 1.5])


class _Affine1D(torch.nn.Module):
    latent_dim = 1

    def __init__(self, mu, s):
        super().__init__()
        self.lin = torch.nn.Linear(1, 1)
        torch.nn.init.constant_(self.lin.weight, s)
        torch.nn.init.constant_(self.lin.bias, mu)

    def forward(self, z):
        return self.lin(z)


@pytest.mark.parametrize("mu,s", [(0.0, 1.0), (1.0, 1.0), (2.0, 0.5), (-1.0, 2.0), (9.0, 1.0)])
def test_true_jsd_of_a_1d_generator_matches_numerical_integration(mu, s):
    from ganforge.metrics.jsd import generator_jsd_1d

    lp, _ = _gauss(0.0, 1.0)
    lq, _ = _gauss(mu, s)
    true = jsd_numeric(lp, lq, [-25.0], [25.0])
    got = generator_jsd_1d(_Affine1D(mu, s), lp, -12.0, 16.0, bins=8000)
    assert got == pytest.approx(true, abs=2e-3), (got, true)
    with pytest.raises(ValueError, match="latent_dim=1"):
        generator_jsd_1d(_TinyImageG(), lp, -1.0, 1.0)
