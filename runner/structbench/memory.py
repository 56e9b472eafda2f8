"""GPU memory (NVML) and process RSS sampling during a cell.

A daemon thread samples at ~10 Hz so the event loop that times requests never waits
on NVML. Without a GPU (or without nvidia-ml-py) it records this process's RSS, which
is what the in-process embedded engine uses, and says that GPU memory is unavailable.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class MemorySample:
    """One sample: seconds since the sampler started, then bytes."""

    t: float
    gpu_used: tuple[int, ...]
    rss: int


@dataclass(slots=True)
class MemoryReport:
    """What a sampler saw over a cell."""

    gpu_available: bool
    gpu_names: tuple[str, ...] = ()
    baseline_gpu_used: tuple[int, ...] = ()
    samples: list[MemorySample] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form for cell.json, with peak/mean/peak-minus-baseline per device."""
        per_dev = list(zip(*(s.gpu_used for s in self.samples), strict=False)) if self.samples else []
        gpus = []
        for i, vals in enumerate(per_dev):
            base = self.baseline_gpu_used[i] if i < len(self.baseline_gpu_used) else 0
            gpus.append(
                {
                    "index": i,
                    "name": self.gpu_names[i] if i < len(self.gpu_names) else "",
                    "peak_bytes": max(vals),
                    "mean_bytes": sum(vals) / len(vals),
                    "baseline_bytes": base,
                    "peak_minus_baseline_bytes": max(vals) - base,
                }
            )
        rss = [s.rss for s in self.samples]
        return {
            "gpu_available": self.gpu_available,
            "n_samples": len(self.samples),
            "gpus": gpus,
            "rss_peak_bytes": max(rss) if rss else None,
            "rss_mean_bytes": sum(rss) / len(rss) if rss else None,
            "samples": [[round(s.t, 3), list(s.gpu_used), s.rss] for s in self.samples],
        }


class _Nvml:
    """Thin wrapper so the sampler loop doesn't care whether NVML exists."""

    def __init__(self) -> None:
        self.handles: list[Any] = []
        self.names: tuple[str, ...] = ()
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nv: Any = pynvml
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
            self.names = tuple(_decode(pynvml.nvmlDeviceGetName(h)) for h in self.handles)
        except Exception:  # ImportError or an NVML error: no driver, no GPU
            self.handles = []

    @property
    def available(self) -> bool:
        return bool(self.handles)

    def used(self) -> tuple[int, ...]:
        return tuple(int(self._nv.nvmlDeviceGetMemoryInfo(h).used) for h in self.handles)


def _decode(name: str | bytes) -> str:
    return name if isinstance(name, str) else name.decode()


def _rss() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        import resource

        # ru_maxrss is a peak (KiB on Linux), the best we have without psutil.
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


_NVML: _Nvml | None = None


def gpu_baseline() -> tuple[int, ...]:
    """Used GPU memory now (call before an engine starts); empty without a GPU."""
    nv = _nvml()
    return nv.used() if nv.available else ()


def _nvml() -> _Nvml:
    global _NVML
    if _NVML is None:
        _NVML = _Nvml()
    return _NVML


class MemorySampler:
    """Context manager sampling memory every ``interval_s`` on a daemon thread."""

    def __init__(self, baseline: tuple[int, ...] = (), interval_s: float = 0.1) -> None:
        nv = _nvml()
        self._nv = nv
        self.report = MemoryReport(nv.available, nv.names, baseline)
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="structbench-memory", daemon=True)

    def _loop(self) -> None:
        t0 = time.monotonic()
        while True:
            gpu = self._nv.used() if self._nv.available else ()
            self.report.samples.append(MemorySample(time.monotonic() - t0, gpu, _rss()))
            if self._stop.wait(self._interval):
                return

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
