"""Experiment tracking: wandb by default (online when logged in, offline otherwise), run names from the
Hydra overrides, sweeps as wandb groups, and what every logger receives about a run.

Nothing here reads the run config except through plain arguments; the Hydra *job* facts (overrides,
sweep dir, chosen experiment) come from ``HydraConfig`` when a Hydra job is running, else defaults.
"""

from __future__ import annotations

import functools
import logging
import netrc
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger
from lightning.pytorch.utilities import rank_zero_only

log = logging.getLogger("ganforge")

MODES = ("auto", "online", "offline", "disabled")
# Overrides that say where or how a run is stored, logged or measured, not what is trained: left out of run names.
NAME_EXCLUDE = ("ckpt_path", "paths", "logger", "callbacks", "hydra", "metrics", "log_every", "val_every", "sample_every", "ckpt_every")
# Best value over a run for the wandb run table and sweep views (the rest keep wandb's "last").
SUMMARIES = {
    "val/fid": "min", "val/fid_*": "min", "val/kid": "min", "val/kid_*": "min", "val/is": "max",
    "val/modes": "max", "val/hq_frac": "max", "val/mode_kl": "min", "val/mode_min_share": "max",
}  # fmt: skip


def has_wandb_credentials(env: Mapping[str, str] | None = None) -> bool:
    """An API key in the environment or in ``~/.netrc`` for the wandb host (what ``wandb login`` writes)."""
    env = os.environ if env is None else env
    if env.get("WANDB_API_KEY") or env.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = re.sub(r"^https?://", "", env.get("WANDB_BASE_URL", "https://api.wandb.ai")).split("/")[0].split(":")[0]
    path = Path(env.get("NETRC") or Path.home() / ".netrc")
    try:
        auth = netrc.netrc(str(path)).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(auth and auth[2])


def resolve_mode(mode: str | None, env: Mapping[str, str] | None = None) -> str:
    """``auto``: ``$WANDB_MODE`` when set, else online with credentials, else offline (no account needed)."""
    env = os.environ if env is None else env
    mode = (mode or "auto").lower()
    if mode not in MODES:
        from ganforge.config import ConfigError

        raise ConfigError(f"logger.wandb.mode={mode} is not one of {', '.join(MODES)}")
    if mode != "auto":
        return mode
    if env.get("WANDB_MODE"):
        return {"dryrun": "offline", "run": "online"}.get(env["WANDB_MODE"], env["WANDB_MODE"])
    return "online" if has_wandb_credentials(env) else "offline"


def run_name(task_overrides: Iterable[str], group_choices: Iterable[str] = (), fallback: str = "run") -> str:
    """``model=dcgan loss=hinge seed=1`` -> ``dcgan-hinge-seed1``: a config group's choice by its value,
    any other key by its last part and value; storage settings (paths, loggers, ckpt_path) left out."""
    groups, parts = set(group_choices), []
    for o in task_overrides:
        key, eq, value = o.lstrip("+~").partition("=")
        if not eq or any(key == x or key.startswith(x + ".") for x in NAME_EXCLUDE):
            continue
        parts.append(value if key in groups else f"{key.rsplit('.', 1)[-1]}{value}")
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts)).strip("_-")
    return name[:128] or fallback


def hydra_job() -> dict[str, Any]:
    """The running Hydra job's facts: task overrides, config-group choices, sweep dir (multirun), job number."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
    except (ImportError, ValueError):
        return {}
    choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra")}
    multirun = hc.mode == RunMode.MULTIRUN
    return {
        "overrides": list(hc.overrides.task),
        "choices": choices,
        "sweep_dir": str(hc.sweep.dir) if multirun else None,
        "job_num": hc.job.get("num") if multirun else None,
    }


def run_identity(job: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """wandb ``name``, ``group`` (the multirun sweep, so its runs sit together) and ``tags`` (the experiment)."""
    job = hydra_job() if job is None else job
    choices = job.get("choices", {})
    fallback = "-".join(str(choices[k]) for k in ("dataset", "model", "loss") if choices.get(k)) or "run"
    sweep = job.get("sweep_dir")
    group = re.sub(r"[^A-Za-z0-9._-]+", "_", re.sub(r"^multirun/", "", sweep)).strip("_") if sweep else None
    tags = [f"experiment:{choices['experiment']}"] if choices.get("experiment") else []
    return {"name": run_name(job.get("overrides", []), choices, fallback), "group": group, "tags": tags}


def flatten(d: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """Nested dicts as one level of dotted keys (``optim.generator.lr``), so each setting is a column."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{sep}{k}" if prefix else str(k)
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key, sep))
        else:
            out[key] = v
    return out


