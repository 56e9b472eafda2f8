#!/usr/bin/env bash
# h200_crosscheck.sh: the issue-9 device command. Expects the dummy vLLM server to be starting already
# (start_server.sh vllm). Starts SGLang once vLLM has finished its memory profiling (two engines that
# profile at the same time misread each other's memory), waits for both, then runs
#   1. one structbench run over both engines (suites/h200.yaml, attached), and
#   2. each engine's own client on the same shape (512 in / 256 out, 400 prompts, concurrency 64).
# Everything lands in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
here=$(cd "$(dirname "$0")" && pwd)
t0=$(date +%s)
until grep -q "KV cache" /tmp/gpu-logs/vllm.log 2>/dev/null; do
  (( $(date +%s) - t0 > 300 )) && { echo "vLLM never reported its KV cache"; break; }
  sleep 2
done
bash "$here/start_server.sh" sglang /tmp/payload/llama8b 0.4
bash "$here/wait_healthy.sh" 8100 400 && bash "$here/wait_healthy.sh" 8200 400 || {
  tail -30 /tmp/gpu-logs/*.log; exit 1; }
export PYTHONUNBUFFERED=1
PYTHONPATH=${SB_RUNNER:-$PWD/runner}:/tmp/site-sglang timeout 300 python3 -m structbench.cli run suites/h200.yaml \
  --results-dir /tmp/sbres --no-progress 2>&1 | tail -60
PYTHONPATH=/tmp/site-vllm timeout 120 python3 -m vllm.entrypoints.cli.main bench serve --backend vllm \
  --base-url http://127.0.0.1:8100 --model /tmp/payload/llama8b --dataset-name random \
  --random-input-len 512 --random-output-len 256 --num-prompts 400 --max-concurrency 64 --ignore-eos \
  --save-result --result-dir "$OUT" --result-filename vllm_bench_serve.json 2>&1 | tail -30
python3 "$here/sharegpt_synth.py" /tmp/sharegpt.json
PYTHONPATH=/tmp/site-sglang:/tmp/site-ds timeout 120 python3 -m sglang.bench_serving --backend sglang \
  --host 127.0.0.1 --port 8200 --dataset-name random-ids --dataset-path /tmp/sharegpt.json \
  --random-input-len 512 --random-output-len 256 --random-range-ratio 1.0 --num-prompts 400 \
  --max-concurrency 64 --output-file "$OUT/sglang_bench_serving.jsonl" 2>&1 | tail -30
nvidia-smi --query-gpu=memory.used,memory.total --format=csv > "$OUT/nvidia_smi.csv"
tar czf "$OUT/h200_run.tgz" -C /tmp/sbres . && echo "packed $(du -h "$OUT/h200_run.tgz" | cut -f1)"
