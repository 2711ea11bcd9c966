"""The evtrack command line: the only module that prints, reads flags and environment, or picks exit codes.

Heavy modules (pyarrow, pandas, parsers) are imported inside the commands so that ``evtrack --help`` is instant.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from evtrack import __version__
from evtrack.cli_options import PER_HELP, BomOpt, CsvDelimiterOpt, Engine, EventFormat, ExplainFormat, Per, ReportFormat
from evtrack.errors import ConfigError, EvtrackError

if TYPE_CHECKING:
    from rich.console import Console
    from typer._click import Context

    from evtrack.config import FileConfig
    from evtrack.dataset import DatasetRead
    from evtrack.pipeline import FilesInput
    from evtrack.reading import FileResult, ReadResult
    from evtrack.report import Report
    from evtrack.settings import ResolvedSettings, SettingFlags


class _Commands(TyperGroup):
    """The root command group: the one place an :class:`EvtrackError` becomes a message and an exit code."""

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except EvtrackError as exc:
            _fail(str(exc))


app = typer.Typer(
    cls=_Commands,
    name="evtrack",
    help="Estimate RDS Per User CAL usage from exported Windows logon event logs (.evtx or XML).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

EXIT_ERROR = 1
EXIT_OVER = 3
EXIT_INCOMPLETE = 4
EXIT_INTERRUPTED = 130
"""Ctrl-C, as shells report a process ended by SIGINT."""




def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    _stderr().print(f"[bold red]error:[/] {_escape(message)}")
    raise typer.Exit(code)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"evtrack {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Estimate RDS Per User CAL usage from exported Windows logon event logs (.evtx or XML)."""


