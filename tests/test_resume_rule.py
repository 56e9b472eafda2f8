"""Which items ``--resume`` runs again, by the calls' statuses (pure)."""

from __future__ import annotations

from structbench.ir import Branch, Gen, Turn, WorkItem
from structbench.records import CallRecord, Status
from structbench.resume import unfinished_items


def _item(i: int) -> WorkItem:
    turns = (Turn("a", Gen("a")), Turn("b", Gen("b")))
    return WorkItem(f"t/{i}", "t", "chat", (), (Branch(turns),))


def _recs(i: int, *statuses: Status) -> list[CallRecord]:
    return [
        CallRecord(
            "c", "e", "t", f"t/{i}", 0, t, "g", "none", status=s, error=None if s == "ok" else f"{s}: x"
        )
        for t, s in enumerate(statuses)
    ]


def test_unsupported_then_skipped_is_done_but_error_then_skipped_is_not() -> None:
    items = [_item(i) for i in range(5)]
    records = [
        *_recs(0, "ok", "ok"),
        *_recs(1, "unsupported", "skipped"),  # would stop at the same gen again
        *_recs(2, "error", "skipped"),  # a failure: worth another attempt
        *_recs(3, "ok", "cancelled"),
        *_recs(4, "ok"),  # a call never recorded
    ]
    assert [it.item_id for it in unfinished_items(items, records)] == ["t/2", "t/3", "t/4"]


def test_a_loud_rejection_is_done_but_a_transport_error_is_not() -> None:
    items = [_item(i) for i in range(2)]

    def rejected(i: int, error: str) -> list[CallRecord]:
        first = CallRecord("c", "e", "t", f"t/{i}", 0, 0, "g", "json_schema", status="error", error=error)
        return [first, *_recs(i, "ok", "skipped")[1:]]

    records = [*rejected(0, "http 400: xgrammar cannot compile the schema"), *rejected(1, "http 503: busy")]
    assert [it.item_id for it in unfinished_items(items, records)] == ["t/1"]
