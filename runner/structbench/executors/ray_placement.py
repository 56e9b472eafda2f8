"""Where a cell's Ray task may go: the fit checks, and placement groups for multi-GPU cells.

A cell that needs more than one GPU (``launch.num_gpus: 2``: a tensor-parallel server) gets a
placement group of one bundle ``{CPU: cell_cpus, GPU: cell_gpus}`` with ``STRICT_PACK``, and its
task runs inside that bundle. One bundle on one node is what the server needs: its own
multiprocessing executor (vLLM's ``mp`` backend, SGLang's workers) starts one process per GPU
on the node it was launched on, so all the GPUs must be there, and Ray sets the task's
``CUDA_VISIBLE_DEVICES`` to exactly the bundle's GPUs, which the server inherits. Ray does not
go any further inside the task: the server is not Ray-aware (no Ray inside Ray), and the task
is scheduled with ``placement_group_capture_child_tasks=False`` so that the load-client actors
it may start (``load.clients``) are not squeezed into the bundle. Fractional and single-GPU
cells need no group: a plain ``num_gpus`` request already lands on one GPU of one node.

The group is created when the cell is submitted and the task is sent once it is ready. It is
removed when the task's stream has ended (after the engine was stopped: removing it earlier
would kill the worker in the middle of stopping its server), on failure and on Ctrl-C too.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from structbench.errors import UserError
from structbench.spec.engines import EngineSpec

#: One bundle, on one node: a tensor-parallel server cannot span machines without Ray inside it.
STRATEGY = "STRICT_PACK"


@dataclass(frozen=True, slots=True)
class Bundle:
    """What one cell's task reserves."""

    cpus: float
    gpus: float

    @classmethod
    def of(cls, spec: EngineSpec) -> Bundle:
        """The bundle of a cell of ``spec``."""
        return cls(spec.cell_cpus, spec.cell_gpus)

    @property
    def needs_group(self) -> bool:
        """More than one GPU: a placement group holds them together on one node."""
        return self.gpus > 1

    def resources(self) -> dict[str, float]:
        """As Ray's resource dict (only the kinds asked for: a bundle may not hold a zero)."""
        return {k: v for k, v in (("CPU", self.cpus), ("GPU", self.gpus)) if v > 0}

    def __str__(self) -> str:
        return f"{{CPU: {self.cpus:g}, GPU: {self.gpus:g}}}"


def misfit(bundle: Bundle, nodes: Sequence[Mapping[str, Any]]) -> str | None:
    """Why no alive node can ever hold ``bundle`` (``ray.nodes()``' totals), or None if one can.

    Ray would leave such a task or group pending for ever, waiting for a node that never
    comes: checked before each cell is submitted, so the cell fails instead of hanging.
    """
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive", False)]
    for res in alive:
        if all(float(res.get(k, 0.0)) >= want for k, want in bundle.resources().items()):
            return None
    if not alive:
        return "the Ray cluster has no alive node"
    big = max(alive, key=lambda r: (float(r.get("GPU", 0.0)), float(r.get("CPU", 0.0))))
    return (
        f"no Ray node can hold {bundle} (the largest has CPU: {float(big.get('CPU', 0.0)):g}, "
        f"GPU: {float(big.get('GPU', 0.0)):g})"
    )


def check_fits(ray: Any, engines: Sequence[EngineSpec]) -> None:
    """Refuse a cell that asks for more CPUs or GPUs than the whole cluster has.

    Run before any folder exists: such a suite cannot run on this cluster at all. A cell that
    the cluster could hold in total but no single node can is caught per cell by :func:`misfit`
    (nodes may join between the two).

    Raises:
        UserError: Naming the engine, what it asks for and what the cluster has.
    """
    have = ray.cluster_resources()
    for e in engines:
        for key, want in (("CPU", e.cell_cpus), ("GPU", e.cell_gpus)):
            if want > float(have.get(key, 0.0)):
                raise UserError(
                    f"engine '{e.name}': a cell needs {want:g} {key}s, the Ray cluster has "
                    f"{float(have.get(key, 0.0)):g}"
                )


def group_name(run_id: str, cell_id: str) -> str:
    """The group's name in ``ray list placement-groups``: the run folder's name and the cell."""
    return f"structbench:{run_id}:{cell_id}"


@dataclass(slots=True)
class _Group:
    pg: Any
    ready: Any
    bundle: Bundle
    timeout_s: float
    created: float
    #: Seconds waited while nothing else of the run was running (see ``launch.placement_timeout_s``).
    waited_s: float = 0.0
    granted: bool = False


class Groups:
    """The run's placement groups, by cell id: created, waited for, removed."""

    def __init__(self, ray: Any, run_id: str) -> None:
        self.ray, self.run_id = ray, run_id
        self._groups: dict[str, _Group] = {}
        self._last = time.monotonic()

    def create(self, cell_id: str, bundle: Bundle, timeout_s: float) -> None:
        """Ask Ray for ``cell_id``'s group; :meth:`pending` then includes its readiness ref."""
        pg = self.ray.util.placement_group(
            [bundle.resources()], strategy=STRATEGY, name=group_name(run_id=self.run_id, cell_id=cell_id)
        )
        self._groups[cell_id] = _Group(pg, pg.ready(), bundle, timeout_s, time.monotonic())

    def pending(self) -> dict[Any, str]:
        """Readiness refs of the groups not yet granted, to cell ids."""
        return {g.ready: cid for cid, g in self._groups.items() if not g.granted}

    def grant(self, cell_id: str) -> Any:
        """The group is ready: the scheduling strategy that puts the cell's task in its bundle."""
        strategies = importlib.import_module("ray.util.scheduling_strategies")
        group = self._groups[cell_id]
        group.granted = True
        return strategies.PlacementGroupSchedulingStrategy(
            placement_group=group.pg,
            placement_group_bundle_index=0,
            placement_group_capture_child_tasks=False,
        )

    def expired(self, others_running: bool) -> list[tuple[str, str]]:
        """Groups that waited too long, removed: (cell id, one-line reason) each.

        Time counts only while ``others_running`` is False: while another cell of this run is
        running, it may be what holds the resources, and it will free them when it ends.
        """
        now = time.monotonic()
        elapsed, self._last = now - self._last, now
        out = []
        for cell_id, g in list(self._groups.items()):
            if g.granted or others_running:
                continue
            g.waited_s += min(elapsed, now - g.created)
            if g.waited_s >= g.timeout_s:
                self.remove(cell_id)
                out.append(
                    (
                        cell_id,
                        f"cell {cell_id}: its placement group {g.bundle} ({STRATEGY}) was not ready "
                        f"after {g.timeout_s:g} s (launch.placement_timeout_s)",
                    )
                )
        return out

    def remove(self, cell_id: str) -> None:
        """Remove ``cell_id``'s group, if it has one (its task has ended, or never started)."""
        group = self._groups.pop(cell_id, None)
        if group is None:
            return
        try:
            self.ray.util.remove_placement_group(group.pg)
        except Exception:  # best effort: the cluster may be gone; Ray drops a job's groups at its end
            return

    def remove_all(self) -> None:
        """Remove every group left (Ctrl-C, or the driver's own failure)."""
        for cell_id in list(self._groups):
            self.remove(cell_id)
