"""Prompt templates: sandboxed Jinja2 with strict undefined variables.

A template sees the data row twice: as ``row`` (``{{ row.text }}``) and with each of its
keys at the top level (``{{ text }}``). ``row`` wins if a column is itself named ``row``.
The sandbox matters because task files may come from other people: a template must not
reach Python internals. Undefined names fail loudly instead of rendering as empty text,
which would silently benchmark a broken prompt.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from structbench.errors import UserError

__all__ = ["TemplateError", "render"]


class TemplateError(UserError):
    """A template that does not compile or does not render on a row."""


def _tojson(value: Any, indent: int | None = None) -> str:
    # Jinja's own ``tojson`` HTML-escapes <, >, & and ' (it targets HTML pages), which
    # would change the text a model sees and the reference a scorer compares against.
    return json.dumps(value, ensure_ascii=False, indent=indent)


@functools.cache
def _env() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["tojson"] = _tojson
    env.policies["json.dumps_function"] = json.dumps
    return env


@functools.lru_cache(maxsize=512)
def _compile(template: str) -> jinja2.Template:
    # Work items render the same few templates once per row: compile each once.
    try:
        return _env().from_string(template)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(f"template syntax error at line {e.lineno}: {e.message}") from e


def render(template: str, row: Mapping[str, Any]) -> str:
    """Render ``template`` with a data row.

    Args:
        template: Jinja2 source. Plain text without ``{{``/``{%`` is returned unchanged.
        row: The data row; exposed as ``row`` and as top-level names.

    Returns:
        The rendered text.

    Raises:
        TemplateError: On a syntax error, an undefined name, or a sandbox violation.
    """
    if "{" not in template:
        return template
    tpl = _compile(template)
    names: dict[str, Any] = {str(k): v for k, v in row.items()}
    names["row"] = row
    try:
        return tpl.render(names)
    except jinja2.UndefinedError as e:
        raise TemplateError(str(e.message)) from e
    except jinja2.TemplateError as e:  # SecurityError and friends
        raise TemplateError(f"{type(e).__name__}: {e}") from e
    except (TypeError, ValueError, ArithmeticError, LookupError) as e:
        raise TemplateError(f"render failed: {type(e).__name__}: {e}") from e
