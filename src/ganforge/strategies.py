"""Multi-device training for the alternating D/G step: G and D each in their own DDP wrapper, or each sharded with FSDP2.

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
from lightning.pytorch.strategies import DDPStrategy, ModelParallelStrategy
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
from torch.nn.parallel import DistributedDataParallel

_LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


class _GANProcessGroup:
    """What both of ganforge's data-parallel strategies add to Lightning's: the Hydra-aware rank launcher,
    and a process group destroyed at teardown (a multirun's next job starts a new one)."""

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if type(self._launcher) is _SubprocessScriptLauncher:
            self._launcher = _GANSubprocessLauncher(self.cluster_environment, self.num_processes, self.num_nodes)

    def teardown(self) -> None:
        super().teardown()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


class GANDDPStrategy(_GANProcessGroup, DDPStrategy):
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


class GANFSDPStrategy(_GANProcessGroup, ModelParallelStrategy):
    """Fully sharded data parallelism for G and D (FSDP2: ``torch.distributed.fsdp.fully_shard``).

    Every rank holds a 1/world shard of each network's parameters, gradients and Adam state; a block's
    full weights are all-gathered just before its forward (and again before its backward) and freed after,
    and gradients are reduce-scattered, so a model too large for one device trains on several.
    :meth:`~ganforge.module.GANModule.configure_model` shards G, D and the EMA copy block by block (each
    child of a network's ``net`` ``Sequential``, then the network itself), each network on its own, so the
    D step all-gathers and reduces only D and the G step reduces only G's gradients (D's parameters are
    frozen there). Data, noise and the gradient-penalty draws are sharded exactly as under
    :class:`GANDDPStrategy`, so N ranks with batch b follow the trajectory of one process with batch N*b.

    Built on Lightning's :class:`~lightning.pytorch.strategies.ModelParallelStrategy` with a 1-D mesh
    (data-parallel size = world size, no tensor parallelism). Checkpoints are one file with the full
    (unsharded) weights and optimizer states, assembled on rank 0, so ``last.ckpt`` stays interchangeable
    with single-device and DDP runs (resume, ``ganforge.sample``, ``ganforge.evaluate``). Every rank must
    run every forward of a sharded network (each is a collective): ganforge's callbacks draw samples on
    all ranks and only rank 0 writes them.
    """

    strategy_name = "gan_fsdp"

    def __init__(self, reshard_after_forward: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("save_distributed_checkpoint", False)
        super().__init__(data_parallel_size="auto", tensor_parallel_size=1, **kwargs)
        self.reshard_after_forward = bool(reshard_after_forward)

    def setup_environment(self) -> None:
        self._data_parallel_size = self.num_nodes * self.num_processes  # a 1-D data-parallel mesh over all ranks
        super().setup_environment()

    # Checkpoints in the single-device format. Lightning's ModelParallelStrategy keys each optimizer's state by
    # the index of the parameter in the *whole model* (D's Adam state as 8..15 after G's 0..7), which a
    # single-device or DDP run reads as another network's state; here each optimizer's state is keyed by its
    # own parameter order, as ``torch.optim.Optimizer.state_dict()`` does, in both directions.
    def optimizer_state(self, optimizer: Any) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        optimizer = getattr(optimizer, "_optimizer", optimizer)
        full = get_optimizer_state_dict(self.model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if self.global_rank != 0:
            return {}
        index = {name: i for i, name in enumerate(_param_names(self.model, optimizer))}
        groups = [{**g, "params": [index[n] for n in g["params"]]} for g in full["param_groups"]]
        return {"state": {index[n]: v for n, v in full["state"].items()}, "param_groups": groups}

    def load_checkpoint(self, checkpoint_path: Any, weights_only: bool | None = None) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

        path = self.broadcast(checkpoint_path)
        checkpoint = torch.load(path, map_location="cpu", mmap=True, weights_only=weights_only)
        strict = self.lightning_module.strict_loading
        set_model_state_dict(self.model, checkpoint["state_dict"], options=StateDictOptions(full_state_dict=True, strict=strict))
        for optimizer, state in zip(self.optimizers, checkpoint.get("optimizer_states", [])):
            names = _param_names(self.model, optimizer)
            groups = [{**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]]
            by_name = {"state": {names[i]: v for i, v in state["state"].items()}, "param_groups": groups}
            set_optimizer_state_dict(self.model, optimizer, by_name, options=StateDictOptions(full_state_dict=True))
        return checkpoint


def _param_names(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The fully qualified names of ``optimizer``'s parameters, in its own order."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [names[id(p)] for g in optimizer.param_groups for p in g["params"]]


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

