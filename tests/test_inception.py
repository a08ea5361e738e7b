"""Inception-based metrics (FID, KID, IS) along the path users take online, checked against torch-fidelity.

Offline there are no pretrained Inception weights, so these tests write a randomly initialised InceptionV3 of
torch-fidelity's TF-FID architecture to a file and hand that file to both ganforge (``metrics.inception_weights``)
and torch-fidelity (``feature_extractor_weights_path``): the same network on the same images, so the metrics must
agree. What random weights cannot show, that the pretrained network's numbers match published ones, rests on
torch-fidelity's own tests of that network, which ganforge loads unchanged.
"""

from __future__ import annotations

import json

from types import SimpleNamespace
from unittest import mock

import pytest
import torch
from torch import nn

from ganforge.metrics.evaluator import Collective, GANEvaluator
from ganforge.metrics.fid import ImageTensorDataset as Images, InceptionFeatures, extract, inception_score


def test_inception_score_matches_torch_fidelity_and_closed_forms():
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = 3 * torch.randn(1000, 1008, generator=torch.Generator().manual_seed(0))
    mean, std = inception_score(logits, splits=10)
    ref = isc_features_to_metric(logits, splits=10, shuffle=False)
    assert mean == pytest.approx(ref["inception_score_mean"], rel=1e-10)
    assert std == pytest.approx(ref["inception_score_std"], rel=1e-8)
    # confident predictions spread evenly over k classes: IS = k; one class for every sample: IS = 1
    onehot = 50.0 * torch.eye(10).repeat(20, 1)
    assert inception_score(onehot, splits=2)[0] == pytest.approx(10.0, rel=1e-6)
    assert inception_score(50.0 * torch.eye(10)[[3] * 200], splits=2)[0] == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ValueError, match="splits"):
        inception_score(logits[:5], splits=10)


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory):
    """A random InceptionV3 in torch-fidelity's layout: He-initialised convolutions (activations neither vanish nor
    explode), and a classifier that ignores the features' common direction, so that its predictions differ from
    image to image (random pool3 features of noise images differ by ~2% of their norm): IS well above 1."""
    from torch_fidelity import feature_extractor_inceptionv3 as tfi

    torch.manual_seed(0)
    with mock.patch.object(tfi.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None), mock.patch.object(
        tfi, "load_state_dict_from_url", lambda *a, **k: {}
    ):
        net = tfi.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    with torch.no_grad():
        u = net(torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8))[0].mean(0)
        u /= u.norm()
        net.fc.weight.copy_(6 * torch.randn(1008, 2048) @ (torch.eye(2048) - torch.outer(u, u)))
    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    torch.save(net.state_dict(), path)
    return path


def _u8(x: torch.Tensor) -> torch.Tensor:
    """The reference quantization, written out here on purpose (not ganforge's ``to_uint8``): torch-fidelity gets
    images quantized independently of the code under test."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


@pytest.mark.slow
def test_inception_metrics_from_a_weights_file_match_torch_fidelity(inception_weights):
    import torch_fidelity

    class NoiseImages(nn.Module):  # a "generator" of images that differ: tanh of a wide random linear map
        latent_dim = 16

        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(16, 3 * 32 * 32)
            nn.init.normal_(self.fc.weight, std=0.5)

        def forward(self, z):
            return torch.tanh(self.fc(z)).view(-1, 3, 32, 32)

    n = 40
    real = _u8(torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1)
    torch.manual_seed(0)
    gen = NoiseImages().eval()
    dm = SimpleNamespace(name="stub", train_data=(real,))
    ev = GANEvaluator(metrics=["fid", "kid", "is"], extractors=["inception"], n_samples=n, strict=True,
                      inception_weights=str(inception_weights), kid_subset_size=n)  # fmt: skip
    out = ev.evaluate(gen, dm, "cpu")
    assert set(out) == {"fid", "kid", "is"}  # the standard names: only this network gives them
    fake = _u8(ev.generate(gen, n, torch.device("cpu"), Collective()))

    # the same features as torch-fidelity's network on the same uint8 images
    net = InceptionFeatures(weights=inception_weights)
    feats, logits = extract(net, fake, logits=True)
    assert feats.shape == (n, 2048) and logits.shape == (n, 1008) and feats.std() > 1e-3

    ref = torch_fidelity.calculate_metrics(
        input1=Images(fake), input2=Images(real), fid=True, kid=True, isc=True, cuda=False, cache=False, verbose=False,
        feature_extractor_weights_path=str(inception_weights), kid_subset_size=n, samples_shuffle=False, save_cpu_ram=True,
    )  # fmt: skip
    assert out["fid"] == pytest.approx(ref["frechet_inception_distance"], rel=1e-4)
    # KID over subsets of all n samples: every subset is the whole set, so the subset draws cannot differ
    assert out["kid"] == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-4)
    assert out["is"] == pytest.approx(ref["inception_score_mean"], rel=1e-6)
    assert out["is"] > 2  # the random network tells these images apart


def test_is_needs_the_inception_network_and_is_skipped_when_it_is_unavailable(tmp_path, caplog):
    dm = SimpleNamespace(name="stub", train_data=(torch.zeros(8, 1, 8, 8, dtype=torch.uint8),))

    class Img(nn.Module):
        latent_dim = 4

        def forward(self, z):
            return torch.tanh(z[:, :1, None, None].expand(-1, 1, 8, 8))

    missing = str(tmp_path / "missing.pth")
    # with another network only, IS does not apply (a LeNet "IS" is not the Inception Score): nothing is loaded
    lenet_only = GANEvaluator(metrics=["is"], extractors=["lenet"], n_samples=8, inception_weights=missing)
    assert lenet_only.evaluate(Img(), dm, "cpu") == {} and lenet_only.unavailable == []
    ev = GANEvaluator(metrics=["is", "fid"], extractors=["inception", "lenet"], n_samples=8, inception_weights=missing)
    with caplog.at_level("WARNING", logger="ganforge"):
        assert set(ev.evaluate(Img(), dm, "cpu")) == {"fid_lenet"}
    assert ev.unavailable == ["inception"] and "missing.pth" in caplog.text
    strict = GANEvaluator(metrics=["is"], extractors=["inception"], n_samples=8, strict=True, inception_weights=missing)
    with pytest.raises(Exception, match="missing.pth"):
        strict.evaluate(Img(), dm, "cpu")


def test_fid_speed_benchmark_smoke():
    """The FID speed benchmark runs and both tools report the same FID from the same LeNet features (digits
    when the shared MNIST split is absent, as in a fresh clone)."""
    from conftest import MNIST_RAW, run_benchmark

    out = json.loads(run_benchmark("fid_speed.py", "--n", "300", "--rounds", "1", "--mnist-raw", str(MNIST_RAW)).splitlines()[-1])
    assert out["n"] == 300 and out["ganforge_s"] > 0 and out["torch_fidelity_s"] > 0 and out["torch_fidelity_b500_s"] > 0
    assert out["fid_ganforge"] > 1 and out["fid_rel_diff"] < 1e-4
