"""The other evidence sources of a sample, written from the same workload model as its .evtx, with ground truth.

:func:`write_sources` writes, for the users, hosts and sessions of one :class:`~evtrack.synth.workload.Workload`:

* ``broker/``: a Connection Broker's ``Get-RDUserSession`` polls every ``poll_minutes`` over the whole range, one
  file per poll named as ``evtrack poll`` names it (``rdusersession_<broker>_<yyyyMMddTHHmmssZ>.csv``) with its
  ``PolledAt`` and ``ConnectionBroker`` columns. Polls before the range's midpoint are Windows PowerShell 5.1's
  ``Export-Csv`` (``#TYPE`` line, ASCII) in en-US; from the midpoint on, PowerShell 7's (no ``#TYPE``, UTF-8)
  with ``-UseCulture`` in de-DE (``;``, ``14.01.2024 09:05:33``). A poll that lists no session is a header-only
  file, as the collection script writes it.
* ``quser/``: ``query user /server:HOST`` per host at the same instants (``quser_<HOST>_<stamp>.txt``): in
  English (en-US dates) before the midpoint, in German (de-DE dates) from it. An empty English host says ``No
  User exists for *``; the German text of that message is unknown to ``evtrack poll``, which reports it as a
  failed poll, so an empty German poll leaves no file (a gap in that host's poll coverage).
* ``azure/``: the Security log's 4624/4634 (logon types 2, 7, 10, 11, 12), 4647, 4778 and 4779 as Log Analytics'
  SecurityEvent: the rows before the midpoint as the portal's CSV export (en-US, UTC), the rest as ``az monitor
  log-analytics query -o json``, plus the hourly coverage query (az JSON). The agent collects events as they are
  written, so the workspace holds the whole range: the .evtx's roll-over and clear do not apply.
* ``wvd/``: WVDConnections as the portal's CSV (en-US, local time of the sample's zone): one connection per
  logon or reconnect of a session (Started, Connected, then Completed at its disconnect or logoff), plus per
  month one attempt that never reached Connected (Started only; by the user with the fewest connections that
  month), and the WVD series of the coverage query (query API JSON).
* ``gateway/``: every connection came through one RD Gateway: its TerminalServices-Gateway/Operational log as
  .evtx (200, 300, 302 at the connection, 303 when it ends), plus per month an attempt authorised (200, 300)
  that never connected (no 302).

A session is *alive* from its logon (the 4624 type 10) until its logoff (or idle logoff), *active* inside one of
its connected intervals and *disconnected* between them; a poll lists the sessions alive at its instant, with
CreateTime (LOGON TIME) = the logon. Console sessions of the model are not listed (see docs/synth.md).

Ground truth (:func:`SourceTruth.months`) is computed here from the model, never by reading the files back.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from evtrack.synth import azure as az
from evtrack.synth import shapes as sh
from evtrack.synth.binxml import VT, Value
from evtrack.synth.evtx_writer import EventSpec, EventType, EvtxWriter
from evtrack.synth.snapshots import (
    NO_USER,
    SnapshotSession,
    broker_csv_name,
    broker_csv_text,
    encode_snapshot,
    query_user_name,
    query_user_text,
)
from evtrack.synth.workload import (
    SEC,
    TICKS_PER_SECOND,
    ModelEvent,
    SessionRecord,
    Workload,
    ft_from_datetime,
    ft_to_datetime,
    month_key,
)

LOGS, BROKER, QUSER, AZURE, WVD, GATEWAY, ALL = "logs", "broker", "quser", "azure", "wvd", "gateway", "all"
#: Every source ``evtrack sample --sources`` can write, in the order they are written (``all`` names them all).
SOURCES = (LOGS, BROKER, QUSER, AZURE, WVD, GATEWAY)
DEFAULT_POLL_MINUTES = 15
#: The Connection Broker's host name (the first label; the domain's FQDN follows).
BROKER_HOST = "RDCB01"
#: Security events the azure source exports (docs/azure.md's query without 1102), and the logon types of the
#: 4624/4634 it keeps (the docs' filter for a smaller export).
AZURE_EVENT_IDS = frozenset({4624, 4634, 4647, 4778, 4779})
AZURE_LOGON_TYPES = frozenset({2, 7, 10, 11, 12})
_HOUR_FT = 3600 * TICKS_PER_SECOND

RULES = {
    LOGS: "the months key: RDP evidence written to an .evtx (see evidence_rule)",
    BROKER: "a poll (every poll_minutes, the whole range) lists the sessions alive at its instant (from the logon, "
            "the 4624 type 10, until the logoff); a user is in a month when a poll in that month listed one of "
            "their sessions, and in the month of the CreateTime (= the logon) of every session a poll listed",
    QUSER: "as broker, per host (LOGON TIME = the logon)",
    AZURE: "the evidence rule of the logs on the SecurityEvent rows exported (4624/4634 of logon types 2, 7, 10, "
           "11, 12, 4647, 4778, 4779 over the whole range), in the month of each row",
    WVD: "each logon or reconnect of a session is a connection; a user is in the month of the Connected row of "
         "each of their connections (attempts that never reached Connected are not use)",
    GATEWAY: "each logon or reconnect of a session came through the RD Gateway: a user is in the month of each "
             "302 (2 s before the connection) and 303 (3 s after it ends); 200/300 authorisations without a 302 "
             "are not use",
    ALL: "the union of the sources written",
}


def parse_sources(value: str | Sequence[str]) -> tuple[str, ...]:
    """The sources named in ``value`` (a comma list or names; ``all`` for every one), in :data:`SOURCES` order."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    names = {part.strip().lower() for part in parts if part.strip()}
    unknown = sorted(names - {*SOURCES, ALL})
    if unknown:
        raise ValueError(f"unknown source {unknown[0]!r}: choose from {', '.join((*SOURCES, ALL))}")
    if not names:
        raise ValueError(f"no source named: choose from {', '.join((*SOURCES, ALL))}")
    return SOURCES if ALL in names else tuple(s for s in SOURCES if s in names)


