"""``python -m ganforge.evaluate ckpt_path=PATH metrics=[fid,kid,jsd,modes] n=10000`` (also ``ganforge-evaluate``).

Rebuilds the run's dataset and generator (the EMA copy when the run kept one) from the checkpoint, computes the
metrics that apply to the data, prints a table and writes ``<checkpoint>.eval.json`` next to the checkpoint.
``jsd`` means both JSD estimates: ``jsd_probe`` (a fresh classifier; any loss) and, for sigmoid losses,
``jsd_d`` (the run's own discriminator on held-out real data and fresh samples). Both in nats, lower bounds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ganforge.config import ConfigError, parse_key_values
from ganforge.metrics.evaluator import GANEvaluator
from ganforge.metrics.fid import MetricUnavailable
from ganforge.metrics.jsd import LOG2, jsd_from_terms
from ganforge.models.common import sample_latent

DEFAULTS: dict[str, Any] = {
    "ckpt_path": None, "metrics": ["fid", "kid", "jsd", "modes"], "n": 10000, "seed": 0, "device": "auto", "ema": True,
    "extractors": None, "inception_weights": None, "strict": False, "cache_dir": None, "out": None,
}  # fmt: skip
NAMES = ("fid", "kid", "is", "jsd", "jsd_probe", "jsd_d", "modes")


def parse_args(argv: list[str]) -> dict[str, Any]:
    args = parse_key_values(argv, DEFAULTS, raw_keys=("ckpt_path", "out", "cache_dir", "inception_weights"))
    if not args["ckpt_path"]:
        raise ConfigError("ckpt_path is required: python -m ganforge.evaluate ckpt_path=RUN/checkpoints/last.ckpt metrics=[fid,jsd] n=10000")
    metrics = args["metrics"] if isinstance(args["metrics"], list) else [args["metrics"]]
    bad = [m for m in metrics if m not in NAMES]
    if bad:
        raise ConfigError(f"unknown metrics {bad}: choose from {', '.join(NAMES)}")
    args["metrics"] = metrics
    if int(args["n"]) < 2:
        raise ConfigError(f"n must be >= 2, got {args['n']}")
    return args


def evaluate_checkpoint(args: dict[str, Any]) -> dict[str, Any]:
    from ganforge.cli.sample import load_generator
    from ganforge.cli.train import build_datamodule

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args["device"] == "auto" else args["device"])
    gen, info = load_generator(args["ckpt_path"], ema=bool(args["ema"]), device=str(device))
    cfg = info["config"]
    dm = build_datamodule(OmegaConf.create(cfg["dataset"]), seed=cfg.get("seed", 0))
    dm.setup()
    wanted = set(args["metrics"])
    if "jsd" in wanted:
        wanted |= {"jsd_probe", "jsd_d"}
    run_metrics = cfg.get("metrics") or {}
    extractors = args["extractors"] or cfg["dataset"].get("feature_extractors") or run_metrics.get("extractors") or ["inception"]
    is_image = dm.kind == "image"
    skipped: dict[str, str] = {}
    extractors = list(extractors if isinstance(extractors, list) else [extractors])
    checks = (("fid", is_image, "images only"), ("kid", is_image, "images only"), ("modes", hasattr(dm, "modes") and not is_image, "mixture toys only"),
              ("is", is_image and "inception" in extractors, "Inception Score: images, with extractors=[inception]"))  # fmt: skip
    for m, ok, why in checks:
        if m in wanted and not ok:
            skipped[m] = why
    evaluator = GANEvaluator(
        metrics=[m for m in ("fid", "kid", "is", "jsd_probe", "modes") if m in wanted and m not in skipped],
        extractors=extractors, n_samples=int(args["n"]),
        seed=int(args["seed"]), strict=bool(args["strict"]), cache_dir=args["cache_dir"] or (cfg.get("paths") or {}).get("cache_dir"),
        inception_weights=args["inception_weights"] or run_metrics.get("inception_weights"), probe_steps=4000,
    )  # fmt: skip
    results = evaluator.evaluate(gen, dm, device)
    for name in evaluator.unavailable:
        skipped[f"{'fid/kid/is' if name == 'inception' else 'fid/kid'} ({name})"] = "feature network unavailable (see the warning above)"
    if "jsd_d" in wanted:
        value = _jsd_of_run_discriminator(args["ckpt_path"], cfg, info["data_shape"], gen, dm, int(args["n"]), int(args["seed"]), device)
        if value is None:
            skipped["jsd_d"] = f"loss={cfg['loss'].get('name')} has no probability-valued D: use jsd_probe"
        else:
            results["jsd_d"] = value
    return {
        "checkpoint": str(args["ckpt_path"]), "iteration": info["global_step"], "generator": info["weights"],
        "n": evaluator.n_samples, "metrics": results, "skipped": skipped, "units": {"jsd_probe": "nats", "jsd_d": "nats"},
    }  # fmt: skip


@torch.no_grad()
def _jsd_of_run_discriminator(ckpt_path, cfg, shape, gen, dm, n, seed, device) -> float | None:
    from ganforge.losses import make_loss

    if not make_loss(**cfg["loss"]).sigmoid:
        return None
    pack = int(cfg.get("pack", 1))
    d = instantiate(OmegaConf.create(cfg["model"]["discriminator"]), in_shape=shape, pack=pack)
    state = torch.load(ckpt_path, map_location="cpu", weights_only=True)["state_dict"]
    d.load_state_dict({k[len("discriminator.") :]: v for k, v in state.items() if k.startswith("discriminator.")})
    d.to(device).eval()
    real = dm.to_model_space(dm.val_data[0])
    m = (min(len(real), n) // pack) * pack
    g = torch.Generator(device=device).manual_seed(seed + 1)
    fake = gen(sample_latent(gen, m, device=device, generator=g))
    rt = torch.cat([F.logsigmoid(d(c.to(device))) for c in real[:m].split(500 * pack)])
    ft = torch.cat([F.logsigmoid(-d(c)) for c in fake.split(500 * pack)])
    return jsd_from_terms(rt.double(), ft.double())


def format_table(report: dict[str, Any]) -> str:
    lines = [f"{report['checkpoint']} (iteration {report['iteration']}, {report['generator']}, n={report['n']})", f"{'metric':<12} value"]
    for k, v in report["metrics"].items():
        extra = f"  ({v / LOG2:.3f} of log 2, nats)" if k.startswith("jsd") else ""
        lines.append(f"{k:<12} {v:.6g}{extra}")
    for k, why in report["skipped"].items():
        lines.append(f"{k:<12} skipped: {why}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        report = evaluate_checkpoint(args)
    except (ConfigError, MetricUnavailable, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    out = Path(args["out"]) if args["out"] else Path(args["ckpt_path"]).with_suffix(".eval.json")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(out)
    print(format_table(report))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
