"""The store's commands: ``evtrack ingest``, ``evtrack reports ...`` and ``evtrack store ...``.

Registered on the main app in :mod:`evtrack.cli`. Imports stay lazy (no pyarrow, no parser at import time) so that
``evtrack reports list`` starts fast.
"""

from __future__ import annotations

import contextlib
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evtrack.cli.common import announce_new_store, no_logs_found, render_report, resolve, write_or_print
from evtrack.cli.errors import EXIT_ERROR, EXIT_INTERRUPTED, escape, fail, stderr
from evtrack.cli.options import (
    PER_HELP,
    BomOpt,
    ConfigOpt,
    CsvDelimiterOpt,
    CultureOpt,
    Engine,
    EventFormat,
    InputTzOpt,
    Per,
    ReportFormat,
    TzOpt,
)
from evtrack.errors import EvtrackError

if TYPE_CHECKING:
    from collections.abc import Callable

    from evtrack.reading import Inputs
    from evtrack.scanning import FileScanner
    from evtrack.sources.base import ReadPlan
    from evtrack.store import FileOutcome, IngestResult, Store, StoreInfo


class Executor(str, Enum):
    """Where ingest reads files: here (a process pool) or on a Dask cluster (:mod:`evtrack.distributed`)."""

    local = "local"
    dask = "dask"


StoreOpt = Annotated[
    Path | None,
    typer.Option("--store", envvar="EVTRACK_STORE",
                 help="The store's SQLite file (default: evtrack.sqlite3 in the user data folder)."),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def _open(path: Path | None, *, create: bool) -> Store:
    from evtrack.store import Store

    return Store.open(path, create=create)


def _fmt_us(value: int | None) -> str:
    if value is None:
        return "-"
    from evtrack.render.events import iso_utc
    from evtrack.sources.base import us_to_datetime

    return iso_utc(us_to_datetime(value))[:19] + "Z"


FAILED_HINT = ("the store remembers failed inputs: its reports are a lower bound until each is ingested once it can "
               "be read, or forgotten with `evtrack store forget-failed`")


def ingest_summary(result: IngestResult, store_path: Path) -> list[str]:
    """The lines ``evtrack ingest`` prints to stderr."""
    lines = [
        f"files: {len(result.ingested)} ingested, {len(result.already)} already ingested, "
        f"{len(result.failed)} failed, {len(result.ignored)} ignored; events: {result.events_added:,} added, "
        f"{result.events_present:,} already present (store {store_path})"
    ]
    for outcome in result.failed:
        lines.append(f"  failed: {outcome.path}: {outcome.error}")
    if result.failed:
        lines.append(f"  {FAILED_HINT}")
    for issue in result.ignored:
        lines.append(f"  ignored: {issue.path}: {issue.reason}")
    skipped = [o for o in result.ingested if o.skipped]
    for outcome in skipped:
        lines.append(f"  skipped {outcome.skipped:,} of {outcome.records + outcome.skipped:,} records in "
                     f"{outcome.path}")
    return lines


def ingest(
    paths: Annotated[
        list[str],
        typer.Argument(help="Event log files (.evtx, XML exports), folders (searched recursively) and glob patterns."),
    ],
    store: StoreOpt = None,
    engine: Annotated[
        Engine,
        typer.Option("--engine", help="Parser for .evtx files: evtx (pyevtx-rs, fast) or python-evtx (pure Python)."),
    ] = Engine.evtx,
    verify_checksums: Annotated[
        bool,
        typer.Option("--verify-checksums/--no-verify-checksums",
                     help="Check chunk CRC32s and skip (and report) chunks that fail, rather than trusting them."),
    ] = True,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1,
                     help="Files read in parallel (default: number of cores; inputs under 16 MiB without workers)."),
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when any file could not be read.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary on stderr.")] = False,
    executor: Annotated[
        Executor,
        typer.Option("--executor", help="Where files are read: local (this machine, --jobs processes) or dask "
                     "(a Dask cluster: --scheduler, or a local one of --jobs workers; needs evtrack[dask])."),
    ] = Executor.local,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", envvar="EVTRACK_SCHEDULER",
                     help="With --executor dask: the scheduler's address, e.g. tcp://HOST:8786 (default: start a "
                     "local cluster)."),
    ] = None,
    config: ConfigOpt = None,
    tz: TzOpt = None,
    input_tz: InputTzOpt = None,
    culture: CultureOpt = None,
) -> None:
    """Add event logs to the store; files and events already there are skipped (safe to re-run)."""
    from evtrack.reading import default_jobs
    from evtrack.settings import SettingFlags

    plan = resolve(SettingFlags(config=config, tz=tz, input_tz=input_tz, culture=culture)).report.read_plan()

    console = stderr()
    if scheduler and executor is not Executor.dask:
        fail("--scheduler needs --executor dask")
    stored: list[FileOutcome] = []  # what is in the store for good, as the files go in (for an interrupt)
    try:
        inputs = _expand(paths, executor)
        if not inputs.files:  # nothing to read: say so before a store is made
            for issue in inputs.errors:
                console.print(escape(f"  failed: {issue.path}: {issue.reason}"))
            fail("none of the inputs could be read" if inputs.errors else no_logs_found(paths))
        with contextlib.ExitStack() as stack:
            opened = stack.enter_context(_open(store, create=True))  # a bad store fails before a cluster starts
            if opened.created:
                announce_new_store(opened.path, quiet)
            scanner: FileScanner | None = None
            if executor is Executor.dask:
                from evtrack.distributed import DaskScanner, dask_client

                scanner = DaskScanner(stack.enter_context(dask_client(scheduler, workers=jobs)))
            if quiet or not console.is_terminal:
                result = opened.ingest(paths, engine=engine.value, verify_checksums=verify_checksums,
                                       jobs=jobs or default_jobs(), scanner=scanner, progress=stored.append,
                                       plan=plan)
            else:
                result = _ingest_with_progress(opened, paths, engine.value, verify_checksums, jobs or default_jobs(),
                                               scanner, stored.append, plan)
            where = opened.path
    except KeyboardInterrupt:
        from evtrack.store import STATUS_INGESTED

        done = sum(1 for outcome in stored if outcome.status == STATUS_INGESTED)
        console.print(escape(
            f"interrupted: {done} file{'' if done == 1 else 's'} stored in this run (each file is stored whole or "
            "not at all); run the same command again to continue: files already stored are skipped"))
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if not quiet:
        for line in ingest_summary(result, where):
            console.print(escape(line))
    if not result.ingested and not result.already:
        fail("none of the inputs could be read" if result.failed else no_logs_found(paths))
    if strict and (result.failed or any(o.skipped for o in result.files)):
        raise typer.Exit(EXIT_ERROR)


