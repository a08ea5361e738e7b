"""Sweeps: Hydra multirun with the basic, joblib and submitit_local launchers, an Optuna search, the
summary over a sweep with a failed job, and a resumed sweep that skips its finished jobs."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import REPO
from ganforge.sweeps import Job, format_table, load_jobs, summarize
from ganforge.sweeps import main as sweep_main

TINY = ["dataset=ring8", "model=mlp", "dataset.n_train=512", "dataset.n_val=256", "logger=csv", "max_iters=6", "log_every=3",
        "val_every=6", "ckpt_every=3", "sample_every=0", "metrics.names=[modes,jsd_probe]", "metrics.probe_steps=50"]


def multirun(tmp_path, *overrides, check=True, timeout=600):
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, str(REPO / "train.py"), "-m", *TINY, *overrides, f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=dict(os.environ))
    if check and proc.returncode != 0:
        raise AssertionError(f"multirun failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc, sweep


def statuses(sweep):
    return {j.dir.name: j.status for j in load_jobs(sweep)}


# ------------------------------------------------------------------ summary (unit)
def _job(tmp_path, name, overrides, status, **metrics):
    return Job(tmp_path / name, overrides, status, metrics, "boom" if status == "failed" else "")


def test_summary_groups_seeds_and_shows_failures(tmp_path):
    jobs = [
        _job(tmp_path, "0", {"loss": "hinge", "seed": "0"}, "completed", **{"val/modes": 8.0}),
        _job(tmp_path, "1", {"loss": "hinge", "seed": "1"}, "completed", **{"val/modes": 6.0}),
        _job(tmp_path, "2", {"loss": "wgan", "seed": "0"}, "completed", **{"val/modes": 5.0}),
        _job(tmp_path, "3", {"loss": "wgan", "seed": "1"}, "failed"),
    ]
    metrics, rows = summarize(jobs)
    assert metrics == ["val/modes"]
    hinge, wgan = rows
    assert hinge["config"] == "loss=hinge" and hinge["val/modes"] == pytest.approx((7.0, 2**0.5, 2))
    assert (wgan["completed"], wgan["failed"], wgan["val/modes"]) == (1, 1, (5.0, 0.0, 1))
    table = format_table(metrics, rows, jobs)
    assert "7 ± 1.4" in table and "1/2 (1 failed)" in table and "job 3 (loss=wgan seed=1): failed: boom" in table


def test_summary_cli_on_a_directory_without_jobs(tmp_path, capsys):
    assert sweep_main([str(tmp_path)]) == 2
    assert "holds no Hydra job directories" in capsys.readouterr().err


# ------------------------------------------------------------------ real sweeps


@pytest.mark.slow
def test_basic_multirun_2x2_with_a_failed_job_and_its_summary(tmp_path, capsys):
    # pack=3 does not divide the batch of 64: those jobs fail (one-line ConfigError), the others go on
    proc, sweep = multirun(tmp_path, "loss=nonsaturating,hinge", "pack=1,3", check=False)
    assert proc.returncode != 0  # Hydra reports the failure at the end of the sweep
    st = statuses(sweep)
    assert sorted(st.values()) == ["completed", "completed", "failed", "failed"], st
    failed = [j for j in load_jobs(sweep) if j.status == "failed"]
    assert all("not a multiple of pack=3" in j.error for j in failed)
    assert sweep_main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "loss=hinge pack=1" in out and "0/1 (1 failed)" in out and "val/modes" in out
    assert out.splitlines()[0].startswith("fixed: dataset=ring8 model=mlp")
    rows = (sweep / "sweep_summary.csv").read_text().splitlines()
    assert len(rows) == 5 and sum(",failed," in r for r in rows) == 2
    assert (sweep / "sweep_summary.png").stat().st_size > 5000


@pytest.mark.slow
def test_resumed_sweep_skips_finished_jobs_and_continues_interrupted_ones(tmp_path):
    _, sweep = multirun(tmp_path, "seed=0,1")
    assert statuses(sweep) == {"0": "completed", "1": "completed"}
    # job 1 as a pre-emption leaves it: last.ckpt at iteration 3, status interrupted
    job1 = sweep / "1"
    shutil.copyfile(job1 / "checkpoints" / "iter_000003.ckpt", job1 / "checkpoints" / "last.ckpt")
    st = json.loads((job1 / "status.json").read_text())
    (job1 / "status.json").write_text(json.dumps({**st, "status": "interrupted", "metrics": {}}))
    ckpt0 = (sweep / "0" / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    proc, _ = multirun(tmp_path, "seed=0,1")
    out = proc.stdout + proc.stderr
    assert "completed earlier, skipping" in out
    assert f"resuming from {job1 / 'checkpoints' / 'last.ckpt'}" in out
    assert (sweep / "0" / "checkpoints" / "last.ckpt").stat().st_mtime_ns == ckpt0
    assert statuses(sweep) == {"0": "completed", "1": "completed"}
    # the same sweep dir with other overrides is refused, not overwritten
    proc, _ = multirun(tmp_path, "seed=5,6", check=False)
    assert proc.returncode != 0 and "holds a run of other overrides" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_joblib_launcher_runs_two_jobs_in_parallel(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    _, sweep = multirun(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1")
    assert statuses(sweep) == {"0": "completed", "1": "completed"}


@pytest.mark.slow
def test_submitit_local_launcher(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    _, sweep = multirun(tmp_path, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "seed=0")
    assert statuses(sweep) == {"0": "completed"}
    assert list((sweep / ".submitit").iterdir())


@pytest.mark.slow
def test_optuna_search_runs_three_trials_and_reports_the_best(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    _, sweep = multirun(tmp_path, "hparams_search=optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.n_startup_trials=3",
                        "optimized_metric=val/jsd_probe")
    jobs = load_jobs(sweep)
    assert [j.status for j in jobs] == ["completed"] * 3
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    values = [j.metrics["val/jsd_probe"] for j in jobs]
    assert best["best_value"] == pytest.approx(min(values), rel=1e-6)
    assert set(best["best_params"]) == {"optim.generator.lr", "optim.discriminator.lr", "optim.generator.betas.0",
                                        "optim.discriminator.betas.0", "d_steps"}
    # re-run into the same dir: the seeded sampler proposes the same trials, which are found completed
    proc, _ = multirun(tmp_path, "hparams_search=optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.n_startup_trials=3",
                       "optimized_metric=val/jsd_probe")
    assert (proc.stdout + proc.stderr).count("completed earlier, skipping") == 3
    assert yaml.safe_load((sweep / "optimization_results.yaml").read_text())["best_value"] == best["best_value"]


def test_slurm_launcher_is_sized_from_the_trainer_settings():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=slurm", "trainer=gpu", "trainer.devices=4", "trainer.num_nodes=2",
                                "hydra.launcher.partition=gpu"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.partition == "gpu"
    # one SLURM task per device (each a Lightning rank), on trainer.num_nodes nodes
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)


def test_a_missing_sweep_plugin_is_named_with_the_install_command(monkeypatch, capsys):
    from ganforge.cli import train

    monkeypatch.setitem(train.PLUGINS, "hydra/launcher=joblib", "hydra_plugins.no_such_launcher")
    with pytest.raises(SystemExit) as e:
        train.check_plugins(["-m", "hydra/launcher=joblib", "seed=0,1"])
    assert e.value.code == 2
    assert "hydra/launcher=joblib needs the Hydra plugin no-such-launcher: pip install" in capsys.readouterr().err
    train.check_plugins(["hparams_search=optuna"])  # installed here: no error
