"""Work done by a process pool, and by the calling process while that pool starts.

Starting a pool costs about a second (a forkserver or spawned interpreter imports pyarrow, numpy, pandas and the
parsers; the first ``submit`` waits for it). Here the caller does not sit through it: a helper thread starts the
pool while the caller works through the units from the small end of the list; once the first worker answers, the
caller stops taking units and the workers take the rest, largest first (so none finishes long after the others).
The caller stops because it reads more slowly than a worker while it also receives the workers' results
(measured: 0.5 s slower on a 150 MB dense set when it read throughout). Before returning, the caller waits for
the pool to have started and stopped (no process outlives the call), so an input done in less time than a pool
takes to start is better done without one: callers skip the pool for small inputs. Results from the workers are
handed on as they come (between the caller's own units while it works). Results do not depend on who did what:
every unit is a pure function of its arguments.
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
        self.up = threading.Event()
        """Set once the pool's first worker answered (or the pool failed to start)."""

    def _take(self) -> int | None:
        with self._lock:
            return self._left.popleft() if self._left else None

    def run(self) -> None:
        try:
            with self._pool() as pool:
                try:
                    pool.submit(_ready).result()  # the slow part: the caller works meanwhile
                finally:
                    self.up.set()
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
    """``work`` applied to every unit, in the order of ``units``: by the calling thread until the pool is up (the
    smallest units first; not at all when ``caller_works`` is False) and by the ``workers`` workers of ``pool()``
    (the largest first). ``sizes`` orders the units; ``on_result`` is called in the calling thread for each
    result, in the order they are done. ``work`` and the units must pickle and ``work`` must not return None. An
    exception in ``work`` (here or in a worker) propagates, once the pool has stopped."""
    order = sorted(range(len(units)), key=lambda i: -sizes[i])
    left: deque[int] = deque(order)
    lock = threading.Lock()
    done: list[R | None] = [None] * len(units)
    feeder: _Feeder[U, R] = _Feeder(pool, workers, work, units, left, lock)
    feeder.start()
    finished = False

    def collect(block: bool) -> None:
        nonlocal finished
        while True:
            try:
                item = feeder.results.get(block=block)
            except queue.Empty:
                return
            if item is None:
                finished = True
                return
            if isinstance(item, BaseException):
                raise item
            index, result = item
            done[index] = result
            if on_result is not None:
                on_result(result)
            block = False

    try:
        while caller_works and not feeder.up.is_set():
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
