"""Session snapshots: Connection Broker ``Get-RDUserSession | Export-Csv`` and ``query user`` text.

Most inputs are written here literally, as the tools print them (shapes from ../shared/DOMAIN.md §B1-B2 and
public samples of real quser output); the answers (UTC times for a zone, which order a date is read in) are
worked out by hand in the comments. The synth writers are checked against the same readers at the end.
"""

from __future__ import annotations

import codecs
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from evtrack.errors import SourceError
from evtrack.events import normalise
from evtrack.sources import broker_csv, query_user
from evtrack.sources.base import FileStats, RawEvent, ReadPlan, datetime_to_us
from evtrack.sources.snapshots import (
    BROKER_CHANNEL,
    POLL,
    QUERY_USER_CHANNEL,
    SESSION_CREATED,
    SESSION_LISTED,
)
from evtrack.synth.snapshots import (
    SnapshotSession,
    broker_csv_name,
    query_user_name,
    write_broker_csv,
    write_query_user,
)
from tests.conftest import xml_event

UTC = timezone.utc
NY = ReadPlan(local_zone=ZoneInfo("America/New_York"))
BERLIN = ReadPlan(local_zone=ZoneInfo("Europe/Berlin"))
PARIS = ReadPlan(local_zone=ZoneInfo("Europe/Paris"))


