"""The field reference: generated from the spec models, and README's copy kept equal to it."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from pydantic import BaseModel

from structbench.cli import main
from structbench.engines.registry import spec_classes
from structbench.spec.reference import BEGIN, END, field_reference, update_readme
from structbench.spec.suite import LoadSpec, SuiteSpec

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_holds_the_current_reference() -> None:
    text = README.read_text(encoding="utf-8")
    copy = text.split(BEGIN + "\n", 1)[1].split(END, 1)[0]
    assert copy == field_reference(), (
        "README.md's field reference is stale: run `python -m structbench.spec.reference README.md`"
    )


def test_every_field_is_listed_with_its_default_and_description() -> None:
    ref = field_reference()
    models: list[type[BaseModel]] = [SuiteSpec, LoadSpec, *spec_classes()]
    for model in models:
        for name in model.model_fields:
            assert f"| `{name}` |" in ref, (model.__name__, name)
    assert "| `concurrency` | list of int (at least 1 item) | `[8]` | Closed-loop concurrency levels" in ref
    assert "| `rate` | list of float (at least 1 item) | `[.inf]` |" in ref
    assert '| `mode` | `"offline"` \\| `"concurrency"` \\| `"rate"` | `"concurrency"` |' in ref
    assert '| `engines` | list of engine | `[{"kind": "embedded"}]` |' in ref
    assert "| `url` | str | required | Base URL of the server" in ref  # openai: no default
    for kind in ("json", "regex", "choice", "grammar", "chat", "fanout", "schema_corpus"):
        assert f"##### kind: {kind}\n" in ref


def test_fields_command_prints_it(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["fields"])
    assert res.exit_code == 0 and res.output == field_reference()
    stale = tmp_path / "README.md"
    stale.write_text(f"intro\n{BEGIN}\nold text\n{END}\nrest\n", encoding="utf-8")
    assert update_readme(stale) and not update_readme(stale)
    assert stale.read_text(encoding="utf-8") == f"intro\n{BEGIN}\n{field_reference()}{END}\nrest\n"
