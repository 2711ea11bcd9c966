"""Work shared between the caller and a pool that starts meanwhile (:mod:`evtrack.parallel`)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

import pytest

import evtrack.reading
from evtrack.parallel import share
from evtrack.reading import read_inputs


def _slow_pool(delay: float, workers: int = 1):  # type: ignore[no-untyped-def]
    """A thread pool whose start takes ``delay`` seconds, as a process pool's does."""

    def start() -> Executor:
        time.sleep(delay)
        return ThreadPoolExecutor(workers, thread_name_prefix="pool")

    return start


def _who(unit: int) -> tuple[int, str]:
    time.sleep(0.02)
    return unit * unit, threading.current_thread().name


def test_every_unit_is_done_once_in_the_order_given() -> None:
    units = list(range(12))
    seen: list[tuple[int, str]] = []
    results = share(units, _who, sizes=units, workers=1, pool=_slow_pool(0.05),
                    on_result=lambda r: seen.append((r[0], threading.current_thread().name)))
    assert [square for square, _ in results] == [u * u for u in units]
    assert sorted(square for square, _ in seen) == [u * u for u in units]
    assert {name for _, name in seen} == {threading.current_thread().name}  # on_result runs in the caller


def test_the_caller_takes_the_small_units_and_the_pool_the_large_ones() -> None:
    units = list(range(20))
    results = share(units, _who, sizes=units, workers=1, pool=_slow_pool(0.1))
    caller = [u for u, (_, name) in zip(units, results, strict=True) if name == threading.current_thread().name]
    pool = [u for u, (_, name) in zip(units, results, strict=True) if name.startswith("pool")]
    assert caller and pool and sorted(caller + pool) == units
    assert max(caller) < min(pool)  # each from its own end of the list
    assert 19 in pool and 0 in caller


def test_the_caller_stops_taking_units_once_the_pool_is_up() -> None:
    """It reads only to use the time the pool takes to start: afterwards the workers read faster without it."""
    units = list(range(40))
    results = share(units, _who, sizes=units, workers=2, pool=_slow_pool(0.0, 2))
    caller = [u for u, (_, name) in zip(units, results, strict=True) if name == threading.current_thread().name]
    assert len(caller) <= 3 and [u * u for u in units] == [square for square, _ in results]


def test_a_caller_that_finishes_first_waits_for_the_pool_to_stop() -> None:
    """All units read before the pool is up: nothing is left to the pool, and no thread outlives the call."""
    before = threading.active_count()
    results = share([1, 2], _who, sizes=[1, 2], workers=1, pool=_slow_pool(0.3))
    assert {name for _, name in results} == {threading.current_thread().name}
    assert threading.active_count() == before


def test_without_the_caller_the_pool_does_everything() -> None:
    results = share(list(range(6)), _who, sizes=list(range(6)), workers=2, pool=_slow_pool(0.0, 2),
                    caller_works=False)
    assert all(name.startswith("pool") for _, name in results)
    assert [square for square, _ in results] == [u * u for u in range(6)]


def _fails_on(bad: int):  # type: ignore[no-untyped-def]
    def work(unit: int) -> int:
        time.sleep(0.01)
        if unit == bad:
            raise ValueError(f"unit {unit} is bad")
        return unit

    return work


@pytest.mark.parametrize(("bad", "caller_works"), [(0, True), (9, True), (9, False)])
def test_a_failing_unit_raises_in_the_caller_after_the_pool_stopped(bad: int, caller_works: bool) -> None:
    before = threading.active_count()
    with pytest.raises(ValueError, match=f"unit {bad} is bad"):
        share(list(range(10)), _fails_on(bad), sizes=list(range(10)), workers=1, pool=_slow_pool(0.05),
              caller_works=caller_works)
    assert threading.active_count() == before


def test_a_pool_that_cannot_start_raises_in_the_caller() -> None:
    def broken() -> Executor:
        raise OSError("no processes left")

    with pytest.raises(OSError, match="no processes left"):
        share(list(range(200)), _who, sizes=list(range(200)), workers=1, pool=broken)


def test_reads_shared_with_worker_processes_equal_a_serial_read(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller and a spawned worker share the files (the size threshold lowered so a small sample uses the
    pool): the same table, coverage and files as one process reading them all."""
    from datetime import date

    from evtrack.synth import write_sample

    write_sample(tmp_path, users=4, hosts=3, start=date(2024, 1, 1), end=date(2024, 1, 31), seed=7)
    monkeypatch.setattr(evtrack.reading, "POOL_MIN_BYTES", 0)
    done: list[str] = []
    one = read_inputs([tmp_path], jobs=1, slim=True)
    two = read_inputs([tmp_path], jobs=2, slim=True, start_method="spawn",
                      progress=lambda r: done.append(r.stats.path.name))
    assert one.table.num_rows > 0 and one.table.equals(two.table)
    assert (one.coverage, one.files, one.observations) == (two.coverage, two.files, two.observations)
    assert sorted(done) == sorted(p.name for p in tmp_path.iterdir())  # every input reported once
