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
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export OUT="${OUT:-$PWD/gpu-out}"
PY="${PYTHON:-python3}"
LIMIT="${FIG1_LIMIT_S:-420}"      # training + measurement budget inside the 9-minute (540 s) call
mkdir -p "$OUT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
LOG="$OUT/log.txt"
: > "$LOG"
STATUS="$WORK/status.txt"
: > "$STATUS"
mkdir -p "$WORK/data"
ln -s "$(cd "$DATA_DIR" 2>/dev/null && pwd || echo "$DATA_DIR")" "$WORK/data/fashion-mnist"
if [ -n "$RESUME" ]; then tar -C "$WORK" -xzf "$RESUME"; fi

step() {   # step NAME TIMEOUT_S COMMAND...
    local name="$1" limit="$2"; shift 2
    local t0=$SECONDS
    echo "===== $name (timeout ${limit}s): $*" >>"$LOG"
    (cd "$REPO" && timeout --signal=INT --kill-after=20 "$limit" "$@") >>"$LOG" 2>&1
    local rc=$?
    echo "===== $name: exit $rc after $((SECONDS - t0)) s" >>"$LOG"
    echo "$name $rc $((SECONDS - t0))" >>"$STATUS"
    echo "$name: exit $rc ($((SECONDS - t0)) s)"
}

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
import json, sys
from pathlib import Path
exp, out = Path(sys.argv[1]), Path(sys.argv[2])
lines = [f"{'run':20s} {'status':10s} {'conv':5s} {'wall_s':>8s} {'meas_s':>7s} {'val_acc':>8s} {'|H|_F':>9s} "
         f"{'lam_max':>9s} step_path"]
for f in sorted((exp / "runs").glob("*/result.json")):
    r = json.loads(f.read_text())
    m = r.get("measurements") or {}
    h = (m.get("hessian_frobenius_hutchinson") or {}).get("value")
    lam = m.get("hessian_top_eigenvalue")
    lam = lam[0] if isinstance(lam, list) and lam else (lam or {}).get("eigenvalues", [None])[0] if isinstance(lam, dict) else lam
    lines.append(f"{f.parent.name:20s} {r['status']:10s} {str(r.get('converged')):5s} {r.get('wall_s', 0):8.1f} "
                 f"{m.get('measure_wall_s', 0) or 0:7.1f} {r.get('final', {}).get('val_acc', float('nan')):8.4f} "
                 f"{h if h is not None else float('nan'):9.3g} {lam if lam is not None else float('nan'):9.3g} "
                 f"{r.get('step_path')}")
out.write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
for f in fig1.png fig1_same_ratio.png fig1_alignment.png fig1_loss.png nets_report.json; do
    cp "$WORK/figures/$f" "$OUT/" 2>/dev/null
done
[ -d "$WORK/runs" ] && tar -C "$WORK" --exclude='*.pt' -czf "$OUT/fig1-results.tar.gz" runs 2>>"$LOG"
step summary 15 "$PY" benchmarks/gpu_summary.py --out "$OUT" --status "$STATUS" --extra "$WORK/fig1_runs.txt" \
    --title "Paper-scale fig1$([ $DRY = 1 ] && echo ' (dry run on the CPU)')"
cat "$OUT/summary.md" 2>/dev/null
! awk '$2 != 0 {bad=1} END {exit !bad}' "$STATUS"