@functools.lru_cache(maxsize=1)
def _git_commit() -> str:
    """The commit of ganforge's source tree (``+dirty`` with uncommitted changes), or "" outside git; read
    once a process: that is the code it imported (an edit later in a sweep does not change what runs), and a
    run's status and its loggers all ask for it."""
    src = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return ""
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=src, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def run_meta() -> dict[str, str]:
    """The command line, the git commit of ganforge's source (``+dirty`` with uncommitted changes) and what
    can change a run's numbers without changing its config: torch's version and its intra-op thread count
    (``threads``; ``OMP_NUM_THREADS`` as set, or ``unset``) on which host."""
    import platform

    import torch

    meta = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "torch": torch.__version__,
            "threads": str(torch.get_num_threads()), "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
            "host": platform.node()}  # fmt: skip
    commit = _git_commit()
    if commit:
        meta["git_commit"] = commit
    return meta


class WandbLogger(_LightningWandbLogger):
    """Lightning's ``WandbLogger`` with ganforge's defaults.

    * ``mode=auto``: online when logged in, else offline; one line says where an offline run lives and
      the ``wandb sync`` command that uploads it later.
    * ``name``/``group``/``tags`` default to :func:`run_identity` (overrides, sweep, experiment).
    * ``id``: the run to continue; ganforge passes the id stored in the checkpoint when resuming, so
      curves continue in the same wandb run instead of a new one.
    * Every ``train/*`` and ``val/*`` curve uses ``trainer/global_step`` (= GAN iterations) as x-axis;
      the config is logged flat (``optim.generator.lr`` is a column of the runs table).
    """

    def __init__(
        self,
        save_dir: str,
        project: str = "ganforge",
        mode: str = "auto",
        name: str | None = None,
        group: str | None = None,
        tags: list[str] | None = None,
        id: str | None = None,
        log_model: bool | str = False,
        **kwargs: Any,
    ) -> None:
        ident = run_identity()
        self.mode = resolve_mode(mode)
        super().__init__(
            save_dir=save_dir,
            project=project,
            name=name or ident["name"],
            group=group or ident["group"],
            tags=list(tags) if tags else ident["tags"],
            id=id,
            log_model=log_model,
            mode=self.mode,
            **kwargs,
        )
        self._wandb_init.setdefault("settings", _quiet_settings())
        if self._wandb_init.get("anonymous") is None:  # wandb warns that the setting is deprecated
            self._wandb_init.pop("anonymous", None)

    @property
    def experiment(self):  # noqa: D102 (Lightning's docstring)
        fresh = self._experiment is None
        run = super().experiment
        if fresh and rank_zero_only.rank == 0 and hasattr(run, "define_metric"):
            run.define_metric("trainer/global_step")
            for glob in ("train/*", "val/*", "samples"):
                run.define_metric(glob, step_metric="trainer/global_step", step_sync=True)
            for glob, summary in SUMMARIES.items():
                run.define_metric(glob, step_metric="trainer/global_step", summary=summary)
            _announce(run, self.mode)
        return run

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        params = dict(params)
        config = params.pop("config", None) or {}
        super().log_hyperparams({**flatten(config), **params})

    def finish(self, ok: bool = True) -> None:
        """End the wandb run (a Hydra multirun starts the next job's run in the same process)."""
        if self._experiment is not None and hasattr(self._experiment, "finish"):
            self._experiment.finish(exit_code=0 if ok else 1)
        self._experiment = None


def _quiet_settings():
    import wandb

    # wandb's own banner is ~8 lines per run; ganforge says the one that matters (see _announce)
    return wandb.Settings(silent=True)


def _announce(run: Any, mode: str) -> None:
    if mode == "offline":
        run_dir = Path(run.dir).parent
        log.info("wandb: offline run in %s; upload it later with: wandb sync %s", run_dir, run_dir)
    elif mode == "online" and getattr(run, "url", None):
        log.info("wandb: %s", run.url)


def wandb_loggers(loggers: Iterable[Any]) -> list[WandbLogger]:
    return [lg for lg in loggers if isinstance(lg, _LightningWandbLogger)]


def wandb_run_dir(loggers: Iterable[Any]) -> Path | None:
    """The local directory of the (first) wandb run, once started."""
    for lg in wandb_loggers(loggers):
        run = lg._experiment
        if run is not None and getattr(run, "dir", None):
            return Path(run.dir).parent
    return None