PathsArg = Annotated[
    list[str],
    typer.Argument(help="Event log files (.evtx, XML exports), folders (searched recursively) and glob patterns."),
]
EngineOpt = Annotated[
    Engine,
    typer.Option("--engine", help="Parser for .evtx files: evtx (pyevtx-rs, fast) or python-evtx (pure Python)."),
]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Exit 1 when any record or file could not be read.")]
ChecksumOpt = Annotated[
    bool,
    typer.Option(
        "--verify-checksums/--no-verify-checksums",
        help="Check chunk CRC32s and skip (and report) chunks that fail, rather than trusting them.",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary on stderr.")]
JobsOpt = Annotated[
    int | None,
    typer.Option("--jobs", "-j", min=1, help="Worker processes: files, and chunk ranges of large .evtx files, read "
                 "in parallel; the result does not depend on it (default: number of cores)."),
]


@contextlib.contextmanager
def _files_input(paths: list[str], engine: Engine, verify: bool, jobs: int | None, quiet: bool, slim: bool = False,
                 on_read: Callable[[ReadResult], None] | None = None) -> Iterator[FilesInput]:
    """The files adapter for ``paths``, with a progress bar on a terminal (gone before ``on_read`` runs)."""
    from evtrack.pipeline import FilesInput
    from evtrack.reading import default_jobs, expand_inputs

    console = _stderr()
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


def _read(paths: list[str], engine: Engine, verify: bool, jobs: int | None, quiet: bool,
          slim: bool = False) -> ReadResult:
    with _files_input(paths, engine, verify, jobs, quiet, slim) as files:
        return files.read()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _summary(result: ReadResult, kept: int, verbose: bool) -> list[str]:
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


def _require_something_read(result: ReadResult, paths: list[str], quiet: bool) -> None:
    """Inputs that all failed (missing, unreadable, damaged) or that hold no event log are an error, not an empty
    report."""
    if result.files:
        return
    _print_summary(_summary(result, 0, True), quiet)
    if result.file_errors:
        _fail("none of the inputs could be read")
    _fail(no_logs_found(paths))


def no_logs_found(paths: list[str]) -> str:
    return f"no event logs found in {', '.join(paths)}"


def announce_new_store(path: Path, quiet: bool) -> None:
    """One line when a command made a new store file: a mistyped ``--store`` shows at once."""
    if not quiet:
        _stderr().print(_escape(f"created a new evtrack store: {path}"))


def _print_summary(lines: list[str], quiet: bool) -> None:
    if quiet:
        return
    console = _stderr()
    for line in lines:
        console.print(_escape(line))


def _write_or_print(data: bytes, output: Path | None, inputs: list[Path]) -> None:
    from evtrack.output import check_not_input, write_atomic

    if output is None or str(output) == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    check_not_input(output, inputs)
    write_atomic(output, data)


class PartitionBy(str, Enum):
    month = "month"
    host = "host"


def _is_dataset_target(output: str, dataset: bool) -> bool:
    """``-o DIR/`` (ends with a separator), ``-o`` an existing folder, or ``--dataset``."""
    import os

    return dataset or output.endswith(("/", os.sep)) or Path(output).is_dir()


EventPathsArg = Annotated[
    list[str] | None,
    typer.Argument(help="Event log files (.evtx, XML exports), folders and glob patterns (or none, with --store)."),
]


@app.command()
def events(
    paths: EventPathsArg = None,
    store: Annotated[
        Path | None,
        typer.Option("--store", help="Export the events ingested into this evtrack store instead of reading files."),
    ] = None,
    fmt: Annotated[EventFormat, typer.Option("--format", "-f", help="Output format.")] = EventFormat.csv,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Output file (default: stdout); with --format parquet, a folder "
                     "(DIR/, an existing folder, or --dataset) gets a partitioned dataset."),
    ] = None,
    dataset: Annotated[
        bool, typer.Option("--dataset", help="Write -o as a hive-partitioned Parquet dataset folder (month=YYYY-MM).")
    ] = False,
    partition_by: Annotated[
        PartitionBy,
        typer.Option("--partition-by", help="Dataset partitions: month, or host (month, then host)."),
    ] = PartitionBy.month,
    engine: EngineOpt = Engine.evtx,
    strict: StrictOpt = False,
    verify_checksums: ChecksumOpt = True,
    jobs: JobsOpt = None,
    unsafe_csv: Annotated[
        bool, typer.Option("--raw-csv", help="Do not neutralise cells that spreadsheets would run as formulas.")
    ] = False,
    csv_delimiter: CsvDelimiterOpt = ",",
    quiet: QuietOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List every read issue.")] = False,
) -> None:
    """Write the normalised table of RDP-relevant events (logons, reconnects, logoffs, log clears)."""
    from evtrack.render.events import render_events

    if fmt is EventFormat.parquet and output is None:
        _fail("--format parquet needs --output FILE or DIR/ (it is binary)")
    if (store is None) == (not paths):
        _fail("give event log files or folders, or --store PATH (not both)")
    if store is not None:
        from evtrack.store import Store

        with Store.open(store, create=False) as opened:
            table = opened.events_table()
        _write_or_print(render_events(table, fmt.value, safe=not unsafe_csv, sep=csv_delimiter),
                        Path(output) if output else None, [store])
        return
    assert paths is not None
    as_dataset = output is not None and str(output) != "-" and _is_dataset_target(output, dataset)
    if as_dataset and fmt is not EventFormat.parquet:
        _fail("a dataset folder needs --format parquet")
    if (dataset or partition_by is not PartitionBy.month) and not as_dataset:
        _fail("--dataset and --partition-by need --format parquet -o DIR/")
    written = None
    result = _read(paths, engine, verify_checksums, jobs, quiet)
    _require_something_read(result, paths, quiet)
    if as_dataset:
        assert output is not None
        from evtrack.dataset import write_events_dataset
        from evtrack.pipeline import source_from_read

        written = write_events_dataset(source_from_read(result), Path(output),
                                       by_host=partition_by is PartitionBy.host)
    else:
        data = render_events(result.table, fmt.value, safe=not unsafe_csv, sep=csv_delimiter)
        _write_or_print(data, None if output is None else Path(output), [stats.path for stats in result.files])
    _print_summary(_summary(result, result.table.num_rows, verbose), quiet)
    if written is not None and not quiet:
        _stderr().print(_escape(f"dataset: {written.path}: {written.rows:,} rows in {written.files} files, "
                                f"{len(written.partitions)} partitions, coverage in _evtrack_coverage.json"))
    if strict and (result.skipped or result.file_errors or result.issues):
        raise typer.Exit(EXIT_ERROR)




ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", envvar="EVTRACK_CONFIG", help="TOML config file (default: ./evtrack.toml if present)."),
]
InstalledOpt = Annotated[
    int | None,
    typer.Option(
        "--installed", min=0, envvar="EVTRACK_INSTALLED", help="Per User CALs installed on the licence server."
    ),
]
TzOpt = Annotated[
    str | None,
    typer.Option("--tz", envvar="EVTRACK_TZ", help="Time zone of window boundaries: IANA (Europe/Berlin), Windows "
                 "(W. Europe Standard Time) or local (default UTC)."),
]
WindowOpt = Annotated[
    str | None,
    typer.Option("--window", help="month (default), week, blocks:30d (back-to-back 30-day blocks), or range "
                 "(one window)."),
]
FromOpt = Annotated[str | None, typer.Option("--from", help="First day of the period (YYYY-MM-DD, local).")]
ToOpt = Annotated[str | None, typer.Option("--to", help="Last day of the period, inclusive (YYYY-MM-DD, local).")]
AsOfOpt = Annotated[
    str | None, typer.Option("--as-of", help="Date or time for the licence-server view (default: end of data).")
]
ScopeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--scope",
        help="all (default), domain:CONTOSO (NetBIOS or FQDN), or ou:OU=Sales,DC=contoso,DC=com (needs "
        "--directory; child OUs included). Repeatable.",
    ),
]
DirectoryOpt = Annotated[
    Path | None,
    typer.Option("--directory", envvar="EVTRACK_DIRECTORY",
                 help="User export (Get-ADUser | Export-Csv, or Entra 'Download users' CSV): links identities, "
                 "display names, OU scope."),
]
NetbiosOpt = Annotated[
    str | None, typer.Option("--netbios", help="NetBIOS name of the directory export's domain (e.g. CONTOSO).")
]
KeypacksOpt = Annotated[
    Path | None,
    typer.Option("--keypacks", envvar="EVTRACK_KEYPACKS",
                 help="Win32_TSLicenseKeyPack CSV export: installed = its Per User CALs (unless --installed)."),
]
ProductVersionOpt = Annotated[
    str | None, typer.Option("--product-version", help="With --keypacks: count only this version's packs (2019).")
]
ExcludeOpt = Annotated[
    list[str] | None,
    typer.Option("--exclude", help="Do not count this account: DOMAIN\\sam, sam, a SID, or a glob like 'svc_*'."),
]
AliasOpt = Annotated[
    list[str] | None, typer.Option("--alias", help="Map an FQDN or UPN suffix to a NetBIOS domain: fqdn=NETBIOS.")
]


