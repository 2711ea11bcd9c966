"""Several evidence sources side by side: which source saw whom in each window (a cross-check of the logs against
the polls, the gateway and Azure), and where a window's count rests on polls alone (a lower bound).

Polls list the sessions alive at each poll: a session shorter than the poll interval can fall between two polls
and is never seen. A window is therefore *snapshot-bound* -- its count a lower bound -- when polls reach into it
and some host with evidence in it (from any source) has no log covering the whole window. Where every such host's
logs cover the window, the polls only cross-check them: a missed poll then costs nothing.
"""

from __future__ import annotations

import bisect
from array import array
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from evtrack.catalogue import EVIDENCE_CHANNELS, POLLED_CHANNELS, WVD, channel_source
from evtrack.coverage import ChannelSpan, merge_intervals
from evtrack.hosts import HostNames, HostSelection

#: Input kinds whose rows name an event log's channel but came by another way: the source the report names.
_KIND_SOURCES = {"azure": "Azure Monitor"}

Intervals = tuple[tuple[int, int], ...]


def source_label(channel: str, input_kind: str | None) -> str:
    """The evidence source of a row: its channel's (``session host logs``, ``RD Gateway``, ``Connection Broker
    polls``...), or the way it came (``Azure Monitor`` for a Security event exported from Log Analytics)."""
    if input_kind in _KIND_SOURCES and channel.lower() != WVD:
        return _KIND_SOURCES[input_kind]
    return channel_source(channel)


@dataclass(frozen=True)
class HostCover:
    """Covered time per counted host (evidence channels only): all of it, and the part logs (not polls) cover."""

    all: dict[str, Intervals]
    logs: dict[str, Intervals]
    polled: dict[str, Intervals]

    @property
    def poll_only(self) -> frozenset[str]:
        """Hosts known only from polls of them (a Connection Broker): no log of their own."""
        return frozenset(h for h, iv in self.polled.items() if iv and not self.logs.get(h))


def host_cover(coverage: Sequence[ChannelSpan], hosts: HostNames, selection: HostSelection,
               expected: Sequence[str]) -> HostCover:
    """Covered time per counted host; expected hosts without logs cover nothing."""
    every: dict[str, list[tuple[int, int]]] = defaultdict(list)
    logs: dict[str, list[tuple[int, int]]] = defaultdict(list)
    polled: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for span in coverage:
        key = hosts.key(span.host)
        if not selection.counts(key, hosts.names(key)):
            continue
        every[key]  # a host seen in any log is known: without evidence logs it is uncovered
        channel = span.channel.lower()
        if channel in EVIDENCE_CHANNELS:
            intervals = span.intervals or ((span.first_us, span.last_us),)
            every[key].extend(intervals)
            (polled if channel in POLLED_CHANNELS else logs)[key].extend(intervals)
    for name in expected:
        every[hosts.key(name)]
    return HostCover(
        all={host: merge_intervals(iv) for host, iv in sorted(every.items())},
        logs={host: merge_intervals(iv) for host, iv in logs.items()},
        polled={host: merge_intervals(iv) for host, iv in polled.items()},
    )


def covered(intervals: Intervals, start: int, end: int) -> int:
    """Microseconds of ``[start, end)`` inside the (closed) intervals; touching the end counts as covering it."""
    total = 0
    for first, last in intervals:
        lo, hi = max(first, start), min(last + 1, end)
        if hi > lo:
            total += hi - lo
    return total


def any_between(times: Sequence[int], start: int, end: int) -> bool:
    """Whether the sorted ``times`` hold one in ``[start, end)``."""
    index = bisect.bisect_left(times, start)
    return index < len(times) and times[index] < end


def sorted_times(times: array[int]) -> array[int]:
    """A time array sorted (in numpy: no Python int per element)."""
    import numpy as np

    if len(times) < 2:
        return times
    return array("q", np.sort(np.frombuffer(times, dtype=np.int64)).tobytes())


def _times() -> array[int]:
    return array("q")


@dataclass
class SourceLedger:
    """Per person and source, per host: the evidence times (µs in compact arrays, sorted once collected)."""

    by_person: dict[str, dict[str, array[int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(_times)))
    by_host: dict[str, array[int]] = field(default_factory=lambda: defaultdict(_times))
    polled_times: array[int] = field(default_factory=_times)

    def add(self, person: str, source: str, host: str, moment: int, polled: bool) -> None:
        self.by_person[person][source].append(moment)
        self.by_host[host].append(moment)
        if polled:
            self.polled_times.append(moment)

    def settle(self) -> None:
        for sources in self.by_person.values():
            for source, times in sources.items():
                sources[source] = sorted_times(times)
        for host, times in self.by_host.items():
            self.by_host[host] = sorted_times(times)
        self.polled_times = sorted_times(self.polled_times)

    def sources(self, person: str) -> tuple[str, ...]:
        return tuple(sorted(self.by_person.get(person, {})))

    def window_sources(self, keys: Iterable[str], start: int, end: int) -> tuple[tuple[str, int], ...]:
        """Users each source saw in ``[start, end)`` among ``keys`` (the window's users)."""
        counts: dict[str, int] = defaultdict(int)
        for key in keys:
            for source, times in self.by_person.get(key, {}).items():
                if any_between(times, start, end):
                    counts[source] += 1
        return tuple(sorted(counts.items()))

    def hosts_between(self, start: int, end: int) -> list[str]:
        return sorted(h for h, times in self.by_host.items() if any_between(times, start, end))

    def snapshot_bound(self, cover: HostCover, start: int, end: int) -> bool:
        """Whether polls reach into ``[start, end)`` while some host with evidence there (or with logs) has no
        log covering all of it: the count then rests on snapshots, a lower bound."""
        polls_reach = any(covered(iv, start, end) for iv in cover.polled.values()) or \
            any_between(self.polled_times, start, end)
        if not polls_reach:
            return False
        hosts = (set(self.hosts_between(start, end)) | {h for h, iv in cover.logs.items() if iv}) - cover.poll_only
        return not hosts or any(covered(cover.logs.get(h, ()), start, end) < end - start for h in hosts)


def required_hosts(cover: HostCover, bound: bool) -> dict[str, Intervals]:
    """The hosts whose coverage decides a window's status: all of them, except -- where the logs alone cover the
    window (not snapshot-bound) -- the poll-only sources, whose missed polls then cost nothing."""
    if bound:
        return cover.all
    return {h: iv for h, iv in cover.all.items() if h not in cover.poll_only} or cover.all
