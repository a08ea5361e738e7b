"""PacGAN's Table 1 protocol: the paper's networks, the batch of packed groups, and the one-command benchmark."""

import csv
import math
import os
import re
import subprocess
import sys

import pytest
import torch

from conftest import REPO
from ganforge.models import MLPDiscriminator, MLPGenerator
from ganforge.models.mlp import Maxout
from ganforge.toy_benchmark import (
    PUBLISHED,
    RunResult,
    evaluate_run,
    extra_overrides,
    mean_se,
    method_label,
    modes_held,
    sweep_command,
    table,
    write_outputs,
)


def test_maxout_is_the_max_over_pieces_of_one_linear_map():
    torch.manual_seed(0)
    m = Maxout(3, 4, pieces=5)
    x = torch.randn(7, 3)
    full = m.linear(x).reshape(7, 4, 5)
    assert torch.equal(m(x), full.max(-1).values)
    with pytest.raises(ValueError, match="at least 2 pieces"):
        Maxout(3, 4, pieces=1)


def test_pacgan_discriminator_sizes_follow_the_paper():
    # fjxmlzn/PacGAN synthetic_data_experiments: 3 maxout layers (200 units x 5 pieces) on 2 * pack inputs, linear out
    for pack in (1, 4):
        d = MLPDiscriminator([2], hidden=200, layers=3, pack=pack, maxout=5, init_std=0.02)
        expected = (2 * pack * 1000 + 1000) + 2 * (200 * 1000 + 1000) + 201
        assert sum(p.numel() for p in d.parameters()) == expected
        assert d(torch.randn(8 * pack, 2)).shape == (8,)
    g = MLPGenerator(2, [2], hidden=400, layers=4, batchnorm=True, init_std=0.02)
    w = [m.weight for m in g.modules() if isinstance(m, torch.nn.Linear)]
    assert len(w) == 5 and all(abs(float(x.std()) - 0.02) < 0.004 for x in w[1:-1])


def test_the_experiment_batches_100_packed_groups(tmp_path):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", ["experiment=pacgan_toy", "pack=3", "dataset=grid25", f"paths.output_dir={tmp_path}"])
    assert cfg.dataset.batch_size == 300 and cfg.dataset.name == "grid25"
    assert cfg.model.discriminator.maxout == 5 and cfg.optim.generator.betas[0] == 0.8
    assert cfg.metrics.n_samples == 2500 and list(cfg.metrics.names) == ["modes"]


def test_sweep_runs_the_seeds_asked_for(tmp_path):
    cmd = sweep_command("ganforge", ["ring8", "grid25"], range(10, 13), tmp_path, 2, ["max_iters=20"])
    assert "seed=10,11,12" in cmd and "dataset=ring8,grid25" in cmd and "experiment=modes_best" in cmd
    assert cmd[-2:] == ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"] and "max_iters=20" in cmd


def test_the_recipe_sets_packing_length_and_learning_rate_floor_per_dataset(tmp_path):
    """(pack, batch, iterations, both schedulers' length, both floors, latent size and prior, ..., the gradient penalty)
    per dataset; the command line overrides them."""
    from hydra import compose, initialize_config_dir

    from ganforge.losses import make_loss

    def recipe(*overrides):
        cfg = compose("train", ["experiment=modes_best", *overrides, f"paths.output_dir={tmp_path}"])
        sch = (cfg.optim.g_scheduler, cfg.optim.d_scheduler)
        return cfg.pack, cfg.dataset.batch_size, cfg.max_iters, cfg.trainer.max_steps, *(s.total_iters for s in sch), *(s.end_factor for s in sch), cfg.model.generator.latent_dim, cfg.jacobian_truncation, cfg.instance_noise, cfg.instance_noise_iters, cfg.ema_decay, cfg.model.generator.latent_dist, cfg.loss.gp_weight, cfg.loss.gp_center

    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        got = {ds: recipe(f"dataset={ds}") for ds in ("ring8", "grid25", "gaussian1d")}
        got["override"] = recipe("dataset=grid25", "pack=2", "max_iters=2000", "optim.lr_end_factor=0.05", "model.generator.latent_dim=3",
                                  "model.generator.latent_dist=normal", "loss.gp_weight=0")
        # the 0-GP only where it was tested (grid25, non-saturating loss); elsewhere null = the loss's own penalty
        built = [make_loss(**compose("train", ["experiment=modes_best", *ov, f"paths.output_dir={tmp_path}"]).loss)
                 for ov in (["dataset=ring8"], ["dataset=grid25"], ["dataset=ring8", "loss=wgan_gp"], ["dataset=grid25", "loss=wgan_gp"],
                            ["dataset=grid25", "loss=hinge"])]  # fmt: skip
    assert got == {
        "ring8": (4, 512, 30000, 30000, 30000, 30000, 0.1, 0.1, 2, 0.05, 0.0, 50000, 0.0, "normal", None, 1.0),
        "grid25": (6, 768, 150000, 150000, 150000, 150000, 0.01, 0.01, 2, 0.05, 0.5, 50000, 0.0, "uniform", 0.03, 0.0),
        "gaussian1d": (4, 512, 100000, 100000, 100000, 100000, 0.01, 0.01, 2, 0.0, 0.0, 50000, 0.999, "normal", None, 1.0),
        "override": (2, 256, 2000, 2000, 2000, 2000, 0.05, 0.05, 3, 0.05, 0.5, 50000, 0.0, "normal", 0, 0.0),
    }
    assert [(b.name, b.gp_weight, b.gp_center, b.penalty) for b in built] == [
        ("nonsaturating", 0.0, 1.0, None), ("nonsaturating", 0.03, 0.0, "gp"), ("wgan_gp", 10.0, 1.0, "gp"), ("wgan_gp", 10.0, 1.0, "gp"),
        ("hinge", 0.0, 1.0, None)]


