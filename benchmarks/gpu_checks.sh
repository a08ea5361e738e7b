#!/usr/bin/env bash
# The GPU checks behind the GPU figures in docs/benchmarks.md, as one script for a lent GPU machine:
#   1. benchmarks/throughput.py on CUDA, both workloads (ganforge vs the plain loop, in alternating rounds);
#   2. the default run (`python train.py`: digits, DCGAN, 1,200 iterations) on the GPU in fp32, 16-mixed
#      (GradScaler) and bf16-mixed, each with its final sample grid and final metrics.
# Usage: bash benchmarks/gpu_checks.sh OUT_DIR   (PYTHON=...: the interpreter, default python3; RUNS=...: where the
# training runs go, default OUT_DIR/runs). OUT_DIR gets a few summary files; the runs stay in RUNS.
set -uo pipefail
out=$(realpath -m "${1:-gpu_checks}")
runs=$(realpath -m "${RUNS:-$out/runs}")
py=${PYTHON:-python3}
mkdir -p "$out" "$runs"
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$py" -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, 'cuda', torch.version.cuda)"
  nproc
} > "$out/gpu.txt" 2>&1

: > "$out/throughput.txt"
: > "$out/throughput.json"
for w in "dcgan32 --iters 600" "ring8 --iters 2000"; do
  # shellcheck disable=SC2086
  "$py" benchmarks/throughput.py --device cuda --rounds 3 --workload $w >> "$out/throughput.txt" 2>> "$out/throughput.json"
done

: > "$out/train_summary.txt"
for p in 32-true 16-mixed bf16-mixed; do
  dir="$runs/train_$p"
  t0=$(date +%s)
  "$py" train.py trainer=gpu "trainer.precision=$p" logger=csv "hydra.run.dir=$dir" > "$dir.log" 2>&1
  rc=$?
  {
    echo "== precision $p: exit $rc, $(( $(date +%s) - t0 )) s wall"
    grep -a -i "final\|error\|nan\|wrote\|val/" "$dir.log" | tail -n 25
    [ -f "$dir/status.json" ] && cat "$dir/status.json"
    echo
  } >> "$out/train_summary.txt"
  cp "$dir/samples/latest.png" "$out/samples_$p.png" 2>/dev/null
done
