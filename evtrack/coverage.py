"""What the logs cover: per host and channel the span of time, record-id gaps and log clears.

Coverage is built from *every* record read (noise included), not only from the logon rows: a Security log full
of 4688 events still proves the host was logging that day. A window the spans do not reach is "unknown".
"""

from __future__ import annotations

import copy
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from evtrack.catalogue import CLEARED_EVENTS, COVERED_CHANNELS, KDC_EVENTS, POLLED_CHANNELS, SECURITY, Role, lookup
from evtrack.sources.base import MIN_PLAUSIBLE_US, RawBatch, RawEvent, plausible_time

if TYPE_CHECKING:
    import numpy as np


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
    misdated: tuple[Misdated, ...] = ()
    """Records whose time contradicts their neighbours (see :func:`misdated`): left out of the span, placed
    between their neighbours."""
    kdc: bool = False
    """The log holds Kerberos KDC events (Security 4768/4769): the host is a domain controller."""
    unconfirmed: tuple[tuple[int, int], ...] = ()
    """Time an Azure Monitor coverage export states for this log that no evidence export of the log reaches (one
    left out?): not covered, and a window it touches is judged (see :data:`REACH_MARGIN_US`)."""

    @property
    def missing_records(self) -> int:
        return sum(gap.missing for gap in self.gaps)


#: Where a builder keeps what an Azure Monitor export states, beside the logs and never in its spans: the hours a
#: coverage export says a host's log reached the workspace (``stated:`` + log), and the time the evidence exports
#: of each log reach (``reach:`` + log, no host).
STATED_PREFIX = "stated:"
REACH_PREFIX = "reach:"
#: Stated hours count as covered only this close to a row of an evidence export of the same log. A coverage export
#: says the workspace received the log, not that an evidence export holds that time: one left out (or exported for
#: another range) read as months of 0 users. A week either side, so quiet nights, weekends and holidays stay covered;
#: an export missing for longer leaves the time unconfirmed (:attr:`ChannelSpan.unconfirmed`: partial or unknown).
REACH_MARGIN_US = 7 * 86_400_000_000


def log_of(channel: str) -> str:
    """The log a builder key names (``stated:Security`` and ``reach:Security`` name ``Security``)."""
    return channel.removeprefix(STATED_PREFIX).removeprefix(REACH_PREFIX)


@dataclass(slots=True)
class _Acc:
    """One host and channel: this file's records in file order (split into segments where records were lost),
    plus what was merged in from other files."""

    ids: array[int] = field(default_factory=lambda: array("q"))
    """This file's EventRecordIDs in file order (``NO_ID`` where a record has none); plausible times only."""
    times: array[int] = field(default_factory=lambda: array("q"))
    breaks: list[int] = field(default_factory=list)
    """Indexes into ``ids``/``times`` where a new segment starts (records were lost just before)."""
    epoch: int = 0
    """The builder's break count when this channel last got a record: a later break starts a new segment."""
    first_epoch: int = 0
    """The builder's break count when this channel got its first record."""
    untimed_ids: int = 0
    merged_ids: array[int] = field(default_factory=lambda: array("q"))
    merged_times: array[int] = field(default_factory=lambda: array("q"))
    merged_no_id_times: set[int] = field(default_factory=set)
    merged_intervals: list[tuple[int, int]] = field(default_factory=list)
    merged_misdated: list[Misdated] = field(default_factory=list)
    merged_edges: list[tuple[int, int, int, int]] = field(default_factory=list)
    """Each merged file's (first id, time, last id, time): where adjacent exports of one log join."""
    unconfirmed: list[tuple[int, int]] = field(default_factory=list)
    """Stated time no evidence export reaches (:meth:`CoverageBuilder._confirmed`)."""

    def start(self, epoch: int) -> None:
        """About to add records while the builder is at ``epoch``: open a new segment if records were lost."""
        if not self.ids:
            self.first_epoch = epoch
        elif epoch != self.epoch and (not self.breaks or self.breaks[-1] != len(self.ids)):
            self.breaks.append(len(self.ids))
        self.epoch = epoch

    def segments(self) -> list[tuple[Any, Any, Any, Any]]:
        """This file's (ids, placed times, misdated mask, times) per segment as numpy arrays, in record order
        (by EventRecordID; file order where a record has none): an export written newest first
        (``wevtutil qe /rd:true``) reads as the log was written. Misdated records keep their id but take the time
        their neighbours give them (:func:`place_misdated`)."""
        import numpy as np

        ids = np.frombuffer(self.ids, dtype=np.int64) if self.ids else np.zeros(0, dtype=np.int64)
        times = np.frombuffer(self.times, dtype=np.int64) if self.times else np.zeros(0, dtype=np.int64)
        bounds = [0, *self.breaks, len(ids)]
        result = []
        for lo, hi in pairwise(bounds):
            if hi <= lo:
                continue
            seg_ids, seg_times = ids[lo:hi], times[lo:hi]
            if (seg_ids != NO_ID).all() and (np.diff(seg_ids) < 0).any():
                order = np.argsort(seg_ids, kind="stable")
                seg_ids, seg_times = seg_ids[order], seg_times[order]
            mask = misdated(seg_times)
            result.append((seg_ids, place_misdated(seg_times, mask), mask, seg_times))
        return result

    def kept(self) -> tuple[Any, Any, list[tuple[int, int]], list[Misdated]]:
        """This file's (ids, times) over all segments with misdated times replaced by their placed times, each
        segment's envelope, and the misdated records."""
        import numpy as np

        parts = self.segments()
        if not parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), [], []
        ids = np.concatenate([i for i, _, _, _ in parts])
        times = np.concatenate([t for _, t, _, _ in parts])
        envelopes = [(int(t.min()), int(t.max())) for _, t, _, _ in parts if len(t)]
        raw = np.concatenate([r for _, _, _, r in parts])
        mask = np.concatenate([m for _, _, m, _ in parts])
        wrong = [Misdated(int(ids[i]), int(raw[i]), int(times[i])) for i in np.nonzero(mask)[0]]
        return ids, times, envelopes, wrong


