#!/usr/bin/env bash
# crosscheck.sh: issue 15's device commands, after staging (benchmarks/gpu/STAGING.md).
#
#   bash benchmarks/gpu/crosscheck.sh setup         # convert the GGUF, start vLLM, then SGLang once vLLM has
#                                                   # profiled its memory (both detached), wait until healthy
#   bash benchmarks/gpu/crosscheck.sh wait          # wait for both again (when setup's call ran out of time)
#   bash benchmarks/gpu/crosscheck.sh run [PATHS]   # prepare the workload once, run arms until the budget,
#                                                   # report; PATHS: vllm-chat,sglang-generate,sglang-oai-chat
#   bash benchmarks/gpu/crosscheck.sh solo ENGINE [PATHS]  # one server at a time: stop the other engine's,
#                                                   # start ENGINE's alone (vllm|sglang), wait, then `run` its paths
#   bash benchmarks/gpu/crosscheck.sh convert       # only convert the GGUF (suite.sh's first step)
#   bash benchmarks/gpu/crosscheck.sh stop          # stop the two servers this script started
#
# `solo` gives each engine the whole GPU (its memory fraction counts only its own memory; with both
# resident, the second one's KV capacity depends on what the first one took) and no idle neighbour.
# Each call stays within XC_BUDGET_S (default 570 s) of its own wall time. The servers outlive
# the call (setsid nohup), and so does /tmp/xcheck, as long as the next call comes within ~30 s.
# `run` resumes: call it again until it prints "all arms done". Everything for $OUT is compact:
# crosscheck.json, crosscheck.md, backends.txt, crosscheck_raw.tgz (per-request data, texts left
# out), and this call's log.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
here=$(cd "$(dirname "$0")" && pwd); root=$(cd "$here/../.." && pwd)
T0=$(date +%s); BUDGET=${XC_BUDGET_S:-570}
SRC=${XC_GGUF_DIR:-/tmp/payload/qwen}          # the GGUF and convert_gguf.py (stage.sh pack ... qwen)
MODEL=${XC_MODEL:-/tmp/payload/qwen-hf}        # the bf16 checkpoint both servers serve
CTX=${XC_CONTEXT_LEN:-32768}                   # the same context length on both (the model's own)
MEM=${XC_MEM_FRACTION:-0.4}                    # the same memory fraction on both
# Extra server flags, word-split (e.g. "--load-format dummy" for a dummy-weight shape).
VARGS=${XC_VLLM_ARGS:-}; SARGS=${XC_SGLANG_ARGS:-}
# Extra crosscheck.py flags for prepare/run/report (e.g. "--prompts-per-concurrency 8").
XARGS=${XC_ARGS:-}
# Per-request output lengths uniform in [L(1-F), L(1+F)] (e.g. 0.5), the same for every client: fixed
# lengths make a closed loop run in lock-step waves, and TTFT then hangs on sub-ms arrival order.
# Unset: every request the fixed length, as before. A work folder keeps the rule it was prepared with.
if [ -n "${XC_OUTPUT_LEN_SPREAD:-}" ]; then XARGS="--output-len-spread $XC_OUTPUT_LEN_SPREAD $XARGS"; fi
VPORT=${XC_VLLM_PORT:-8100}; SPORT=${XC_SGLANG_PORT:-8200}; LOGS=/tmp/xcheck-logs; WORK=${XC_WORKDIR:-/tmp/xcheck}
mkdir -p "$LOGS" "$WORK"
logname=${1:-none}; [ "$logname" = solo ] && logname="solo-${2:-}"
exec > >(tee -a "$OUT/crosscheck_$logname.log") 2>&1
export PYTHONUNBUFFERED=1

left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
say() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
alive() { [ -f "$LOGS/$1.pid" ] && kill -0 "$(cat "$LOGS/$1.pid")" 2>/dev/null; }

convert() {
  if [ -f "$MODEL/config.json" ]; then say "checkpoint $MODEL ready (converted, or a dummy-weight config)"; return 0; fi
  [ -d "$SRC" ] || { say "no $SRC: stage the qwen chunks first"; return 1; }
  # transformers' GGUF loader needs the gguf package with its dist-info, alone on the path: the
  # whole SGLang site would shadow the image's transformers 5.17 with its 5.12.1.
  rm -rf /tmp/gguf-only && mkdir -p /tmp/gguf-only
  cp -r /tmp/site-sglang/gguf /tmp/site-sglang/gguf-*.dist-info /tmp/gguf-only/ || return 1
  say "converting $SRC -> $MODEL"
  PYTHONPATH=/tmp/gguf-only python3 "$SRC/convert_gguf.py" "$SRC" "$MODEL" || return 1
  python3 -c "import json,sys; c=json.load(open(sys.argv[1])); print('config:', c.get('architectures'), c.get('torch_dtype') or c.get('dtype'), 'quantization_config' in c)" "$MODEL/config.json"
}

