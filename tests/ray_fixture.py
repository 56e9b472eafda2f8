"""One local Ray instance per test module that asks for it (starting Ray takes ~15 s)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    """``ray.init(num_cpus=2)``, as on the 2-core CI machine; the run reuses it and leaves it up."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def ray_gpu_cluster() -> Iterator[Any]:
    """Two local Ray nodes with fake GPUs: the head {CPU: 2, GPU: 2}, a worker {CPU: 1, GPU: 1}.

    GPUs are logical resources to Ray, so a CPU machine can pretend (Ray still assigns ids and
    sets CUDA_VISIBLE_DEVICES). Two nodes make a cell that the cluster holds in total (3 GPUs)
    but no single node can; starting them takes ~30 s.
    """
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "num_gpus": 2, "include_dashboard": False},
    )
    try:
        cluster.add_node(num_cpus=1, num_gpus=1)
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        yield ray
    finally:
        ray.shutdown()
        cluster.shutdown()
