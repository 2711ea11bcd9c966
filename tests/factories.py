"""The one factory for event-table rows and report sources in tests: build a table from a few rows, never from
binary files (those come from evtrack.synth, see tests/exports.py)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from evtrack.coverage import ChannelSpan
from evtrack.events import COLUMNS, logon_schema
from evtrack.usage import ReportSource

SID_A = "S-1-5-21-10-20-30-1104"
SID_B = "S-1-5-21-10-20-30-1105"
CREATED = datetime(2024, 6, 1, tzinfo=timezone.utc)


def us(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def ev(moment: datetime, user: str = "alice", *, sid: str | None = SID_A, event_id: int = 4624,
       logon_type: int | None = 10, host: str = "RDSH01.contoso.local", channel: str = "Security",
       kind: str = "logon", rdp: bool = True, reason: str = "4624_lt10", record_id: int | None = None,
       domain: str = "CONTOSO") -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(time=us(moment), host=host, channel=channel, provider="p", event_id=event_id,
               record_id=record_id if record_id is not None else us(moment) // 1000, kind=kind,
               logon_type=logon_type, user=user, domain=domain, sid=sid, rdp=rdp, reason=reason, source="t")
    return row


def lsm21(moment: datetime, user: str = "alice", **kw: Any) -> dict[str, Any]:
    return ev(moment, user, sid=None, event_id=21, logon_type=None,
              channel="Microsoft-Windows-TerminalServices-LocalSessionManager/Operational", reason="lsm21_ip", **kw)


def span(first: datetime, last: datetime, host: str = "RDSH01.contoso.local", channel: str = "Security") -> ChannelSpan:
    return ChannelSpan(host, channel, us(first), us(last), 10, 1, 10, (), (), ((us(first), us(last)),))


def source(rows: list[dict[str, Any]], coverage: list[ChannelSpan]) -> ReportSource:
    table = pa.Table.from_pylist(rows, schema=logon_schema()) if rows else logon_schema().empty_table()
    return ReportSource(table, coverage, (), "test", 0, 0)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)  # type: ignore[misc]
