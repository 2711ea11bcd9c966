"""From the event table and coverage to the :class:`~evtrack.report.Report`: who used RDP, when, how sure we are.

Steps: link identities over every row that names an account; keep the rows that are RDP evidence; merge one
logon seen twice (4624 type 10 + LSM 21, UAC split-token pairs) into one session start; cut the period into
windows in the report's time zone; mark each window complete / partial / unknown from what the logs cover; and
compute the licence-server view (distinct users with evidence in the 60 days before a date).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from evtrack.concurrency import connected_intervals
from evtrack.concurrency import peak as peak_overlap
from evtrack.coverage import ChannelSpan, merge_intervals
from evtrack.events import LSM, SECURITY, is_remote_ip
from evtrack.identity import Exclusions, Identity, IdentityResolver, Observation, host_key
from evtrack.report import (
    CAL_VALIDITY_DAYS,
    SCHEMA_VERSION,
    STATUS_COMPLETE,
    STATUS_PARTIAL,
    STATUS_UNKNOWN,
    ChannelCoverage,
    CurvePoint,
    DeviceUsage,
    ExcludedUser,
    HostPeak,
    InputFile,
    Report,
    UserUsage,
    WindowUsage,
)
from evtrack.sources.base import datetime_to_us, plausible_time, us_to_datetime
from evtrack.windows import Window, WindowSpec, local_date, local_midnight, windows_between, zone

if TYPE_CHECKING:
    import pyarrow as pa

    from evtrack.directory import Directory, DirectoryUser

#: A 4624 type 10 and the LSM 21 of the same logon, or the two 4624 of a UAC split token, land within this.
SESSION_MERGE = timedelta(seconds=10)
#: Channels whose records prove a host was logging RDP evidence at a time.
EVIDENCE_CHANNELS = frozenset({SECURITY, LSM})
ALL_DOMAINS = "All trusted domains"


@dataclass(frozen=True)
class ReportSettings:
    """What the user asked for (flags and config file, already merged)."""

    installed: int | None = None
    tz: str = "UTC"
    window: str = "month"
    start: date | None = None
    """First local day of the period (``--from``); default: the first day the logs cover."""
    end: date | None = None
    """Last local day of the period, inclusive (``--to``); default: the last day the logs cover."""
    as_of: datetime | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)
    exclusions: Exclusions = field(default_factory=Exclusions)
    domains: tuple[str, ...] = ()
    """Scope: only users of these (NetBIOS or FQDN) domains; with ``ous`` empty too: all trusted domains."""
    ous: tuple[str, ...] = ()
    """Scope: only users in these OUs (child OUs included); needs ``directory``."""
    directory: Directory | None = None
    created_at: datetime | None = None
    installed_source: str | None = None


@dataclass(frozen=True)
class ReportSource:
    """What a report is computed from: the event table, coverage and the inputs' story (files or the store)."""

    table: pa.Table
    coverage: Sequence[ChannelSpan]
    inputs: Sequence[InputFile]
    engine: str
    records_read: int
    records_skipped: int
    observations: Sequence[tuple[str, str | None, str | None, str]] = ()
    """Accounts (user, domain, SID, host) seen in rows the table leaves out: they still link identities."""


@dataclass
class _Person:
    identity: Identity
    times: list[int] = field(default_factory=list)
    starts: list[tuple[str, int]] = field(default_factory=list)
    reconnects: list[tuple[str, int]] = field(default_factory=list)
    hosts: set[str] = field(default_factory=set)
    reasons: set[str] = field(default_factory=set)


def _observations(table: pa.Table) -> list[Observation]:
    import pyarrow.compute as pc

    named = table.filter(pc.is_valid(table["user"])).select(["user", "domain", "sid", "host"])
    unique = named.group_by(["user", "domain", "sid", "host"], use_threads=False).aggregate([])
    return [
        Observation(r["user"], r["domain"], r["sid"], host_key(r["host"] or ""))
        for r in unique.sort_by([(c, "ascending") for c in ("user", "domain", "sid", "host")]).to_pylist()
    ]


def _directory_observations(directory: Directory, aliases: Mapping[str, str]) -> list[Observation]:
    """Directory accounts as sightings, so a name seen without a SID in the logs joins its SID's person."""
    result = []
    for user in directory.users:
        if not user.sid:
            continue
        netbios = directory.netbios or (aliases.get(user.dns_domain or "") if user.dns_domain else None)
        if user.sam and netbios:
            result.append(Observation(user.sam, netbios, user.sid, ""))
        if user.upn:
            result.append(Observation(user.upn, None, user.sid, ""))
    return result


