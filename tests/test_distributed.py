"""Data parallelism on CPU (gloo): DDP and FSDP == one process with the global batch; ddp_spawn; two nodes;
DDP multirun; FSDP checkpoints interchangeable with single-process ones."""

import os
import socket
import subprocess
import sys

import pytest
import torch

from conftest import REPO, run_benchmark

pytestmark = pytest.mark.slow

# ring8 with an MLP G without BatchNorm: the per-rank batch statistics of BatchNorm would differ from
# the global batch's, so weight equality holds only without it (or with trainer.sync_batchnorm=true).
RING = ["dataset=ring8", "model=mlp", "model.generator.batchnorm=false", "dataset.n_train=2048", "dataset.n_val=256"]
COMMON = [*RING, "trainer=cpu", "seed=3", "max_iters=16", "log_every=4", "val_every=8", "ckpt_every=8", "sample_every=0", "logger=csv"]


def state(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def assert_same_weights(a, b, atol=1e-5):
    assert a["global_step"] == b["global_step"]
    sa, sb = a["state_dict"], b["state_dict"]
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sb[k], sa[k], rtol=0, atol=atol, msg=k)


def assert_same_optimizer_states(a, b, atol=1e-5):
    """Both checkpoints hold [G's Adam, D's Adam] in torch's own format (each keyed by its own parameter order)."""
    assert len(a["optimizer_states"]) == len(b["optimizer_states"]) == 2
    for oa, ob in zip(a["optimizer_states"], b["optimizer_states"]):
        assert [g["params"] for g in oa["param_groups"]] == [g["params"] for g in ob["param_groups"]]
        assert oa["state"].keys() == ob["state"].keys()
        for i in oa["state"]:
            for k in ("step", "exp_avg", "exp_avg_sq"):
                torch.testing.assert_close(ob["state"][i][k], oa["state"][i][k], rtol=0, atol=atol, msg=f"{i}.{k}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "extra,strategy",
    [
        (["loss=nonsaturating", "d_steps=2", "g_steps=2"], "ddp"),
        (["loss=wgan_gp"], "ddp_spawn"),
        # FSDP2: sharded G, D and EMA copy; the penalty's double backward and the global gradient-norm clip
        (["loss=wgan_gp", "ema_decay=0.9", "grad_clip=1.0"], "fsdp"),
        # R1: the penalty's gradient taken through the forward pass of the loss, under both wrappings; lazily under
        # FSDP (every 2nd D update: the weights reshard after the updates without it and stay for those with it)
        (["loss=nonsaturating", "loss.r1_weight=1.0"], "ddp"),
        (["loss=nonsaturating", "loss.r1_weight=1.0", "loss.r1_every=2"], "fsdp"),
    ],
    ids=["nonsaturating-k2-ddp", "wgan_gp-ddp_spawn", "wgan_gp-ema-clip-fsdp", "r1-ddp", "lazy-r1-fsdp"],
)
def test_two_ranks_with_batch_b_equal_one_process_with_batch_2b(run_train, tmp_path, extra, strategy):
    """Data, noise and gradient-penalty draws are sharded from global streams and gradients are averaged,
    so 2 ranks x 32 follow the same trajectory as 1 x 64 (up to float summation order)."""
    _, one = run_train(*COMMON, *extra, "dataset.batch_size=64", run_dir=tmp_path / "one")
    # the DDP run also logs to (offline) wandb: one run, from rank 0, at the iterations
    loggers = ["logger=default"] if strategy == "ddp" else ["logger=csv"]
    base = [o for o in COMMON if not o.startswith("logger=")]
    proc, two = run_train(*base, *loggers, *extra, "dataset.batch_size=32", "trainer.devices=2", f"trainer.strategy={strategy}", run_dir=tmp_path / "two")
    assert "Starting with 2 processes" in proc.stdout + proc.stderr
    if strategy == "ddp":
        from ganforge.wandb_records import read_run

        [wb] = [read_run(r) for r in (two / "wandb").glob("offline-run-*")]
        assert wb.exit_code == 0 and [s for s, _ in wb.series("train/d_loss")] == [4, 8, 12, 16]
    a, b = state(one), state(two)
    assert a["global_step"] == 16
    assert_same_weights(a, b)
    assert_same_optimizer_states(a, b)
    # and not trivially: the weights moved between the two checkpoints
    half = torch.load(two / "checkpoints" / "iter_000008.ckpt", weights_only=True)["state_dict"]
    assert not torch.allclose(half["discriminator.net.0.weight"], b["state_dict"]["discriminator.net.0.weight"])
    # evaluation metrics: each rank generated half of the samples, and they were counted once
    ev1, ev2 = (_evals(r) for r in (one, two))
    assert len(ev1) == len(ev2) == 2
    for r1, r2 in zip(ev1, ev2):
        assert r1["val/modes"] == r2["val/modes"] and float(r1["val/hq_frac"]) == pytest.approx(float(r2["val/hq_frac"]), abs=1e-3)
        assert float(r1["val/jsd_probe"]) == pytest.approx(float(r2["val/jsd_probe"]), abs=2e-3)