def us(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return datetime_to_us(datetime(year, month, day, hour, minute, second, tzinfo=UTC))


class FakeCoverage:
    """A coverage sink that records what a reader tells it."""

    def __init__(self) -> None:
        self.added: list[RawEvent] = []
        self.other: list[str] = []

    def add(self, event: RawEvent) -> None:
        self.added.append(event)

    def add_block(self, computer: str, channel: str, ids: Any, times: Any, untimed: int = 0) -> None:
        self.other.append("add_block")

    def note_clear(self, event: RawEvent) -> None:
        self.other.append("note_clear")

    def note_kdc(self, computer: str, channel: str) -> None:
        self.other.append("note_kdc")

    def add_interval(self, computer: str, channel: str, start_us: int, end_us: int) -> None:
        self.other.append("add_interval")

    def break_segments(self) -> None:
        self.other.append("break_segments")


def read_broker(path: Path, plan: ReadPlan = NY) -> tuple[list[RawEvent], FileStats, FakeCoverage]:
    stats, sink = FileStats(path), FakeCoverage()
    events = list(broker_csv.read(path, stats, plan=plan, coverage=sink))
    assert sink.other == []
    assert sink.added == [e for e in events if e.event_id == POLL]  # polls, and only polls, are coverage
    return events, stats, sink


def read_quser(path: Path, plan: ReadPlan = NY) -> tuple[list[RawEvent], FileStats, FakeCoverage]:
    stats, sink = FileStats(path), FakeCoverage()
    events = list(query_user.read(path, stats, plan=plan, coverage=sink))
    assert sink.other == []
    assert sink.added == [e for e in events if e.event_id == POLL]
    return events, stats, sink


def brief(events: list[RawEvent]) -> list[tuple[int, int | None, str, int | None, str | None]]:
    """(event id, time, computer, record id, user) of each event."""
    return [(e.event_id, e.time_us, e.computer, e.record_id, e.data.get("UserName")) for e in events]


def issues(stats: FileStats) -> list[tuple[str, str, int]]:
    return [(i.where, i.reason, i.skipped) for i in stats.issues]


def write(path: Path, text: str, encoding: str = "ascii") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


# --- Get-RDUserSession | Export-Csv --------------------------------------------------------------------------

COLUMNS = ('"ServerName","SessionId","UserName","DomainName","ServerIPAddress","TSProtocol","ApplicationType",'
           '"ResolutionWidth","ResolutionHeight","ColorDepth","CreateTime","DisconnectTime","SessionState",'
           '"CollectionName","CollectionType","UnifiedSessionId","HostServer","IdleTime","RemoteFxEnabled",'
           '"PolledAt"')

#: Windows PowerShell 5.1 on an en-US broker in New York (UTC-5 in January), with our PolledAt column.
PS51_EN_US = (
    "#TYPE Microsoft.RemoteDesktopServices.Management.RDUserSession\r\n"
    + COLUMNS + "\r\n"
    '"rdsh01.contoso.com","2","alice","CONTOSO","10.0.0.21","2",,"1920","1080","32","1/14/2026 9:05:33 AM",,'
    '"STATE_ACTIVE","Desktops","RD_FARM_RDSH","102","rdsh01.contoso.com","0","False","2026-01-14T15:10:00.0000000Z"\r\n'
    '"rdsh02.contoso.com","3","bob","CONTOSO","10.0.0.22","2",,"1920","1080","32","1/13/2026 5:40:00 PM",'
    '"1/13/2026 6:00:00 PM","STATE_DISCONNECTED","Desktops","RD_FARM_RDSH","103","rdsh02.contoso.com","0","False",'
    '"2026-01-14T15:10:00.0000000Z"\r\n'
    '"rdsh02.contoso.com","65536",,,"10.0.0.22","2",,"0","0","0","1/1/2026 1:00:00 AM",,"STATE_LISTEN","Desktops",'
    '"RD_FARM_RDSH","104","rdsh02.contoso.com","0","False","2026-01-14T15:10:00.0000000Z"\r\n'
    '"rdsh02.contoso.com","5","carol","CONTOSO","10.0.0.22","2",,"1920","1080","32","1/14/2026 8:00:00 AM",,'
    '"STATE_DOWN","Desktops","RD_FARM_RDSH","105","rdsh02.contoso.com","0","False","2026-01-14T15:10:00.0000000Z"\r\n'
)


def test_ps51_en_us_rows_times_and_coverage(tmp_path: Path) -> None:
    path = write(tmp_path / "sessions.csv", PS51_EN_US)
    events, stats, sink = read_broker(path)
    poll = us(2026, 1, 14, 15, 10)
    assert brief(events) == [
        (POLL, poll, "Connection Broker", None, None),  # no PSComputerName, no broker in the name
        (SESSION_LISTED, poll, "rdsh01.contoso.com", 2, "alice"),
        (SESSION_CREATED, us(2026, 1, 14, 14, 5, 33), "rdsh01.contoso.com", 2, "alice"),  # 9:05:33 AM EST
        (SESSION_LISTED, poll, "rdsh02.contoso.com", 3, "bob"),
        (SESSION_CREATED, us(2026, 1, 13, 22, 40), "rdsh02.contoso.com", 3, "bob"),  # 5:40 PM EST
    ]
    assert events[1].data == {"UserName": "alice", "DomainName": "CONTOSO", "SessionId": "2",
                              "SessionState": "STATE_ACTIVE", "CreateTime": "1/14/2026 9:05:33 AM",
                              "HostServer": "rdsh01.contoso.com", "PolledBy": "Connection Broker"}
    assert events[2].data == events[1].data
    assert {e.channel for e in events} == {BROKER_CHANNEL} and {e.provider for e in events} == {"Get-RDUserSession"}
    assert stats.records == 5  # four rows (the listener and the STATE_DOWN row read, no record) and the poll
    assert stats.per_channel == {BROKER_CHANNEL: 5}
    assert stats.issues == [] and stats.engine == "broker-csv"
    assert [e.time_us for e in sink.added] == [poll]


def test_ps7_invoke_use_culture_de_de_utf8_bom(tmp_path: Path) -> None:
    # PowerShell 7 (no #TYPE), Invoke-Command columns, -UseCulture on de-DE (';'), UTF-8 with BOM, Berlin (UTC+1)
    text = (
        '"ServerName";"SessionId";"UserName";"DomainName";"CreateTime";"DisconnectTime";"SessionState";'
        '"HostServer";"PSComputerName";"RunspaceId";"PSShowComputerName";"PolledAt"\r\n'
        '"rdsh01.contoso.de";"4";"jürgen";"CONTOSO";"14.01.2026 09:05:33";;"STATE_ACTIVE";"rdsh01.contoso.de";'
        '"rdcb01.contoso.de";"2f0c7a1e-3d59-4c1b-9a47-1c0e2b9a9f11";"True";"2026-01-14T09:00:00Z"\r\n'
    )
    path = write(tmp_path / "s.csv", text, "utf-8-sig")
    assert broker_csv.looks_like(path.read_bytes(), path)
    events, stats, _ = read_broker(path, BERLIN)
    assert brief(events) == [
        (POLL, us(2026, 1, 14, 9), "rdcb01.contoso.de", None, None),
        (SESSION_LISTED, us(2026, 1, 14, 9), "rdsh01.contoso.de", 4, "jürgen"),
        (SESSION_CREATED, us(2026, 1, 14, 8, 5, 33), "rdsh01.contoso.de", 4, "jürgen"),  # 09:05:33 CET
    ]
    assert events[1].data["PolledBy"] == "rdcb01.contoso.de"
    assert stats.issues == []


def test_selected_type_line_and_several_polls_in_one_file(tmp_path: Path) -> None:
    # after Select-Object: "#TYPE Selected...", fewer columns, no ServerName; two polls a file
    text = (
        "#TYPE Selected.Microsoft.RemoteDesktopServices.Management.RDUserSession\r\n"
        '"UserName","DomainName","HostServer","SessionId","SessionState","CreateTime","DisconnectTime","PolledAt"\r\n'
        '"alice","CONTOSO","rdsh01","2","STATE_ACTIVE","14/01/2026 09:05:33",,"2026-01-14T10:00:00Z"\r\n'
        '"alice","CONTOSO","rdsh01","2","STATE_ACTIVE","14/01/2026 09:05:33",,"2026-01-14T10:15:00Z"\r\n'
        '"bob","CONTOSO","rdsh01","3","STATE_CONNECTED","14/01/2026 10:14:00",,"2026-01-14T10:15:00Z"\r\n'
    )
    path = write(tmp_path / "rdusersession_rdcb01_20260114T101500Z.csv", text)
    events, stats, sink = read_broker(path, ReadPlan(local_zone=ZoneInfo("Europe/London")))  # en-GB, GMT in January
    assert brief(events) == [
        (POLL, us(2026, 1, 14, 10), "rdcb01", None, None),
        (SESSION_LISTED, us(2026, 1, 14, 10), "rdsh01", 2, "alice"),
        (SESSION_CREATED, us(2026, 1, 14, 9, 5, 33), "rdsh01", 2, "alice"),
        (POLL, us(2026, 1, 14, 10, 15), "rdcb01", None, None),
        (SESSION_LISTED, us(2026, 1, 14, 10, 15), "rdsh01", 2, "alice"),
        (SESSION_CREATED, us(2026, 1, 14, 9, 5, 33), "rdsh01", 2, "alice"),
        (SESSION_LISTED, us(2026, 1, 14, 10, 15), "rdsh01", 3, "bob"),
        (SESSION_CREATED, us(2026, 1, 14, 10, 14), "rdsh01", 3, "bob"),
    ]
    assert len(sink.added) == 2 and stats.records == 5 and stats.issues == []


def _one_row(create: str, polled: str = "2026-01-05T12:00:00Z", more: str = "") -> str:
    return ('"UserName","SessionId","SessionState","HostServer","CreateTime","PolledAt"\r\n'
            f'"alice","2","STATE_ACTIVE","rdsh01","{create}","{polled}"\r\n' + more)


def test_day_month_order_decided_by_a_day_above_12(tmp_path: Path) -> None:
    # 03/01 alone could be March 1st; the 14/01 beside it is only a date day first: both are read day first
    path = write(tmp_path / "s.csv", _one_row("03/01/2026 09:00:00", "2026-01-20T12:00:00Z",
                                              '"bob","3","STATE_ACTIVE","rdsh01","14/01/2026 08:00:00",'
                                              '"2026-01-20T12:00:00Z"\r\n'))
    events, _, _ = read_broker(path, ReadPlan(local_zone=ZoneInfo("UTC")))
    assert [e.time_us for e in events if e.event_id == SESSION_CREATED] == [us(2026, 1, 3, 9), us(2026, 1, 14, 8)]


def test_day_month_order_decided_by_the_poll_time(tmp_path: Path) -> None:
    # polled on 5 January: 03/01 read month first would be 1 March, after the poll: impossible, so day first
    path = write(tmp_path / "s.csv", _one_row("03/01/2026 09:00:00"))
    events, stats, _ = read_broker(path, ReadPlan(local_zone=ZoneInfo("UTC")))
    assert events[2].time_us == us(2026, 1, 3, 9) and stats.issues == []


def test_day_month_order_decided_by_a_disconnect_time(tmp_path: Path) -> None:
    # the CreateTime alone is ambiguous (polled in April); the DisconnectTime 13/01 is only a date day first
    text = ('"UserName","SessionId","SessionState","HostServer","CreateTime","DisconnectTime","PolledAt"\r\n'
            '"alice","2","STATE_DISCONNECTED","rdsh01","03/01/2026 09:00:00","13/01/2026 10:00:00",'
            '"2026-04-01T00:00:00Z"\r\n')
    events, stats, _ = read_broker(write(tmp_path / "s.csv", text), ReadPlan(local_zone=ZoneInfo("UTC")))
    assert events[2].time_us == us(2026, 1, 3, 9) and stats.issues == []


def test_ambiguous_order_needs_a_culture(tmp_path: Path) -> None:
    # polled in April: 03/01 may be 3 January or 1 March, both before the poll
    path = write(tmp_path / "s.csv", _one_row("03/01/2026 09:00:00", "2026-04-01T00:00:00Z"))
    with pytest.raises(SourceError) as error:
        read_broker(path, ReadPlan(local_zone=ZoneInfo("UTC")))
    assert "'03/01/2026 09:00:00' (line 2 CreateTime)" in error.value.reason
    assert "--culture" in error.value.reason and "[inputs] culture" in error.value.reason
    gb, _, _ = read_broker(path, ReadPlan(local_zone=ZoneInfo("UTC"), culture="en-GB"))
    assert gb[2].time_us == us(2026, 1, 3, 9)
    en_us, _, _ = read_broker(path, ReadPlan(local_zone=ZoneInfo("UTC"), culture="en-US"))
    assert en_us[2].time_us == us(2026, 3, 1, 9)
    with pytest.raises(SourceError, match="not a culture name"):
        read_broker(path, ReadPlan(local_zone=ZoneInfo("UTC"), culture="english please"))


def test_dates_that_contradict_each_other_refuse_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "s.csv", _one_row("14/01/2026 09:00:00", "2026-02-01T00:00:00Z",
                                              '"bob","3","STATE_ACTIVE","rdsh01","01/15/2026 08:00:00",'
                                              '"2026-02-01T00:00:00Z"\r\n'))
    with pytest.raises(SourceError, match="contradict each other"):
        read_broker(path, ReadPlan(local_zone=ZoneInfo("UTC")))