def _expand(paths: list[str], executor: Executor) -> Inputs:
    if executor is Executor.dask:
        from evtrack.distributed import expand_locations

        return expand_locations(paths)
    from evtrack.reading import expand_inputs

    return expand_inputs(paths)


def _ingest_with_progress(store: Store, paths: list[str], engine: str, verify: bool, jobs: int,
                          scanner: FileScanner | None = None,
                          also: Callable[[FileOutcome], None] | None = None,
                          plan: ReadPlan | None = None) -> IngestResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from evtrack.scanning import LocalScanner

    inputs = (scanner or LocalScanner(jobs)).expand(paths)
    with Progress(
        TextColumn("ingesting"), BarColumn(), MofNCompleteColumn(), TextColumn("files"), TimeRemainingColumn(),
        console=stderr(), transient=True,
    ) as progress:
        task = progress.add_task("ingest", total=len(inputs.files) + len(inputs.errors))

        def advance(outcome: FileOutcome) -> None:
            progress.advance(task)
            if also is not None:
                also(outcome)

        return store.ingest(paths, engine=engine, verify_checksums=verify, jobs=jobs, progress=advance,
                            scanner=scanner, plan=plan)


# -- reports ------------------------------------------------------------------------------------------------------

reports_app = typer.Typer(help="Saved reports: list, show, export, delete.", no_args_is_help=True)