def _settings(flags: SettingFlags) -> ResolvedSettings:
    """The settings, resolved once: config file (its warnings printed first), environment, flags."""
    import os

    from evtrack.config import load_config
    from evtrack.settings import resolve_settings

    file = load_config(flags.config)
    for warning in file.warnings:
        _stderr().print(f"[bold yellow]warning:[/] {_escape(warning)}")
    return resolve_settings(flags, file, os.environ)


def _config_engine(file: FileConfig) -> Engine:
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
    from evtrack.render.csv import proof_csv, users_csv, windows_csv
    from evtrack.render.json import report_json
    from evtrack.render.table import report_table

    if fmt is ReportFormat.json:
        return report_json(report).encode("utf-8")
    if fmt is ReportFormat.html:
        from evtrack.render.html import report_html

        return report_html(report).encode("utf-8")
    if fmt is ReportFormat.csv:
        rows = {Per.window: windows_csv, Per.proof: proof_csv, Per.user: users_csv}[per]
        return rows(report, safe=safe, bom=bom, sep=sep).encode("utf-8")
    return report_table(report, ascii_only=_ascii_console()).encode(sys.stdout.encoding or "utf-8", "replace")


def _check_code(report: Report) -> int:
    if report.over_by > 0:
        return EXIT_OVER
    if not report.coverage_complete or report.verdict == "unknown":
        return EXIT_INCOMPLETE
    return 0


