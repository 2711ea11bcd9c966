"""Connected intervals (evtrack.concurrency) straight from a small session table, worked out by hand: the same
whether the table is plain or a slim read's (dictionary-encoded batch by batch, each batch its own dictionaries),
and whatever the size of the batches the rows are followed in."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pyarrow as pa
import pytest

from evtrack import concurrency
from evtrack.concurrency import Interval, connected_intervals
from evtrack.events import encode, encoded_schema, logon_schema
from evtrack.identity import host_key
from evtrack.rows import BATCH_ROWS, session_table

from .factories import ev, lsm21, us, utc

T = utc(2024, 3, 4, 9)
SECOND, HOUR = timedelta(seconds=1), timedelta(hours=1)
LSM = "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational"
#: the largest int64: also what evtrack.rows.Keys stands a null integer for
LAST_ID = 2**63 - 1


def lsm(event_id: int, at: timedelta, user: str, session_id: int | None) -> dict[str, Any]:
    return {**lsm21(T + at, user), "event_id": event_id, "session_id": session_id, "address": "10.0.0.5"}


def security(event_id: int, at: timedelta, user: str, logon_id: str, host: str = "RDSH02") -> dict[str, Any]:
    return {**ev(T + at, user, event_id=event_id, host=host), "logon_id": logon_id}


ROWS = [
    lsm(21, 0 * SECOND, "alice", 2),
    security(4624, 1 * SECOND, "alice", "0x9", host="rdsh01"),  # a host with LocalSessionManager: not followed
    lsm(21, 2 * SECOND, "bob", None),  # no session id: not followed
    security(4624, 5 * SECOND, "carol", "0x1"),
    security(4624, 8 * SECOND, "CAROL", "0x2"),  # the second 4624 of a UAC split token: carol's 0x1
    lsm(24, HOUR, "alice", 2),
    lsm(25, 2 * HOUR, "alice", 2),
    lsm(21, 2 * HOUR + SECOND, "dave", LAST_ID),
    security(4779, 3 * HOUR, "CAROL", "0x2"),
    lsm(23, 4 * HOUR, "alice", 2),
]


def table(slim: bool) -> pa.Table:
    plain = pa.Table.from_pylist(ROWS, schema=logon_schema())
    if not slim:
        return plain
    return pa.Table.from_batches([encode(batch) for batch in plain.to_batches(max_chunksize=3)],
                                 schema=encoded_schema())


@pytest.mark.parametrize("slim", [False, True])
@pytest.mark.parametrize("batch_rows", [1, 4, BATCH_ROWS])
def test_connected_intervals_worked_out_by_hand(monkeypatch: pytest.MonkeyPatch, slim: bool,
                                                batch_rows: int) -> None:
    monkeypatch.setattr(concurrency, "BATCH_ROWS", batch_rows)
    rows = session_table(table(slim), lambda _name: True, {})
    sessions = connected_intervals(rows, {"rdsh01": us(T + 5 * HOUR)}, host_key)

    assert sessions.hosts == ("rdsh01", "rdsh02")
    assert sessions.accounts == (("alice", "CONTOSO"), ("carol", "CONTOSO"), ("dave", "CONTOSO"))
    at = [us(T + moment) for moment in (0 * SECOND, HOUR, 2 * HOUR, 4 * HOUR, 2 * HOUR + SECOND, 5 * HOUR,
                                        5 * SECOND, 3 * HOUR)]
    assert [sessions.interval(index) for index in range(len(sessions))] == [
        Interval("rdsh01", at[0], at[1], "alice", "CONTOSO", False, 0),
        Interval("rdsh01", at[2], at[3], "alice", "CONTOSO", False, 6),
        Interval("rdsh01", at[4], at[5], "dave", "CONTOSO", True, 7),  # still connected where the logs end
        Interval("rdsh02", at[6], at[7], "carol", "CONTOSO", False, 3),
    ]
    assert sessions.closed_at_coverage_end == 1
    assert [rows.row(index)["event_id"] for index in (0, 6, 7, 3)] == [21, 25, 21, 4624]
