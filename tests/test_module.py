import functools
import math

import lightning as L
import pytest
import torch

from ganforge.config import ConfigError
from ganforge.data import Ring8DataModule
from ganforge.losses import GANLoss, bce_d_loss, make_loss, nonsaturating_g_loss
from ganforge.models import MLPDiscriminator, MLPGenerator
from ganforge.module import GANModule, NonFiniteLossError


def make_module(loss="nonsaturating", discriminator=None, **kw):
    torch.manual_seed(0)
    return GANModule(
        generator=MLPGenerator(4, [2], hidden=16, layers=2),
        discriminator=discriminator or MLPDiscriminator([2], hidden=16, layers=2),
        loss=make_loss(loss) if isinstance(loss, str) else loss,
        g_optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        d_optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        **kw,
    )


def fit(module, iters, d_steps=1, batch_size=32, **trainer_kw):
    mult = d_steps * module.iters_per_batch
    dm = Ring8DataModule(n_train=2000, n_val=256, batch_size=batch_size, batch_multiplier=mult)
    trainer_kw.setdefault("enable_progress_bar", False)
    trainer = L.Trainer(
        accelerator="cpu", max_steps=iters, max_epochs=-1, logger=False, enable_checkpointing=False,
        enable_model_summary=False, limit_val_batches=0, **trainer_kw,
    )
    trainer.fit(module, datamodule=dm)
    return trainer


def adam_steps(opt):
    return {int(s["step"]) for s in opt.state.values()}


@pytest.mark.parametrize("d_steps,g_steps", [(1, 1), (2, 3)])
def test_global_step_counts_iterations_and_each_network_steps_as_configured(d_steps, g_steps):
    m = make_module(d_steps=d_steps, g_steps=g_steps)
    trainer = fit(m, 7, d_steps=d_steps)
    assert trainer.global_step == 7
    opt_g, opt_d = (o.optimizer for o in m.optimizers())
    assert adam_steps(opt_d) == {7 * d_steps}
    assert adam_steps(opt_g) == {7 * g_steps}


def test_each_discriminator_step_gets_its_own_real_minibatch():
    m = make_module(d_steps=2)
    seen = []
    orig = m._discriminator_step
    m._discriminator_step = lambda opt, real, u: (seen.append(real.clone()), orig(opt, real, u))[1]
    fit(m, 1, d_steps=2, batch_size=16)
    assert len(seen) == 2 and all(s.shape == (16, 2) for s in seen) and not torch.equal(seen[0], seen[1])


def test_gradients_never_leak_between_d_and_g():
    """At each D step G's grads are as the last G step left them, and vice versa."""
    m = make_module()
    snaps = {"g": None, "d": None}
    violations = []
    orig = m._optimizer_step

    def grads(net):
        return [None if p.grad is None else p.grad.clone() for p in net.parameters()]

    def same(a, b):
        return all((x is None and y is None) or (x is not None and y is not None and torch.equal(x, y)) for x, y in zip(a, b))

    def spy(opt, counted):
        is_d = opt.optimizer.param_groups[0]["params"][0] is next(m.discriminator.parameters())
        mine, other = ("d", "g") if is_d else ("g", "d")
        other_net = m.generator if is_d else m.discriminator
        if snaps[other] is not None and not same(grads(other_net), snaps[other]):
            violations.append(f"{mine} step changed {other}'s gradients")
        orig(opt, counted)
        snaps[mine] = grads(m.discriminator if is_d else m.generator)

    m._optimizer_step = spy
    fit(m, 5)
    assert snaps["d"] is not None and snaps["g"] is not None
    assert not violations, violations


def test_non_finite_loss_stops_with_the_iteration_range():
    calls = {"n": 0}

    def poisoned_d_loss(r, f):
        calls["n"] += 1
        out = bce_d_loss(r, f)
        return out * float("nan") if calls["n"] >= 3 else out

    loss = GANLoss("nonsaturating", poisoned_d_loss, nonsaturating_g_loss, sigmoid=True)
    m = make_module(loss=loss, log_every=2)
    with pytest.raises(NonFiniteLossError, match=r"iterations 3\.\.4.*Last good checkpoint"):
        fit(m, 10)


