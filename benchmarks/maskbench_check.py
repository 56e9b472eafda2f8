"""structbench's schema validity against MaskBench's labelled instances.

MaskBench (``maskbench/data/*.json`` in the public guidance-ai/jsonschemabench repository)
holds ~10k real-world schemas, each with instances labelled valid or invalid. structbench's
``schema_valid`` scorer must agree with those labels, or say why not: this script runs every
labelled instance through the scorer's own guarded checker (the schema's declared draft,
that draft's format checker, a time limit per check) and prints the agreement::

    python benchmarks/maskbench_check.py --src PATH/TO/jsonschemabench [--json OUT.json]

Each disagreement gets a cause. "format F is not checked under DRAFT": the label depends on
a ``format`` that the schema's declared draft does not define (``uuid`` or ``date`` in a
draft-04 schema, say), which a validator of that draft treats as an annotation; a 2020-12
validator with every format on, which is what the label assumes, finds only such formats
wrong. Anything else is "other" and worth a look. The dataset is read in place, never copied.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from structbench.schema_drafts import draft_of, validator_class
from structbench.scoring.guard import GuardedChecker

__all__ = ["cause", "check_folder", "main"]

TIMEOUT_S = 10.0


def _errors(error: Any) -> Iterator[Any]:
    """An error and, for oneOf/anyOf, the errors of its branches: the leaves that decided it."""
    if error.context:
        for sub in error.context:
            yield from _errors(sub)
    else:
        yield error


def cause(schema: Any, instance: Any) -> str:
    """Why an instance labelled invalid passes under the schema's declared draft."""
    from jsonschema import Draft202012Validator

    draft = draft_of(schema)
    checked = set(validator_class(schema).FORMAT_CHECKER.checkers)
    full = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    leaves = [e for top in full.iter_errors(instance) for e in _errors(top)]
    # A oneOf's other branches fail for their own reasons too: the formats alone are the cause.
    unchecked = sorted({str(e.validator_value) for e in leaves if e.validator == "format"} - checked)
    if unchecked:
        return f"format {', '.join(unchecked)} is not checked under {draft}"
    return "other"


def _cases(src: Path) -> Iterator[tuple[str, Any, list[dict[str, Any]]]]:
    data = src / "maskbench" / "data" if (src / "maskbench" / "data").is_dir() else src
    files = sorted(data.glob("*.json"))
    if not files:
        print(f"error: {src}: no maskbench/data/*.json (give the jsonschemabench checkout)", file=sys.stderr)
        raise SystemExit(2)
    for path in files:
        doc = json.loads(path.read_text(encoding="utf-8"))
        yield path.name, doc.get("schema"), list(doc.get("tests") or [])


def check_folder(src: Path) -> dict[str, Any]:
    """Agreement counts, causes of disagreement, and up to 20 examples of each cause."""
    checker = GuardedChecker()
    counts: Counter[str] = Counter()
    causes: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    try:
        for name, schema, tests in _cases(src):
            if not tests:
                counts["schemas without tests"] += 1
                continue
            counts["schemas"] += 1
            text = json.dumps(schema)
            for test in tests:
                counts["instances"] += 1
                got = checker.check_schema(text, json.dumps(test["data"]), TIMEOUT_S).passed
                want = bool(test["valid"])
                if got is None:
                    counts["unjudged"] += 1
                    why = "unjudged (invalid schema or time limit)"
                elif got == want:
                    counts["agree"] += 1
                    continue
                else:
                    counts["disagree"] += 1
                    why = cause(schema, test["data"]) if got else "structbench invalid, labelled valid"
                causes[why] += 1
                examples.setdefault(why, [])
                if len(examples[why]) < 20:
                    examples[why].append(name)
    finally:
        checker.close()
    judged = counts["agree"] + counts["disagree"]
    return {
        "counts": dict(counts),
        "agreement": round(counts["agree"] / judged, 6) if judged else None,
        "causes": dict(causes.most_common()),
        "examples": examples,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", type=Path, required=True, help="a jsonschemabench checkout or its maskbench/data")
    p.add_argument("--json", type=Path, help="also write the result here")
    args = p.parse_args(argv)
    result = check_folder(args.src)
    c = result["counts"]
    print(
        f"{c.get('instances', 0)} labelled instances of {c.get('schemas', 0)} schemas "
        f"({c.get('schemas without tests', 0)} schemas have none): agree {c.get('agree', 0)}, "
        f"disagree {c.get('disagree', 0)}, unjudged {c.get('unjudged', 0)}; agreement {result['agreement']}"
    )
    for why, n in result["causes"].items():
        print(f"  {n:6d}  {why}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
