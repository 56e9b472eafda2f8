"""``ignore_eos`` on SGLang's /generate path: no end-of-turn stop string cuts the output short."""

from __future__ import annotations

import json
from pathlib import Path

from structbench.engines.base import Call
from structbench.engines.registry import EngineEnv
from structbench.engines.sglang.engine import SglangEngine
from structbench.ir import Gen, Message
from structbench.spec.engines import SglangEngineSpec


def _body(engine: SglangEngine) -> dict[str, object]:
    call = Call("t/0", 0, 0, Gen("g", max_tokens=8), (Message("user", "hi"),))
    text = engine.render(call)
    return dict(json.loads(text[text.index("{") :]))


def test_ignore_eos_drops_the_template_stop(tmp_path: Path) -> None:
    spec = SglangEngineSpec(name="s", url="http://127.0.0.1:1", mode="generate")
    plain = _body(SglangEngine(spec, EngineEnv(tmp_path)))
    bench = _body(SglangEngine(spec, EngineEnv(tmp_path), extra_body={"ignore_eos": True}))
    assert plain["sampling_params"]["stop"]  # type: ignore[index]
    assert bench["sampling_params"]["stop"] == [] and bench["sampling_params"]["ignore_eos"] is True  # type: ignore[index]