def test_ema_is_a_moving_average_of_generator_weights():
    m = make_module(ema_decay=0.9)
    before = [p.detach().clone() for p in m.generator.parameters()]
    fit(m, 1)
    for e, b, p in zip(m.g_ema.parameters(), before, m.generator.parameters()):
        torch.testing.assert_close(e, 0.9 * b + 0.1 * p.detach())
    assert m.sampling_generator is m.g_ema


def test_the_ema_copy_is_a_shadow_training_ends_with_the_same_networks_without_it():
    """G and D after training with an EMA copy equal those of the same run without one (the copy draws no random
    numbers and feeds nothing back), so a run's raw G can stand for the same recipe trained with ema_decay=null."""
    with_ema, without = make_module(ema_decay=0.9), make_module()
    fit(with_ema, 6), fit(without, 6)
    assert with_ema.sampling_generator is with_ema.g_ema and without.sampling_generator is without.generator
    for net in ("generator", "discriminator"):
        for (k, a), b in zip(getattr(without, net).state_dict().items(), getattr(with_ema, net).state_dict().values()):
            torch.testing.assert_close(b, a, rtol=0, atol=0, msg=f"{net}.{k}")


def test_wgan_clips_discriminator_weights():
    m = make_module(loss="wgan")
    fit(m, 3)
    assert max(p.abs().max().item() for p in m.discriminator.parameters()) <= 0.01 + 1e-7


def test_training_logs_the_theory_quantities():
    m = make_module(log_every=5)
    trainer = fit(m, 10)
    cm = trainer.callback_metrics
    for k in ["train/d_loss", "train/g_loss", "train/d_real", "train/d_fake", "train/jsd_batch"]:
        assert k in cm, k
    assert 0 < cm["train/d_real"] < 1 and 0 < cm["train/d_fake"] < 1
    assert cm["train/jsd_batch"].item() == pytest.approx(0.5 * (math.log(4) - cm["train/d_loss"].item()), rel=1e-5)


@pytest.mark.parametrize(
    "loss_name,r1,every,gp",
    [("nonsaturating", 0.0, 1, None), ("wgan_gp", 0.0, 1, None), ("nonsaturating", 2.0, 1, None), ("nonsaturating", 2.0, 3, None),
     ("nonsaturating", 2.0, 5, None), ("nonsaturating", 0.0, 1, 0.5)],
    ids=["ns", "wgan_gp", "ns-r1", "ns-r1-every3", "ns-r1-every5", "ns-gp"],
)  # fmt: skip
def test_logged_training_metrics_are_the_means_over_the_log_interval(monkeypatch, loss_name, r1, every, gp):
    """Each train/* value is the mean over the log interval of what the loss functions returned; the penalty
    (train/gp or train/r1) before its weight, and d_loss without it. Lazy R1 (r1_every=k) is taken on D updates
    0, k, 2k, ... only, and train/r1 is the mean over those."""
    import dataclasses

    import ganforge.module as gm

    rec = {k: [] for k in ("d_loss", "d_real", "d_fake", "pen", "g_loss")}
    base = make_loss(loss_name, r1_weight=r1, r1_every=every, gp_weight=gp, gp_center=0.0 if gp else 1.0)
    gp_fn, r1_fn = gm.gradient_penalty, gm.r1_penalty
    prob = torch.sigmoid if base.sigmoid else (lambda x: x)

    def d_loss(r, f):
        out = base.d_loss(r, f)
        rec["d_loss"].append(out.item()), rec["d_real"].append(prob(r).mean().item()), rec["d_fake"].append(prob(f).mean().item())
        return out

    def g_loss(f):
        rec["g_loss"].append(base.g_loss(f).item())
        return base.g_loss(f)

    def gp(*a, **kw):
        rec["pen"].append(gp_fn(*a, **kw).item())
        return gp_fn(*a, **kw)

    def r1_pen(*a):
        out = r1_fn(*a)
        rec["pen"].append(out.item())
        return out

    monkeypatch.setattr(gm, "gradient_penalty", gp)
    monkeypatch.setattr(gm, "r1_penalty", r1_pen)
    trainer = fit(make_module(dataclasses.replace(base, d_loss=d_loss, g_loss=g_loss), log_every=3, d_steps=2), 6, d_steps=2)
    cm = trainer.callback_metrics  # the last log: iterations 4..6 = D steps 6..11, G steps 3..5
    pen = "train/gp" if base.gp_weight else "train/r1" if r1 else None
    taken = [u for u in range(12) if u % every == 0] if pen else []  # the D updates that took the penalty
    first_pen = sum(u < 6 for u in taken)
    for k, key, first in (("d_loss", "train/d_loss", 6), ("d_real", "train/d_real", 6), ("d_fake", "train/d_fake", 6), ("pen", pen, first_pen), ("g_loss", "train/g_loss", 3)):
        if rec[k] or key in cm:
            assert cm[key].item() == pytest.approx(sum(rec[k][first:]) / len(rec[k][first:]), rel=1e-5, abs=1e-6), k
    assert {k for k in cm if k in ("train/gp", "train/r1")} == ({pen} - {None}) and len(rec["d_loss"]) == 12 and len(rec["g_loss"]) == 6
    assert len(rec["pen"]) == len(taken)


