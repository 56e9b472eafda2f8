"""Names engines write and metrics read: keys of engine facts (``EngineInfo.extra``), error prefixes.

Engines write them and the coverage section reads them, and neither may import the other
(the layer rules): the names live here, in a module both can import.
"""

from __future__ import annotations

__all__ = ["COMPILE_LIMIT", "GRAMMAR_BACKEND", "GRAMMAR_LIBRARY", "GRAMMAR_SOURCE"]

GRAMMAR_BACKEND = "grammar_backend"
"""The grammar backend, as the engine's own flag names it (``xgrammar``, ``guidance``, ...)."""
GRAMMAR_SOURCE = "grammar_backend_source"
"""Where the backend name came from: the server's report, the launch flag, the spec."""
GRAMMAR_LIBRARY = "grammar_library"
"""The library versions behind the backend (``xgrammar 0.2.8``), read in the engine's interpreter."""

COMPILE_LIMIT = "compile_limit:"
"""Prefix of the error of a call whose grammar compile ran past the engine's time or memory
limit: the coverage verdict ``compile_limit``, apart from a rejection."""
