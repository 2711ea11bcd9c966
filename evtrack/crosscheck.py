"""Several evidence sources side by side: which source saw whom in each window (a cross-check of the logs against
the polls, the gateway and Azure), and where a window's count rests on polls alone (a lower bound).

Polls list the sessions alive at each poll: a session shorter than the poll interval can fall between two polls
and is never seen; an RD Gateway sees only the connections that go through it. A window's count *rests on* them
-- and is a lower bound -- where some known host has no log of its own covering the whole window and polls or a
collector cover it instead. Where every host's logs cover the window, polls and the gateway only cross-check them:
a missed poll then costs nothing.
"""

from __future__ import annotations

import bisect
from array import array
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from evtrack.catalogue import COLLECTOR_CHANNELS, EVIDENCE_CHANNELS, POLLED_CHANNELS, WVD, channel_source
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
    """Covered time per counted host (evidence channels only).

    ``all`` is what a window's status reads: every session host known from any input -- its own logs, its polls,
    the rows that name it, ``--expect-host`` -- covered by its own logs and polls and, for a host that a
    collector's rows name (a Connection Broker's polls, an RD Gateway's log), by that collector while it ran. The
    collectors' own machines count only when no session host is known (polls that never listed a session)."""

    all: dict[str, Intervals]
    logs: dict[str, Intervals]
    """Per host, the time its own logs (not polls, not a collector) cover: where a count needs nothing else."""
    through: dict[str, frozenset[str]]
    """Per host, the polled or collector channels that cover it (what a window's count may rest on)."""


def host_cover(coverage: Sequence[ChannelSpan], hosts: HostNames, selection: HostSelection,
               expected: Sequence[str], evidence_channels: Mapping[str, set[str]]) -> HostCover:
    """Covered time per counted host. ``evidence_channels``: per counted host (key), the channels (lower case) of
    its evidence rows."""
    own: dict[str, list[tuple[int, int]]] = defaultdict(list)
    logs: dict[str, list[tuple[int, int]]] = defaultdict(list)
    polled: dict[str, set[str]] = defaultdict(set)
    collected: dict[str, list[tuple[int, int]]] = defaultdict(list)
    collectors: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for span in coverage:
        key = hosts.key(span.host)
        if not selection.counts(key, hosts.names(key)):
            continue
        channel = span.channel.lower()
        # a span without intervals (from before they were kept) covers its envelope; not one whose time is all
        # stated time no evidence export reaches
        intervals = span.intervals or (() if span.unconfirmed else ((span.first_us, span.last_us),))
        if channel in COLLECTOR_CHANNELS:
            collected[channel].extend(intervals)
            collectors[key].extend(intervals)
            continue
        own[key]  # a host seen in any log is known: without evidence logs it is uncovered
        if channel in EVIDENCE_CHANNELS:
            own[key].extend(intervals)
            if channel in POLLED_CHANNELS:
                polled[key].add(channel)
            else:
                logs[key].extend(intervals)
    for name in expected:
        own[hosts.key(name)]
    through: dict[str, frozenset[str]] = {key: frozenset(channels) for key, channels in polled.items()}
    for key, channels in evidence_channels.items():
        own[key]
        via = {c for c in channels if c in COLLECTOR_CHANNELS}
        for channel in via:
            own[key].extend(collected.get(channel, ()))
        through[key] = through.get(key, frozenset()) | frozenset(via)
    known: Mapping[str, list[tuple[int, int]]] = own
    if not own:  # polls or a gateway that never named a session host: the collectors stand for them
        known = collectors
        through = {key: frozenset(c for c in COLLECTOR_CHANNELS if collected.get(c)) for key in collectors}
    return HostCover(
        all={host: merge_intervals(iv) for host, iv in sorted(known.items())},
        logs={host: merge_intervals(iv) for host, iv in logs.items()},
        through=through,
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
    """Per person and source, the evidence times (µs in compact arrays, sorted once collected); per host, the
    channels of its evidence."""

    by_person: dict[str, dict[str, array[int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(_times)))
    channels: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    """Per host (key), the channels of its evidence rows."""

    def add(self, person: str, source: str, host: str, channel: str, moment: int) -> None:
        self.by_person[person][source].append(moment)
        self.channels[host].add(channel.lower())

    def settle(self) -> None:
        for sources in self.by_person.values():
            for source, times in sources.items():
                sources[source] = sorted_times(times)

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

    def rests_on(self, cover: HostCover, start: int, end: int) -> tuple[str, ...]:
        """The sources that can miss use (polls, a collector) this window's count rests on: for each known host
        whose own logs do not cover all of ``[start, end)``, the polled or collector channels that cover it there.
        Empty: the count needs nothing but logs."""
        rests: set[str] = set()
        for host, intervals in cover.all.items():
            via = cover.through.get(host)
            if not via or covered(intervals, start, end) == 0:
                continue
            if covered(cover.logs.get(host, ()), start, end) < end - start:
                rests |= via
        return tuple(sorted({channel_source(c) for c in rests}))