def _evidence_rows(table: pa.Table) -> list[dict[str, Any]]:
    import pyarrow.compute as pc

    evidence = table.filter(pc.equal(table["rdp"], True)).select(
        ["time", "host", "user", "domain", "sid", "kind", "reason", "event_id", "channel", "record_id", "address",
         "client_name"]
    )
    evidence = evidence.sort_by([("time", "ascending"), ("host", "ascending"), ("channel", "ascending"),
                                 ("record_id", "ascending")])
    rows = evidence.to_pylist()
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for row in rows:  # the same record from overlapping exports counts once
        key = (row["host"], row["channel"], row["record_id"], row["time"])
        if key not in seen:
            seen.add(key)
            unique.append(row)
    return unique


def _session_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows that open or close a session (for concurrency), each record once."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pc.is_in(table["event_id"], pa.array([21, 23, 24, 25, 4624, 4778, 4779, 4634, 4647]))
    remote_type = pc.is_in(table["logon_type"], pa.array([10, 12]))
    logon_like = pc.is_in(table["event_id"], pa.array([4624, 4634]))
    keep = pc.and_(ids, pc.or_(pc.invert(logon_like), pc.fill_null(remote_type, False)))
    rows = table.filter(keep).select(
        ["time", "host", "channel", "event_id", "record_id", "logon_type", "user", "domain", "address", "session_id",
         "logon_id", "rdp"]
    ).to_pylist()
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for row in rows:
        key = (row["host"], row["channel"], row["record_id"], row["time"])
        if key not in seen:
            seen.add(key)
            row["time"] = datetime_to_us(row["time"]) if row["time"] is not None else None
            unique.append(row)
    return unique


def _device_key(row: Mapping[str, Any]) -> tuple[str, str | None, str | None] | None:
    """A client device: its IP address (not loopback or unspecified: tunnels hide the client), with the client
    name 4778/4779 give; a name alone where there is no usable address."""
    name = (row["client_name"] or "").strip()
    name = name if name and name.lower() not in ("unknown", "-") else ""
    address = (row["address"] or "").strip()
    if is_remote_ip(address):
        return "ip:" + address.lower(), name or None, address
    if name:
        return "name:" + name.lower(), name, None
    return None


