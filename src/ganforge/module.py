"""GANModule: the alternating discriminator / generator updates, and nothing else.

A GAN iteration (Goodfellow et al. 2014, Algorithm 1) is ``d_steps`` (k) discriminator updates,
each on a fresh minibatch of m real samples and m generated samples, then ``g_steps`` generator
updates on fresh noise. One Lightning training step runs ``iters_per_batch`` iterations (default 1).
``trainer.global_step`` counts iterations (not optimizer steps, not batches), so
``trainer.max_steps = max_iters`` means what it says.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.core.optimizer import LightningOptimizer, do_nothing_closure
from torch import Tensor, nn

from ganforge.config import ConfigError
from ganforge.losses import GANLoss, gradient_penalty, jsd_from_d_loss, r1_penalty
from ganforge.models.common import sample_latent

OptimizerFactory = Callable[[Iterator[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]


class NonFiniteLossError(RuntimeError):
    """A D or G loss became NaN or infinite; training stops rather than write poisoned checkpoints."""


def incompatibility(loss: GANLoss, discriminator: nn.Module, compile: bool = False) -> str | None:
    """Why this loss, discriminator and ``compile`` cannot train together, in one line naming the fix; None if
    they can. The module refuses these at construction (a ConfigError, which the CLI prints as one line)."""
    what = {"r1": "loss.r1_weight", "gp": "loss.gp_weight"}.get(loss.penalty) if loss.name != "wgan_gp" else f"loss={loss.name}"
    if loss.penalty and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in discriminator.modules()):
        return (
            f"{what} penalizes per-sample gradients, which BatchNorm in the discriminator mixes across the batch: "
            "set model.discriminator.norm=layer (or none)"
        )
    if compile and loss.penalty:
        return f"compile=true with {what}: torch.compile has no double backward for the gradient penalty; set compile=false"
    return None


def noise_knots(std: float | Sequence[Sequence[float]], iters: int | None = None) -> list[tuple[int, float]]:
    """The instance noise's schedule as ``[(iteration, std), ...]`` knots from iteration 0 (the std linear between
    knots, the last one's after): ``std`` constant, decayed linearly to 0 over ``iters``, or given as knots.
    A bad schedule raises one line naming the fix."""
    if isinstance(std, (int, float)):
        if std < 0 or (iters is not None and iters < 1):
            raise ConfigError(
                f"instance_noise={std}, instance_noise_iters={iters}: the std must be >= 0 "
                "and the decay length >= 1 iteration (null = constant)"
            )
        return [(0, float(std))] if iters is None or std == 0 else [(0, float(std)), (int(iters), 0.0)]
    try:
        knots = [(int(t), float(v)) for t, v in std]
    except (TypeError, ValueError):
        knots = []
    ok = bool(knots) and knots[0][0] == 0 and all(v >= 0 for _, v in knots)
    ok = ok and all(t1 > t0 for (t0, _), (t1, _) in zip(knots, knots[1:]))
    if not ok or iters is not None:
        raise ConfigError(
            f"instance_noise={list(std)}: a schedule is a list of [iteration, std] pairs starting at iteration 0, "
            "iterations increasing, stds >= 0, with instance_noise_iters=null (e.g. [[0, 0.5], [50000, 0.1], [150000, 0]])"
        )
    return knots


class GANModule(L.LightningModule):
    """Alternating D/G training with manual optimization.

    Args:
        generator: maps z [B, latent_dim] to samples; must expose ``latent_dim``.
        discriminator: maps samples to logits [B // pack].
        loss: the objective (see :mod:`ganforge.losses`).
        g_optimizer, d_optimizer: factories ``params -> Optimizer`` (Hydra ``_partial_`` configs);
            separate learning rates and betas give TTUR.
        g_scheduler, d_scheduler: optional factories ``optimizer -> LR scheduler``, stepped once per iteration.
        d_steps: k, discriminator updates per iteration.
        g_steps: generator updates per iteration.
        grad_clip: clip each network's gradient norm to this value (None = off).
        ema_decay: keep an exponential moving average of G's weights with this decay (0 = off);
            when on, the EMA generator is the one used for sampling and evaluation.
        log_every: log interval in iterations; losses are averaged on the device in between, so
            there is no host synchronization on the other steps.
        noise_seed: seeds the latent noise. Under data parallelism every rank draws the global batch's
            noise from this one stream and keeps its own share, so ranks see distinct noise and N ranks
            with batch b draw exactly what one process with batch N*b draws.
        compile: ``torch.compile`` G and D in place (the EMA copy, used only for sampling, stays eager).
            Not with a gradient penalty: compiled graphs have no double backward.
        instance_noise: std of Gaussian noise added to every sample D sees in training, real and fake alike
            (Sønderby et al. 2016; Arjovsky & Bottou 2017): both distributions blurred by the same kernel
            overlap, so D's gradient reaches G's samples far from the data instead of vanishing off its
            support. 0 = off. Validation (``val/jsd_d``) scores D on clean samples. Or a schedule: a list
            of ``[iteration, std]`` knots from iteration 0, the std linear between them and the last std after
            (``[[0, 0.5], [50000, 0.1], [150000, 0]]``).
        instance_noise_iters: the std decays linearly from ``instance_noise`` to 0 over these iterations
            (None = constant), coarse to fine: at the end D and G play the clean game again.
        iters_per_batch: GAN iterations per Lightning batch (the batch then holds
            ``iters_per_batch * d_steps`` minibatches). Above 1 it spreads Lightning's fixed per-batch
            cost (callback hooks, progress tracking, batch transfer: ~0.5 ms on a CPU) over several
            iterations, which matters only for tiny models; Lightning's batch hooks then run once per
            ``iters_per_batch`` iterations, and ``trainer.max_steps`` must be a multiple of it.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        loss: GANLoss,
        g_optimizer: OptimizerFactory,
        d_optimizer: OptimizerFactory,
        g_scheduler: SchedulerFactory | None = None,
        d_scheduler: SchedulerFactory | None = None,
        d_steps: int = 1,
        g_steps: int = 1,
        grad_clip: float | None = None,
        ema_decay: float = 0.0,
        log_every: int = 50,
        noise_seed: int = 0,
        compile: bool = False,
        iters_per_batch: int = 1,
        instance_noise: float | Sequence[Sequence[float]] = 0.0,
        instance_noise_iters: int | None = None,
    ) -> None:
        super().__init__()
        if d_steps < 1 or g_steps < 1:
            raise ValueError(f"d_steps and g_steps must be >= 1, got d_steps={d_steps}, g_steps={g_steps}")
        if iters_per_batch < 1:
            raise ValueError(f"iters_per_batch must be >= 1, got {iters_per_batch}")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        knots = noise_knots(instance_noise, instance_noise_iters)
        if problem := incompatibility(loss, discriminator, compile):
            raise ConfigError(problem)
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.g_ema = copy.deepcopy(generator).requires_grad_(False) if ema_decay > 0 else None
        if compile:  # in place (nn.Module.compile): parameter names, checkpoints and the DDP wrapping stay as they are
            self.generator.compile()
            self.discriminator.compile()
        self.loss = loss
        self._g_opt_factory, self._d_opt_factory = g_optimizer, d_optimizer
        self._g_sched_factory, self._d_sched_factory = g_scheduler, d_scheduler
        self.d_steps, self.g_steps, self.iters_per_batch = int(d_steps), int(g_steps), int(iters_per_batch)
        self.grad_clip, self.ema_decay = grad_clip, float(ema_decay)
        self.log_every, self.noise_seed = max(1, int(log_every)), int(noise_seed)
        self.noise_knots = knots  # [(iteration, std), ...] from iteration 0: the instance noise's schedule
        self._noise: torch.Generator | None = None
        self._noise_state_to_load: Tensor | None = None
        self._lean = False
        self._val_noise: torch.Generator | None = None
        # device-side sums since the last log: d_loss, d_real, d_fake, penalty, g_loss; _acc holds 0-dim views of its entries
        self._sums: Tensor | None = None
        self._acc: tuple[Tensor, ...] = ()
        self._last_logged_step = 0
        self._ddp: tuple[nn.Module, nn.Module] | None = None  # (G, D) DDP wrappers, set by GANDDPStrategy

    # ------------------------------------------------------------------ set-up
    @property
    def latent_dim(self) -> int:
        return int(self.generator.latent_dim)

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator to draw samples from: the EMA copy when EMA is on."""
        return self.g_ema if self.g_ema is not None else self.generator

    def configure_optimizers(self):
        opt_g = self._g_opt_factory(self.generator.parameters())
        opt_d = self._d_opt_factory(self.discriminator.parameters())
        scheds = [f(o) for f, o in ((self._g_sched_factory, opt_g), (self._d_sched_factory, opt_d)) if f is not None]
        return ([opt_g, opt_d], scheds) if scheds else [opt_g, opt_d]

    def attach_ddp(self, generator: nn.Module | None, discriminator: nn.Module | None) -> None:
        """Called by :class:`~ganforge.strategies.GANDDPStrategy` with G's and D's DDP wrappers (None to detach).

        They are kept outside the module tree, so checkpoints hold the plain networks' weights.
        """
        self._ddp = (generator, discriminator) if generator is not None else None

    def _synced(self, net: nn.Module) -> nn.Module:
        """``net``'s DDP wrapper when training data-parallel, else ``net``.

        Each phase sends exactly one forward of the network it updates through the wrapper: that
        forward arms DDP's reducer, and the backward then all-reduces that network's gradients once.
        """
        if self._ddp is None:
            return net
        return self._ddp[0] if net is self.generator else self._ddp[1]

    def setup(self, stage: str) -> None:
        from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy

        from ganforge.strategies import GANDDPStrategy, GANFSDPStrategy

        strategy = self.trainer.strategy
        if isinstance(strategy, DDPStrategy) and not isinstance(strategy, GANDDPStrategy):
            raise ValueError(
                f"{type(strategy).__name__} wraps G and D as one DDP model, which fails on the alternating D/G step: "
                "pass strategy=ganforge.strategies.GANDDPStrategy() (train.py does this for trainer.strategy=ddp)"
            )
        if not isinstance(strategy, (SingleDeviceStrategy, GANDDPStrategy, GANFSDPStrategy)):
            raise ValueError(
                f"strategy {type(strategy).__name__} is not supported by GANModule: use a single device, "
                "data parallelism (trainer.strategy=ddp / ddp_spawn) or sharding (trainer.strategy=fsdp)"
            )

    def configure_model(self) -> None:
        """Under :class:`~ganforge.strategies.GANFSDPStrategy`: shard G, D and the EMA copy with FSDP2, block by block."""
        from ganforge.strategies import GANFSDPStrategy

        strategy = self.trainer.strategy
        if not isinstance(strategy, GANFSDPStrategy) or self._sharded:
            return
        # D's logits are a view (flatten) of its last layer's output; ganforge never writes into them in place
        warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor")
        mesh = strategy.device_mesh["data_parallel"]
        for net in (self.generator, self.discriminator, self.g_ema):
            if net is not None:
                shard_network(net, mesh, reshard_after_forward=strategy.reshard_after_forward)

    @property
    def _sharded(self) -> bool:
        """Whether configure_model sharded the networks (under GANFSDPStrategy)."""
        from torch.distributed.fsdp import FSDPModule

        return isinstance(self.discriminator, FSDPModule)

    def on_train_start(self) -> None:
        # here, not in on_fit_start: strategies that restore after setup (FSDP) load the checkpoint in between
        self._noise = torch.Generator(device=self.device).manual_seed(self.noise_seed)
        if self._noise_state_to_load is not None:
            self._noise.set_state(self._noise_state_to_load)
            self._noise_state_to_load = None
        self._sums = torch.zeros(5, device=self.device)
        self._acc = self._sums.unbind()  # views: one fused add per D step, no stacking
        self._last_logged_step = self.global_step
        self._lean = self._lightning_plumbing_is_a_no_op()
        if self.trainer.max_steps > 0 and self.trainer.max_steps % self.iters_per_batch:
            raise ValueError(
                f"trainer.max_steps={self.trainer.max_steps} is not a multiple of iters_per_batch={self.iters_per_batch}: "
                "Lightning stops between batches, so the run would overshoot"
            )

    def _lightning_plumbing_is_a_no_op(self) -> bool:
        """Whether Lightning's backward/step path would only call empty hooks.

        True for plain fp32 precision on a single device, with no profiler, and no callback (or this
        module) overriding ``on_before_backward``, ``on_after_backward`` or ``on_before_optimizer_step``.
        Then backward and the uncounted steps call torch directly, which saves ~a millisecond of
        Python per iteration on small models (see benchmarks/); anything else takes Lightning's path.
        The counted step calls the two progress callbacks Lightning's manual loop gives each
        ``LightningOptimizer`` (private names): a Lightning without them takes the public path too.
        """
        from lightning.pytorch.callbacks import Callback
        from lightning.pytorch.plugins.precision import Precision
        from lightning.pytorch.profilers import PassThroughProfiler
        from lightning.pytorch.strategies import SingleDeviceStrategy
        from lightning.pytorch.utilities.model_helpers import is_overridden

        t = self.trainer
        if type(t.precision_plugin) is not Precision or type(t.strategy) is not SingleDeviceStrategy:
            return False
        if not isinstance(t.profiler, PassThroughProfiler):
            return False
        if not all(callable(getattr(o, h, None)) for o in self.optimizers() for h in ("_on_before_step", "_on_after_step")):
            return False
        hooks = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")
        if any(is_overridden(h, self, GANModule) for h in ("backward", *hooks)):
            return False
        return not any(is_overridden(h, cb, Callback) for cb in t.callbacks for h in hooks)

    def _backward(self, loss: Tensor) -> None:
        if self._lean:
            loss.backward()
        else:
            self.manual_backward(loss)

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """z [n, latent_dim] from the generator's prior (``sample_latent``), from ``generator`` or the module's own training RNG (saved in checkpoints).

        Training noise is drawn for the global batch (n per rank) and this rank keeps rows
        ``rank::world_size``, the same interleaving as the data shards.
        """
        if generator is not None:
            return sample_latent(self.generator, n, device=self.device, generator=generator)
        return self._rank_share(sample_latent(self.generator, n * self._world, device=self.device, generator=self._noise))

    def instance_noise_std(self, iteration: int | None = None) -> float:
        """The std of the instance noise at ``iteration`` (default: the current one)."""
        t = self.global_step if iteration is None else iteration
        for (t0, s0), (t1, s1) in zip(self.noise_knots, self.noise_knots[1:]):
            if t < t1:
                f = (t - t0) / (t1 - t0)
                return s0 * (1.0 - f) + s1 * f  # a decay to 0 from iteration 0 is s0 * (1 - t / t1), bit for bit
        return self.noise_knots[-1][1]

    def _blur(self, x: Tensor) -> Tensor:
        """``x`` plus this iteration's instance noise (drawn, like the latents, for the global batch)."""
        std = self.instance_noise_std()
        if std == 0.0:
            return x
        n = x.shape[0] * self._world
        eps = self._rank_share(torch.randn((n, *x.shape[1:]), device=x.device, dtype=x.dtype, generator=self._noise))
        return x + std * eps

    @property
    def _world(self) -> int:
        return self.trainer.world_size if self._trainer is not None else 1

    def _rank_share(self, x: Tensor) -> Tensor:
        w = self._world
        return x if w == 1 else x[self.global_rank :: w].contiguous()

    # ------------------------------------------------------------ the iteration
    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        schedulers = self._schedulers()
        n = self.iters_per_batch * self.d_steps
        reals = batch[0].chunk(n)
        if len(reals) != n or reals[-1].shape[0] != reals[0].shape[0]:
            raise ValueError(
                f"a batch of {batch[0].shape[0]} cannot be split into iters_per_batch={self.iters_per_batch} x "
                f"d_steps={self.d_steps} equal parts"
            )
        for i in range(0, n, self.d_steps):
            self._iteration(opt_g, opt_d, schedulers, reals[i : i + self.d_steps])

    def _iteration(self, opt_g: LightningOptimizer, opt_d: LightningOptimizer, schedulers: list, reals: tuple[Tensor, ...]) -> None:
        for j, real in enumerate(reals):  # D update number global_step * d_steps + j: the same after a resume
            self._discriminator_step(opt_d, real, self.global_step * self.d_steps + j)
        m = reals[0].shape[0]
        for i in range(self.g_steps):
            self._generator_step(opt_g, m, counted=i == self.g_steps - 1)
        if self.g_ema is not None:
            self._update_ema()
        for sched in schedulers:
            sched.step()
        if self.global_step % self.log_every == 0:
            self._log_train_metrics()

    def _discriminator_step(self, opt: LightningOptimizer, real: Tensor, update: int) -> None:
        with torch.no_grad():  # the D update must not build (or leak into) G's graph
            fake = self._blur(self.generator(self.noise(real.shape[0])))
            real = self._blur(real)
        penalty = self.loss.penalty
        if penalty and update % self.loss.penalty_every:  # lazy R1: this update goes without it
            penalty = None
        if penalty and self._sharded:  # the penalty's inner backward must not free the gathered weights the outer one needs
            self.discriminator.set_reshard_after_backward(False)
        if penalty == "r1":
            real = real.detach().requires_grad_(True)
        r, f = self.discriminator(real), self._synced(self.discriminator)(fake)
        d_loss = d_main = self.loss.d_loss(r, f)
        pen = None  # the penalty before its weight: the gradient penalty or R1, whichever the loss takes
        if penalty == "gp":
            n = real.shape[0]
            alpha = self._rank_share(torch.rand(n * self._world, device=self.device, generator=self._noise))
            pen = gradient_penalty(self.discriminator, real, fake, alpha=alpha, center=self.loss.gp_center)
            d_loss = d_loss + self.loss.gp_weight * pen
        elif penalty == "r1":
            pen = r1_penalty(real, r)
            d_loss = d_loss + 0.5 * self.loss.r1_weight * self.loss.penalty_every * pen
        opt.zero_grad(set_to_none=True)
        self._backward(d_loss)
        if penalty and self._sharded:
            from torch.distributed.fsdp import FSDPModule

            self.discriminator.set_reshard_after_backward(True)
            for m in self.discriminator.modules():
                if isinstance(m, FSDPModule):
                    m.reshard()
        self._optimizer_step(opt, counted=False)
        if self.loss.clip_value is not None:
            with torch.no_grad():
                for p in self.discriminator.parameters():
                    p.clamp_(-self.loss.clip_value, self.loss.clip_value)
        with torch.no_grad():  # the sums for the log: a few small ops on the device, no host sync
            d_real, d_fake = (r.sigmoid().mean(), f.sigmoid().mean()) if self.loss.sigmoid else (r.mean(), f.mean())
            values = (d_main, d_real, d_fake) if pen is None else (d_main, d_real, d_fake, pen)
            torch._foreach_add_(self._acc[: len(values)], values)

    def _generator_step(self, opt: LightningOptimizer, m: int, counted: bool) -> None:
        fake = self._blur(self._synced(self.generator)(self.noise(m)))
        self.discriminator.requires_grad_(False)  # G's backward passes through D but must not touch D's grads
        try:
            g_loss = self.loss.g_loss(self.discriminator(fake))
            opt.zero_grad(set_to_none=True)
            self._backward(g_loss)
        finally:
            self.discriminator.requires_grad_(True)
        self._optimizer_step(opt, counted=counted)
        self._acc[4].add_(g_loss.detach())

    def _optimizer_step(self, opt: LightningOptimizer, counted: bool) -> None:
        """Clip and step through the strategy (precision plugin, loss scaler, ...).

        Only the iteration's last generator step goes through ``LightningOptimizer.step``, which
        advances Lightning's step counter; the others call the strategy directly. Hence
        ``global_step`` == iterations.
        """
        if self.grad_clip and self._lean:  # else in on_before_optimizer_step, after AMP's unscale
            self.clip_gradients(opt, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")
        if counted and self._lean:  # what LightningOptimizer.step does when the strategy's path is a no-op
            opt._on_before_step()  # set by Lightning's manual-optimization loop: step progress (-> global_step)
            opt.optimizer.step()
            opt._on_after_step()
        elif counted:
            opt.step()
        elif self._lean:
            opt.optimizer.step()
        else:
            self.trainer.strategy.optimizer_step(opt.optimizer, do_nothing_closure)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Lightning calls this after the precision plugin unscaled the gradients (16-mixed's GradScaler),
        # so the clip applies to the true gradient norm
        if self.grad_clip and not self._lean:
            self.clip_gradients(optimizer, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")

    @torch.no_grad()
    def _update_ema(self) -> None:
        ema_p = list(self.g_ema.parameters())
        torch._foreach_lerp_(ema_p, list(self.generator.parameters()), 1.0 - self.ema_decay)
        for b_ema, b in zip(self.g_ema.buffers(), self.generator.buffers()):
            b_ema.copy_(b)

    def _schedulers(self) -> list:
        s = self.lr_schedulers()
        return [] if s is None else (s if isinstance(s, list) else [s])

    # ---------------------------------------------------------------- logging
    def _log_train_metrics(self) -> None:
        iters = self.global_step - self._last_logged_step
        if iters <= 0:
            return
        if self._world > 1:  # ranks log the mean over all of them: one all-reduce per log interval
            torch.distributed.all_reduce(self._sums)
            self._sums /= self._world
        d_loss, d_real, d_fake, pen, g_loss = self._sums.tolist()  # the one host sync per log interval
        self._sums.zero_()
        first, self._last_logged_step = self._last_logged_step + 1, self.global_step
        if not all(map(_finite, (d_loss, g_loss))):
            self._raise_non_finite(first, self.global_step)
        nd, ng = iters * self.d_steps, iters * self.g_steps
        metrics = {"train/d_loss": d_loss / nd, "train/g_loss": g_loss / ng, "train/d_real": d_real / nd, "train/d_fake": d_fake / nd}
        if self.loss.penalty:  # train/gp or train/r1: the penalty's mean before its weight, over the updates that took it
            k, lo, hi = self.loss.penalty_every, (first - 1) * self.d_steps, self.global_step * self.d_steps - 1
            metrics[f"train/{self.loss.penalty}"] = pen / (hi // k - (lo - 1) // k)  # D updates lo..hi, multiples of k
        if self.loss.sigmoid:
            metrics["train/jsd_batch"] = float(jsd_from_d_loss(torch.tensor(d_loss / nd)))
        # "step" sets the logged x-value: iterations done (Lightning's default lags one behind here)
        self.log_dict({**metrics, "step": float(self.global_step)}, prog_bar=False)
        self.log_dict({"d_loss": metrics["train/d_loss"], "g_loss": metrics["train/g_loss"]}, prog_bar=True, logger=False)

    def _raise_non_finite(self, first: int, last: int) -> None:
        ckpt = getattr(self.trainer.checkpoint_callback, "last_model_path", "") or "none written yet"
        raise NonFiniteLossError(
            f"non-finite D or G loss (NaN/inf) in iterations {first}..{last}; training stopped. "
            f"Last good checkpoint: {ckpt}. Try lower learning rates, grad_clip=1.0, or loss=hinge."
        )

    # ------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        # the same validation noise at every evaluation: curves move with G, not with the draw
        self._val_noise = torch.Generator(device=self.device).manual_seed(self.noise_seed + 7919 * (self.global_rank + 1))

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        p = getattr(self.discriminator, "pack", 1)
        real = batch[0][: batch[0].shape[0] // p * p]  # the last batch's leftover rows fill no packed group: dropped
        if real.shape[0] == 0:
            return
        fake = self.sampling_generator(self.noise(real.shape[0], self._val_noise))
        r, f = self.discriminator(real), self.discriminator(fake)
        d_loss = self.loss.d_loss(r, f)
        metrics = {"val/d_loss": d_loss}
        if self.loss.sigmoid:
            metrics.update({"val/d_real": r.sigmoid().mean(), "val/d_fake": f.sigmoid().mean(), "val/jsd_d": jsd_from_d_loss(d_loss)})
        else:
            metrics.update({"val/d_real": r.mean(), "val/d_fake": f.mean()})
        self.log_dict(metrics, on_epoch=True, batch_size=real.shape[0], sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        # val/* (here and from callbacks) at x = iterations done, the x of train/* and of the sample pictures
        self.log("step", float(self.global_step))

    # ------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._sums is not None and not torch.isfinite(self._sums).all():
            self._raise_non_finite(self._last_logged_step + 1, self.global_step)
        if self._noise is not None:
            checkpoint["ganforge_noise_rng"] = self._noise.get_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._noise_state_to_load = checkpoint.get("ganforge_noise_rng")


def shard_network(net: nn.Module, mesh: Any, reshard_after_forward: bool = True) -> None:
    """``fully_shard`` each block of ``net`` (the children of its ``net`` ``Sequential``, when it has one, that
    hold parameters), then ``net`` itself for what is left: one all-gather per block, so at most one block's
    full weights (plus the root's) are materialized at a time."""
    from torch.distributed.fsdp import fully_shard

    body = getattr(net, "net", None)
    if isinstance(body, nn.Sequential):
        for block in body:
            if any(True for _ in block.parameters()):
                fully_shard(block, mesh=mesh, reshard_after_forward=reshard_after_forward)
    fully_shard(net, mesh=mesh, reshard_after_forward=reshard_after_forward)


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")
