"""max_in_flight: the concurrency a cell reached, from its records' send and done times."""

from __future__ import annotations

from structbench.metrics.calls import max_in_flight
from structbench.records import CallRecord


def rec(item: str, sent: float | None, done: float | None, turn: int = 0, branch: int = 0) -> CallRecord:
    return CallRecord("c", "e", "t", item, branch, turn, "g", "none", t_sent=sent, t_done=done)


def test_overlapping_items_count_once_each() -> None:
    assert max_in_flight([]) is None
    assert max_in_flight([rec("a", None, None)]) is None  # unsupported: never sent
    # a and b overlap; c starts exactly when a ends (a closed loop's hand-over): still 2.
    assert max_in_flight([rec("a", 0, 1), rec("b", 0.5, 2), rec("c", 1, 3)]) == 2
    assert max_in_flight([rec("a", 0, 1), rec("b", 1, 2), rec("c", 2, 3)]) == 1


def test_an_item_holds_its_slot_across_turns_and_branches() -> None:
    # Item a: two turns with a gap between them, and b inside the gap: both in flight then.
    multi = [rec("a", 0, 1), rec("a", 2, 3, turn=1), rec("b", 1.2, 1.8)]
    assert max_in_flight(multi) == 2
    # A fork's three branches are one item in flight, not three.
    fork = [rec("f", 0, 2, branch=i) for i in range(3)]
    assert max_in_flight(fork) == 1