@reports_app.command("list")
def reports_list(store: StoreOpt = None) -> None:
    """List saved reports: id, created, scope, window, period, installed, estimated, verdict."""
    from rich.console import Console
    from rich.table import Table

    with _open(store, create=False) as opened:
        saved = opened.list_reports()
    if not saved:
        stderr().print("no saved reports")
        return
    from datetime import timedelta

    from rich import box
    from rich.text import Text

    from evtrack.windows import zone

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("id", justify="right")
    table.add_column("created", no_wrap=True)
    table.add_column("scope", min_width=8)
    table.add_column("window", no_wrap=True)
    table.add_column("period", min_width=10)  # wraps after "..": 80 columns are tight
    table.add_column("inst.", justify="right")
    table.add_column("est.", justify="right")
    table.add_column("verdict", min_width=8)
    for row in saved:
        period = "-"
        if row.period_start and row.period_end:
            try:
                local = zone(row.tz)
            except EvtrackError:
                local = None
            first = row.period_start.astimezone(local).date()
            last = (row.period_end - timedelta(microseconds=1)).astimezone(local).date()
            period = f"{first.isoformat()} .. {last.isoformat()}"
        table.add_row(*(Text(cell) for cell in (
            str(row.id), row.created_at.strftime("%Y-%m-%d"), row.scope, row.window, period,
            "-" if row.installed is None else str(row.installed), "-" if row.estimated is None else str(row.estimated),
            row.verdict,
        )))
    Console(highlight=False).print(table)


@reports_app.command("show")
def reports_show(
    report_id: Annotated[int, typer.Argument(metavar="ID", help="The report's id (see `evtrack reports list`).")],
    fmt: Annotated[ReportFormat, typer.Option("--format", "-f", help="Output format.")] = ReportFormat.table,
    per: Annotated[Per, typer.Option("--per", help=PER_HELP)] = Per.user,
    store: StoreOpt = None,
) -> None:
    """Print a saved report (as `evtrack report` would have)."""
    with _open(store, create=False) as opened:
        report = opened.get_report(report_id)
    write_or_print(render_report(report, fmt, per), None, [])


@reports_app.command("export")
def reports_export(
    report_id: Annotated[int, typer.Argument(metavar="ID", help="The report's id (see `evtrack reports list`).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file ('-' for stdout).")],
    fmt: Annotated[ReportFormat, typer.Option("--format", "-f", help="Output format.")] = ReportFormat.json,
    per: Annotated[Per, typer.Option("--per", help=PER_HELP)] = Per.user,
    bom: BomOpt = True,
    csv_delimiter: CsvDelimiterOpt = ",",
    store: StoreOpt = None,
) -> None:
    """Write a saved report to a file as CSV or JSON."""
    with _open(store, create=False) as opened:
        report = opened.get_report(report_id)
        store_path = opened.path
    data = render_report(report, fmt, per, bom=bom, sep=csv_delimiter)
    write_or_print(data, output, [store_path])


@reports_app.command("delete")
def reports_delete(
    report_id: Annotated[int, typer.Argument(metavar="ID", help="The report's id (see `evtrack reports list`).")],
    yes: YesOpt = False,
    store: StoreOpt = None,
) -> None:
    """Delete a saved report (the stored events stay)."""
    with _open(store, create=False) as opened:
        opened.get_report(report_id)  # unknown id: say so before asking
        if not yes and not typer.confirm(f"Delete report {report_id}?"):
            fail("not deleted")
        opened.delete_report(report_id)
    stderr().print(f"deleted report {report_id}")


# -- store ---------------------------------------------------------------------------------------------------------

store_app = typer.Typer(help="The store itself: info, vacuum, prune, events, forget-failed.", no_args_is_help=True)


def info_lines(info: StoreInfo) -> list[str]:
    lines = [
        f"store: {info.path}",
        f"size: {info.size_bytes:,} bytes (schema {info.schema_version})",
        f"files: {info.files:,}; events: {info.events:,}; saved reports: {info.reports:,}",
        f"failed inputs: {len(info.failed):,}" + (f" ({FAILED_HINT})" if info.failed else ""),
        *(f"  {failed.path}: {failed.error} (failed {failed.failed_at.strftime('%Y-%m-%d %H:%M:%SZ')})"
          for failed in info.failed),
        "last ingest: " + (info.last_ingest.strftime("%Y-%m-%d %H:%M:%SZ") if info.last_ingest else "never"),
        f"hosts: {', '.join(info.hosts) if info.hosts else '-'}",
    ]
    for span in info.coverage:
        holes = len(span.intervals) - 1 if span.intervals else 0
        lines.append(
            f"  {span.host} {span.channel}: {_fmt_us(span.first_us)} .. {_fmt_us(span.last_us)}, "
            f"{span.records:,} records, {len(span.gaps)} record-id gaps, {holes} holes, {len(span.cleared_us)} clears"
        )
    return lines