def test_data_overrides_a_culture_it_contradicts_and_says_so(tmp_path: Path) -> None:
    path = write(tmp_path / "s.csv", _one_row("14/01/2026 09:00:00", "2026-01-20T00:00:00Z"))
    events, stats, _ = read_broker(path, ReadPlan(local_zone=ZoneInfo("UTC"), culture="en-US"))
    assert events[2].time_us == us(2026, 1, 14, 9)
    assert issues(stats) == [("file", "the dates are written day/month/year, not as --culture en-US writes them: "
                                      "read day/month/year", 0)]


def test_local_times_need_a_zone(tmp_path: Path) -> None:
    path = write(tmp_path / "s.csv", PS51_EN_US)
    with pytest.raises(SourceError) as error:
        read_broker(path, ReadPlan())
    assert "--input-tz" in error.value.reason and "[inputs] tz" in error.value.reason


def test_dst_fold_and_gap_are_read_with_fold_0_and_reported(tmp_path: Path) -> None:
    # Berlin: 26 Oct 2025 02:30 happened twice (CEST, then CET): fold=0 is CEST (UTC+2) = 00:30Z;
    # 29 Mar 2026 02:30 never happened (01:59 CET -> 03:00 CEST): fold=0 reads it with CET (UTC+1) = 01:30Z
    text = ('"UserName";"SessionId";"SessionState";"ServerName";"CreateTime";"PolledAt"\r\n'
            '"anna";"2";"STATE_ACTIVE";"rdsh01";"26.10.2025 02:30:00";"2025-10-26T06:00:00Z"\r\n'
            '"ben";"3";"STATE_ACTIVE";"rdsh01";"29.03.2026 02:30:00";"2026-03-29T06:00:00Z"\r\n')
    path = write(tmp_path / "s.csv", text)
    events, stats, _ = read_broker(path, BERLIN)
    assert [e.time_us for e in events if e.event_id == SESSION_CREATED] == [us(2025, 10, 26, 0, 30),
                                                                            us(2026, 3, 29, 1, 30)]
    assert issues(stats) == [
        ("line 2", "CreateTime '26.10.2025 02:30:00' happened twice in Europe/Berlin (the clocks went back): "
                   "read as the first, 2025-10-26T00:30:00Z", 0),
        ("line 3", "CreateTime '29.03.2026 02:30:00' does not exist in Europe/Berlin (the clocks went forward): "
                   "read as 2026-03-29T01:30:00Z", 0),
    ]