def test_mean_and_standard_error():
    m, se = mean_se([1.0, 2.0, 3.0, 4.0, float("nan")])
    assert m == 2.5 and se == pytest.approx(math.sqrt(5 / 3) / 2)
    assert math.isnan(mean_se([5.0])[1]) and math.isnan(mean_se([])[0])


def test_table_shows_published_rows_beside_ours_and_counts_failures():
    rs = [RunResult("gan", "ring8", 0, "completed", 8, 99.0, 0.01, 0.5), RunResult("gan", "ring8", 1, "completed", 6, 97.0, 0.03, 0.7),
          RunResult("gan", "ring8", 2, "failed")]  # fmt: skip
    t = table(rs, ["gan"], ["ring8"])
    assert all(label in t for label in PUBLISHED) and "| 0.07 ± 0.02 | – | 10 |" in t  # no published mode width
    assert "| 7.0 ± 1.0 | 98.0 ± 1.0% | 0.020 ± 0.010 | 0.60 ± 0.10 | 2/3 |" in t
    # a run stopped early (SIGTERM) is scored only when asked (--stopped), and the count says so
    rs[2] = RunResult("gan", "ring8", 2, "interrupted", 7, 98.0, 0.02, 0.6)
    assert "| 7.0 ± 0.6 | 98.0 ± 0.6% | 0.020 ± 0.006 | 0.60 ± 0.06 | 3 (1 stopped early) |" in table(rs, ["gan"], ["ring8"])


def test_a_candidates_runs_are_labelled_with_the_overrides_they_added():
    """Runs trained with extra overrides (a candidate's change) are not shown under the bare recipe's name: the row
    and the figures name what they added; bookkeeping (dataset, seed, logger, a resume, how often it records,
    hydra.*) is left out."""
    ov = ["experiment=modes_best", "dataset=grid25", "seed=128", "logger=csv", "loss.gp_weight=0.1", "loss.gp_center=0",
          "hydra.launcher.n_jobs=2", "hydra/launcher=joblib", "+hydra.job.env_set.X=1", "ckpt_path=last", "val_every=5000"]  # fmt: skip
    assert extra_overrides(ov, "ganforge") == ("loss.gp_weight=0.1", "loss.gp_center=0")
    assert extra_overrides(["experiment=pacgan_toy", "pack=3", "dataset=ring8", "seed=0"], "pacgan3") == ()
    cand = RunResult("ganforge", "grid25", 128, "completed", 25, 99.0, 0.01, 0.6, extra=("loss.gp_weight=0.1", "loss.gp_center=0"))
    plain = RunResult("gan", "grid25", 0, "completed", 20, 95.0, 0.3, 0.8)
    t = table([cand, plain], ["ganforge", "gan"], ["grid25"])
    assert "| **ganforge recipe** (`experiment=modes_best`) + `loss.gp_weight=0.1 loss.gp_center=0` | 25.0 |" in t
    assert "| GAN (ganforge, paper's setup) | 20.0 |" in t
    assert method_label("ganforge", [cand], markdown=False) == "ganforge recipe (experiment=modes_best) + loss.gp_weight=0.1 loss.gp_center=0"
    other = RunResult("ganforge", "grid25", 129, "completed", 25, 99.0, 0.01, 0.6, extra=("loss.gp_weight=1.0",))
    assert method_label("ganforge", [cand, other]).endswith("+ `loss.gp_weight=0.1 loss.gp_center=0` / `loss.gp_weight=1.0`")


