"""evtrack: estimate RDS Per User CAL usage from exported Windows logon event logs.

The public library API (docs/library.md), imported on first use so that ``import evtrack`` and ``evtrack --help``
stay instant::

    import evtrack

    built = evtrack.make_report("sample_logs", tz="Europe/Berlin", installed=6)
    evtrack.windows_frame(built)            # pandas DataFrame, one row per window
    html = evtrack.render_report(built, "html")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from evtrack.api import (
        ingest,
        make_report,
        read_events,
        read_events_table,
        render_report,
        users_frame,
        windows_frame,
    )
    from evtrack.errors import EvtrackError
    from evtrack.pipeline import DatasetInput, FilesInput, StoreInput, run
    from evtrack.report import Report
    from evtrack.usage import ReportSettings

#: Public name → the module that defines it.
_EXPORTS = {
    "read_events": "evtrack.api",
    "read_events_table": "evtrack.api",
    "ingest": "evtrack.api",
    "make_report": "evtrack.api",
    "windows_frame": "evtrack.api",
    "users_frame": "evtrack.api",
    "render_report": "evtrack.api",
    "run": "evtrack.pipeline",
    "FilesInput": "evtrack.pipeline",
    "StoreInput": "evtrack.pipeline",
    "DatasetInput": "evtrack.pipeline",
    "Report": "evtrack.report",
    "ReportSettings": "evtrack.usage",
    "EvtrackError": "evtrack.errors",
}

__all__ = [
    "DatasetInput",
    "EvtrackError",
    "FilesInput",
    "Report",
    "ReportSettings",
    "StoreInput",
    "__version__",
    "ingest",
    "make_report",
    "read_events",
    "read_events_table",
    "render_report",
    "run",
    "users_frame",
    "windows_frame",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'evtrack' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
