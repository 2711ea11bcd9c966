"""The normalised event table as CSV, JSON Lines or Parquet bytes."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from evtrack.output import neutralise_cell

if TYPE_CHECKING:
    import pyarrow as pa

EVENT_FORMATS = ("csv", "jsonl", "parquet")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def iso_utc(moment: datetime) -> str:
    """``2021-02-12T12:33:07.469496Z``: ISO 8601, UTC, microseconds, the form Windows writes."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def events_csv(table: pa.Table, *, safe: bool = True, bom: bool = False, sep: str = ",") -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=sep, lineterminator="\r\n")
    writer.writerow(table.column_names)
    for row in table.to_pylist():
        cells = [_text(value) for value in row.values()]
        writer.writerow([neutralise_cell(cell) for cell in cells] if safe else cells)
    return (("\ufeff" if bom else "") + buffer.getvalue()).encode("utf-8")


def events_jsonl(table: pa.Table) -> bytes:
    lines = []
    for row in table.to_pylist():
        lines.append(json.dumps({k: iso_utc(v) if isinstance(v, datetime) else v for k, v in row.items()},
                                ensure_ascii=False))
    return ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8")


def events_parquet(table: pa.Table) -> bytes:
    import pyarrow.parquet as pq

    from evtrack.events import decoded

    sink = io.BytesIO()
    pq.write_table(decoded(table), sink)  # the format on disk is logon_schema(), whatever the table
    return sink.getvalue()


def render_events(table: pa.Table, fmt: str, *, safe: bool = True, bom: bool = False, sep: str = ",") -> bytes:
    if fmt == "csv":
        return events_csv(table, safe=safe, bom=bom, sep=sep)
    if fmt == "jsonl":
        return events_jsonl(table)
    if fmt == "parquet":
        return events_parquet(table)
    raise ValueError(f"unknown events format {fmt!r}")