def test_table_times_only_runs_that_ended(tmp_path):
    """Summarizing a sweep still training: the run in progress has no run time yet and is named, not averaged in as 0 s."""
    def run(seed, status, start, end):
        return RunResult("gan", "ring8", seed, status, 8, 99.0, 0.01, 0.5, wall_s=(end - start) * 60.0,
                         span=(f"2026-12-06T04:{start:02d}:00", f"2026-12-06T04:{end:02d}:00"))  # fmt: skip
    rs = [run(0, "completed", 0, 10), run(1, "completed", 0, 12), run(2, "running", 10, 10)]
    text = write_outputs(rs, ["gan"], ["ring8"], tmp_path, "cmd")
    assert "Wall time: 12.0 min from the first run's start to the last run's end (runs: 22.0 min in all" in text
    assert "mean per run: gan/ring8 660 s; 1 run still running, not counted." in text
    assert "not counted" not in write_outputs(rs[:2], ["gan"], ["ring8"], tmp_path, "cmd")


def test_a_mode_counted_on_the_protocols_samples_but_not_held_is_named(tmp_path):
    """Seed 203's case: 25 modes on 2,500 samples, one of them crossed by 41 of 100,000: held 24, and said so."""
    counts = [4000] * 24 + [41]
    assert modes_held(counts) == 24 and modes_held([4000] * 24 + [400]) == 25 and modes_held([0] * 25) == 0
    rs = [RunResult("ganforge", "grid25", 203, "completed", 25, 96.3, 0.046, 0.74, held=24, min_share=0.01),
          RunResult("ganforge", "grid25", 202, "completed", 25, 94.3, 0.004, 0.82, held=25, min_share=0.86)]  # fmt: skip
    text = write_outputs(rs, ["ganforge"], ["grid25"], tmp_path, "cmd")
    assert "hold under 0.1 of a fair share of 100,000 more (crossed by G, not drawn; runs.csv `modes_held_100k`): ganforge grid25 seed 203 (1)." in text
    row = next(csv.DictReader(open(tmp_path / "runs.csv")))
    assert (row["modes"], row["modes_held_100k"], row["min_share_100k"]) == ("25", "24", "0.01")
    assert "(crossed by G, not drawn; runs.csv `modes_held_100k`): none." in write_outputs(rs[1:], ["ganforge"], ["grid25"], tmp_path, "cmd")