class _BatchCounter(L.Callback):
    def __init__(self):
        self.steps = []

    def on_train_batch_end(self, trainer, *args):
        self.steps.append(trainer.global_step)


@pytest.mark.parametrize("d_steps", [1, 2])
def test_several_iterations_per_batch_train_exactly_like_one(d_steps):
    """iters_per_batch=4 runs the same iterations on the same data and noise as 1 (within an epoch: the
    batch of 4 x d_steps minibatches is the next 4 x d_steps minibatches of the same permutation), with
    per-iteration EMA, schedulers and logging; Lightning's batch hooks fire once per 4 iterations."""
    sched = functools.partial(torch.optim.lr_scheduler.LinearLR, start_factor=1.0, end_factor=0.1, total_iters=12)
    kw = dict(d_steps=d_steps, ema_decay=0.9, log_every=4, g_scheduler=sched, d_scheduler=sched)
    one, four = make_module(**kw), make_module(**kw, iters_per_batch=4)
    c1, c4 = _BatchCounter(), _BatchCounter()
    t1, t4 = fit(one, 12, d_steps=d_steps, callbacks=[c1]), fit(four, 12, d_steps=d_steps, callbacks=[c4])
    assert t1.global_step == t4.global_step == 12
    assert c1.steps == list(range(1, 13)) and c4.steps == [4, 8, 12]
    for (k, a), b in zip(one.state_dict().items(), four.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6, msg=k)
    for o1, o4, n in zip(one.optimizers(), four.optimizers(), (12, 12 * d_steps)):  # (G, D)
        assert adam_steps(o4.optimizer) == adam_steps(o1.optimizer) == {n}
        assert o4.optimizer.param_groups[0]["lr"] == pytest.approx(o1.optimizer.param_groups[0]["lr"])
    for k in ("train/d_loss", "train/g_loss"):
        assert t4.callback_metrics[k].item() == pytest.approx(t1.callback_metrics[k].item(), abs=1e-6)


def test_max_steps_must_be_a_multiple_of_iters_per_batch():
    with pytest.raises(ValueError, match="not a multiple of iters_per_batch=4"):
        fit(make_module(iters_per_batch=4), 10)


def trained_on_ring(**loss_kw) -> GANModule:
    """A small non-saturating GAN (these loss options) after 40 iterations on ring8, from seed 0: the penalty tests
    compare D's slopes across runs that differ only in the penalty."""
    torch.manual_seed(0)
    m = GANModule(generator=MLPGenerator(4, [2], hidden=16, layers=2), discriminator=MLPDiscriminator([2], hidden=32, layers=2),
                  loss=make_loss("nonsaturating", **loss_kw), g_optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
                  d_optimizer=functools.partial(torch.optim.Adam, lr=1e-2))  # fmt: skip
    fit(m, 40)
    return m


def test_r1_flattens_d_at_the_data():
    """With R1 (gamma 10), D's squared slope at real samples ends far below the same run's without it (same seed,
    data and noise; 79 against 0.02 when written)."""

    def slopes(r1_weight):
        m = trained_on_ring(r1_weight=r1_weight)
        x = Ring8DataModule(batch_size=512).sample(512, torch.Generator().manual_seed(1))[0].requires_grad_(True)
        (g,) = torch.autograd.grad(m.discriminator(x).sum(), x)
        return g.pow(2).sum(1).mean().item()

    plain, r1 = slopes(0.0), slopes(10.0)
    assert r1 < 0.01 * plain, (plain, r1)