def _edge(ids: Any, times: Any) -> tuple[int, int, int, int] | None:
    """A file's (first id, its time, last id, its time), by record id (placed times): where it may join an
    adjacent export (:func:`bridges`)."""
    real = ids != NO_ID
    if not real.any():
        return None
    ids, times = ids[real], times[real]
    first, last = int(ids.argmin()), int(ids.argmax())
    return int(ids[first]), int(times[first]), int(ids[last]), int(times[last])


@dataclass(frozen=True, slots=True, order=True)
class Misdated:
    """A record whose time contradicts its neighbours in record order (a clock that was wrong for a while): the
    time it carries, and the time its neighbours place it at. It never stretches what a log covers."""

    record_id: int
    """The EventRecordID (``NO_ID`` when the record has none)."""
    time_us: int
    """The time the record carries."""
    placed_us: int
    """Where its neighbours in record order put it (between the last good record before and the first after)."""


_DAY_US = 86_400_000_000
_PENDING = 4096


def misdated(times: Any) -> Any:
    """A boolean mask of records (in record order) whose time contradicts their neighbours': a clock that was wrong
    for one record or for a while (a boot before time sync, a host a year off for half an hour).

    - one record whose time jumps away from both neighbours by more than a day and by more than ten times the
      neighbours' own distance;
    - a run of records between a jump of more than a day and a jump back (the opposite way), where the records
      just before and just after the run agree with each other (the later one is not more than a day earlier) and
      every record of the run lies more than a day outside them;
    - the first record when it is more than a day *later* than the next one (and the next two agree), the last
      when it is more than a day *earlier* than the one before: record order says they cannot be;
    - every record more than a day earlier than the log's first good record (a clock set back to before the log
      began, for good): it would claim time the log never saw.
    A sparse log (records days apart, in order) has no outliers; real gaps (a host switched off for days) and a
    clock set back for good within the time the log already covers are kept."""
    import numpy as np

    n = len(times)
    mask = np.zeros(n, dtype=bool)
    if n < 3:
        return mask
    step = np.diff(times)
    jump = np.abs(step)
    span = np.abs(times[2:] - times[:-2])
    limit = np.maximum(_DAY_US, 10 * span)
    mask[1:-1] = (jump[:-1] > limit) & (jump[1:] > limit)
    mask[0] = step[0] < -max(_DAY_US, 10 * int(jump[1]))
    mask[-1] = step[-1] < -max(_DAY_US, 10 * int(jump[-2]))
    big = np.nonzero(jump > _DAY_US)[0]
    for a, b in pairwise(big.tolist()):
        if (step[a] > 0) == (step[b] > 0):
            continue
        before, after = int(times[a]), int(times[b + 1])
        if after < before - _DAY_US:
            continue
        run = times[a + 1:b + 1]
        if int(run.max()) < before - _DAY_US or int(run.min()) > after + _DAY_US:
            mask[a + 1:b + 1] = True
    good = np.nonzero(~mask)[0]
    if len(good):  # a clock set back to before the log began (and never forward again): record order forbids it
        first = int(good[0])
        mask[first + 1:] |= times[first + 1:] < int(times[first]) - _DAY_US
    return mask


