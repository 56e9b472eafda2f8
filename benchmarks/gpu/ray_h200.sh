#!/usr/bin/env bash
# ray_h200.sh: issue 17 on the lent H200: suites/h200_ray.yaml run locally, then with --executor ray,
# both wall clocks timed, then benchmarks/client_scaling.py; all inside one device call's budget.
#
#   SB_BUDGET_S=570 [SB_LOCAL_S=S] [SB_SCALING=0] [SB_GRACE_S=60] [SB_RUNS="local ray"] bash benchmarks/gpu/ray_h200.sh
#
# SB_RUNS=local, then SB_RUNS=ray in the next call (the machine still warm): each run gets a call's
# whole budget instead of a share of one. times.json keeps both calls' runs ($SB_WORKDIR/times.json).
# SB_RUNS=local2 in a third call repeats the local run on the same host (run-local2.tgz): the noise.
#
# After staging (STAGING.md) plus Ray 2.60.0 in /tmp/site-ray. Converts the Qwen checkpoint when it
# is missing (crosscheck.sh convert: ~2 min, taken out of the two runs' time). The local run starts
# one server at a time; the Ray run is `structbench run --executor ray`, which starts a local Ray
# instance itself (ray.init finds the GPU: num_gpus 1) and stops it at the end: no cluster is started
# by hand. Each run has a deadline (half of what is left for the runs, then all of the rest); past it,
# SIGINT, structbench's Ctrl-C: completed records stay, the servers are stopped, the run is marked
# resumable, and it is packed as it is. Into $OUT: run-local.tgz, run-ray.tgz, times.json (wall
# clocks, exit codes, whether a deadline cut a run), client_scaling.txt and this call's log.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/../.." && pwd)
T0=$(date +%s); BUDGET=${SB_BUDGET_S:-570}; WORK=${SB_WORKDIR:-/tmp/sbray}
SUITE=${SB_SUITE:-$root/suites/h200_ray.yaml}   # another suite only to try the script out
NAME=$(sed -n 's/^name: *//p' "$SUITE" | head -1)
# SB_SCALING=0 skips client_scaling.py (measured on the H200 on 2026-12-03: results/h200/ray/README.md).
SCALING=${SB_SCALING:-1}; SCALING_S=$(( SCALING ? 75 : 10 ))   # client_scaling.py (~30 s on 16 cores), packing
GRACE_S=${SB_GRACE_S:-60}   # for an interrupt: cancelled requests, the servers' stop (20 s grace each), the report
exec > >(tee -a "$OUT/ray_h200.log") 2>&1
export PYTHONUNBUFFERED=1 PYTHONPATH="$root/runner:/tmp/site-sbdeps:/tmp/site-ray:/tmp/site-sglang"
export STRUCTBENCH_GIT_SHA=${SB_GIT_SHA:-${STRUCTBENCH_GIT_SHA:-unknown}}
say() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }

python3 -c "import ray; assert ray.__version__ == '2.60.0', ray.__version__" \
  || { say "Ray 2.60.0 is not importable from /tmp/site-ray"; exit 2; }
# Only a suite on the converted Qwen checkpoint needs the conversion.
if grep -q "payload/qwen-hf" "$SUITE"; then bash "$here/crosscheck.sh" convert || exit 1; fi
RUNS=${SB_RUNS:-local ray}
# Kernel caches an earlier session's host built (jit_cache.sh save, carried as .gpu/jit): saves the
# ~115 s vLLM spends building them on its first start on a fresh host. None carried: nothing loaded.
bash "$here/jit_cache.sh" load "$root/.gpu/jit"
mkdir -p "$WORK"