start_vllm() {
  alive vllm && { say "vLLM already running"; return 0; }
  # Default kernels (FA3 on Hopper) and CUDA graphs: no --enforce-eager, no backend flags.
  # Dev mode adds POST /reset_prefix_cache, which the cross-check calls before every arm.
  setsid nohup env VLLM_SERVER_DEV_MODE=1 PYTHONPATH=/tmp/site-vllm python3 -m vllm.entrypoints.openai.api_server \
    --model "$MODEL" --host 127.0.0.1 --port $VPORT --gpu-memory-utilization "$MEM" --max-model-len "$CTX" \
    --enable-prompt-tokens-details $VARGS > "$LOGS/vllm.log" 2>&1 < /dev/null &
  echo $! > "$LOGS/vllm.pid"; say "started vLLM (pid $!)"
}

start_sglang() {
  alive sglang && { say "SGLang already running"; return 0; }
  # Two engines that profile memory at once misread each other's: wait for vLLM's KV-cache line.
  until ! alive vllm || grep -q "KV cache" "$LOGS/vllm.log" 2>/dev/null; do
    alive vllm || { say "vLLM died:"; tail -30 "$LOGS/vllm.log"; return 1; }
    (( $(left) > 60 )) || { say "no time left to start SGLang"; return 1; }
    sleep 2
  done
  # Default attention backend (FA3 on Hopper) and sampler: no --attention-backend/--sampling-backend.
  setsid nohup env PYTHONPATH=/tmp/site-sglang python3 -m sglang.launch_server --model-path "$MODEL" \
    --host 127.0.0.1 --port $SPORT --mem-fraction-static "$MEM" --context-length "$CTX" \
    --enable-cache-report --enable-metrics $SARGS > "$LOGS/sglang.log" 2>&1 < /dev/null &
  echo $! > "$LOGS/sglang.pid"; say "started SGLang (pid $!)"
}

wait_healthy() {  # NAME PORT: poll /health while the process lives and the budget lasts
  local name=$1 port=$2
  until curl -sf "http://127.0.0.1:$port/health" > /dev/null; do
    alive "$name" || { say "$name died:"; tail -40 "$LOGS/$name.log"; return 1; }
    (( $(left) > 15 )) || { say "$name not healthy yet; call 'wait' next"; return 1; }
    sleep 3
  done
  say "$name healthy"
}

stop_server() {  # NAME: TERM its process group, wait until it is gone (its GPU memory freed), else KILL
  alive "$1" || return 0
  local pid; pid=$(cat "$LOGS/$1.pid"); kill -TERM -- "-$pid" 2>/dev/null
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || { say "stopped $1"; return 0; }; sleep 1; done
  kill -KILL -- "-$pid" 2>/dev/null; sleep 3; say "killed $1"
}

backends() {  # [ENGINE]: what each live engine runs on, from its log and server info; also $WORK/info.json
  # Each engine's part is kept in $WORK, so that solo calls (one server at a time) add up.
  local only=${1:-}
  if [ -z "$only" ] || [ "$only" = vllm ]; then backends_vllm > "$WORK/backends-vllm.txt" 2>&1; fi
  if [ -z "$only" ] || [ "$only" = sglang ]; then backends_sglang > "$WORK/backends-sglang.txt" 2>&1; fi
  cat "$WORK"/backends-*.txt > "$OUT/backends.txt" 2>/dev/null
  nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv >> "$OUT/backends.txt" 2>/dev/null
  python3 - "$OUT/backends.txt" "$WORK/info.json" <<'PY'
import json, sys
json.dump({"backends_txt": open(sys.argv[1], encoding="utf-8", errors="replace").read().splitlines()}, open(sys.argv[2], "w"), indent=1)
PY
  cat "$OUT/backends.txt"
}

backends_vllm() {
    echo "== vLLM $(curl -s http://127.0.0.1:$VPORT/version)"
    grep -iE "attention backend|Using .*backend|FLASH_ATTN|flash.?attn|structured.?outputs|xgrammar|guidance|cuda ?graph|KV cache|max_num_batched|sampler" \
      "$LOGS/vllm.log" | cut -c1-300 | head -25
    nvidia-smi --query-gpu=memory.used --format=csv,noheader 2>/dev/null | sed 's/^/GPU memory used with vLLM alone: /'
}

