"""SGLang engine: native ``@sgl.function`` programs on a server or on the embedded runtime.

Nothing here imports sglang at package import time; see ``engine.SglangEngine``.
"""
