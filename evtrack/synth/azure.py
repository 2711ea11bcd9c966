"""Azure Monitor / Microsoft Sentinel exports written from a small session model, in the shapes the real tools
write (facts in docs/azure.md and evtrack/sources/azure_formats.py; this module imports nothing from them).

Feed it :class:`AzureSession` records (a workload model makes them from its own sessions); it builds the rows of
each Log Analytics table the docs' queries return (:func:`security_event_table`, :func:`event_table`,
:func:`windows_event_table`, :func:`wvd_table`, :func:`coverage_table`), and writes any of them as the portal's
CSV export (:func:`portal_csv`, en-US or en-GB, UTC or local time), ``az monitor log-analytics query -o json``
(:func:`az_json`) or the query API's response (:func:`api_json`). :func:`expected_users` is the ground truth per
table, from the model alone.

Shapes that are documented nowhere and were chosen here (the reader accepts the alternatives too): WindowsEvent's
EventData for a UserData event is written flat (``{"User": ..., "SessionID": ..., "Address": ...}``); the API
returns a dynamic value as its JSON text; SecurityEvent's EventData XML is indented with CRLF line breaks.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

SECURITY = "Security"
LSM = "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational"
GATEWAY = "Microsoft-Windows-TerminalServices-Gateway/Operational"
AUDITING = "Microsoft-Windows-Security-Auditing"
LSM_PROVIDER = "Microsoft-Windows-TerminalServices-LocalSessionManager"
GATEWAY_PROVIDER = "Microsoft-Windows-TerminalServices-Gateway"
EVENT_NS = "http://schemas.microsoft.com/win/2004/08/events/event"
#: The agent's health service id in the Event table's ``<DataItem>`` wrapper (any GUID; one per workspace).
HEALTH_SERVICE_ID = "7896DB24-81DF-2EAB-B12B-29AED6D69A17"
_HOUR = timedelta(hours=1)
_LOCALES = ("en-US", "en-GB")


@dataclass(frozen=True)
class AzureUser:
    """A person as the tables name them: ``DOMAIN\\sam`` with a SID (Windows events), a UPN (WVD)."""

    sam: str
    domain: str
    """NetBIOS name, e.g. ``CONTOSO``."""
    sid: str
    upn: str


@dataclass(frozen=True)
class AzureSession:
    """One user session on one session host, as the workspace would have recorded it."""

    user: AzureUser
    host: str
    """The session host's FQDN (the Computer / SessionHostName column)."""
    start: datetime
    """When the logon happened (aware)."""
    end: datetime | None = None
    """When the user logged off; None: still logged on when the export was made."""
    logon_type: int = 10
    client_ip: str = "10.0.0.10"
    client_name: str = "CLIENT01"
    session_id: int = 2
    logon_id: int = 0x3E4A1
    disconnects: tuple[tuple[datetime, datetime], ...] = ()
    """(disconnected, reconnected) pairs between start and end."""
    gateway: str | None = None
    """The RD Gateway's FQDN when the user came through one: it logs 302 at the start and 303 at the end."""
    wvd: bool = False
    """An Azure Virtual Desktop session: WVDConnections rows are written for it."""
    connected: bool = True
    """False: a WVD connection that never reached Connected (only a Started row, no Windows events)."""
    correlation_id: str = ""
    """WVD CorrelationId; derived from the session when empty."""


@dataclass(frozen=True)
class WinEvent:
    """One Windows event of the model, before any table shape."""

    time: datetime
    computer: str
    channel: str
    provider: str
    event_id: int
    data: tuple[tuple[str, str], ...]
    user_data: str | None = None
    """The UserData element's name (``EventXML``, ``EventInfo``); None: EventData/Data[@Name]."""
    namespace: str = ""


@dataclass
class Table:
    """A query result: its columns (name, Kusto type) and typed rows (datetime, int, str, dict, None)."""

    name: str
    columns: tuple[tuple[str, str], ...]
    rows: list[tuple[object, ...]] = field(default_factory=list)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


def _hex(value: int) -> str:
    return f"0x{value:x}"


def _correlation(session: AzureSession) -> str:
    if session.correlation_id:
        return session.correlation_id
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{session.user.upn}|{session.host}|{_utc(session.start).isoformat()}"))