def test_empty_named_file_is_a_poll_without_sessions(tmp_path: Path) -> None:
    path = tmp_path / "rdusersession_rdcb01.contoso.com_20260114T091000Z.csv"
    path.write_bytes(b"")
    assert broker_csv.looks_like(b"", path)
    assert not broker_csv.looks_like(b"", tmp_path / "sessions.csv")
    events, stats, sink = read_broker(path, ReadPlan())  # no zone needed: no local time
    assert brief(events) == [(POLL, us(2026, 1, 14, 9, 10), "rdcb01.contoso.com", None, None)]
    assert stats.records == 1 and stats.issues == [] and len(sink.added) == 1
    other = tmp_path / "sessions.csv"
    other.write_bytes(b"")
    with pytest.raises(SourceError, match="empty"):
        read_broker(other)


def test_header_only_file_is_a_poll_without_sessions(tmp_path: Path) -> None:
    text = "#TYPE Microsoft.RemoteDesktopServices.Management.RDUserSession\r\n" + COLUMNS + "\r\n"
    named = write(tmp_path / "rdusersession_rdcb01_20260114T091000Z.csv", text)
    events, stats, _ = read_broker(named, ReadPlan())
    assert brief(events) == [(POLL, us(2026, 1, 14, 9, 10), "rdcb01", None, None)]
    assert stats.issues == [] and stats.records == 1
    unnamed = write(tmp_path / "sessions.csv", text)
    os.utime(unnamed, (0, datetime_to_us(datetime(2026, 1, 15, 8, tzinfo=UTC)) / 1e6))
    events, stats, _ = read_broker(unnamed, ReadPlan())
    assert brief(events) == [(POLL, us(2026, 1, 15, 8), "Connection Broker", None, None)]
    assert [i.reason for i in stats.issues] == [
        "a header without rows has no PolledAt: the poll time is assumed to be the file's modification time "
        "2026-01-15T08:00:00Z (add a PolledAt column (ISO 8601 UTC) or name the file "
        "rdusersession_<broker>_<yyyyMMddTHHmmssZ>.csv)"]


def test_without_polled_at_the_assumed_poll_time_is_stated(tmp_path: Path) -> None:
    text = ('"ServerName","SessionId","UserName","DomainName","CreateTime","SessionState","HostServer"\r\n'
            '"rdsh01","2","alice","CONTOSO","1/14/2026 9:05:33 AM","STATE_ACTIVE","rdsh01"\r\n')
    named = write(tmp_path / "rdusersession_rdcb01_20260114T150000Z.csv", text)
    events, stats, _ = read_broker(named)
    assert brief(events)[0] == (POLL, us(2026, 1, 14, 15), "rdcb01", None, None)
    assert issues(stats) == [("file", "no PolledAt column: the poll time is taken from the file name's stamp "
                                      "20260114T150000Z", 0)]
    unnamed = write(tmp_path / "broker.csv", text)
    os.utime(unnamed, (0, datetime_to_us(datetime(2026, 1, 14, 16, tzinfo=UTC)) / 1e6))
    events, stats, _ = read_broker(unnamed)
    assert events[0].time_us == us(2026, 1, 14, 16)
    assert [i.reason for i in stats.issues] == [
        "no PolledAt column: the poll time is assumed to be the file's modification time 2026-01-14T16:00:00Z "
        "(add a PolledAt column (ISO 8601 UTC) or name the file rdusersession_<broker>_<yyyyMMddTHHmmssZ>.csv)"]


def test_excel_name_error_is_reported_and_the_row_not_trusted(tmp_path: Path) -> None:
    text = ('"UserName","SessionId","SessionState","HostServer","CreateTime","PolledAt"\r\n'
            '"alice","2","STATE_ACTIVE","rdsh01","1/14/2026 9:05:33 AM","2026-01-14T15:10:00Z"\r\n'
            '#NAME?,"3","STATE_ACTIVE","rdsh01","1/14/2026 9:06:00 AM","2026-01-14T15:10:00Z"\r\n')
    path = write(tmp_path / "s.csv", text)
    events, stats, _ = read_broker(path)
    assert [e.data.get("UserName") for e in events] == [None, "alice", "alice"]
    assert issues(stats) == [("line 3", "UserName is '#NAME?', an Excel error value: the file was re-saved by "
                                        "Excel and this row is not trusted (export it again with Export-Csv): "
                                        "row skipped", 1)]


def test_bad_rows_are_reported_and_skipped(tmp_path: Path) -> None:
    text = ('"UserName","SessionId","SessionState","HostServer","CreateTime","PolledAt"\r\n'
            '"alice","2","STATE_ACTIVE","rdsh01","not a date","2026-01-14T15:10:00Z"\r\n'
            '"bob","3","STATE_WEIRD","rdsh01","1/14/2026 9:06:00 AM","2026-01-14T15:10:00Z"\r\n'
            '"carol","4","STATE_ACTIVE","rdsh01","1/14/2026 9:07:00 AM","yesterday"\r\n'
            '"dave","5","STATE_ACTIVE","rdsh01"\r\n'
            '"erin","6","STATE_IDLE","rdsh01","1/14/2026 9:08:00 AM","2026-01-14T15:10:00Z"\r\n')
    events, stats, _ = read_broker(write(tmp_path / "s.csv", text))
    assert [(e.event_id, e.data.get("UserName")) for e in events] == [
        (POLL, None), (SESSION_LISTED, "erin"), (SESSION_CREATED, "erin")]
    assert issues(stats) == [
        ("line 2", "CreateTime 'not a date' is not a date and time: row skipped", 1),
        ("line 3", "SessionState 'STATE_WEIRD' is not a known state (STATE_ACTIVE, STATE_DISCONNECTED, ...): "
                   "row skipped", 1),
        ("line 4", "PolledAt 'yesterday' is not an ISO 8601 time: row skipped", 1),
        ("line 5", "4 fields where the header has 6: row skipped", 1),
    ]
    assert stats.records == 2  # erin's row and the poll