def test_zero_centred_gradient_penalty_flattens_d_between_real_and_fake():
    """The 0-GP (loss.gp_weight=10, gp_center=0, Thanh-Tung et al. 2019) penalizes D's slope on the segments from
    G's samples to the data: there it ends far below the same run's without it (same seed, data and noise), and the
    WGAN-GP centre (1) keeps it near 1 instead of near 0 (mean norms 8.6, 0.046 and 0.87 when written)."""

    def slope(**gp):
        m = trained_on_ring(**gp)
        g = torch.Generator().manual_seed(1)
        real = Ring8DataModule(batch_size=512).sample(512, g)[0]
        with torch.no_grad():
            fake = m.generator(m.noise(512))
        x = torch.lerp(fake, real, torch.rand(512, 1, generator=g)).requires_grad_(True)
        (grad,) = torch.autograd.grad(m.discriminator(x).sum(), x)
        return grad.norm(dim=1).mean().item()

    plain, zero, one = slope(), slope(gp_weight=10.0, gp_center=0.0), slope(gp_weight=10.0, gp_center=1.0)
    assert zero < 0.02 * plain and zero < 0.3 < 0.6 < one < 1.4, (plain, zero, one)


def test_lazy_r1_weights_the_updates_that_take_it_r1_every_times():
    """Lazy R1 (r1_every=4, gamma 1): D update 0 takes the penalty at 4x its weight, so one iteration ends with the
    networks of eager R1 at gamma 4 (and not gamma 1); updates 1-3 go without it, as in a run with no R1."""

    def after(iters, **loss_kw):
        m = make_module(make_loss("nonsaturating", **loss_kw))
        fit(m, iters)
        return m.discriminator.state_dict()

    def same(a, b):
        return all(torch.equal(a[k], b[k]) for k in a)

    lazy, eager4, eager1 = after(1, r1_weight=1.0, r1_every=4), after(1, r1_weight=4.0), after(1, r1_weight=1.0)
    assert same(lazy, eager4) and not same(lazy, eager1)
    # no penalty on updates 1..3: four lazy iterations leave D differing from eager gamma 4, which took it every update
    assert not same(after(4, r1_weight=1.0, r1_every=4), after(4, r1_weight=4.0))


def test_the_module_itself_refuses_a_gradient_penalty_with_batchnorm_or_compile():
    """Not only the CLI: code that builds a GANModule directly gets the same one-line refusal, before training."""
    bn_d = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 1))
    with pytest.raises(ValueError, match="BatchNorm in the discriminator"):
        make_module("wgan_gp", discriminator=bn_d)
    with pytest.raises(ValueError, match="set compile=false"):
        make_module("wgan_gp", compile=True)
    make_module("wgan_gp")  # a penalty without BatchNorm or compile builds
    with pytest.raises(ValueError, match="loss.r1_weight penalizes per-sample gradients"):
        make_module(make_loss("nonsaturating", r1_weight=1.0), discriminator=bn_d)
    with pytest.raises(ValueError, match=r"compile=true with loss.r1_weight.*set compile=false"):
        make_module(make_loss("hinge", r1_weight=1.0), compile=True)
    with pytest.raises(ValueError, match="loss.gp_weight penalizes per-sample gradients"):
        make_module(make_loss("nonsaturating", gp_weight=1.0, gp_center=0.0), discriminator=bn_d)
    make_module("nonsaturating", discriminator=bn_d)  # BatchNorm without a penalty builds


class _GradHook(L.Callback):
    def __init__(self):
        self.calls = 0

    def on_after_backward(self, trainer, pl_module):
        self.calls += 1


