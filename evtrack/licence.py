"""Exact peaks over time: the licence-server view and sliding N-day windows.

Both are "how many people have evidence close enough to a moment", computed exactly with a sweep over the
instants where the answer changes (never sampled once a day):

- the licence-server view: a Per User CAL shows as valid for 60 days after issue and is extended when the user
  signs in (Microsoft's RDS CAL page), so at moment *m* the estimate counts people with a sign-in or reconnect
  in ``(m - 60 days, m]``: each such time *e* keeps its person active over ``[e, e + 60 days)``;
- a sliding window of N days: the most distinct people with evidence in any ``[s, s + N days)``; evidence at
  *e* counts for every start ``s`` in ``(e - N days, e]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from evtrack.coverage import merge_intervals

DAY_US = 86_400_000_000


def merged(times: Iterable[int], before: int, after: int) -> list[tuple[int, int]]:
    """Half-open intervals ``[t - before, t + after)`` for each time, merged where they overlap or touch."""
    return list(merge_intervals((moment - before, moment + after) for moment in times))


@dataclass(frozen=True, slots=True)
class Peak:
    count: int
    """The most people active at one instant of the range (0 when none)."""
    moment: int | None
    """The first instant (µs) at which that count is reached, None when it is 0."""


def peak(per_person: Iterable[Sequence[tuple[int, int]]], lo: int, hi: int) -> Peak:
    """The most people whose (merged, half-open) intervals hold one instant of ``[lo, hi)``, and when first."""
    points: list[tuple[int, int]] = []
    for intervals in per_person:
        for start, end in intervals:
            start, end = max(start, lo), min(end, hi)
            if end > start:
                points.append((start, 1))
                points.append((end, -1))
    points.sort()  # at one instant, ends (-1) come before starts (+1): half-open intervals
    best, when, current = 0, None, 0
    for moment, delta in points:
        current += delta
        if current > best:
            best, when = current, moment
    return Peak(best, when)


def active_at(per_person: Iterable[Sequence[int]], moment: int, validity: int) -> int:
    """People with a time in ``(moment - validity, moment]`` (each list sorted)."""
    import bisect

    count = 0
    for times in per_person:
        index = bisect.bisect_right(times, moment)
        if index and times[index - 1] > moment - validity:
            count += 1
    return count


def licence_peak(per_person: Iterable[Sequence[int]], lo: int, hi: int, validity: int) -> Peak:
    """The exact peak of the licence-server view over ``[lo, hi)``."""
    return peak((merged(times, 0, validity) for times in per_person), lo, hi)


def sliding_peak(per_person: Iterable[tuple[Sequence[int], Sequence[tuple[int, int]]]], lo: int, hi: int,
                 days: int) -> Peak:
    """The most distinct people with a time, or a connected session ``[a, b)``, in one ``[s, s + days)`` inside
    ``[lo, hi)``; ``moment`` is the first such start ``s``. A range shorter than ``days`` has one window, the range
    itself."""
    length = days * DAY_US
    last_start = max(lo, hi - length)
    people = []
    for times, sessions in per_person:
        spans = [(t - length + 1, t + 1) for t in times if lo <= t < hi]
        spans += [(max(a, lo) - length + 1, min(b, hi)) for a, b in sessions if a < hi and b > lo]
        people.append(list(merge_intervals(spans)))
    return peak(people, lo, last_start + 1)
