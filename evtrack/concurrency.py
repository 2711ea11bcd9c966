"""Peak concurrency: how many RDP sessions were connected at once, per host and overall.

A session is *connected* from a logon or reconnect until its next disconnect or logoff, as the half-open
interval ``[connect, end)``. Sessions are followed by LocalSessionManager's SessionID where a host has that log
(21/25 with an IP address connect, 24 disconnects, 23 ends), otherwise by the Security logon id (4624 type 10/12
and 4778 connect, 4779 disconnects, 4634/4647 end; the two 4624 of a UAC split token are one session). A session
still connected when the host's logs end is closed there, and counted, so the report can say so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from evtrack.catalogue import LSM, Transition, lookup
from evtrack.identity import host_key

CONNECT, DISCONNECT, END = Transition.CONNECT, Transition.DISCONNECT, Transition.END
_MERGE_US = 10_000_000


@dataclass(frozen=True, slots=True)
class Interval:
    host: str
    start: int
    end: int
    user: str | None = None
    """The account of the event that connected the session (``user`` and ``domain`` as the row gives them)."""
    domain: str | None = None
    open_ended: bool = False
    """No disconnect or logoff was seen: closed where the host's logs end."""
    opened_by: Mapping[str, Any] | None = field(default=None, compare=False)
    """The row that connected the session (for the audit trail of a session carried over)."""


@dataclass(frozen=True, slots=True)
class Sessions:
    intervals: tuple[Interval, ...]
    closed_at_coverage_end: int


def _transition(row: Mapping[str, Any]) -> str | None:
    """What the row does to its session, as the event catalogue says (None: nothing)."""
    definition = lookup(row["channel"] or "", row["event_id"])
    if definition is None or definition.transition is None:
        return None
    return definition.transition(row["logon_type"], row["address"], bool(row["rdp"]))


def connected_intervals(rows: Iterable[Mapping[str, Any]], coverage_end: Mapping[str, int],
                        host_of: Callable[[str], str] = host_key) -> Sessions:
    """Connected intervals from session events (rows of the event table, times in µs, duplicates removed);
    ``host_of`` turns a row's host name into the host key ``coverage_end`` uses."""
    lsm_hosts: set[str] = set()
    events: dict[str, list[tuple[int, str, str, Mapping[str, Any]]]] = defaultdict(list)
    materialised = []
    for row in rows:
        transition = _transition(row)
        if transition is None or row["time"] is None:
            continue
        materialised.append((row, transition))
        if (row["channel"] or "").lower() == LSM:
            lsm_hosts.add(host_of(row["host"] or ""))
    alias: dict[tuple[str, str], str] = {}
    last_logon: dict[tuple[str, str], tuple[int, str]] = {}
    for row, transition in sorted(materialised, key=lambda item: (item[0]["time"], item[0]["record_id"] or 0)):
        host = host_of(row["host"] or "")
        channel = (row["channel"] or "").lower()
        if channel == LSM:
            if row["session_id"] is None:
                continue
            key = f"lsm:{row['session_id']}"
        else:
            if host in lsm_hosts or row["logon_id"] is None:
                continue
            logon_id = row["logon_id"]
            user = f"{(row['domain'] or '').lower()}\\{(row['user'] or '').lower()}"
            if row["event_id"] == 4624:
                previous = last_logon.get((host, user))
                if previous is not None and row["time"] - previous[0] <= _MERGE_US:
                    alias[(host, logon_id)] = previous[1]  # UAC split token: the same session
                else:
                    last_logon[(host, user)] = (row["time"], logon_id)
            key = "sec:" + alias.get((host, logon_id), logon_id)
        events[host].append((row["time"], transition, key, row))
    intervals: list[Interval] = []
    closed_at_end = 0
    for host, host_events in events.items():
        open_since: dict[str, tuple[int, Mapping[str, Any]]] = {}
        for moment, transition, key, row in host_events:
            opened = open_since.get(key)
            if opened is not None and not _same_user(opened[1], row):
                # the id was reused by another user (after a reboot, or a crash that logged no end): the session
                # open under it ended unseen, no later than now -- never closed by someone else's logoff
                del open_since[key]
                if moment > opened[0]:
                    intervals.append(Interval(host, opened[0], moment, opened[1]["user"], opened[1]["domain"],
                                              open_ended=True, opened_by=opened[1]))
                opened = None
            if transition == CONNECT:
                open_since.setdefault(key, (moment, row))
            elif opened is not None:
                del open_since[key]
                if moment > opened[0]:
                    intervals.append(Interval(host, opened[0], moment, opened[1]["user"], opened[1]["domain"],
                                              opened_by=opened[1]))
        end = coverage_end.get(host)
        for start, row in open_since.values():
            stop = max(end or start, start)
            if stop > start:
                intervals.append(Interval(host, start, stop, row["user"], row["domain"], open_ended=True,
                                              opened_by=row))
            closed_at_end += 1
    intervals.sort(key=lambda iv: (iv.host, iv.start, iv.end))
    return Sessions(tuple(intervals), closed_at_end)


def _same_user(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two events of one session id name the same account (either naming none counts as the same)."""
    first, second = (a["user"] or "").strip().lower(), (b["user"] or "").strip().lower()
    return not first or not second or first == second


def peak(intervals: Iterable[Interval], start: int, end: int) -> int:
    """The most intervals overlapping at one instant inside ``[start, end)`` (ends before starts at ties)."""
    points: list[tuple[int, int]] = []
    for interval in intervals:
        lo, hi = max(interval.start, start), min(interval.end, end)
        if hi > lo:
            points.append((lo, 1))
            points.append((hi, -1))
    points.sort()
    best = current = 0
    for _, delta in points:
        current += delta
        best = max(best, current)
    return best
