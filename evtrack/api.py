"""The public library API (re-exported lazily from :mod:`evtrack`): events as tables, a report from paths, a store
or a dataset, the report's tables as DataFrames, and any output format. See docs/library.md.

Small and stable on purpose: these names and their keyword arguments keep their meaning across releases; anything
not re-exported from :mod:`evtrack` is internal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from evtrack.pipeline import DatasetInput, FilesInput, ReportInput, StoreInput, run
from evtrack.reading import DEFAULT_ENGINE, read_inputs
from evtrack.report import Report
from evtrack.usage import ReportSettings

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from evtrack.store import IngestResult

PathsLike = str | Path | Sequence[str | Path]
"""One path (a file, a folder, a glob pattern) or several."""


def _paths(paths: PathsLike) -> list[str | Path]:
    return [paths] if isinstance(paths, (str, Path)) else list(paths)


def read_events_table(paths: PathsLike, *, engine: str = DEFAULT_ENGINE, jobs: int = 1) -> pa.Table:
    """The normalised table of RDP-relevant events (logons, reconnects, logoffs, log clears) in ``paths``, as a
    ``pyarrow.Table`` (what ``evtrack events`` writes). Files that cannot be read are left out; read them with the
    CLI to see why."""
    return read_inputs(_paths(paths), engine=engine, jobs=jobs).table


def read_events(paths: PathsLike, *, engine: str = DEFAULT_ENGINE, jobs: int = 1) -> pd.DataFrame:
    """:func:`read_events_table` as a pandas ``DataFrame`` (times are tz-aware UTC)."""
    return cast("pd.DataFrame", read_events_table(paths, engine=engine, jobs=jobs).to_pandas())


def ingest(paths: PathsLike, store: str | Path, *, engine: str = DEFAULT_ENGINE, jobs: int = 1) -> IngestResult:
    """Add the events of ``paths`` to the evtrack store file ``store`` (made when missing), as ``evtrack ingest``
    does: files already there are skipped. The result lists each file's outcome (``ingested``, ``already``,
    ``failed``) and ``events_added``."""
    from evtrack.store import Store

    with Store.open(Path(store)) as opened:
        return opened.ingest(_paths(paths), engine=engine, jobs=jobs)


def make_report(
    paths: PathsLike | None = None, *, store: str | Path | None = None, dataset: str | Path | None = None,
    installed: int | None = None, tz: str = "UTC", window: str = "month", start: date | None = None,
    end: date | None = None, as_of: datetime | None = None, created_at: datetime | None = None,
    engine: str = DEFAULT_ENGINE, jobs: int = 1, settings: ReportSettings | None = None,
) -> Report:
    """The report of event log files (``paths``), of an evtrack ``store`` or of an events ``dataset`` (exactly one).

    The keywords are the common settings; pass ``settings`` (a :class:`~evtrack.usage.ReportSettings`) for the rest
    (scope, exclusions, aliases, hosts, directory), in which case the keywords must be left at their defaults.
    """
    given = [x is not None for x in (paths, store, dataset)]
    if sum(given) != 1:
        raise ValueError("give exactly one of paths, store= or dataset=")
    if settings is None:
        settings = ReportSettings(installed=installed, tz=tz, window=window, start=start, end=end, as_of=as_of,
                                  created_at=created_at)
    elif (installed, tz, window, start, end, as_of, created_at) != (None, "UTC", "month", None, None, None, None):
        raise ValueError("give settings= or the setting keywords, not both")
    source: ReportInput
    if paths is not None:
        source = FilesInput(_paths(paths), engine=engine, jobs=jobs)
    elif store is not None:
        source = StoreInput(Path(store))
    else:
        assert dataset is not None
        source = DatasetInput(dataset)
    return run(source, settings)


def _frame(rows: Sequence[Any], kind: type[Any], leave_out: tuple[str, ...] = ()) -> pd.DataFrame:
    import pandas as pd

    columns = [f.name for f in dataclasses.fields(kind) if f.name not in leave_out]
    return cast("pd.DataFrame", pd.DataFrame([[getattr(row, name) for name in columns] for row in rows],
                                              columns=columns))


def windows_frame(built: Report) -> pd.DataFrame:
    """One row per window (``label``, ``start``, ``end``, ``users``, ``status``, ``verdict``, ...), as in the
    report's JSON ``windows``; times are tz-aware in the report's zone."""
    from evtrack.report import WindowUsage

    return _frame(built.windows, WindowUsage)


def users_frame(built: Report) -> pd.DataFrame:
    """One row per counted user (``key``, ``display_name``, ``sid``, ``first_seen``, ``last_seen``, ``windows``, ...),
    as in the report's JSON ``users`` without the ``proof`` records."""
    from evtrack.report import UserUsage

    return _frame(built.users, UserUsage, leave_out=("proof",))


def render_report(built: Report, fmt: str = "html", *, per: str = "user", bom: bool = True, sep: str = ",") -> str:
    """``built`` as ``fmt``: ``table``, ``csv`` (``per`` user, window or proof), ``json`` or ``html`` (the CLI's
    ``--format``). Text; write it with ``encoding="utf-8"`` (a CSV keeps its byte-order mark unless ``bom=False``)."""
    from evtrack.render.registry import RenderOptions, render

    return render(built, fmt, RenderOptions(per=per, bom=bom, sep=sep)).decode("utf-8")