@dataclass
class SourceOutput:
    """What :func:`write_sources` wrote: files per source (relative to the folder written into) and, per source,
    the model users (indexes) of each month label."""

    files: dict[str, list[Path]] = field(default_factory=dict)
    months: dict[str, dict[str, set[int]]] = field(default_factory=dict)


def logon_ft(session: SessionRecord) -> int:
    """The session's logon (its first connected instant: the 4624 type 10)."""
    return session.connected[0][0] if session.connected else session.start_ft


def _state(session: SessionRecord, ft: int) -> tuple[str, int | None]:
    """``active`` or ``disconnected`` at ``ft``, and the last disconnect before it (FILETIME) or None."""
    last: int | None = None
    for since, until in session.connected:
        if since <= ft and (until is None or ft < until):
            return "active", last
        if until is not None and until <= ft:
            last = until
    return "disconnected", last


def poll_times(wl: Workload, minutes: int) -> list[int]:
    """Every ``minutes`` from the range's first local midnight to its end (FILETIME, whole seconds)."""
    if minutes < 1:
        raise ValueError("poll_minutes must be at least 1")
    step = minutes * 60 * TICKS_PER_SECOND
    return list(range(wl.start_ft, wl.end_ft + 1, step))


def alive_at(wl: Workload, times: Sequence[int]) -> Iterator[tuple[int, list[SessionRecord]]]:
    """Per instant (ascending), the sessions alive then (``logon <= t < logoff``), ordered by host and id."""
    order = sorted(wl.sessions, key=logon_ft)
    alive: list[SessionRecord] = []
    index = 0
    for ft in times:
        while index < len(order) and logon_ft(order[index]) <= ft:
            alive.append(order[index])
            index += 1
        alive = [s for s in alive if s.end_ft > ft]
        yield ft, sorted(alive, key=lambda s: (s.host, s.session_id, logon_ft(s)))


def midpoint(wl: Workload) -> int:
    """Where the sources switch culture, shape and format: half-way through the range."""
    return wl.start_ft + (wl.end_ft - wl.start_ft) // 2


def _snapshot(wl: Workload, session: SessionRecord, ft: int) -> SnapshotSession:
    user, host = wl.users[session.user], wl.hosts[session.host]
    state, disconnected = _state(session, ft)
    idle = None
    if state == "disconnected" and disconnected is not None:
        idle = timedelta(microseconds=(ft - disconnected) // 10)
    return SnapshotSession(
        user=user.sam, domain=wl.domain.netbios, host=host.fqdn, session_id=session.session_id, state=state,
        create_time=ft_to_datetime(logon_ft(session)),
        disconnect_time=ft_to_datetime(disconnected) if disconnected is not None else None, idle=idle,
    )


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)


