#!/usr/bin/env bash
# suite.sh: a structbench suite on the lent H200, inside one device call's budget, resumable across calls.
#
#   SB_BUDGET_S=570 bash benchmarks/gpu/suite.sh SUITE [ENGINE ...]     # e.g. suites/h200_qwen.yaml
#
# After staging (STAGING.md): converts the Qwen checkpoint when it is missing (crosscheck.sh convert),
# then runs `structbench run SUITE` (only the named engines, when given) with the run folder under
# /tmp/sbsuite. When the call's budget is about to run out it sends SIGINT, structbench's Ctrl-C:
# completed records stay, the launched server is stopped, the run is marked resumable. The run folder
# goes to $OUT/run-<suite name>.tgz either way. The next call resumes it (`structbench run --resume`), from
# /tmp/sbsuite while the machine is warm, else from SB_RESUME_FROM=<a returned run-*.tgz in the tree>.
# Engines structbench launches get their own PYTHONPATH from the suite (launch.env); this process
# needs the SGLang frontend for program mode, after structbench's own dependencies.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/../.." && pwd)
T0=$(date +%s); BUDGET=${SB_BUDGET_S:-570}; WORK=${SB_WORKDIR:-/tmp/sbsuite}
suite=${1:?usage: suite.sh SUITE [ENGINE ...]}; shift
mkdir -p "$WORK"
exec > >(tee -a "$OUT/suite_$(basename "$suite" .yaml).log") 2>&1
export PYTHONUNBUFFERED=1 PYTHONPATH="$root/runner:/tmp/site-sbdeps:/tmp/site-sglang"
export STRUCTBENCH_GIT_SHA=${SB_GIT_SHA:-${STRUCTBENCH_GIT_SHA:-unknown}}
say() { echo "[$(( $(date +%s) - T0 ))s] $*"; }

# Kernel caches an earlier session's host built (jit_cache.sh save, carried as .gpu/jit): saves the
# ~115 s vLLM spends building them on its first start on a fresh host. None carried: nothing loaded.
bash "$here/jit_cache.sh" load "$root/.gpu/jit"
bash "$here/crosscheck.sh" convert || exit 1
# The suite's own name: its run folders are results/<name>/<stamp>_<id>/.
name=$(sed -n 's/^name: *//p' "$root/$suite" | head -1); [ -n "$name" ] || { say "no name: in $suite"; exit 2; }
if [ -n "${SB_RESUME_FROM:-}" ] && [ -z "$(ls -d "$WORK/results/$name"/*/ 2>/dev/null)" ]; then
  say "unpacking $SB_RESUME_FROM"; tar -xzf "$root/$SB_RESUME_FROM" -C "$WORK" || exit 1
fi
run_dir=$(ls -d "$WORK/results/$name"/*/ 2>/dev/null | tail -1)
engines=(); for e in "$@"; do engines+=(--engine "$e"); done
if [ -n "$run_dir" ]; then
  say "resuming $run_dir"; cmd=(python3 -m structbench run --resume "$run_dir" --no-progress)
else
  cmd=(python3 -m structbench run "$root/$suite" --results-dir "$WORK/results" --no-progress "${engines[@]}")
fi
say "${cmd[*]}"
# Job control on: a background job of a non-interactive shell would ignore SIGINT.
set -m; "${cmd[@]}" & pid=$!; set +m
# Interrupt SB_GRACE_S (default 120) before the budget ends: cancelled requests, the server's stop
# (20 s grace) and the report. On 2026-12-03 a run of 1,000 stuck requests took over 100 s to stop
# after a 60 s margin, the call hit its limit and the tar below never ran; so if structbench has not
# exited 30 s before the budget ends, its process group is killed: the records on disk are complete
# lines (appended as they finish), `--resume` takes them, and the tar still runs.
GRACE=${SB_GRACE_S:-120}
while kill -0 "$pid" 2>/dev/null; do
  if (( $(date +%s) - T0 > BUDGET - GRACE )); then say "budget: interrupting"; kill -INT "$pid"; break; fi
  sleep 2
done
while kill -0 "$pid" 2>/dev/null; do
  if (( $(date +%s) - T0 > BUDGET - 30 )); then say "budget: killing"; kill -KILL -- "-$pid" 2>/dev/null; break; fi
  sleep 2
done
wait "$pid"; rc=$?
say "structbench exited $rc"
(cd "$WORK" && tar -czf "$OUT/run-$name.tgz" --exclude='*.html' --exclude='plots' "results/$name")
ls -la "$OUT"
