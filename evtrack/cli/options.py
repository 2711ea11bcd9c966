"""Choices and options shared by the commands: one definition each."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer


class Engine(str, Enum):
    """Parsing engines; mirrors :data:`evtrack.reading.ENGINES` (a test checks they match)."""

    evtx = "evtx"
    python_evtx = "python-evtx"


class EventFormat(str, Enum):
    csv = "csv"
    jsonl = "jsonl"
    parquet = "parquet"


class ReportFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    html = "html"


class ExplainFormat(str, Enum):
    text = "text"
    json = "json"


class Per(str, Enum):
    user = "user"
    window = "window"
    proof = "proof"


PER_HELP = ("CSV rows: one per user (default), per window, or per proof record (the first and last record that "
            "prove each user in each window).")


def _csv_delimiter(value: str) -> str:
    from evtrack.render.csv import delimiter

    try:
        return delimiter(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


BomOpt = Annotated[
    bool,
    typer.Option("--bom/--no-bom", help="Start CSV with a UTF-8 byte-order mark, which Excel needs to read accented "
                 "names (default); --no-bom leaves it out."),
]
CsvDelimiterOpt = Annotated[
    str,
    typer.Option("--csv-delimiter", callback=_csv_delimiter, metavar="CHAR",
                 help="Between CSV cells: ',' (default), ';' (Excel in most European locales), '|' or 'tab'."),
]


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
                 "in parallel (evtrack reads the smallest while they start; inputs under 16 MiB without them). "
                 "The result does not depend on it (default: number of cores)."),
]


EventPathsArg = Annotated[
    list[str] | None,
    typer.Argument(help="Event log files (.evtx, XML exports), folders and glob patterns (or none, with --store)."),
]


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

InputTzOpt = Annotated[
    str | None,
    typer.Option("--input-tz", envvar="EVTRACK_INPUT_TZ",
                 help="Time zone of inputs that write local times without an offset (Connection Broker and query "
                 "user snapshots, a portal CSV in local time); default: --tz."),
]
CultureOpt = Annotated[
    str | None,
    typer.Option("--culture", help="Date format of such inputs (en-US, en-GB, de-DE, fr-FR...) where their data "
                 "does not decide day/month order."),
]
DefaultDomainOpt = Annotated[
    str | None,
    typer.Option("--default-domain", help="Domain of bare user names (query user) that join no DOMAIN\\user in "
                 "the inputs (default: reported without a domain)."),
]


OptionalPathsArg = Annotated[
    list[str] | None,
    typer.Argument(help="Event log files, folders and glob patterns (or none, with --store)."),
]
HostOpt = Annotated[
    list[str] | None,
    typer.Option("--host", help="Count only hosts matching this glob pattern (repeatable; default: every host)."),
]
ExcludeHostOpt = Annotated[
    list[str] | None,
    typer.Option("--exclude-host", help="Do not count hosts matching this glob pattern, e.g. dc* (repeatable)."),
]
ExpectHostOpt = Annotated[
    list[str] | None,
    typer.Option("--expect-host", help="A session host that must have logs (repeatable): without any, its windows "
                 "are partial and it is named."),
]