declare -A WALL RC CUT
run_until() {  # LABEL DEADLINE_EPOCH ARGS...: structbench run, SIGINT at the deadline; sets WALL/RC/CUT
  local label=$1 deadline=$2; shift 2
  rm -rf "${WORK:?}/$label"
  local cmd=(python3 -m structbench run "$SUITE" --results-dir "$WORK/$label" --no-progress "$@")
  say "$label: ${cmd[*]} (deadline in $(( deadline - $(date +%s) )) s)"
  local t0; t0=$(date +%s.%N); CUT[$label]=false
  # Job control on: a background job of a non-interactive shell would ignore SIGINT.
  set -m; "${cmd[@]}" & local pid=$!; set +m
  while kill -0 "$pid" 2>/dev/null; do
    if (( $(date +%s) >= deadline )); then say "$label: deadline, interrupting"; kill -INT "$pid"; CUT[$label]=true; break; fi
    sleep 1
  done
  wait "$pid"; RC[$label]=$?
  WALL[$label]=$(python3 -c "import sys, time; print(round(time.time() - float(sys.argv[1]), 1))" "$t0")
  say "$label: exited ${RC[$label]} after ${WALL[$label]} s"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader 2>/dev/null | sed "s/^/$label: GPU memory used after: /"
  (cd "$WORK/$label" && tar -czf "$OUT/run-$label.tgz" --exclude='*.html' --exclude='plots' "$NAME") \
    || say "$label: no run folder to pack"
}

runs_left=$(( $(left) - SCALING_S ))
(( runs_left > 2 * GRACE_S )) || { say "only $runs_left s left for the runs"; exit 1; }
case "$RUNS" in
  "local ray")
    # The local run's share: SB_LOCAL_S seconds, else half. On a fresh machine its first vLLM start
    # JIT-compiles kernels for ~100 s (149 s to healthy, SmolLM2, eager; 45 s once cached), which the
    # Ray run then finds cached: on 2026-12-03 a half of 510 s cut the local run in its first cell.
    local_s=${SB_LOCAL_S:-$(( runs_left / 2 ))}
    run_until local $(( $(date +%s) + local_s - GRACE_S ))
    run_until ray $(( T0 + BUDGET - SCALING_S - GRACE_S )) --executor ray ;;
  # One run per call. local2 (or local3, ...) repeats the local run under its own label, on the host
  # the earlier calls ran on: the same-host noise figure next to local and ray.
  local|local[0-9]) run_until "$RUNS" $(( T0 + BUDGET - SCALING_S - GRACE_S )) ;;
  ray|ray[0-9]) run_until "$RUNS" $(( T0 + BUDGET - SCALING_S - GRACE_S )) --executor ray ;;
  *) say "SB_RUNS is 'local ray', 'local', 'ray', or one of those with a digit (local2), not '$RUNS'"; exit 2 ;;
esac

# One entry per run, kept across calls in $WORK/times.json (SB_RUNS=local, then SB_RUNS=ray).
python3 - "$WORK/times.json" "${SUITE#"$root"/}" "$STRUCTBENCH_GIT_SHA" \
  $(for l in "${!WALL[@]}"; do echo "$l=${WALL[$l]},${RC[$l]},${CUT[$l]}"; done) <<'EOF'
import json, os, sys
path, suite, sha, *runs = sys.argv[1:]
times = json.load(open(path)) if os.path.exists(path) else {"suite": suite, "git_sha": sha}
for arg in runs:
    label, _, fields = arg.partition("=")
    wall, rc, cut = fields.split(",")
    if wall:
        times[label] = {"wall_s": float(wall), "exit": int(rc), "cut_by_deadline": cut == "true"}
with open(path, "w") as fh:
    json.dump(times, fh, indent=2)
print(json.dumps(times))
EOF
cp "$WORK/times.json" "$OUT/times.json"

scaling_s=$(( $(left) - 10 ))
if (( SCALING && scaling_s > 20 )); then
  say "client_scaling.py (at most $scaling_s s)"
  (cd "$root" && timeout "$scaling_s" python3 benchmarks/client_scaling.py) 2>&1 | tee "$OUT/client_scaling.txt"
else
  say "client_scaling.py not run (SB_SCALING=$SCALING, $scaling_s s left)" | tee "$OUT/client_scaling.txt"
fi
# SB_SAVE_JIT=1: this host's kernel caches into $OUT (at most 3 parts of 15 MiB: the device returns 8
# files), for the next session's `.gpu/jit`. Send it on the first run of a fresh host.
if [ "${SB_SAVE_JIT:-0}" = 1 ]; then JIT_MAX_PARTS=${JIT_MAX_PARTS:-3} bash "$here/jit_cache.sh" save "$OUT"; fi
ls -la "$OUT"
