"""The CAL usage report: frozen dataclasses, JSON-serialisable with a schema version.

It mirrors the RD Licensing Manager's *CAL Usage* report (date and time created, scope, Per User CALs installed,
Per User CALs issued within the scope) and goes beyond it: per window distinct users with a verdict, per user the
evidence and an estimated CAL expiry, what was excluded and why, and how complete the logs were. A window the
logs do not cover has ``users = None`` ("unknown"), never 0.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, TypeVar, Union

SCHEMA_VERSION = 1
CAL_VALIDITY_DAYS = 60
"""Per User CALs show as valid 60 days after issue and are extended at sign-in (Microsoft, RDS CAL page)."""

STATUS_COMPLETE = "complete"
STATUS_PARTIAL = "partial"
STATUS_UNKNOWN = "unknown"


@dataclass(frozen=True)
class WindowUsage:
    """Usage in one window ``[start, end)`` (local time of the report's zone)."""

    label: str
    start: datetime
    end: datetime
    users: int | None
    """Distinct users with RDP evidence in the window; None when no log covers any of it (unknown)."""
    new_users: int | None
    """Users first seen (in this report's data) in this window."""
    sessions: int | None
    """Session starts (a 4624 type 10/12 and the LSM 21 of the same logon are one start); None when unknown."""
    reconnects: int | None
    status: str
    """complete (every known host's logs cover the whole window), partial (some), unknown (none)."""
    verdict: str
    """within / over by N / unknown."""
    user_keys: tuple[str, ...]
    hosts_complete: tuple[str, ...]
    hosts_partial: tuple[str, ...]
    hosts_unknown: tuple[str, ...]
    devices: int | None
    """Distinct client devices (4778 ClientName, else the client IP address): approximate behind NAT."""
    peak_sessions: int | None
    """Most RDP sessions connected at once in the window, over all hosts."""
    carried_over: tuple[str, ...] = ()
    """Users counted here only because a session that began earlier was still connected in this window."""
    in_verdict: bool = True
    """Whether the headline verdict rests on this window (see :attr:`Report.verdict_windows`)."""
    rests_on: tuple[str, ...] = ()
    """The sources that can miss use which this count rests on for some host with no log of its own covering the
    whole window (``Connection Broker polls``, ``query user polls``: sessions shorter than the poll interval;
    ``RD Gateway``: connections that bypass it): a lower bound whatever the coverage says. Empty: logs only."""
    sources: tuple[tuple[str, int], ...] = ()
    """How many of the window's users each evidence source saw (``session host logs``, ``Connection Broker
    polls``, ``RD Gateway``...): a cross-check where sources overlap."""


@dataclass(frozen=True)
class Proof:
    """One record that proves a person's RDP use in one window: open the named file and find it by its
    EventRecordID (Event Viewer: Filter Current Log, XML, ``*[System[EventRecordID=1234]]``)."""

    window: str
    which: str
    """``first`` or ``last`` qualifying record in the window, ``only`` when one record is both, ``carried over``
    for the record that connected a session which began in an earlier window and was still connected in this one."""
    file: str
    """An input file that holds the record (the first by path when overlapping exports hold it; from the store:
    the file whose ingest brought it)."""
    host: str
    """The computer name as the record writes it."""
    channel: str
    record_id: int | None
    event_id: int
    time: datetime
    """The time the record carries (TimeCreated SystemTime, UTC)."""
    local_time: datetime
    """The same instant in the report's zone."""
    rule: str
    """The reason code of the evidence rule the record met (e.g. ``4624_lt10``, ``lsm21_ip``)."""
    user: str
    """The account as the record names it (``DOMAIN\\sam``, a UPN, or a bare name), with ``[SID]`` when it has one."""
    placed: datetime | None = None
    """For a misdated record: where its neighbours place it, the time the report counted it at."""
    carried_over: bool = False


@dataclass(frozen=True)
class UserUsage:
    """One person who used RDP, with the evidence."""

    key: str
    display_name: str
    sid: str | None
    aliases: tuple[str, ...]
    first_seen: datetime
    last_seen: datetime
    sessions: int
    reconnects: int
    hosts: tuple[str, ...]
    evidence: tuple[str, ...]
    """Reason codes of the rules that matched (e.g. 4624_lt10, lsm25_ip; ``session_carried_over`` when a session
    that began in an earlier window was still connected in a later one)."""
    events: int
    cal_expiry: datetime
    """Estimated Per User CAL expiry: last seen + 60 days."""
    windows: tuple[str, ...]
    local_account: bool
    """The domain is a session host's own name: Per User CALs cover domain users; check this account."""
    domain_resolved: bool
    full_name: str | None
    """Display name from the directory export (``--directory``), when given."""
    in_directory: bool | None
    """Found in the directory export; None when no directory was given."""
    proof: tuple[Proof, ...] = ()
    sources: tuple[str, ...] = ()
    """The evidence sources that saw this person (``session host logs``, ``Connection Broker polls``...)."""
    """Per window counted: the first and last qualifying record (or the logon of a session carried over)."""


@dataclass(frozen=True)
class ExcludedUser:
    """An account with RDP evidence that is not counted, and why."""

    name: str
    key: str
    reason: str
    events: int
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True)
class DeviceUsage:
    """A client device seen in RDP evidence (for comparing with the Per Device licensing model)."""

    key: str
    name: str | None
    addresses: tuple[str, ...]
    users: tuple[str, ...]
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True)
class HostPeak:
    """Most RDP sessions connected at once on one host in one window."""

    host: str
    window: str
    peak_sessions: int


@dataclass(frozen=True)
class CurvePoint:
    """The licence-server view at the end of one local day: users with RDP evidence in the previous 60 days."""

    day: date
    users: int


