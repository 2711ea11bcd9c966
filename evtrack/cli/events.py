"""``evtrack events`` (the normalised event table) and ``evtrack sample`` (a synthetic fleet)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from evtrack.cli.common import print_lines, read_files, read_summary, require_something_read, write_or_print
from evtrack.cli.errors import EXIT_ERROR, escape, fail, stderr
from evtrack.cli.options import (
    ChecksumOpt,
    ConfigOpt,
    CsvDelimiterOpt,
    CultureOpt,
    Engine,
    EngineOpt,
    EventFormat,
    EventPathsArg,
    InputTzOpt,
    JobsOpt,
    QuietOpt,
    StrictOpt,
    TzOpt,
)
from evtrack.errors import ConfigError


class PartitionBy(str, Enum):
    month = "month"
    host = "host"


def _is_dataset_target(output: str, dataset: bool) -> bool:
    """``-o DIR/`` (ends with a separator), ``-o`` an existing folder, or ``--dataset``."""
    import os

    return dataset or output.endswith(("/", os.sep)) or Path(output).is_dir()


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
    config: ConfigOpt = None,
    tz: TzOpt = None,
    input_tz: InputTzOpt = None,
    culture: CultureOpt = None,
    quiet: QuietOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List every read issue.")] = False,
) -> None:
    """Write the normalised table of RDP-relevant events (logons, reconnects, logoffs, log clears)."""
    from evtrack.cli.common import resolve
    from evtrack.render.events import render_events
    from evtrack.settings import SettingFlags

    if fmt is EventFormat.parquet and output is None:
        fail("--format parquet needs --output FILE or DIR/ (it is binary)")
    if (store is None) == (not paths):
        fail("give event log files or folders, or --store PATH (not both)")
    if store is not None:
        from evtrack.store import Store

        with Store.open(store, create=False) as opened:
            table = opened.events_table()
        write_or_print(render_events(table, fmt.value, safe=not unsafe_csv, sep=csv_delimiter),
                        Path(output) if output else None, [store])
        return
    assert paths is not None
    as_dataset = output is not None and str(output) != "-" and _is_dataset_target(output, dataset)
    if as_dataset and fmt is not EventFormat.parquet:
        fail("a dataset folder needs --format parquet")
    if (dataset or partition_by is not PartitionBy.month) and not as_dataset:
        fail("--dataset and --partition-by need --format parquet -o DIR/")
    written = None
    plan = resolve(SettingFlags(config=config, tz=tz, input_tz=input_tz, culture=culture)).report.read_plan()
    result = read_files(paths, engine, verify_checksums, jobs, quiet, plan=plan)
    require_something_read(result, paths, quiet)
    if as_dataset:
        assert output is not None
        from evtrack.dataset import write_events_dataset
        from evtrack.pipeline import source_from_read

        written = write_events_dataset(source_from_read(result), Path(output),
                                       by_host=partition_by is PartitionBy.host)
    else:
        data = render_events(result.table, fmt.value, safe=not unsafe_csv, sep=csv_delimiter)
        write_or_print(data, None if output is None else Path(output), [stats.path for stats in result.files])
    print_lines(read_summary(result, result.table.num_rows, verbose), quiet)
    if written is not None and not quiet:
        stderr().print(escape(f"dataset: {written.path}: {written.rows:,} rows in {written.files} files, "
                                f"{len(written.partitions)} partitions, coverage in _evtrack_coverage.json"))
    if strict and (result.skipped or result.file_errors or result.issues):
        raise typer.Exit(EXIT_ERROR)


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
    sources: Annotated[str, typer.Option(
        "--sources", help="What to write, comma-separated: logs (the .evtx), broker (Get-RDUserSession polls), "
        "quser (query user polls), azure (SecurityEvent exports), wvd (WVDConnections), gateway (RD Gateway "
        "log), or all. Each but logs goes into its own subfolder; ground_truth.json then has users per source.",
    )] = "logs",
    poll_minutes: Annotated[
        int, typer.Option("--poll-minutes", min=1, help="Minutes between broker and query user polls.")
    ] = 15,
    quiet: QuietOpt = False,
) -> None:
    """Write a synthetic session-host fleet as real .evtx files (and other sources), with ground_truth.json."""
    from evtrack.synth import write_sample
    from evtrack.synth.sources import parse_sources
    from evtrack.windows import parse_date, resolve_zone

    try:
        tz = resolve_zone(tz).name
        first, last = parse_date(start), parse_date(end)
        if last < first:
            raise ConfigError(f"--to {end} is before --from {start}")
        try:
            chosen = parse_sources(sources)
        except ValueError as exc:
            raise ConfigError(f"--sources: {exc}") from None
        output.mkdir(parents=True, exist_ok=True)
        result = write_sample(output, users=users, hosts=hosts, start=first, end=last, tz=tz, seed=seed,
                              noise_ratio=noise_ratio, size_mb=size_mb, sources=chosen, poll_minutes=poll_minutes)
    except OSError as exc:  # the output folder: not an EvtrackError
        fail(str(exc))
    if not quiet:
        per_source = ", ".join(f"{name} {count:,}" for name, count in result.source_files.items())
        stderr().print(escape(
            f"wrote {len(result.files):,} files ({result.bytes / 1e6:.1f} MB of .evtx"
            f"{'; ' + per_source if chosen != ('logs',) else ''}) to {output} "
            f"in {result.seconds:.1f} s; ground truth: {result.ground_truth}"
        ))

