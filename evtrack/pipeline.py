"""One pipeline: an input adapter yields a neutral :class:`~evtrack.usage.ReportSource`, :func:`run` builds the
report from it and the resolved :class:`~evtrack.usage.ReportSettings`.

Three adapters, one per kind of input: :class:`FilesInput` (event log files, folders, globs), :class:`StoreInput`
(an evtrack store) and :class:`DatasetInput` (a Parquet events dataset). Whatever an adapter must say about how it
read (only part of a dataset, say) travels in the source's ``notes``, which the report carries: nobody edits a
report after it is built. The CLI, the store commands, ``explain``, the library API and the tests all call
:func:`run` (or :func:`run_with_source` when they need the events too).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from evtrack.reading import DEFAULT_ENGINE, ProgressCallback, ReadResult, read_inputs
from evtrack.report import InputFile, Report
from evtrack.sources.base import ReadPlan, file_sha256
from evtrack.usage import ReportSettings, ReportSource, build_report

if TYPE_CHECKING:
    from evtrack.dataset import DatasetRead


class ReportInput(Protocol):
    """Where a report's events come from: anything that yields a :class:`ReportSource` for the settings."""

    def source(self, settings: ReportSettings) -> ReportSource:
        """The events, coverage and inputs' story (``settings`` may narrow what is read, e.g. --from/--to)."""
        ...


def _fingerprint(path: Path, sha256: str | None = None) -> tuple[int | None, str | None]:
    """The size and SHA-256 of a file's bytes (``sha256`` when the read took it already), so a reader can check a
    report was made from these files."""
    try:
        return path.stat().st_size, sha256 or file_sha256(path)
    except OSError:
        return None, None


def input_files(result: ReadResult) -> tuple[InputFile, ...]:
    """The inputs' story for the report: every file read (with its size and SHA-256), and every one that could
    not be."""
    rows = [
        InputFile(
            path=str(stats.path), kind=stats.kind.value if stats.kind else "", engine=stats.engine,
            records=stats.records, skipped=stats.skipped, issues=tuple(str(i) for i in stats.issues), error=None,
            size=size, sha256=digest,
        )
        for stats in result.files
        for size, digest in [_fingerprint(stats.path, stats.sha256)]
    ]
    rows += [
        InputFile(path=str(issue.path), kind="", engine="", records=0, skipped=0, issues=(), error=issue.reason,
                  size=size, sha256=digest)
        for issue in result.file_errors
        for size, digest in [_fingerprint(Path(issue.path))]
    ]
    return tuple(sorted(rows, key=lambda row: row.path))


def source_from_read(result: ReadResult) -> ReportSource:
    """The neutral report source of files already read."""
    from evtrack.catalogue import is_evidence_channel

    evidence = frozenset(str(stats.path) for stats in result.files if any(map(is_evidence_channel, stats.per_channel)))
    return ReportSource(
        table=result.table, coverage=result.coverage, inputs=input_files(result), engine=result.engine,
        records_read=result.records, records_skipped=result.skipped, observations=result.observations,
        evidence_paths=evidence,
    )


@dataclass(frozen=True)
class FilesInput:
    """Event log files (.evtx, XML exports), folders (searched recursively) and glob patterns."""

    paths: Sequence[str | Path]
    engine: str = DEFAULT_ENGINE
    verify_checksums: bool = True
    jobs: int = 1
    slim: bool = True
    """Skip records no report needs (see the catalogue's slim rules); False keeps every RDP-relevant event."""
    progress: ProgressCallback | None = None
    """Called once per file read (for a progress bar)."""
    on_read: Callable[[ReadResult], None] | None = None
    """Called with the read result before the report is built (for a summary, or to refuse an empty read)."""

    def read(self, plan: ReadPlan | None = None) -> ReadResult:
        """Read the files with ``plan`` (None: the catalogue's, without an input zone or culture)."""
        result = read_inputs(self.paths, engine=self.engine, verify_checksums=self.verify_checksums, jobs=self.jobs,
                             progress=self.progress, slim=self.slim, plan=plan, fingerprint=True)
        if self.on_read is not None:
            self.on_read(result)
        return result

    def source(self, settings: ReportSettings) -> ReportSource:
        return source_from_read(self.read(settings.read_plan()))


@dataclass(frozen=True)
class StoreInput:
    """The events ingested into an evtrack store (``evtrack ingest``); None: the default store."""

    path: Path | None

    def source(self, settings: ReportSettings) -> ReportSource:
        from evtrack.store import Store

        with Store.open(self.path, create=False) as opened:
            return opened.report_source()


@dataclass(frozen=True)
class DatasetInput:
    """A Parquet events dataset folder or URL (``evtrack events -f parquet -o DIR/``).

    With ``push_down`` (the default), a --from/--to period is pushed down to the scan, and the source's notes say
    that only that part was read."""

    location: str | Path
    push_down: bool = True
    on_read: Callable[[DatasetRead], None] | None = None
    """Called with what was read (rows, pushed-down range, whether coverage was there)."""

    def time_range(self, settings: ReportSettings) -> tuple[datetime, datetime] | None:
        """The UTC range pushed down to the scan for ``settings``' period; None: the whole dataset."""
        from evtrack.dataset import push_down_range
        from evtrack.windows import local_midnight

        if not self.push_down or (settings.start is None and settings.end is None):
            return None
        tz = settings.zone.info
        start = local_midnight(settings.start, tz) if settings.start else None
        end = local_midnight(settings.end + timedelta(days=1), tz) if settings.end else None
        return push_down_range(start, end)

    def source(self, settings: ReportSettings) -> ReportSource:
        from evtrack.dataset import read_events_dataset

        time_range = self.time_range(settings)
        read = read_events_dataset(self.location, time_range=time_range)
        if self.on_read is not None:
            self.on_read(read)
        if time_range is None:
            return read.source
        low, high = time_range
        note = (f"Only events from {low:%Y-%m-%d} to {high:%Y-%m-%d} (UTC) were read from the dataset (--from/--to): "
                "per-user totals and first/last seen, new users, and the estimate as of a date after the period "
                "count only those.")
        return replace(read.source, notes=(*read.source.notes, note))


def run_with_source(input: ReportInput, settings: ReportSettings) -> tuple[Report, ReportSource]:
    """The report of ``input`` under ``settings``, and the source it was built from (``explain`` needs both)."""
    source = input.source(settings)
    return build_report(source, settings), source


def run(input: ReportInput, settings: ReportSettings) -> Report:
    """The report of ``input`` under ``settings``: the one way every caller builds a report."""
    return run_with_source(input, settings)[0]


def run_report(paths: Sequence[str | Path], settings: ReportSettings, *, engine: str = DEFAULT_ENGINE,
               verify_checksums: bool = True, jobs: int = 1,
               progress: ProgressCallback | None = None) -> tuple[Report, ReadResult]:
    """:func:`run` on files, returning the read result too (for tests that check what was read)."""
    reads: list[ReadResult] = []
    built = run(FilesInput(paths, engine=engine, verify_checksums=verify_checksums, jobs=jobs, progress=progress,
                           on_read=reads.append), settings)
    return built, reads[0]
