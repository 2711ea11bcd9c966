"""From the event table and coverage to the :class:`~evtrack.report.Report`: who used RDP, when, how sure we are.

Steps: link identities over every row that names an account; keep the rows that are RDP evidence; merge one
logon seen twice (4624 type 10 + LSM 21, UAC split-token pairs) into one session start; cut the period into
windows in the report's time zone; mark each window complete / partial / unknown from what the logs cover; and
compute the licence-server view (distinct users with evidence in the 60 days before a date).
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING

from evtrack import rows as table_rows
from evtrack.catalogue import is_evidence_channel
from evtrack.catalogue import read_plan as catalogue_plan
from evtrack.concurrency import Sessions, connected_intervals
from evtrack.concurrency import peak as peak_overlap
from evtrack.coverage import ChannelSpan, clip_intervals, merge_intervals
from evtrack.crosscheck import SourceLedger, any_between, host_cover
from evtrack.crosscheck import covered as _covered
from evtrack.events import as_report_reads
from evtrack.hosts import HostNames, HostSelection
from evtrack.identity import Exclusions, Identity, IdentityResolver, Observation, host_key
from evtrack.licence import DAY_US, Peak, active_at, licence_peak, sliding_peak
from evtrack.report import (
    CAL_VALIDITY_DAYS,
    SCHEMA_VERSION,
    STATUS_COMPLETE,
    STATUS_PARTIAL,
    STATUS_UNKNOWN,
    ChannelCoverage,
    CurvePoint,
    ExcludedUser,
    HostPeak,
    HostUsers,
    InputFile,
    Proof,
    Report,
    SlidingPeak,
    UserUsage,
    WindowUsage,
)
from evtrack.sources.base import ReadPlan, datetime_to_us, us_to_datetime
from evtrack.tally import Person, Ref, Tally, ref_of
from evtrack.windows import Window, WindowSpec, Zone, local_date, local_midnight, resolve_zone, windows_between

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    import pyarrow as pa

    from evtrack.directory import Directory, DirectoryUser


ALL_DOMAINS = "All trusted domains"
#: Input kinds whose coverage is proved record by record (a lost record leaves a hole in it).
RECORD_COVERED_KINDS = frozenset({"evtx", "xml"})
KDC_HINT = "Kerberos KDC events (4768/4769) in its Security log: a domain controller, not an RD Session Host?"


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
    hosts: HostSelection = field(default_factory=HostSelection)
    """Which hosts count (``--host`` / ``--exclude-host``): Per User CALs are for RD Session Host use."""
    expected_hosts: tuple[str, ...] = ()
    """Session hosts that should have logs (``--expect-host``): one without any makes its windows partial."""
    sliding_days: tuple[int, ...] = (90, 60)
    """Lengths of the sliding peaks (the most distinct users in any N consecutive days)."""
    setting_warnings: tuple[str, ...] = ()
    """What resolving the settings found suspicious (a key pack file with no pack of the asked product version)."""
    installed_source: str | None = None
    input_tz: str | None = None
    """The zone of inputs that write local times without an offset (snapshots, a portal CSV); None: ``tz``."""
    culture: str | None = None
    """The date format (``en-US``, ``de-DE``) of such inputs where their data does not decide day/month order."""
    default_domain: str | None = None
    """The domain of names that carry none (``query user``) and join no domain-qualified name in the inputs."""
    zone: Zone = field(init=False, repr=False, compare=False)
    """``tz`` resolved once (IANA name and zone); ``tz`` holds its IANA name."""
    spec: WindowSpec = field(init=False, repr=False, compare=False)
    """``window`` parsed once."""
    input_zone: Zone = field(init=False, repr=False, compare=False)
    """``input_tz`` (else ``tz``) resolved once: the zone of inputs that write local times without an offset."""

    def __post_init__(self) -> None:
        resolved = resolve_zone(self.tz)
        object.__setattr__(self, "zone", resolved)
        object.__setattr__(self, "tz", resolved.name)
        object.__setattr__(self, "spec", WindowSpec.parse(self.window))
        object.__setattr__(self, "input_zone", resolve_zone(self.input_tz) if self.input_tz else resolved)

    def read_plan(self) -> ReadPlan:
        """What the readers are asked to read: the catalogue's plan, with the inputs' zone and culture."""
        return catalogue_plan(local_zone=self.input_zone.info, culture=self.culture)


@dataclass(frozen=True)
class ReportSource:
    """What a report is computed from: the event table, coverage and the inputs' story (files or the store)."""

    table: pa.Table
    """The events: :func:`evtrack.events.logon_schema`, or :func:`evtrack.events.encoded_schema` (the same values,
    the repeated strings dictionary-encoded: what every input gives a report). The report reads values only, so
    both give the same report; :func:`evtrack.events.decoded` gives the plain table."""
    coverage: Sequence[ChannelSpan]
    inputs: Sequence[InputFile]
    engine: str
    records_read: int
    records_skipped: int
    observations: Sequence[tuple[str, str | None, str | None, str]] = ()
    """Accounts (user, domain, SID, host) seen in rows the table leaves out: they still link identities."""
    notes: Sequence[str] = ()
    """What the report must say about how this input was read (e.g. only part of a dataset): appended to its
    notes."""
    evidence_paths: frozenset[str] | None = None
    """The inputs that hold records of an evidence channel (Security, LocalSessionManager, ...), where the input
    knows (files read now); None: not known (the store, a dataset), when any log counts."""