def windows_events(sessions: Iterable[AzureSession]) -> list[WinEvent]:
    """The Windows events the sessions leave on their hosts (and gateways), in time order."""
    events = [event for s in sessions if s.connected for event in _session_events(s)]
    events.sort(key=lambda e: (_utc(e.time), e.computer, e.channel, e.event_id))
    return events


def _session_events(s: AzureSession) -> list[WinEvent]:
    """One session's events: gateway 302, 4624 + LSM 21 at the start; 4779 + LSM 24 and 4624 (type 7) + 4778 +
    LSM 25 per disconnect; 4647, 4634, LSM 23 and gateway 303 at the end."""
    u = s.user
    short = s.host.split(".", 1)[0].upper()
    target = (("TargetUserSid", u.sid), ("TargetUserName", u.sam), ("TargetDomainName", u.domain),
              ("TargetLogonId", _hex(s.logon_id)))
    second = timedelta(seconds=1)

    def logon(moment: datetime, logon_type: int) -> WinEvent:
        return WinEvent(moment, s.host, SECURITY, AUDITING, 4624, (
            ("SubjectUserSid", "S-1-5-18"), ("SubjectUserName", f"{short}$"), ("SubjectDomainName", u.domain),
            ("SubjectLogonId", "0x3e7"), *target, ("LogonType", str(logon_type)),
            ("LogonProcessName", "User32 "), ("AuthenticationPackageName", "Negotiate"),
            ("WorkstationName", short), ("IpAddress", s.client_ip), ("IpPort", "0"), ("ElevatedToken", "%%1843")))

    def window(moment: datetime, event_id: int) -> WinEvent:
        return WinEvent(moment, s.host, SECURITY, AUDITING, event_id, (
            ("AccountName", u.sam), ("AccountDomain", u.domain), ("LogonID", _hex(s.logon_id)),
            ("SessionName", f"RDP-Tcp#{s.session_id}"), ("ClientName", s.client_name),
            ("ClientAddress", s.client_ip)))

    def lsm(moment: datetime, event_id: int, address: bool = True) -> WinEvent:
        payload = [("User", f"{u.domain}\\{u.sam}"), ("SessionID", str(s.session_id))]
        if address:
            payload.append(("Address", s.client_ip))
        return WinEvent(moment, s.host, LSM, LSM_PROVIDER, event_id, tuple(payload), "EventXML", "Event_NS")

    def gateway(moment: datetime, event_id: int, computer: str) -> WinEvent:
        payload = [("Username", f"{u.domain}\\{u.sam}"), ("IpAddress", s.client_ip), ("AuthType", "NTLM"),
                   ("Resource", s.host.lower())]
        if event_id == 303:
            seconds = int(((s.end or s.start) - s.start).total_seconds())
            payload += [("BytesReceived", "1048576"), ("BytesTransfered", "8388608"),
                        ("SessionDuration", str(seconds))]
        payload += [("ConnectionProtocol", "HTTP"), ("ErrorCode", "0")]
        return WinEvent(moment, computer, GATEWAY, GATEWAY_PROVIDER, event_id, tuple(payload), "EventInfo", "aag")

    events: list[WinEvent] = []
    if s.gateway:
        events.append(gateway(s.start - 2 * second, 302, s.gateway))
    events += [logon(s.start, s.logon_type), lsm(s.start + second, 21)]
    for gone, back in s.disconnects:
        events += [window(gone, 4779), lsm(gone, 24), logon(back, 7), window(back, 4778), lsm(back + second, 25)]
    if s.end is not None:
        events += [WinEvent(s.end, s.host, SECURITY, AUDITING, 4647, target),
                   WinEvent(s.end + second, s.host, SECURITY, AUDITING, 4634,
                            (*target, ("LogonType", str(s.logon_type)))),
                   lsm(s.end + 2 * second, 23, address=False)]
        if s.gateway:
            events.append(gateway(s.end + 3 * second, 303, s.gateway))
    return events