def write_sources(wl: Workload, folder: Path, sources: Iterable[str], *,
                  poll_minutes: int = DEFAULT_POLL_MINUTES) -> SourceOutput:
    """Write the chosen sources (not ``logs``: :mod:`evtrack.synth.sample` writes those) into ``folder/<source>/``
    and return their files and ground truth."""
    chosen = set(sources)
    out = SourceOutput()
    tzinfo = ZoneInfo(wl.tz)
    if chosen & {BROKER, QUSER}:
        _write_polls(wl, folder, chosen, poll_minutes, tzinfo, out)
    if AZURE in chosen:
        _write_azure(wl, folder / AZURE, tzinfo, out)
    if WVD in chosen:
        _write_wvd(wl, folder / WVD, tzinfo, out)
    if GATEWAY in chosen:
        _write_gateway(wl, folder / GATEWAY, tzinfo, out)
    return out


def _write_polls(wl: Workload, folder: Path, chosen: set[str], minutes: int, tzinfo: ZoneInfo,
                 out: SourceOutput) -> None:
    broker = f"{BROKER_HOST}.{wl.domain.fqdn}"
    mid = midpoint(wl)
    listed: dict[str, set[int]] = {}
    for source in (BROKER, QUSER):
        if source in chosen:
            (folder / source).mkdir(parents=True, exist_ok=True)
            out.files[source] = []
    for ft, sessions in alive_at(wl, poll_times(wl, minutes)):
        polled_at = ft_to_datetime(ft)
        first_half = ft < mid
        snapshots = [_snapshot(wl, s, ft) for s in sessions]
        for session in sessions:
            listed.setdefault(month_key(ft, tzinfo), set()).add(session.user)
            listed.setdefault(month_key(logon_ft(session), tzinfo), set()).add(session.user)
        if BROKER in chosen:
            name = broker_csv_name(broker, polled_at)
            if first_half:
                text = broker_csv_text(polled_at, broker, snapshots, shape="ps51" if snapshots else "ps7",
                                       culture="en-US", zone=tzinfo, broker_column=True)
                data = encode_snapshot(text, "ascii", bom=False)
            else:
                text = broker_csv_text(polled_at, broker, snapshots, shape="ps7", culture="de-DE", use_culture=True,
                                       zone=tzinfo, broker_column=True)
                data = encode_snapshot(text, "utf-8", bom=False)
            _write(folder / BROKER / name, data)
            out.files[BROKER].append(Path(BROKER) / name)
        if QUSER in chosen:
            for host in wl.hosts:
                mine = [s for s in snapshots if s.host == host.fqdn]
                if not mine and not first_half:
                    continue  # German "no user" text: evtrack poll reports a failed poll, writes no file
                name = query_user_name(host.name, polled_at)
                text = (query_user_text(host.name, mine, language="en" if first_half else "de", zone=tzinfo)
                        if mine else NO_USER + "\r\n")
                _write(folder / QUSER / name, text.encode("utf-8"))
                out.files[QUSER].append(Path(QUSER) / name)
    for source in (BROKER, QUSER):
        if source in chosen:
            out.months[source] = listed


# -- Azure Monitor ------------------------------------------------------------------------------------------------


def _render(kind: VT, value: object) -> str:
    """A payload value as the SecurityEvent table shows it (hex numbers as ``0x...``, as Windows renders them)."""
    if value is None:
        return ""
    if kind in (VT.HEXINT64, VT.HEXINT32, VT.SIZET) and isinstance(value, int):
        return f"0x{value:x}"
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return str(value)


def exported_security(wl: Workload) -> list[tuple[ModelEvent, str]]:
    """The Security events of the model the SecurityEvent export holds, with their computer, in time order."""
    rows: list[tuple[ModelEvent, str]] = []
    for plan in wl.plans:
        for event in plan.events.get(SEC, []):
            if event.etype.event_id not in AZURE_EVENT_IDS:
                continue
            if event.etype.event_id in (4624, 4634):
                logon_type = dict(zip((n for n, _ in event.etype.fields), event.values, strict=False)).get("LogonType")
                if logon_type not in AZURE_LOGON_TYPES:
                    continue
            rows.append((event, plan.host.fqdn))
    rows.sort(key=lambda pair: (pair[0].ft, pair[1], pair[0].seq))
    return rows


def _win_event(event: ModelEvent, computer: str) -> az.WinEvent:
    data = tuple((name, _render(kind, value))
                 for (name, kind), value in zip(event.etype.fields, event.values, strict=False))
    return az.WinEvent(ft_to_datetime(event.ft), computer, az.SECURITY, az.AUDITING, event.etype.event_id, data)


def _hours(wl: Workload) -> list[int]:
    """The UTC hours the range touches (FILETIME counts whole hours from 1601, so ``% _HOUR_FT`` finds them)."""
    return list(range(wl.start_ft - wl.start_ft % _HOUR_FT, wl.end_ft + 1, _HOUR_FT))


def _hour_of(ft: int) -> int:
    return ft - ft % _HOUR_FT


