"""benchmarks/maskbench_check.py: the scorer's verdicts against MaskBench-style labelled instances."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from maskbench_check import cause, check_folder, main  # noqa: E402

D4 = "http://json-schema.org/draft-04/schema#"
D7 = "http://json-schema.org/draft-07/schema#"


def _put(data: Path, name: str, schema: object, tests: list[tuple[object, bool]]) -> None:
    doc = {"schema": schema, "tests": [{"data": d, "valid": v, "description": ""} for d, v in tests]}
    (data / name).write_text(json.dumps(doc))


def _folder(root: Path) -> Path:
    data = root / "maskbench" / "data"
    data.mkdir(parents=True)
    _put(data, "a.json", {"type": "integer"}, [(1, True), ("x", False)])
    # uuid is no draft-04 format: a draft-04 validator takes it as an annotation.
    _put(data, "b.json", {"$schema": D4, "type": "string", "format": "uuid"}, [("nope", False)])
    _put(data, "c.json", {"type": "string"}, [])
    # date is a draft-07 format, checked under the schema's own draft.
    _put(data, "d.json", {"$schema": D7, "type": "string", "format": "date"}, [("nope", False)])
    return root


def test_agreement_and_the_cause_of_each_disagreement(tmp_path: Path) -> None:
    result = check_folder(_folder(tmp_path))
    assert result["counts"] == {
        "schemas": 3,
        "schemas without tests": 1,
        "instances": 4,
        "agree": 3,
        "disagree": 1,
    }
    assert result["agreement"] == 0.75
    assert result["causes"] == {"format uuid is not checked under draft-04": 1}
    assert result["examples"] == {"format uuid is not checked under draft-04": ["b.json"]}


def test_a_disagreement_that_is_not_a_format_is_other() -> None:
    # minimum 3 fails under every draft: nothing a draft leaves unchecked explains a pass.
    assert cause({"$schema": D4, "type": "integer", "minimum": 3}, 1) == "other"
    assert cause({"$schema": D4, "oneOf": [{"format": "date"}, {"type": "integer"}]}, "x") == (
        "format date is not checked under draft-04"
    )


def test_main_prints_one_line_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    assert main(["--src", str(_folder(tmp_path)), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("4 labelled instances of 3 schemas (1 schemas have none): agree 3, disagree 1")
    assert json.loads(out.read_text())["agreement"] == 0.75
    with pytest.raises(SystemExit) as info:
        main(["--src", str(tmp_path / "empty")])
    assert info.value.code == 2
    assert "no maskbench/data/*.json" in capsys.readouterr().err
