"""``python -m ganforge.sample ckpt_path=PATH n=10000 out=samples.npz seed=0`` (also ``ganforge-sample``).

A stable contract for outside evaluation: writes an ``.npz`` holding one float32 array ``x`` of shape
[n, ...] in the dataset's data space (images NCHW in [-1, 1]; raw coordinates for 1D/2D toys).
The EMA generator is used when the run kept one (``ema=false`` forces the raw generator).
``jacobian_truncation=q`` skips the samples whose ||dG/dz|| is in the generator's top q (Tanielian et al. 2020;
:mod:`ganforge.rejection`); by default the run's own ``jacobian_truncation`` (0 = off, the training default).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ganforge.config import ConfigError, check_jacobian_truncation, parse_key_values
from ganforge.models.common import sample_latent

DEFAULTS: dict[str, Any] = {"ckpt_path": None, "n": 10000, "out": "samples.npz", "seed": 0, "batch_size": 1000, "ema": True, "device": "auto",
                            "jacobian_truncation": None}


def read_checkpoint(ckpt_path: str | Path) -> tuple[dict, dict]:
    """(checkpoint, its ganforge metadata) of a run's checkpoint; a one-line ConfigError if it is not one."""
    p = Path(ckpt_path)
    if not p.is_file():
        raise ConfigError(f"ckpt_path={ckpt_path} does not exist: point it at a run's checkpoints/last.ckpt")
    ckpt = torch.load(p, map_location="cpu", weights_only=True)
    meta = ckpt.get("ganforge")
    if meta is None:
        raise ConfigError(f"{ckpt_path} has no ganforge metadata: it was not written by ganforge's train.py")
    return ckpt, meta


def _weights(state: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def load_generator(ckpt_path: str | Path, ema: bool = True, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild the run's generator from a ganforge checkpoint (no Hydra config dir needed)."""
    ckpt, meta = read_checkpoint(ckpt_path)
    cfg, shape = meta["config"], meta["data_shape"]
    gen = instantiate(OmegaConf.create(cfg["model"]["generator"]), out_shape=shape)
    state = ckpt["state_dict"]
    prefix = "g_ema." if ema and any(k.startswith("g_ema.") for k in state) else "generator."
    gen.load_state_dict(_weights(state, prefix))
    return gen.to(device).eval(), {"config": cfg, "data_shape": shape, "weights": prefix.rstrip("."), "global_step": ckpt.get("global_step")}


def load_discriminator(ckpt_path: str | Path, device: str = "cpu") -> torch.nn.Module:
    """Rebuild the run's discriminator (with its packing) from a ganforge checkpoint, in eval mode."""
    ckpt, meta = read_checkpoint(ckpt_path)
    cfg = meta["config"]
    disc = instantiate(OmegaConf.create(cfg["model"]["discriminator"]), in_shape=meta["data_shape"], pack=cfg.get("pack", 1))
    disc.load_state_dict(_weights(ckpt["state_dict"], "discriminator."))
    return disc.to(device).eval()


def latents(gen: torch.nn.Module, n: int, seed: int = 0, batch_size: int = 1000, device: str = "cpu") -> torch.Tensor:
    """The noise [n, latent_dim] that ``sample(gen, n, seed, batch_size)`` feeds the generator, drawn in the same
    chunks (a chunk of 500 is not the first half of one of 1,000: draw whole chunks to share a stream)."""
    g = torch.Generator(device=device).manual_seed(int(seed))
    return torch.cat([sample_latent(gen, min(batch_size, n - start), generator=g, device=device) for start in range(0, n, batch_size)])


@torch.no_grad()
def sample(gen: torch.nn.Module, n: int, seed: int = 0, batch_size: int = 1000, device: str = "cpu", jacobian_truncation: float = 0.0,
           jacobian_limit: float | None = None) -> np.ndarray:  # fmt: skip
    """``n`` samples from the noise of ``seed``. With ``jacobian_truncation`` q > 0, the samples whose ||dG/dz||
    is in the generator's top q (:func:`ganforge.rejection.calibrate_jacobian_threshold`) are skipped: the
    first ``n`` kept of the same noise stream. ``jacobian_limit``: that threshold when already calibrated."""
    if not jacobian_truncation:
        z = latents(gen, n, seed, batch_size, device)
        return torch.cat([gen(chunk).float().cpu() for chunk in z.split(batch_size)]).numpy().astype(np.float32)
    from ganforge.rejection import calibrate_jacobian_threshold, jacobian_norms

    limit = calibrate_jacobian_threshold(gen, float(jacobian_truncation), device=device) if jacobian_limit is None else jacobian_limit
    g = torch.Generator(device=device).manual_seed(int(seed))
    chunks, have = [], 0
    while have < n:
        z = sample_latent(gen, batch_size, generator=g, device=device)
        z = z[jacobian_norms(gen, z) <= limit]
        chunks.append(gen(z).float().cpu())
        have += len(z)
    return torch.cat(chunks)[:n].numpy().astype(np.float32)


def parse_args(argv: list[str]) -> dict[str, Any]:
    args = parse_key_values(argv, DEFAULTS, raw_keys=("ckpt_path", "out"))
    if not args["ckpt_path"]:
        raise ConfigError("ckpt_path is required: python -m ganforge.sample ckpt_path=PATH/last.ckpt n=10000 out=samples.npz")
    if int(args["n"]) < 1:
        raise ConfigError(f"n must be >= 1, got {args['n']}")
    return args


def main(argv: list[str] | None = None) -> None:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        device = ("cuda" if torch.cuda.is_available() else "cpu") if args["device"] == "auto" else args["device"]
        gen, info = load_generator(args["ckpt_path"], ema=bool(args["ema"]), device=device)
        q = args["jacobian_truncation"]
        q = check_jacobian_truncation(info["config"].get("jacobian_truncation", 0.0) if q is None else q)
        x = sample(gen, int(args["n"]), int(args["seed"]), int(args["batch_size"]), device, jacobian_truncation=q)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    out = Path(args["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(tmp, x=x)
    tmp.replace(out)
    print(f"wrote {out}: x {list(x.shape)} float32 from {info['weights']} at iteration {info['global_step']}")


if __name__ == "__main__":
    main()
