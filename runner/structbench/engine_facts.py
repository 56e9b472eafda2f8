"""Keys of engine facts (``EngineInfo.extra``) that metrics and the report read.

Engines write them and the coverage section reads them, and neither may import the other
(the layer rules): the names live here, in a module both can import.
"""

from __future__ import annotations

__all__ = ["GRAMMAR_BACKEND", "GRAMMAR_LIBRARY", "GRAMMAR_SOURCE"]

GRAMMAR_BACKEND = "grammar_backend"
"""The grammar backend, as the engine's own flag names it (``xgrammar``, ``guidance``, ...)."""
GRAMMAR_SOURCE = "grammar_backend_source"
"""Where the backend name came from: the server's report, the launch flag, the spec."""
GRAMMAR_LIBRARY = "grammar_library"
"""The library versions behind the backend (``xgrammar 0.2.8``), read in the engine's interpreter."""