def _proof(ref: Ref, window: str, which: str, tz: ZoneInfo, carried_over: bool = False) -> Proof:
    recorded = us_to_datetime(ref.time)
    return Proof(window=window, which=which, file=ref.file, host=ref.host, channel=ref.channel,
                 record_id=ref.record_id, event_id=ref.event_id, time=recorded, local_time=recorded.astimezone(tz),
                 rule=ref.rule, user=ref.user, placed=None if ref.moment == ref.time else us_to_datetime(ref.moment),
                 carried_over=carried_over)


def _window_proof(found: tuple[Ref, Ref] | None, label: str, tz: ZoneInfo) -> list[Proof]:
    """The first and last evidence record of a person in a window (:meth:`Tally.window_refs`)."""
    if found is None:
        return []
    first, last = found
    if first == last:
        return [_proof(first, label, "only", tz)]
    return [_proof(first, label, "first", tz), _proof(last, label, "last", tz)]


def _carried_proof(person: Person, sessions: Sessions, label: str, start: int, end: int,
                   tz: ZoneInfo) -> list[Proof]:
    """The record that connected the earliest session of ``person`` still connected in ``[start, end)``."""
    found = min(((lo, index) for index, (lo, hi) in enumerate(person.carried) if lo < end and hi > start),
                default=None)
    if found is None:
        return []
    ref = ref_of(sessions.rows.row(person.carried_by[found[1]]), recorded="recorded")
    return [_proof(ref, label, "carried over", tz, carried_over=True)]


def _fully_covered(cover: Mapping[str, tuple[tuple[int, int], ...]], start: int, end: int) -> bool:
    return bool(cover) and all(_covered(iv, start, end) >= end - start for iv in cover.values())


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


def _in_scope(identity: Identity, resolver: IdentityResolver, settings: ReportSettings) -> bool | None:
    """True in the scope, False outside it, None when the records cannot tell: a name of no known domain under a
    domain scope, a user the directory export does not hold under an OU scope (deleted, or created since it was
    exported). Such a user is not counted, and the counts are lower bounds: never dropped as outside."""
    if not settings.domains and not settings.ous:
        return True
    wanted = {resolver.canonical_domain(d) for d in settings.domains}
    wanted |= {d.strip().split(".", 1)[0].upper() for d in settings.domains}  # contoso.local -> CONTOSO
    if identity.domain is not None and identity.domain in wanted:
        return True
    if settings.ous:
        from evtrack.directory import in_ou

        found = _directory_user(identity, settings.directory)
        return None if found is None else any(in_ou(found, ou) for ou in settings.ous)
    return None if identity.domain is None else False


def scope_label(domains: tuple[str, ...], ous: tuple[str, ...] = ()) -> str:
    """The scope line, worded like the Licensing Manager's: "All trusted domains", "Domain: X", "OU=Sales"."""
    if not domains and not ous:
        return ALL_DOMAINS
    parts = [f"Domain: {d.upper()}" for d in domains] + [ou.split(",", 1)[0].strip() for ou in ous]
    return "; ".join(parts)


