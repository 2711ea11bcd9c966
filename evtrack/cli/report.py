"""``evtrack report``, ``evtrack explain`` and ``evtrack config show``: settings resolved once, then
:func:`evtrack.pipeline.run` on one input adapter, then a renderer from :mod:`evtrack.render.registry`."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evtrack.cli.common import (
    announce_new_store,
    config_engine,
    print_lines,
    read_summary,
    render_report,
    report_input,
    resolve,
    write_or_print,
)
from evtrack.cli.errors import EXIT_ERROR, EXIT_INCOMPLETE, EXIT_OVER, EXIT_USAGE, escape, fail, stderr
from evtrack.cli.options import (
    PER_HELP,
    AliasOpt,
    AsOfOpt,
    BomOpt,
    ChecksumOpt,
    ConfigOpt,
    CsvDelimiterOpt,
    CultureOpt,
    DefaultDomainOpt,
    DirectoryOpt,
    Engine,
    EngineOpt,
    ExcludeHostOpt,
    ExcludeOpt,
    ExpectHostOpt,
    ExplainFormat,
    FromOpt,
    HostOpt,
    InputTzOpt,
    InstalledOpt,
    JobsOpt,
    KeypacksOpt,
    NetbiosOpt,
    OptionalPathsArg,
    Per,
    ProductVersionOpt,
    QuietOpt,
    ReportFormat,
    ScopeOpt,
    StrictOpt,
    ToOpt,
    TzOpt,
    WindowOpt,
)
from evtrack.errors import ConfigError

if TYPE_CHECKING:
    from evtrack.dataset import DatasetRead
    from evtrack.reading import ReadResult
    from evtrack.report import Report


def _check_code(report: Report) -> int:
    if report.over_by > 0:
        return EXIT_OVER
    if not report.coverage_complete or report.verdict == "unknown":
        return EXIT_INCOMPLETE
    return 0


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
        bool, typer.Option("--check", help="Exit 3 when over the installed count, 4 when log coverage is "
                                            "incomplete, 2 when there is no installed count to judge against.")
    ] = False,
    config: ConfigOpt = None,
    scope: ScopeOpt = None,
    directory: DirectoryOpt = None,
    netbios: NetbiosOpt = None,
    keypacks: KeypacksOpt = None,
    product_version: ProductVersionOpt = None,
    exclude: ExcludeOpt = None,
    alias: AliasOpt = None,
    host: HostOpt = None,
    exclude_host: ExcludeHostOpt = None,
    expect_host: ExpectHostOpt = None,
    input_tz: InputTzOpt = None,
    culture: CultureOpt = None,
    default_domain: DefaultDomainOpt = None,
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

    from evtrack.pipeline import DatasetInput, run
    from evtrack.settings import SettingFlags

    env_store = Path(os.environ["EVTRACK_STORE"]) if os.environ.get("EVTRACK_STORE") else None
    # EVTRACK_STORE stands in for --store where a store is wanted: to --save into, or to report from (no inputs)
    store_path = store or (env_store if save or (not paths and events_dataset is None) else None)
    if events_dataset is not None and (paths or store is not None or save):
        fail("--events reads a dataset: give no files, --store or --save with it")
    if not paths and store_path is None and events_dataset is None:
        fail("give event log files or folders, or --store PATH (or EVTRACK_STORE), or --events DIR")
    if paths and store_path is not None and not save:
        fail("give either files or --store, not both (to add files to a store: evtrack ingest)")
    if save and store_path is None:
        fail("--save needs --store PATH (or EVTRACK_STORE)")
    reads: list[ReadResult] = []
    dataset_reads: list[DatasetRead] = []
    resolved = resolve(SettingFlags(
        config=config, installed=installed, tz=tz, window=window, start=start, end=end, as_of=as_of,
        scopes=tuple(scope or ()), excludes=tuple(exclude or ()), aliases=tuple(alias or ()), created_at=created_at,
        directory=directory, netbios=netbios, keypacks=keypacks, product_version=product_version,
        hosts=tuple(host or ()), exclude_hosts=tuple(exclude_host or ()), expect_hosts=tuple(expect_host or ()),
        input_tz=input_tz, culture=culture, default_domain=default_domain,
    ))
    with contextlib.ExitStack() as stack:
        dataset = None if events_dataset is None else DatasetInput(events_dataset, on_read=dataset_reads.append)
        source = report_input(stack, paths, engine=engine, verify=verify_checksums, jobs=jobs, quiet=quiet,
                              file=resolved.file, reads=reads, dataset=dataset, store_path=store_path)
        built = run(source, resolved.report)
    result = reads[0] if reads else None
    if save:
        from evtrack.store import Store

        with Store.open(store_path) as opened:
            if opened.created:
                announce_new_store(opened.path, quiet)
            saved_id = opened.save_report(built)
    data = render_report(built, fmt, per, safe=not unsafe_csv, bom=bom, sep=csv_delimiter)
    write_or_print(data, output, [stats.path for stats in result.files] if result else [])
    if result is not None:
        print_lines(read_summary(result, result.table.num_rows, verbose), quiet)
    if dataset_reads:
        assert events_dataset is not None
        print_lines(_dataset_lines(events_dataset, dataset_reads[0]), quiet)
    print_lines([resolved.zone_line()], quiet)
    if save and not quiet:
        stderr().print(f"saved as report {saved_id} in {store_path}")
    for warning in built.warnings:
        stderr().print(f"warning: {escape(warning)}")
    if strict and result is not None and (result.skipped or result.file_errors or result.issues):
        raise typer.Exit(EXIT_ERROR)
    if strict and built.warnings:
        raise typer.Exit(EXIT_ERROR)
    if check and built.installed is None:
        fail("--check needs the installed Per User CAL count to judge against (--installed N, EVTRACK_INSTALLED, "
             "installed in evtrack.toml, or --keypacks): nothing was judged", EXIT_USAGE)
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
    host: HostOpt = None,
    exclude_host: ExcludeHostOpt = None,
    expect_host: ExpectHostOpt = None,
    input_tz: InputTzOpt = None,
    culture: CultureOpt = None,
    default_domain: DefaultDomainOpt = None,
    engine: Annotated[Engine | None, EngineOpt.__metadata__[0]] = None,
    verify_checksums: ChecksumOpt = True,
    jobs: JobsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Why a person is counted (aliases, how they were linked, the proof per window), or why a name is not."""
    import os

    from evtrack.explain import explain as explain_name
    from evtrack.pipeline import DatasetInput, run_with_source
    from evtrack.render.explain import explanation_json, explanation_text
    from evtrack.settings import SettingFlags
    from evtrack.windows import WindowSpec

    env_store = Path(os.environ["EVTRACK_STORE"]) if os.environ.get("EVTRACK_STORE") else None
    store_path = store or (env_store if not paths and events_dataset is None else None)
    if sum(bool(x) for x in (paths, store is not None, events_dataset is not None)) > 1:
        fail("give event log files, --store PATH or --events DIR (one of them)")
    if not paths and store_path is None and events_dataset is None:
        fail("give event log files or folders, or --store PATH (or EVTRACK_STORE), or --events DIR")
    kind: str | None = None
    label: str | None = None
    for value in window or []:
        try:
            WindowSpec.parse(value)
            kind = value
        except ConfigError:
            label = value
    resolved = resolve(SettingFlags(
        config=config, tz=tz, window=kind, start=start, end=end, scopes=tuple(scope or ()),
        excludes=tuple(exclude or ()), aliases=tuple(alias or ()), directory=directory, netbios=netbios,
        hosts=tuple(host or ()), exclude_hosts=tuple(exclude_host or ()), expect_hosts=tuple(expect_host or ()),
        input_tz=input_tz, culture=culture, default_domain=default_domain,
    ))
    reads: list[ReadResult] = []
    with contextlib.ExitStack() as stack:
        dataset = None if events_dataset is None else DatasetInput(events_dataset, push_down=False)
        source = report_input(stack, paths, engine=engine, verify=verify_checksums, jobs=jobs, quiet=quiet,
                              file=resolved.file, reads=reads, dataset=dataset, store_path=store_path)
        built, read_source = run_with_source(source, resolved.report)
    answer = explain_name(read_source, resolved.report, name, label, report=built)
    if reads:
        print_lines(read_summary(reads[0], reads[0].table.num_rows, False), quiet)
    text = explanation_json(answer) if fmt is ExplainFormat.json else explanation_text(answer)
    sys.stdout.write(text)
    sys.stdout.flush()


config_app = typer.Typer(help="Show the effective settings.", no_args_is_help=True)


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

    resolved = resolve(SettingFlags(config=config, installed=installed, tz=tz, window=window,
                                      scopes=tuple(scope or ()), excludes=tuple(exclude or ()),
                                      aliases=tuple(alias or ())))
    settings, file = resolved.report, resolved.file

    def strings(values: list[str]) -> str:
        return "[" + ", ".join(_toml_string(v) for v in values) + "]"

    engine = config_engine(file).value
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