def _evals(run_dir):
    import csv

    with open(run_dir / "csv" / "metrics.csv") as f:
        return [r for r in csv.DictReader(f) if r.get("val/modes")]


def _fid_rank(rank, world, port, out):
    import torch.distributed as dist

    from ganforge.data.images import DigitsDataModule
    from ganforge.metrics.evaluator import Collective, GANEvaluator

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)

    def gather(t):
        parts = [torch.empty_like(t) for _ in range(world)]
        dist.all_gather(parts, t)
        return torch.stack(parts)

    def reduce(t):
        dist.all_reduce(t)
        return t

    def bcast(o):
        box = [o]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    coll = Collective(rank, world, gather, reduce, bcast) if world > 1 else Collective()
    dm = DigitsDataModule(resolution=32)
    dm.setup()
    torch.manual_seed(0)
    gen = torch.nn.Sequential(torch.nn.Linear(8, 32 * 32), torch.nn.Tanh(), torch.nn.Unflatten(1, (1, 32, 32)))
    gen.latent_dim = 8
    res = GANEvaluator(metrics=["fid", "kid", "jsd_probe"], n_samples=400, probe_steps=100, cache_dir=None).evaluate(gen, dm, "cpu", coll)
    if rank == 0:
        torch.save(res, out)
    dist.destroy_process_group()


def test_image_metrics_from_two_ranks_equal_one_process(tmp_path):
    """FID sums feature statistics over ranks, KID and the probe gather: 2 x 200 samples == 1 x 400."""
    import torch.multiprocessing as mp

    results = []
    for world in (1, 2):
        out = tmp_path / f"w{world}.pt"
        mp.spawn(_fid_rank, args=(world, free_port(), str(out)), nprocs=world, join=True)
        results.append(torch.load(out))
    one, two = results
    assert set(one) == {"fid_lenet", "kid_lenet", "jsd_probe"}
    for k in one:
        assert two[k] == pytest.approx(one[k], rel=1e-6, abs=1e-9), k


