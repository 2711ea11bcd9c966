"""Connection Broker snapshots: ``Get-RDUserSession | Export-Csv``, in the shapes PowerShell writes.

Shapes (told apart by content, none needs a flag):

* Windows PowerShell 5.1: a first line ``#TYPE Microsoft.RemoteDesktopServices.Management.RDUserSession``
  (``#TYPE Selected.…`` after ``Select-Object``, ``#TYPE Deserialized.…`` through ``Invoke-Command``), every
  field quoted, a null as an empty unquoted field; ASCII by default (``?`` for what ASCII lacks), or UTF-8 with a
  BOM, or UTF-16 LE/BE (``-Encoding Unicode`` / ``BigEndianUnicode``); text without a BOM that is not UTF-8 is
  read as Windows-1252 (``-Encoding Default`` on a Western European system).
* PowerShell 7: no ``#TYPE`` line; ``Invoke-Command`` adds ``PSComputerName``, ``RunspaceId`` and
  ``PSShowComputerName`` columns.
* ``-UseCulture``: the culture's list separator (``;`` in much of Europe) -- the delimiter is read from the
  header line.
* The collection script we ship adds ``PolledAt`` (ISO 8601, UTC). A file may hold several polls (several
  ``PolledAt`` values): one :data:`POLL` record each. Without the column, the poll time is the file name's stamp
  (``rdusersession_<broker>_<yyyyMMddTHHmmssZ>.csv``), else the file's modification time, and an issue says so.
* A header-only file is a poll that saw no sessions; so is an empty (0-byte) file named as above.

Columns (RDUserSession, in order): ServerName, SessionId, UserName, DomainName, ServerIPAddress, TSProtocol,
ApplicationType, ResolutionWidth, ResolutionHeight, ColorDepth, CreateTime, DisconnectTime, SessionState,
CollectionName, CollectionType, UnifiedSessionId, HostServer, IdleTime, RemoteFxEnabled. CreateTime and
DisconnectTime are ``ToString()`` in the broker's culture and local time (see :mod:`evtrack.sources.snapshots`);
both help decide the day/month order, only CreateTime becomes a record.

Which rows are user sessions: a UserName and a SessionState of :data:`USER_STATES`. ``STATE_LISTEN``,
``STATE_RESET``, ``STATE_DOWN`` and ``STATE_INIT`` (a listener, or a session being torn down or set up) and rows
without a UserName are no session: no record, counted as read. ``STATE_CONNECTED``, ``STATE_CONNECTQUERY`` and
``STATE_IDLE`` rows with a UserName count: the broker lists a session for that user on that host. Any other
state is reported and the row skipped. A value Excel writes for a formula it could not evaluate (``#NAME?``, a
re-save by Excel) makes the row untrusted: reported, skipped.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from evtrack.errors import SourceError
from evtrack.sources.base import CUT_INSIDE_QUOTES, CoverageSink, FileStats, RawEvent, Reader, ReadPlan, csv_records
from evtrack.sources.snapshots import (
    BROKER_CHANNEL,
    BROKER_PROVIDER,
    POLL,
    SESSION_CREATED,
    SESSION_LISTED,
    STAMP_PATTERN,
    DateValue,
    LocalStamp,
    SnapshotName,
    after_its_poll,
    assumed_poll_time,
    choose_order,
    decode_text,
    has_offset,
    head_text,
    local_to_us,
    local_zone,
    parse_local,
    parse_name,
    parse_polled_at,
    read_snapshot,
)

NAME = "broker-csv"
FILE_PREFIX = "rdusersession"
DEFAULT_POLLER = "Connection Broker"

#: RDUserSession properties every export must hold (``Select-Object`` may drop the others).
REQUIRED_COLUMNS = ("UserName", "SessionId", "SessionState", "CreateTime")
HOST_COLUMNS = ("HostServer", "ServerName")
"""The session host: HostServer where present, else ServerName."""
POLLER_COLUMNS = ("PSComputerName", "ConnectionBroker")
"""The broker that answered: ``Invoke-Command`` adds PSComputerName; a script may add ConnectionBroker."""
POLLED_AT = "PolledAt"

#: SessionState names of a session that belongs to a user (with a UserName).
USER_STATES = frozenset({"STATE_ACTIVE", "STATE_CONNECTED", "STATE_CONNECTQUERY", "STATE_SHADOW",
                         "STATE_DISCONNECTED", "STATE_IDLE"})
#: SessionState names that are never a user's session: listeners, sessions being reset, down or initialised.
NOT_SESSION_STATES = frozenset({"STATE_LISTEN", "STATE_RESET", "STATE_DOWN", "STATE_INIT"})
#: What Excel writes in a cell it could not evaluate after a re-save: the value is lost.
EXCEL_ERRORS = frozenset({"#NAME?", "#VALUE!", "#REF!", "#N/A", "#DIV/0!", "#NUM!", "#NULL!"})
_DELIMITERS = (",", ";", "\t", "|")
_DEFAULT_PLAN = ReadPlan()
_EMPTY_NAME_RE = re.compile(rf"{FILE_PREFIX}_.+_{STAMP_PATTERN}\.csv", re.IGNORECASE)


def _lines(text: str) -> list[str]:
    """The text's lines with their endings, split as the csv module counts them."""
    return io.StringIO(text.lstrip("\ufeff"), newline="").readlines()


