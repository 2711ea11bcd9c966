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
from typing import TYPE_CHECKING

from evtrack.coverage import merge_arrays

if TYPE_CHECKING:
    import numpy as np

DAY_US = 86_400_000_000


@dataclass(frozen=True, slots=True)
class Peak:
    count: int
    """The most people active at one instant of the range (0 when none)."""
    moment: int | None
    """The first instant (µs) at which that count is reached, None when it is 0."""


def _sweep(starts: np.ndarray, ends: np.ndarray, lo: int, hi: int) -> Peak:
    """The most of the half-open intervals ``[start, end)`` (int64 arrays; one person's never overlap) that hold one
    instant of ``[lo, hi)``, and the first such instant: a sweep over their ends, in numpy."""
    import numpy as np

    starts, ends = np.maximum(starts, lo), np.minimum(ends, hi)
    inside = ends > starts
    moments = np.concatenate((starts[inside], ends[inside]))
    if not len(moments):
        return Peak(0, None)
    count = int(inside.sum())
    deltas = np.concatenate((np.ones(count, dtype=np.int64), np.full(count, -1, dtype=np.int64)))
    order = np.lexsort((deltas, moments))  # at one instant, ends (-1) come before starts (+1): half-open intervals
    active = np.cumsum(deltas[order])
    first_best = int(np.argmax(active))  # the first position of the maximum
    return Peak(int(active[first_best]), int(moments[order][first_best]))


def _held(starts: np.ndarray, ends: np.ndarray, person: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each person's half-open intervals ``[start, end)`` merged where they overlap or touch: as the closed
    intervals of whole microseconds ``[start, end - 1]`` they are (merged as ``[start, end]``, two intervals one
    microsecond apart would become one, and a person active where they are not)."""
    merged, last, _ = merge_arrays(starts, ends - 1, person)
    return merged, last + 1


def _flat(per_person: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Every person's values as one int64 array, and the person (index) of each."""
    import numpy as np

    counts = [len(values) for values in per_person]
    if not sum(counts):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    values = np.concatenate([np.asarray(values, dtype=np.int64) for values in per_person if len(values)])
    return values, np.repeat(np.arange(len(counts), dtype=np.int64), counts)


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
    """The exact peak of the licence-server view over ``[lo, hi)``: each person's times ``t`` held over
    ``[t, t + validity)``, merged where they overlap or touch (:func:`_held`)."""
    times, person = _flat(list(per_person))
    return _sweep(*_held(times, times + validity, person), lo, hi)


def sliding_peak(per_person: Iterable[tuple[Sequence[int], Sequence[tuple[int, int]]]], lo: int, hi: int,
                 days: int) -> Peak:
    """The most distinct people with a time, or a connected session ``[a, b)``, in one ``[s, s + days)`` inside
    ``[lo, hi)``; ``moment`` is the first such start ``s``. A range shorter than ``days`` has one window, the range
    itself. Evidence at ``t`` counts for the starts ``[t - days + 1 µs, t + 1 µs)``, a session for
    ``[max(a, lo) - days + 1 µs, min(b, hi))``; each person's starts are merged where they overlap or touch
    (:func:`_held`)."""
    import itertools

    import numpy as np

    length = days * DAY_US
    last_start = max(lo, hi - length)
    people = list(per_person)
    times, time_person = _flat([times for times, _ in people])
    inside = (times >= lo) & (times < hi)
    times, time_person = times[inside], time_person[inside]
    bounds, session_person = _flat([list(itertools.chain.from_iterable(sessions)) for _, sessions in people])
    first, last, session_person = bounds[0::2], bounds[1::2], session_person[0::2]
    inside = (first < hi) & (last > lo)
    first, last, session_person = first[inside], last[inside], session_person[inside]
    starts, ends = _held(np.concatenate((times - length + 1, np.maximum(first, lo) - length + 1)),
                         np.concatenate((times + 1, np.minimum(last, hi))),
                         np.concatenate((time_person, session_person)))
    return _sweep(starts, ends, lo, last_start + 1)
