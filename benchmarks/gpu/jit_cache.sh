#!/usr/bin/env bash
# jit_cache.sh: keep the kernel caches a fresh GPU host builds on its first engine start, so that the
# next session's host does not build them again.
#
#   bash benchmarks/gpu/jit_cache.sh save OUT     # after a run: OUT/jit-cache.tgz.00, .01, ... (<= 15 MiB each)
#   bash benchmarks/gpu/jit_cache.sh load DIR     # before a run: unpack DIR/jit-cache.tgz.* where they came from
#   bash benchmarks/gpu/jit_cache.sh sizes        # what each cache folder holds now (du), saved or not
#
# Why: on a fresh H200 host, vLLM 0.26's first start spends ~105 s silent between its kernel warm-up
# and "Kernel JIT monitor activated" (results/h200/ray/h200_ray/20261204T211932Z_4bf717, engine init
# 108.9 s), against 2-3 s on the same host once its caches are warm. Device time is 30 minutes a
# session and every session gets a fresh host. Which folder holds what was built is not established:
# `sizes` prints them all, so that the first `save` also says where the time went.
#
# The device returns at most 8 files of 16 MiB (64 MiB in all): save splits the archive into 15 MiB
# parts and refuses (exit 3, nothing written) past JIT_MAX_PARTS (default 4) parts. To send the parts
# back, copy them into a git-ignored folder (e.g. .gpu/jit/) and carry that folder.
set -uo pipefail

# Absolute paths, so that `load` puts each folder back where `save` found it.
cache_dirs() {
  local h=${HOME:-/root}
  for d in "$h/.cache/flashinfer" "$h/.cache/vllm" "$h/.cache/tvm-ffi" "$h/.cache/sglang" \
    "$h/.triton/cache" "$h/.nv/ComputeCache" "${JIT_TMP:-/tmp}/torchinductor_$(id -un 2>/dev/null || echo root)"; do
    [ -d "$d" ] && echo "$d"
  done
}

cmd=${1:-}
case "$cmd" in
  sizes)
    dirs=$(cache_dirs)
    [ -n "$dirs" ] || { echo "jit_cache: no cache folders"; exit 0; }
    # shellcheck disable=SC2086
    du -sh $dirs ;;
  save)
    out=${2:?usage: jit_cache.sh save OUT}; max=${JIT_MAX_PARTS:-4}
    dirs=$(cache_dirs)
    [ -n "$dirs" ] || { echo "jit_cache: no cache folders to save"; exit 0; }
    # shellcheck disable=SC2086
    du -sh $dirs
    mkdir -p "$out"; tmp=$(mktemp -d)
    # shellcheck disable=SC2086
    tar -czf "$tmp/jit-cache.tgz" -P $dirs || { rm -rf "$tmp"; echo "jit_cache: tar failed" >&2; exit 1; }
    split -b 15M -d "$tmp/jit-cache.tgz" "$tmp/jit-cache.tgz."
    rm "$tmp/jit-cache.tgz"
    n=$(find "$tmp" -name 'jit-cache.tgz.*' | wc -l)
    if (( n > max )); then
      echo "jit_cache: $n parts of 15 MiB, more than JIT_MAX_PARTS=$max: not saved" >&2; rm -rf "$tmp"; exit 3
    fi
    mv "$tmp"/jit-cache.tgz.* "$out"/; rmdir "$tmp"
    ls -l "$out"/jit-cache.tgz.* ;;
  load)
    dir=${2:?usage: jit_cache.sh load DIR}
    parts=$(find "$dir" -maxdepth 1 -name 'jit-cache.tgz.*' 2>/dev/null | sort)
    [ -n "$parts" ] || { echo "jit_cache: no jit-cache.tgz.* in $dir: nothing loaded"; exit 0; }
    # shellcheck disable=SC2086
    cat $parts | tar -xzf - -P || { echo "jit_cache: unpacking $dir failed" >&2; exit 1; }
    echo "jit_cache: loaded $(echo "$parts" | wc -l) part(s) from $dir"
    bash "$0" sizes ;;
  *) echo "usage: jit_cache.sh save OUT | load DIR | sizes" >&2; exit 2 ;;
esac
