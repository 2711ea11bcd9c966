"""The event table as a hive-partitioned Parquet dataset, with its coverage in a sidecar, and back.

Layout (``evtrack events --format parquet -o DIR/``)::

    DIR/_evtrack_coverage.json                     coverage, inputs and counts (JSON; see docs/fleet-scale.md)
    DIR/month=2024-01/part-0.parquet               logon_schema() minus the partition columns
    DIR/month=2024-01/host=RDSH01/part-0.parquet   with --partition-by host

``month`` is the UTC month of ``time`` (``YYYY-MM``; rows without a time go to ``__HIVE_DEFAULT_PARTITION__``).
Readers of the dataset (pyarrow, Spark, DuckDB, pandas) skip ``_``-prefixed files, so the sidecar stays out of the
rows. Coverage travels in it because events alone cannot say what the logs covered: without it every window of a
report is *unknown*, never 0 users.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evtrack.coverage import ChannelSpan, Gap, Misdated
from evtrack.errors import EvtrackError
from evtrack.output import creation_mode
from evtrack.report import InputFile, iso

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds

    from evtrack.usage import ReportSource

SIDECAR = "_evtrack_coverage.json"
SIDECAR_FORMAT = "evtrack-events-dataset"
SIDECAR_VERSION = 1
MONTH = "month"
HOST = "host"
#: How far before ``--from`` a pushed-down read reaches: the licence-server view looks back 60 days, and a local
#: day may start up to 14 hours before its UTC date.
LOOKBACK = timedelta(days=61)
_TZ_SLACK = timedelta(days=1)


class DatasetError(EvtrackError):
    """An events dataset that cannot be written or read."""


@dataclass(frozen=True, slots=True)
class DatasetWritten:
    path: Path
    rows: int
    files: int
    partitions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DatasetRead:
    source: ReportSource
    has_coverage: bool
    """False when the sidecar is missing (e.g. a dataset written by another tool): every window is unknown."""
    rows: int
    time_range: tuple[datetime, datetime] | None
    """The UTC range pushed down to the scan, when only part of the dataset was read."""


# -- sidecar ----------------------------------------------------------------------------------------------------


def _span_to_dict(span: ChannelSpan) -> dict[str, Any]:
    return asdict(span)


def _span_from_dict(data: dict[str, Any]) -> ChannelSpan:
    return ChannelSpan(
        host=data["host"], channel=data["channel"], first_us=data["first_us"], last_us=data["last_us"],
        records=data["records"], first_record_id=data["first_record_id"], last_record_id=data["last_record_id"],
        gaps=tuple(Gap(**gap) for gap in data["gaps"]), cleared_us=tuple(data["cleared_us"]),
        intervals=tuple((int(a), int(b)) for a, b in data["intervals"]),
        misdated=tuple(Misdated(**item) for item in data.get("misdated", ())),
        kdc=bool(data.get("kdc", False)),
        unconfirmed=tuple((int(a), int(b)) for a, b in data.get("unconfirmed", ())),
    )


def sidecar_dict(source: ReportSource, partitioning: tuple[str, ...]) -> dict[str, Any]:
    return {
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "partitioning": list(partitioning),
        "rows": source.table.num_rows,
        "engine": source.engine,
        "records_read": source.records_read,
        "records_skipped": source.records_skipped,
        "inputs": [{**asdict(item), "ingested_at": iso(item.ingested_at) if item.ingested_at else None}
                   for item in source.inputs],
        "coverage": [_span_to_dict(span) for span in source.coverage],
        # the inputs that hold an evidence channel, where the source knows (absent: any damaged log counts)
        **({"evidence_inputs": sorted(source.evidence_paths)} if source.evidence_paths is not None else {}),
    }


# -- writing ----------------------------------------------------------------------------------------------------


def _with_month(table: pa.Table) -> pa.Table:
    import pyarrow.compute as pc

    month = pc.strftime(table["time"], format="%Y-%m")
    return table.append_column(MONTH, month)


def write_events_dataset(source: ReportSource, directory: Path, *, by_host: bool = False) -> DatasetWritten:
    """Write ``source.table`` under ``directory`` as a hive-partitioned Parquet dataset, with the sidecar.

    All or nothing: the dataset is written beside ``directory`` and moved into place at the end. An existing
    evtrack dataset there is replaced; any other non-empty folder is refused.
    """
    import pyarrow as pa
    import pyarrow.dataset as pads

    from evtrack.events import decoded

    directory = Path(directory)
    if directory.exists():
        if not directory.is_dir():
            raise DatasetError(f"{directory}: exists and is not a folder")
        if any(directory.iterdir()) and not (directory / SIDECAR).is_file():
            raise DatasetError(f"{directory}: not empty and not an evtrack events dataset; refusing to write there")
    parent = directory.parent if str(directory.parent) else Path(".")
    if not parent.is_dir():
        raise DatasetError(f"{directory}: folder {parent} does not exist")
    partitioning = (MONTH, HOST) if by_host else (MONTH,)
    table = _with_month(decoded(source.table))  # the format on disk is logon_schema(), whatever the source
    schema = pa.schema([table.schema.field(name) for name in partitioning])
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=parent))
    try:
        os.chmod(staging, creation_mode(directory=True))  # mkdtemp's 0700 would hide the dataset from others
        written: list[str] = []
        pads.write_dataset(
            table, staging, format="parquet", partitioning=pads.partitioning(schema, flavor="hive"),
            basename_template="part-{i}.parquet", existing_data_behavior="overwrite_or_ignore",
            file_visitor=lambda file: written.append(file.path),
        )
        sidecar = json.dumps(sidecar_dict(source, partitioning), ensure_ascii=False, indent=1, sort_keys=True)
        (staging / SIDECAR).write_text(sidecar + "\n", encoding="utf-8")
        old = None
        if directory.exists():
            old = parent / f".{directory.name}.old-{os.getpid()}"
            os.replace(directory, old)
        os.replace(staging, directory)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    partitions = sorted({str(Path(name).parent.relative_to(staging)) for name in written})
    return DatasetWritten(directory, table.num_rows, len(written), tuple(partitions))


# -- reading ----------------------------------------------------------------------------------------------------


def _filesystem(location: str) -> tuple[Any, str]:
    """(pyarrow filesystem or None for local, path) for a folder or an fsspec URL."""
    from evtrack.distributed import is_url

    if not is_url(location):
        return None, str(Path(location))
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    from evtrack.distributed import _filesystem as fsspec_filesystem

    fs, root = fsspec_filesystem(location)
    return PyFileSystem(FSSpecHandler(fs)), root.rstrip("/")


def _read_sidecar(filesystem: Any, root: str) -> dict[str, Any] | None:
    path = f"{root}/{SIDECAR}"
    try:
        if filesystem is None:
            text = Path(path).read_text(encoding="utf-8")
        else:
            with filesystem.open_input_stream(path) as handle:
                text = handle.read().decode("utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if "not found" in str(exc).lower() or "no such" in str(exc).lower():
            return None
        raise DatasetError(f"{path}: cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DatasetError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise DatasetError(f"{path}: not an evtrack coverage sidecar")
    if data.get("version", 0) > SIDECAR_VERSION:
        raise DatasetError(f"{path}: written by a newer evtrack (version {data.get('version')}); upgrade evtrack")
    return data


def push_down_range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    """The UTC range a report over local days ``[start, end)`` needs: ``LOOKBACK`` more before it for the
    licence-server view, and a day of slack either side for time zones."""
    low = datetime(1970, 1, 1, tzinfo=timezone.utc) if start is None else start - LOOKBACK - _TZ_SLACK
    high = datetime(9999, 1, 1, tzinfo=timezone.utc) if end is None else end + _TZ_SLACK
    return low.astimezone(timezone.utc), high.astimezone(timezone.utc)


def _filter(time_range: tuple[datetime, datetime] | None, partitioned_by_month: bool) -> ds.Expression | None:
    import pyarrow as pa
    import pyarrow.dataset as pads

    if time_range is None:
        return None
    low, high = time_range
    kind = pa.timestamp("us", tz="UTC")
    expression = (pads.field("time") >= pa.scalar(low, kind)) & (pads.field("time") < pa.scalar(high, kind))
    if partitioned_by_month:  # prune whole folders without opening their files
        expression = expression & (pads.field(MONTH) >= f"{low:%Y-%m}") & (pads.field(MONTH) <= f"{high:%Y-%m}")
    return expression


def _check_rows(dataset: Any, written: int, location: str | Path) -> None:
    """Refuse a dataset that holds other than the rows its sidecar says were written: a month= folder lost (a
    partial copy, a retention job, a sync that stopped) would read as months of 0 users the coverage vouches for.
    Counted from the Parquet footers, not the data."""
    import pyarrow as pa

    try:
        held = dataset.count_rows()
    except (OSError, pa.ArrowInvalid) as exc:
        raise DatasetError(f"{location}: cannot read the dataset: {exc}") from None
    if held != written:
        what = "missing" if held < written else "not what evtrack wrote"
        raise DatasetError(f"{location}: holds {held:,} rows where its {SIDECAR} says {written:,} were written: part "
                           f"of the dataset is {what} (a month= folder lost or added, a partial copy?); write it again "
                           "with evtrack events -o DIR/")


def read_events_dataset(location: str | Path, *, time_range: tuple[datetime, datetime] | None = None
                        ) -> DatasetRead:
    """The report's input from a dataset folder or URL; ``time_range`` (UTC, half-open) is pushed down to the scan
    (partition pruning on ``month``, row-group statistics on ``time``)."""
    import pyarrow as pa
    import pyarrow.dataset as pads

    from evtrack.events import ENCODED_COLUMNS, encoded_schema
    from evtrack.reading import DEFAULT_ENGINE
    from evtrack.usage import ReportSource

    filesystem, root = _filesystem(str(location))
    if filesystem is None and not Path(root).is_dir():
        raise DatasetError(f"{location}: no such folder (an events dataset is a folder: evtrack events -o DIR/)")
    sidecar = _read_sidecar(filesystem, root)
    names = tuple(sidecar["partitioning"]) if sidecar else None
    if names is not None:
        partitioning: Any = pads.partitioning(pa.schema([(name, pa.string()) for name in names]), flavor="hive")
    else:
        partitioning = pads.HivePartitioning.discover(infer_dictionary=False)
    # the repeated strings come as a report reads them, dictionary-encoded (Parquet stores them so: no copy per row)
    parquet = pads.ParquetFileFormat(read_options=pads.ParquetReadOptions(dictionary_columns=ENCODED_COLUMNS))
    try:
        dataset = pads.dataset(root, format=parquet, partitioning=partitioning, filesystem=filesystem)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DatasetError(f"{location}: cannot open the dataset: {exc}") from None
    if sidecar is not None:
        _check_rows(dataset, int(sidecar["rows"]), location)
    available = set(dataset.schema.names)
    schema = encoded_schema()
    columns = [name for name in schema.names if name in available]
    if "time" not in available:
        raise DatasetError(f"{location}: no `time` column: not an events dataset")
    try:
        scanned = dataset.to_table(columns=columns, filter=_filter(time_range, MONTH in available))
    except (OSError, pa.ArrowInvalid) as exc:
        raise DatasetError(f"{location}: cannot read the dataset: {exc}") from None
    arrays = []
    for field in schema:
        if field.name in available:
            arrays.append(scanned[field.name].cast(field.type))
        else:
            arrays.append(pa.nulls(scanned.num_rows, field.type))
    table = pa.Table.from_arrays(arrays, schema=schema)
    coverage = tuple(_span_from_dict(item) for item in sidecar["coverage"]) if sidecar else ()
    inputs = tuple(
        InputFile(**{**item, "issues": tuple(item["issues"]),
                     "ingested_at": datetime.fromisoformat(item["ingested_at"].replace("Z", "+00:00"))
                     if item.get("ingested_at") else None})
        for item in sidecar["inputs"]
    ) if sidecar else ()
    source = ReportSource(
        table=table, coverage=coverage, inputs=inputs,
        engine=sidecar["engine"] if sidecar else DEFAULT_ENGINE,
        records_read=sidecar["records_read"] if sidecar else 0,
        records_skipped=sidecar["records_skipped"] if sidecar else 0,
        evidence_paths=frozenset(sidecar["evidence_inputs"]) if sidecar and "evidence_inputs" in sidecar else None,
    )
    return DatasetRead(source, sidecar is not None, table.num_rows, time_range)

