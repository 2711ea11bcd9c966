"""The evtrack command line: the only module that prints, reads flags and environment, or picks exit codes.

Heavy modules (pyarrow, pandas, parsers) are imported inside the commands so that ``evtrack --help`` is instant.
"""

from __future__ import annotations

import contextlib
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from evtrack import __version__
from evtrack.cli_options import PER_HELP, BomOpt, CsvDelimiterOpt, Engine, EventFormat, ExplainFormat, Per, ReportFormat
from evtrack.errors import ConfigError, EvtrackError

if TYPE_CHECKING:
    from rich.console import Console

    from evtrack.config import FileConfig
    from evtrack.reading import FileResult, ReadResult
    from evtrack.report import Report
    from evtrack.usage import ReportSettings

app = typer.Typer(
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


def _read(paths: list[str], engine: Engine, verify: bool, jobs: int | None, quiet: bool,
          slim: bool = False) -> ReadResult:
    from evtrack.reading import default_jobs, expand_inputs, read_inputs

    console = _stderr()
    jobs = jobs or default_jobs()
    if quiet or not console.is_terminal:
        return read_inputs(paths, engine=engine.value, verify_checksums=verify, jobs=jobs, slim=slim)
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    files = expand_inputs(paths).files
    total = sum(_size(path) for path in files)
    with Progress(
        TextColumn("reading"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TextColumn("{task.fields[files]}/{task.fields[total_files]} files, {task.fields[records]:,} records"),
        TimeRemainingColumn(), console=console, transient=True,
    ) as progress:
        task = progress.add_task("read", total=total, files=0, total_files=len(files), records=0)
        seen: set[Path] = set()
        records = 0

        def advance(result: FileResult) -> None:
            nonlocal records
            records += result.stats.records
            seen.add(result.stats.path)
            progress.update(task, advance=result.stats.size, files=len(seen), records=records)

        return read_inputs(paths, engine=engine.value, verify_checksums=verify, jobs=jobs, progress=advance,
                           slim=slim)


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

        try:
            with Store.open(store, create=False) as opened:
                table = opened.events_table()
            _write_or_print(render_events(table, fmt.value, safe=not unsafe_csv, sep=csv_delimiter),
                            Path(output) if output else None, [store])
        except EvtrackError as exc:
            _fail(str(exc))
        return
    assert paths is not None
    as_dataset = output is not None and str(output) != "-" and _is_dataset_target(output, dataset)
    if as_dataset and fmt is not EventFormat.parquet:
        _fail("a dataset folder needs --format parquet")
    if (dataset or partition_by is not PartitionBy.month) and not as_dataset:
        _fail("--dataset and --partition-by need --format parquet -o DIR/")
    written = None
    try:
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
    except EvtrackError as exc:
        _fail(str(exc))
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


def _settings(
    config: Path | None, installed: int | None, tz: str | None, window: str | None, start: str | None,
    end: str | None, as_of: str | None, scopes: list[str] | None, excludes: list[str] | None,
    aliases: list[str] | None, created_at: str | None, directory: Path | None = None, netbios: str | None = None,
    keypacks: Path | None = None, product_version: str | None = None, hosts: list[str] | None = None,
    exclude_hosts: list[str] | None = None, expect_hosts: list[str] | None = None,
) -> tuple[ReportSettings, FileConfig]:
    import os
    from datetime import datetime, timezone

    from evtrack.config import load_config
    from evtrack.hosts import HostSelection
    from evtrack.identity import Exclusions
    from evtrack.usage import ReportSettings
    from evtrack.windows import WindowSpec, parse_date, parse_moment, resolve_zone, zone

    file = load_config(config)
    for warning in file.warnings:
        _stderr().print(f"[bold yellow]warning:[/] {_escape(warning)}")
    resolved = resolve_zone(tz or file.tz or "UTC")
    tzinfo = resolved.info
    window_name = window or file.window or "month"
    WindowSpec.parse(window_name)
    alias_map = dict(file.aliases)
    for item in aliases or []:
        if "=" not in item:
            raise ConfigError(f"--alias {item!r}: use fqdn=NETBIOS, e.g. contoso.local=CONTOSO")
        key, value = item.split("=", 1)
        alias_map[key.strip()] = value.strip()
    names, sids, patterns = list(file.exclude_names), list(file.exclude_sids), list(file.exclude_patterns)
    for item in excludes or []:
        if item.upper().startswith("S-1-"):
            sids.append(item)
        elif set("*?[") & set(item):
            patterns.append(item)
        else:
            names.append(item)
    created: datetime | None = None
    if created_at:
        created = parse_moment(created_at, zone("UTC"))
    elif os.environ.get("SOURCE_DATE_EPOCH", "").strip().isdigit():
        created = datetime.fromtimestamp(int(os.environ["SOURCE_DATE_EPOCH"]), tz=timezone.utc)
    domains, ous = _scopes(scopes or list(file.scope) or [f"domain:{d}" for d in file.domains])
    if ous and directory is None:
        raise ConfigError("an OU scope needs --directory (logon events carry no OU)")
    loaded_directory = None
    if directory is not None:
        from evtrack.directory import load_directory

        loaded_directory = load_directory(directory, netbios=netbios)
    source = None if installed is None else (
        "EVTRACK_INSTALLED" if os.environ.get("EVTRACK_INSTALLED", "").strip() == str(installed) else "--installed")
    setting_warnings: list[str] = []
    if installed is None and keypacks is not None:  # flags (--keypacks) override the config file
        from evtrack.keypacks import load_keypacks

        packs = load_keypacks(keypacks)
        installed = packs.per_user_installed(product_version)
        source = f"key packs {keypacks}" + (f" ({product_version})" if product_version else "")
        if not packs.matches(product_version):
            setting_warnings.append(f"{keypacks}: no Per User CAL key pack" + (
                f" of product version {product_version!r}" if product_version else "") + ": installed counts as 0.")
    settings = ReportSettings(
        setting_warnings=tuple(setting_warnings),
        installed=installed if installed is not None else file.installed,
        installed_source=source if installed is not None else (
            f"config file {file.path}" if file.installed is not None else None),
        tz=resolved.name,
        window=window_name,
        start=parse_date(start) if start else None,
        end=parse_date(end) if end else None,
        as_of=parse_moment(as_of, tzinfo) if as_of else None,
        aliases=alias_map,
        exclusions=Exclusions.build(names, sids, patterns),
        domains=domains,
        ous=ous,
        directory=loaded_directory,
        created_at=created,
        hosts=HostSelection.build(hosts or file.hosts_include, [*file.hosts_exclude, *(exclude_hosts or [])]),
        expected_hosts=tuple(expect_hosts or file.hosts_expected),
    )
    return settings, file


def _zone_line(used: str, flag: str | None, file: FileConfig) -> str:
    """Which time zone cut the windows, and where it came from: a report must never leave that to guesswork."""
    if flag:
        origin = "--tz/EVTRACK_TZ" + (f" {flag!r}" if flag != used else "")
    elif file.tz:
        origin = f"tz{'' if file.tz == used else f' {file.tz!r}'} in {file.path}"
    else:
        origin = "the default; set another with --tz or tz in evtrack.toml"
    return f"time zone: {used} ({origin})"


def _config_engine(file: FileConfig) -> Engine:
    try:
        return Engine(file.engine or Engine.evtx.value)
    except ValueError:
        raise ConfigError(f"{file.path}: engine must be one of {', '.join(e.value for e in Engine)}") from None


def _scopes(items: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``all`` / ``domain:X`` / ``ou:DN`` → (domains, OUs); ``all`` alone means no filter."""
    domains: list[str] = []
    ous: list[str] = []
    for item in items:
        kind, _, value = item.partition(":")
        kind = kind.strip().lower()
        if kind == "all" and not value:
            continue
        if kind == "domain" and value.strip():
            domains.append(value.strip())
        elif kind == "ou" and value.strip():
            ous.append(value.strip())
        else:
            raise ConfigError(f"--scope {item!r}: use all, domain:NAME or ou:OU=...,DC=...")
    return tuple(domains), tuple(ous)


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

    from evtrack.pipeline import source_from_read
    from evtrack.usage import build_report

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
    result = None
    dataset_lines: list[str] = []
    try:
        settings, _file = _settings(config, installed, tz, window, start, end, as_of, scope, exclude, alias,
                                    created_at, directory, netbios, keypacks, product_version, host, exclude_host,
                                    expect_host)
        if paths:
            result = _read(paths, engine or _config_engine(_file), verify_checksums, jobs, quiet, slim=True)
            _require_something_read(result, paths, quiet)
            built = build_report(source_from_read(result), settings)
        elif events_dataset is not None:
            built, dataset_lines = _report_from_dataset(events_dataset, settings)
        else:
            from evtrack.store import Store

            with Store.open(store_path, create=False) as opened:
                built = build_report(opened.report_source(), settings)
        if save:
            from evtrack.store import Store

            with Store.open(store_path) as opened:
                if opened.created:
                    announce_new_store(opened.path, quiet)
                saved_id = opened.save_report(built)
        data = render_report(built, fmt, per, safe=not unsafe_csv, bom=bom, sep=csv_delimiter)
        _write_or_print(data, output, [stats.path for stats in result.files] if result else [])
    except EvtrackError as exc:
        _fail(str(exc))
    if result is not None:
        _print_summary(_summary(result, result.table.num_rows, verbose), quiet)
    _print_summary(dataset_lines, quiet)
    _print_summary([_zone_line(settings.tz, tz, _file)], quiet)
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


def _report_from_dataset(location: str, settings: ReportSettings) -> tuple[Report, list[str]]:
    """The report from an events dataset, and the lines to print about what was read."""
    import dataclasses
    from datetime import timedelta

    from evtrack.dataset import SIDECAR, push_down_range, read_events_dataset
    from evtrack.usage import build_report
    from evtrack.windows import local_midnight, zone

    tz = zone(settings.tz)
    time_range = None
    if settings.start is not None or settings.end is not None:
        start = local_midnight(settings.start, tz) if settings.start else None
        end = local_midnight(settings.end + timedelta(days=1), tz) if settings.end else None
        time_range = push_down_range(start, end)
    read = read_events_dataset(location, time_range=time_range)
    built = build_report(read.source, settings)
    lines = [f"dataset: {location}: {read.rows:,} events read"]
    if time_range is not None:
        low, high = time_range
        note = (f"Only events from {low:%Y-%m-%d} to {high:%Y-%m-%d} (UTC) were read from the dataset (--from/--to): "
                "per-user totals and first/last seen, new users, and the estimate as of a date after the period "
                "count only those.")
        built = dataclasses.replace(built, notes=(*built.notes, note))
        lines[0] += f" ({low:%Y-%m-%d} .. {high:%Y-%m-%d} UTC pushed down)"
    if not read.has_coverage:
        lines.append(f"warning: {location} has no {SIDECAR}: coverage is unknown, so every window is unknown")
    return built, lines


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
    from evtrack.pipeline import source_from_read
    from evtrack.render.explain import explanation_json, explanation_text
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
    result = None
    try:
        settings, _file = _settings(config, None, tz, kind, start, end, None, scope, exclude, alias, None, directory,
                                    netbios, None, None, host, exclude_host, expect_host)
        if paths:
            result = _read(paths, engine or _config_engine(_file), verify_checksums, jobs, quiet, slim=True)
            _require_something_read(result, paths, quiet)
            source = source_from_read(result)
        elif events_dataset is not None:
            from evtrack.dataset import read_events_dataset

            source = read_events_dataset(events_dataset).source
        else:
            from evtrack.store import Store

            with Store.open(store_path, create=False) as opened:
                source = opened.report_source()
        answer = explain_name(source, settings, name, label)
    except EvtrackError as exc:
        _fail(str(exc))
    if result is not None:
        _print_summary(_summary(result, result.table.num_rows, False), quiet)
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
    try:
        settings, file = _settings(config, installed, tz, window, None, None, None, scope, exclude, alias, None)
    except EvtrackError as exc:
        _fail(str(exc))
    def strings(values: list[str]) -> str:
        return "[" + ", ".join(_toml_string(v) for v in values) + "]"

    try:
        engine = _config_engine(file).value
    except EvtrackError as exc:
        _fail(str(exc))
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
    except (EvtrackError, OSError) as exc:
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
