"""Where the Hydra configs live, and the one exception type for user errors."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A bad or incompatible setting; its message names the problem and the fix, in one line."""


def register_resolvers() -> None:
    """Interpolations the configs use: ``${mul:100,${pack}}`` (integer product, e.g. a batch of 100 packed groups)
    and ``${idiv:${val_every},${iters_per_batch}}`` (integer quotient: iterations to Lightning batches)."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("mul", lambda *xs: math.prod(int(x) for x in xs), replace=True)
    OmegaConf.register_new_resolver("idiv", lambda a, b: int(a) // int(b), replace=True)


def config_dir() -> Path:
    """``conf/`` at the repository root (editable install), or ``$GANFORGE_CONFIG_DIR``."""
    env = os.environ.get("GANFORGE_CONFIG_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "conf")
    for c in candidates:
        if (c / "train.yaml").is_file():
            return c
    raise ConfigError(
        f"ganforge's config directory was not found (looked in {', '.join(map(str, candidates))}): "
        "install from a checkout with `pip install -e .` or set GANFORGE_CONFIG_DIR to the repo's conf/"
    )


def parse_key_values(argv: list[str], defaults: dict[str, Any], raw_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """``key=value`` command-line arguments over ``defaults`` (values parsed as YAML, e.g. ``[fid,kid]``,
    except ``raw_keys``, kept as strings: paths); an unknown key is a one-line ConfigError."""
    from omegaconf import OmegaConf

    args = dict(defaults)
    for a in argv:
        key, eq, value = a.partition("=")
        if not eq or key not in defaults:
            raise ConfigError(f"unknown argument '{a}': use key=value with keys {', '.join(defaults)}")
        args[key] = value if key in raw_keys else OmegaConf.to_object(OmegaConf.create(f"v: {value}"))["v"]
    return args


def check_jacobian_truncation(q: Any) -> float:
    """A valid ``jacobian_truncation`` (the fraction of samples dropped, in [0, 1)), or a one-line ConfigError."""
    try:
        q = float(q)
    except (TypeError, ValueError):
        q = math.nan
    if not 0.0 <= q < 1.0:
        raise ConfigError(f"jacobian_truncation must be a fraction in [0, 1) (0 = off, 0.02 = drop the 2% most-stretched samples), got {q}")
    return q
