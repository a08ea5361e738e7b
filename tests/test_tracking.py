"""Tracking: wandb mode/naming rules, the offline-record reader, what a training run sends to wandb
(read back from the run's .wandb file), resume into the same wandb run, multirun groups, report.html."""

import csv
import json
import math
import os
import re
import subprocess
import sys

import pytest
import torch

from conftest import REPO
from ganforge.config import ConfigError
from ganforge.report import main as report_main
from ganforge.report import read_metrics, write_report
from ganforge.tracking import flatten, resolve_mode, run_identity, run_name
from ganforge.wandb_records import CorruptRecord, iter_records, read_run

RING = ["dataset=ring8", "model=mlp", "dataset.n_train=1024", "dataset.n_val=256", "metrics=none"]


# ------------------------------------------------------------------ rules
def test_mode_is_online_only_with_credentials(tmp_path):
    nothing = {"NETRC": str(tmp_path / "none")}
    assert resolve_mode("auto", nothing) == "offline"
    assert resolve_mode("auto", {**nothing, "WANDB_API_KEY": "x" * 40}) == "online"
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    netrc.chmod(0o600)
    assert resolve_mode("auto", {"NETRC": str(netrc)}) == "online"
    assert resolve_mode("auto", {"NETRC": str(netrc), "WANDB_BASE_URL": "https://wandb.example.org"}) == "offline"
    assert resolve_mode("auto", {**nothing, "WANDB_MODE": "disabled"}) == "disabled"
    assert resolve_mode("offline", {"WANDB_API_KEY": "x" * 40}) == "offline"
    with pytest.raises(ConfigError, match="logger.wandb.mode=sometimes is not one of auto, online, offline, disabled"):
        resolve_mode("sometimes", nothing)


def test_run_names_come_from_the_overrides():
    groups = ["model", "loss", "dataset"]
    overrides = ["model=dcgan", "loss=hinge", "seed=1", "paths.output_dir=/x", "logger=csv", "ckpt_path=last", "metrics=none", "val_every=5"]
    assert run_name(overrides, groups) == "dcgan-hinge-seed1"
    assert run_name(["optim.generator.lr=2e-4", "+trainer.precision=16-mixed"], groups) == "lr2e-4-precision16-mixed"
    assert run_name([], groups, fallback="digits-dcgan") == "digits-dcgan"
    job = {
        "overrides": ["loss=wgan_gp", "seed=2"],
        "choices": {"dataset": "ring8", "model": "mlp", "loss": "wgan_gp", "experiment": "ring8"},
        "sweep_dir": "multirun/2026-11-25/10-00-00",
    }
    assert run_identity(job) == {"name": "wgan_gp-seed2", "group": "2026-11-25_10-00-00", "tags": ["experiment:ring8"]}
    assert run_identity({"choices": {"dataset": "digits", "model": "dcgan", "loss": "hinge"}})["name"] == "digits-dcgan-hinge"


def test_flatten_makes_each_setting_a_column():
    assert flatten({"optim": {"generator": {"lr": 1e-3}}, "seed": 0, "empty": {}}) == {"optim.generator.lr": 1e-3, "seed": 0, "empty": {}}


# ------------------------------------------------------------------ the record reader
def _offline_run(tmp_path, **init):
    import wandb

    run = wandb.init(mode="offline", project="t", dir=str(tmp_path), settings=wandb.Settings(silent=True), **init)
    run.define_metric("trainer/global_step")
    run.define_metric("train/*", step_metric="trainer/global_step")
    for i in range(300):  # enough to cross several 32 KiB blocks
        run.log({"train/x": i / 7, "trainer/global_step": 10 * i, "train/text": "y" * (i % 200)})
    run.finish()
    wandb.teardown()  # finish() may return before wandb's service has written the last records
    return next(tmp_path.glob("wandb/offline-run-*"))