def _cluster(times: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Merge starts on one host closer than SESSION_MERGE into the first of them."""
    merged: list[tuple[str, int]] = []
    last: dict[str, int] = {}
    gap = int(SESSION_MERGE.total_seconds() * 1_000_000)
    for host, moment in sorted(times, key=lambda item: (item[1], item[0])):
        previous = last.get(host)
        last[host] = moment
        if previous is not None and moment - previous <= gap:
            continue
        merged.append((host, moment))
    return merged


def _host_intervals(coverage: Sequence[ChannelSpan]) -> dict[str, tuple[tuple[int, int], ...]]:
    per_host: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for span in coverage:
        per_host[host_key(span.host)]  # a host seen in any log is known: without evidence logs it is uncovered
        if span.channel.lower() in EVIDENCE_CHANNELS:
            per_host[host_key(span.host)].extend(span.intervals or ((span.first_us, span.last_us),))
    return {host: merge_intervals(intervals) for host, intervals in sorted(per_host.items())}


def _covered(intervals: tuple[tuple[int, int], ...], start: int, end: int) -> int:
    """Microseconds of ``[start, end)`` inside the (closed) intervals; touching the end counts as covering it."""
    total = 0
    for first, last in intervals:
        lo, hi = max(first, start), min(last + 1, end)
        if hi > lo:
            total += hi - lo
    return total


def _verdict(users: int | None, installed: int | None, status: str = STATUS_COMPLETE) -> str:
    """A partial window's count is a lower bound: over stays over, but "within" is only "within so far"."""
    if users is None:
        return "unknown"
    if installed is None:
        return "no installed count"
    if users > installed:
        return f"over by {users - installed}"
    return "within" if status == STATUS_COMPLETE else "within (lower bound)"


def _directory_user(identity: Identity, directory: Directory | None) -> DirectoryUser | None:
    if directory is None:
        return None
    sam = identity.display.rsplit("\\", 1)[-1]
    return directory.lookup(sam, identity.domain, identity.sid)


def _in_scope(identity: Identity, resolver: IdentityResolver, settings: ReportSettings) -> bool:
    if not settings.domains and not settings.ous:
        return True
    wanted = {resolver.canonical_domain(d) for d in settings.domains}
    wanted |= {d.strip().split(".", 1)[0].upper() for d in settings.domains}  # contoso.local -> CONTOSO
    if identity.domain is not None and identity.domain in wanted:
        return True
    if settings.ous:
        from evtrack.directory import in_ou

        found = _directory_user(identity, settings.directory)
        return found is not None and any(in_ou(found, ou) for ou in settings.ous)
    return False


def scope_label(domains: tuple[str, ...], ous: tuple[str, ...] = ()) -> str:
    """The scope line, worded like the Licensing Manager's: "All trusted domains", "Domain: X", "OU=Sales"."""
    if not domains and not ous:
        return ALL_DOMAINS
    parts = [f"Domain: {d.upper()}" for d in domains] + [ou.split(",", 1)[0].strip() for ou in ous]
    return "; ".join(parts)


def build_report(source: ReportSource, settings: ReportSettings) -> Report:
    tz = zone(settings.tz)
    spec = WindowSpec.parse(settings.window)
    table = source.table
    observations = _observations(table)
    observations += [Observation(user, domain, sid, host_key(host or "")) for user, domain, sid, host in
                     source.observations]
    aliases = dict(settings.aliases)
    if settings.directory is not None:
        aliases = {**settings.directory.aliases(), **aliases}
        observations += _directory_observations(settings.directory, aliases)
    resolver = IdentityResolver(observations, aliases=aliases, exclusions=settings.exclusions)
    people: dict[str, _Person] = {}
    excluded: dict[str, list[int]] = defaultdict(list)
    excluded_identity: dict[str, Identity] = {}
    out_of_scope: set[str] = set()
    created = settings.created_at or datetime.now(timezone.utc)
    now_us = max(datetime_to_us(created), datetime_to_us(datetime.now(timezone.utc)))
    suspicious = 0
    devices: dict[str, list[tuple[int, str | None, str | None, str]]] = {}
    for row in _evidence_rows(table):
        if row["time"] is None or not plausible_time(datetime_to_us(row["time"]), now_us):
            suspicious += 1
            continue
        identity = resolver.resolve(row["user"], row["domain"], row["sid"], host_key(row["host"] or ""))
        if identity is None:
            continue
        moment = datetime_to_us(row["time"])
        if identity.excluded is not None:
            excluded[identity.key].append(moment)
            excluded_identity[identity.key] = identity
            continue
        if not _in_scope(identity, resolver, settings):
            out_of_scope.add(identity.key)
            continue
        person = people.get(identity.key)
        if person is None:
            person = people[identity.key] = _Person(identity)
        host = host_key(row["host"] or "")
        person.times.append(moment)
        person.hosts.add(host)
        person.reasons.add(row["reason"])
        device = _device_key(row)
        if device is not None:
            devices.setdefault(device[0], []).append((moment, device[1], device[2], identity.key))
        if row["kind"] == "logon":
            person.starts.append((host, moment))
        elif row["kind"] == "reconnect":
            person.reconnects.append((host, moment))
    for person in people.values():
        person.times.sort()
        person.starts = _cluster(person.starts)
        person.reconnects = _cluster(person.reconnects)

    host_cover = _host_intervals(source.coverage)
    connected = connected_intervals(
        _session_rows(table), {host: intervals[-1][1] for host, intervals in host_cover.items() if intervals}
    )
    host_peaks: list[HostPeak] = []
    evidence_times = [t for p in people.values() for t in p.times]
    cover_edges = [t for intervals in host_cover.values() for iv in intervals for t in iv]
    all_times = evidence_times + cover_edges
    notes: list[str] = []
    windows: list[Window] = []
    if settings.start or settings.end or all_times:
        first_day = settings.start or local_date(us_to_datetime(min(all_times)), tz)
        last_day = settings.end or local_date(us_to_datetime(max(all_times)), tz)
        windows = windows_between(spec, first_day, last_day, tz)
    else:
        notes.append("The inputs hold no RDP evidence and no Security or LocalSessionManager records: "
                     "nothing can be estimated.")

    first_seen = {key: p.times[0] for key, p in people.items()}
    window_rows: list[WindowUsage] = []
    user_windows: dict[str, list[str]] = defaultdict(list)
    seen_before: set[str] = set()
    all_complete = bool(windows)
    for window in windows:
        start, end = datetime_to_us(window.start), datetime_to_us(window.end)
        complete: list[str] = []
        partial: list[str] = []
        unknown: list[str] = []
        for host, intervals in host_cover.items():
            covered = _covered(intervals, start, end)
            (complete if covered >= end - start else partial if covered > 0 else unknown).append(host)
        keys = sorted(k for k, p in people.items() if _any_between(p.times, start, end))
        for key in keys:
            user_windows[key].append(window.label)
        has_evidence = bool(keys)
        if complete and not partial and not unknown:
            status = STATUS_COMPLETE
        elif complete or partial or has_evidence:
            status = STATUS_PARTIAL
        else:
            status = STATUS_UNKNOWN
        if status != STATUS_COMPLETE:
            all_complete = False
        users = None if status == STATUS_UNKNOWN else len(keys)
        new = [k for k in keys if k not in seen_before and start <= first_seen[k] < end]
        seen_before.update(keys)
        sessions = sum(1 for p in people.values() for _, t in p.starts if start <= t < end)
        reconnects = sum(1 for p in people.values() for _, t in p.reconnects if start <= t < end)
        window_devices = {key for key, seen in devices.items() if any(start <= s[0] < end for s in seen)}
        window_peak = peak_overlap(connected.intervals, start, end)
        for host in sorted({iv.host for iv in connected.intervals}):
            host_peak = peak_overlap((iv for iv in connected.intervals if iv.host == host), start, end)
            if host_peak:
                host_peaks.append(HostPeak(host, window.label, host_peak))
        window_rows.append(WindowUsage(
            label=window.label, start=window.start, end=window.end, users=users,
            new_users=None if users is None else len(new), sessions=sessions, reconnects=reconnects, status=status,
            verdict=_verdict(users, settings.installed, status), user_keys=tuple(keys), hosts_complete=tuple(complete),
            hosts_partial=tuple(partial), hosts_unknown=tuple(unknown),
            devices=None if users is None else len(window_devices),
            peak_sessions=None if users is None else window_peak,
        ))

    # licence-server view: distinct users with evidence in (D - 60 days, D]
    end_of_data = max(all_times) if all_times else None
    if end_of_data is not None and windows:
        end_of_data = min(end_of_data, datetime_to_us(windows[-1].end) - 1)  # --to cuts the data short
    as_of = settings.as_of
    if as_of is None and end_of_data is not None:
        as_of = us_to_datetime(end_of_data)
    validity = CAL_VALIDITY_DAYS * 86_400 * 1_000_000
    estimated: int | None = None
    if as_of is not None:
        moment = datetime_to_us(as_of)
        lookback = [_covered(iv, moment - validity + 1, moment + 1) for iv in host_cover.values()]
        if any(lookback) or _active(people, moment, validity):
            estimated = _active(people, moment, validity)
        else:
            notes.append(f"No log covers the {CAL_VALIDITY_DAYS} days before {as_of.date()}: the estimate as of "
                         "that day is unknown.")
    curve: list[CurvePoint] = []
    if windows and as_of is not None:
        day = windows[0].start.date()
        last_day = min(local_date(as_of, tz), windows[-1].end.date() - timedelta(days=1))
        while day <= last_day:
            moment = datetime_to_us(local_midnight(day + timedelta(days=1), tz)) - 1
            curve.append(CurvePoint(day, _active(people, moment, validity)))
            day += timedelta(days=1)
    peak = max(curve, key=lambda point: (point.users, -point.day.toordinal()), default=None)
    known_windows = [w.users for w in window_rows if w.users is not None]
    max_window = max(known_windows) if known_windows else None
    candidates = [v for v in (estimated, max_window, peak.users if peak else None) if v is not None]
    over_by = 0
    if not known_windows and not people:
        verdict = "unknown"
    elif settings.installed is None:
        verdict = "no installed count"
    else:
        over_by = max([*candidates, 0]) - settings.installed
        verdict = f"over by {over_by}" if over_by > 0 else "within"
        over_by = max(over_by, 0)
    utilisation = (
        round(estimated / settings.installed, 4)
        if estimated is not None and settings.installed else None
    )
    if out_of_scope:
        notes.append(f"{len(out_of_scope)} user(s) with RDP evidence are outside the scope and not counted.")
    if any(w.status != STATUS_COMPLETE for w in window_rows):
        notes.append("Some windows are not fully covered by the logs: their counts are lower bounds "
                     "(partial) or unknown.")

    user_rows: list[UserUsage] = []
    for key in sorted(people, key=lambda k: (people[k].identity.display.lower(), k)):
        p = people[key]
        last = us_to_datetime(p.times[-1])
        user_rows.append(UserUsage(
            key=key, display_name=p.identity.display, sid=p.identity.sid, aliases=p.identity.aliases,
            first_seen=us_to_datetime(p.times[0]), last_seen=last, sessions=len(p.starts),
            reconnects=len(p.reconnects), hosts=tuple(sorted(p.hosts)), evidence=tuple(sorted(p.reasons)),
            events=len(p.times), cal_expiry=last + timedelta(days=CAL_VALIDITY_DAYS),
            windows=tuple(user_windows.get(key, ())), local_account=p.identity.local_account,
            domain_resolved=p.identity.domain_resolved,
            full_name=found.display_name if (found := _directory_user(p.identity, settings.directory)) else None,
            in_directory=None if settings.directory is None else found is not None,
        ))
    excluded_rows = []
    for key in sorted(excluded, key=lambda k: (excluded_identity[k].display.lower(), k)):
        times = sorted(excluded[key])
        identity = excluded_identity[key]
        excluded_rows.append(ExcludedUser(
            name=identity.display, key=key, reason=identity.excluded or "", events=len(times),
            first_seen=us_to_datetime(times[0]), last_seen=us_to_datetime(times[-1]),
        ))
    coverage_rows = tuple(
        ChannelCoverage(
            host=span.host, channel=span.channel, first=us_to_datetime(span.first_us),
            last=us_to_datetime(span.last_us), records=span.records,
            intervals=tuple((us_to_datetime(a), us_to_datetime(b)) for a, b in span.intervals),
            record_id_gaps=len(span.gaps), missing_record_ids=span.missing_records,
            cleared=tuple(us_to_datetime(t) for t in span.cleared_us),
        )
        for span in source.coverage
    )
    if any(i.error for i in source.inputs):
        all_complete = False
        failed = sum(1 for i in source.inputs if i.error)
        notes.append(f"{failed} input file(s) could not be read: the logs they hold are missing from this estimate.")
    if resolver.conflicts:
        notes.append("Names seen with more than one SID are separate accounts, counted apart: "
                     + ", ".join(sorted(resolver.conflicts)[:10]) + ". Their events without a SID are attributed to "
                     "the first account.")
    if curve and people:
        notes.append(f"The licence-server curve only sees users since the logs begin: its first {CAL_VALIDITY_DAYS} "
                     "days are lower bounds.")
    if connected.closed_at_coverage_end:
        notes.append(f"{connected.closed_at_coverage_end} session(s) had no disconnect or logoff in the logs and are "
                     "counted as connected until the host's logs end (peak concurrency).")
    if devices:
        notes.append("Devices are told apart by client name (4778) or client IP address: behind NAT or with DHCP "
                     "the device count is approximate.")
    if settings.directory is not None:
        missing = [u.display_name for u in user_rows if u.in_directory is False]
        if missing:
            notes.append(f"{len(missing)} counted user(s) are not in the directory export: "
                         + ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
    if suspicious:
        notes.append(f"{suspicious} RDP event(s) with a missing or impossible time (before 2000, or after now + 1 day) "
                     "were not counted; `evtrack events` lists them.")
    return Report(
        schema_version=SCHEMA_VERSION,
        created_at=created.astimezone(timezone.utc).replace(microsecond=0),
        scope=scope_label(settings.domains, settings.ous),
        installed=settings.installed,
        installed_source=settings.installed_source if settings.installed is not None else None,
        estimated=estimated,
        as_of=as_of,
        peak_estimated=peak.users if peak else None,
        peak_day=peak.day if peak else None,
        max_window_users=max_window,
        verdict=verdict,
        over_by=over_by,
        utilisation=utilisation,
        coverage_complete=all_complete,
        tz=settings.tz,
        window=str(spec),
        period_start=windows[0].start if windows else None,
        period_end=windows[-1].end if windows else None,
        windows=tuple(window_rows),
        users=tuple(user_rows),
        excluded=tuple(excluded_rows),
        curve=tuple(curve),
        coverage=coverage_rows,
        devices=tuple(
            DeviceUsage(
                key=key,
                name=next((s[1] for s in seen if s[1]), None),
                addresses=tuple(sorted({s[2] for s in seen if s[2]})),
                users=tuple(sorted({s[3] for s in seen})),
                first_seen=us_to_datetime(min(s[0] for s in seen)),
                last_seen=us_to_datetime(max(s[0] for s in seen)),
            )
            for key, seen in sorted(devices.items())
        ),
        host_peaks=tuple(host_peaks),
        sessions_closed_at_coverage_end=connected.closed_at_coverage_end,
        inputs=tuple(source.inputs),
        engine=source.engine,
        records_read=source.records_read,
        records_skipped=source.records_skipped,
        notes=tuple(notes),
    )


def _any_between(times: list[int], start: int, end: int) -> bool:
    index = bisect.bisect_left(times, start)
    return index < len(times) and times[index] < end


def _active(people: Mapping[str, _Person], moment: int, validity: int) -> int:
    """Users with evidence in ``(moment - validity, moment]``."""
    count = 0
    for person in people.values():
        index = bisect.bisect_right(person.times, moment)
        if index and person.times[index - 1] > moment - validity:
            count += 1
    return count
