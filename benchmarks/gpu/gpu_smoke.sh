#!/usr/bin/env bash
# gpu_smoke.sh: the device command for issues 3, 4 and 6. One structbench run of suites/gpu.yaml, in which
# structbench launches each engine itself (real vLLM, real SGLang, SmolLM2), samples GPU memory with NVML,
# and stops each server. Then it starts the 8B-shaped dummy vLLM server for the next call
# (h200_crosscheck.sh), so its start-up overlaps the turnaround.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" /tmp/payload
here=$(cd "$(dirname "$0")" && pwd)
[ -d .gpu/dummy8b/llama8b ] && cp -r .gpu/dummy8b/llama8b /tmp/payload/
export PYTHONUNBUFFERED=1
PYTHONPATH=${SB_RUNNER:-$PWD/runner}:/tmp/site-sglang timeout "${SMOKE_LIMIT_S:-480}" python3 -m structbench.cli run \
  suites/gpu.yaml --results-dir /tmp/sbres-gpu --no-progress 2>&1 | tail -80
tar czf "$OUT/gpu_run.tgz" -C /tmp/sbres-gpu . && echo "packed $(du -h "$OUT/gpu_run.tgz" | cut -f1)"
[ -d /tmp/payload/llama8b ] && bash "$here/start_server.sh" vllm /tmp/payload/llama8b 0.4