OptionalPathsArg = Annotated[
    list[str] | None,
    typer.Argument(help="Event log files, folders and glob patterns (or none, with --store)."),
]


@app.command()
def report(
    paths: OptionalPathsArg = None,
    store: Annotated[
        Path | None,
        typer.Option("--store", help="Report from this evtrack store (see `evtrack ingest`) instead of files "
                     "(default with no files: EVTRACK_STORE)."),
    ] = None,
    save: Annotated[bool, typer.Option("--save", help="Keep the report in the store (`evtrack reports`).")] = False,
    events_dataset: Annotated[
        str | None,
        typer.Option("--events", help="Report from an events dataset folder or URL (`evtrack events --format "
                     "parquet -o DIR/`) instead of files."),
    ] = None,
    installed: InstalledOpt = None,
    window: WindowOpt = None,
    tz: TzOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    as_of: AsOfOpt = None,
    fmt: Annotated[ReportFormat, typer.Option("--format", "-f", help="Output format.")] = ReportFormat.table,
    per: Annotated[Per, typer.Option("--per", help=PER_HELP)] = Per.user,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output file (default: stdout).")] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 3 when over the installed count, 4 when log coverage is incomplete.")
    ] = False,
    config: ConfigOpt = None,
    scope: ScopeOpt = None,
    directory: DirectoryOpt = None,
    netbios: NetbiosOpt = None,
    keypacks: KeypacksOpt = None,
    product_version: ProductVersionOpt = None,
    exclude: ExcludeOpt = None,
    alias: AliasOpt = None,
    host: Annotated[
        list[str] | None,
        typer.Option("--host", help="Count only hosts matching this glob pattern (repeatable; default: every host)."),
    ] = None,
    exclude_host: Annotated[
        list[str] | None,
        typer.Option("--exclude-host", help="Do not count hosts matching this glob pattern, e.g. dc* (repeatable)."),
    ] = None,
    expect_host: Annotated[
        list[str] | None,
        typer.Option("--expect-host", help="A session host that must have logs (repeatable): without any, its "
                     "windows are partial and it is named."),
    ] = None,
    engine: Annotated[Engine | None, EngineOpt.__metadata__[0]] = None,
    verify_checksums: ChecksumOpt = True,
    jobs: JobsOpt = None,
    strict: StrictOpt = False,
    bom: BomOpt = True,
    csv_delimiter: CsvDelimiterOpt = ",",
    unsafe_csv: Annotated[
        bool, typer.Option("--raw-csv", help="Do not neutralise cells that spreadsheets would run as formulas.")
    ] = False,
    created_at: Annotated[
        str | None, typer.Option("--created-at", help="Pin the report's creation time (also SOURCE_DATE_EPOCH).")
    ] = None,
    quiet: QuietOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List every read issue.")] = False,
) -> None:
    """Estimate Per User CALs in use: distinct RDP users per window against the installed count."""
    import os

    from evtrack.pipeline import DatasetInput, ReportInput, StoreInput, run
    from evtrack.settings import SettingFlags

    env_store = Path(os.environ["EVTRACK_STORE"]) if os.environ.get("EVTRACK_STORE") else None
    # EVTRACK_STORE stands in for --store where a store is wanted: to --save into, or to report from (no inputs)
    store_path = store or (env_store if save or (not paths and events_dataset is None) else None)
    if events_dataset is not None and (paths or store is not None or save):
        _fail("--events reads a dataset: give no files, --store or --save with it")
    if not paths and store_path is None and events_dataset is None:
        _fail("give event log files or folders, or --store PATH (or EVTRACK_STORE), or --events DIR")
    if paths and store_path is not None and not save:
        _fail("give either files or --store, not both (to add files to a store: evtrack ingest)")
    if save and store_path is None:
        _fail("--save needs --store PATH (or EVTRACK_STORE)")
    reads: list[ReadResult] = []
    dataset_reads: list[DatasetRead] = []
    resolved = _settings(SettingFlags(
        config=config, installed=installed, tz=tz, window=window, start=start, end=end, as_of=as_of,
        scopes=tuple(scope or ()), excludes=tuple(exclude or ()), aliases=tuple(alias or ()), created_at=created_at,
        directory=directory, netbios=netbios, keypacks=keypacks, product_version=product_version,
        hosts=tuple(host or ()), exclude_hosts=tuple(exclude_host or ()), expect_hosts=tuple(expect_host or ()),
    ))
    with contextlib.ExitStack() as stack:
        source: ReportInput
        if paths:
            def refuse_empty(result: ReadResult) -> None:
                reads.append(result)
                _require_something_read(result, paths, quiet)

            source = stack.enter_context(_files_input(
                paths, engine or _config_engine(resolved.file), verify_checksums, jobs, quiet, slim=True,
                on_read=refuse_empty))
        elif events_dataset is not None:
            source = DatasetInput(events_dataset, on_read=dataset_reads.append)
        else:
            source = StoreInput(store_path)
        built = run(source, resolved.report)
    result = reads[0] if reads else None
    if save:
        from evtrack.store import Store

        with Store.open(store_path) as opened:
            if opened.created:
                announce_new_store(opened.path, quiet)
            saved_id = opened.save_report(built)
    data = render_report(built, fmt, per, safe=not unsafe_csv, bom=bom, sep=csv_delimiter)
    _write_or_print(data, output, [stats.path for stats in result.files] if result else [])
    if result is not None:
        _print_summary(_summary(result, result.table.num_rows, verbose), quiet)
    if dataset_reads:
        assert events_dataset is not None
        _print_summary(_dataset_lines(events_dataset, dataset_reads[0]), quiet)
    _print_summary([resolved.zone_line()], quiet)
    if save and not quiet:
        _stderr().print(f"saved as report {saved_id} in {store_path}")
    for warning in built.warnings:
        _stderr().print(f"warning: {_escape(warning)}")
    if strict and result is not None and (result.skipped or result.file_errors or result.issues):
        raise typer.Exit(EXIT_ERROR)
    if strict and built.warnings:
        raise typer.Exit(EXIT_ERROR)
    if check:
        raise typer.Exit(_check_code(built))


def _dataset_lines(location: str, read: DatasetRead) -> list[str]:
    """What was read from an events dataset, for stderr."""
    from evtrack.dataset import SIDECAR

    lines = [f"dataset: {location}: {read.rows:,} events read"]
    if read.time_range is not None:
        low, high = read.time_range
        lines[0] += f" ({low:%Y-%m-%d} .. {high:%Y-%m-%d} UTC pushed down)"
    if not read.has_coverage:
        lines.append(f"warning: {location} has no {SIDECAR}: coverage is unknown, so every window is unknown")
    return lines


@app.command()
def explain(
    name: Annotated[str, typer.Argument(help="The account: DOMAIN\\sam, sam, a UPN (sam@example.com) or a SID.")],
    paths: OptionalPathsArg = None,
    window: Annotated[
        list[str] | None,
        typer.Option("--window", help="The window to explain (its label, e.g. 2024-02), or the kind of windows as "
                     "for report (month, week, blocks:30d, range). Repeatable: --window week --window 2024-W05."),
    ] = None,
    store: Annotated[
        Path | None,
        typer.Option("--store", help="Explain from this evtrack store instead of files (default with no files: "
                     "EVTRACK_STORE)."),
    ] = None,
    events_dataset: Annotated[
        str | None, typer.Option("--events", help="Explain from an events dataset folder or URL instead of files.")
    ] = None,
    fmt: Annotated[ExplainFormat, typer.Option("--format", "-f", help="Output format.")] = ExplainFormat.text,
    tz: TzOpt = None,
    start: FromOpt = None,
    end: ToOpt = None,
    config: ConfigOpt = None,
    scope: ScopeOpt = None,
    directory: DirectoryOpt = None,
    netbios: NetbiosOpt = None,
    exclude: ExcludeOpt = None,
    alias: AliasOpt = None,
    host: Annotated[
        list[str] | None,
        typer.Option("--host", help="Count only hosts matching this glob pattern (repeatable; default: every host)."),
    ] = None,
    exclude_host: Annotated[
        list[str] | None,
        typer.Option("--exclude-host", help="Do not count hosts matching this glob pattern, e.g. dc* (repeatable)."),
    ] = None,
    expect_host: Annotated[
        list[str] | None, typer.Option("--expect-host", help="A session host that must have logs (repeatable).")
    ] = None,
    engine: Annotated[Engine | None, EngineOpt.__metadata__[0]] = None,
    verify_checksums: ChecksumOpt = True,
    jobs: JobsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Why a person is counted (aliases, how they were linked, the proof per window), or why a name is not."""
    import os

    from evtrack.explain import explain as explain_name
    from evtrack.pipeline import DatasetInput, ReportInput, StoreInput, run_with_source
    from evtrack.render.explain import explanation_json, explanation_text
    from evtrack.settings import SettingFlags
    from evtrack.windows import WindowSpec

    env_store = Path(os.environ["EVTRACK_STORE"]) if os.environ.get("EVTRACK_STORE") else None
    store_path = store or (env_store if not paths and events_dataset is None else None)
    if sum(bool(x) for x in (paths, store is not None, events_dataset is not None)) > 1:
        _fail("give event log files, --store PATH or --events DIR (one of them)")
    if not paths and store_path is None and events_dataset is None:
        _fail("give event log files or folders, or --store PATH (or EVTRACK_STORE), or --events DIR")
    kind: str | None = None
    label: str | None = None
    for value in window or []:
        try:
            WindowSpec.parse(value)
            kind = value
        except ConfigError:
            label = value
    resolved = _settings(SettingFlags(
        config=config, tz=tz, window=kind, start=start, end=end, scopes=tuple(scope or ()),
        excludes=tuple(exclude or ()), aliases=tuple(alias or ()), directory=directory, netbios=netbios,
        hosts=tuple(host or ()), exclude_hosts=tuple(exclude_host or ()), expect_hosts=tuple(expect_host or ()),
    ))
    reads: list[ReadResult] = []
    with contextlib.ExitStack() as stack:
        source: ReportInput
        if paths:
            def refuse_empty(result: ReadResult) -> None:
                reads.append(result)
                _require_something_read(result, paths, quiet)

            source = stack.enter_context(_files_input(
                paths, engine or _config_engine(resolved.file), verify_checksums, jobs, quiet, slim=True,
                on_read=refuse_empty))
        elif events_dataset is not None:
            source = DatasetInput(events_dataset, push_down=False)
        else:
            source = StoreInput(store_path)
        built, read_source = run_with_source(source, resolved.report)
    answer = explain_name(read_source, resolved.report, name, label, report=built)
    if reads:
        _print_summary(_summary(reads[0], reads[0].table.num_rows, False), quiet)
    text = explanation_json(answer) if fmt is ExplainFormat.json else explanation_text(answer)
    sys.stdout.write(text)
    sys.stdout.flush()


config_app = typer.Typer(help="Show the effective settings.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(
    config: ConfigOpt = None,
    installed: InstalledOpt = None,
    tz: TzOpt = None,
    window: WindowOpt = None,
    scope: ScopeOpt = None,
    exclude: ExcludeOpt = None,
    alias: AliasOpt = None,
) -> None:
    """Print the settings a report would use: config file merged with flags and environment."""
    from evtrack.settings import SettingFlags

    resolved = _settings(SettingFlags(config=config, installed=installed, tz=tz, window=window,
                                      scopes=tuple(scope or ()), excludes=tuple(exclude or ()),
                                      aliases=tuple(alias or ())))
    settings, file = resolved.report, resolved.file

    def strings(values: list[str]) -> str:
        return "[" + ", ".join(_toml_string(v) for v in values) + "]"

    engine = _config_engine(file).value
    lines = [
        f"# config file: {file.path if file.path else '(none)'}",
        "# the settings a report would use (file, flags and environment merged); this output loads as evtrack.toml",
        f"installed = {settings.installed}" if settings.installed is not None else "# installed = (not set)",
        f"tz = {_toml_string(settings.tz)}",
        f"window = {_toml_string(settings.window)}",
        f"engine = {_toml_string(engine)}",
        "scope = " + strings([f"domain:{d}" for d in settings.domains] + [f"ou:{o}" for o in settings.ous])
        + "  # empty: all trusted domains",
        "",
        "[aliases]",
        *(f"{_toml_string(k)} = {_toml_string(v)}" for k, v in sorted(settings.aliases.items())),
        "",
        "[exclude]",
        "names = " + strings(sorted(settings.exclusions.names)),
        "sids = " + strings(sorted(settings.exclusions.sids)),
        "patterns = " + strings(list(settings.exclusions.patterns)),
        "",
        "[hosts]",
        "include = " + strings(list(settings.hosts.include)) + "  # empty: every host",
        "exclude = " + strings(list(settings.hosts.exclude)),
        "expected = " + strings(list(settings.expected_hosts)),
    ]
    typer.echo("\n".join(lines))


def _toml_string(text: str) -> str:
    """``text`` as a TOML string: single-quoted (backslashes stay literal) unless it holds a quote or control."""
    import json

    if "'" not in text and text.isprintable():
        return f"'{text}'"
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")  # JSON's escapes are TOML's too


@app.command()
def sample(
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write the logs into.")] = Path("sample"),
    users: Annotated[int, typer.Option("--users", min=1, help="Number of users.")] = 12,
    hosts: Annotated[int, typer.Option("--hosts", min=1, help="Number of session hosts.")] = 2,
    start: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD).")] = "2024-01-01",
    end: Annotated[str, typer.Option("--to", help="Last day (YYYY-MM-DD).")] = "2024-04-30",
    tz: Annotated[str, typer.Option("--tz", help="Time zone of the working hours and of the ground truth.")] = "UTC",
    seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed writes the same bytes.")] = 1,
    noise_ratio: Annotated[
        float, typer.Option("--noise-ratio", min=0.0, help="Non-RDP records per RDP record (Security noise).")
    ] = 3.0,
    size_mb: Annotated[
        float | None, typer.Option("--size-mb", min=0.1, help="Aim at about this many MB in total (adds noise).")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Write a synthetic session-host fleet as real .evtx files, with ground_truth.json."""
    from evtrack.synth import write_sample
    from evtrack.windows import parse_date, resolve_zone

    try:
        tz = resolve_zone(tz).name
        first, last = parse_date(start), parse_date(end)
        if last < first:
            raise ConfigError(f"--to {end} is before --from {start}")
        output.mkdir(parents=True, exist_ok=True)
        result = write_sample(output, users=users, hosts=hosts, start=first, end=last, tz=tz, seed=seed,
                              noise_ratio=noise_ratio, size_mb=size_mb)
    except OSError as exc:  # the output folder: not an EvtrackError
        _fail(str(exc))
    if not quiet:
        _stderr().print(_escape(
            f"wrote {len(result.files)} files ({result.bytes / 1e6:.1f} MB) to {output} "
            f"in {result.seconds:.1f} s; ground truth: {result.ground_truth}"
        ))


def _register_store_commands() -> None:
    from evtrack.cli_store import register

    register(app)


_register_store_commands()


def main() -> None:
    """Console-script entry point."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="replace")
    app()
