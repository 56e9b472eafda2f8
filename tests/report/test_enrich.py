"""The roofline added to summarized cells, from given model facts; the report loads no model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from structbench.metrics import CellInfo, CellSummary, Latency
from structbench.metrics.roofline import Gpu, ModelSize
from structbench.report.enrich import local_model_sizes, roofline_cells
from structbench.report.model_facts import EngineModel, RunModels
from structbench.stats import describe

H200 = Gpu("H200", 4.8e12)
SIZE = ModelSize(params=1_000_000_000, read_params=1_000_000_000, bytes_per_param=2)


def _cell(cell: str, engine: str, tpot_ms: float | None) -> CellSummary:
    lat = Latency(tpot=describe([tpot_ms] if tpot_ms is not None else []))
    return CellSummary(CellInfo(cell, engine, "t"), "complete", latency=lat)


def test_roofline_cells_from_given_sizes() -> None:
    cells = [_cell("a.t", "a", 4.0), _cell("b.t", "b", 4.0), _cell("a.u", "a", None)]
    a, b, no_tpot = roofline_cells(cells, {"a": SIZE, "b": None}, H200)
    assert a.roofline is not None
    assert a.roofline.limit_tok_s == pytest.approx(4.8e12 / 2e9)
    assert a.roofline.fraction == pytest.approx(250 / a.roofline.limit_tok_s)
    assert b.roofline is None and no_tpot.roofline is None  # unknown size; no TPOT
    assert all(c.roofline is None for c in roofline_cells(cells, {"a": SIZE}, None))  # no GPU


def test_local_model_sizes_read_config_only_where_the_folder_exists(tmp_path: Path) -> None:
    cfg = {
        "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
        "num_key_value_heads": 3, "head_dim": 64, "vocab_size": 49152, "dtype": "bfloat16",
    }  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    models = RunModels(
        {
            "here": EngineModel("here", "vllm", (str(tmp_path),)),
            "gone": EngineModel("gone", "vllm", ("/nowhere",)),
        }
    )
    sizes = local_model_sizes(models)
    here = sizes["here"]
    assert here is not None and here.params == pytest.approx(134.5e6, rel=0.01)
    assert sizes["gone"] is None
