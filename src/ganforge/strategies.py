"""Data-parallel training for the alternating D/G step: G and D each in their own DDP wrapper.

Lightning's stock ``DDPStrategy`` wraps the whole LightningModule in one
``DistributedDataParallel``. A GAN's D step gives gradients to D only and its G step to G only, so
that single reducer waits for gradients that never come ("parameters that were not used in
producing the loss"), unless ``find_unused_parameters=True`` makes it walk the autograd graph after
every forward. :class:`GANDDPStrategy` instead wraps the generator and the discriminator separately
(as StyleGAN2-ADA's first PyTorch release did), and :class:`~ganforge.module.GANModule` routes one
forward per phase through the wrapper of the network being updated; every other forward (the frozen
network, extra forwards of the trained one such as D on the real batch or the gradient penalty's
interpolates) calls the plain module. Each backward therefore all-reduces exactly the gradients of the
network being stepped, once, in DDP's overlapped buckets, with ``find_unused_parameters=False``.

Buffers (BatchNorm running statistics) are synced from rank 0 once, when wrapped, and not at every
forward (``forward_sync_buffers=False``, ``broadcast_buffers=False`` before torch 2.14):
they are per-rank estimates and rank 0's are saved. ``trainer.sync_batchnorm=true`` makes BatchNorm
use the global batch (SyncBatchNorm).

The launcher restarts ranks > 0 as ``python -m ganforge.cli.train`` with the Hydra job's own overrides
and ``hydra.run.dir`` set to the job's directory, so every rank of a job, single run or multirun job,
shares one run directory; and it restores the ``MASTER_*``/``*_RANK``/``WORLD_SIZE`` environment after
the job, so the next job of a multirun launches a fresh process group instead of waiting on the old one.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from typing import Any

import torch
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
from torch.nn.parallel import DistributedDataParallel

_LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


class GANDDPStrategy(DDPStrategy):
    """DDP with the generator and the discriminator wrapped separately (see the module docstring).

    Accepts :class:`~lightning.pytorch.strategies.DDPStrategy`'s arguments;
    ``find_unused_parameters`` is always False (it is never needed here) and ``broadcast_buffers``
    defaults to False.
    """

    strategy_name = "gan_ddp"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("find_unused_parameters", None)
        if not {"broadcast_buffers", "forward_sync_buffers"} & kwargs.keys():
            # torch >= 2.14 renamed it; both keep the initial buffer sync from rank 0
            new = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
            kwargs["forward_sync_buffers" if new else "broadcast_buffers"] = False
        super().__init__(**kwargs)

    @classmethod
    def like(cls, stock: DDPStrategy) -> GANDDPStrategy:
        """The GAN strategy with the settings of a stock DDP strategy that Lightning chose or the user named."""
        kwargs = {k: v for k, v in stock._ddp_kwargs.items() if k != "find_unused_parameters"}
        return cls(
            start_method=stock._start_method,
            process_group_backend=stock._process_group_backend,
            timeout=stock._timeout,
            **kwargs,
        )

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if type(self._launcher) is _SubprocessScriptLauncher:
            self._launcher = _GANSubprocessLauncher(self.cluster_environment, self.num_processes, self.num_nodes)

    def configure_ddp(self) -> None:
        module = self.lightning_module
        if not hasattr(module, "attach_ddp"):
            raise TypeError(f"{type(self).__name__} trains a ganforge GANModule, got {type(module).__name__}")
        module.attach_ddp(self._setup_model(module.generator), self._setup_model(module.discriminator))

    def _register_ddp_hooks(self) -> None:  # comm hooks would go per wrapper; none are configured by ganforge
        pass

    def teardown(self) -> None:
        module = self.lightning_module
        if module is not None and hasattr(module, "attach_ddp"):
            module.attach_ddp(None, None)
        super().teardown()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


class _GANSubprocessLauncher(_SubprocessScriptLauncher):
    """Lightning's script launcher, with Hydra-aware commands for ranks > 0 and a clean environment after."""

    def launch(self, function, *args: Any, trainer=None, **kwargs: Any) -> Any:
        saved = {k: os.environ.get(k) for k in _LAUNCH_ENV}
        try:
            result = super().launch(function, *args, trainer=trainer, **kwargs)
            for proc in self.procs:  # the other ranks end with the same fit; reap them before the next job
                try:
                    proc.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    proc.kill()
            return result
        finally:  # (on an exception the other ranks still run Lightning's on_exception hooks with this one)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def _call_children_scripts(self) -> None:
        self._check_can_spawn_children()
        self.procs = []
        os.environ["MASTER_ADDR"] = self.cluster_environment.main_address
        os.environ["MASTER_PORT"] = str(self.cluster_environment.main_port)
        os.environ["NODE_RANK"] = str(self.cluster_environment.node_rank())
        os.environ["LOCAL_RANK"] = str(self.cluster_environment.local_rank())
        os.environ["WORLD_SIZE"] = str(self.num_processes * self.num_nodes)
        for local_rank in range(1, self.num_processes):
            env = {**os.environ, "LOCAL_RANK": str(local_rank)}
            command, cwd = rank_command(local_rank)
            self.procs.append(subprocess.Popen(command, env=env, cwd=cwd))


def rank_command(local_rank: int) -> tuple[list[str], str | None]:
    """The command that starts rank ``local_rank`` of this job, and its working directory.

    Under Hydra: ``python -m ganforge.cli.train`` + the job's task overrides (not ``-m`` and the sweep)
    + ``hydra.run.dir=<this job's output dir>`` and no ``.hydra/`` of its own. Otherwise: this script again.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        main = sys.modules["__main__"]
        spec = getattr(main, "__spec__", None)
        head = [sys.executable, os.path.abspath(sys.argv[0])] if spec is None else [sys.executable, "-m", spec.name]
        return head + sys.argv[1:], None
    hc = HydraConfig.get()
    command = [sys.executable, "-m", "ganforge.cli.train", f"--config-name={hc.job.config_name}"]
    command += [f"--config-dir={s.path}" for s in hc.runtime.config_sources if s.provider == "command-line"]
    command += list(hc.overrides.task)
    if hc.mode == RunMode.MULTIRUN and not any(o.startswith("ckpt_path=") for o in hc.overrides.task):
        command.append("ckpt_path=last")  # as rank 0 does in a sweep job (cli.train.train): resume from last.ckpt
    command += [
        f"hydra.run.dir={_quote(hc.runtime.output_dir)}",
        f"hydra.job.name={hc.job.name}_rank{local_rank}",
        "hydra.output_subdir=null",
    ]
    return command, hc.runtime.cwd


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