@store_app.command("info")
def store_info(store: StoreOpt = None) -> None:
    """Where the store is, how big, what it holds and what the logs in it cover."""

    with _open(store, create=False) as opened:
        info = opened.info()
    typer.echo("\n".join(info_lines(info)))


@store_app.command("vacuum")
def store_vacuum(store: StoreOpt = None) -> None:
    """Reclaim free space (after deletes or prune)."""
    with _open(store, create=False) as opened:
        before, after = opened.vacuum()
    stderr().print(f"vacuumed: {before:,} -> {after:,} bytes")


@store_app.command("prune")
def store_prune(
    before: Annotated[str, typer.Option("--before", help="Delete events before this UTC day or time (YYYY-MM-DD).")],
    yes: YesOpt = False,
    store: StoreOpt = None,
) -> None:
    """Delete events older than a date; coverage before it is clipped (saved reports are kept)."""
    from evtrack.windows import local_midnight, parse_date, parse_moment, zone

    utc = zone("UTC")
    text = before.strip()
    moment = local_midnight(parse_date(text), utc) if len(text) == 10 else parse_moment(text, utc)
    with _open(store, create=False) as opened:
        if not yes and not typer.confirm(f"Delete every stored event before {moment.isoformat()}?"):
            fail("nothing pruned")
        result = opened.prune(moment)
    stderr().print(escape(
        f"pruned before {result.before.isoformat()}: {result.events_removed:,} events, "
        f"{result.clears_removed:,} log clears; coverage spans: {result.spans_clipped:,} clipped, "
        f"{result.spans_removed:,} removed (run `evtrack store vacuum` to reclaim space)"
    ))


@store_app.command("events")
def store_events(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output file (default: stdout).")] = None,
    fmt: Annotated[EventFormat, typer.Option("--format", "-f", help="Output format.")] = (
        EventFormat.parquet
    ),
    store: StoreOpt = None,
) -> None:
    """Export the stored events (the normalised table, `source` = the file each came from)."""
    from evtrack.render.events import render_events

    if fmt is EventFormat.parquet and output is None:
        fail("--format parquet needs --output FILE (it is binary)")
    with _open(store, create=False) as opened:
        table = opened.events_table()
        store_path = opened.path
    write_or_print(render_events(table, fmt.value), output, [store_path])


@store_app.command("forget-failed")
def store_forget_failed(
    paths: Annotated[
        list[str] | None,
        typer.Argument(metavar="PATH", show_default=False,
                       help="Failed inputs to forget, as `evtrack store info` lists them (default: all)."),
    ] = None,
    yes: YesOpt = False,
    store: StoreOpt = None,
) -> None:
    """Forget inputs that failed at ingest, so reports from the store no longer count them as unread."""
    with _open(store, create=False) as opened:
        remembered = [failed.path for failed in opened.failed_files()]
        named = None
        if paths:
            matches = {path: _remembered_as(path, remembered) for path in paths}
            unknown = [path for path, found in matches.items() if not found]
            if unknown:
                fail(f"not a remembered failed input: {', '.join(unknown)} (`evtrack store info` lists them)")
            named = list(dict.fromkeys(found for each in matches.values() for found in each))
        if not remembered:
            stderr().print("no failed inputs remembered")
            return
        count = len(named) if named is not None else len(remembered)
        if not yes and not typer.confirm(
            f"Forget {count} failed input{'' if count == 1 else 's'}? Reports from the store will no longer count "
            "them as unread"
        ):
            fail("nothing forgotten")
        forgotten = opened.forget_failed(named)
    stderr().print(escape(f"forgot {len(forgotten)} failed input{'' if len(forgotten) == 1 else 's'}"))


def _remembered_as(argument: str, remembered: list[str]) -> list[str]:
    """The remembered paths ``argument`` names: as ingest wrote it, else the same file from here (an ingest run
    elsewhere, or with a relative path, wrote it otherwise)."""
    if str(Path(argument)) in remembered:
        return [str(Path(argument))]
    target = Path(argument).resolve()
    return [path for path in remembered if Path(path).resolve() == target]
