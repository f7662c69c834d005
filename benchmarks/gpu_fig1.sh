#!/usr/bin/env bash
# The paper-scale Fig. 1 grid on one GPU, in one call of at most 9 minutes.
#
#   bash benchmarks/gpu_fig1.sh [--dry-run] [--resume RESULTS.tar.gz] [FASHION_MNIST_DIR]
#
# `python -m nets run fig1 --preset full` (25 (η, S) points and 2 more seeds at 3 of them, 200 epochs
# on 55,000 Fashion-MNIST samples, the full measurement set) with every batch-size group in its own
# worker process on the one GPU, then `python -m validation nets`. The run stops 60 s before the
# call's limit if it is not done; what finished is kept (finished runs and per-epoch group
# checkpoints), packed into fig1-results.tar.gz, and a later call with --resume on that file goes on
# from there (runs finished before are kept; unfinished groups restart, since their checkpoints hold
# the stacked weights and are too large to carry). Writes under $OUT (or ./gpu-out) the 8 files a
# device call brings back: fig1.png, fig1_same_ratio.png, fig1_alignment.png, fig1_loss.png,
# nets_report.json, fig1-results.tar.gz (results and plan, no weights), log.txt and summary.md
# (steps, a line per run with its wall and measurement time, the statements).
#
# --dry-run: the same steps on the CPU with the quick preset.
set -uo pipefail

DRY=0
RESUME=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1; shift ;;
        --resume) RESUME="$2"; shift 2 ;;
        *) break ;;
    esac
done
DATA_DIR="${1:-/usr/share/datasets/fashion-mnist}"
source "$(dirname "${BASH_SOURCE[0]}")/gpu_common.sh"
LIMIT="${FIG1_LIMIT_S:-420}"      # training + measurement budget inside the 9-minute (540 s) call
if [ -n "$RESUME" ]; then tar -C "$WORK" -xzf "$RESUME"; fi

if [ $DRY = 1 ]; then
    RUN=(--preset quick --device cpu --workers 0)
    LIMIT="${FIG1_LIMIT_S:-240}"
else
    # one worker process per batch-size group: the S = 25 group (2,200 steps an epoch) sets the pace,
    # the others run beside it on the same GPU
    RUN=(--preset full --device cuda --workers 5)
fi

step env 15 "$PY" -c "import torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0))"
step fig1-run "$LIMIT" "$PY" -m nets run fig1 "${RUN[@]}" --data-root "$WORK/data" --out "$WORK/runs" --no-progress
step fig1-validate 60 "$PY" -m validation nets "$WORK/runs" --out "$WORK/figures"
step table 15 "$PY" - "$WORK/runs/fig1" "$WORK/fig1_runs.txt" <<'EOF'
import sys
from pathlib import Path
from nets.results import load_experiment, run_rows
rows = run_rows(load_experiment(sys.argv[1]))
def fmt(v, f):
    return format(v, f) if isinstance(v, (int, float)) else "-".rjust(int(f.split(".")[0]))
lines = [f"{'run':20s} {'status':10s} {'conv':5s} {'train_s':>8s} {'meas_s':>7s} {'val_acc':>8s} {'|H|_F':>9s} "
         f"{'lam_max':>9s} step_path"]
lines += [f"{r['name']:20s} {r['status']:10s} {str(r['converged']):5s} {fmt(r['wall_s'], '8.1f')} "
          f"{fmt(r['measure_wall_s'], '7.1f')} {fmt(r['val_acc'], '8.4f')} {fmt(r['hessian_frobenius'], '9.3g')} "
          f"{fmt(r['lambda_max'], '9.3g')} {r['step_path']}" for r in rows]
Path(sys.argv[2]).write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
for f in fig1.png fig1_same_ratio.png fig1_alignment.png fig1_loss.png nets_report.json; do
    cp "$WORK/figures/$f" "$OUT/" 2>/dev/null
done
[ -d "$WORK/runs" ] && tar -C "$WORK" --exclude='*.pt' -czf "$OUT/fig1-results.tar.gz" runs 2>>"$LOG"
finish --extra "$WORK/fig1_runs.txt" --title "Paper-scale fig1$([ $DRY = 1 ] && echo ' (dry run on the CPU)')"
