"""Where ingest's reading happens: files hashed, and read unless the store already holds them.

A scanner only reads; :meth:`evtrack.store.Store.ingest` alone writes. :class:`LocalScanner` reads here or in a
pool of processes; :class:`evtrack.distributed.DaskScanner` on a Dask cluster.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from evtrack.sources.base import file_sha256

if TYPE_CHECKING:
    from evtrack.reading import FileResult, Inputs
    from evtrack.sources.base import ReadPlan



@dataclass(frozen=True, slots=True)
class ScannedFile:
    """One input as a scanner hands it to :meth:`Store.ingest`: hashed, and read unless it is already stored."""

    path: Path
    digest: str | None
    """SHA-256 of the file's bytes; None when they could not be read."""
    result: FileResult | None = None
    """What :func:`evtrack.reading.read_file` gave; None when the file is already stored, or failed (``error``)."""
    error: str | None = None
    """Why the file could not be hashed or read at all (unreadable, or its task failed on a worker)."""


class FileScanner(Protocol):
    """Where ingest's reading happens. Scanners only read; :meth:`Store.ingest` alone writes."""

    def expand(self, arguments: Sequence[str | Path]) -> Inputs:
        """The files that ``arguments`` name (see :func:`evtrack.reading.expand_inputs`)."""
        ...

    def scan(self, files: Sequence[Path], *, engine: str, verify_checksums: bool, stored: frozenset[str],
             plan: ReadPlan) -> Iterator[ScannedFile]:
        """Every file once, in any order: hashed, and read (with the read ``plan``) unless its digest is in
        ``stored``."""
        ...


class LocalScanner:
    """Hash every file here, then read the new ones here (``jobs`` = 1) or in a pool of processes."""

    def __init__(self, jobs: int = 1) -> None:
        self.jobs = jobs

    def expand(self, arguments: Sequence[str | Path]) -> Inputs:
        from evtrack.reading import expand_inputs

        return expand_inputs(arguments)

    def scan(self, files: Sequence[Path], *, engine: str, verify_checksums: bool, stored: frozenset[str],
             plan: ReadPlan) -> Iterator[ScannedFile]:
        from concurrent.futures import Executor

        from evtrack.reading import process_pool, read_file, unit_bytes, worth_a_pool

        todo: list[tuple[Path, str]] = []
        for path in files:
            try:
                digest = file_sha256(path)
            except OSError as exc:
                yield ScannedFile(path, None, error=f"cannot read: {exc.strerror or exc}")
                continue
            if digest in stored:
                yield ScannedFile(path, digest)
            else:
                todo.append((path, digest))
        pool: Executor | None = None
        if worth_a_pool(self.jobs, [unit_bytes(path) for path, _ in todo]):
            pool = process_pool(min(self.jobs, len(todo)))
        try:
            if pool is not None:
                futures = [pool.submit(read_file, path, engine, verify_checksums, plan=plan) for path, _ in todo]
                results: Iterator[FileResult] = (future.result() for future in futures)
            else:
                results = (read_file(path, engine, verify_checksums, plan=plan) for path, _ in todo)
            for (path, digest), result in zip(todo, results, strict=True):
                yield ScannedFile(path, digest, result)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