def _coverage(rows: Iterable[tuple[str, str, int]], hosts: Sequence[str], channel: str, hours: Sequence[int],
              background: int) -> az.Table:
    """The coverage query's rows for ``channel``: every hour of the range per host, Records = the rows that
    fell in it (``rows``: computer, channel, FILETIME) plus ``background``."""
    counts: Counter[tuple[str, int]] = Counter()
    for computer, row_channel, ft in rows:
        if row_channel == channel:
            counts[(computer, _hour_of(ft))] += 1
    table = az.Table("coverage", (("Computer", "string"), ("Channel", "string"), ("TimeGenerated", "datetime"),
                                  ("Records", "long")))
    table.rows = [(host, channel, ft_to_datetime(hour), counts[(host, hour)] + background)
                  for host in hosts for hour in hours]
    return table


def _write_azure(wl: Workload, folder: Path, tzinfo: ZoneInfo, out: SourceOutput) -> None:
    """SecurityEvent as portal CSV (before the midpoint) and az JSON (from it), and the hourly coverage.

    Coverage Records: the exported rows of each hour plus 1 for the log's other events, which the model does not
    itemise (a running server's Security log is never silent for an hour)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = exported_security(wl)
    mid = midpoint(wl)
    before = az.security_table(_win_event(e, c) for e, c in rows if e.ft < mid)
    after = az.security_table(_win_event(e, c) for e, c in rows if e.ft >= mid)
    hosts = [h.fqdn for h in wl.hosts]
    coverage = _coverage(((c, az.SECURITY, e.ft) for e, c in rows), hosts, az.SECURITY, _hours(wl), 1)
    files = [("SecurityEvent-1.csv", az.portal_csv(before, "en-US")),
             ("SecurityEvent-2.json", az.az_json(after).encode("utf-8")),
             ("coverage.json", az.az_json(coverage).encode("utf-8"))]
    for name, data in files:
        _write(folder / name, data)
    out.files[AZURE] = [Path(AZURE) / name for name, _ in files]
    months: dict[str, set[int]] = {}
    for event, _computer in rows:
        if event.evidence >= 0:
            months.setdefault(month_key(event.ft, tzinfo), set()).add(event.evidence)
    out.months[AZURE] = months


# -- connections: Azure Virtual Desktop and the RD Gateway -------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    """One client connection of the model: a session's logon or reconnect until its next disconnect or logoff."""

    user: int
    host: int
    since: int
    until: int


def connections(wl: Workload) -> list[Connection]:
    """Every connected interval of every session, in time order."""
    made = [Connection(s.user, s.host, since, until if until is not None else wl.end_ft)
            for s in wl.sessions for since, until in s.connected]
    return sorted(made, key=lambda c: (c.since, c.host, c.user))


def failed_attempts(wl: Workload, made: Sequence[Connection]) -> list[tuple[int, int, int]]:
    """One attempt per month that never connected: (user, host, FILETIME) at noon local time on the month's first
    weekday in the range, by the user with the fewest connections that month (a user absent that month, where
    there is one: counting the attempt would then add a user)."""
    tzinfo = ZoneInfo(wl.tz)
    per_month = Counter((month_key(c.since, tzinfo), c.user) for c in made)
    attempts = []
    day = wl.start
    while day <= wl.end:
        if day.weekday() < 5:
            label = f"{day.year:04d}-{day.month:02d}"
            user = min(wl.users, key=lambda u: (per_month[(label, u.index)], u.index))
            noon = ft_from_datetime(datetime(day.year, day.month, day.day, 12, tzinfo=tzinfo))
            attempts.append((user.index, user.home_host, noon))
            day = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
        else:
            day += timedelta(days=1)
    return attempts


_WVD_CLIENT = ("Windows 11", "com.microsoft.rdc.windows.msrdc.x64", "1.2.5620", "Desktop")