def test_a_poll_cut_short_by_a_crash_keeps_its_rows_and_says_where_the_zeros_begin(tmp_path: Path) -> None:
    """A file whose end a crash left zero-filled: the rows before are read, the damaged line is named and counted
    as lost (so a report on it is a lower bound), the same on every Python (3.10's csv refuses NUL bytes)."""
    text = ('"UserName","SessionId","SessionState","HostServer","CreateTime","PolledAt"\r\n'
            '"erin","6","STATE_ACTIVE","rdsh01","1/14/2026 9:08:00 AM","2026-01-14T15:10:00Z"\r\n'
            '"fred","7","STATE_ACT' + "\0" * 40)
    events, stats, _ = read_broker(write(tmp_path / "s.csv", text))
    assert [(e.event_id, e.data.get("UserName")) for e in events] == [
        (POLL, None), (SESSION_LISTED, "erin"), (SESSION_CREATED, "erin")]
    assert issues(stats) == [("line 3", "NUL bytes: the file is damaged here; row skipped", 1)]
    zeroed = write(tmp_path / "zeros.csv", "\0" * 512)  # nothing but zeros: not taken for a broker export
    assert not broker_csv.looks_like(zeroed.read_bytes(), zeroed)


def test_encodings_utf16_le_be_with_and_without_bom(tmp_path: Path) -> None:
    expected = brief(read_broker(write(tmp_path / "ascii.csv", PS51_EN_US))[0])
    for name, data in (("le-bom", codecs.BOM_UTF16_LE + PS51_EN_US.encode("utf-16-le")),
                       ("be-bom", codecs.BOM_UTF16_BE + PS51_EN_US.encode("utf-16-be")),
                       ("le", PS51_EN_US.encode("utf-16-le")),
                       ("utf8-bom", PS51_EN_US.encode("utf-8-sig"))):
        path = tmp_path / f"{name}.csv"
        path.write_bytes(data)
        assert broker_csv.looks_like(data[:65536], path), name
        assert brief(read_broker(path)[0]) == expected, name


def test_windows_1252_text_without_bom(tmp_path: Path) -> None:
    # Export-Csv -Encoding Default on a Western European system: 'ü' is the single byte 0xFC
    text = ('"UserName","SessionId","SessionState","HostServer","CreateTime","PolledAt"\r\n'
            '"jürgen","2","STATE_ACTIVE","rdsh01","14.01.2026 09:05:33","2026-01-14T09:00:00Z"\r\n')
    events, stats, _ = read_broker(write(tmp_path / "s.csv", text, "cp1252"), BERLIN)
    assert events[1].data["UserName"] == "jürgen" and stats.issues == []


# --- query user ------------------------------------------------------------------------------------------------

#: As quser prints it (offsets of real output: SESSIONNAME at 23, ID ending at 43, STATE at 46, LOGON TIME at 65).
QUSER_EN = (
    " USERNAME              SESSIONNAME        ID  STATE   IDLE TIME  LOGON TIME\r\n"
    ">administrator         rdp-tcp#2           1  Active          .  1/14/2026 9:27 AM\r\n"
    " ben bolen                                 2  Disc      1+00:53  1/13/2026 9:33 AM\r\n"
    " alice                 rdp-tcp#7           3  Active         12  1/14/2026 10:02 AM\r\n"
    " averyveryverylongusername rdp-tcp#8       4  Active       1:05  1/14/2026 12:00 PM\r\n"
    " bob                   console             5  Conn         none  1/14/2026 12:30 PM\r\n"
)


def test_query_user_english(tmp_path: Path) -> None:
    path = write(tmp_path / "quser_RDSH01_20260114T180000Z.txt", QUSER_EN)
    assert query_user.looks_like(path.read_bytes(), path)
    events, stats, sink = read_quser(path)  # New York, EST = UTC-5
    poll = us(2026, 1, 14, 18)
    assert brief(events) == [
        (POLL, poll, "RDSH01", None, None),
        (SESSION_LISTED, poll, "RDSH01", 1, "administrator"),
        (SESSION_CREATED, us(2026, 1, 14, 14, 27), "RDSH01", 1, "administrator"),
        (SESSION_LISTED, poll, "RDSH01", 2, "ben bolen"),  # a name with a space, SESSIONNAME blank
        (SESSION_CREATED, us(2026, 1, 13, 14, 33), "RDSH01", 2, "ben bolen"),
        (SESSION_LISTED, poll, "RDSH01", 3, "alice"),
        (SESSION_CREATED, us(2026, 1, 14, 15, 2), "RDSH01", 3, "alice"),
        (SESSION_LISTED, poll, "RDSH01", 4, "averyveryverylongusername"),  # overflows into SESSIONNAME
        (SESSION_CREATED, us(2026, 1, 14, 17), "RDSH01", 4, "averyveryverylongusername"),  # 12:00 PM = noon
        (SESSION_LISTED, poll, "RDSH01", 5, "bob"),
        (SESSION_CREATED, us(2026, 1, 14, 17, 30), "RDSH01", 5, "bob"),
    ]
    assert events[3].data == {"UserName": "ben bolen", "SessionId": "2", "SessionState": "Disc",
                              "CreateTime": "1/13/2026 9:33 AM", "HostServer": "RDSH01", "PolledBy": "RDSH01"}
    assert "DomainName" not in events[1].data
    assert {e.channel for e in events} == {QUERY_USER_CHANNEL}
    assert stats.records == 6 and stats.per_channel == {QUERY_USER_CHANNEL: 6} and stats.issues == []
    assert len(sink.added) == 1