def _header_line(text: str) -> tuple[int, str] | None:
    """The line a header would be on (1-based) and its text: the first of the first lines that is neither blank nor
    ``#TYPE``. None when there is none, or it holds NUL bytes (no header does, and Python 3.10's csv refuses them)."""
    for number, line in enumerate(_lines(text)[:3], start=1):
        if line.startswith("#TYPE") or not line.strip():
            continue
        return None if "\0" in line else (number, line)
    return None


def _lacking(line: str, delimiter: str) -> tuple[list[str], list[str]]:
    """A header line's column names split at ``delimiter``, and the columns a poll needs that it lacks."""
    names = [name.strip() for name in next(csv.reader([line], delimiter=delimiter), [])]
    missing = [column for column in REQUIRED_COLUMNS if column not in names]
    if not any(column in names for column in HOST_COLUMNS):
        missing.append(" or ".join(HOST_COLUMNS))
    return names, missing


def _header(text: str) -> tuple[list[str], str, int] | None:
    """The column names, the delimiter and the header's line number (1-based), from the first lines."""
    found = _header_line(text)
    if found is None:
        return None
    number, line = found
    for delimiter in _DELIMITERS:
        names, missing = _lacking(line, delimiter)
        if not missing:
            return names, delimiter, number
    return None


def looks_like(head: bytes, path: Path) -> bool:
    """A ``Get-RDUserSession`` export: its header holds the RDUserSession columns (UserName, SessionId,
    SessionState, CreateTime, ServerName or HostServer). An empty file counts only when named
    ``rdusersession_<broker>_<yyyyMMddTHHmmssZ>.csv`` (a poll that saw no sessions)."""
    if not head:
        return bool(_EMPTY_NAME_RE.fullmatch(path.name))
    return _header(head_text(head)) is not None


def claims(head: bytes, path: Path) -> bool:
    """Whether a file says it is a ``Get-RDUserSession`` export although :func:`looks_like` found no readable
    header: its ``#TYPE`` line names RDUserSession, or it is named ``rdusersession_<broker>_<stamp>.csv``."""
    first = next((line for line in _lines(head_text(head))[:2] if line.strip()), "")
    return (first.startswith("#TYPE") and "RDUserSession" in first) or bool(_EMPTY_NAME_RE.fullmatch(path.name))


def _missing(text: str) -> str:
    """What the header line lacks of the columns a poll needs, read with the delimiter that leaves least missing
    (for the error that names them)."""
    found = _header_line(text)
    line = found[1] if found is not None else ""
    fewest = min((_lacking(line, delimiter)[1] for delimiter in _DELIMITERS), key=lambda missing: len(missing))
    return ", ".join(fewest)


@dataclass(slots=True)
class _Poll:
    time_us: int
    poller: str
    rows: list[_Row] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    values: dict[str, str | None]
    host: str
    created: LocalStamp | None