@dataclass(frozen=True)
class SlidingPeak:
    """The most distinct users in any ``days`` consecutive days of the period (exact, not sampled)."""

    days: int
    users: int
    start: datetime | None
    """The first such stretch: ``[start, end)``."""
    end: datetime | None
    complete: bool
    """Whether every counted host's logs cover that whole stretch (else the count is a lower bound)."""


@dataclass(frozen=True)
class HostUsers:
    """How many distinct users one host contributes, and whether it counts."""

    host: str
    users: int
    counted: bool
    """False for a host left out by the host patterns (``--host`` / ``--exclude-host``)."""
    hint: str | None = None
    """Why the host may not be a session host (a hint, never a silent rule)."""


@dataclass(frozen=True)
class MisdatedEvidence:
    """An RDP event whose time contradicts its neighbours in record order: counted at the time its neighbours
    place it at (the time it carries is kept here, for checking)."""

    host: str
    channel: str
    record_id: int
    event_id: int
    user: str
    time: datetime
    """The time the record carries."""
    placed: datetime
    """Where its neighbours put it; the report counts it there."""


@dataclass(frozen=True)
class ChannelCoverage:
    host: str
    channel: str
    first: datetime
    last: datetime
    records: int
    intervals: tuple[tuple[datetime, datetime], ...]
    """Covered time, merged across input files (a hole between two exports is not covered)."""
    record_id_gaps: int
    missing_record_ids: int
    cleared: tuple[datetime, ...]


@dataclass(frozen=True)
class InputFile:
    path: str
    kind: str
    engine: str
    records: int
    skipped: int
    issues: tuple[str, ...]
    error: str | None
    size: int | None = None
    """Bytes in the file when it was read (None when it could not be read at all)."""
    sha256: str | None = None
    """SHA-256 of the file's bytes (hex): check it with ``Get-FileHash`` or ``sha256sum``."""
    ingested_at: datetime | None = None
    """From the store: when the ingest that brought this file ran."""


@dataclass(frozen=True)
class Report:
    """Everything ``evtrack report`` found, in one value that renderers turn into text."""

    schema_version: int
    created_at: datetime
    scope: str
    """Like the Licensing Manager's: "All trusted domains", "Domain: CONTOSO"."""
    installed: int | None
    estimated: int | None
    """Estimated Per User CALs issued as of ``as_of``: distinct users with RDP evidence in the 60 days before."""
    as_of: datetime | None
    peak_estimated: int | None
    peak_day: date | None
    max_window_users: int | None
    verdict: str
    """within / over by N / unknown; "over" when the estimate or any window exceeds the installed count."""
    over_by: int
    utilisation: float | None
    coverage_complete: bool
    tz: str
    window: str
    period_start: datetime | None
    period_end: datetime | None
    windows: tuple[WindowUsage, ...]
    users: tuple[UserUsage, ...]
    excluded: tuple[ExcludedUser, ...]
    curve: tuple[CurvePoint, ...]
    coverage: tuple[ChannelCoverage, ...]
    devices: tuple[DeviceUsage, ...]
    host_peaks: tuple[HostPeak, ...]
    sessions_closed_at_coverage_end: int
    """Sessions with no disconnect or logoff in the logs, counted as connected until the host's logs end."""
    inputs: tuple[InputFile, ...]
    engine: str
    records_read: int
    records_skipped: int
    notes: tuple[str, ...]
    lower_bound: bool = False
    """The verdict rests on inputs that do not cover all it needs (a partial or unknown window, a 60-day look-back
    only partly covered, a file that could not be read, misdated evidence): counts are lower bounds."""
    verdict_windows: tuple[str, ...] = ()
    """Labels of the windows the verdict rests on (without --from/--to: the windows the logs cover fully, plus any
    window over the installed count)."""
    peak_at: datetime | None = None
    """The first instant the licence-server view reached its peak (exact)."""
    sliding_peaks: tuple[SlidingPeak, ...] = ()
    host_users: tuple[HostUsers, ...] = ()
    misdated: tuple[MisdatedEvidence, ...] = ()
    warnings: tuple[str, ...] = ()
    """Settings that matched nothing (a scope, exclusion or host pattern): the answer may not be what was asked."""
    installed_source: str | None = None
    """Where ``installed`` came from ("--installed", "config file evtrack.toml", "key packs keypacks.csv ...");
    None when not set or not recorded (reports saved before this field existed)."""

    def to_dict(self) -> dict[str, Any]:
        return _encode(self)  # type: ignore[no-any-return]

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Report:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"unsupported report schema version {version!r} (this evtrack reads {SCHEMA_VERSION})")
        report: Report = _decode(Report, data)
        return report


# -- (de)serialisation ------------------------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    """ISO 8601 with offset (``Z`` for UTC), seconds or microseconds as needed."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def jsonable(value: Any) -> Any:
    """A report value (a dataclass, datetimes, tuples) as plain JSON types, the way :meth:`Report.to_dict` writes."""
    return _encode(value)


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (tuple, list)):
        return [_encode(item) for item in value]
    return value


T = TypeVar("T")


def _decode(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _decode(options[0], value)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], item) for item in value)
        return tuple(_decode(a, item) for a, item in zip(args, value, strict=True))
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = typing.get_type_hints(tp)
        # a field with a default may be absent: it was added after reports were saved (same schema version)
        return tp(**{f.name: _decode(hints[f.name], value[f.name]) for f in dataclasses.fields(tp)
                     if f.name in value or (f.default is dataclasses.MISSING
                                            and f.default_factory is dataclasses.MISSING)})
    if tp is datetime:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    if tp is date:
        return date.fromisoformat(value)
    if tp is float and isinstance(value, int):
        return float(value)
    return value