def test_two_nodes_of_one_process_each(run_train, tmp_path):
    """trainer.num_nodes=2, played by two local processes with the env a cluster sets (MASTER_*, NODE_RANK)."""
    _, one = run_train(*COMMON, "metrics=none", "dataset.batch_size=64", run_dir=tmp_path / "one")
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), PYTHONUNBUFFERED="1")
    procs = []
    for node in (0, 1):
        cmd = [sys.executable, str(REPO / "train.py"), f"hydra.run.dir={tmp_path / f'node{node}'}", *COMMON, "metrics=none",
               "dataset.batch_size=32", "trainer.num_nodes=2", "trainer.devices=1"]
        procs.append(subprocess.Popen(cmd, cwd=tmp_path, env={**env, "NODE_RANK": str(node)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=300)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    assert all(p.returncode == 0 for p in procs), "\n".join(o[-3000:] for o in outs)
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in outs[1]
    assert_same_weights(state(one), state(tmp_path / "node0"))
    assert not (tmp_path / "node1" / "checkpoints").exists()  # only global rank 0 writes checkpoints


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_ddp_multirun_keeps_each_jobs_ranks_in_that_jobs_dir(tmp_path, strategy):
    """A Hydra multirun of 2 DDP (or FSDP) jobs x 2 processes: no hang between jobs, no stray output folders.
    Samples at iterations 3 and 6 (the last): under FSDP every rank must agree that the end needs no extra picture,
    else rank 1 waits in a collective that rank 0 never joins, and is killed after 120 s."""
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, str(REPO / "train.py"), "-m", "loss=nonsaturating,hinge", *COMMON, "metrics=none", "max_iters=6",
           "ckpt_every=6", "val_every=6", "sample_every=3", "dataset.batch_size=32", "trainer.devices=2", f"trainer.strategy={strategy}",
           f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "terminated with code" not in proc.stdout + proc.stderr  # no rank had to be killed
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1", "multirun.yaml"]
    for job in ("0", "1"):
        d = sweep / job
        assert state(d)["global_step"] == 6
        assert (d / "train_rank1.log").is_file(), sorted(p.name for p in d.iterdir())
        assert sorted(p.name for p in (d / ".hydra").iterdir()) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    losses = [state(sweep / j)["ganforge"]["config"]["loss"]["name"] for j in ("0", "1")]
    assert losses == ["nonsaturating", "hinge"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"]  # nothing written next to it (no outputs/)


def _start(tmp_path, run_dir, *overrides):
    cmd = [sys.executable, str(REPO / "train.py"), f"hydra.run.dir={run_dir}", *overrides]
    return subprocess.Popen(cmd, cwd=tmp_path, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path, proc, timeout=180):
    import time

    t0 = time.monotonic()
    while not path.exists():
        if proc.poll() is not None or time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"{path} never appeared:\n{proc.communicate()[1][-3000:]}")
        time.sleep(0.05)


@pytest.mark.parametrize("devices", [1, 2], ids=["1proc", "ddp-2proc"])
def test_sigterm_saves_a_checkpoint_that_resumes_exactly(run_train, tmp_path, devices):
    """SIGTERM mid-run (pre-emption) -> last.ckpt at a whole iteration, exit 143; `ckpt_path=last` in the same
    run dir resumes, and the result equals an uninterrupted run."""
    import signal

    args = [*COMMON, "metrics=none", "max_iters=300", "ckpt_every=1000", "sample_every=20", "val_every=1000", "dataset.batch_size=32", f"trainer.devices={devices}"]
    _, full = run_train(*args, run_dir=tmp_path / "full")
    run = tmp_path / "cut"
    proc = _start(tmp_path, run, *args)
    _wait_for(run / "samples" / "iter_000040.png", proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    step = state(run)["global_step"]
    assert 40 <= step < 300, step
    assert f"SIGTERM: saved iteration {step} to {run / 'checkpoints' / 'last.ckpt'}" in err
    resumed, _ = run_train(*args, "ckpt_path=last", run_dir=run)
    assert "resuming from" in resumed.stderr + resumed.stdout
    assert_same_weights(state(full), state(run), atol=1e-6 if devices == 1 else 1e-5)


def test_fsdp_and_single_process_checkpoints_resume_each_other_exactly(run_train, tmp_path):
    """A run can move between one process and FSDP at any checkpoint: 8 iterations on one side, 8 more on the
    other (either way) equal 16 on one process. Also covers the noise-RNG restore, which FSDP (restoring after
    set-up) does later than other strategies, and sampling from an FSDP-written checkpoint."""
    args = [*COMMON, "metrics=none", "ema_decay=0.9", "val_every=0", "sample_every=0"]
    one, fsdp = ["dataset.batch_size=64"], ["dataset.batch_size=32", "trainer.devices=2", "trainer.strategy=fsdp"]
    _, ref = run_train(*args, *one, "max_iters=16", run_dir=tmp_path / "ref")
    for first, second, name in ((one, fsdp, "one-then-fsdp"), (fsdp, one, "fsdp-then-one")):
        run = tmp_path / name
        run_train(*args, *first, "max_iters=8", run_dir=run)
        proc, _ = run_train(*args, *second, "max_iters=16", "ckpt_path=last", run_dir=run)
        assert "resuming from" in proc.stderr + proc.stdout
        assert_same_weights(state(ref), state(run))
        assert_same_optimizer_states(state(ref), state(run))
    out = tmp_path / "s.npz"
    cmd = [sys.executable, "-m", "ganforge.sample", f"ckpt_path={tmp_path / 'one-then-fsdp' / 'checkpoints' / 'last.ckpt'}", "n=50", f"out={out}"]
    assert subprocess.run(cmd, capture_output=True, timeout=120).returncode == 0
    import numpy as np

    assert np.load(out)["x"].shape == (50, 2)


def test_fsdp_trains_dcgan_with_batchnorm_in_bf16(run_train, tmp_path):
    """The image path under FSDP: DCGAN (BatchNorm in G and D, per-rank statistics) in bf16-mixed, the sample
    grid drawn by both ranks (a sharded forward is a collective) and written by rank 0."""
    proc, run = run_train(
        "model=dcgan", "trainer=cpu", "max_iters=4", "log_every=2", "val_every=2", "ckpt_every=2", "sample_every=2",
        "logger=csv", "metrics=none", "dataset.batch_size=16", "trainer.devices=2", "trainer.strategy=fsdp",
        "trainer.precision=bf16-mixed",
    )
    assert "Starting with 2 processes" in proc.stdout + proc.stderr
    assert "terminated with code" not in proc.stdout + proc.stderr  # rank 1 ended with rank 0, not killed
    assert state(run)["global_step"] == 4
    assert (run / "samples" / "iter_000004.png").is_file()
    assert not list(run.glob("**/*.tmp"))


def test_ddp_scaling_benchmark_runs_and_reports_efficiency_and_ratio():
    out = run_benchmark("ddp_scaling.py", "--workload", "ring8", "--iters", "10", "--rounds", "1", "--warmup", "2")
    assert "scaling efficiency" in out and "ratio ganforge/plain DDP" in out