def test_lean_path_is_used_only_when_lightning_hooks_are_empty_and_trains_identically():
    lean, hooked = make_module(), make_module()
    hook = _GradHook()
    t_lean, t_hooked = fit(lean, 6), fit(hooked, 6, callbacks=[hook])
    assert lean._lean and not hooked._lean
    assert t_lean.global_step == t_hooked.global_step == 6  # the lean path counts the iteration's G step too
    assert hook.calls == 6 * 2  # one D and one G backward per iteration reach the user's hook
    for a, b in zip(lean.state_dict().values(), hooked.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


class _NoProgressCallbacks(L.Callback):
    """A Lightning whose LightningOptimizer lacks the private progress callbacks the lean path calls
    (callbacks' on_train_start runs before the module's, where the lean path is chosen)."""

    def on_train_start(self, trainer, pl_module):
        for o in pl_module.optimizers():
            del o._on_before_step


def test_lean_path_falls_back_to_lightnings_public_step_without_its_private_callbacks():
    m = make_module()
    assert fit(m, 4, callbacks=[_NoProgressCallbacks()]).global_step == 4 and not m._lean


def test_progress_bar_does_its_per_batch_work_only_every_refresh_rate(monkeypatch):
    from lightning.pytorch.callbacks import RichProgressBar

    from ganforge.callbacks import GANProgressBar

    calls = []
    monkeypatch.setattr(RichProgressBar, "on_train_batch_end", lambda self, *a: calls.append(a[-1]))
    fit(make_module(), 12, callbacks=[GANProgressBar(refresh_rate=5)], enable_progress_bar=True)
    # every 5th batch and the last one (plus the end of an epoch, as Lightning counts it), not all 12
    assert {4, 9, 11} <= set(calls) and len(calls) <= 5


def test_progress_bar_counts_iterations_when_a_batch_holds_several(monkeypatch):
    from lightning.pytorch.callbacks import RichProgressBar

    from ganforge.callbacks import GANProgressBar

    bar, shown, totals = GANProgressBar(refresh_rate=1), [], []
    update, add = RichProgressBar._update, RichProgressBar._add_task
    monkeypatch.setattr(RichProgressBar, "_update", lambda self, i, current, **kw: (shown.append((i, current)), update(self, i, current, **kw))[1])
    monkeypatch.setattr(RichProgressBar, "_add_task", lambda self, total, *a, **kw: (totals.append(total), add(self, total, *a, **kw))[1])
    fit(make_module(iters_per_batch=4), 12, callbacks=[bar], enable_progress_bar=True)
    assert [c for i, c in shown if i == bar.train_progress_bar_id] == [4, 8, 12]
    assert totals[0] == 12  # the training bar's total: iterations, not the 3 batches


def test_stock_ddp_is_refused_before_training_with_the_fix():
    from lightning.pytorch.strategies import DDPStrategy

    m = make_module()
    m.trainer = L.Trainer(accelerator="cpu", devices=1, strategy=DDPStrategy(), logger=False)
    with pytest.raises(ValueError, match="GANDDPStrategy"):
        m.setup("fit")


@pytest.mark.parametrize("world", [2, 3])
def test_rank_shares_of_the_global_noise_partition_one_process_draw(world, monkeypatch):
    """Each rank keeps rows rank::world of the same global draw: together they are exactly the draw of one
    process with the global batch, and no two ranks share a row."""
    m = make_module()
    one = torch.randn(5 * world, 4, generator=torch.Generator().manual_seed(1))
    shares = []
    for r in range(world):
        monkeypatch.setattr(GANModule, "_world", property(lambda self: world))
        monkeypatch.setattr(GANModule, "global_rank", property(lambda self, r=r: r))
        m._noise = torch.Generator().manual_seed(1)
        shares.append(m.noise(5))
    assert all(s.shape == (5, 4) for s in shares)
    torch.testing.assert_close(torch.stack(shares, 1).reshape(-1, 4), one, rtol=0, atol=0)


def _fp16_with_grad_scaler():
    """16-mixed with a GradScaler: on a GPU that is `precision="16-mixed"`; on CPU Lightning falls back to
    bf16 (no scaler), so the plugin is built by hand to exercise the scaler here."""
    from lightning.pytorch.plugins.precision import MixedPrecision

    return {"plugins": [MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=256.0))]}


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "16-mixed+scaler"])
def test_grad_clip_bounds_the_true_gradient_under_every_precision(precision):
    """With SGD(lr=1) an update is the clipped gradient, so its norm must be the clip value. Under
    16-mixed the gradients are loss-scaled until the GradScaler unscales them: clipping before that
    would shrink updates by the scale."""
    clip = 1e-3
    m = make_module(grad_clip=clip)
    m._g_opt_factory = m._d_opt_factory = functools.partial(torch.optim.SGD, lr=1.0)
    d0 = torch.cat([p.detach().flatten().clone() for p in m.discriminator.parameters()])
    g0 = torch.cat([p.detach().flatten().clone() for p in m.generator.parameters()])
    fit(m, 1, **(_fp16_with_grad_scaler() if precision == "16-mixed+scaler" else {"precision": precision}))
    d1 = torch.cat([p.detach().flatten() for p in m.discriminator.parameters()])
    g1 = torch.cat([p.detach().flatten() for p in m.generator.parameters()])
    assert (d1 - d0).norm().item() == pytest.approx(clip, rel=0.02)
    assert (g1 - g0).norm().item() == pytest.approx(clip, rel=0.02)


