"""Which grammar backend an engine runs, and the exact version of its library, for the manifest.

A coverage number means little without the grammar library behind it: xgrammar 0.1 and
0.2 accept different schemas. So every engine records three facts in its
:class:`~structbench.engines.base.EngineInfo` extras, under engine-neutral keys the
report reads (:mod:`structbench.engine_facts`):

- the backend, as the engine's own flag names it (``xgrammar``, ``guidance``, ...);
- where that came from: the launch flag, the server's own report, or the default;
- the library versions, read with ``importlib.metadata`` in the interpreter that runs
  the engine (the launched server's ``python``, or this process for the embedded one).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence

from structbench.engine_facts import GRAMMAR_BACKEND, GRAMMAR_LIBRARY, GRAMMAR_SOURCE
from structbench.errors import UserError

__all__ = [
    "check_declared",
    "grammar_extras",
    "libraries_of",
    "library_versions",
    "local_versions",
]

#: The distributions behind each backend name. vLLM's and SGLang's ``outlines`` backends
#: compile with outlines-core; ``auto`` may pick any of vLLM's three.
_LIBRARIES: dict[str, tuple[str, ...]] = {
    "xgrammar": ("xgrammar",),
    "guidance": ("llguidance",),
    "llguidance": ("llguidance",),
    "outlines": ("outlines_core", "outlines"),
    "auto": ("xgrammar", "llguidance", "outlines_core"),
}
_PROBE = (
    "import importlib.metadata as m, json, sys\n"
    "out = {}\n"
    "for d in sys.argv[1:]:\n"
    "    try:\n"
    "        out[d] = m.version(d)\n"
    "    except m.PackageNotFoundError:\n"
    "        pass\n"
    "print(json.dumps(out))\n"
)


def libraries_of(backend: str) -> tuple[str, ...]:
    """The distributions whose versions describe ``backend`` (empty when unknown)."""
    return _LIBRARIES.get(backend, ())


def library_versions(
    python: str, dists: Sequence[str], env: Mapping[str, str] | None = None, timeout_s: float = 60.0
) -> dict[str, str]:
    """``{distribution: version}`` as seen by the interpreter ``python`` (missing ones left out).

    Runs a few lines of ``importlib.metadata`` there, with the launch's ``env`` over this
    process's environment (as the server gets it), so the version is the one the server
    imports, not the one this process happens to have: on the H200 each engine's packages
    sit on its own ``PYTHONPATH``, and without it vLLM's xgrammar read as SGLang's. Empty
    when it cannot run.
    """
    if not dists:
        return {}
    full_env = {**os.environ, **env} if env else None
    try:
        done = subprocess.run(
            [python, "-c", _PROBE, *dists],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            env=full_env,
        )
        found = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError, IndexError):
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def local_versions(dists: Sequence[str]) -> dict[str, str]:
    """``{distribution: version}`` of this process (the embedded engine's libraries)."""
    import importlib.metadata

    out = {}
    for d in dists:
        try:
            out[d] = importlib.metadata.version(d)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def check_declared(engine: str, declared: str | None, reported: str | None) -> None:
    """Refuse a run whose server runs another backend than its spec says.

    Raises:
        UserError: An attached server reports a backend other than ``grammar_backend``.
    """
    if declared is not None and reported is not None and declared != reported:
        raise UserError(
            f"engine '{engine}': grammar_backend is '{declared}' but the server runs '{reported}' "
            "(relaunch it with that backend, or fix grammar_backend)"
        )


def grammar_extras(
    backend: str | None, source: str, versions: Mapping[str, str] | None
) -> tuple[tuple[str, str], ...]:
    """The manifest extras: backend (``unknown`` when nothing says), its source, library versions.

    Args:
        backend: The backend name, or None when neither the spec nor the server says.
        source: ``launch flag``, ``server``, ``spec (attached, not checked)``, ``default``...
        versions: ``{distribution: version}``; None when they could not be read (an
            attached server's interpreter is out of reach).
    """
    if versions is None:
        library = "unknown (the server's interpreter is out of reach)"
    elif versions:
        library = ", ".join(f"{d} {v}" for d, v in versions.items())
    else:
        library = "not installed"
    return ((GRAMMAR_BACKEND, backend or "unknown"), (GRAMMAR_SOURCE, source), (GRAMMAR_LIBRARY, library))