def _unconfirmed(coverage: Sequence[ChannelSpan], counted: Callable[[str], bool]) -> tuple[tuple[int, int], ...]:
    """Stated time of the counted hosts' evidence logs that no evidence export reaches
    (:attr:`ChannelSpan.unconfirmed`), merged."""
    return merge_intervals(interval for span in coverage if span.unconfirmed and is_evidence_channel(span.channel)
                           and counted(span.host) for interval in span.unconfirmed)


def _misdated_lookup(coverage: Sequence[ChannelSpan]) -> dict[tuple[str, str, int, int], int]:
    """(host, channel in lower case, record id, time it carries) → the time its neighbours place it at."""
    return {(span.host, span.channel.lower(), m.record_id, m.time_us): m.placed_us
            for span in coverage for m in span.misdated}


def _between(times: Sequence[int], start: int, end: int) -> int:
    """How many of the sorted ``times`` lie in ``[start, end)``."""
    return bisect.bisect_left(times, end) - bisect.bisect_left(times, start)


def build_report(source: ReportSource, settings: ReportSettings) -> Report:
    import numpy as np
    import pyarrow.compute as pc

    tz = settings.zone.info
    spec = settings.spec
    table = as_report_reads(source.table)

    hosts = HostNames([*(span.host for span in source.coverage),
                       *(h for h in pc.unique(table["host"]).to_pylist() if h), *settings.expected_hosts])
    counted_host = functools.cache(lambda key: settings.hosts.counts(key, hosts.names(key)))
    observations = table_rows.observations(table)
    observations += [Observation(user, domain, sid, host_key(host or "")) for user, domain, sid, host in
                     source.observations]
    aliases = dict(settings.aliases)
    if settings.directory is not None:
        aliases = {**settings.directory.aliases(), **aliases}
        observations += table_rows.directory_observations(settings.directory, aliases)
    resolver = IdentityResolver(observations, aliases=aliases, exclusions=settings.exclusions,
                                default_domain=settings.default_domain)
    if resolver.contested_names:
        resolver.add_sightings(table_rows.sightings(table, hosts, resolver.contested_names))
    if settings.directory is not None:
        for entry in table_rows.directory_observations(settings.directory, aliases):
            if entry.sid:
                resolver.set_current_holder(entry.user, entry.domain, entry.sid)
    misdated = _misdated_lookup(source.coverage)
    created = settings.created_at or datetime.now(timezone.utc)
    now_us = max(datetime_to_us(created), datetime_to_us(datetime.now(timezone.utc)))
    table_keys = table_rows.Keys(table)  # what the evidence and session rows are sorted by (freed once they are)
    evidence = table_rows.evidence_table(table, table_keys)
    session_rows = table_rows.session_table(table, lambda name: counted_host(hosts.key(name)), misdated, table_keys)
    del table_keys
    tally = Tally(evidence, resolver=resolver, hosts=hosts, counted=counted_host,
                  in_scope=lambda identity: _in_scope(identity, resolver, settings), misdated=misdated, tz=tz,
                  now_us=now_us, kinds={i.path: i.kind for i in source.inputs}).read()
    people, ledger, devices, host_people = tally.people, tally.ledger, tally.devices, tally.host_people
    uncounted_hosts, suspicious, misdated_rows = tally.uncounted_hosts, tally.suspicious, tally.misdated
    cover = host_cover(source.coverage, hosts, settings.hosts, settings.expected_hosts, ledger.channels)
    host_cover_all = cover.all
    connected = connected_intervals(
        session_rows, {host: intervals[-1][1] for host, intervals in host_cover_all.items() if intervals}, hosts.key)
    counted_sessions = tally.sessions(connected)  # sessions of counted people only (scope, exclusions)
    session_host = connected.host[counted_sessions]
    session_start, session_end = connected.start[counted_sessions], connected.end[counted_sessions]
    host_sessions = {connected.hosts[code]: (session_start[session_host == code], session_end[session_host == code])
                     for code in np.unique(session_host).tolist()}

    unconfirmed = _unconfirmed(source.coverage, lambda name: counted_host(hosts.key(name)))
    cover_edges = [t for intervals in host_cover_all.values() for iv in intervals for t in iv]
    cover_edges += [t for interval in unconfirmed for t in interval]
    all_times = [t for p in people.values() for t in (p.times[0], p.times[-1])] + cover_edges
    notes: list[str] = []
    warnings: list[str] = list(settings.setting_warnings)
    windows: list[Window] = []
    explicit = settings.start is not None or settings.end is not None
    if settings.start or settings.end or all_times:
        first_day = settings.start or local_date(us_to_datetime(min(all_times)), tz)
        last_day = settings.end or local_date(us_to_datetime(max(all_times)), tz)
        windows = windows_between(spec, first_day, last_day, tz)
    else:
        notes.append("The inputs hold no RDP evidence and no Security or LocalSessionManager records: "
                     "nothing can be estimated.")
    period_lo = datetime_to_us(windows[0].start) if windows else 0
    period_hi = datetime_to_us(windows[-1].end) if windows else 0

    first_seen = {key: p.times[0] for key, p in people.items() if p.times}
    window_rows: list[WindowUsage] = []
    user_windows: dict[str, list[str]] = defaultdict(list)
    carried_users: set[str] = set()
    host_peaks: list[HostPeak] = []
    seen_before: set[str] = set()
    proofs: dict[str, list[Proof]] = defaultdict(list)
    resting: set[str] = set()
    holed: list[bool] = []
    """Per window: a host's logs leave part of it uncovered between their first and last records (records lost,
    exports that do not join): damage, never a window the exports only cut into."""
    for window in windows:
        start, end = datetime_to_us(window.start), datetime_to_us(window.end)
        complete: list[str] = []
        partial: list[str] = []
        unknown: list[str] = []
        rests = ledger.rests_on(cover, start, end)
        resting |= set(rests)
        hole = False
        for host, intervals in host_cover_all.items():
            covered = _covered(intervals, start, end)
            (complete if covered >= end - start else partial if covered > 0 else unknown).append(host)
            if intervals:
                inside = min(end, intervals[-1][1]) - max(start, intervals[0][0])
                hole = hole or covered < inside
        holed.append(hole or any(first < end and last >= start for first, last in unconfirmed))
        direct = {k for k, p in people.items() if any_between(p.times, start, end)}
        carried = {k for k, p in people.items() if k not in direct and p.connected_between(start, end)}
        keys = sorted(direct | carried)
        carried_users |= carried
        day_lo, day_hi = local_date(window.start, tz).toordinal(), local_date(window.end, tz).toordinal()
        seen = [key for key in keys if key in direct]
        refs = dict(zip(seen, tally.window_refs([people[key] for key in seen], day_lo, day_hi), strict=True))
        for key in keys:
            user_windows[key].append(window.label)
            if key in direct:
                proofs[key] += _window_proof(refs[key], window.label, tz)
            else:
                proofs[key] += _carried_proof(people[key], connected, window.label, start, end, tz)
        has_evidence = bool(keys)
        if complete and not partial and not unknown:
            status = STATUS_COMPLETE
        elif complete or partial or has_evidence:
            status = STATUS_PARTIAL
        else:
            status = STATUS_UNKNOWN
        users = None if status == STATUS_UNKNOWN else len(keys)
        new = [k for k in keys if k not in seen_before and k in first_seen and start <= first_seen[k] < end]
        seen_before.update(keys)
        sessions = sum(_between(p.session_starts, start, end) for p in people.values())
        reconnects = sum(_between(p.reconnect_starts, start, end) for p in people.values())
        window_devices = devices.seen_between(start, end)
        window_peak = peak_overlap(session_start, session_end, start, end)
        for host in sorted(host_sessions):
            host_peak = peak_overlap(*host_sessions[host], start, end)
            if host_peak:
                host_peaks.append(HostPeak(host, window.label, host_peak))
        window_rows.append(WindowUsage(
            label=window.label, start=window.start, end=window.end, users=users,
            new_users=None if users is None else len(new), sessions=None if users is None else sessions,
            reconnects=None if users is None else reconnects, status=status,
            verdict=_verdict(users, settings.installed, STATUS_PARTIAL if rests else status), user_keys=tuple(keys),
            hosts_complete=tuple(complete),
            hosts_partial=tuple(partial), hosts_unknown=tuple(unknown),
            devices=None if users is None else window_devices,
            peak_sessions=None if users is None else window_peak, carried_over=tuple(sorted(carried)),
            rests_on=rests, sources=ledger.window_sources(keys, start, end),
        ))

    # the windows the verdict rests on: all of an explicit period; without --from/--to, not the windows at either
    # end that the exports only cut into (a routine monthly run over logs of the last full months can pass), unless
    # they are over the installed count anyway; a window is never left out for damage: a hole inside a host's logs
    # (``holed``), or a log that lost records (``damaged``: where a file was cut short, its end is no export's end)
    damaged = [i for i in source.inputs if i.skipped and not i.error and i.kind in RECORD_COVERED_KINDS
               and (source.evidence_paths is None or i.path in source.evidence_paths)]
    in_verdict = [True] * len(window_rows)
    if not explicit and any(w.status == STATUS_COMPLETE for w in window_rows):
        first = next(i for i, w in enumerate(window_rows) if w.status == STATUS_COMPLETE)
        last = max(i for i, w in enumerate(window_rows) if w.status == STATUS_COMPLETE)
        in_verdict = [first <= i <= last or holed[i] or (bool(damaged) and w.status != STATUS_UNKNOWN)
                      for i, w in enumerate(window_rows)]
    over_window = [w.users is not None and settings.installed is not None and w.users > settings.installed
                   for w in window_rows]
    in_verdict = [a or b for a, b in zip(in_verdict, over_window, strict=True)]
    window_rows = [dataclasses.replace(w, in_verdict=flag) for w, flag in zip(window_rows, in_verdict, strict=True)]
    verdict_rows = [w for w in window_rows if w.in_verdict]

    # licence-server view: distinct users with a sign-in or reconnect in (D - 60 days, D]
    validity = CAL_VALIDITY_DAYS * 86_400 * 1_000_000
    end_of_data = max(all_times) if all_times else None
    decisive = host_cover_all
    host_ends = [intervals[-1][1] for intervals in decisive.values() if intervals]
    if host_ends and len(host_ends) == len(decisive):
        # the latest instant every host's logs reach (hosts exported minutes apart), leaving out hosts whose logs or
        # polls stopped more than a day before the others: they leave the look-back uncovered (a lower bound)
        # rather than pull the as-of date back to when they stopped
        end_of_data = min(end for end in host_ends if max(host_ends) - end <= DAY_US)
    if end_of_data is not None and windows:
        end_of_data = min(end_of_data, period_hi - 1)  # --to cuts the data short
    as_of = settings.as_of
    if as_of is None and end_of_data is not None:
        as_of = us_to_datetime(end_of_data)
    renewals = [p.renewals for p in people.values()]
    estimated: int | None = None
    lookback_complete = False
    if as_of is not None:
        moment = datetime_to_us(as_of)
        lookback = [_covered(iv, moment - validity + 1, moment + 1) for iv in decisive.values()]
        lookback_complete = bool(lookback) and all(c >= validity for c in lookback)
        if any(lookback) or active_at(renewals, moment, validity):
            estimated = active_at(renewals, moment, validity)
        else:
            notes.append(f"No log covers the {CAL_VALIDITY_DAYS} days before {as_of.date()}: the estimate as of "
                         "that day is unknown.")
    curve: list[CurvePoint] = []
    exact: Peak | None = None
    if windows and as_of is not None:
        day = windows[0].start.date()
        last_day = min(local_date(as_of, tz), windows[-1].end.date() - timedelta(days=1))
        while day <= last_day:
            moment = datetime_to_us(local_midnight(day + timedelta(days=1), tz)) - 1
            curve.append(CurvePoint(day, active_at(renewals, moment, validity)))
            day += timedelta(days=1)
        # the peak runs to the end of all the data (a host whose logs or polls end early pulls the as-of date back,
        # never the evidence after it), or to an --as-of the user gave
        peak_end = datetime_to_us(as_of) + 1 if settings.as_of is not None or not all_times else max(
            datetime_to_us(as_of) + 1, max(all_times) + 1)
        exact = licence_peak(renewals, period_lo, min(period_hi, peak_end), validity)
    peak_users = exact.count if exact is not None and curve else None
    peak_at = us_to_datetime(exact.moment) if exact is not None and exact.moment is not None else None
    peak_day = local_date(peak_at, tz) if peak_at is not None else (curve[0].day if curve else None)
    sliding: list[SlidingPeak] = []
    if windows:
        for days in settings.sliding_days:
            most = sliding_peak([(p.times, p.carried) for p in people.values()], period_lo, period_hi, days)
            start_us = most.moment
            end_us = None if start_us is None else min(start_us + days * DAY_US, period_hi)
            sliding.append(SlidingPeak(
                days=days, users=most.count, start=None if start_us is None else us_to_datetime(start_us),
                end=None if end_us is None else us_to_datetime(end_us),
                complete=(start_us is not None and end_us is not None
                          and _fully_covered(decisive, start_us, end_us)),
            ))
    known_windows = [w.users for w in window_rows if w.users is not None]
    max_window = max(known_windows) if known_windows else None
    candidates = [v for v in (estimated, max_window, peak_users) if v is not None]
    over_by = 0
    failed = sum(1 for i in source.inputs if i.error)
    # rows lost from an input whose coverage is stated or polled (not proved record by record, where a lost record
    # leaves a hole): the time those rows fall in still reads as covered
    lost = [i for i in source.inputs if i.skipped and not i.error and i.kind not in RECORD_COVERED_KINDS]
    lower_bound = (any(w.status != STATUS_COMPLETE or w.rests_on for w in verdict_rows) or not lookback_complete
                   or bool(failed) or bool(lost) or bool(damaged) or bool(misdated_rows) or bool(suspicious)
                   or bool(tally.undecided_scope))
    if not any(w.users is not None for w in verdict_rows) and not people:
        verdict = "unknown"
    elif settings.installed is None:
        verdict = "no installed count"
    else:
        over_by = max([*candidates, 0]) - settings.installed
        verdict = f"over by {over_by}" if over_by > 0 else ("within (lower bound)" if lower_bound else "within")
        over_by = max(over_by, 0)
    utilisation = (
        round(estimated / settings.installed, 4)
        if estimated is not None and settings.installed else None
    )
    shown = clip_intervals(unconfirmed, ((period_lo, period_hi - 1),))
    if shown:
        hours = sum(last - first + 1 for first, last in shown) / 3_600_000_000
        notes.append(f"An Azure Monitor coverage export says evidence logs were collected between "
                     f"{us_to_datetime(shown[0][0]):%Y-%m-%d} and {us_to_datetime(shown[-1][1]):%Y-%m-%d} (UTC; "
                     f"{hours:,.0f} hours in all) where no evidence export holds a row within a week (an export left "
                     "out, or run for another range?): the coverage export does not count as covering that time, "
                     "and every window it touches is judged.")
    if tally.out_of_scope:
        notes.append(f"{len(tally.out_of_scope)} user(s) with RDP evidence are outside the scope and not counted.")
    if tally.undecided_scope:
        names = ", ".join(sorted(tally.undecided_scope)[:10])
        notes.append(f"{len(tally.undecided_scope)} user(s) with RDP evidence cannot be placed in or out of the scope "
                     f"({names}: a name of no known domain, or a user the directory export does not hold): not "
                     "counted, so the counts are lower bounds.")
    if (settings.domains or settings.ous) and not people:
        warnings.append(f"The scope ({scope_label(settings.domains, settings.ous)}) matches no user with RDP "
                        "evidence: check the domain or OU names.")
    if settings.hosts.active:
        warnings += settings.hosts.unmatched(hosts.all_keys(), hosts.names)
        if not any(counted_host(h) for h in hosts.all_keys()):
            warnings.append("No host is counted: every host in the inputs is left out by the host patterns.")
    for item in resolver.unmatched_exclusions():
        warnings.append(f"The exclusion {item!r} matches no account in the inputs.")
    if any(w.status != STATUS_COMPLETE for w in window_rows):
        notes.append("Some windows are not fully covered by the logs: their counts are lower bounds "
                     "(partial) or unknown.")
    if not explicit and len(verdict_rows) < len(window_rows):
        notes.append("The verdict rests on " + ", ".join(w.label for w in verdict_rows) + ": the windows from the "
                     "first to the last one the logs cover fully, and any window over the installed count (the "
                     "windows the exports only cut into are shown, not judged; give --from/--to to judge a period "
                     "of your choice).")
    if as_of is not None and not lookback_complete and estimated is not None:
        notes.append(f"The logs do not cover all of the {CAL_VALIDITY_DAYS} days before {as_of.date()}: the "
                     "estimate as of that day is a lower bound.")
    missing_hosts = [name for name in settings.expected_hosts if not host_cover_all.get(hosts.key(name))]
    if missing_hosts:
        notes.append("Expected session host(s) with no logs: " + ", ".join(sorted(missing_hosts))
                     + ": their windows are not covered.")
    for short, owners in sorted(hosts.ambiguous.items()):
        notes.append(f"Records that name the host only as {short!r} cannot be told apart between "
                     + ", ".join(owners) + ": they form a host of their own.")
    if misdated_rows:
        notes.append(f"{len(misdated_rows)} RDP event(s) carry a time that contradicts their neighbours in the log "
                     "(a clock that was wrong for a while): counted where their neighbours place them, listed under "
                     "misdated evidence; the verdict is a lower bound until they are checked.")
    rested = [w.label for w in window_rows if w.rests_on]
    if rested:
        notes.append(f"{len(rested)} window(s) rest on {' and '.join(sorted(resting))} for some host, with no log of "
                     "its own covering the window: polls miss sessions shorter than their interval and a gateway "
                     "misses connections that bypass it, so their counts are lower bounds.")
    if len({label for w in window_rows for label, _ in w.sources}) > 1:
        notes.append("Several evidence sources: each window lists how many of its users each source saw (a "
                     "cross-check; a user one source misses is still counted once).")
    if carried_users:
        notes.append(f"{len(carried_users)} user(s) are counted in a window only because a session that began earlier "
                     "was still connected in it (evidence: session carried over).")

    user_rows = _user_rows(people, user_windows, carried_users, settings, period_lo, period_hi, proofs, ledger)
    excluded_rows = []
    for key, left_out in sorted(tally.excluded.items(), key=lambda item: (item[1].identity.display.lower(), item[0])):
        identity = left_out.identity
        excluded_rows.append(ExcludedUser(
            name=identity.display, key=key, reason=identity.excluded or "", events=left_out.events,
            first_seen=us_to_datetime(left_out.first), last_seen=us_to_datetime(left_out.last),
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
    if failed:
        notes.append(f"{failed} input file(s) could not be read: the logs they hold are missing from this estimate.")
    if damaged:
        notes.append(f"{sum(i.skipped for i in damaged)} record(s) of {len(damaged)} log file(s) could not be read "
                     "(" + ", ".join(sorted(i.path for i in damaged)[:5]) + "): what they held is missing, so the "
                     "counts are lower bounds, and the windows at the ends of the logs are judged too (a file cut "
                     "short ends where the copy stopped, not where the export did).")
    if lost:
        notes.append(f"{sum(i.skipped for i in lost)} row(s) of {len(lost)} export(s) or snapshot(s) could not be read "
                     "(" + ", ".join(sorted(i.path for i in lost)[:5]) + "): the time they fall in still reads as "
                     "covered, so the counts are lower bounds until they are fixed.")
    if resolver.conflicts:
        notes.append("Names seen with more than one SID are separate accounts, counted apart: "
                     + ", ".join(sorted(resolver.conflicts)[:10]) + ". Their events without a SID are attributed to "
                     "the SID of the same logon, else to the SID that held the name at the time.")
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
                     "were not counted; `evtrack events` lists them. The verdict is a lower bound until they are "
                     "checked.")
    kdc_hosts = {hosts.key(span.host) for span in source.coverage if span.kdc}
    host_rows = tuple(
        HostUsers(host=host, users=len(host_people.get(host, ())), counted=host not in uncounted_hosts,
                  hint=KDC_HINT if host in kdc_hosts else None)
        for host in sorted(set(host_cover_all) | set(host_people) | uncounted_hosts | kdc_hosts)
    )
    hinted = [h.host for h in host_rows if h.hint and h.counted and h.users]
    if hinted:
        notes.append("Host(s) " + ", ".join(hinted) + " hold Kerberos KDC events (4768/4769) in their Security "
                     "log: domain controllers, where RDP is usually administration, which Per User CALs do not "
                     "cover. Their users are counted; leave them out with --exclude-host if they are no session "
                     "hosts.")
    return Report(
        schema_version=SCHEMA_VERSION,
        created_at=created.astimezone(timezone.utc).replace(microsecond=0),
        scope=scope_label(settings.domains, settings.ous),
        installed=settings.installed,
        installed_source=settings.installed_source if settings.installed is not None else None,
        estimated=estimated,
        as_of=as_of,
        peak_estimated=peak_users,
        peak_day=peak_day if peak_users is not None else None,
        max_window_users=max_window,
        verdict=verdict,
        over_by=over_by,
        utilisation=utilisation,
        coverage_complete=not lower_bound and bool(verdict_rows),
        tz=settings.tz,
        window=str(spec),
        period_start=windows[0].start if windows else None,
        period_end=windows[-1].end if windows else None,
        windows=tuple(window_rows),
        users=tuple(user_rows),
        excluded=tuple(excluded_rows),
        curve=tuple(curve),
        coverage=coverage_rows,
        devices=devices.usage(period_lo, period_hi),
        host_peaks=tuple(host_peaks),
        sessions_closed_at_coverage_end=connected.closed_at_coverage_end,
        inputs=tuple(source.inputs),
        engine=source.engine,
        records_read=source.records_read,
        records_skipped=source.records_skipped,
        notes=(*notes, *source.notes),
        lower_bound=lower_bound,
        verdict_windows=tuple(w.label for w in verdict_rows),
        peak_at=peak_at,
        sliding_peaks=tuple(sliding),
        host_users=host_rows,
        misdated=tuple(misdated_rows),
        warnings=tuple(warnings),
    )


def _user_rows(people: Mapping[str, Person], user_windows: Mapping[str, list[str]], carried: set[str],
               settings: ReportSettings, period_lo: int, period_hi: int,
               proofs: Mapping[str, list[Proof]], ledger: SourceLedger) -> list[UserUsage]:
    """One row per person counted in some window of the period (the period governs the users list too)."""
    rows: list[UserUsage] = []
    validity = timedelta(days=CAL_VALIDITY_DAYS)
    for key in sorted(people, key=lambda k: (people[k].identity.display.lower(), k)):
        p = people[key]
        if not user_windows.get(key):
            continue
        times = [t for t in p.times if period_lo <= t < period_hi]
        spans = [(max(a, period_lo), min(b, period_hi)) for a, b in p.carried if a < period_hi and b > period_lo]
        first = min([*times, *(a for a, _ in spans)])
        last = max([*times, *(b - 1 for _, b in spans)])
        renewed = [t for t in p.renewals if t < period_hi]
        starts = [t for t in p.session_starts if period_lo <= t < period_hi]
        reconnects = [t for t in p.reconnect_starts if period_lo <= t < period_hi]
        # the evidence rules that counted the person (a row from another tool's dataset may name none)
        reasons = {reason for reason in p.reasons if reason} | ({"session_carried_over"} if key in carried else set())
        found = _directory_user(p.identity, settings.directory)
        rows.append(UserUsage(
            key=key, display_name=p.identity.display, sid=p.identity.sid, aliases=p.identity.aliases,
            first_seen=us_to_datetime(first), last_seen=us_to_datetime(last), sessions=len(starts),
            reconnects=len(reconnects), hosts=tuple(sorted(p.hosts)), evidence=tuple(sorted(reasons)),
            events=len(times), cal_expiry=us_to_datetime(renewed[-1] if renewed else last) + validity,
            windows=tuple(user_windows.get(key, ())), local_account=p.identity.local_account,
            domain_resolved=p.identity.domain_resolved,
            full_name=found.display_name if found else None,
            in_directory=None if settings.directory is None else found is not None,
            proof=tuple(proofs.get(key, ())), sources=ledger.sources(key),
        ))
    return rows