#: The columns of docs/azure.md's SecurityEvent query, with their Kusto types.
SECURITY_EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("TimeGenerated", "datetime"), ("Computer", "string"), ("Channel", "string"), ("EventID", "int"),
    ("EventSourceName", "string"), ("TargetUserName", "string"), ("TargetDomainName", "string"),
    ("TargetUserSid", "string"), ("TargetLogonId", "string"), ("LogonType", "int"), ("IpAddress", "string"),
    ("LogonProcessName", "string"), ("ElevatedToken", "string"), ("SubjectUserSid", "string"),
    ("SubjectUserName", "string"), ("SubjectDomainName", "string"), ("AccountName", "string"),
    ("AccountDomain", "string"), ("LogonID", "string"), ("SessionName", "string"), ("ClientName", "string"),
    ("ClientAddress", "string"), ("EventData", "string"),
)


def _security_xml(event: WinEvent) -> str:
    lines = [f'<EventData xmlns="{EVENT_NS}">']
    lines += [f'  <Data Name="{name}">{escape(value)}</Data>' for name, value in event.data]
    lines.append("</EventData>")
    return "\r\n".join(lines)


def security_event_table(sessions: Iterable[AzureSession], event_data: bool = True) -> Table:
    """SecurityEvent rows (4624, 4634, 4647, 4778, 4779) as the docs' query projects them; ``event_data``
    False leaves EventData empty (a query that dropped it)."""
    return security_table(windows_events(sessions), event_data)


def security_table(events: Iterable[WinEvent], event_data: bool = True) -> Table:
    """The SecurityEvent rows of Windows events (those of the Security channel, in the order given)."""
    table = Table("SecurityEvent", SECURITY_EVENT_COLUMNS)
    for event in events:
        if event.channel != SECURITY:
            continue
        data = dict(event.data)
        row: list[object] = []
        for name, kind in SECURITY_EVENT_COLUMNS:
            if name == "TimeGenerated":
                row.append(_utc(event.time))
            elif name == "Computer":
                row.append(event.computer)
            elif name == "Channel":
                row.append(SECURITY)
            elif name == "EventID":
                row.append(event.event_id)
            elif name == "EventSourceName":
                row.append(event.provider)
            elif name == "EventData":
                row.append(_security_xml(event) if event_data else None)
            elif name in data:
                row.append(int(data[name]) if kind == "int" else data[name])
            else:
                row.append(None)
        table.rows.append(tuple(row))
    return table


def _payload_xml(event: WinEvent) -> str:
    children = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in event.data)
    extra = ' xmlns:auto-ns3="http://schemas.microsoft.com/win/2004/08/events"' if event.user_data == "EventXML" else ""
    return (f'<UserData><{event.user_data}{extra} xmlns="{event.namespace}">{children}'
            f"</{event.user_data}></UserData>")


def _iso7(moment: datetime) -> str:
    moment = _utc(moment)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0+00:00"


def event_table(sessions: Iterable[AzureSession]) -> Table:
    """Event rows for LocalSessionManager 21/23/24/25 and RD Gateway 302/303: EventData the agent's
    ``<DataItem type="System.XmlData" ...>`` around the event's UserData."""
    table = Table("Event", (("TimeGenerated", "datetime"), ("Computer", "string"), ("EventLog", "string"),
                            ("Source", "string"), ("EventID", "int"), ("EventData", "string")))
    for event in windows_events(sessions):
        if event.channel == SECURITY:
            continue
        xml = (f'<DataItem type="System.XmlData" time="{_iso7(event.time)}" sourceHealthServiceId='
               f'"{HEALTH_SERVICE_ID}">{_payload_xml(event)}</DataItem>')
        table.rows.append((_utc(event.time), event.computer, event.channel, event.provider, event.event_id, xml))
    return table


