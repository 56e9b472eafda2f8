"""Sandboxed, strict Jinja2 prompt templates."""

from __future__ import annotations

import pytest

from structbench.templates import TemplateError, render


def test_row_and_top_level_names() -> None:
    assert render("{{ text }} / {{ row.text }} / {{ row['n'] + 1 }}", {"text": "hi", "n": 1}) == "hi / hi / 2"


def test_plain_text_is_returned_unchanged() -> None:
    assert render("no braces here\n", {}) == "no braces here\n"


def test_tojson_does_not_html_escape() -> None:
    out = render("{{ obj | tojson }}", {"obj": {"a": "<b> & 'c'", "é": [1, 2.5, None]}})
    assert out == '{"a": "<b> & \'c\'", "é": [1, 2.5, null]}'
    assert render("{{ obj | tojson(indent=1) }}", {"obj": [1]}) == "[\n 1\n]"


def test_trailing_newline_is_kept() -> None:
    assert render("{{ a }}\n", {"a": 1}) == "1\n"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ missing }}", "'missing' is undefined"),
        ("{{ row.missing }}", "'dict object' has no attribute 'missing'"),
        ("{{ text.__class__ }}", "SecurityError: access to attribute '__class__'"),
        ("{{ ''.__class__.__mro__ }}", "SecurityError"),
        ("{% for %}", "template syntax error at line 1"),
        ("{{ 1 / 0 }}", "render failed: ZeroDivisionError"),
    ],
)
def test_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(template, {"text": "x"})
    assert message in str(info.value)


def test_row_key_named_row_does_not_hide_the_row() -> None:
    assert render("{{ row.row }}", {"row": 5}) == "5"