#: French Windows (a real sample's header and 'Actif'/'aucun'), fr-FR dates, in Paris (UTC+1 in February).
QUSER_FR = (
    " UTILISATEUR           SESSION            ID  ÉTAT    TEMPS INACT TEMPS SESSION\r\n"
    ">olivier               console             1  Actif       aucun   12/02/2023 07:11\r\n"
    " josé                                      2  Déco          1:12   13/02/2023 18:30\r\n"
)
FR_EXPECTED = [
    (POLL, us(2023, 2, 13, 19), "SRVFR", None, None),
    (SESSION_LISTED, us(2023, 2, 13, 19), "SRVFR", 1, "olivier"),
    (SESSION_CREATED, us(2023, 2, 12, 6, 11), "SRVFR", 1, "olivier"),
    (SESSION_LISTED, us(2023, 2, 13, 19), "SRVFR", 2, "josé"),
    (SESSION_CREATED, us(2023, 2, 13, 17, 30), "SRVFR", 2, "josé"),
]


def test_query_user_french_in_the_console_code_page(tmp_path: Path) -> None:
    # quser > file in cmd: OEM code page 850 bytes ('É' is 0x90, 'é' 0x82)
    path = write(tmp_path / "quser_SRVFR_20230213T190000Z.txt", QUSER_FR, "cp850")
    assert query_user.looks_like(path.read_bytes(), path)
    events, stats, _ = read_quser(path, PARIS)
    assert brief(events) == FR_EXPECTED
    assert events[3].data["SessionState"] == "Déco" and stats.issues == []


def test_query_user_garbled_code_page_is_repaired(tmp_path: Path) -> None:
    # cp850 bytes read as Windows-1252 by some tool and saved as UTF-8: 'ÉTAT' -> '\x90TAT', 'Déco' -> 'D‚co'
    # (Windows maps the byte 0x90, unassigned in cp1252, to U+0090)
    garbled = "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in QUSER_FR.encode("cp850"))
    assert "D‚co" in garbled and "\x90TAT" in garbled
    path = write(tmp_path / "quser_SRVFR_20230213T190000Z.txt", garbled, "utf-8")
    assert query_user.looks_like(path.read_bytes(), path)
    events, stats, _ = read_quser(path, PARIS)
    assert brief(events) == FR_EXPECTED  # 'josé' restored
    assert issues(stats) == [("file", "the console code page garbled the text: repaired (cp850 text that was read "
                                      "as cp1252)", 0)]


def test_query_user_letters_lost_to_the_code_page_are_tolerated(tmp_path: Path) -> None:
    # a real sample shows 'ÉTAT' printed as 'TAT': the accented letters are gone and cannot be repaired
    lost = QUSER_FR.replace("É", "").replace("é", "")
    path = write(tmp_path / "quser_SRVFR_20230213T190000Z.txt", lost)
    assert query_user.looks_like(path.read_bytes(), path)
    events, stats, _ = read_quser(path, PARIS)
    assert [e.data.get("UserName") for e in events] == [None, "olivier", "olivier", "jos", "jos"]
    assert events[3].data["SessionState"] == "Dco"
    assert issues(stats) == [("file", "the console code page garbled accented letters (the header reads "
                                      "'UTILISATEUR           SESSION            ID  TAT    TEMPS INACT TEMPS "
                                      "SESSION'): user names with accented letters may be wrong", 0)]


def test_query_user_german_utf16(tmp_path: Path) -> None:
    # German Windows (real header, 'Aktiv', 'Kein'; 'Getr.' disconnected), quser > file in Windows PowerShell 5.1
    text = (" BENUTZERNAME          SITZUNGSNAME       ID  STATUS  LEERLAUF   ANMELDEZEIT\r\n"
            " manfred               console             4  Aktiv       Kein   28.04.2025 12:03\r\n"
            " leo                                       5  Getr.      2+03:04  27.04.2025 08:15\r\n")
    path = tmp_path / "quser_RDSH02_20250428T120000Z.txt"
    path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    assert query_user.looks_like(path.read_bytes(), path)
    events, stats, _ = read_quser(path, BERLIN)  # CEST = UTC+2 in April
    assert brief(events) == [
        (POLL, us(2025, 4, 28, 12), "RDSH02", None, None),
        (SESSION_LISTED, us(2025, 4, 28, 12), "RDSH02", 4, "manfred"),
        (SESSION_CREATED, us(2025, 4, 28, 10, 3), "RDSH02", 4, "manfred"),
        (SESSION_LISTED, us(2025, 4, 28, 12), "RDSH02", 5, "leo"),
        (SESSION_CREATED, us(2025, 4, 27, 6, 15), "RDSH02", 5, "leo"),
    ]
    assert stats.issues == []


def test_no_user_exists_is_a_poll_without_sessions(tmp_path: Path) -> None:
    path = write(tmp_path / "quser_RDSH01_20260114T091000Z.txt", "No User exists for *\r\n")
    assert query_user.looks_like(path.read_bytes(), path)
    events, stats, sink = read_quser(path, ReadPlan())
    assert brief(events) == [(POLL, us(2026, 1, 14, 9, 10), "RDSH01", None, None)]
    assert stats.records == 1 and stats.issues == [] and len(sink.added) == 1
    one_user = write(tmp_path / "quser_RDSH01_20260114T092000Z.txt", "No User exists for alice\r\n")
    with pytest.raises(SourceError, match="a query for user 'alice', not for all sessions"):
        read_quser(one_user)


def test_a_failed_query_is_no_poll(tmp_path: Path) -> None:
    path = write(tmp_path / "quser_RDSH01_20260114T091000Z.txt", "Error [5]:Access is denied.\r\n")
    assert not query_user.looks_like(path.read_bytes(), path)
    with pytest.raises(SourceError, match="not query user output evtrack can read"):
        read_quser(path)