class _RecordingGenerator(MLPGenerator):
    """Remembers the largest |z| it was given."""

    seen = 0.0

    def forward(self, z):
        self.seen = max(self.seen, float(z.abs().max()))
        return super().forward(z)


@pytest.mark.parametrize("dist", ["uniform", "normal"])
def test_training_noise_follows_the_generators_prior(dist):
    torch.manual_seed(0)
    g = _RecordingGenerator(4, [2], hidden=16, layers=2, latent_dist=dist)
    m = GANModule(
        generator=g, discriminator=MLPDiscriminator([2], hidden=16, layers=2), loss=make_loss("nonsaturating"),
        g_optimizer=functools.partial(torch.optim.Adam, lr=1e-3), d_optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
    )
    fit(m, 20, batch_size=64)  # 20 x 64 x 4 draws: a normal prior exceeds |z| = 1 somewhere
    assert (g.seen <= 1) == (dist == "uniform"), g.seen


def test_evaluation_and_sampling_noise_follow_the_generators_prior():
    from ganforge.cli.sample import sample
    from ganforge.metrics.evaluator import Collective, GANEvaluator

    g = _RecordingGenerator(4, [2], hidden=16, layers=2, latent_dist="uniform")
    GANEvaluator(metrics=["modes"], n_samples=3000).generate(g, 3000, torch.device("cpu"), Collective())
    sample(g, 3000)
    assert 0.9 < g.seen <= 1


class _RecordingDiscriminator(MLPDiscriminator):
    def forward(self, x):
        if self.training and torch.is_grad_enabled():
            self.seen.append(x.detach().clone())
        return super().forward(x)


def test_instance_noise_blurs_what_d_sees_with_the_scheduled_std_and_ends_clean():
    d = _RecordingDiscriminator([2], hidden=16, layers=2)
    d.seen = []
    m = make_module(discriminator=d, instance_noise=0.5, instance_noise_iters=4)
    assert [m.instance_noise_std(t) for t in (0, 1, 2, 4, 9)] == [0.5, 0.375, 0.25, 0.0, 0.0]
    clean = []
    orig = m._discriminator_step
    m._discriminator_step = lambda opt, real, u: (clean.append(real.clone()), orig(opt, real, u))[1]
    fit(m, 6, batch_size=1024)
    # per iteration D's forwards: the real batch, the fake batch (D step), the fake batch again (G step)
    reals = d.seen[0::3]
    stds = [float((seen - real).std()) for seen, real in zip(reals, clean)]
    assert stds[:4] == pytest.approx([0.5, 0.375, 0.25, 0.125], rel=0.07) and stds[4:] == [0.0, 0.0]
    with pytest.raises(ConfigError, match="instance_noise=-0.1"):
        make_module(instance_noise=-0.1)
    assert make_module(instance_noise=0.2).instance_noise_std(10**6) == 0.2  # no decay length: constant


def test_instance_noise_schedule_is_piecewise_linear_between_knots_and_refuses_bad_ones():
    m = make_module(instance_noise=[[0, 0.5], [10, 0.0], [20, 0.2], [40, 0.0]])
    got = [m.instance_noise_std(t) for t in (0, 5, 10, 15, 20, 30, 40, 10**6)]
    assert got == pytest.approx([0.5, 0.25, 0.0, 0.1, 0.2, 0.1, 0.0, 0.0])
    assert make_module(instance_noise=[[0, 0.3]]).instance_noise_std(10**6) == 0.3
    # the float form is the knots [[0, s], [N, 0]], with the old decay's values bit for bit
    m = make_module(instance_noise=0.5, instance_noise_iters=50000)
    assert m.noise_knots == [(0, 0.5), (50000, 0.0)]
    assert all(m.instance_noise_std(t) == 0.5 * max(0.0, 1.0 - t / 50000) for t in range(0, 60000, 7))
    for bad in ([[5, 0.5]], [[0, 0.5], [0, 0.1]], [[0, -0.1]], [[0, 0.5, 1]]):
        with pytest.raises(ConfigError, match="a schedule is a list of \\[iteration, std\\] pairs"):
            make_module(instance_noise=bad)
    with pytest.raises(ConfigError, match="instance_noise_iters=null"):
        make_module(instance_noise=[[0, 0.5]], instance_noise_iters=10)
