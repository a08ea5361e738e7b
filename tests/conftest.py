import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MNIST_RAW = REPO.parent / "shared" / "data" / "MNIST" / "raw"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HYDRA_FULL_ERROR", "0")
if os.environ.get("PYTEST_XDIST_WORKER"):  # one test per core (pytest-xdist): one intra-op thread each, for it and its subprocesses
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def run_train(tmp_path):
    """Run ``python train.py`` in a subprocess with overrides; returns (CompletedProcess, run_dir)."""
    import subprocess

    def _run(*overrides: str, run_dir: Path | None = None, check: bool = True, timeout: int = 600):
        run_dir = run_dir or tmp_path / "run"
        cmd = [sys.executable, str(REPO / "train.py"), f"hydra.run.dir={run_dir}", *overrides]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
        return proc, run_dir

    return _run


def load_benchmark(script: str):
    """``benchmarks/<script>`` imported as a module (the benchmarks are scripts, not a package), for unit tests of
    its functions."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{Path(script).stem}", REPO / "benchmarks" / script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_benchmark(script: str, *args: str, timeout: int = 300) -> str:
    """Run ``benchmarks/<script>`` with ``args``; its stdout, after checking it exited 0."""
    import subprocess

    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout
