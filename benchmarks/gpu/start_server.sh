#!/usr/bin/env bash
# Start an 8B-shaped dummy-weight server in the background, detached (setsid), so it outlives the device
# call that started it. Usage: start_server.sh vllm|sglang [MODEL_DIR] [MEM_FRACTION]
#   vllm  : port 8100, CUDA graphs on (realistic throughput), dev mode for /reset_prefix_cache
#   sglang: port 8200, its default kernels (FA3 on Hopper: stage the bundle with PRUNE=0, issue 15)
set -euo pipefail
engine=$1; model=${2:-/tmp/payload/dummies/llama8b}; mem=${3:-0.4}
mkdir -p /tmp/gpu-logs
case $engine in
  vllm) cmd=(env VLLM_SERVER_DEV_MODE=1 PYTHONPATH=/tmp/site-vllm python3 -m vllm.entrypoints.openai.api_server --model "$model"
             --load-format dummy --host 127.0.0.1 --port 8100 --gpu-memory-utilization "$mem"
             --max-model-len 4096 --enable-prompt-tokens-details
             --structured-outputs-config '{"backend":"xgrammar"}') ;;
  sglang) cmd=(env PYTHONPATH=/tmp/site-sglang python3 -m sglang.launch_server --model-path "$model"
             --load-format dummy --host 127.0.0.1 --port 8200 --mem-fraction-static "$mem"
             --grammar-backend xgrammar
             --enable-cache-report --enable-metrics) ;;
  *) echo "engine must be vllm or sglang" >&2; exit 2 ;;
esac
setsid nohup "${cmd[@]}" > "/tmp/gpu-logs/$engine.log" 2>&1 < /dev/null &
echo "started $engine (pid $!), log /tmp/gpu-logs/$engine.log"
