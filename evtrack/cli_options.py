"""Choices shared by every command (evtrack.cli and evtrack.cli_store): one definition each."""

from __future__ import annotations

from enum import Enum


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
