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
from evtrack.errors import EvtrackError

if TYPE_CHECKING:
    from rich.console import Console

    from evtrack.reading import ReadResult

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


class Engine(str, Enum):
    evtx = "evtx"
    python_evtx = "python-evtx"


class EventFormat(str, Enum):
    csv = "csv"
    jsonl = "jsonl"
    parquet = "parquet"


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
    int | None, typer.Option("--jobs", "-j", min=1, help="Files read in parallel (default: number of cores).")
]


def _read(paths: list[str], engine: Engine, verify: bool, jobs: int | None, quiet: bool) -> ReadResult:
    from evtrack.reading import default_jobs, expand_inputs, read_inputs

    console = _stderr()
    jobs = jobs or default_jobs()
    if quiet or not console.is_terminal:
        return read_inputs(paths, engine=engine.value, verify_checksums=verify, jobs=jobs)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    total = len(expand_inputs(paths).files)
    with Progress(
        TextColumn("reading"), BarColumn(), MofNCompleteColumn(), TextColumn("files"), TimeRemainingColumn(),
        console=console, transient=True,
    ) as progress:
        task = progress.add_task("read", total=total)
        return read_inputs(
            paths, engine=engine.value, verify_checksums=verify, jobs=jobs,
            progress=lambda _result: progress.advance(task),
        )


def _summary(result: ReadResult, kept: int, verbose: bool) -> list[str]:
    lines = [
        f"files: {len(result.files)} read, {len(result.file_errors)} failed, {len(result.ignored)} ignored; "
        f"records: {result.records:,} read, {result.skipped:,} skipped; events kept: {kept:,} (engine {result.engine})"
    ]
    for issue in result.file_errors:
        lines.append(f"  failed: {issue.path}: {issue.reason}")
    for issue in result.ignored:
        lines.append(f"  ignored: {issue.path}: {issue.reason}")
    issues = result.issues
    shown = issues if verbose else issues[:5]
    for issue in shown:
        lines.append(f"  skipped: {issue}" + (f" ({issue.skipped} records)" if issue.skipped > 1 else ""))
    if len(issues) > len(shown):
        lines.append(f"  ... and {len(issues) - len(shown)} more read issues (details: -v)")
    return lines


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


@app.command()
def events(
    paths: PathsArg,
    fmt: Annotated[EventFormat, typer.Option("--format", "-f", help="Output format.")] = EventFormat.csv,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output file (default: stdout).")] = None,
    engine: EngineOpt = Engine.evtx,
    strict: StrictOpt = False,
    verify_checksums: ChecksumOpt = True,
    jobs: JobsOpt = None,
    unsafe_csv: Annotated[
        bool, typer.Option("--raw-csv", help="Do not neutralise cells that spreadsheets would run as formulas.")
    ] = False,
    quiet: QuietOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List every read issue.")] = False,
) -> None:
    """Write the normalised table of RDP-relevant events (logons, reconnects, logoffs, log clears)."""
    from evtrack.render.events import render_events

    if fmt is EventFormat.parquet and output is None:
        _fail("--format parquet needs --output FILE (it is binary)")
    try:
        result = _read(paths, engine, verify_checksums, jobs, quiet)
        data = render_events(result.table, fmt.value, safe=not unsafe_csv)
        _write_or_print(data, output, [stats.path for stats in result.files])
    except EvtrackError as exc:
        _fail(str(exc))
    _print_summary(_summary(result, result.table.num_rows, verbose), quiet)
    if strict and (result.skipped or result.file_errors or result.issues):
        raise typer.Exit(EXIT_ERROR)


def main() -> None:
    """Console-script entry point."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="replace")
    app()