def place_misdated(times: Any, mask: Any) -> Any:
    """``times`` with each misdated record moved between the good records around it (in record order), spread
    evenly over a run; before the first good record it takes that one's time, after the last the last's."""
    import numpy as np

    if not mask.any():
        return times
    good = np.nonzero(~mask)[0]
    placed = times.copy()
    if not len(good):
        return placed
    bad = np.nonzero(mask)[0]
    after = np.searchsorted(good, bad)
    for index, position in zip(bad.tolist(), after.tolist(), strict=True):
        if position == 0:
            placed[index] = times[good[0]]
        elif position == len(good):
            placed[index] = times[good[-1]]
        else:
            lo, hi = int(good[position - 1]), int(good[position])
            t_lo, t_hi = int(times[lo]), max(int(times[hi]), int(times[lo]))
            placed[index] = t_lo + (t_hi - t_lo) * (index - lo) // (hi - lo)
    return placed



#: Security events only a Kerberos KDC (a domain controller) writes: a hint that a host is no session host.
KDC_EVENT_IDS = frozenset(event_id for channel, event_id in KDC_EVENTS if channel == SECURITY)
_CLEARED_IDS = frozenset(event_id for _, event_id in CLEARED_EVENTS)

#: The record id stored for a record without one (EventRecordIDs are never negative: readers check).
NO_ID = -1

#: Gaps this small are left out: exports filtered by XPath or merged logs skip ids on purpose. One record of
#: slack is not worth an alarm; a real roll-over or clear loses far more.
MIN_GAP = 1


class CoverageBuilder:
    """Accumulates coverage while records stream past, in file order; merge builders of several files.

    Nothing is decided while reading: clock outliers and segment envelopes are worked out from the whole record
    sequence when the coverage is read (:meth:`spans`, :meth:`export`, :meth:`merge`), so the result does not
    depend on how the records were batched, nor on how a file was split across workers
    (:meth:`continue_with`)."""

    def __init__(self) -> None:
        import time

        self._now_us = time.time_ns() // 1000
        self._acc: dict[tuple[str, str], _Acc] = {}
        self._cleared: dict[tuple[str, str], set[int]] = {}
        self._kdc: set[tuple[str, str]] = set()
        self._epoch = 0

    def _channel(self, computer: str, channel: str) -> _Acc | None:
        if log_of(channel).lower() not in COVERED_CHANNELS:
            return None
        key = (computer, channel)
        acc = self._acc.get(key)
        if acc is None:
            acc = self._acc[key] = _Acc()
        acc.start(self._epoch)
        return acc

    def add(self, event: RawEvent) -> None:
        acc = self._channel(event.computer, event.channel)
        if acc is None:
            return
        if not plausible_time(event.time_us, self._now_us):
            acc.untimed_ids += 1  # missing or impossible time: counted, never stretches the span
            return
        assert event.time_us is not None
        if event.event_id in KDC_EVENT_IDS:  # an int test first: this runs for every record
            self.note_kdc(event.computer, event.channel)
        acc.ids.append(NO_ID if event.record_id is None else event.record_id)
        acc.times.append(event.time_us)
        self.note_clear(event)

    def add_block(self, computer: str, channel: str, ids: Any, times: Any, untimed: int = 0) -> None:
        """Add many records of one host and channel at once, in file order: ``ids`` and ``times`` are
        equal-length int64 numpy arrays (µs), without nulls; implausible times are dropped here and counted like
        missing ones."""
        acc = self._channel(computer, channel)
        if acc is None:
            return
        import numpy as np

        ok = (times >= MIN_PLAUSIBLE_US) & (times <= self._now_us + 86_400_000_000)
        acc.untimed_ids += untimed + int(len(ok) - int(ok.sum()))
        acc.ids.frombytes(np.ascontiguousarray(ids[ok], dtype=np.int64).tobytes())
        acc.times.frombytes(np.ascontiguousarray(times[ok], dtype=np.int64).tobytes())

    def add_interval(self, computer: str, channel: str, start_us: int, end_us: int, *,
                     needs_evidence: bool = True) -> None:
        """Time an input states it covers (an hourly count of a workspace's events), without a record each: kept
        apart, and covered only where an evidence export of the same log reaches (:meth:`add_reach`); at once when
        it ``needs_evidence`` not (an hour the count says held no row: no export can lack one)."""
        acc = self._channel(computer, STATED_PREFIX + channel if needs_evidence else channel)
        if acc is not None and end_us > start_us:
            acc.merged_intervals.append((start_us, end_us - 1))  # closed; back-to-back hours merge

    def add_reach(self, channel: str, first_us: int, last_us: int) -> None:
        """An evidence export holds rows of ``channel`` from ``first_us`` to ``last_us`` (any host)."""
        acc = self._channel("", REACH_PREFIX + channel)
        if acc is not None and last_us >= first_us:
            acc.merged_intervals.append((first_us, last_us))

    def note_kdc(self, computer: str, channel: str) -> None:
        """This host's log holds a Kerberos KDC event (4768/4769 in Security)."""
        if channel.lower() == SECURITY:
            self._kdc.add((computer, channel))

    def note_clear(self, event: RawEvent) -> None:
        """Record a log-cleared event (Security 1102, or System 104 naming the log it cleared)."""
        if event.time_us is None or event.event_id not in _CLEARED_IDS:  # an int test first: every record comes here
            return
        key = (event.computer, event.channel)
        definition = lookup(event.channel, event.event_id)
        if definition is None or definition.role is not Role.CLEARED:
            return
        if definition.fields.detail:  # System 104 names the log it cleared
            cleared = event.data.get(definition.fields.detail)
            if cleared:
                self._cleared.setdefault((event.computer, cleared), set()).add(event.time_us)
        else:
            self._cleared.setdefault(key, set()).add(event.time_us)

    def note_clears(self, batch: RawBatch) -> None:
        """:meth:`note_clear` of each record of ``batch`` (found by event id first: few records are)."""
        import numpy as np

        hits = np.flatnonzero(np.isin(batch.event_id.to_numpy(zero_copy_only=False), list(_CLEARED_IDS)))
        if len(hits):
            for event in batch.take(hits.tolist()).events():
                self.note_clear(event)

    def break_segments(self) -> None:
        """Records were lost here (a skipped chunk or record): what comes next starts a new covered segment, so the
        time the lost records spanned is a hole, never covered by assumption."""
        self._epoch += 1

    def continue_with(self, other: CoverageBuilder) -> None:
        """Append ``other``, which read the records right after ours in the same file (the next chunk range): the
        result is what one builder reading both in order would hold."""
        for key, theirs in other._acc.items():
            mine = self._acc.get(key)
            if mine is None:
                mine = self._acc[key] = _Acc()
            if theirs.ids:
                mine.start(self._epoch + theirs.first_epoch)
                base = len(mine.ids)
                mine.ids.extend(theirs.ids)
                mine.times.extend(theirs.times)
                mine.breaks.extend(base + b for b in theirs.breaks)
                mine.epoch = self._epoch + theirs.epoch
            mine.untimed_ids += theirs.untimed_ids
            mine.merged_ids.extend(theirs.merged_ids)
            mine.merged_times.extend(theirs.merged_times)
            mine.merged_no_id_times |= theirs.merged_no_id_times
            mine.merged_intervals.extend(theirs.merged_intervals)
            mine.merged_misdated.extend(theirs.merged_misdated)
            mine.merged_edges.extend(theirs.merged_edges)
        self._epoch += other._epoch
        self._kdc |= other._kdc
        for key, times in other._cleared.items():
            self._cleared.setdefault(key, set()).update(times)

    def merge(self, other: CoverageBuilder) -> None:
        """Add another file's builder: each of its segments becomes a covered interval, its records count once."""
        import numpy as np

        for key, theirs in other._acc.items():
            mine = self._acc.setdefault(key, _Acc())
            ids, times, envelopes, wrong = theirs.kept()
            real = ids != NO_ID
            mine.merged_ids.frombytes(np.ascontiguousarray(ids[real]).tobytes())
            mine.merged_times.frombytes(np.ascontiguousarray(times[real]).tobytes())
            mine.merged_no_id_times.update(times[~real].tolist())
            mine.merged_intervals.extend(envelopes)
            mine.untimed_ids += theirs.untimed_ids
            mine.merged_misdated.extend(wrong)
            edge = _edge(ids, times)
            if edge is not None:
                mine.merged_edges.append(edge)
            mine.merged_edges.extend(theirs.merged_edges)
            mine.merged_ids.extend(theirs.merged_ids)
            mine.merged_times.extend(theirs.merged_times)
            mine.merged_no_id_times |= theirs.merged_no_id_times
            mine.merged_intervals.extend(theirs.merged_intervals)
            mine.merged_misdated.extend(theirs.merged_misdated)
        self._kdc |= other._kdc
        for key, times in other._cleared.items():
            self._cleared.setdefault(key, set()).update(times)

    def _records(self, acc: _Acc) -> tuple[Any, Any, list[int], list[int], list[tuple[int, int]], list[Misdated],
                                           list[tuple[int, int, int, int]]]:
        """(distinct ids, the latest time of each, all times, times of records without an id, intervals, the
        misdated records, each file's edge)."""
        import numpy as np

        ids, times, envelopes, wrong = acc.kept()
        real = ids != NO_ID
        all_ids = np.concatenate([ids[real], np.frombuffer(acc.merged_ids, dtype=np.int64)]) \
            if acc.merged_ids else ids[real]
        all_times = np.concatenate([times[real], np.frombuffer(acc.merged_times, dtype=np.int64)]) \
            if acc.merged_times else times[real]
        order = np.lexsort((all_times, all_ids))  # by id, then time: the last of each id has its latest time
        all_ids, all_times = all_ids[order], all_times[order]
        last = np.ones(len(all_ids), dtype=bool)
        last[:-1] = all_ids[1:] != all_ids[:-1]
        no_id = sorted(set(times[~real].tolist()) | acc.merged_no_id_times)
        bounds = [*no_id[:1], *no_id[-1:], *(t for interval in acc.merged_intervals for t in interval),
                  *(t for interval in acc.unconfirmed for t in interval)]
        if len(all_times):
            bounds += [int(all_times.min()), int(all_times.max())]
        edge = _edge(ids, times)
        return (all_ids[last], all_times[last], bounds, no_id, [*envelopes, *acc.merged_intervals],
                sorted({*wrong, *acc.merged_misdated}), [*([edge] if edge else []), *acc.merged_edges])

    def _confirmed(self) -> dict[tuple[str, str], _Acc]:
        """The channels, with each host's stated hours of a log added to that log's where an evidence export of
        the log reaches them (:data:`REACH_MARGIN_US`); the stated hours and the reaches themselves left out."""
        reach: dict[str, list[tuple[int, int]]] = {}
        for (_, channel), acc in self._acc.items():
            if channel.startswith(REACH_PREFIX):
                reach.setdefault(log_of(channel).lower(), []).extend(
                    (first - REACH_MARGIN_US, last + REACH_MARGIN_US) for first, last in acc.merged_intervals)
        result = {key: acc for key, acc in self._acc.items() if log_of(key[1]) == key[1]}
        for (host, channel), acc in self._acc.items():
            if not channel.startswith(STATED_PREFIX):
                continue
            name = log_of(channel)
            stated = merge_intervals(acc.merged_intervals)
            if not stated:
                continue
            kept = clip_intervals(stated, merge_intervals(reach.get(name.lower(), ())))
            mine = result.get((host, name))
            confirmed = copy.copy(mine) if mine is not None else _Acc()
            confirmed.merged_intervals = [*confirmed.merged_intervals, *kept]
            confirmed.unconfirmed = [*confirmed.unconfirmed, *_less(stated, kept)]
            result[(host, name)] = confirmed
        return result

    def spans(self) -> list[ChannelSpan]:
        """The merged spans, sorted by host and channel; duplicate records (overlapping exports) count once."""
        import numpy as np

        result = []
        for (host, channel), acc in sorted(self._confirmed().items()):
            ids, latest, bounds, no_id, intervals, wrong, edges = self._records(acc)
            if not bounds:
                continue
            gaps: list[Gap] = []
            if len(ids) > 1:
                holes = np.nonzero(np.diff(ids) - 1 >= MIN_GAP)[0]
                gaps = [Gap(int(ids[i]), int(ids[i + 1]), int(latest[i]), int(latest[i + 1])) for i in holes]
            result.append(
                ChannelSpan(
                    host=host,
                    channel=channel,
                    first_us=min(bounds),
                    last_us=max(bounds),
                    records=len(ids) + len(no_id),
                    first_record_id=int(ids[0]) if len(ids) else None,
                    last_record_id=int(ids[-1]) if len(ids) else None,
                    gaps=tuple(gaps),
                    cleared_us=tuple(sorted(self._cleared.get((host, channel), ()))),
                    intervals=(poll_intervals(no_id) if channel.lower() in POLLED_CHANNELS
                               else merge_intervals([*intervals, *bridges(edges)])),
                    misdated=tuple(wrong),
                    kdc=(host, channel) in self._kdc,
                    unconfirmed=merge_intervals(acc.unconfirmed),
                )
            )
        return result

    def export(self) -> list[ChannelRecords]:
        """What the store keeps of each host and channel (see :meth:`from_records`)."""
        channels = []
        for (host, channel), acc in sorted(self._acc.items()):
            ids, times, envelopes, wrong = acc.kept()
            real = ids != NO_ID
            pairs = set(zip(ids[real].tolist(), times[real].tolist(), strict=True))
            pairs.update(zip(acc.merged_ids, acc.merged_times, strict=True))
            segments = tuple([*envelopes, *acc.merged_intervals])
            channels.append(ChannelRecords(
                host, channel, sorted(pairs), sorted(set(times[~real].tolist()) | acc.merged_no_id_times),
                acc.untimed_ids,
                (min(a for a, _ in segments), max(b for _, b in segments)) if segments else None,
                segments, tuple(sorted({*wrong, *acc.merged_misdated})), (host, channel) in self._kdc,
            ))
        return channels

    def clears(self) -> list[tuple[str, str, int]]:
        return sorted((host, channel, t) for (host, channel), times in self._cleared.items() for t in times)

    @classmethod
    def from_records(cls, channels: Iterable[ChannelRecords], clears: Iterable[tuple[str, str, int]]
                     ) -> CoverageBuilder:
        """A builder holding what :meth:`export` gave, as if merged in from a file already read."""
        builder = cls()
        for item in channels:
            acc = builder._acc[(item.host, item.channel)] = _Acc()
            acc.merged_ids.extend(record_id for record_id, _ in item.pairs)
            acc.merged_times.extend(time for _, time in item.pairs)
            acc.untimed_ids = item.untimed
            acc.merged_no_id_times = set(item.no_id_times)
            if item.segments:
                acc.merged_intervals = list(item.segments)
            elif item.envelope is not None:
                acc.merged_intervals = [item.envelope]
            acc.merged_misdated = list(item.misdated)
            if item.pairs:
                (first_id, first_time), (last_id, last_time) = item.pairs[0], item.pairs[-1]
                acc.merged_edges = [(first_id, first_time, last_id, last_time)]
            if item.kdc:
                builder._kdc.add((item.host, item.channel))
        for host, channel, time in clears:
            builder._cleared.setdefault((host, channel), set()).add(time)
        return builder


@dataclass(frozen=True, slots=True)
class ChannelRecords:
    """One host and channel of one file, as the store keeps it."""

    host: str
    channel: str
    pairs: list[tuple[int, int]]
    """Distinct (record id, time µs), sorted."""
    no_id_times: list[int]
    untimed: int
    envelope: tuple[int, int] | None
    segments: tuple[tuple[int, int], ...] = ()
    """The file's covered segments (one, unless records were lost in between); empty = the envelope."""
    misdated: tuple[Misdated, ...] = ()
    kdc: bool = False


def bridges(edges: Iterable[tuple[int, int, int, int]]) -> list[tuple[int, int]]:
    """Covered time between adjacent exports of one log: where one file's last EventRecordID is N and another's
    first is N + 1, and the second begins no earlier than the first ends, no record was lost between them (one log
    exported as two files leaves no hole). Ids that restart (a re-imaged host, another machine of the same name)
    or times that run backwards join nothing."""
    firsts: dict[int, list[int]] = {}
    for first_id, first_time, _last_id, _last_time in edges:
        firsts.setdefault(first_id, []).append(first_time)
    joined = []
    for _first_id, _first_time, last_id, last_time in edges:
        for then in firsts.get(last_id + 1, ()):
            if then >= last_time:
                joined.append((last_time, then))
    return joined