def test_query_user_host_and_poll_time_come_from_the_name(tmp_path: Path) -> None:
    nameless = write(tmp_path / "sessions.txt", QUSER_EN)
    with pytest.raises(SourceError) as error:
        read_quser(nameless)
    assert "quser_<HOST>_<yyyyMMddTHHmmssZ>.txt" in error.value.reason
    unstamped = write(tmp_path / "quser_RDSH01.txt", QUSER_EN)
    os.utime(unstamped, (0, datetime_to_us(datetime(2026, 1, 14, 18, 1, tzinfo=UTC)) / 1e6))
    events, stats, _ = read_quser(unstamped)
    assert events[0].time_us == us(2026, 1, 14, 18, 1) and events[0].computer == "RDSH01"
    assert [i.reason for i in stats.issues] == [
        "the file name has no poll stamp: the poll time is assumed to be the file's modification time "
        "2026-01-14T18:01:00Z (name the file quser_RDSH01_<yyyyMMddTHHmmssZ>.txt)"]


def test_query_user_rows_it_cannot_read_or_does_not_know(tmp_path: Path) -> None:
    text = (" USERNAME              SESSIONNAME        ID  STATE   IDLE TIME  LOGON TIME\r\n"
            " alice                 rdp-tcp#7           3  Active       soon  1/14/2026 10:02 AM\r\n"
            " bob                   rdp-tcp#8           4  Weird           .  1/14/2026 10:03 AM\r\n"
            "                       rdp-tcp            65  Listen          .  1/14/2026 10:04 AM\r\n"
            " carol                 rdp-tcp#9           6  Active          .  13/14/2026 10:05 AM\r\n"
            "quser exited on RDSH01 with error code 0.\r\n")
    events, stats, _ = read_quser(write(tmp_path / "quser_RDSH01_20260114T180000Z.txt", text))
    assert [(e.event_id, e.data.get("UserName")) for e in events] == [
        (POLL, None), (SESSION_LISTED, "alice"), (SESSION_CREATED, "alice"),
        (SESSION_LISTED, "bob"), (SESSION_CREATED, "bob")]
    assert issues(stats) == [
        ("line 2", "IDLE TIME 'soon' is not a known idle format", 0),
        ("line 3", "state 'Weird' is not one evtrack knows: read as a user's session (query user lists sessions "
                   "that have a user)", 0),
        ("line 5", "LOGON TIME '13/14/2026 10:05 AM' is not a date and time: row skipped", 1),
        ("line 6", "not a query user row ('quser exited on RDSH01 with error code 0.'): skipped", 1),
    ]


def test_query_user_ambiguous_dates_need_a_culture(tmp_path: Path) -> None:
    # fr-FR and en-US both write 05/01/2026 for a date before the poll in June: no day above 12 decides
    text = (" USERNAME              SESSIONNAME        ID  STATE   IDLE TIME  LOGON TIME\r\n"
            " alice                 rdp-tcp#7           3  Active          .  05/01/2026 10:02\r\n")
    path = write(tmp_path / "quser_RDSH01_20260601T000000Z.txt", text)
    with pytest.raises(SourceError, match="--culture"):
        read_quser(path, ReadPlan(local_zone=ZoneInfo("UTC")))
    events, _, _ = read_quser(path, ReadPlan(local_zone=ZoneInfo("UTC"), culture="fr-FR"))
    assert events[2].time_us == us(2026, 1, 5, 10, 2)


# --- detection -------------------------------------------------------------------------------------------------


def test_detection_tells_the_kinds_apart(tmp_path: Path) -> None:
    xml = xml_event(4624, data={"TargetUserName": "alice"}).encode()
    evtx = b"ElfFile\x00" + bytes(4088)
    random_csv = b"name,price,qty\r\nwidget,2.50,4\r\n"
    broker = PS51_EN_US.encode()
    quser = QUSER_EN.encode()
    path = tmp_path / "x"
    assert broker_csv.looks_like(broker, path) and not query_user.looks_like(broker, path)
    assert query_user.looks_like(quser, path) and not broker_csv.looks_like(quser, path)
    for other in (xml, evtx, random_csv, b"UserName,Other\r\nalice,1\r\n"):
        assert not broker_csv.looks_like(other, path)
        assert not query_user.looks_like(other, path)


# --- the synth writers, read back ----------------------------------------------------------------------------

SESSIONS = [
    SnapshotSession("alice", "CONTOSO", "rdsh01.contoso.com", 2, "active", datetime(2026, 1, 14, 8, 5, 33, tzinfo=UTC)),
    SnapshotSession("josé", "CONTOSO", "rdsh01.contoso.com", 3, "disconnected",
                    datetime(2026, 1, 13, 17, 40, tzinfo=UTC), datetime(2026, 1, 13, 18, tzinfo=UTC),
                    idle=timedelta(hours=15, minutes=10)),
    SnapshotSession("carl", "CONTOSO", "rdsh02.contoso.com", 4, "active", datetime(2026, 1, 12, 7, tzinfo=UTC),
                    idle=timedelta(days=1, hours=2, minutes=3)),
]
POLLED = datetime(2026, 1, 14, 9, 10, tzinfo=UTC)


@pytest.mark.parametrize("shape", ["ps51", "ps51-selected", "ps7", "ps7-invoke"])
@pytest.mark.parametrize(("culture", "use_culture", "encoding"), [
    ("en-US", False, "ascii"), ("en-GB", False, "utf-8-sig"), ("de-DE", True, "utf-16"),
    ("de-DE", False, "utf-16-be"), ("en-US", True, "utf-8")])
