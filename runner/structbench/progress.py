"""A progress bar per cell (rich), or nothing when disabled or not a terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as _RichProgress


class Progress:
    """Context manager handing out per-cell tick callbacks.

    Ticks are called by the load driver after an item's records are written, never
    inside a request function, so the bar costs the timed path nothing.
    """

    def __init__(self, enabled: bool = True) -> None:
        self._bar: _RichProgress | None = None
        if enabled:
            self._bar = _RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                transient=False,
                disable=not sys.stderr.isatty() and not enabled,
            )

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def add_cell(self, label: str, total: int) -> Callable[[], None]:
        """Add a bar for a cell; return the callback that advances it by one item."""
        bar = self._bar
        if bar is None:
            return lambda: None
        task_id = bar.add_task(label, total=total)
        return lambda: bar.advance(task_id)
