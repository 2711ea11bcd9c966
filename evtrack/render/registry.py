"""Every report format by name: the one table the CLI (``--format``), ``evtrack reports`` and the library's
:func:`evtrack.render` look a renderer up in. A new output format is one module in ``render/`` plus one entry here.

Each renderer takes the report and the :class:`RenderOptions` and returns bytes; the renderer modules are imported
when used, so this table costs nothing to import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evtrack.report import Report


@dataclass(frozen=True)
class RenderOptions:
    """How to render; each format reads the options it knows and ignores the rest."""

    per: str = "user"
    """CSV rows: one per ``user``, per ``window`` or per ``proof`` record."""
    safe: bool = True
    """CSV: neutralise cells that spreadsheets would run as formulas."""
    bom: bool = True
    """CSV: start with a UTF-8 byte-order mark (Excel needs it for accented names)."""
    sep: str = ","
    """CSV: the delimiter."""
    ascii_only: bool = False
    """Table: draw with ASCII only (a console that cannot show box-drawing characters)."""
    encoding: str = "utf-8"
    """Table: the console's encoding (characters it lacks become ``?``)."""


Renderer = Callable[["Report", RenderOptions], bytes]


def _table(report: Report, options: RenderOptions) -> bytes:
    from evtrack.render.table import report_table

    return report_table(report, ascii_only=options.ascii_only).encode(options.encoding, "replace")


def _csv(report: Report, options: RenderOptions) -> bytes:
    from evtrack.render.csv import proof_csv, users_csv, windows_csv

    rows = {"window": windows_csv, "proof": proof_csv, "user": users_csv}.get(options.per)
    if rows is None:
        raise ValueError(f"per must be user, window or proof, not {options.per!r}")
    return rows(report, safe=options.safe, bom=options.bom, sep=options.sep).encode("utf-8")


def _json(report: Report, options: RenderOptions) -> bytes:
    from evtrack.render.json import report_json

    return report_json(report).encode("utf-8")


def _html(report: Report, options: RenderOptions) -> bytes:
    from evtrack.render.html import report_html

    return report_html(report).encode("utf-8")


RENDERERS: Mapping[str, Renderer] = {"table": _table, "csv": _csv, "json": _json, "html": _html}
"""Format name → renderer; the CLI's ``--format`` choices are exactly these names (a test checks it)."""


def render(report: Report, fmt: str, options: RenderOptions | None = None) -> bytes:
    """``report`` as ``fmt`` (one of :data:`RENDERERS`)."""
    renderer = RENDERERS.get(fmt)
    if renderer is None:
        raise ValueError(f"unknown format {fmt!r} (use one of {', '.join(RENDERERS)})")
    return renderer(report, options or RenderOptions())