backends_sglang() {
    echo "== SGLang"
    curl -s http://127.0.0.1:$SPORT/server_info | python3 -c "
import json, sys
d = json.load(sys.stdin)
for k in ('version', 'attention_backend', 'decode_attention_backend', 'prefill_attention_backend', 'sampling_backend',
          'grammar_backend', 'context_length', 'mem_fraction_static', 'max_total_num_tokens', 'chunked_prefill_size',
          'cuda_graph_max_bs', 'stream_interval', 'page_size'):
    print(f'{k}: {d.get(k)}')" 2>/dev/null
    grep -iE "fa3|attention backend|by default|grammar|sampling backend|cuda graph|KV Cache|max_total_num_tokens" \
      "$LOGS/sglang.log" | cut -c1-300 | head -25
    nvidia-smi --query-gpu=memory.used --format=csv,noheader 2>/dev/null | sed 's/^/GPU memory used: /'
}

xc() {  # crosscheck.py with the device's layout
  PYTHONPATH="$root/runner:/tmp/site-sbdeps" python3 "$here/crosscheck.py" "$@" --workdir "$WORK" --model "$MODEL" \
    --vllm-url http://127.0.0.1:$VPORT --sglang-url http://127.0.0.1:$SPORT \
    --sglang-pythonpath "/tmp/site-sglang:/tmp/site-ds${DSX}" --vllm-pythonpath "/tmp/site-vllm${DSX}" \
    --sb-pythonpath "$root/runner:/tmp/site-sbdeps" --sb-sglang-pythonpath "$root/runner:/tmp/site-sglang" $XARGS
}

server_pid() {  # PATH: the pid of the server that path talks to (a restarted server is warmed again)
  local e=vllm; [[ $1 == sglang* ]] && e=sglang; cat "$LOGS/$e.pid" 2>/dev/null || echo attached
}

run_paths() {  # PATHS: prepare the workload once, run its arms until the budget, report, pack
  local paths=$1
  for n in vllm:$VPORT sglang:$SPORT; do  # only the servers these paths need
    [[ $paths == *${n%%:*}* ]] || continue
    curl -sf "http://127.0.0.1:${n#*:}/health" > /dev/null || { say "${n%%:*} is not healthy"; tail -20 "$LOGS/${n%%:*}.log"; exit 1; }
  done
  if [ ! -f "$WORK/arms.jsonl" ] && [ -n "${XC_RESUME_FROM:-}" ] && [ -f "$XC_RESUME_FROM" ]; then
    # A machine that went cold lost $WORK: take back the arms an earlier call returned (its
    # crosscheck_raw.tgz); the workload is rebuilt by prepare, deterministically (seed 0).
    tar -xzf "$XC_RESUME_FROM" -C "$WORK" --exclude workload/workload.json --exclude crosscheck.json \
      && say "resumed $(wc -l < "$WORK/arms.jsonl") arm(s) from $XC_RESUME_FROM"
  fi
  [ -f "$WORK/workload/workload.json" ] || xc prepare || exit 1
  local p; for p in ${paths//,/ }; do  # one untimed warm-up per path and server start
    [ -f "$WORK/warm-$p-$(server_pid "$p")" ] && continue
    xc warmup --paths "$p" && touch "$WORK/warm-$p-$(server_pid "$p")"
  done
  xc run --paths "$paths" --deadline-s $(( $(left) - 25 ))
  xc report --info "$WORK/info.json" && cp "$WORK/crosscheck.json" "$WORK/crosscheck.md" "$OUT/"
  xc pack --pack-to "$OUT/crosscheck_raw.tgz"
}

# The optional dsx bundle (pandas, pyarrow, xxhash, fsspec) is only staged when the image lacks them.
DSX=""; [ -d /tmp/site-dsx ] && DSX=":/tmp/site-dsx"

case "${1:-}" in
  setup)
    python3 -c "import pandas, pyarrow, xxhash, fsspec" 2>/dev/null && say "image has pandas/pyarrow/xxhash/fsspec" \
      || say "WARNING: the image lacks pandas/pyarrow/xxhash/fsspec: stage the dsx bundle (STAGING.md)"
    convert || exit 1
    start_vllm && start_sglang || exit 1
    wait_healthy vllm $VPORT && wait_healthy sglang $SPORT && backends ;;
  wait)
    wait_healthy vllm $VPORT && wait_healthy sglang $SPORT && backends ;;
  run)
    run_paths "${2:-vllm-chat,sglang-generate,sglang-oai-chat}" ;;
  solo)
    eng=${2:-}
    case "$eng" in
      vllm) other=sglang; port=$VPORT; paths=${3:-vllm-chat} ;;
      sglang) other=vllm; port=$SPORT; paths=${3:-sglang-generate,sglang-oai-chat} ;;
      *) say "solo takes vllm or sglang"; exit 2 ;;
    esac
    stop_server "$other"
    convert || exit 1
    "start_$eng" || exit 1
    wait_healthy "$eng" "$port" || exit 1
    backends "$eng"
    run_paths "$paths" ;;
  convert)
    convert ;;
  stop)
    for s in sglang vllm; do stop_server "$s"; done ;;
  *) sed -n '2,19p' "$0"; exit 2 ;;
esac