@pytest.mark.slow
def test_one_command_benchmark_smoke(tmp_path):
    """The whole pipeline for one seed and a few iterations: multirun per method, evaluation, table, scatter grids.
    PacGAN3 (batch 300) also checks that validation copes with a last batch that fills no packed group."""
    out = tmp_path / "bench"
    cmd = [sys.executable, str(REPO / "benchmarks" / "mode_collapse.py"), "--seeds", "1", "--first-seed", "3", "--methods", "pacgan3,ganforge",
           "--jobs", "1", "--out", str(out), "max_iters=20", "val_every=20", "ckpt_every=20", "sample_every=20", "ema_decay=0.9"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = list(csv.DictReader(open(out / "runs.csv")))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"completed"}
    assert {r["generator"] for r in rows} == {"g_ema"}  # the sampler of a run that kept an EMA copy
    assert {r["threads"] for r in rows} == {"1"} and all(re.fullmatch(r"[0-9a-f]{10}(\+dirty)?", r["commit"]) for r in rows)  # the run's environment
    assert {(r["method"], r["dataset"]) for r in rows} == {(m, d) for m in ("pacgan3", "ganforge") for d in ("ring8", "grid25")}
    assert all(int(r["iterations"]) == 20 and 0 <= float(r["hq_percent"]) <= 100 and r["seed"] == "3" for r in rows)
    assert all(0 <= float(r["val_jsd_d"]) + 0.05 and float(r["val_jsd_d"]) <= math.log(2) for r in rows)  # D's estimate at iteration 20
    text = (out / "table.md").read_text()
    assert "GAN (published)" in text and "ganforge recipe" in text and "Command:" in text and "| grid25 mode width | runs |" in text
    assert "ganforge recipe** (`experiment=modes_best`) + `max_iters=20 ema_decay=0.9` |" in text
    assert all(float(r["mode_width"]) > 0 or r["mode_width"] == "nan" for r in rows)  # NaN: no HQ sample after 20 iterations
    for m in ("pacgan3", "ganforge"):
        for d in ("ring8", "grid25"):
            assert (out / f"scatter_{m}_{d}.png").stat().st_size > 1000
    # the same generators sampled through their discriminators' density ratio (PacGAN3's D is packed by 3)
    rej = subprocess.run([sys.executable, str(REPO / "benchmarks" / "d_rejection.py"), str(out), "--method", "pacgan3", "--pool", "3000"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert rej.returncode == 0, rej.stdout[-2000:] + rej.stderr[-3000:]
    (row,) = csv.DictReader(open(out / "d_rejection.csv"))
    assert row["run"] == "ring8-seed3" and 0 < float(row["acceptance"]) <= 1 and 0 <= float(row["hq_kept_all"]) <= 100
    assert "kept by D's ratio" in (out / "d_rejection.md").read_text()
    # ... and with their most-stretched samples skipped (Jacobian truncation)
    jt = subprocess.run([sys.executable, str(REPO / "benchmarks" / "jacobian_truncation.py"), str(out), "--method", "pacgan3", "--pool", "3000",
                         "--reject", "0.05"], cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert jt.returncode == 0, jt.stdout[-2000:] + jt.stderr[-3000:]
    plain, trunc = csv.DictReader(open(out / "jacobian_truncation.csv"))
    assert (plain["reject"], trunc["reject"], plain["run"]) == ("0.0", "0.05", "ring8-seed3") \
        and float(plain["hq"]) == pytest.approx(float(next(r["hq_percent"] for r in rows if r["method"] == "pacgan3" and r["dataset"] == "ring8")), abs=0.01)
    share = float(plain["min_share"])  # the emptiest mode over a fair share: undefined (NaN) only when no sample is HQ
    assert (math.isnan(share) if float(plain["hq_all"]) == 0 else 0 <= share <= 8) and "emptiest mode" in (out / "jacobian_truncation.md").read_text()
    assert "largest 5% of ‖dG/dz‖ dropped" in (out / "jacobian_truncation.md").read_text()
    # ... and where in the latent plane each mode lives: the same 3,000 samples, so the same emptiest mode's share
    lc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "latent_cells.py"), str(out), "--method", "pacgan3", "--pool", "3000", "--mark", "2,0"],
                        cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert lc.returncode == 0, lc.stdout[-2000:] + lc.stderr[-3000:]
    (cells,) = csv.DictReader(open(out / "latent_cells.csv"))
    assert (cells["run"], cells["iteration"], cells["latent_dim"], cells["r_interior"]) == ("ring8-seed3", "last", "2", "nan")  # no interior mode on the ring
    assert float(cells["hq"]) == pytest.approx(float(plain["hq_all"]), abs=1e-6) and (out / "latent_cells.png").stat().st_size > 1000
    assert math.isnan(share) == math.isnan(float(cells["min_share"])) and (math.isnan(share) or float(cells["min_share"]) == pytest.approx(share, abs=1e-6))
    # ... and what its D tells G about its emptiest mode, beside the run's own logged val/jsd_d
    mp = subprocess.run([sys.executable, str(REPO / "benchmarks" / "mode_pull.py"), str(out), "--method", "pacgan3", "--dataset", "ring8", "--pool", "3000"],
                        cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert mp.returncode == 0, mp.stdout[-2000:] + mp.stderr[-3000:]
    (pull,) = csv.DictReader(open(out / "mode_pull.csv"))
    assert (pull["run"], pull["iteration"]) == ("ring8-seed3", "20") and 0 <= int(pull["emptiest"]) < 8 and math.isfinite(float(pull["val_jsd_d"]))
    gone = subprocess.run([sys.executable, str(REPO / "benchmarks" / "mode_pull.py"), str(out), "--method", "pacgan3", "--dataset", "ring8", "--iters", "7"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert gone.returncode == 2 and "no checkpoint" in gone.stderr and "iter_000007.ckpt" in gone.stderr
    bad = subprocess.run([sys.executable, str(REPO / "benchmarks" / "latent_cells.py"), str(out), "--method", "pacgan3", "--mark", "1,1"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode == 2 and "--mark 1,1 is not a mode of ring8" in bad.stderr
    # a second run finds every job done: nothing retrained, the same table
    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count("completed earlier, skipping") + again.stderr.count("completed earlier, skipping") == 4
    # re-evaluating finished runs with a sampler override scores what jacobian_truncation.py scored for it
    summ = subprocess.run([*cmd[:2], "--summarize-only", "--methods", "pacgan3", "--datasets", "ring8", "--out", str(out), "--jacobian-truncation", "0.05"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert summ.returncode == 0, summ.stderr[-3000:]
    (row,) = [r for r in csv.DictReader(open(out / "runs.csv")) if r["dataset"] == "ring8"]
    assert float(row["hq_percent"]) == pytest.approx(float(trunc["hq"]), abs=0.01) and "--jacobian-truncation 0.05" in (out / "table.md").read_text()
    # --no-ema scores G itself: other samples than its EMA copy's
    raw = subprocess.run([*cmd[:2], "--summarize-only", "--methods", "pacgan3", "--datasets", "ring8", "--out", str(out), "--jacobian-truncation", "0.05", "--no-ema"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert raw.returncode == 0, raw.stderr[-3000:]
    (rrow,) = [r for r in csv.DictReader(open(out / "runs.csv")) if r["dataset"] == "ring8"]
    assert (row["generator"], rrow["generator"]) == ("g_ema", "generator")
    ema, g = (evaluate_run(out / "pacgan3" / "ring8-seed3", "pacgan3", 0.05, ema=e) for e in (True, False))
    assert (ema.weights, g.weights) == ("g_ema", "generator") and not torch.equal(ema.samples, g.samples)


@pytest.mark.slow
def test_paper_setup_gpu_script_stops_every_run_on_time_and_scores_it(tmp_path):
    """benchmarks/paper_setup_gpu.sh, here on the CPU: its runs start at once, stop at WALL by SIGTERM with a checkpoint,
    and mode_collapse.py --stopped scores them; without --stopped they count as unfinished (exit 1)."""
    out = tmp_path / "gpu"
    env = dict(os.environ, TRAINER="default", WALL="45", METHODS="gan", SEEDS="4", PYTHON=sys.executable, OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "paper_setup_gpu.sh"), str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = list(csv.DictReader(open(out / "runs.csv")))
    assert {(r["dataset"], r["seed"], r["status"]) for r in rows} == {("ring8", "4", "interrupted"), ("grid25", "4", "interrupted")}
    assert all(int(r["iterations"]) > 0 and int(r["iterations"]) % 10 == 0 and 0 <= float(r["hq_percent"]) <= 100 for r in rows)
    assert "| GAN (ganforge, paper's setup) + `trainer=default max_iters=400000 iters_per_batch=10` |" in (out / "table.md").read_text() and "| 1 (1 stopped early), 1 (1 stopped early) |" in (out / "table.md").read_text()
    strict = subprocess.run([sys.executable, str(REPO / "benchmarks" / "mode_collapse.py"), "--summarize-only", "--methods", "gan", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert strict.returncode == 1 and "| 0/1, 0/1 |" in (out / "table.md").read_text()


def test_paper_setup_gpu_script_takes_its_methods_from_the_benchmark_table(tmp_path):
    """paper_setup_gpu.sh reads each method's overrides from toy_benchmark.METHODS (no twin table to drift), and
    refuses a method outside the paper's setup in one line, before any run starts."""
    for bad in ("ganforge", "wgan"):
        env = dict(os.environ, METHODS=f"gan {bad}", PYTHON=sys.executable, TRAINER="default", WALL="1")
        proc = subprocess.run(["bash", str(REPO / "benchmarks" / "paper_setup_gpu.sh"), str(tmp_path / bad)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert proc.returncode == 2 and f"METHODS takes the paper's-setup methods (gan, pacgan2, pacgan3, pacgan4); got {bad}" in proc.stderr
        assert not (tmp_path / bad / "gan").exists()  # refused before the valid method's runs started


def test_val_curves_groups_runs_into_one_figure_and_a_long_csv(tmp_path):
    runs = []
    for i, hq in enumerate(((0.02, 0.5), (0.03, 0.9))):
        (tmp_path / f"r{i}" / "csv").mkdir(parents=True)
        rows = ["step,train/d_loss,val/hq_frac,val/modes", "100,0.7,,", f"5000,,{hq[0]},18", f"10000,,{hq[1]},25"]
        (tmp_path / f"r{i}" / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")
        runs.append(str(tmp_path / f"r{i}"))
    # r1 was resumed: its first validation is in the segment ganforge kept (metrics.part0.csv)
    (tmp_path / "r1" / "csv" / "metrics.part0.csv").write_text("\n".join(rows[:3]) + "\n")
    (tmp_path / "r1" / "csv" / "metrics.csv").write_text("\n".join(rows[:1] + rows[3:]) + "\n")
    out = tmp_path / "fig" / "curves.png"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "val_curves.py"), "--out", str(out), "--escape", "0.6", f"a={runs[0]}", f"b={runs[1]}"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader(open(out.with_suffix(".csv"))))
    assert [(r["group"], r["run"], r["step"], r["metric"], r["value"]) for r in rows if r["metric"] == "val/hq_frac"] == [
        ("a", "r0", "5000", "val/hq_frac", "0.02"), ("a", "r0", "10000", "val/hq_frac", "0.5"),
        ("b", "r1", "5000", "val/hq_frac", "0.03"), ("b", "r1", "10000", "val/hq_frac", "0.9"),
    ]  # fmt: skip
    assert len(rows) == 8 and out.stat().st_size > 10000
    # --escape 0.6: run r0 never reaches 60% HQ (stuck), r1 does at its second validation
    escape = (out.parent / "curves_escape.md").read_text()
    assert "| a | r0 | stuck | 10000 | 25 | 50.0% |" in escape and "| b | r1 | 10000 | 10000 | 25 | 90.0% |" in escape
    assert "| a | 1 runs | mean escape of the 0 that left: - | stuck: 1 |" in escape and "mean escape of the 1 that left: 10,000 | stuck: 0 |" in escape
    # a label with '=' in it (or a dir with no metrics) is refused in one line, before any figure is drawn
    bad = subprocess.run([sys.executable, str(REPO / "benchmarks" / "val_curves.py"), "--out", str(tmp_path / "bad.png"), f"λ = 0.03={runs[0]}"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "a label cannot contain '='" in bad.stderr and not (tmp_path / "bad.png").exists()


def test_latent_cells_expands_checkpoint_ranges_with_the_stop_included():
    from conftest import load_benchmark

    expand = load_benchmark("latent_cells.py").expand_iters
    assert expand("20000:30000:5000,last") == ["20000", "25000", "30000", "last"]
    assert expand("35000,40000") == ["35000", "40000"] and expand("5000:9000:5000") == ["5000"]
    for bad in ("5000:10000:0", "5000:10000", "abc"):
        with pytest.raises(ValueError):
            expand(bad)


def test_share_traces_plots_each_group_and_counts_the_runs_below_the_held_share(tmp_path):
    from conftest import run_benchmark

    fields = "run,iteration,latent_dim,hq,r_interior,r_exterior,interior_share,min_share,emptiest,mark_share"
    rows = {"a.csv": ["s1,20000,2,5,,,,nan,x,nan", "s1,25000,2,90,,,,0.05,x,nan", "s1,30000,2,95,,,,0.6,x,nan", "s1,last,2,95,,,,0.6,x,nan",
                      "s2,20000,2,5,,,,0.5,x,nan", "s2,25000,2,90,,,,0.7,x,nan", "s2,30000,2,95,,,,0.0,x,nan"],
            "b.csv": ["s3,25000,2,90,,,,0.2,x,nan", "s3,30000,2,95,,,,0.3,x,nan"]}  # fmt: skip
    for name, lines in rows.items():
        (tmp_path / name).write_text("\n".join([fields, *lines]) + "\n")
    out = tmp_path / "traces.png"
    text = run_benchmark("share_traces.py", "--out", str(out), f"A={tmp_path / 'a.csv'}", f"B={tmp_path / 'b.csv'}")
    # the NaN share of a checkpoint with no high-quality sample and the final 'last' row are left out
    assert "    20000  0.500  0/1" in text and "    25000  0.375  1/2" in text and "    30000  0.300  1/2" in text
    assert "s1: last below 0.1 at 25000, ends at 0.600" in text and "s2: last below 0.1 at 30000, ends at 0.000" in text
    assert "s3: never below 0.1, ends at 0.300" in text and out.stat().st_size > 10000
    bad = subprocess.run([sys.executable, str(REPO / "benchmarks" / "share_traces.py"), "--out", str(out), str(tmp_path / "a.csv")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "give each group as LABEL=CSV" in bad.stderr
    missing = subprocess.run([sys.executable, str(REPO / "benchmarks" / "share_traces.py"), "--out", str(out), f"A={tmp_path / 'nope.csv'}"],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert missing.returncode == 2 and "nope.csv: no such file" in missing.stderr
    (tmp_path / "final_only.csv").write_text("\n".join([fields, "s1,last,2,95,,,,0.6,x,nan"]) + "\n")
    final = subprocess.run([sys.executable, str(REPO / "benchmarks" / "share_traces.py"), "--out", str(out), f"A={tmp_path / 'final_only.csv'}"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert final.returncode == 2 and "no numbered checkpoint with a min_share" in final.stderr


def test_latent_cells_draws_a_uniform_priors_whole_square():
    """The plane drawn is where the prior puts z: [-1, 1]^2 for U(-1, 1)^2, not the Gaussian's [-2.5, 2.5]^2."""
    from conftest import load_benchmark

    lc = load_benchmark("latent_cells.py")
    uniform, normal, plain = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    uniform.latent_dist, normal.latent_dist = "uniform", "normal"
    assert lc.plane_extent(uniform) == 1.0 and lc.plane_extent(normal) == lc.plane_extent(plain) == 2.5


def test_lost_modes_counts_runs_with_a_mode_not_held_and_tests_them_against_a_reference(tmp_path, capsys):
    """benchmarks/lost_modes.py: the pre-registered reliability test (docs/mode_collapse_grid25_uniform_reliability_rule.md)."""
    from conftest import load_benchmark

    lm = load_benchmark("lost_modes.py")
    head = "method,dataset,seed,status,modes,modes_held_100k"
    own = [head, "ganforge,grid25,1,completed,25,25.0", "ganforge,grid25,2,completed,25,24.0",  # 2 counts 25, holds 24
           "ganforge,grid25,3,running,,", "ganforge,ring8,4,completed,8,8.0"]  # fmt: skip
    (tmp_path / "own.csv").write_text("\n".join(own) + "\n")
    two = [head + ",sampler", "ganforge,grid25,5,completed,25,25.0,truncation 0.05", "ganforge,grid25,5,completed,25,23.0,untruncated"]
    (tmp_path / "two.csv").write_text("\n".join(two) + "\n")
    assert lm.main(["--dataset", "grid25", "--against", "5/44", "--sampler", "truncation 0.05", str(tmp_path / "own.csv"), str(tmp_path / "two.csv")]) == 0
    out = capsys.readouterr().out
    # seeds 1, 2, 5 (the running run and the ring8 run are not counted; seed 5 under the sampler asked for)
    expected = sum(math.comb(3, k) * math.comb(44, 6 - k) for k in range(2)) / math.comb(47, 6)  # P(<= 1 of the 6 failures here)
    assert "3 completed runs (seeds 1-5), 1 with a mode not held (seeds 2)" in out and f"p = {expected:.3f}" in out
    assert lm.one_sided_p(0, 14, 5, 44) == pytest.approx(math.comb(44, 5) / math.comb(58, 5))  # 0.237: the rule's figure
    with pytest.raises(SystemExit, match="seed 5 of grid25 is in the csvs twice.*pick one with --sampler"):
        lm.main(["--dataset", "grid25", "--against", "5/44", str(tmp_path / "two.csv")])
    (tmp_path / "old.csv").write_text("method,dataset,seed,status,modes\nganforge,grid25,7,completed,25\n")
    with pytest.raises(SystemExit, match="no modes_held_100k for seed 7"):
        lm.main(["--dataset", "grid25", "--against", "5/44", str(tmp_path / "old.csv")])
    for bad in ("5", "x/44", "50/44"):
        with pytest.raises(SystemExit):
            lm.main(["--dataset", "grid25", "--against", bad, str(tmp_path / "own.csv")])
        assert "give the reference as FAILED/RUNS" in capsys.readouterr().err
    # the means line: over the counted runs only, with the columns the csv has; --hq-against gives the rule's HQ margin
    head = "method,dataset,seed,status,modes,hq_percent,reverse_kl,mode_width,modes_held_100k,min_share_100k"
    rows = [head, "ganforge,grid25,1,completed,25,98,0.01,0.6,25,0.8", "ganforge,grid25,2,completed,25,96,0.02,0.7,25,0.9",
            "ganforge,grid25,3,running,,,,,,", "ganforge,ring8,4,completed,8,50,0.5,2.0,8,0.1"]  # fmt: skip
    (tmp_path / "full.csv").write_text("\n".join(rows) + "\n")
    assert lm.main(["--dataset", "grid25", "--against", "5/44", "--hq-against", "99.1,0.1", str(tmp_path / "full.csv")]) == 0
    line = capsys.readouterr().out.splitlines()[1]  # HQ: mean 97, SE 1; the gap 2.1 > hypot(1, 0.1) = 1.005
    assert line.startswith("over the 2: modes 25.00 ± 0.00, HQ 97.0 ± 1.0%, reverse KL 0.0150 ± 0.0050, mode width 0.65 ± 0.05")
    assert "emptiest mode 0.80-0.90 of a fair share" in line and "HQ 2.1 points below the reference's 99.1 ± 0.1%, more than one SE of the difference (1.0)" in line
    assert "within one SE" in lm.means_line({1: {"hq_percent": "98.5"}, 2: {"hq_percent": "99.5"}}, (99.5, 0.1))  # gap 0.5 <= hypot(0.5, 0.1)
    assert "HQ 1.0 points above the reference's 98 ± 0.1%, within" in lm.means_line({1: {"hq_percent": "98.5"}, 2: {"hq_percent": "99.5"}}, (98, 0.1))
    with pytest.raises(SystemExit):
        lm.main(["--dataset", "grid25", "--against", "5/44", "--hq-against", "99.1", str(tmp_path / "full.csv")])
    assert "give the reference HQ as MEAN,SE" in capsys.readouterr().err



def test_share_traces_settle_times_and_the_earlier_test(tmp_path):
    """share_traces.py --earlier: the pre-registered measure of docs/mode_collapse_grid25_noise_tail_rule.md."""
    from conftest import load_benchmark, run_benchmark

    st = load_benchmark("share_traces.py")
    assert st.settle_time([(20000, 0.0), (25000, 0.3), (30000, 0.05), (35000, 0.5), (40000, 0.6)]) == 35000  # last dip at 30k
    assert st.settle_time([(20000, 0.2), (25000, 0.3)]) == 20000  # never under: settled from the first checkpoint
    assert st.settle_time([(20000, 0.2), (25000, 0.09)]) == math.inf  # still under at the end: never
    # no ties: scipy's exact U distribution, P(U <= 0) for 2 against 3 = 1 / C(5, 2)
    assert st.earlier_p([1e3, 2e3], [3e3, 4e3, 5e3]) == pytest.approx(0.1)
    assert st.earlier_p([math.inf, 5e3], [1e3, 2e3]) > 0.5  # "never" ranks last
    fields = "run,iteration,latent_dim,hq,r_interior,r_exterior,interior_share,min_share,emptiest,mark_share"
    rows = {"new.csv": ["s1,20000,2,5,,,,0.0,x,nan", "s1,25000,2,90,,,,0.2,x,nan", "s2,20000,2,5,,,,0.0,x,nan", "s2,25000,2,90,,,,0.3,x,nan"],
            "ref.csv": ["s3,20000,2,5,,,,0.0,x,nan", "s3,25000,2,90,,,,0.0,x,nan", "s4,20000,2,5,,,,0.05,x,nan", "s4,25000,2,90,,,,0.5,x,nan"]}  # fmt: skip
    for name, lines in rows.items():
        (tmp_path / name).write_text("\n".join([fields, *lines]) + "\n")
    args = ["--out", str(tmp_path / "t.png"), f"new={tmp_path / 'new.csv'}", f"ref={tmp_path / 'ref.csv'}"]
    text = run_benchmark("share_traces.py", *args, "--earlier", "new,ref")
    assert "s1: settled 25k" in text and "s3: settled never" in text
    assert "ref: 2 runs, settled 25k-25k, median never, never: 1" in text
    assert f"new settles earlier than ref? Mann-Whitney U, one-sided: p = {st.earlier_p([25e3, 25e3], [math.inf, 25e3]):.3f}" in text
    bad = subprocess.run([sys.executable, str(REPO / "benchmarks" / "share_traces.py"), *args, "--earlier", "new,other"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "give two different group labels" in bad.stderr


@pytest.mark.parametrize("pack", [1, 2])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_mode_pull_reads_ds_view_of_the_emptiest_mode_and_the_direction_g_is_moved(pack, sign):
    """benchmarks/mode_pull.py on a hand-made D whose logit peaks (sign +1) or dips (-1) at the one mode G leaves
    empty: D's logit gap on that mode's reals has the sign of the peak, and G's loss moves every sample around it
    straight toward it (cosine +1) or straight away (-1), through the packing."""
    from conftest import load_benchmark

    mp = load_benchmark("mode_pull.py")
    modes, stds, hole = torch.tensor([[-2.0, 0.0], [0.0, 0.0], [2.0, 0.0]]), torch.full((3,), 0.05), torch.tensor([0.0, 0.0])

    class D(torch.nn.Module):  # logit of a pack: sign * the sum over its samples of -||x - hole||
        def __init__(self):
            super().__init__()
            self.pack = pack

        def forward(self, x):
            return -sign * (x - hole).norm(dim=1).reshape(-1, self.pack).sum(1)

    g = torch.Generator().manual_seed(0)
    noise = 0.05 * torch.randn(400, 2, generator=g).clamp(-2, 2)  # within 2.83 stds of its mode: every one high quality
    held = torch.cat([modes[0] + noise[:200], modes[2] + noise[200:]])
    bridges = torch.stack([torch.linspace(-1.5, 1.5, 40), torch.full((40,), 0.4)], 1)  # off every mode, within 2.15 of the hole
    labels = torch.arange(3).repeat_interleave(50)
    reals = modes[labels] + 0.05 * torch.randn(150, 2, generator=g)
    row = mp.analyse(torch.nn.Identity(), D(), modes, stds, torch.cat([held, bridges]), reals, labels, reals[: pack - 1])
    assert row["emptiest"] == 1 and row["share"] == 0.0 and row["ideal_gap"] == pytest.approx(math.log(200))
    assert row["logit_gap"] == pytest.approx(sign * 2.0, abs=0.1)  # the hole's reals at ~0, the others' at ~-2 (x sign)
    assert row["n_bridge"] == 40 and row["n_neighbour"] == 400  # both held modes lie at spacing 2 < 2 + 3 stds
    assert row["bridge_cos"] == pytest.approx(sign, abs=1e-5) and row["neighbour_cos"] == pytest.approx(sign, abs=1e-5)
    assert row["bridge_norm"] > 0


def test_packed_histogram_jsd_matches_the_closed_form_for_missing_bins():
    """JSD(P^pack || Q^pack) for Q = P uniform over 25 bins with j bins emptied: a pack holding a sample of an
    emptied bin is P's alone (weight 1 - b, b = (1 - j/25)^pack), the rest have Q/P = 1/b. Packing amplifies it."""
    from conftest import load_benchmark

    mp = load_benchmark("mode_pull.py")
    p = torch.full((25,), 1 / 25)
    assert mp.packed_histogram_jsd(p, p, 6) == 0.0
    for j, pack in ((1, 1), (1, 6), (4, 6)):
        q = torch.cat([torch.zeros(j), torch.full((25 - j,), 1 / (25 - j))])
        b = (1 - j / 25) ** pack
        exact = 0.5 * ((1 - b) * math.log(2) + b * math.log(2 / (1 + 1 / b))) + 0.5 * math.log(2 / (1 + b))
        assert mp.packed_histogram_jsd(p, q, pack) == pytest.approx(exact, abs=0.003)
    assert mp.packed_histogram_jsd(p, torch.cat([torch.zeros(1), torch.full((24,), 1 / 24)]), 6) > 5 * 0.0141  # 0.082 against 0.014 unpacked