def windows_event_table(sessions: Iterable[AzureSession], unparsed: Sequence[int] = ()) -> Table:
    """WindowsEvent rows for the same events: EventData a dynamic object; the rows at the indexes in
    ``unparsed`` as the agent writes an event it could not parse (EventData null, the XML in RawEventData)."""
    table = Table("WindowsEvent", (("TimeGenerated", "datetime"), ("Computer", "string"), ("Channel", "string"),
                                   ("Provider", "string"), ("EventID", "int"), ("EventRecordId", "string"),
                                   ("EventData", "dynamic"), ("RawEventData", "string")))
    record_ids: Counter[tuple[str, str]] = Counter()
    for index, event in enumerate(e for e in windows_events(sessions) if e.channel != SECURITY):
        record_ids[(event.computer, event.channel)] += 1
        record_id = 1000 + record_ids[(event.computer, event.channel)]
        if index in unparsed:
            raw = (f'<Event xmlns="{EVENT_NS}"><System><Provider Name="{event.provider}"/><EventID>'
                   f"{event.event_id}</EventID><TimeCreated SystemTime=\"{_iso7(event.time)[:-6]}Z\"/>"
                   f"<EventRecordID>{record_id}</EventRecordID><Channel>{event.channel}</Channel><Computer>"
                   f"{event.computer}</Computer></System>{_payload_xml(event)}</Event>")
            table.rows.append((_utc(event.time), event.computer, event.channel, event.provider, event.event_id,
                               str(record_id), None, raw))
        else:
            table.rows.append((_utc(event.time), event.computer, event.channel, event.provider, event.event_id,
                               str(record_id), dict(event.data), None))
    return table


WVD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("TimeGenerated", "datetime"), ("UserName", "string"), ("SessionHostName", "string"), ("State", "string"),
    ("CorrelationId", "string"), ("ClientSideIPAddress", "string"), ("ClientOS", "string"),
    ("ClientType", "string"), ("ClientVersion", "string"), ("ConnectionType", "string"),
)


def wvd_table(sessions: Iterable[AzureSession]) -> Table:
    """WVDConnections rows of the WVD sessions: Started, Connected and (after logoff) Completed, sharing a
    CorrelationId; only Started for a connection that never got through."""
    table = Table("WVDConnections", WVD_COLUMNS)
    rows: list[tuple[object, ...]] = []
    for s in sessions:
        if not s.wvd:
            continue
        states = [("Started", s.start - timedelta(seconds=15))]
        if s.connected:
            states.append(("Connected", s.start - timedelta(seconds=5)))
            if s.end is not None:
                states.append(("Completed", s.end + timedelta(seconds=5)))
        for state, moment in states:
            rows.append((_utc(moment), s.user.upn, s.host, state, _correlation(s), s.client_ip, "Windows 11",
                         "com.microsoft.rdc.windows.msrdc.x64", "1.2.5620", "Desktop"))
    rows.sort(key=lambda row: (str(row[0]), str(row[2])))
    table.rows = rows
    return table


def _hours(start: datetime, end: datetime) -> list[datetime]:
    first = _utc(start).replace(minute=0, second=0, microsecond=0)
    hours = []
    while first < _utc(end):
        hours.append(first)
        first += _HOUR
    return hours


def coverage_table(sessions: Sequence[AzureSession], start: datetime, end: datetime,
                   background: Mapping[str, int] | None = None) -> Table:
    """The docs' hourly coverage query over [start, end): per computer, channel and hour the number of all events
    of the Windows tables (the sessions' events, plus ``background`` records per hour of the channels named, for
    every computer seen in them: other events of that log, such as Security's 4672), and the WVD series (every hour
    of the range for each session host, 0 where no connection row fell)."""
    background = {SECURITY: 1} if background is None else background
    counts: Counter[tuple[str, str, datetime]] = Counter()
    hours = _hours(start, end)
    lo, hi = _utc(start), _utc(end)
    events = [e for e in windows_events(sessions) if lo <= _utc(e.time) < hi]
    for event in events:
        counts[(event.computer, event.channel, _utc(event.time).replace(minute=0, second=0, microsecond=0))] += 1
    for channel, extra in background.items():
        for computer in sorted({e.computer for e in events if e.channel == channel}):
            for hour in hours:
                counts[(computer, channel, hour)] += extra
    for row in wvd_table(sessions).rows:
        moment = row[0]
        assert isinstance(moment, datetime)
        if lo <= moment < hi:
            counts[(str(row[2]), "WVDConnections", moment.replace(minute=0, second=0, microsecond=0))] += 1
    for host in sorted({s.host for s in sessions if s.wvd}):
        for hour in hours:
            counts[(host, "WVDConnections", hour)] += 0
    table = Table("coverage", (("Computer", "string"), ("Channel", "string"), ("TimeGenerated", "datetime"),
                               ("Records", "long")))
    table.rows = [(computer, channel, hour, count) for (computer, channel, hour), count in sorted(counts.items())]
    return table


