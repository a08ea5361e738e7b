#!/usr/bin/env bash
# The paper's 2D-mixture setup (experiment=pacgan_toy) on one GPU, every run at once, for a fixed wall time:
# PacGAN's GAN and PacGAN4 (or METHODS) on ring8 and grid25 for SEEDS, toward the paper's 400,000 iterations.
# On a GPU these small steps are bound by kernel launches, so runs share one well (8 at once: ~95 it/s each on
# an H200). At WALL seconds every run gets SIGTERM, saves a resumable checkpoint and stops; running the script
# again with the same OUT continues every run from it (ckpt_path=last). Then the final generators are scored
# with the published protocol (mode_collapse.py --summarize-only --stopped) into OUT/table.md and OUT/runs.csv,
# each run's validation curve (every 2,500 iterations) is in OUT/<method>/<dataset>-seed<N>/csv/metrics.csv.
#
# Usage: bash benchmarks/paper_setup_gpu.sh OUT   (WALL=465 METHODS="gan pacgan4" SEEDS="0 1" PYTHON=python3 TRAINER=gpu;
# TRAINER=default runs it on the CPU, as the test suite does for a few seconds)
set -uo pipefail
out=$(realpath -m "${1:?usage: bash benchmarks/paper_setup_gpu.sh OUT_DIR}")
py=${PYTHON:-python3}
wall=${WALL:-465}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# each method's overrides from ganforge.toy_benchmark.METHODS (one table for both scripts), all checked before any run
declare -A overrides
for m in ${METHODS:-gan pacgan4}; do
  overrides[$m]=$(PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" "$py" - "$m" <<'PY'
import sys
from ganforge.toy_benchmark import METHODS
m = METHODS.get(sys.argv[1])
if m is None or "experiment=pacgan_toy" not in m.overrides:
    sys.exit(1)
print(*m.overrides)
PY
  ) || { echo "error: METHODS takes the paper's-setup methods (gan, pacgan2, pacgan3, pacgan4); got $m" >&2; exit 2; }
done
for m in ${METHODS:-gan pacgan4}; do
  read -ra ov <<< "${overrides[$m]}"
  for d in ring8 grid25; do
    for s in ${SEEDS:-0 1}; do
      run="$out/$m/$d-seed$s"
      resume=()
      [[ -f "$run/checkpoints/last.ckpt" ]] && resume=(ckpt_path=last)
      mkdir -p "$run"
      timeout -k 60 -s TERM "$wall" "$py" train.py "${ov[@]}" "dataset=$d" "seed=$s" \
        "trainer=${TRAINER:-gpu}" max_iters=400000 iters_per_batch=10 val_every=2500 log_every=500 ckpt_every=20000 sample_every=20000 \
        logger=csv "hydra.run.dir=$run" "${resume[@]}" > "$run/stdout.log" 2>&1 &
    done
  done
done
wait
# shellcheck disable=SC2086
"$py" benchmarks/mode_collapse.py --summarize-only --stopped --methods "$(echo ${METHODS:-gan pacgan4} | tr ' ' ,)" --out "$out"