def test_reader_round_trips_what_wandb_wrote(tmp_path):
    run_dir = _offline_run(tmp_path, name="n", group="g", tags=["a"], config={"opt": {"lr": 0.1}, "seed": 3})
    assert (run_dir / next(run_dir.glob("*.wandb")).name).stat().st_size > 3 * 32768
    run = read_run(run_dir)
    assert (run.name, run.group, run.tags, run.exit_code) == ("n", "g", ["a"], 0)
    assert run.config == {"opt": {"lr": 0.1}, "seed": 3}
    assert run.series("train/x") == [(10 * i, i / 7) for i in range(300)]
    assert run.metrics["train/*"] == "trainer/global_step"


def test_reader_rejects_a_corrupted_file(tmp_path):
    f = next(_offline_run(tmp_path).glob("*.wandb"))
    data = bytearray(f.read_bytes())
    data[40000] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(CorruptRecord, match="bad checksum"):
        list(iter_records(f))
    f.write_bytes(b"not a wandb file at all")
    with pytest.raises(CorruptRecord, match="not a wandb run file"):
        list(iter_records(f))


# ------------------------------------------------------------------ the report
def _fake_run_dir(tmp_path):
    (tmp_path / "csv").mkdir()
    rows = [{"step": s, "train/d_loss": 1.0 / s, "train/g_loss": s / 10, "train/jsd_batch": 0.1} for s in (10, 20, 30)]
    # the resumed segment re-logs iteration 20 (from its checkpoint): its value wins
    resumed = [dict(rows[1], **{"train/d_loss": 0.5}), rows[2], {"step": 30, "val/fid_lenet": 5.0}]
    for name, part in (("metrics.part0.csv", rows[:2]), ("metrics.csv", resumed)):
        with open(tmp_path / "csv" / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["step", "train/d_loss", "train/g_loss", "train/jsd_batch", "val/fid_lenet"])
            w.writeheader()
            w.writerows(part)
    return tmp_path


def test_report_merges_resumed_segments_and_draws_what_was_logged(tmp_path):
    run = _fake_run_dir(tmp_path)
    series = read_metrics(run)
    assert series["train/d_loss"] == [(10, 0.1), (20, 0.5), (30, 1 / 30)]
    assert series["val/fid_lenet"] == [(30, 5.0)]
    text = write_report(run).read_text()
    assert text.count("<img") == 3  # losses, JSD, FID panels; no samples, no D outputs
    assert "Losses" in text and "Fréchet distance" in text and "Discriminator outputs" not in text
    assert re.search(r"<td>val/fid_lenet</td><td>30</td><td>5</td>", text)


def test_report_cli_on_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert report_main([str(tmp_path)]) == 2
    assert "is it a ganforge run dir" in capsys.readouterr().err


# ------------------------------------------------------------------ real runs, read back
def _wandb_run(run_dir):
    runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert runs, f"no offline wandb run under {run_dir}"
    return [read_run(r) for r in runs]


