"""FID speed: ganforge vs torch-fidelity, the same feature network on the same images, side by side in one run.

Both compute the FID between a "generated" set and a real set of ``--n`` images each, from scratch (no cached
statistics), on the same device, with the same extractor: ganforge's LeNet (``--extractor lenet``, the default:
it runs in seconds on a CPU) or the TF-FID InceptionV3 (``--extractor inception``, from a weights file: the
real network's cost, for a GPU or a small ``--n`` on a CPU). torch-fidelity gets the extractor through its own
registry (``register_feature_extractor``) and runs with its defaults (batch 64, a DataLoader with
min(4, 2 x cores) workers), as a user calling ``torch_fidelity.calculate_metrics`` would; ganforge with its own
(``extract``: batches of 500 from the in-memory tensor, float64 running sums, an eigh-based Fréchet distance).

The images: the real set is the MNIST test split (``--mnist-raw``; scikit-learn's digits, tiled, when it is
absent), the "generated" set the same images with Gaussian noise (std 0.2 in [-1, 1]) and rolled by one
pixel, as uint8 3x32x32 (what torch-fidelity takes). torch-fidelity runs twice: with its defaults, and with
ganforge's batch size and no loader workers (``save_cpu_ram=True``), to show how much of the difference those
settings make. Rounds alternate the order; the median seconds of each, the ratios, and the FIDs (they must agree:
same features) are printed, the last line as JSON.

    python benchmarks/fid_speed.py --n 10000 --rounds 3
    python benchmarks/fid_speed.py --extractor inception --inception-weights PATH --n 10000 --device cuda
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F


def image_sets(n: int, mnist_raw: str | None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(real, fake) uint8 [n, 3, 32, 32] and where the real images came from."""
    if mnist_raw and Path(mnist_raw).is_dir():
        from ganforge.data.idx import read_mnist_split

        imgs, _ = read_mnist_split(mnist_raw, "test")
        src = f"MNIST test split ({mnist_raw})"
    else:
        from sklearn.datasets import load_digits

        imgs = torch.from_numpy(load_digits().images * (255 / 16)).round().to(torch.uint8)
        src = "scikit-learn digits (tiled)"
    x = imgs.float()[:, None].div(127.5).sub(1)
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    x = x.repeat((n + len(x) - 1) // len(x), 1, 1, 1)[:n]
    g = torch.Generator().manual_seed(seed)
    fake = (x + 0.2 * torch.randn(x.shape, generator=g)).roll(1, dims=-1)

    from ganforge.metrics.fid import to_uint8

    def rgb(t: torch.Tensor) -> torch.Tensor:
        return to_uint8(t).expand(-1, 3, -1, -1).contiguous()

    return rgb(x), rgb(fake), src


def make_extractor(name: str, weights: str | None):
    from ganforge.metrics.fid import get_extractor

    return get_extractor(name, **({"weights": weights} if name == "inception" else {}))


def ganforge_fid(net, real: torch.Tensor, fake: torch.Tensor, device: str) -> float:
    from ganforge.metrics.fid import FeatureStats, extract, reference_stats

    ref, _ = reference_stats(net, real, cache_dir=None, label="bench", device=device)
    return FeatureStats.of(extract(net, fake, device=device)).fid_to(ref)


def torch_fidelity_fid(name: str, real: torch.Tensor, fake: torch.Tensor, device: str, weights: str | None, **options) -> float:
    import torch_fidelity
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    from ganforge.metrics.fid import ImageTensorDataset as Images

    if name == "inception":
        kw = {"feature_extractor": "inception-v3-compat", "feature_extractor_weights_path": weights}
    else:
        tf_name = f"ganforge-{name}"
        if tf_name not in FEATURE_EXTRACTORS_REGISTRY:

            class Wrapped(FeatureExtractorBase):  # ganforge's network, as a torch-fidelity extractor
                def __init__(self, fe_name, features_list, **kwargs) -> None:
                    super().__init__(fe_name, features_list)
                    self.net = make_extractor(name, None)

                @staticmethod
                def get_provided_features_list():
                    return ("features",)

                @staticmethod
                def get_default_feature_layer_for_metric(metric):
                    return "features"

                @staticmethod
                def can_be_compiled():
                    return False

                def forward(self, x):
                    return (self.net(x.float().div(127.5).sub(1)),)

            torch_fidelity.register_feature_extractor(tf_name, Wrapped)
        kw = {"feature_extractor": tf_name}
    out = torch_fidelity.calculate_metrics(input1=Images(fake), input2=Images(real), fid=True, cuda=device.startswith("cuda"),
                                           cache=False, verbose=False, **kw, **options)  # fmt: skip
    return float(out["frechet_inception_distance"])


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10000, help="images per set")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--extractor", default="lenet", choices=["lenet", "inception"])
    p.add_argument("--inception-weights", default=None, help="torch-fidelity's pt_inception-2015-12-05 weights file")
    p.add_argument("--mnist-raw", default="../shared/data/MNIST/raw")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*worker processes in total.*")  # torch-fidelity's 4 workers on a 2-core box
    real, fake, src = image_sets(a.n, a.mnist_raw)
    net = make_extractor(a.extractor, a.inception_weights).to(a.device)
    tools = {
        "ganforge": lambda: ganforge_fid(net, real, fake, a.device),
        "torch_fidelity": lambda: torch_fidelity_fid(a.extractor, real, fake, a.device, a.inception_weights),
        # the same with ganforge's batch size and no loader workers: how much of the gap is just those two settings
        "torch_fidelity_b500": lambda: torch_fidelity_fid(a.extractor, real, fake, a.device, a.inception_weights, batch_size=500, save_cpu_ram=True),
    }  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in tools}
    fids: dict[str, float] = {}
    for r in range(a.rounds):
        for tool in list(tools) if r % 2 == 0 else list(tools)[::-1]:
            if a.device.startswith("cuda"):
                torch.cuda.synchronize()
            t = time.perf_counter()
            fids[tool] = tools[tool]()
            if a.device.startswith("cuda"):
                torch.cuda.synchronize()
            times[tool].append(time.perf_counter() - t)
            print(f"round {r} {tool:20s} {times[tool][-1]:7.2f} s  fid {fids[tool]:.6f}", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    res = {
        "extractor": a.extractor, "n": a.n, "device": a.device, "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "images": src, "rounds": a.rounds,
        "ganforge_s": round(med["ganforge"], 3), "torch_fidelity_s": round(med["torch_fidelity"], 3),
        "torch_fidelity_b500_s": round(med["torch_fidelity_b500"], 3),
        "speedup": round(med["torch_fidelity"] / med["ganforge"], 3),
        "speedup_vs_b500": round(med["torch_fidelity_b500"] / med["ganforge"], 3),
        "fid_ganforge": fids["ganforge"], "fid_torch_fidelity": fids["torch_fidelity"],
        "fid_rel_diff": abs(fids["ganforge"] - fids["torch_fidelity"]) / max(abs(fids["torch_fidelity"]), 1e-12),
    }  # fmt: skip
    print(f"FID of {a.n} vs {a.n} images, {a.extractor} features, {a.device}: ganforge {med['ganforge']:.2f} s, "
          f"torch-fidelity {med['torch_fidelity']:.2f} s with its defaults, {med['torch_fidelity_b500']:.2f} s with batch 500 and "
          f"no loader workers (medians of {a.rounds}): ganforge is {res['speedup']:.2f}x / {res['speedup_vs_b500']:.2f}x as fast; "
          f"FIDs {fids['ganforge']:.4f} vs {fids['torch_fidelity']:.4f}")  # fmt: skip
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
