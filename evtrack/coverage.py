"""What the logs cover: per host and channel the span of time, record-id gaps and log clears.

Coverage is built from *every* record read (noise included), not only from the logon rows: a Security log full
of 4688 events still proves the host was logging that day. A window the spans do not reach is "unknown".
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from evtrack.sources.base import MIN_PLAUSIBLE_US, RawEvent, plausible_time


@dataclass(frozen=True, slots=True)
class Gap:
    """EventRecordIDs missing between two records of one log (rolled over, filtered or lost)."""

    after_record_id: int
    before_record_id: int
    after_time_us: int | None
    before_time_us: int | None

    @property
    def missing(self) -> int:
        return self.before_record_id - self.after_record_id - 1


@dataclass(frozen=True, slots=True)
class ChannelSpan:
    """The coverage of one channel of one host (as named in ``System/Computer``)."""

    host: str
    channel: str
    first_us: int
    last_us: int
    records: int
    """Distinct records (by EventRecordID, or by time when there is none) seen across all inputs."""
    first_record_id: int | None
    last_record_id: int | None
    gaps: tuple[Gap, ...]
    cleared_us: tuple[int, ...]
    """Times of log-cleared events (1102 in Security, System 104 naming this channel)."""
    intervals: tuple[tuple[int, int], ...] = ()
    """Covered time: each input file's first..last, merged where they overlap or touch. A hole between two
    exports stays a hole, whatever the envelope ``first_us``..``last_us`` says."""

    @property
    def missing_records(self) -> int:
        return sum(gap.missing for gap in self.gaps)


@dataclass(slots=True)
class _Acc:
    ids: array[int] = field(default_factory=lambda: array("q"))
    times: array[int] = field(default_factory=lambda: array("q"))
    untimed_ids: int = 0
    no_id_times: set[int] = field(default_factory=set)
    direct_min: int | None = None
    direct_max: int | None = None
    """The open segment: first..last time of the records added since the last break."""
    intervals: list[tuple[int, int]] = field(default_factory=list)
    """Closed segments: merged-in files' envelopes, and this file's segments before a break (a skipped chunk)."""
    pending_ids: list[int] = field(default_factory=list)
    pending_times: list[int] = field(default_factory=list)

    def close_segment(self) -> None:
        if self.direct_min is not None and self.direct_max is not None:
            self.intervals.append((self.direct_min, self.direct_max))
        self.direct_min = self.direct_max = None

    def envelope(self) -> list[tuple[int, int]]:
        if self.direct_min is None or self.direct_max is None:
            return list(self.intervals)
        return [*self.intervals, (self.direct_min, self.direct_max)]


_DAY_US = 86_400_000_000
_PENDING = 4096


def isolated_outliers(times: Any) -> Any:
    """A boolean mask of records whose time jumps away from both neighbours (in file order) by more than a day
    and by more than ten times the neighbours' own distance: a clock that was wrong for one record (a boot before
    time sync, a damaged record), which must not stretch what the log covers. At the ends, the neighbour and the
    one after it decide. Real gaps (a host switched off for days) and clocks set back for good are kept."""
    import numpy as np

    n = len(times)
    mask = np.zeros(n, dtype=bool)
    if n < 3:
        return mask
    jump = np.abs(np.diff(times))
    span = np.abs(times[2:] - times[:-2])
    limit = np.maximum(_DAY_US, 10 * span)
    mask[1:-1] = (jump[:-1] > limit) & (jump[1:] > limit)
    mask[0] = jump[0] > max(_DAY_US, 10 * jump[1])
    mask[-1] = jump[-1] > max(_DAY_US, 10 * jump[-2])
    return mask


#: The logs whose coverage matters: the evidence channels, RCM (context) and System (log-cleared 104).
COVERED_CHANNELS = frozenset({
    "security", "system", "microsoft-windows-terminalservices-localsessionmanager/operational",
    "microsoft-windows-terminalservices-remoteconnectionmanager/operational",
})

#: Gaps this small are left out: exports filtered by XPath or merged logs skip ids on purpose. One record of
#: slack is not worth an alarm; a real roll-over or clear loses far more.
MIN_GAP = 1


class CoverageBuilder:
    """Accumulates coverage while records stream past; merge builders from several files or workers."""

    def __init__(self) -> None:
        import time

        self._now_us = time.time_ns() // 1000
        self._acc: dict[tuple[str, str], _Acc] = {}
        self._cleared: dict[tuple[str, str], set[int]] = {}

    def add(self, event: RawEvent) -> None:
        if event.channel.lower() not in COVERED_CHANNELS:
            return
        key = (event.computer, event.channel)
        acc = self._acc.get(key)
        if acc is None:
            acc = self._acc[key] = _Acc()
        if not plausible_time(event.time_us, self._now_us):
            acc.untimed_ids += 1  # missing or impossible time: counted, never stretches the span
            return
        assert event.time_us is not None
        if event.record_id is None:
            acc.no_id_times.add(event.time_us)
            if acc.direct_min is None or event.time_us < acc.direct_min:
                acc.direct_min = event.time_us
            if acc.direct_max is None or event.time_us > acc.direct_max:
                acc.direct_max = event.time_us
        else:
            acc.pending_ids.append(event.record_id)
            acc.pending_times.append(event.time_us)
            if len(acc.pending_ids) >= _PENDING:
                self._flush(key, acc)
        self.note_clear(event)

    def _flush(self, key: tuple[str, str], acc: _Acc) -> None:
        if acc.pending_ids:
            import numpy as np

            ids, times = np.array(acc.pending_ids, dtype=np.int64), np.array(acc.pending_times, dtype=np.int64)
            acc.pending_ids, acc.pending_times = [], []
            self.add_block(key[0], key[1], ids, times)

    def finish(self) -> None:
        """Process what is buffered; call before reading the builder's state (spans, merge, a store)."""
        for key, acc in self._acc.items():
            self._flush(key, acc)

    def break_segments(self) -> None:
        """Records were lost here (a skipped chunk or record): what comes next starts a new covered segment, so the
        time the lost records spanned is a hole, never covered by assumption."""
        self.finish()
        for acc in self._acc.values():
            acc.close_segment()

    def add_block(self, computer: str, channel: str, ids: Any, times: Any, untimed: int = 0) -> None:
        """Add many records of one host and channel at once: ``ids`` and ``times`` are equal-length int64 numpy
        arrays (µs), already without nulls; implausible times are dropped here and counted like missing ones."""
        if channel.lower() not in COVERED_CHANNELS:
            return
        import numpy as np

        key = (computer, channel)
        acc = self._acc.get(key)
        if acc is None:
            acc = self._acc[key] = _Acc()
        ok = (times >= MIN_PLAUSIBLE_US) & (times <= self._now_us + 86_400_000_000)
        ids, times = ids[ok], times[ok]
        keep = ~isolated_outliers(times)
        ids, times = ids[keep], times[keep]
        acc.untimed_ids += untimed + int(len(ok) - len(times))
        if not len(times):
            return
        low, high = int(times.min()), int(times.max())
        acc.direct_min = low if acc.direct_min is None else min(acc.direct_min, low)
        acc.direct_max = high if acc.direct_max is None else max(acc.direct_max, high)
        acc.ids.frombytes(np.ascontiguousarray(ids, dtype=np.int64).tobytes())
        acc.times.frombytes(np.ascontiguousarray(times, dtype=np.int64).tobytes())

    def note_clear(self, event: RawEvent) -> None:
        """Record a log-cleared event (Security 1102, or System 104 naming the log it cleared)."""
        if event.time_us is None:
            return
        key = (event.computer, event.channel)
        if event.event_id == 1102 and event.channel.lower() == "security":
            self._cleared.setdefault(key, set()).add(event.time_us)
        elif event.event_id == 104 and event.channel.lower() == "system":
            cleared = event.data.get("Channel")
            if cleared:
                self._cleared.setdefault((event.computer, cleared), set()).add(event.time_us)

    def merge(self, other: CoverageBuilder) -> None:
        """Add another builder's records; its records' time envelope per channel becomes one covered interval."""
        other.finish()
        self.finish()
        for key, acc in other._acc.items():
            mine = self._acc.setdefault(key, _Acc())
            mine.intervals.extend(acc.envelope())
            mine.ids.extend(acc.ids)
            mine.times.extend(acc.times)
            mine.untimed_ids += acc.untimed_ids
            mine.no_id_times |= acc.no_id_times
        for key, times in other._cleared.items():
            self._cleared.setdefault(key, set()).update(times)

    def spans(self) -> list[ChannelSpan]:
        """The merged spans, sorted by host and channel; duplicate records (overlapping exports) count once."""
        self.finish()
        result = []
        for (host, channel), acc in sorted(self._acc.items()):
            pairs = sorted(set(zip(acc.ids, acc.times, strict=True)))
            times = [t for _, t in pairs] + sorted(acc.no_id_times)
            if not times:
                continue
            unique_ids = sorted({record_id for record_id, _ in pairs})
            id_time = dict(pairs)
            gaps = []
            for before, after in pairwise(unique_ids):
                if after - before - 1 >= MIN_GAP:
                    gaps.append(Gap(before, after, id_time.get(before), id_time.get(after)))
            result.append(
                ChannelSpan(
                    host=host,
                    channel=channel,
                    first_us=min(times),
                    last_us=max(times),
                    records=len(unique_ids) + len(acc.no_id_times),
                    first_record_id=unique_ids[0] if unique_ids else None,
                    last_record_id=unique_ids[-1] if unique_ids else None,
                    gaps=tuple(gaps),
                    cleared_us=tuple(sorted(self._cleared.get((host, channel), ()))),
                    intervals=merge_intervals(acc.envelope()),
                )
            )
        return result


def merge_intervals(intervals: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Union of closed intervals, sorted; overlapping or touching ones become one."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)
