# Shared set-up of benchmarks/gpu_check.sh and benchmarks/gpu_fig1.sh (sourced, not run).
# Expects DATA_DIR; sets REPO, OUT (exported), PY, WORK (removed on exit), LOG, STATUS, the dataset
# link $WORK/data/fashion-mnist (the loader wants <root>/fashion-mnist/*.gz) and defines `step`.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export OUT="${OUT:-$PWD/gpu-out}"
PY="${PYTHON:-python3}"
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

step() {   # step NAME TIMEOUT_S COMMAND...: run in the repository, output to the log, status recorded
    local name="$1" limit="$2"; shift 2
    local t0=$SECONDS
    echo "===== $name (timeout ${limit}s): $*" >>"$LOG"
    # SIGINT first, so that Python stops cleanly (checkpoints are atomic); SIGKILL 20 s later
    (cd "$REPO" && timeout --signal=INT --kill-after=20 "$limit" "$@") >>"$LOG" 2>&1
    local rc=$?
    echo "===== $name: exit $rc after $((SECONDS - t0)) s" >>"$LOG"
    echo "$name $rc $((SECONDS - t0))" >>"$STATUS"
    echo "$name: exit $rc ($((SECONDS - t0)) s)"
}

finish() {   # the summary page, then exit 0 only when every step exited 0
    step summary 15 "$PY" benchmarks/gpu_summary.py --out "$OUT" --status "$STATUS" "$@"
    cat "$OUT/summary.md" 2>/dev/null
    ! awk '$2 != 0 {bad=1} END {exit !bad}' "$STATUS"
}