def read(path: Path, stats: FileStats, *, plan: ReadPlan = _DEFAULT_PLAN, verify_checksums: bool = True,
         coverage: CoverageSink | None = None) -> Iterator[RawEvent]:
    """The polls and user sessions of one export. Reads the whole file first (snapshots are small): what makes
    the file unusable (no time zone, an undecidable date order) is raised before any record is yielded."""
    del verify_checksums  # CSV has no checksums
    stats.engine = NAME
    raw = read_snapshot(path)
    name = parse_name(path, FILE_PREFIX)
    fallback_poller = name.host or DEFAULT_POLLER
    how_to_fix = (f"add a {POLLED_AT} column (ISO 8601 UTC) or name the file "
                  f"{FILE_PREFIX}_<broker>_<yyyyMMddTHHmmssZ>.csv")
    if not raw.strip(b"\x00 \r\n\t").removeprefix(codecs.BOM_UTF8).removeprefix(codecs.BOM_UTF16_LE):
        if name.stamp_us is None:
            raise SourceError(path, "the file is empty and its name does not say when the poll ran: "
                                    f"name it {FILE_PREFIX}_<broker>_<yyyyMMddTHHmmssZ>.csv")
        yield from _emit([_Poll(name.stamp_us, fallback_poller)], {}, stats, coverage, set())
        return
    decoded = decode_text(raw, "cp1252")
    if decoded.damaged:
        stats.add_issue("file", f"bytes that are not {decoded.encoding} were replaced by U+FFFD", 0)
    header = _header(decoded.text)
    if header is None:
        raise SourceError(path, f"a Get-RDUserSession export without the columns it needs ({_missing(decoded.text)}; "
                                f"it needs {', '.join(REQUIRED_COLUMNS)} and {' or '.join(HOST_COLUMNS)}): export "
                                "every column again (Get-RDUserSession | Export-Csv)")
    columns, delimiter, header_line = header
    polls = _polls(path, decoded.text, columns, delimiter, header_line, name, fallback_poller, stats, how_to_fix)
    created = [DateValue(row.created, poll.time_us, f"line {row.line} CreateTime")
               for poll in polls for row in poll.rows if row.created is not None]
    times: dict[int, int] = {}
    late: set[int] = set()
    if created:
        zone = local_zone(plan.local_zone, path)
        disconnected = [DateValue(stamp, poll.time_us, f"line {row.line} DisconnectTime")
                        for poll in polls for row in poll.rows
                        if (stamp := parse_local(row.values.get("DisconnectTime"))) is not None and stamp.valid()]
        order = choose_order(created + disconnected, plan.culture, zone, path, stats)
        for poll in polls:
            for row in poll.rows:
                if row.created is None:
                    continue
                moment = row.created.moment(order)
                if moment is None:
                    stats.records -= 1
                    stats.add_issue(f"line {row.line}", f"CreateTime {row.created.text!r} is no date read "
                                                        f"{order.value}: row skipped", 1)
                    continue
                times[row.line], uncertain = local_to_us(moment, zone)
                if uncertain:
                    stats.add_issue(f"line {row.line}", f"CreateTime {row.created.text!r} {uncertain}", 0)
                if after_its_poll(times[row.line], poll.time_us, f"CreateTime {row.created.text!r}",
                                  f"line {row.line}", stats):
                    late.add(row.line)
                    del times[row.line]
    yield from _emit(polls, times, stats, coverage, late)


def _polls(path: Path, text: str, columns: list[str], delimiter: str, header_line: int, name: SnapshotName,
           fallback_poller: str, stats: FileStats, how_to_fix: str) -> list[_Poll]:
    """The file's polls, in order of first appearance, each with its user-session rows."""
    lines = _lines(text)[header_line:]
    for number, text_line in enumerate(lines, start=header_line + 1):
        if "\0" in text_line:  # a file cut short by a crash ends in zeros: those rows are lost, and said
            stats.add_issue(f"line {number}", "NUL bytes: the file is damaged here; row skipped", 1)
    lines = [text_line if "\0" not in text_line else "\n" for text_line in lines]  # numbers stay the file's
    records = csv_records(io.StringIO("".join(lines), newline=""), delimiter)
    has_polled_at = POLLED_AT in columns
    file_time: int | None = None
    if not has_polled_at:
        file_time = assumed_poll_time(path, name, stats, why=f"no {POLLED_AT} column",
                                      stamp_is_assumption=True, how_to_fix=how_to_fix)
    polls: dict[tuple[int, str], _Poll] = {}
    naive_said = False
    for start, record in records:
        line = header_line + start
        if record is None:
            stats.add_issue(f"line {line}", CUT_INSIDE_QUOTES, 1)
            continue
        if not any(value.strip() for value in record):
            continue
        if len(record) != len(columns):
            stats.add_issue(f"line {line}", f"{len(record)} fields where the header has {len(columns)}: "
                                            "row skipped", 1)
            continue
        values: dict[str, str | None] = {col: (val if val != "" else None) for col, val in zip(columns, record,
                                                                                               strict=True)}
        bad = next((col for col, val in values.items() if val is not None and val.strip() in EXCEL_ERRORS), None)
        if bad is not None:
            stats.add_issue(f"line {line}", f"{bad} is {values[bad]!r}, an Excel error value: the file was re-saved "
                                            "by Excel and this row is not trusted (export it again with Export-Csv):"
                                            " row skipped", 1)
            continue
        if has_polled_at:
            time_us = parse_polled_at(values[POLLED_AT])
            if time_us is None:
                stats.add_issue(f"line {line}", f"{POLLED_AT} {values[POLLED_AT]!r} is not an ISO 8601 time: "
                                                "row skipped", 1)
                continue
            if not naive_said and not has_offset(values[POLLED_AT]):
                naive_said = True
                stats.add_issue(f"line {line}", f"{POLLED_AT} {values[POLLED_AT]!r} has no Z or offset: read as UTC, "
                                                "as the collection script writes it (a script that wrote local time, "
                                                "e.g. Get-Date -Format s, puts every poll off by the zone's offset)", 0)
        else:
            assert file_time is not None
            time_us = file_time
        poller = next((v.strip() for c in POLLER_COLUMNS if (v := values.get(c)) and v.strip()), fallback_poller)
        poll = polls.get((time_us, poller))
        if poll is None:
            poll = polls[(time_us, poller)] = _Poll(time_us, poller)
        row = _session_row(line, values, stats)
        if row is _SKIPPED:
            continue
        stats.records += 1
        stats.per_channel[BROKER_CHANNEL] += 1
        if isinstance(row, _Row):
            poll.rows.append(row)
    if not polls:  # header only: a poll that saw no sessions
        if file_time is None:
            file_time = assumed_poll_time(path, name, stats, why=f"a header without rows has no {POLLED_AT}",
                                          stamp_is_assumption=False, how_to_fix=how_to_fix)
        return [_Poll(file_time, fallback_poller)]
    return list(polls.values())


