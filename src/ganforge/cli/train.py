"""``python train.py [overrides]`` / ``ganforge-train``: compose the config, build the objects, fit.

Data flows one way: config -> objects -> Trainer. Objects receive plain arguments; nothing below
reads the Hydra config except :func:`build`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import MissingMandatoryValue

from ganforge.callbacks import AtomicCheckpointIO, RunConfigInCheckpoint
from ganforge.config import ConfigError, check_jacobian_truncation, config_dir
from ganforge.losses import make_loss
from ganforge.models.common import count_parameters
from ganforge.module import GANModule, NonFiniteLossError
from ganforge.strategies import GANDDPStrategy, GANFSDPStrategy
from ganforge.sweeps import previous_job, write_status
from ganforge.tracking import hydra_job, run_meta, wandb_loggers, wandb_run_dir

log = logging.getLogger("ganforge")


@dataclass
class Run:
    datamodule: L.LightningDataModule
    module: GANModule
    trainer: L.Trainer
    ckpt_path: str | None


def build_models(cfg: DictConfig, data_shape: tuple[int, ...]) -> tuple[torch.nn.Module, torch.nn.Module]:
    """Generator and discriminator for data of ``data_shape``; model errors become ConfigErrors."""
    try:
        g = instantiate(cfg.model.generator, out_shape=list(data_shape))
        d = instantiate(cfg.model.discriminator, in_shape=list(data_shape), pack=cfg.pack)
    except ValueError as e:
        raise ConfigError(f"model={cfg.model.name} with dataset={cfg.dataset.name}: {e}") from None
    except Exception as e:  # Hydra wraps constructor errors in InstantiationException
        cause = e.__cause__ or e.__context__
        if isinstance(cause, ValueError):
            raise ConfigError(f"model={cfg.model.name} with dataset={cfg.dataset.name}: {cause}") from None
        raise
    return g, d


def build_datamodule(dataset_cfg: DictConfig | dict, **kwargs: Any) -> L.LightningDataModule:
    """The datamodule of a ``dataset`` config (keys other than the constructor's: ``name``, ``feature_extractors``)."""
    dm_cfg = {k: v for k, v in dict(dataset_cfg).items() if k not in ("name", "feature_extractors")}
    datamodule = instantiate(dm_cfg, **kwargs)
    datamodule.name = dataset_cfg.get("name", type(datamodule).__name__)
    return datamodule


def build(cfg: DictConfig) -> Run:
    """Everything a run needs, validated before any training starts."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if int(cfg.max_iters) < 1:
        raise ConfigError(f"max_iters must be >= 1, got {cfg.max_iters}")
    if int(cfg.val_every) < 0:
        raise ConfigError(f"val_every must be >= 0 (0 = no validation), got {cfg.val_every}")
    if int(cfg.val_every) == 0:  # Lightning has no "never" interval: validate once per epoch over zero batches
        with open_dict(cfg):
            cfg.trainer.val_check_interval, cfg.trainer.limit_val_batches = None, 0
    check_jacobian_truncation(cfg.get("jacobian_truncation", 0.0))
    k = check_iters_per_batch(cfg)
    datamodule = build_datamodule(cfg.dataset, batch_multiplier=int(cfg.d_steps) * k, seed=cfg.seed)
    if hasattr(datamodule, "prepare") and int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0))) == 0:
        datamodule.prepare()  # files present or downloaded, or one clear line, before any model is built
    if datamodule.batch_size % int(cfg.pack):
        raise ConfigError(f"dataset.batch_size={datamodule.batch_size} is not a multiple of pack={cfg.pack}: change one of them")
    generator, discriminator = build_models(cfg, datamodule.shape)
    loss = make_loss(**cfg.loss)
    if cfg.get("compile") and str(cfg.trainer.get("strategy", "auto")).lower() == "fsdp":
        raise ConfigError("compile=true with trainer.strategy=fsdp is not supported (untested together); set compile=false or use ddp")
    module = GANModule(
        generator=generator,
        discriminator=discriminator,
        loss=loss,
        g_optimizer=instantiate(cfg.optim.generator),
        d_optimizer=instantiate(cfg.optim.discriminator),
        g_scheduler=instantiate(cfg.optim.g_scheduler) if cfg.optim.get("g_scheduler") else None,
        d_scheduler=instantiate(cfg.optim.d_scheduler) if cfg.optim.get("d_scheduler") else None,
        d_steps=cfg.d_steps,
        g_steps=cfg.g_steps,
        grad_clip=cfg.grad_clip,
        ema_decay=cfg.ema_decay,
        log_every=cfg.log_every,
        noise_seed=cfg.seed,
        compile=bool(cfg.get("compile", False)),
        iters_per_batch=k,
        instance_noise=OmegaConf.to_object(n) if OmegaConf.is_config(n := cfg.get("instance_noise", 0.0)) else n,
        instance_noise_iters=cfg.get("instance_noise_iters"),
    )
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), cfg.paths.output_dir)
    resumed = check_checkpoint(ckpt_path, module) if ckpt_path else {}
    run_cfg = OmegaConf.to_container(cfg, resolve=True)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    callbacks.append(RunConfigInCheckpoint(run_cfg, datamodule.shape))
    loggers = build_loggers(cfg.get("logger") or {}, wandb_id=resumed.get("wandb_id"))
    trainer = build_trainer(cfg, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()])
    hparams = {
        "config": run_cfg,
        "params/generator": count_parameters(generator),
        "params/discriminator": count_parameters(discriminator),
        **{f"run/{k}": v for k, v in run_meta().items()},
    }
    for lg in loggers:
        lg.log_hyperparams(hparams)
    return Run(datamodule, module, trainer, ckpt_path)


def check_iters_per_batch(cfg: DictConfig) -> int:
    """``iters_per_batch``, checked: Lightning's callbacks, validation and stopping act between batches, so
    every iteration interval must be a multiple of it."""
    k = int(cfg.get("iters_per_batch", 1))
    if k < 1:
        raise ConfigError(f"iters_per_batch must be >= 1, got {k}")
    off = [f"{n}={cfg[n]}" for n in ("max_iters", "log_every", "val_every", "sample_every", "ckpt_every") if int(cfg[n]) % k]
    if off:
        raise ConfigError(f"iters_per_batch={k} must divide {', '.join(off)}: make them multiples of {k}, or set iters_per_batch=1")
    return k


def build_loggers(logger_cfg: DictConfig | dict, wandb_id: str | None = None) -> list[Any]:
    """One Lightning logger per entry of ``cfg.logger``; a resumed run's wandb logger continues its wandb run."""
    loggers = []
    for c in logger_cfg.values():
        if c is None:
            continue
        if str(c.get("_target_", "")).endswith("WandbLogger"):
            if importlib.util.find_spec("wandb") is None:
                log.warning("logger: wandb is not installed (pip install wandb); going on without it")
                continue
            if wandb_id and not c.get("id"):
                log.info("wandb: continuing run %s (its id is stored in the checkpoint)", wandb_id)
                loggers.append(instantiate(c, id=wandb_id))
                continue
        loggers.append(instantiate(c))
    return loggers


def build_trainer(cfg: DictConfig, **kwargs: Any) -> L.Trainer:
    """The Lightning Trainer of ``cfg.trainer``; the DDP that Lightning picks becomes :class:`GANDDPStrategy`.

    Lightning resolves ``strategy=auto/ddp/ddp_spawn/...`` with the device count; when it lands on its
    stock DDP (one wrapper around G and D together), the Trainer is rebuilt with the same settings and
    G and D wrapped separately. ``strategy=fsdp`` becomes :class:`GANFSDPStrategy` (FSDP2, G and D sharded
    separately), not Lightning's FSDP1 strategy, which wraps the whole module in one unit.
    """
    name = str(cfg.trainer.get("strategy", "auto")).lower()
    if "deepspeed" in name or ("fsdp" in name and name != "fsdp"):
        raise ConfigError(
            f"trainer.strategy={cfg.trainer.strategy} is not supported by ganforge: use trainer.strategy=fsdp "
            "(ganforge's FSDP2 sharding of G and D) or ddp"
        )
    try:
        if name == "fsdp":
            trainer = instantiate(cfg.trainer, strategy=GANFSDPStrategy(), **kwargs)
        else:
            trainer = instantiate(cfg.trainer, **kwargs)
            if type(trainer.strategy) is DDPStrategy:
                trainer = instantiate(cfg.trainer, strategy=GANDDPStrategy.like(trainer.strategy), **kwargs)
    except Exception as e:  # Hydra wraps the Trainer's own errors (bad devices, unknown strategy, ...)
        cause = e.__cause__ or e
        if isinstance(cause, (ValueError, MisconfigurationException)):
            raise ConfigError(f"trainer settings: {cause}") from None
        raise
    if not isinstance(trainer.strategy, (SingleDeviceStrategy, GANDDPStrategy, GANFSDPStrategy)):
        raise ConfigError(
            f"trainer.strategy={cfg.trainer.strategy} ({type(trainer.strategy).__name__}) is not supported by ganforge: "
            "use trainer.strategy=ddp, ddp_spawn or fsdp"
        )
    return trainer


def resolve_ckpt_path(value: str | None, run_dir: str) -> str | None:
    """``ckpt_path=last``: this run dir's ``checkpoints/last.ckpt`` if there is one (a requeued job resumes,
    a first start trains from scratch); any other value is a path."""
    if not value:
        return None
    if value != "last":
        return value
    path = Path(run_dir) / "checkpoints" / "last.ckpt"
    log.info("ckpt_path=last: %s", f"resuming from {path}" if path.is_file() else f"no {path} yet, starting fresh")
    if not path.is_file():
        return None
    # Lightning's CSVLogger deletes an existing metrics.csv when it starts: keep the earlier segment's
    metrics = Path(run_dir) / "csv" / "metrics.csv"
    if metrics.is_file() and rank_zero_only.rank == 0:
        n = len(list(metrics.parent.glob("metrics.part*.csv")))
        metrics.rename(metrics.with_name(f"metrics.part{n}.csv"))
    return str(path)


def check_checkpoint(path: str, module: GANModule) -> dict[str, Any]:
    """Fail early, in one line, on a missing checkpoint or one from a different model; returns the
    checkpoint's ``"ganforge"`` record (run config, wandb id)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"ckpt_path={path} does not exist: point it at a run's checkpoints/last.ckpt")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
        state = ckpt["state_dict"]
    except Exception as e:
        raise ConfigError(f"ckpt_path={path} is not a readable ganforge checkpoint ({type(e).__name__}: {e})") from None
    mine = module.state_dict()
    missing = sorted(set(mine) - set(state))
    mismatched = [k for k in mine if k in state and state[k].shape != mine[k].shape]
    if missing or mismatched:
        k = (mismatched or missing)[0]
        detail = (
            f"{k} has shape {list(state[k].shape)} there, {list(mine[k].shape)} here" if mismatched else f"{k} is missing there"
        )
        raise ConfigError(
            f"ckpt_path={path} does not match this model ({detail}): resume with the model/dataset/pack/ema settings it was trained with"
        )
    return dict(ckpt.get("ganforge") or {})


def train(cfg: DictConfig) -> float | None:
    """Build and fit; returns ``cfg.optimized_metric`` (for sweepers) when set and logged.

    Every run keeps ``status.json`` in its run dir (see :mod:`ganforge.sweeps`). In a multirun, a job
    that completed before (same sweep dir, same overrides) is skipped, and one that did not continues
    from its ``checkpoints/last.ckpt``: re-running an interrupted sweep's command resumes the sweep.
    """
    # ganforge checkpoints the post-update state on purpose; Lightning's hint about it is noise here
    warnings.filterwarnings("ignore", message=".*no pre-optimization state was saved.*")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    job = hydra_job()
    run_dir, overrides = Path(cfg.paths.output_dir), job.get("overrides", [])
    rank0 = rank_zero_only.rank == 0
    if job.get("sweep_dir") is not None:
        prev = previous_job(run_dir, overrides)
        if prev and prev.get("status") == "completed":
            log.info("%s: completed earlier, skipping (result %s)", run_dir, prev.get("result"))
            return prev.get("result")
        if not cfg.get("ckpt_path"):  # the ranks it starts get the same (strategies.rank_command)
            cfg.ckpt_path = "last"
    if rank0:
        write_status(run_dir, "running", overrides=overrides, started=time.strftime("%Y-%m-%dT%H:%M:%S"), error="", run=run_meta())
    try:
        result = _fit(cfg)
    except BaseException as e:
        if rank0:
            interrupted = isinstance(e, (SIGTERMException, KeyboardInterrupt))
            write_status(run_dir, "interrupted" if interrupted else "failed", error=f"{type(e).__name__}: {e}".splitlines()[0][:500], run=run_meta())
        raise
    if rank0:
        write_status(run_dir, "completed", result=result[0], metrics=result[1], run=run_meta())  # threads as trained
    return result[0]


def _fit(cfg: DictConfig) -> tuple[float | None, dict[str, float]]:
    run = build(cfg)
    log.info("run dir: %s", run.trainer.default_root_dir)
    ok = False
    try:
        run.trainer.fit(run.module, datamodule=run.datamodule, ckpt_path=run.ckpt_path)
        ok = True
    finally:
        if run.trainer.is_global_zero:
            summarize(run.trainer)
        for lg in wandb_loggers(run.trainer.loggers):  # the next multirun job starts its own wandb run
            lg.finish(ok)
    final = {k: float(v) for k, v in run.trainer.callback_metrics.items() if k.startswith(("train/", "val/")) and v.numel() == 1}
    metric = cfg.get("optimized_metric")
    if metric and metric not in final:
        log.warning("optimized_metric=%s was not logged (logged: %s): the sweeper gets no value", metric, ", ".join(sorted(final)))
    return final.get(metric) if metric else None, final


def summarize(trainer: L.Trainer) -> None:
    """Where the run's outputs are, and its final metrics, in a few lines at the end."""
    root = Path(trainer.default_root_dir)
    where = {
        "checkpoints": root / "checkpoints" / "last.ckpt",
        "samples": root / "samples" / "latest.png",
        "report": root / "report.html",
        "csv metrics": root / "csv" / "metrics.csv",
        "tensorboard": root / "tensorboard",
    }
    lines = [f"{k:<12} {v}" for k, v in where.items() if v.exists()]
    wandb_dir = wandb_run_dir(trainer.loggers)
    if wandb_dir is not None:
        offline = wandb_dir.name.startswith("offline-")
        lines.append(f"{'wandb':<12} {wandb_dir}" + (f"  (upload: wandb sync {wandb_dir})" if offline else ""))
    final = {k: float(v) for k, v in sorted(trainer.callback_metrics.items()) if k.startswith(("train/", "val/")) and v.numel() == 1}
    if final:
        lines.append("final        " + ", ".join(f"{k} {v:.4g}" for k, v in final.items()))
    log.info("iteration %d of %d; outputs:\n  %s", trainer.global_step, trainer.max_steps, "\n  ".join(lines))


def _in_multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


# Hydra plugins behind config choices (the `sweeps` extra): named before Hydra's own, longer error
PLUGINS = {
    "hparams_search=optuna": "hydra_plugins.hydra_optuna_sweeper",
    "hydra/sweeper=optuna": "hydra_plugins.hydra_optuna_sweeper",
    "hydra/launcher=joblib": "hydra_plugins.hydra_joblib_launcher",
    "hydra/launcher=submitit": "hydra_plugins.hydra_submitit_launcher",
    "hydra/launcher=slurm": "hydra_plugins.hydra_submitit_launcher",
}


def check_plugins(argv: list[str]) -> None:
    for arg in argv:
        for prefix, module in PLUGINS.items():
            if arg.startswith(prefix) and _missing(module):
                plugin = module.split(".")[1].replace("_", "-")
                print(f"error: {arg} needs the Hydra plugin {plugin}: pip install '{plugin}' (or ganforge[sweeps])", file=sys.stderr)
                sys.exit(2)


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except ModuleNotFoundError:  # hydra_plugins is a namespace package: absent when no plugin is installed
        return True


def main() -> Any:
    check_plugins(sys.argv[1:])
    return _hydra_main()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def _hydra_main(cfg: DictConfig) -> Any:
    try:
        return train(cfg)
    except MissingMandatoryValue as e:  # a `???` in the config the user has not set
        key = e.full_key or "a required setting"
        error = ConfigError(f"{key} has no value: set it on the command line, e.g. {key}=...")
        if _in_multirun():
            raise error from None
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except SIGTERMException:  # CheckpointOnSigterm has saved last.ckpt and said where
        if _in_multirun():
            raise
        sys.exit(143)
    except (ConfigError, NonFiniteLossError) as e:
        if _in_multirun():  # let Hydra mark this job failed and go on with the sweep
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2 if isinstance(e, ConfigError) else 1)


if __name__ == "__main__":
    main()