def clip_intervals(intervals: Iterable[tuple[int, int]], within: Iterable[tuple[int, int]]
                   ) -> tuple[tuple[int, int], ...]:
    """The parts of ``intervals`` (closed, merged, sorted) inside ``within`` (closed, merged, sorted)."""
    result = []
    for first, last in intervals:
        for low, high in within:
            if high < first:
                continue
            if low > last:
                break
            result.append((max(first, low), min(last, high)))
    return tuple(result)


def _less(intervals: Iterable[tuple[int, int]], parts: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """``intervals`` (closed, merged, sorted) less ``parts`` (closed, sorted, each inside one of them)."""
    result = []
    inside = list(parts)
    for first, last in intervals:
        at = first
        for low, high in inside:
            if high < first or low > last:
                continue
            if low > at:
                result.append((at, low - 1))
            at = max(at, high + 1)
        if at <= last:
            result.append((at, last))
    return result


def merge_intervals(intervals: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Union of closed intervals of whole microseconds, sorted; overlapping, touching or adjacent ones (``[a, b]``
    and ``[b + 1, c]``: no microsecond between them) become one."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


def merge_arrays(starts: np.ndarray, ends: np.ndarray, groups: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`merge_intervals` over numpy arrays (int64) of the intervals' starts and ends, within each group
    (``groups``: a non-negative integer per interval, e.g. a person's index; intervals of two groups never merge;
    None: one group). Returns the merged (starts, ends, groups), sorted by group, then start.

    As in :func:`merge_intervals`, an interval joins the run before it when it starts no later than one microsecond
    after the furthest end so far (in its group); a run ends at the furthest end among its own intervals."""
    import numpy as np

    count = len(starts)
    groups = np.zeros(count, dtype=np.int64) if groups is None else groups.astype(np.int64)
    if not count:
        return starts, ends, groups
    order = np.lexsort((ends, starts, groups))
    starts, ends, groups = starts[order], ends[order], groups[order]
    # the furthest end so far in the group: a running maximum of the ends' ranks, each raised by group * count so
    # that no rank of an earlier group can exceed one of a later group
    by_end = np.argsort(ends, kind="stable")
    rank = np.empty(count, dtype=np.int64)
    rank[by_end] = np.arange(count)
    furthest = np.maximum.accumulate(groups * count + rank) - groups * count
    reach = ends[by_end[furthest]]
    first = np.ones(count, dtype=bool)
    first[1:] = (groups[1:] != groups[:-1]) | (starts[1:] > reach[:-1] + 1)
    index = np.flatnonzero(first)
    return starts[index], np.maximum.reduceat(ends, index), groups[index]


def poll_interval(times: Iterable[int]) -> int | None:
    """The usual time between polls (µs): the median gap between consecutive distinct poll times; None with fewer
    than two polls. A median, so missed polls (longer gaps) and an occasional manual poll (shorter) do not move it."""
    import statistics

    ordered = sorted(set(times))
    gaps = [b - a for a, b in pairwise(ordered)]
    return int(statistics.median_low(gaps)) if gaps else None


def poll_intervals(times: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """Covered time of a snapshot stream: consecutive polls no further apart than twice the usual interval
    (:func:`poll_interval`) cover the time between them; a longer gap (missed polls) is a hole. A lone poll covers
    its instant only."""
    ordered = sorted(set(times))
    usual = poll_interval(ordered)
    if usual is None:
        return tuple((t, t) for t in ordered)
    joined = [(a, b) for a, b in pairwise(ordered) if b - a <= 2 * usual]
    return merge_intervals([*joined, *((t, t) for t in ordered)])