def expected_users(sessions: Iterable[AzureSession], table: str) -> set[str]:
    """Who each table shows as an RDP user (``domain\\sam`` in lower case, or the UPN for WVDConnections), from
    the model: SecurityEvent a logon of type 10/12 (or 7 from an address); Event/WindowsEvent an LSM 21 from an
    address or a gateway 302; WVDConnections a connection that reached Connected."""
    users: set[str] = set()
    for s in sessions:
        if not s.connected:
            continue
        account = f"{s.user.domain}\\{s.user.sam}".lower()
        if table == "WVDConnections":
            if s.wvd:
                users.add(s.user.upn.lower())
        elif table == "SecurityEvent":
            if s.logon_type in (10, 12) or s.disconnects:
                users.add(account)
        elif table in ("Event", "WindowsEvent"):
            users.add(account)
        else:
            raise ValueError(f"unknown table {table!r}")
    return users


# --- File shapes ------------------------------------------------------------------------------------------------


def _portal_time(moment: datetime, locale: str) -> str:
    ms = moment.microsecond // 1000
    if locale == "en-US":
        hour = moment.hour % 12 or 12
        half = "AM" if moment.hour < 12 else "PM"
        return f"{moment.month}/{moment.day}/{moment.year}, {hour}:{moment:%M:%S}.{ms:03d} {half}"
    return f"{moment:%d/%m/%Y}, {moment:%H:%M:%S}.{ms:03d}"


def _portal_quote(text: str) -> str:
    """The portal quotes a value holding anything but letters, digits and underscores (``"10.0.0.5"``,
    ``"DNS Server"``, ``"TimeGenerated [UTC]"``), doubling quotes inside."""
    if text and all(ch.isalnum() or ch == "_" for ch in text):
        return text
    return '"' + text.replace('"', '""') + '"' if text else ""


def portal_csv(table: Table, locale: str = "en-US", zone: str | None = None) -> bytes:
    """The portal's "Export > CSV (all columns)": UTF-8 with a BOM, CRLF; datetime headers suffixed ``[UTC]``, or
    ``[Local Time]`` with the times shown in ``zone``; dates in the display language ``locale`` (en-US, en-GB)."""
    if locale not in _LOCALES:
        raise ValueError(f"locale must be one of {_LOCALES}")
    tz = ZoneInfo(zone) if zone else timezone.utc
    suffix = " [Local Time]" if zone else " [UTC]"
    header = [name + (suffix if kind == "datetime" else "") for name, kind in table.columns]
    lines = [",".join(_portal_quote(name) for name in header)]
    for row in table.rows:
        cells = []
        for value in row:
            if isinstance(value, datetime):
                cells.append(_portal_quote(_portal_time(value.astimezone(tz), locale)))
            elif value is None:
                cells.append("")
            elif isinstance(value, dict):
                cells.append(_portal_quote(json.dumps(value, ensure_ascii=False, separators=(",", ":"))))
            else:
                cells.append(_portal_quote(str(value)))
        lines.append(",".join(cells))
    return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8")


def _api_time(moment: datetime) -> str:
    moment = _utc(moment)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def _api_value(value: object) -> object:
    if isinstance(value, datetime):
        return _api_time(value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


def api_json(table: Table) -> str:
    """The query API's response body: typed values, datetimes ISO 8601 with Z, dynamic values as JSON text."""
    body = {"tables": [{"name": "PrimaryResult",
                        "columns": [{"name": name, "type": kind} for name, kind in table.columns],
                        "rows": [[_api_value(value) for value in row] for row in table.rows]}]}
    return json.dumps(body, ensure_ascii=False)


def az_json(table: Table) -> str:
    """``az monitor log-analytics query -o json``: each row an object with TableName and ``str()`` of every API
    value (``"4624"``, ``"None"``), printed by knack with sorted keys and an indent of 2."""
    rows = []
    for row in table.rows:
        item: dict[str, str] = {"TableName": "PrimaryResult"}
        for (name, _kind), value in zip(table.columns, row, strict=True):
            item[name] = str(_api_value(value))
        rows.append(item)
    return json.dumps(rows, ensure_ascii=False, indent=2, sort_keys=True, separators=(",", ": ")) + "\n"
