"""benchmarks/r1_lazy.py: the arms, the per-run summary of the true JSD, the paired reading, and one real run."""

import csv
import json
import math
import subprocess
import sys

import pytest

from conftest import REPO, load_benchmark


def _bench():
    return load_benchmark("r1_lazy.py")


def _write_curve(run, values, every=100, r1="", status="completed"):
    (run / "csv").mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"status": status}))
    rows = ["step,train/d_loss,train/r1,val/jsd_true", f"50,1.3,{r1},"] + [f"{every * (i + 1)},,,{v}" for i, v in enumerate(values)]
    (run / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")


def test_arms_are_the_loss_overrides_and_seeds_parse_as_ranges():
    b = _bench()
    assert b.arm_overrides("none", 10.0) == []
    assert b.arm_overrides("every", 10.0) == ["loss.r1_weight=10.0"]
    assert b.arm_overrides("lazy16", 2.5) == ["loss.r1_weight=2.5", "loss.r1_every=16"]
    for bad in ("lazy1", "lazy", "r1", "lazyx"):
        with pytest.raises(ValueError, match="use none, every or lazyK with K >= 2"):
            b.arm_overrides(bad, 10.0)
    assert b.parse_seeds("1-3,7") == [1, 2, 3, 7] and b.parse_seeds("5") == [5]
    with pytest.raises(ValueError, match="give seeds >= 0"):
        b.parse_seeds(",")


def test_a_run_is_summarized_by_its_mean_jsd_overall_and_over_the_last_third(tmp_path):
    b = _bench()
    _write_curve(tmp_path / "r", [0.6, 0.3, 0.3, 0.2, 0.1, 0.3])  # validations at 100..600: last third is 500, 600
    r = b.summarize_run(tmp_path / "r")
    assert r["iterations"] == 600 and r["j_final"] == 0.3 and math.isnan(r["r1"])
    assert math.isclose(r["j_all"], 1.8 / 6) and math.isclose(r["j_late"], 0.2)


def test_the_table_pairs_each_arm_with_every_update_by_seed_and_reads_it_at_two_standard_errors(tmp_path):
    b = _bench()
    base = {1: 0.10, 2: 0.20, 3: 0.30}
    arms = {"every": (0.0, 0.0, 0.0), "lazy16": (0.10, 0.12, 0.11), "none": (0.05, -0.05, 0.01)}  # per-seed offsets
    for arm, offsets in arms.items():
        for (seed, v), off in zip(base.items(), offsets):
            _write_curve(tmp_path / arm / f"seed{seed}", [v + off] * 3, r1="" if arm == "none" else seed)
    _write_curve(tmp_path / "lazy16" / "seed5", [0.9] * 2, status="failed")  # stopped part-way: not judged on half a curve
    runs = b.collect(tmp_path, ["none", "every", "lazy16"], [1, 2, 3, 4, 5])
    assert sorted(runs["lazy16"]) == [1, 2, 3]  # seed 4 has no run, seed 5 did not complete: both left out
    text = b.write_outputs(runs, ["none", "every", "lazy16"], tmp_path, "cmd")
    assert "| lazy16 | 3 | 0.3100 ± 0.0608 |" in text  # the arm's own spread over seeds
    assert "| 0.1100 ± 0.0058 | 0.1100 ± 0.0058 | 2.0000 ± 0.5774 |" in text  # the paired difference is tight
    assert "| none | 3 |" in text and text.split("| none | 3 |")[1].split("\n")[0].endswith("| 0.0033 ± 0.0291 | – |")  # no R1 logged
    assert "- lazy16 against every, over 3 seeds: J_all worse than every update; J_late worse than every update." in text
    assert "- none against every, over 3 seeds: J_all no difference found" in text
    rows = list(csv.reader(open(tmp_path / "runs.csv")))
    assert rows[0] == ["arm", "seed", "iterations", "j_all", "j_late", "j_final", "r1_mean"] and len(rows) == 10
    assert (tmp_path / "curves.png").stat().st_size > 10000 and (tmp_path / "table.md").read_text() == text


def test_a_bad_arm_is_refused_before_any_run(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "r1_lazy.py"), "--arms", "every,lazy1", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and "unknown arm 'lazy1': use none, every or lazyK with K >= 2" in proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_the_benchmark_trains_every_arm_and_scores_the_true_jsd(tmp_path):
    cmd = [sys.executable, str(REPO / "benchmarks" / "r1_lazy.py"), "--seeds", "0", "--arms", "none,lazy4", "--jobs", "1",
           "--out", str(tmp_path), "max_iters=120", "val_every=60", "sample_every=0", "ckpt_every=0"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "runs.csv")))
    assert [(r["arm"], r["seed"], r["iterations"]) for r in rows] == [("none", "0", "120"), ("lazy4", "0", "120")]
    assert all(0 < float(r["j_all"]) < math.log(2) for r in rows)  # a true JSD, in nats
    assert "train/r1" in (tmp_path / "lazy4" / "seed0" / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "train/r1" not in (tmp_path / "none" / "seed0" / "csv" / "metrics.csv").read_text().splitlines()[0]


def test_the_reading_needs_two_standard_errors_either_way():
    b = _bench()
    assert b.reading([0.03, 0.0, 0.06]).startswith("no difference found (|diff| <= 2 SE = 0.0346)")  # 1.7 SE above 0
    assert b.reading([0.05, 0.03, 0.07]) == "worse than every update"
    assert b.reading([-0.05, -0.03, -0.07]) == "better than every update"
    assert b.reading([0.5]) == "one seed: no reading"