def test_written_broker_csv_reads_back(tmp_path: Path, shape: str, culture: str, use_culture: bool,
                                       encoding: str) -> None:
    path = write_broker_csv(tmp_path, POLLED, "rdcb01", SESSIONS, shape=shape, culture=culture,
                            use_culture=use_culture, encoding=encoding, zone="Europe/Berlin")
    assert path.name == broker_csv_name("rdcb01", POLLED) == "rdusersession_rdcb01_20260114T091000Z.csv"
    assert broker_csv.looks_like(path.read_bytes()[:65536], path)
    events, stats, _ = read_broker(path, ReadPlan(local_zone=ZoneInfo("Europe/Berlin"), culture=culture))
    poller = "rdcb01"
    users = [s.user if encoding != "ascii" else s.user.replace("é", "?") for s in SESSIONS]
    expected: list[tuple[int, int | None, str, int | None, str | None]] = [
        (POLL, datetime_to_us(POLLED), poller, None, None)]
    for session, user in zip(SESSIONS, users, strict=True):
        expected += [(SESSION_LISTED, datetime_to_us(POLLED), session.host, session.session_id, user),
                     (SESSION_CREATED, datetime_to_us(session.create_time), session.host, session.session_id, user)]
    assert brief(events) == expected
    assert stats.issues == []


def test_written_broker_csv_appends_polls(tmp_path: Path) -> None:
    later = POLLED + timedelta(minutes=15)
    path = write_broker_csv(tmp_path / "polls.csv", POLLED, "rdcb01", SESSIONS[:1], encoding="utf-16")
    write_broker_csv(path, later, "rdcb01", SESSIONS[:2], encoding="utf-16", append=True)
    events, _, sink = read_broker(path, ReadPlan(local_zone=ZoneInfo("UTC")))
    assert [e.time_us for e in sink.added] == [datetime_to_us(POLLED), datetime_to_us(later)]
    assert [e.data.get("UserName") for e in events if e.event_id == SESSION_LISTED] == ["alice", "alice", "josé"]


@pytest.mark.parametrize(("language", "encoding"), [("en", "utf-8"), ("fr", "cp850"), ("de", "utf-16"),
                                                    ("fr", "utf-16"), ("de", "cp850")])
def test_written_query_user_reads_back(tmp_path: Path, language: str, encoding: str) -> None:
    path = write_query_user(tmp_path, POLLED, "RDSH01", SESSIONS, language=language, zone="America/New_York",
                            encoding=encoding, current_user="alice")
    assert path.name == query_user_name("RDSH01", POLLED) == "quser_RDSH01_20260114T091000Z.txt"
    assert query_user.looks_like(path.read_bytes()[:65536], path)
    events, stats, _ = read_quser(path, NY)
    # LOGON TIME has no seconds: alice's 08:05:33Z is listed as 08:05Z
    assert brief(events) == [
        (POLL, datetime_to_us(POLLED), "RDSH01", None, None),
        (SESSION_LISTED, datetime_to_us(POLLED), "RDSH01", 2, "alice"),
        (SESSION_CREATED, us(2026, 1, 14, 8, 5), "RDSH01", 2, "alice"),
        (SESSION_LISTED, datetime_to_us(POLLED), "RDSH01", 3, "josé"),
        (SESSION_CREATED, us(2026, 1, 13, 17, 40), "RDSH01", 3, "josé"),
    ]
    assert stats.issues == []


def test_written_query_user_without_sessions(tmp_path: Path) -> None:
    path = write_query_user(tmp_path, POLLED, "RDSH09", SESSIONS)
    assert path.read_bytes() == b"No User exists for *\r\n"
    events, _, _ = read_quser(path)
    assert brief(events) == [(POLL, datetime_to_us(POLLED), "RDSH09", None, None)]


def test_query_user_console_session_is_no_rdp_evidence(tmp_path: Path) -> None:
    """Regression: the reader dropped SESSIONNAME, so the catalogue's console rule (``quser_console``) never saw
    ``console`` and the local administrator at the console counted as an RDP user. The session name is kept
    (omitted when blank: a disconnected session, which counts)."""
    path = write(tmp_path / "quser_RDSH01_20260114T180000Z.txt", QUSER_EN)
    events, _, _ = read_quser(path)
    rows = [normalise(e, str(path)) for e in events if e.event_id != POLL]
    verdicts = {(row["user"], row["event_id"]): (row["session_name"], row["rdp"], row["reason"])
                for row in rows if row is not None}
    assert verdicts[("bob", SESSION_LISTED)] == ("console", False, "quser_console")
    assert verdicts[("bob", SESSION_CREATED)] == ("console", False, "quser_console")
    assert verdicts[("alice", SESSION_LISTED)] == ("rdp-tcp#7", True, "quser_session_listed")
    assert verdicts[("ben bolen", SESSION_LISTED)] == (None, True, "quser_session_listed")
    assert "SessionName" not in events[3].data


def test_a_dotted_date_is_day_first_whatever_the_culture_says(tmp_path: Path) -> None:
    """``01.03.2024 08:35:25`` (de-DE) polled at 2024-03-01T10:00Z: both orders are dates before the poll, but no
    culture writes month.day.year with dots, so it is 1 March (07:35:25Z in Berlin), even with --culture en-US (a
    folder of polls from machines of two cultures is normal: no issue for what the format decides)."""
    text = ('"UserName";"DomainName";"SessionId";"SessionState";"ServerName";"CreateTime";"PolledAt"\r\n'
            '"erin";"CONTOSO";"4";"STATE_ACTIVE";"rdsh01.contoso.local";"01.03.2024 08:35:25";'
            '"2024-03-01T10:00:00Z"\r\n')
    path = write(tmp_path / "s.csv", text)
    events, stats, _ = read_broker(path, ReadPlan(local_zone=ZoneInfo("Europe/Berlin"), culture="en-US"))
    created = [e for e in events if e.event_id == 3]
    assert [e.time_us for e in created] == [int(datetime(2024, 3, 1, 7, 35, 25, tzinfo=timezone.utc).timestamp())
                                            * 1_000_000]
    assert not any("--culture" in i.reason for i in stats.issues)
