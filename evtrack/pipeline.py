"""Wires the stages: read inputs → event table + coverage → report. What the CLI and tests call."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evtrack.reading import DEFAULT_ENGINE, ProgressCallback, ReadResult, read_inputs
from evtrack.report import InputFile, Report
from evtrack.usage import ReportSettings, ReportSource, build_report


def _fingerprint(path: Path) -> tuple[int | None, str | None]:
    """The size and SHA-256 of a file's bytes, so a reader can check a report was made from these files."""
    from evtrack.store import file_sha256

    try:
        return path.stat().st_size, file_sha256(path)
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
        for size, digest in [_fingerprint(stats.path)]
    ]
    rows += [
        InputFile(path=str(issue.path), kind="", engine="", records=0, skipped=0, issues=(), error=issue.reason,
                  size=size, sha256=digest)
        for issue in result.file_errors
        for size, digest in [_fingerprint(Path(issue.path))]
    ]
    return tuple(sorted(rows, key=lambda row: row.path))


def source_from_read(result: ReadResult) -> ReportSource:
    return ReportSource(
        table=result.table, coverage=result.coverage, inputs=input_files(result), engine=result.engine,
        records_read=result.records, records_skipped=result.skipped, observations=result.observations,
    )


def run_report(paths: Sequence[str | Path], settings: ReportSettings, *, engine: str = DEFAULT_ENGINE,
               verify_checksums: bool = True, jobs: int = 1,
               progress: ProgressCallback | None = None) -> tuple[Report, ReadResult]:
    """Read ``paths`` and build the report; returns the read result too (for the summary)."""
    result = read_inputs(paths, engine=engine, verify_checksums=verify_checksums, jobs=jobs, progress=progress,
                         slim=True)
    return build_report(source_from_read(result), settings), result
