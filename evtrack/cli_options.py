"""Choices shared by every command (evtrack.cli and evtrack.cli_store): one definition each."""

from __future__ import annotations

from enum import Enum
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