_SKIPPED = object()
"""A row that could not be read (an issue says why)."""


def _session_row(line: int, values: dict[str, str | None], stats: FileStats) -> _Row | object | None:
    """The row as a user session; None for a row that is no user session; :data:`_SKIPPED` for a row that could
    not be read (with an issue)."""
    user = (values.get("UserName") or "").strip()
    state = (values.get("SessionState") or "").strip().upper()
    if not user or state in NOT_SESSION_STATES:
        return None
    if state not in USER_STATES:
        stats.add_issue(f"line {line}", f"SessionState {values.get('SessionState')!r} is not a known state "
                                        "(STATE_ACTIVE, STATE_DISCONNECTED, ...): row skipped", 1)
        return _SKIPPED
    host = next((v.strip() for c in HOST_COLUMNS if (v := values.get(c)) and v.strip()), None)
    if host is None:
        stats.add_issue(f"line {line}", "neither HostServer nor ServerName names the session host: row skipped", 1)
        return _SKIPPED
    text = values.get("CreateTime")
    created = parse_local(text)
    if text is not None and created is None:
        stats.add_issue(f"line {line}", f"CreateTime {text!r} is not a date and time: row skipped", 1)
        return _SKIPPED
    if created is not None and not created.valid():
        stats.add_issue(f"line {line}", f"CreateTime {text!r} is no date in any day/month order: row skipped", 1)
        return _SKIPPED
    if text is None:
        stats.add_issue(f"line {line}", "no CreateTime: the session is listed at the poll time only", 0)
    return _Row(line, values, host, created)


def _emit(polls: list[_Poll], times: dict[int, int], stats: FileStats,
          coverage: CoverageSink | None, late: set[int]) -> Iterator[RawEvent]:
    for poll in polls:
        event = RawEvent(poll.time_us, POLL, None, BROKER_CHANNEL, poll.poller, BROKER_PROVIDER, {})
        stats.records += 1
        stats.per_channel[BROKER_CHANNEL] += 1
        if coverage is not None:
            coverage.add(event)
        yield event
        for row in poll.rows:
            if row.created is not None and row.line not in times and row.line not in late:
                continue  # its CreateTime could not be read (an issue says so)
            session_id = (row.values.get("SessionId") or "").strip()
            record_id = int(session_id) if session_id.isdigit() else None
            data: dict[str, str | None] = {
                "UserName": row.values.get("UserName"),
                "DomainName": row.values.get("DomainName"),
                "SessionId": row.values.get("SessionId"),
                "SessionState": row.values.get("SessionState"),
                "CreateTime": row.values.get("CreateTime"),
                "HostServer": row.host,
                "PolledBy": poll.poller,
            }
            yield RawEvent(poll.time_us, SESSION_LISTED, record_id, BROKER_CHANNEL, row.host, BROKER_PROVIDER, data)
            if row.line in times:
                yield RawEvent(times[row.line], SESSION_CREATED, record_id, BROKER_CHANNEL, row.host,
                               BROKER_PROVIDER, dict(data))


READER = Reader(name=NAME, read=read, fills_coverage=True)
