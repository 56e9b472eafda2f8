#!/usr/bin/env bash
# wait_healthy.sh PORT [TIMEOUT_S]: poll /health until it answers 200; print the seconds waited.
port=$1; limit=${2:-500}; t0=$(date +%s)
until curl -sf "http://127.0.0.1:$port/health" > /dev/null; do
  if (( $(date +%s) - t0 > limit )); then echo "port $port not healthy after ${limit}s" >&2; exit 1; fi
  sleep 2
done
echo "port $port healthy after $(( $(date +%s) - t0 ))s"
