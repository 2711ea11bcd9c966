"""What the commands share: reading files with a progress bar, the read summary, writing output, settings."""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from evtrack.cli.errors import escape, fail, stderr
from evtrack.cli.options import Engine, Per, ReportFormat
from evtrack.errors import ConfigError

if TYPE_CHECKING:
    from evtrack.config import FileConfig
    from evtrack.pipeline import FilesInput, ReportInput
    from evtrack.reading import FileResult, ReadResult
    from evtrack.report import Report
    from evtrack.settings import ResolvedSettings, SettingFlags
    from evtrack.sources.base import ReadPlan


@contextlib.contextmanager
def files_input(paths: list[str], engine: Engine, verify: bool, jobs: int | None, quiet: bool, slim: bool = False,
                 on_read: Callable[[ReadResult], None] | None = None) -> Iterator[FilesInput]:
    """The files adapter for ``paths``, with a progress bar on a terminal (gone before ``on_read`` runs)."""
    from evtrack.pipeline import FilesInput
    from evtrack.reading import default_jobs, expand_inputs

    console = stderr()
    jobs = jobs or default_jobs()
    plain = FilesInput(paths, engine=engine.value, verify_checksums=verify, jobs=jobs, slim=slim, on_read=on_read)
    if quiet or not console.is_terminal:
        yield plain
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    files = expand_inputs(paths).files
    total = sum(_size(path) for path in files)
    progress = Progress(
        TextColumn("reading"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TextColumn("{task.fields[files]}/{task.fields[total_files]} files, {task.fields[records]:,} records"),
        TimeRemainingColumn(), console=console, transient=True,
    )
    with progress:
        task = progress.add_task("read", total=total, files=0, total_files=len(files), records=0)
        seen: set[Path] = set()
        records = 0

        def advance(result: FileResult) -> None:
            nonlocal records
            records += result.stats.records
            seen.add(result.stats.path)
            progress.update(task, advance=result.stats.size, files=len(seen), records=records)

        def done(result: ReadResult) -> None:
            progress.stop()
            if on_read is not None:
                on_read(result)

        yield dataclasses.replace(plain, progress=advance, on_read=done)


def report_input(stack: contextlib.ExitStack, paths: list[str] | None, *, engine: Engine | None, verify: bool,
                 jobs: int | None, quiet: bool, file: FileConfig, reads: list[ReadResult],
                 dataset: ReportInput | None, store_path: Path | None) -> ReportInput:
    """What ``report`` and ``explain`` read: the files (each read kept in ``reads``; a read that found no event log
    stops the command), else the dataset, else the store."""
    from evtrack.pipeline import StoreInput

    if paths:
        def refuse_empty(result: ReadResult) -> None:
            reads.append(result)
            require_something_read(result, paths, quiet)

        return stack.enter_context(files_input(paths, engine or config_engine(file), verify, jobs, quiet, slim=True,
                                               on_read=refuse_empty))
    if dataset is not None:
        return dataset
    return StoreInput(store_path)


def read_files(paths: list[str], engine: Engine, verify: bool, jobs: int | None, quiet: bool,
               slim: bool = False, plan: ReadPlan | None = None) -> ReadResult:
    with files_input(paths, engine, verify, jobs, quiet, slim) as files:
        return files.read(plan)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def read_summary(result: ReadResult, kept: int, verbose: bool) -> list[str]:
    lines = [
        f"files: {len(result.files)} read, {len(result.file_errors)} failed, "
        f"{len(result.ignored)} ignored (not event logs{', -v lists them' if result.ignored and not verbose else ''}); "
        f"records: {result.records:,} read, {result.skipped:,} skipped; events kept: {kept:,} (engine {result.engine})"
    ]
    for issue in result.file_errors:
        lines.append(f"  failed: {issue.path}: {issue.reason}")
    for issue in result.ignored if verbose else ():
        lines.append(f"  ignored: {issue.path}: {issue.reason}")
    issues = result.issues
    shown = issues if verbose else issues[:5]
    for issue in shown:
        lines.append(f"  skipped: {issue}" + (f" ({issue.skipped} records)" if issue.skipped > 1 else ""))
    if len(issues) > len(shown):
        lines.append(f"  ... and {len(issues) - len(shown)} more read issues (details: -v)")
    return lines


def require_something_read(result: ReadResult, paths: list[str], quiet: bool) -> None:
    """Inputs that all failed (missing, unreadable, damaged) or that hold no event log are an error, not an empty
    report."""
    if result.files:
        return
    print_lines(read_summary(result, 0, True), quiet)
    if result.file_errors:
        fail("none of the inputs could be read")
    fail(no_logs_found(paths))


def no_logs_found(paths: list[str]) -> str:
    return f"no event logs found in {', '.join(paths)}"


def announce_new_store(path: Path, quiet: bool) -> None:
    """One line when a command made a new store file: a mistyped ``--store`` shows at once."""
    if not quiet:
        stderr().print(escape(f"created a new evtrack store: {path}"))


def print_lines(lines: list[str], quiet: bool) -> None:
    if quiet:
        return
    console = stderr()
    for line in lines:
        console.print(escape(line))


def write_or_print(data: bytes, output: Path | None, inputs: list[Path]) -> None:
    from evtrack.output import check_not_input, write_atomic

    if output is None or str(output) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    check_not_input(output, inputs)
    write_atomic(output, data)


def resolve(flags: SettingFlags) -> ResolvedSettings:
    """The settings, resolved once: config file (its warnings printed first), environment, flags."""
    import os

    from evtrack.config import load_config
    from evtrack.settings import resolve_settings

    file = load_config(flags.config)
    for warning in file.warnings:
        stderr().print(f"[bold yellow]warning:[/] {escape(warning)}")
    return resolve_settings(flags, file, os.environ)


def config_engine(file: FileConfig) -> Engine:
    try:
        return Engine(file.engine or Engine.evtx.value)
    except ValueError:
        raise ConfigError(f"{file.path}: engine must be one of {', '.join(e.value for e in Engine)}") from None


def _ascii_console() -> bool:
    encoding = (getattr(sys.stdout, "encoding", None) or "ascii").lower()
    try:
        "─—".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return True
    return False


def render_report(report: Report, fmt: ReportFormat, per: Per, *, safe: bool = True, bom: bool = True,
                  sep: str = ",") -> bytes:
    """``report`` as ``--format`` and ``--per`` ask, by the renderer the registry names."""
    from evtrack.render.registry import RenderOptions, render

    options = RenderOptions(per=per.value, safe=safe, bom=bom, sep=sep)
    if fmt is ReportFormat.table:
        options = dataclasses.replace(options, ascii_only=_ascii_console(), encoding=sys.stdout.encoding or "utf-8")
    return render(report, fmt.value, options)