def _write_wvd(wl: Workload, folder: Path, tzinfo: ZoneInfo, out: SourceOutput) -> None:
    """WVDConnections: Started 15 s, Connected 5 s before each connection, Completed 5 s after it; an attempt's
    Started only."""
    folder.mkdir(parents=True, exist_ok=True)
    made = connections(wl)
    plan: list[tuple[int, int, int, int | None]] = [
        (c.user, c.host, c.since - 5 * TICKS_PER_SECOND, c.until + 5 * TICKS_PER_SECOND) for c in made]
    plan += [(user, host, ft, None) for user, host, ft in failed_attempts(wl, made)]
    rows: list[tuple[object, ...]] = []
    months: dict[str, set[int]] = {}
    for user_index, host_index, connected, completed in plan:
        user, host = wl.users[user_index], wl.hosts[host_index]
        correlation = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{user.upn}|{host.fqdn}|{connected}"))
        states = [("Started", connected - 10 * TICKS_PER_SECOND)]
        if completed is not None:
            states += [("Connected", connected), ("Completed", completed)]
            months.setdefault(month_key(connected, tzinfo), set()).add(user_index)
        for state, ft in states:
            rows.append((ft_to_datetime(ft), user.upn, host.fqdn, state, correlation, user.client_ip, *_WVD_CLIENT))
    rows.sort(key=lambda row: (str(row[0]), str(row[2]), str(row[3])))
    table = az.Table("WVDConnections", az.WVD_COLUMNS, rows)
    hosts = [h.fqdn for h in wl.hosts]
    stamps = ((str(row[2]), "WVDConnections", ft_from_datetime(row[0])) for row in rows
              if isinstance(row[0], datetime))
    coverage = _coverage(stamps, hosts, "WVDConnections", _hours(wl), 0)
    files = [("WVDConnections.csv", az.portal_csv(table, "en-US", wl.tz)),
             ("coverage.json", az.api_json(coverage).encode("utf-8"))]
    for name, data in files:
        _write(folder / name, data)
    out.files[WVD] = [Path(WVD) / name for name, _ in files]
    out.months[WVD] = months


#: The RD Gateway's host name (the first label; the domain's FQDN follows).
GATEWAY_HOST = "RDGW01"


def _gateway_spec(etype: EventType, ft: int, record_id: int, gateway: str, values: dict[str, Value],
                  activity: int) -> EventSpec:
    return EventSpec(etype, ft, record_id, gateway, tuple(values[name] for name, _ in etype.fields),
                     process_id=1444, thread_id=2556, activity_id=f"{{7CF86876-882F-0625-F153-{activity:012X}}}",
                     user_sid=sh.GATEWAY_USER_SID)


def _write_gateway(wl: Workload, folder: Path, tzinfo: ZoneInfo, out: SourceOutput) -> None:
    """The gateway's log: per connection 200 (RD CAP met) 4 s and 300 (RD RAP met) 3 s before it, 302 2 s before
    it, 303 3 s after it (the tunnel closes when the client disconnects); an attempt's 200 and 300 only. Username
    ``CONTOSO\\sam``, every fifth connection ``contoso.local\\sam``; Resource the session host's FQDN."""
    folder.mkdir(parents=True, exist_ok=True)
    gateway = f"{GATEWAY_HOST}.{wl.domain.fqdn}"
    second = TICKS_PER_SECOND
    made = connections(wl)
    records: list[tuple[int, int, EventType, dict[str, Value]]] = []
    months: dict[str, set[int]] = {}
    plan: list[tuple[int, int, int, int | None]] = [(c.user, c.host, c.since, c.until) for c in made]
    plan += [(user, host, ft, None) for user, host, ft in failed_attempts(wl, made)]
    for number, (user_index, host_index, since, until) in enumerate(plan, start=1):
        user = wl.users[user_index]
        domain = wl.domain.fqdn if number % 5 == 0 else wl.domain.netbios
        common: dict[str, Value] = {"Username": f"{domain}\\{user.sam}", "IpAddress": user.client_ip,
                                    "AuthType": "NTLM", "Resource": wl.hosts[host_index].fqdn,
                                    "ConnectionProtocol": "HTTP", "ErrorCode": 0}
        records.append((since - 4 * second, number, sh.GW200, {**common, "AuthType": "NTLM"}))
        records.append((since - 3 * second, number, sh.GW300, {**common, "AuthType": "", "ConnectionProtocol": ""}))
        if until is None:
            continue
        records.append((since - 2 * second, number, sh.GW302, common))
        duration = (until - since) // second
        records.append((until + 3 * second, number, sh.GW303, {**common, "ErrorCode": 1226, "SessionDuration": duration,
                                                               "BytesReceived": 40_000 * duration + 4_223_901,
                                                               "BytesTransfered": 9_000 * duration + 3_017_755}))
        for ft in (since - 2 * second, until + 3 * second):
            months.setdefault(month_key(ft, tzinfo), set()).add(user_index)
    records.sort(key=lambda r: (r[0], r[1]))
    name = f"{GATEWAY_HOST}-Gateway.evtx"
    with EvtxWriter(folder / name) as writer:
        for record_id, (ft, number, etype, values) in enumerate(records, start=7001):
            writer.add(_gateway_spec(etype, ft, record_id, gateway, values, number))
    out.files[GATEWAY] = [Path(GATEWAY) / name]
    out.months[GATEWAY] = months
