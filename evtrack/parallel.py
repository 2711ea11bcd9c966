"""Work shared between the calling process and a process pool that starts while the caller already works.

Starting a pool costs about a second (a forkserver or spawned interpreter imports pyarrow, numpy, pandas and the
parsers; the first ``submit`` waits for it), which made a small input slower with two jobs than with one. Here
the caller does not wait for the pool to start: a helper thread starts it, and the caller works through the units
from the small end of the list while the pool's workers, once up, take them from the large end. Before returning,
the caller waits for the pool to have started and stopped (no process outlives the call), so an input done in
less time than a pool takes to start is better done without one: callers skip the pool for small inputs.
Results from workers are handed on between the caller's own units (a progress bar moves in steps). Results do
not depend on who did what: every unit is a pure function of its arguments.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from typing import Generic, TypeVar

U = TypeVar("U")
R = TypeVar("R")


def _ready() -> bool:
    """Run in a worker: it is up."""
    return True


class _Feeder(threading.Thread, Generic[U, R]):
    """Starts the pool, then hands it the largest units left, one more than it has workers (so none idles
    between two units), and passes what comes back to the caller's thread through ``results``."""

    def __init__(self, pool: Callable[[], Executor], workers: int, work: Callable[[U], R], units: Sequence[U],
                 left: deque[int], lock: threading.Lock) -> None:
        super().__init__(name="evtrack-pool-feeder")
        self._pool, self._workers, self._work, self._units = pool, workers, work, units
        self._left, self._lock = left, lock
        self.results: queue.Queue[tuple[int, R] | BaseException | None] = queue.Queue()
        self.stop = threading.Event()

    def _take(self) -> int | None:
        with self._lock:
            return self._left.popleft() if self._left else None

    def run(self) -> None:
        try:
            with self._pool() as pool:
                pool.submit(_ready).result()  # the slow part: the caller reads meanwhile
                running: dict[Future[R], int] = {}
                while not self.stop.is_set():
                    while len(running) <= self._workers:
                        index = self._take()
                        if index is None:
                            break
                        running[pool.submit(self._work, self._units[index])] = index
                    if not running:
                        break
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        self.results.put((running.pop(future), future.result()))
        except BaseException as exc:  # a broken pool or a failing unit: the caller raises it
            self.results.put(exc)
        finally:
            self.results.put(None)


def share(units: Sequence[U], work: Callable[[U], R], *, sizes: Sequence[int], workers: int,
          pool: Callable[[], Executor], on_result: Callable[[R], None] | None = None,
          caller_works: bool = True) -> list[R]:
    """``work`` applied to every unit, in the order of ``units``: by the calling thread (the smallest units first;
    not when ``caller_works`` is False) and by the ``workers`` workers of ``pool()`` (the largest first, once the
    pool is up). ``sizes`` orders the units; ``on_result`` is called in the calling thread for each result, in the
    order they are done. ``work`` and the units must pickle and ``work`` must not return None. An exception in
    ``work`` (here or in a worker) propagates, once the pool has stopped."""
    order = sorted(range(len(units)), key=lambda i: -sizes[i])
    left: deque[int] = deque(order)
    lock = threading.Lock()
    done: list[R | None] = [None] * len(units)
    feeder: _Feeder[U, R] = _Feeder(pool, workers, work, units, left, lock)
    feeder.start()
    finished = 0

    def collect(block: bool) -> None:
        nonlocal finished
        while True:
            try:
                item = feeder.results.get(block=block)
            except queue.Empty:
                return
            if item is None:
                finished = 1
                return
            if isinstance(item, BaseException):
                raise item
            index, result = item
            done[index] = result
            if on_result is not None:
                on_result(result)
            block = False

    try:
        while caller_works:
            with lock:
                index = left.pop() if left else None
            if index is None:
                break
            result = work(units[index])
            done[index] = result
            if on_result is not None:
                on_result(result)
            collect(block=False)
        while any(result is None for result in done) and not finished:
            collect(block=True)
        collect(block=False)
    finally:
        feeder.stop.set()
        feeder.join()  # the pool is shut down: no process outlives the call
    missing = [i for i, result in enumerate(done) if result is None]
    if missing:
        raise RuntimeError(f"{len(missing)} units of work were not done")
    return [result for result in done if result is not None]
