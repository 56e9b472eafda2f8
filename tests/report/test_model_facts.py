"""Model facts: recorded at engine start, read back first; local config.json only for version 1."""

from __future__ import annotations

import json
from pathlib import Path

from structbench.metrics.roofline import ModelSize, model_size
from structbench.model_config import served_model_facts
from structbench.report.model_facts import local_model_size, run_models
from structbench.runfolder import EngineFacts, GpuFacts, HardwareFacts, RunManifest

#: A Llama-like config: 2 layers, GQA (4 heads, 2 KV heads), untied embeddings.
CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 100,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}


def _model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIG))
    return folder


def test_served_model_facts_read_the_first_local_config(tmp_path: Path) -> None:
    folder = _model_dir(tmp_path)
    facts = served_model_facts(("/nowhere/model", str(folder)), "float32")
    size = model_size(CONFIG, "float32", str(folder / "config.json"))
    assert facts is not None and size is not None
    assert (facts.params, facts.read_params, facts.bytes_per_param) == (size.params, size.read_params, 4)
    arch = (facts.layers, facts.hidden_size, facts.attention_heads, facts.kv_heads, facts.vocab_size)
    assert arch == (2, 64, 4, 2, 100) and facts.source == str(folder / "config.json")
    assert served_model_facts(("/nowhere/model",), None) is None


def test_recorded_facts_come_first_and_need_no_local_model(tmp_path: Path) -> None:
    folder = _model_dir(tmp_path)
    facts = served_model_facts((str(folder),), None)
    (folder / "config.json").unlink()  # as when the report is rebuilt on another machine
    engine = EngineFacts(
        name="v", kind="vllm", model=str(folder), model_paths=(str(folder),), served_model=facts
    )
    hw = HardwareFacts(gpus=(GpuFacts(index=0, name="NVIDIA H200"),))
    RunManifest(run_id="r", suite="s", engines={"v": engine}, hardware=hw).write(tmp_path)
    models = run_models(tmp_path)
    assert models.gpu is not None and models.gpu.name == "H200"
    size = local_model_size(models.engines["v"])
    assert facts is not None and size == ModelSize(facts.params, facts.read_params, 2, facts.source)


def test_local_config_stands_in_for_version_1_runs_only(tmp_path: Path) -> None:
    folder = _model_dir(tmp_path)
    v2 = EngineFacts(name="v", kind="vllm", model_paths=(str(folder),))
    RunManifest(run_id="r", suite="s", engines={"v": v2}).write(tmp_path)
    assert local_model_size(run_models(tmp_path).engines["v"]) is None  # nothing recorded: no guess
    v1 = {"schema_version": 1, "engines": {"v": {"kind": "vllm", "model": str(folder), "extra": {}}}}
    (tmp_path / "manifest.json").write_text(json.dumps(v1))
    size = local_model_size(run_models(tmp_path).engines["v"])
    assert size is not None and size == model_size(CONFIG, None, str(folder / "config.json"))