@pytest.mark.slow
def test_default_run_logs_config_curves_and_pictures_to_offline_wandb(run_train):
    proc, run_dir = run_train(*RING, "loss=minimax", "max_iters=40", "log_every=10", "val_every=20", "sample_every=20", "ckpt_every=20")
    out = proc.stdout + proc.stderr
    assert len(re.findall(r"wandb: offline run in .*; upload it later with: wandb sync ", out)) == 1
    [run] = _wandb_run(run_dir)
    assert run.name == "ring8-mlp-n_train1024-n_val256-minimax-max_iters40" and run.exit_code == 0 and run.project == "ganforge"
    # the resolved config, flat, with the parameter counts, the commit and the command line
    assert run.config["loss.name"] == "minimax" and run.config["model.name"] == "mlp" and run.config["max_iters"] == 40
    assert run.config["params/generator"] > 1000 and run.config["params/discriminator"] > 1000
    assert "train.py" in run.config["run/command"] and "loss=minimax" in run.config["run/command"]
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", run.config.get("run/git_commit", "")), "not a git checkout?"
    # what can change the numbers without changing the config: torch's threads, as wandb and status.json have them
    env = json.loads((run_dir / "status.json").read_text())["run"]
    assert env["omp_num_threads"] == os.environ.get("OMP_NUM_THREADS", "unset") and env["torch"] == torch.__version__
    assert env["threads"] == run.config["run/threads"] == (os.environ.get("OMP_NUM_THREADS") or env["threads"]) and int(env["threads"]) >= 1
    assert env["git_commit"] == run.config["run/git_commit"]
    # curves against iterations, equal to what the CSV logger got
    assert run.metrics["train/*"] == run.metrics["val/*"] == "trainer/global_step"
    csv_rows = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))
    csv_d = [(int(r["step"]), float(r["train/d_loss"])) for r in csv_rows if r["train/d_loss"]]
    assert [(s, pytest.approx(v)) for s, v in run.series("train/d_loss")] == csv_d
    assert [s for s, _ in csv_d] == [10, 20, 30, 40]
    assert all(0 <= v <= 1 for key in ("train/d_real", "train/d_fake") for _, v in run.series(key))  # sigmoid D
    # (V + log 4) / 2 <= log 2 since log D <= 0; below 0 when D is worse than chance on held-out data
    assert all(math.isfinite(v) and v <= math.log(2) + 1e-6 for _, v in run.series("val/jsd_d"))
    assert [s for s, _ in run.series("val/d_loss")] == [20, 40] and all(math.isfinite(v) for _, v in run.series("val/d_loss"))
    # the 2D scatter pictures, as wandb images at their iteration
    pics = [(s, v) for s, v in run.series("samples/filenames")]
    assert [s for s, _ in pics] == [20, 40]
    media = next((run_dir / "wandb").glob("offline-run-*")) / "files"
    assert all((media / v[0]).is_file() for _, v in pics)
    # the run report
    report = (run_dir / "report.html").read_text()
    assert report.count("<img") >= 4 and "train/d_loss" in report
    assert "report" in out and str(run_dir / "report.html") in out


@pytest.mark.slow
def test_resume_continues_the_same_wandb_run(run_train, tmp_path):
    common = [*RING, "log_every=5", "val_every=100", "sample_every=0", "ckpt_every=10"]
    _, first = run_train(*common, "max_iters=10", run_dir=tmp_path / "first")
    _, second = run_train(*common, "max_iters=20", f"ckpt_path={first}/checkpoints/last.ckpt", run_dir=tmp_path / "second")
    [a], [b] = _wandb_run(first), _wandb_run(second)
    assert a.id == b.id
    assert [s for s, _ in a.series("train/d_loss")] == [5, 10]
    assert [s for s, _ in b.series("train/d_loss")] == [15, 20]
    # and in place (a requeued job): same id again, the earlier CSV segment kept for the report
    run_train(*common, "max_iters=30", "ckpt_path=last", run_dir=second)
    runs = _wandb_run(second)
    assert len(runs) == 2 and {r.id for r in runs} == {a.id}
    assert [s for s, _ in read_metrics(second)["train/d_loss"]] == [15, 20, 25, 30]


@pytest.mark.slow
def test_multirun_jobs_get_their_own_finished_runs_in_one_group(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, str(REPO / "train.py"), "-m", *RING, "max_iters=4", "log_every=2", "val_every=4", "sample_every=0",
           "ckpt_every=4", "seed=0,1", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [r for job in ("0", "1") for r in _wandb_run(sweep / job)]
    assert [r.name for r in runs] == [f"ring8-mlp-n_train1024-n_val256-max_iters4-seed{i}" for i in (0, 1)]
    assert len({r.id for r in runs}) == 2
    assert runs[0].group == runs[1].group and runs[0].group.endswith("sweep")
    assert all(r.exit_code == 0 for r in runs)
    assert "There is a wandb run already in progress" not in proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("logger", ["none", "tensorboard", "many"])  # wandb (+csv): every other test here
def test_other_logger_choices_still_train(run_train, logger):
    proc, run_dir = run_train(*RING, "max_iters=4", "log_every=2", "val_every=4", "sample_every=4", "ckpt_every=4", f"logger={logger}")
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "wandb").is_dir() == (logger == "wandb")
    assert (run_dir / "csv" / "metrics.csv").is_file() == (logger == "many")
    assert (run_dir / "tensorboard").is_dir() == (logger in ("tensorboard", "many"))
    # the report needs the CSV metrics; without them it still shows the samples
    assert (run_dir / "report.html").is_file()
