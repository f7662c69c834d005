#!/usr/bin/env bash
# One prepared check of the network code on a GPU machine, in one call of at most 9 minutes.
#
#   bash benchmarks/gpu_check.sh [--dry-run] [FASHION_MNIST_DIR]
#
# Runs the project from this checkout (PYTHONPATH, no pip install: the machine needs PyTorch with
# CUDA, NumPy, SciPy, numba, matplotlib and pytest, and no network). FASHION_MNIST_DIR holds the four
# Fashion-MNIST .gz files (default /usr/share/datasets/fashion-mnist). Each step has its own timeout
# and a failed step never stops the next one. Writes under $OUT (or ./gpu-out), at most 8 files:
#
#   env.txt              GPU, driver, CUDA, torch and Python versions, free memory
#   gpu-tests.xml        JUnit XML of `pytest -m gpu tests/nets`
#   bench.json           benchmarks/bench_nets.py on the paper-scale fig1 data (step paths, estimate)
#   fig1.png             a short fig1 run (full grid, 2 epochs, quick measurements) through validation nets
#   nets_report.json     its statements
#   fig1-results.tar.gz  its run directory (results, plan; no weights)
#   log.txt              every step's output and exit status
#   summary.md           one page: what ran, what passed, the numbers
#
# --dry-run runs the same steps on the CPU at toy size (the gpu tests are then all skipped); a test
# in tests/nets runs it in CI.
set -uo pipefail

DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; shift; fi
DATA_DIR="${1:-/usr/share/datasets/fashion-mnist}"
source "$(dirname "${BASH_SOURCE[0]}")/gpu_common.sh"
export CUBLAS_WORKSPACE_CONFIG=:4096:8      # deterministic cuBLAS for the bitwise-resume tests

if [ $DRY = 1 ]; then
    DEVICE=cpu
    BENCH=(--device cpu --synthetic --train-size 512 --width 32 --k 2 --batch-sizes 32 64 --no-measure --no-lanczos)
    FIG1=(--preset quick --device cpu)
    T_TESTS=120; T_BENCH=120; T_FIG1=150
else
    DEVICE=cuda
    # the paper's fig1 data and batch sizes; compiled steps only at the two ends of the grid (each
    # batch size compiles anew); measurements timed on the trained model
    BENCH=(--device cuda --data-root "$WORK/data" --train-size 55000 --batch-sizes 25 50 100 250 1000
           --compiled-batch-sizes 25 1000 --measure --concurrent)
    FIG1=(--preset full --epochs 2 --measure quick --device cuda)
    T_TESTS=170; T_BENCH=150; T_FIG1=120
fi

step env 15 "$PY" - <<'EOF'
import os, platform, subprocess, sys
out = os.path.join(os.environ.get("OUT", "gpu-out"), "env.txt")
lines = [f"python {sys.version.split()[0]} on {platform.platform()}"]
try:
    import torch
    lines.append(f"torch {torch.__version__}, CUDA build {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    lines.append(f"cuda available: {torch.cuda.is_available()}")
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        free, total = torch.cuda.mem_get_info(0)
        lines.append(f"device 0: {p.name}, compute capability {p.major}.{p.minor}, {p.multi_processor_count} SMs, "
                     f"{total / 2**30:.1f} GiB ({free / 2**30:.1f} GiB free)")
        lines.append(f"TF32 defaults: matmul {torch.backends.cuda.matmul.allow_tf32}, cudnn {torch.backends.cudnn.allow_tf32}")
except Exception as exc:
    lines.append(f"torch: {type(exc).__name__}: {exc}")
for mod in ("numpy", "scipy", "numba", "matplotlib", "pytest"):
    try:
        lines.append(f"{mod} {__import__(mod).__version__}")
    except Exception as exc:
        lines.append(f"{mod}: missing ({exc})")
try:
    lines.append(subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                                 "--format=csv,noheader"], capture_output=True, text=True, timeout=10).stdout.strip())
except Exception as exc:
    lines.append(f"nvidia-smi: {exc}")
lines.append(f"cpus: {os.cpu_count()}")
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
cat "$OUT/env.txt" >>"$LOG" 2>/dev/null

step gpu-tests "$T_TESTS" "$PY" -m pytest -m gpu tests/nets -q -p no:cacheprovider -rs \
    --junitxml="$OUT/gpu-tests.xml"

step bench "$T_BENCH" "$PY" benchmarks/bench_nets.py "${BENCH[@]}" --json "$OUT/bench.json"

DATA_ARG=(--data-root "$WORK/data")
step fig1-run "$T_FIG1" "$PY" -m nets run fig1 "${FIG1[@]}" "${DATA_ARG[@]}" --out "$WORK/runs" --no-progress
step fig1-validate 40 "$PY" -m validation nets "$WORK/runs" --out "$WORK/figures"
cp "$WORK/figures/fig1.png" "$OUT/fig1.png" 2>/dev/null
cp "$WORK/figures/nets_report.json" "$OUT/nets_report.json" 2>/dev/null
if [ -d "$WORK/runs" ]; then
    tar -C "$WORK" --exclude='*.pt' -czf "$OUT/fig1-results.tar.gz" runs 2>>"$LOG"
fi

finish --title "GPU check$([ $DRY = 1 ] && echo ' (dry run on the CPU)')" --device "$DEVICE"
