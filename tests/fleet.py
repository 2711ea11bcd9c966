"""A fleet-sized :class:`Report` built directly (no logs to read): N hosts, M monthly or weekly windows, many users.

For renderer tests and screenshots at 1, 20 and 200 hosts. The numbers are made up but shaped like a real fleet:
one host's logs miss part of one window, another host has a hole and a log clear, a few windows are partial, one
is unknown when asked, users have SIDs, directory names (some with accents) and several kinds of evidence.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone

from evtrack.report import (
    SCHEMA_VERSION,
    ChannelCoverage,
    CurvePoint,
    DeviceUsage,
    HostPeak,
    InputFile,
    Report,
    UserUsage,
    WindowUsage,
)

UTC = timezone.utc
EVIDENCE = ("4624_lt10", "lsm21_ip", "4778_rdp_session", "4624_lt7_remote_ip", "lsm25_ip")
NAMES = ("Zoë Müller", "Jürgen Groß", "Anaïs Lefèvre", "Bob Smith", "Ola Nordmann", "Chloé Dubois")


def host_names(count: int) -> list[str]:
    return [f"rdsh{i + 1:02d}" for i in range(count)]


def fleet_report(hosts: int = 20, windows: int = 12, *, kind: str = "month", users: int = 60,
                 installed: int | None = 50, unknown_window: int | None = None, seed: int = 7,
                 directory: bool = True, installed_source: str | None = "--installed") -> Report:
    rng = random.Random(seed)
    names = host_names(hosts)
    bounds: list[tuple[str, datetime, datetime]] = []
    start = datetime(2023, 1, 2, tzinfo=UTC) if kind == "week" else datetime(2023, 1, 1, tzinfo=UTC)
    cursor = start
    for _ in range(windows):
        if kind == "week":
            following = cursor + timedelta(days=7)
            year, week, _ = cursor.isocalendar()
            label = f"{year}-W{week:02d}"
        else:
            following = (cursor.replace(day=28) + timedelta(days=4)).replace(day=1)
            label = cursor.strftime("%Y-%m")
        bounds.append((label, cursor, following))
        cursor = following
    end = cursor
    people = []
    for i in range(users):
        first = start + timedelta(hours=rng.randrange(int((end - start).total_seconds() // 3600) // 2))
        last = first + timedelta(hours=rng.randrange(1, int((end - first).total_seconds() // 3600)))
        used = tuple(sorted(rng.sample(names, min(len(names), rng.randint(1, 4)))))
        seen = tuple(label for label, a, b in bounds if a < last and b > first)
        sid = f"S-1-5-21-3623811015-3361044348-30300820-{1100 + i}"
        people.append(UserUsage(
            key=sid, display_name=f"CONTOSO\\user{i:03d}", sid=sid, aliases=(f"user{i:03d}@contoso.com",),
            first_seen=first, last_seen=last, sessions=rng.randint(1, 400), reconnects=rng.randint(0, 90),
            hosts=used, evidence=tuple(sorted(rng.sample(EVIDENCE, rng.randint(1, 3)))), events=rng.randint(5, 900),
            cal_expiry=last + timedelta(days=60), windows=seen, local_account=i == 3, domain_resolved=i != 5,
            full_name=(f"{NAMES[i % len(NAMES)]} {i}" if i % 9 else None) if directory else None,
            in_directory=(i % 9 != 0) if directory else None,
        ))
    window_rows = []
    for index, (label, a, b) in enumerate(bounds):
        present = [p for p in people if label in p.windows]
        partial = [names[-1]] if index == 1 and hosts > 1 else []
        missing = [names[-2]] if index == 2 and hosts > 2 else []
        if index == unknown_window:
            window_rows.append(WindowUsage(label, a, b, None, None, 0, 0, "unknown", "unknown", (), (), (),
                                           tuple(names), None, None))
            continue
        complete = tuple(h for h in names if h not in partial and h not in missing)
        status = "partial" if partial or missing else "complete"
        count = len(present)
        verdict = "unknown" if installed is None else ("within" if count <= installed else
                                                       f"over by {count - installed}")
        window_rows.append(WindowUsage(
            label, a, b, count, rng.randint(0, 5), sum(p.sessions for p in present) // 4, rng.randint(0, 50),
            status, verdict, tuple(p.key for p in present), complete, tuple(partial), tuple(missing),
            rng.randint(1, count + 1), rng.randint(1, max(count, 1)),
        ))
    coverage = []
    for h, name in enumerate(names):
        for channel in ("Security", "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational"):
            intervals: tuple[tuple[datetime, datetime], ...] = ((start, end - timedelta(seconds=1)),)
            cleared: tuple[datetime, ...] = ()
            if h == 0 and hosts > 3 and channel == "Security":
                intervals = ((start, start + timedelta(days=40)), (start + timedelta(days=45), end))
                cleared = (start + timedelta(days=45),)
            coverage.append(ChannelCoverage(f"{name.upper()}.contoso.local", channel, intervals[0][0],
                                            intervals[-1][1], 10_000 + h, intervals, 0, 0, cleared))
    days = (end - start).days
    curve = tuple(CurvePoint(date(2023, 1, 1) + timedelta(days=d), min(users, 5 + d // 3)) for d in range(days))
    peak = max(curve, key=lambda p: p.users)
    devices = tuple(DeviceUsage(f"PC-{i:04d}", f"PC-{i:04d}", (f"10.0.{i // 250}.{i % 250}",), (people[i].key,),
                                people[i].first_seen, people[i].last_seen) for i in range(min(users, 40)))
    over = 0 if installed is None else max(0, peak.users - installed)
    return Report(
        schema_version=SCHEMA_VERSION, created_at=datetime(2024, 6, 1, tzinfo=UTC), scope="All trusted domains",
        installed=installed, estimated=curve[-1].users, as_of=end - timedelta(seconds=1),
        peak_estimated=peak.users, peak_day=peak.day, max_window_users=max(
            (w.users for w in window_rows if w.users is not None), default=None),
        verdict="unknown" if installed is None else ("within" if not over else f"over by {over}"), over_by=over,
        utilisation=None if not installed else peak.users / installed, coverage_complete=False, tz="UTC",
        window=kind, period_start=start, period_end=end, windows=tuple(window_rows), users=tuple(people),
        excluded=(), curve=curve, coverage=tuple(coverage), devices=devices,
        host_peaks=tuple(HostPeak(n, bounds[0][0], 3) for n in names), sessions_closed_at_coverage_end=0,
        inputs=tuple(InputFile(f"exports/{n}/Security.evtx", "evtx", "evtx", 10_000, 0, (), None) for n in names),
        engine="evtx", records_read=10_000 * hosts, records_skipped=0, notes=(),
        installed_source=installed_source if installed is not None else None,
    )
