"""The rows a report reads: each record once (adjacent copies after sorting; the first file by path names it), in
bounded batches, taken chunk by chunk, without a Python object per row outside its batch."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evtrack import rows as table_rows
from evtrack.events import logon_schema
from evtrack.usage import ReportSettings, ReportSource, build_report

from .factories import CREATED, ev, span, utc


def _table(*chunks: list[dict[str, Any]]) -> pa.Table:
    """One chunk per list, as a read of several files gives."""
    schema = logon_schema()
    return pa.Table.from_batches([pa.RecordBatch.from_pylist(rows, schema=schema) for rows in chunks], schema=schema)


def _copy(row: dict[str, Any], path: str | None) -> dict[str, Any]:
    return {**row, "source": path}


def test_the_same_record_in_two_files_counts_once_named_after_the_smaller_path() -> None:
    """An export and a later re-export both hold record 500: the report counts it once and its proof names the
    first file by path, whichever was read first."""
    record = ev(utc(2024, 1, 10, 9), record_id=500)
    later = ev(utc(2024, 1, 11, 9), record_id=501)
    table = _table([_copy(record, "exports/b/Security.evtx"), _copy(later, "exports/b/Security.evtx")],
                   [_copy(record, "exports/a/Security.evtx")])
    evidence = table_rows.evidence_table(table)
    assert len(evidence) == 2
    assert [evidence.row(i)["source"] for i in range(2)] == ["exports/a/Security.evtx", "exports/b/Security.evtx"]
    assert [evidence.row(i)["record_id"] for i in range(2)] == [500, 501]

    built = build_report(ReportSource(table, [span(utc(2024, 1, 1), utc(2024, 2, 1))], (), "test", 0, 0),
                         ReportSettings(created_at=CREATED))
    (alice,) = built.users
    assert alice.events == 2
    assert [(p.which, p.record_id, p.file) for p in alice.proof] == [
        ("first", 500, "exports/a/Security.evtx"), ("last", 501, "exports/b/Security.evtx")]


@pytest.mark.parametrize(("paths", "kept"), [
    (["b.evtx", "a.evtx"], "a.evtx"),
    ([None, "b.evtx", "a.evtx"], "a.evtx"),  # a copy that names a file beats one that names none
    (["", "c.evtx"], "c.evtx"),
    (["", None], ""),  # none names a file: the first copy's
    (["a.evtx", "a.evtx"], "a.evtx"),
])
def test_the_smallest_path_of_the_copies_wins(paths: list[str | None], kept: str) -> None:
    record = ev(utc(2024, 1, 10, 9), record_id=7)
    table = _table(*[[_copy(record, path)] for path in paths])
    evidence = table_rows.evidence_table(table)
    assert len(evidence) == 1
    assert evidence.row(0)["source"] == kept
    (_, batch), = evidence.batches()
    assert batch["source"].to_pylist() == [kept]


def test_copies_are_one_record_only_on_host_channel_record_id_and_time() -> None:
    base = ev(utc(2024, 1, 10, 9), record_id=7)
    others = [ev(utc(2024, 1, 10, 9), record_id=8), ev(utc(2024, 1, 10, 9, 0, 1), record_id=7),
              ev(utc(2024, 1, 10, 9), record_id=7, host="RDSH02"),
              ev(utc(2024, 1, 10, 9), record_id=7, channel="Microsoft-Windows-TerminalServices-LocalSessionManager"
                 "/Operational")]
    table = _table([base, *others], [base])
    assert len(table_rows.evidence_table(table)) == 5


def test_session_rows_once_each_in_the_order_sessions_are_followed() -> None:
    """The 4624 and its 4634 are in two overlapping exports: each once, named after the first file by path, in
    time order, with the time each carries."""
    logon = ev(utc(2024, 1, 10, 9), record_id=10, kind="logon")
    logoff = ev(utc(2024, 1, 10, 17), record_id=11, event_id=4634, kind="logoff", rdp=False, reason="")
    table = _table([_copy(logoff, "z.evtx"), _copy(logon, "z.evtx")], [_copy(logon, "m.evtx"),
                                                                       _copy(logoff, "m.evtx")])
    sessions = table_rows.session_table(table, lambda host: True, {})
    rows = [sessions.row(i) for i in range(len(sessions))]
    assert [(r["event_id"], r["source"], r["time"] == r["recorded"]) for r in rows] == [
        (4624, "m.evtx", True), (4634, "m.evtx", True)]


def test_a_misdated_session_row_is_followed_where_its_neighbours_place_it() -> None:
    early = ev(utc(2024, 1, 10, 9), record_id=10)
    wrong = ev(utc(2030, 1, 1), record_id=11)
    table = _table([wrong, early])
    placed = {("RDSH01.contoso.local", "security", 11, wrong["time"]): early["time"] + 1}
    sessions = table_rows.session_table(table, lambda host: True, placed)
    rows = [sessions.row(i) for i in range(len(sessions))]
    assert [(r["record_id"], r["time"], r["recorded"]) for r in rows] == [
        (10, early["time"], early["time"]), (11, early["time"] + 1, wrong["time"])]


def test_session_rows_of_hosts_not_counted_are_left_out() -> None:
    table = _table([ev(utc(2024, 1, 10, 9), record_id=1), ev(utc(2024, 1, 10, 9), record_id=2, host="DC01")])
    sessions = table_rows.session_table(table, lambda host: host != "DC01", {})
    assert [sessions.row(i)["host"] for i in range(len(sessions))] == ["RDSH01.contoso.local"]


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=5), seed=st.integers(0, 99))
def test_take_chunk_by_chunk_is_arrow_take(sizes: list[int], seed: int) -> None:
    rows = [ev(utc(2024, 1, 1) + timedelta(minutes=i), f"user{i}", record_id=i) for i in range(sum(sizes))]
    chunks, start = [], 0
    for size in sizes:
        chunks.append(rows[start:start + size])
        start += size
    table = _table(*chunks)
    picked = np.random.default_rng(seed).integers(0, max(len(rows), 1), size=len(rows) * 2 if rows else 0)
    assert table_rows.take(table, picked).to_pylist() == table.take(pa.array(picked, pa.int64())).to_pylist()


def test_keys_sort_as_arrow_does_with_nulls_last() -> None:
    hosts = ["b", None, "a", "B", "é", "a", None]
    table = _table([{**ev(utc(2024, 1, 1)), "host": h} for h in hosts[:3]],
                   [{**ev(utc(2024, 1, 1)), "host": h} for h in hosts[3:]])
    keys = table_rows.Keys(table)
    ordered = np.argsort(keys["host"], kind="stable")
    expected = table.append_column("n", pa.array(range(len(hosts)))).sort_by([("host", "ascending")])["n"]
    assert ordered.tolist() == expected.to_pylist()
    assert keys.words("host") == ["B", "a", "b", "é", None]


def test_evidence_is_read_in_bounded_batches() -> None:
    rows = [ev(utc(2024, 1, 1) + timedelta(hours=i), record_id=i) for i in range(25)]
    evidence = table_rows.evidence_table(_table(rows[10:], rows[:10]))
    batches = list(evidence.batches(size=10))
    assert [(offset, batch.num_rows) for offset, batch in batches] == [(0, 10), (10, 10), (20, 5)]
    assert [t for _, batch in batches for t in batch["time"].to_pylist()] == [row["time"] for row in rows]
