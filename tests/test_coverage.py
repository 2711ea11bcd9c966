"""Coverage is never assumed: lost chunks leave holes, one wrong clock does not stretch a log over years."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evtrack.coverage import CoverageBuilder, bridges, merge_arrays, merge_intervals, misdated, place_misdated
from evtrack.pipeline import run_report
from evtrack.sources.base import RawEvent
from evtrack.usage import ReportSettings

from .factories import us

DAY = 86_400_000_000
CREATED = datetime(2024, 12, 1, tzinfo=timezone.utc)


def test_misdated_single_records_and_edges() -> None:
    base = us(datetime(2024, 3, 1, tzinfo=timezone.utc))
    times = np.array([base, base + 10, base - 1800 * DAY, base + 20, base + 30, base + 400 * DAY], dtype=np.int64)
    # the last record is 400 days later, but later is what record order says: a sparse edge, not an outlier
    assert misdated(times).tolist() == [False, False, True, False, False, False]
    steady = np.array([base, base + 3 * DAY, base + 6 * DAY], dtype=np.int64)  # a host off for days: real gaps
    assert not misdated(steady).any()
    hour = DAY // 24
    back = np.array([base + i * hour for i in range(97)] + [base + 2 * DAY + i * hour for i in range(97)],
                    dtype=np.int64)
    assert not misdated(back).any()  # a clock set back two days for good, within the time the log already covers
    before = np.array([base + 4 * DAY, base + 4 * DAY + 1, base, base + 1], dtype=np.int64)  # set back before start
    assert misdated(before).tolist() == [False, False, True, True]
    first_late = np.array([base + 30 * DAY, base, base + 10, base + 20], dtype=np.int64)  # first after its next
    assert misdated(first_late).tolist() == [True, False, False, False]
    last_early = np.array([base, base + 10, base + 20, base - 30 * DAY], dtype=np.int64)
    assert misdated(last_early).tolist() == [False, False, False, True]


def test_sparse_edges_are_not_outliers() -> None:
    """Issue 13 case 7: the first and last record of a sparse log, more than a day from the next two."""
    base = us(datetime(2024, 1, 3, tzinfo=timezone.utc))
    times = np.array([base, base + 20 * DAY, base + 20 * DAY + 60, base + 20 * DAY + 120, base + 70 * DAY],
                     dtype=np.int64)
    assert not misdated(times).any()


def test_a_burst_of_misdated_records_is_found_and_placed() -> None:
    """Issue 13 case 2: a clock a year off for 30 minutes in the middle of a log."""
    base = us(datetime(2024, 2, 10, 9, tzinfo=timezone.utc))
    minute = 60_000_000
    year = 366 * DAY
    good = [base + i * minute for i in range(10)]
    burst = [base + 10 * minute - year + i * minute for i in range(3)]
    after = [base + 40 * minute + i * minute for i in range(5)]
    times = np.array(good + burst + after, dtype=np.int64)
    mask = misdated(times)
    assert mask.tolist() == [False] * 10 + [True] * 3 + [False] * 5
    placed = place_misdated(times, mask)
    assert all(good[-1] < p < after[0] for p in placed[10:13].tolist())
    assert placed[:10].tolist() == good and placed[13:].tolist() == after
    # a burst into the future, and a long one, are found the same way
    future = np.array(good + [t + 2 * year for t in burst] + after, dtype=np.int64)
    assert misdated(future).tolist() == mask.tolist()


def test_a_real_gap_is_not_a_burst_but_a_run_ahead_of_both_neighbours_is() -> None:
    base = us(datetime(2024, 2, 10, tzinfo=timezone.utc))
    gap = np.array([base, base + 1, base + 5 * DAY, base + 5 * DAY + 1, base + 9 * DAY, base + 9 * DAY + 1],
                   dtype=np.int64)  # a host off twice: in order, so nothing is misdated
    assert not misdated(gap).any()
    # days 5 lie after day 2, which record order puts after them: the clock was ahead, then corrected
    ahead = np.array([base, base + 1, base + 5 * DAY, base + 5 * DAY + 1, base + 2 * DAY, base + 2 * DAY + 1],
                     dtype=np.int64)
    assert misdated(ahead).tolist() == [False, False, True, True, False, False]


def test_bridges_join_adjacent_exports_only() -> None:
    """File A ends at id 3, file B starts at id 4 later: joined. A file whose ids restart (1 again), or one that
    starts earlier than A ends, joins nothing."""
    a, b = (1, 100, 3, 300), (4, 1000, 9, 2000)
    restarted, backwards = (1, 5000, 50, 6000), (4, 200, 9, 400)
    assert bridges([a, b]) == [(300, 1000)]
    assert bridges([a, restarted]) == []
    assert bridges([a, backwards]) == []


def test_one_wrong_clock_does_not_stretch_the_span() -> None:
    builder = CoverageBuilder()
    start = datetime(2024, 3, 1, tzinfo=timezone.utc)
    for day in range(30):
        moment = start + timedelta(days=day)
        if day == 15:
            moment = datetime(2019, 6, 1, tzinfo=timezone.utc)  # a boot before time sync
        builder.add(RawEvent(us(moment), 4688, 100 + day, "Security", "RDSH01", "p"))
    (span,) = builder.spans()
    assert span.first_us == us(start)
    assert span.intervals == ((us(start), us(start + timedelta(days=29))),)


def test_a_break_leaves_a_hole() -> None:
    builder = CoverageBuilder()
    start = datetime(2024, 3, 1, tzinfo=timezone.utc)
    for day in range(10):
        builder.add(RawEvent(us(start + timedelta(days=day)), 4688, day, "Security", "RDSH01", "p"))
    builder.break_segments()
    for day in range(20, 30):
        builder.add(RawEvent(us(start + timedelta(days=day)), 4688, 100 + day, "Security", "RDSH01", "p"))
    (span,) = builder.spans()
    assert len(span.intervals) == 2


def test_skipped_chunks_make_the_window_partial_not_complete(tmp_path: Path) -> None:
    from evtrack.synth import write_sample

    write_sample(tmp_path / "logs", users=5, hosts=1, start=date(2024, 1, 1), end=date(2024, 6, 30), seed=3,
                 size_mb=3, rollover=False, clear_log=False, reexport=False)
    clean, _ = run_report([tmp_path / "logs"], ReportSettings(created_at=CREATED))
    damaged = tmp_path / "damaged"
    shutil.copytree(tmp_path / "logs", damaged)
    security = damaged / "RDSH01-Security.evtx"
    data = bytearray(security.read_bytes())
    chunks = (len(data) - 0x1000) // 0x10000
    assert chunks >= 6
    for chunk in range(2, chunks - 2):
        data[0x1000 + chunk * 0x10000 + 0x300] ^= 0xFF
    security.write_bytes(bytes(data))
    (damaged / "RDSH01-LocalSessionManager.evtx").unlink()  # so Security alone must speak for the host
    (damaged / "RDSH01-RemoteConnectionManager.evtx").unlink()
    for engine in ("evtx", "python-evtx"):
        report, read = run_report([damaged], ReportSettings(created_at=CREATED), engine=engine)
        assert read.skipped > 0
        statuses = {w.label: w.status for w in report.windows}
        clean_statuses = {w.label: w.status for w in clean.windows}
        lost = [label for label, status in clean_statuses.items() if status == "complete" and statuses[label] != status]
        assert lost, (engine, statuses)
        assert not report.coverage_complete


@pytest.mark.parametrize("engine", ["evtx", "python-evtx"])
def test_clean_files_have_one_segment_per_file(tmp_path: Path, engine: str) -> None:
    from evtrack.synth import write_sample

    write_sample(tmp_path, users=3, hosts=1, start=date(2024, 2, 1), end=date(2024, 2, 29), seed=2,
                 rollover=False, clear_log=False, reexport=False)
    report, _ = run_report([tmp_path], ReportSettings(created_at=CREATED), engine=engine)
    assert all(len(c.intervals) == 1 for c in report.coverage)


def test_holes_survive_the_store(tmp_path: Path) -> None:
    from evtrack.pipeline import source_from_read
    from evtrack.reading import read_inputs
    from evtrack.store import Store
    from evtrack.synth import write_sample
    from evtrack.usage import build_report

    write_sample(tmp_path / "logs", users=4, hosts=1, start=date(2024, 1, 1), end=date(2024, 4, 30), seed=4,
                 size_mb=2, rollover=False, clear_log=False, reexport=False)
    security = tmp_path / "logs" / "RDSH01-Security.evtx"
    data = bytearray(security.read_bytes())
    data[0x1000 + 3 * 0x10000 + 0x300] ^= 0xFF
    security.write_bytes(bytes(data))
    settings = ReportSettings(created_at=CREATED)
    direct = build_report(source_from_read(read_inputs([tmp_path / "logs"])), settings)
    assert any(len(c.intervals) > 1 for c in direct.coverage)
    with Store.open(tmp_path / "store.sqlite3") as store:
        store.ingest([tmp_path / "logs"])
        stored = build_report(store.report_source(), settings)
    assert stored.coverage == direct.coverage
    assert [w.status for w in stored.windows] == [w.status for w in direct.windows]


# One step of reading a file: a record (host index, record id or None, day offset) or a lost chunk ("break").
_steps = st.lists(
    st.one_of(
        st.tuples(st.integers(0, 1), st.one_of(st.none(), st.integers(0, 60)), st.integers(-3000, 400)),
        st.just("break"),
    ),
    max_size=60,
)


def _feed(builder: CoverageBuilder, steps: list[Any]) -> None:
    base = us(datetime(2024, 3, 1, tzinfo=timezone.utc))
    for step in steps:
        if step == "break":
            builder.break_segments()
        else:
            host, record_id, day = step
            builder.add(RawEvent(base + day * DAY // 10, 4688, record_id, "Security", f"RDSH0{host}", "p"))


@settings(max_examples=200, deadline=None)
@given(_steps, st.data())
def test_a_file_read_in_two_ranges_gives_the_same_coverage(steps: list[Any], data: st.DataObject) -> None:
    """Workers reading chunk ranges of one file, joined with continue_with, equal one reader of the whole file:
    segments, clock outliers and gaps do not depend on where the file was split."""
    cut = data.draw(st.integers(0, len(steps)))
    whole = CoverageBuilder()
    _feed(whole, steps)
    first, second = CoverageBuilder(), CoverageBuilder()
    _feed(first, steps[:cut])
    _feed(second, steps[cut:])
    first.continue_with(second)
    assert first.spans() == whole.spans()
    assert first.export() == whole.export()
    merged, merged_whole = CoverageBuilder(), CoverageBuilder()
    merged.merge(first)
    merged_whole.merge(whole)
    assert merged.spans() == merged_whole.spans() == whole.spans()


def test_blocks_and_single_records_give_the_same_coverage() -> None:
    base = us(datetime(2024, 3, 1, tzinfo=timezone.utc))
    ids = np.arange(100, 200, dtype=np.int64)
    times = base + np.arange(100, dtype=np.int64) * DAY // 4
    times[50] = base - 900 * DAY  # one wrong clock, in the middle of the first block
    one, blocks = CoverageBuilder(), CoverageBuilder()
    for record_id, time in zip(ids.tolist(), times.tolist(), strict=True):
        one.add(RawEvent(time, 4688, record_id, "Security", "RDSH01", "p"))
    for lo in range(0, 100, 7):  # blocks that cut through the outlier's neighbourhood
        blocks.add_block("RDSH01", "Security", ids[lo : lo + 7], times[lo : lo + 7])
    assert one.spans() == blocks.spans()
    (span,) = one.spans()
    # the misdated record still counts (its id leaves no gap) but sits between its neighbours
    assert span.first_us == base and span.records == 100 and not span.gaps
    assert [(m.record_id, m.time_us) for m in span.misdated] == [(150, int(times[50]))]
    assert int(times[49]) <= span.misdated[0].placed_us <= int(times[51])


_INTERVALS = st.lists(st.tuples(st.integers(-20, 20), st.integers(-20, 20)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(_INTERVALS, max_size=4))
def test_merge_arrays_is_merge_intervals_per_group(groups: list[list[tuple[int, int]]]) -> None:
    """The numpy merge (the peaks' hot path) gives merge_intervals' runs for every group, touching, adjacent,
    nested, repeated and even inverted intervals included, and never joins two groups."""
    starts = np.array([a for intervals in groups for a, _ in intervals], dtype=np.int64)
    ends = np.array([b for intervals in groups for _, b in intervals], dtype=np.int64)
    owner = np.array([g for g, intervals in enumerate(groups) for _ in intervals], dtype=np.int64)
    merged_starts, merged_ends, merged_owner = merge_arrays(starts, ends, owner)
    expected = [(g, a, b) for g, intervals in enumerate(groups) for a, b in merge_intervals(intervals)]
    assert list(zip(merged_owner.tolist(), merged_starts.tolist(), merged_ends.tolist(), strict=True)) == expected


def test_merge_arrays_joins_adjacent_microseconds_only() -> None:
    starts, ends, _ = merge_arrays(np.array([10, 0, 22]), np.array([20, 9, 30]))
    assert (starts.tolist(), ends.tolist()) == ([0, 22], [20, 30])  # [0, 9] + [10, 20] touch; 21 lies between
