"""The SQLite store: ingested events (idempotent, month after month) and saved reports.

One file (default ``platformdirs.user_data_dir("evtrack")/evtrack.sqlite3``) holds:

- ``files``: one row per ingested input, keyed by its SHA-256 (a file already stored is skipped);
- ``events``: the normalised rows (:func:`evtrack.events.logon_schema` minus ``source``, which is the file's
  path), unique by identity ``(host, channel, EventRecordID, TimeCreated µs)`` so overlapping exports add nothing;
  a record several files hold names the first of them by path (the file a report's proof names);
- ``spans``: per file, host and channel what the file covered, with the (record id, time) pairs packed into
  blobs, so that :meth:`Store.report_source` rebuilds coverage with :class:`~evtrack.coverage.CoverageBuilder`
  itself and gets exactly what reading the same files together gives (a hole between two exports stays a hole);
- ``clears``: log-cleared times per file, host and channel;
- ``failed_files``: inputs an ingest could not read, keyed by path, until a later ingest reads that path or that
  content (or they are forgotten): the store's report counts them as failed inputs, as reading the files does;
- ``reports``: saved reports as ``Report.to_dict()`` JSON plus a few columns for listing.

Every write is one transaction (``BEGIN IMMEDIATE``; one per ingested file), the journal is WAL, and a second
writer waits ``busy_timeout`` seconds for the first, then fails with :class:`~evtrack.errors.StoreError`.
The file is marked with ``PRAGMA application_id`` and versioned with ``PRAGMA user_version`` (mirrored in the
``meta`` table); :func:`migrate` brings an older store up to date. See docs/store.md.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evtrack.errors import StoreError
from evtrack.scanning import FileScanner, LocalScanner
from evtrack.sources.base import ReadIssue, ReadPlan, datetime_to_us
from evtrack.store_schema import (
    APPLICATION_ID,
    MISSING,
    SCHEMA_VERSION,
    iso_text,
    migrate,
    now,
    pack,
    parse_iso,
    unpack,
    unpack_misdated,
    unpack_segments,
)

if TYPE_CHECKING:  # imported where used: `evtrack reports list` starts fast
    import pyarrow as pa

    from evtrack.coverage import ChannelRecords, ChannelSpan, CoverageBuilder
    from evtrack.reading import FileResult
    from evtrack.report import InputFile, Report
    from evtrack.usage import ReportSource

STORE_FILENAME = "evtrack.sqlite3"
SQLITE_MAGIC = b"SQLite format 3\x00"
DEFAULT_BUSY_TIMEOUT = 30.0
STATUS_INGESTED = "ingested"
STATUS_ALREADY = "already ingested"
STATUS_FAILED = "failed"

#: Event columns as stored, in :func:`evtrack.events.logon_schema` order without ``source``.
_EVENT_COLUMNS: tuple[str, ...] = (
    "time", "host", "channel", "provider", "event_id", "record_id", "kind", "logon_type", "user", "domain", "sid",
    "address", "client_name", "session_id", "logon_id", "session_name", "elevated", "rdp", "reason", "detail",
)  # fmt: skip

def default_store_path() -> Path:
    """``user_data_dir("evtrack")/evtrack.sqlite3`` (platformdirs: XDG, ~/Library, %LOCALAPPDATA%)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("evtrack", appauthor=False)) / STORE_FILENAME


# -- results ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What ingesting one input did."""

    path: Path
    status: str
    """ingested / already ingested / failed."""
    sha256: str | None
    records: int = 0
    events: int = 0
    """Rows the file yields (events kept)."""
    events_added: int = 0
    """Rows new to the store (the others were already there from an overlapping export)."""
    skipped: int = 0
    issues: tuple[str, ...] = ()
    error: str | None = None
    stored_as: str | None = None
    """For an already ingested file: the path it was first ingested from."""


@dataclass(frozen=True, slots=True)
class IngestResult:
    files: tuple[FileOutcome, ...]
    ignored: tuple[ReadIssue, ...]
    """Files found in a directory scan that are not event logs (noted, not errors)."""

    def _with(self, status: str) -> list[FileOutcome]:
        return [f for f in self.files if f.status == status]

    @property
    def ingested(self) -> list[FileOutcome]:
        return self._with(STATUS_INGESTED)

    @property
    def already(self) -> list[FileOutcome]:
        return self._with(STATUS_ALREADY)

    @property
    def failed(self) -> list[FileOutcome]:
        return self._with(STATUS_FAILED)

    @property
    def events_added(self) -> int:
        return sum(f.events_added for f in self.files)

    @property
    def events_present(self) -> int:
        """Rows of newly ingested files that the store already held."""
        return sum(f.events - f.events_added for f in self.ingested)


@dataclass(frozen=True, slots=True)
class SavedReport:
    """One row of :meth:`Store.list_reports`."""

    id: int
    saved_at: datetime
    created_at: datetime
    scope: str
    window: str
    tz: str
    period_start: datetime | None
    period_end: datetime | None
    installed: int | None
    estimated: int | None
    verdict: str


@dataclass(frozen=True, slots=True)
class FailedFile:
    """An input an ingest could not read: remembered until an ingest reads its path or its content, or
    :meth:`Store.forget_failed`."""

    path: str
    error: str
    failed_at: datetime
    """When the last ingest that failed to read it ran."""
    sha256: str | None = None
    """SHA-256 of its bytes, when they could be read (None for a path that names nothing)."""
    size: int | None = None


@dataclass(frozen=True, slots=True)
class StoreInfo:
    path: Path
    size_bytes: int
    """The database file plus its WAL."""
    schema_version: int
    files: int
    events: int
    reports: int
    hosts: tuple[str, ...]
    coverage: tuple[ChannelSpan, ...]
    last_ingest: datetime | None
    failed: tuple[FailedFile, ...] = ()
    """Inputs ingests could not read (a report from the store is a lower bound while any remain)."""


@dataclass(frozen=True, slots=True)
class PruneResult:
    before: datetime
    events_removed: int
    spans_clipped: int
    spans_removed: int
    clears_removed: int


ProgressCallback = Callable[[FileOutcome], None]


# -- coverage (de)serialisation -----------------------------------------------------------------------------------


def _export_coverage(builder: CoverageBuilder) -> tuple[list[ChannelRecords], list[tuple[str, str, int]]]:
    return builder.export(), builder.clears()


def _import_coverage(channels: Iterable[ChannelRecords], clears: Iterable[tuple[str, str, int]]) -> CoverageBuilder:
    """A builder in the state reading one file leaves it in."""
    from evtrack.coverage import CoverageBuilder

    return CoverageBuilder.from_records(channels, clears)


def _us(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise StoreError(f"a time without a zone is ambiguous: {moment.isoformat()}")
    return datetime_to_us(moment)


#: Rows made Python tuples at a time while ingesting (a reader's batch holds 65,536).
_INSERT_ROWS = 8_192


def _batch_rows(batch: pa.RecordBatch, file_id: int) -> Iterator[tuple[Any, ...]]:
    import pyarrow as pa

    columns: list[list[Any]] = [[file_id] * batch.num_rows]
    for name in _EVENT_COLUMNS:
        column = batch.column(name)
        if name == "time":
            column = column.cast(pa.int64())
        columns.append(column.to_pylist())
    return zip(*columns, strict=True)


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


# -- the store ----------------------------------------------------------------------------------------------------


class Store:
    """An open evtrack store. Use :meth:`open` (or ``with Store.open(path) as store:``)."""

    def __init__(self, path: Path, connection: sqlite3.Connection, created: bool = False) -> None:
        self.path = path
        self._db = connection
        self.created = created
        """Whether :meth:`open` made this store's file (it did not exist, or was empty)."""

    # opening ---------------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str | None = None, *, create: bool = True,
             busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Store:
        """Open (and with ``create``, make or upgrade) the store at ``path`` (default :func:`default_store_path`).

        Raises :class:`StoreError` for a file that is not an evtrack store, one written by a newer evtrack, or
        (without ``create``) a missing store, and for a new store whose folder does not exist: only the default
        location's folder is made (a mistyped ``--store`` must not leave folders behind).
        """
        target = Path(path) if path is not None else default_store_path()
        if target.is_dir():
            raise StoreError(f"not an evtrack store: {target} (is a directory)")
        exists = target.exists() and target.stat().st_size > 0
        if exists:
            try:
                with target.open("rb") as handle:
                    head = handle.read(len(SQLITE_MAGIC))
            except OSError as exc:
                raise StoreError(f"cannot read store {target}: {exc.strerror or exc}") from None
            if head != SQLITE_MAGIC:
                raise StoreError(f"not an evtrack store: {target}")
        elif not create:
            raise StoreError(f"no evtrack store at {target} (run `evtrack ingest` to create one)")
        elif path is None:
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create store folder {target.parent}: {exc.strerror or exc}") from None
        elif not target.parent.is_dir():
            raise StoreError(f"cannot create store {target}: the folder {target.parent} does not exist")
        try:
            connection = sqlite3.connect(target, timeout=busy_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {target}: {exc}") from None
        store = cls(target, connection, created=not exists)
        try:
            store._prepare(create)
        except BaseException:
            connection.close()
            raise
        return store

    def _prepare(self, create: bool) -> None:
        db = self._db
        try:
            app_id = db.execute("PRAGMA application_id").fetchone()[0]
            tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError:
            raise StoreError(f"not an evtrack store: {self.path}") from None
        if app_id != APPLICATION_ID and (app_id != 0 or tables):
            raise StoreError(f"not an evtrack store: {self.path}")
        try:
            db.execute("PRAGMA foreign_keys = ON")
            if create:
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = NORMAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path}: store schema version {version} is newer than this evtrack "
                                 f"understands ({SCHEMA_VERSION}); upgrade evtrack")
            if version < SCHEMA_VERSION:
                if version == 0 and not create:
                    raise StoreError(f"not an evtrack store: {self.path}")
                migrate(db)  # an older evtrack's store: upgraded in place, whatever the command
        except sqlite3.OperationalError as exc:
            if _is_locked(exc):
                raise self._busy() from None
            raise StoreError(f"{self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"not an evtrack store: {self.path} ({exc})") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _busy(self) -> StoreError:
        return StoreError(f"{self.path}: the store is busy (another evtrack is writing to it); try again later")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back on any exception (a killed process leaves no trace)."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_locked(exc):
                raise self._busy() from None
            raise StoreError(f"{self.path}: {exc}") from None
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            self._db.execute("ROLLBACK")
            raise StoreError(f"{self.path}: cannot commit: {exc}") from None

    # ingest -------------------------------------------------------------------------------------------------------

    def stored_path(self, sha256: str) -> str | None:
        row = self._db.execute("SELECT path FROM files WHERE sha256 = ?", (sha256,)).fetchone()
        return None if row is None else str(row[0])

    def stored_digests(self) -> frozenset[str]:
        """The SHA-256 of every stored file (what a remote scanner needs to skip them without a round trip)."""
        return frozenset(row[0] for row in self._db.execute("SELECT sha256 FROM files"))

    def ingest(self, paths: Sequence[str | Path], *, engine: str | None = None, verify_checksums: bool = True,
               jobs: int = 1, progress: ProgressCallback | None = None,
               scanner: FileScanner | None = None, plan: ReadPlan | None = None) -> IngestResult:
        """Add the events and coverage of ``paths`` (files, folders, globs); files already stored are skipped.

        Idempotent: an event already in the store (same host, channel, record id and time) is not added again.
        Each file is written in one transaction, so an interrupted ingest leaves whole files or nothing of one.
        An input that cannot be read is remembered (:meth:`failed_files`) until an ingest reads its path or its
        content; files a folder scan finds that are no event logs are ignored, not failed.
        ``scanner`` decides where files are hashed and read (default :class:`LocalScanner`: this process, or a
        pool of ``jobs`` processes; :class:`evtrack.distributed.DaskScanner`: a Dask cluster); whatever it is,
        only this process writes, through the same code. ``plan`` says what the readers decode (None: the
        catalogue's, :func:`evtrack.catalogue.read_plan`).
        """
        from evtrack.catalogue import read_plan
        from evtrack.errors import SourceError
        from evtrack.reading import DEFAULT_ENGINE, ENGINES, ignorable

        engine = engine or DEFAULT_ENGINE
        if engine not in ENGINES:
            raise SourceError(engine, f"unknown engine (choose from {', '.join(ENGINES)})")
        if plan is None:
            plan = read_plan()
        scanner = scanner or LocalScanner(jobs)
        inputs = scanner.expand(paths)
        outcomes: list[FileOutcome] = []
        ignored: list[ReadIssue] = []

        def report(outcome: FileOutcome) -> None:
            outcomes.append(outcome)
            if progress:
                progress(outcome)

        for issue in inputs.errors:
            report(self._failed(issue.path, None, None, issue.reason))
        scanned = scanner.scan(inputs.files, engine=engine, verify_checksums=verify_checksums,
                               stored=self.stored_digests(), plan=plan)
        for item in scanned:
            path, digest, result = item.path, item.digest, item.result
            if result is None:
                if item.error is not None or digest is None:
                    report(self._failed(path, digest, None, item.error or "not read"))
                else:
                    self._end_failures(path, digest)
                    report(FileOutcome(path, STATUS_ALREADY, digest, stored_as=self.stored_path(digest)))
                continue
            assert digest is not None
            if result.error is not None:
                if ignorable(result, inputs):
                    ignored.append(ReadIssue(path, "file", result.error, 0))
                    continue
                report(self._failed(path, digest, result.stats.size, result.error))
                continue
            report(self._add_file(result, digest, engine))
        return IngestResult(tuple(outcomes), tuple(ignored))

    def _add_file(self, result: FileResult, digest: str, engine: str) -> FileOutcome:
        stats = result.stats
        issues = tuple(str(issue) for issue in stats.issues)
        events = sum(batch.num_rows for batch in result.batches)
        channels, clears = _export_coverage(result.coverage)
        spans = {(s.host, s.channel): s for s in result.coverage.spans()}
        envelopes = [c.envelope for c in channels if c.envelope is not None]
        first_us = min((e[0] for e in envelopes), default=None)
        last_us = max((e[1] for e in envelopes), default=None)
        with self._transaction() as db:
            db.execute("DELETE FROM failed_files WHERE path = ? OR sha256 = ?", (str(stats.path), digest))
            stored = self.stored_path(digest)
            if stored is not None:  # another process got there while we were reading
                return FileOutcome(stats.path, STATUS_ALREADY, digest, stored_as=stored)
            cursor = db.execute(
                "INSERT INTO files (sha256, path, size, kind, engine, reader, first_us, last_us, records, events, "
                "events_added, skipped, issues, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
                (digest, str(stats.path), stats.size, stats.kind.value if stats.kind else "", engine, stats.engine,
                 first_us, last_us, stats.records, events, stats.skipped, json.dumps(list(issues)), iso_text(now())),
            )
            file_id = cursor.lastrowid
            assert file_id is not None
            (before,) = db.execute("SELECT ifnull(max(id), 0) FROM events").fetchone()
            placeholders = ", ".join("?" * (len(_EVENT_COLUMNS) + 1))
            # a record already stored stays once; it names the first file by path that holds it (as reading the
            # files names it in a report's proof), whatever order the files were ingested in
            insert = (
                f"INSERT INTO events (file_id, {', '.join(_EVENT_COLUMNS)}) VALUES ({placeholders}) "
                f"ON CONFLICT (host, channel, ifnull(record_id, {MISSING}), ifnull(time, {MISSING})) "
                "DO UPDATE SET file_id = excluded.file_id WHERE (SELECT path FROM files WHERE id = excluded.file_id) "
                "< (SELECT path FROM files WHERE id = events.file_id)"
            )
            for batch in result.batches:
                for start in range(0, batch.num_rows, _INSERT_ROWS):
                    db.executemany(insert, _batch_rows(batch.slice(start, _INSERT_ROWS), file_id))
            (after,) = db.execute("SELECT ifnull(max(id), 0) FROM events").fetchone()
            added = after - before  # new rows take consecutive ids; a row moved to this file keeps its id
            db.execute("UPDATE files SET events_added = ? WHERE id = ?", (added, file_id))
            self._insert_spans(db, file_id, channels, spans)
            db.executemany("INSERT OR IGNORE INTO clears (file_id, host, channel, time_us) VALUES (?, ?, ?, ?)",
                           [(file_id, *clear) for clear in clears])
        return FileOutcome(stats.path, STATUS_INGESTED, digest, stats.records, events, added, stats.skipped, issues)

    def _failed(self, path: Path, digest: str | None, size: int | None, error: str) -> FileOutcome:
        """Remember that ``path`` could not be read (a later failure of the same path replaces the row)."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO failed_files (path, sha256, size, error, failed_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (path) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size, "
                "error = excluded.error, failed_at = excluded.failed_at",
                (str(path), digest, size if digest is not None else None, error, iso_text(now())),
            )
        return FileOutcome(path, STATUS_FAILED, digest, error=error)

    def _end_failures(self, path: Path, digest: str) -> None:
        """``path`` holds content the store has: a failure remembered for that path or content is over."""
        query = "FROM failed_files WHERE path = ? OR sha256 = ?"
        if self._db.execute(f"SELECT 1 {query}", (str(path), digest)).fetchone() is None:
            return  # the usual case: no write, no lock
        with self._transaction() as db:
            db.execute(f"DELETE {query}", (str(path), digest))

    def _insert_spans(self, db: sqlite3.Connection, file_id: int, channels: Sequence[ChannelRecords],
                      spans: dict[tuple[str, str], ChannelSpan]) -> None:
        rows = []
        for item in channels:
            span = spans.get((item.host, item.channel))
            rows.append((
                file_id, item.host, item.channel,
                span.first_us if span else None, span.last_us if span else None, span.records if span else 0,
                span.first_record_id if span else None, span.last_record_id if span else None,
                len(span.gaps) if span else 0, span.missing_records if span else 0, item.untimed,
                item.envelope[0] if item.envelope else None, item.envelope[1] if item.envelope else None,
                pack([record_id for record_id, _ in item.pairs]), pack([time for _, time in item.pairs]),
                pack(item.no_id_times), pack([t for segment in item.segments for t in segment]),
                pack([value for m in item.misdated for value in (m.record_id, m.time_us, m.placed_us)]),
                int(item.kdc),
            ))
        db.executemany(
            "INSERT INTO spans (file_id, host, channel, first_us, last_us, records, first_record_id, last_record_id, "
            "gaps, missing_records, untimed, envelope_first_us, envelope_last_us, record_ids, record_times, "
            "no_id_times, segments, misdated, kdc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    # reading back -------------------------------------------------------------------------------------------------

    def events_table(self, batch_rows: int = 8_192, *, encoded: bool = False) -> pa.Table:
        """Every stored event as the normalised table (``source`` = the path the row was first ingested from),
        fetched ``batch_rows`` at a time: only one batch is ever Python tuples. ``encoded``: as a report reads it,
        the repeated strings dictionary-encoded (:func:`evtrack.events.encoded_schema`)."""
        import pyarrow as pa

        from evtrack.events import encode, encoded_schema, logon_schema

        schema = logon_schema()
        columns = ", ".join(f"e.{name}" for name in _EVENT_COLUMNS)
        cursor = self._db.execute(
            f"SELECT {columns}, f.path FROM events e JOIN files f ON f.id = e.file_id ORDER BY e.id"
        )
        batches = []
        while rows := cursor.fetchmany(batch_rows):
            arrays = []
            for field, values in zip(schema, zip(*rows, strict=True), strict=True):
                if pa.types.is_boolean(field.type):
                    arrays.append(pa.array(values, type=pa.int8()).cast(pa.bool_()))
                else:
                    arrays.append(pa.array(values, type=field.type))
            batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
            batches.append(encode(batch) if encoded else batch)
        return pa.Table.from_batches(batches, schema=encoded_schema() if encoded else schema)

    def coverage(self) -> list[ChannelSpan]:
        """Coverage merged over every stored file, exactly as :func:`evtrack.reading.read_inputs` merges it."""
        from evtrack.coverage import ChannelRecords, CoverageBuilder

        total = CoverageBuilder()
        per_file: dict[int, list[ChannelRecords]] = {}
        for row in self._db.execute(
            "SELECT file_id, host, channel, untimed, envelope_first_us, envelope_last_us, record_ids, record_times, "
            "no_id_times, segments, misdated, kdc FROM spans ORDER BY file_id, host, channel"
        ):
            file_id, host, channel, untimed, env_first, env_last, ids, times, no_id, packed, wrong, kdc = row
            envelope = None if env_first is None or env_last is None else (env_first, env_last)
            pairs = list(zip(unpack(ids), unpack(times), strict=True))
            per_file.setdefault(file_id, []).append(
                ChannelRecords(host, channel, pairs, unpack(no_id), untimed, envelope, unpack_segments(packed),
                               unpack_misdated(wrong), bool(kdc))
            )
        clears: dict[int, list[tuple[str, str, int]]] = {}
        for file_id, host, channel, time in self._db.execute("SELECT file_id, host, channel, time_us FROM clears"):
            clears.setdefault(file_id, []).append((host, channel, time))
        for file_id in sorted(set(per_file) | set(clears)):
            total.merge(_import_coverage(per_file.get(file_id, ()), clears.get(file_id, ())))
        return total.spans()

    def inputs(self) -> tuple[InputFile, ...]:
        from evtrack.report import InputFile

        rows = [
            InputFile(path=path, kind=kind, engine=reader, records=records, skipped=skipped,
                      issues=tuple(json.loads(issues)), error=None, size=size, sha256=digest,
                      ingested_at=parse_iso(ingested_at))
            for path, kind, reader, records, skipped, issues, size, digest, ingested_at in self._db.execute(
                "SELECT path, kind, reader, records, skipped, issues, size, sha256, ingested_at FROM files"
            )
        ]
        rows += [  # as reading the files names an input it could not read (its size and hash both, or neither)
            InputFile(path=failed.path, kind="", engine="", records=0, skipped=0, issues=(), error=failed.error,
                      size=failed.size, sha256=failed.sha256 if failed.size is not None else None)
            for failed in self.failed_files()
        ]
        return tuple(sorted(rows, key=lambda row: row.path))

    def failed_files(self) -> tuple[FailedFile, ...]:
        """The inputs ingests could not read and no later ingest has, by path."""
        rows = []
        for path, digest, size, error, failed_at in self._db.execute(
            "SELECT path, sha256, size, error, failed_at FROM failed_files ORDER BY path"
        ):
            moment = parse_iso(failed_at)
            assert moment is not None
            rows.append(FailedFile(path, error, moment, digest, size))
        return tuple(rows)

    def forget_failed(self, paths: Sequence[str] | None = None) -> tuple[str, ...]:
        """Forget remembered failures: those of ``paths`` (as :meth:`failed_files` names them), or all; returns
        the paths forgotten. A path that is not a remembered failure raises :class:`StoreError` and nothing is
        forgotten. The store's reports then no longer count them as inputs that could not be read."""
        with self._transaction() as db:
            known = [row[0] for row in db.execute("SELECT path FROM failed_files ORDER BY path")]
            if paths is None:
                chosen = known
            else:
                chosen = list(dict.fromkeys(paths))
                unknown = [path for path in chosen if path not in known]
                if unknown:
                    raise StoreError(f"not a remembered failed input: {', '.join(unknown)} "
                                     "(`evtrack store info` lists them)")
            db.executemany("DELETE FROM failed_files WHERE path = ?", [(path,) for path in chosen])
        return tuple(chosen)

    def report_source(self) -> ReportSource:
        """What :func:`evtrack.usage.build_report` needs, from the store instead of the files."""
        from evtrack.catalogue import is_evidence_channel
        from evtrack.coverage import log_of
        from evtrack.reading import DEFAULT_ENGINE
        from evtrack.usage import ReportSource

        engines = sorted(row[0] for row in self._db.execute("SELECT DISTINCT engine FROM files"))
        records, skipped = self._db.execute("SELECT ifnull(sum(records), 0), ifnull(sum(skipped), 0) FROM files"
                                            ).fetchone()
        evidence = frozenset(path for path, channel in self._db.execute(
            "SELECT DISTINCT files.path, spans.channel FROM spans JOIN files ON files.id = spans.file_id")
            if is_evidence_channel(log_of(channel)))
        return ReportSource(
            table=self.events_table(encoded=True), coverage=tuple(self.coverage()), inputs=self.inputs(),
            engine=", ".join(engines) if engines else DEFAULT_ENGINE, records_read=records, records_skipped=skipped,
            evidence_paths=evidence,
        )

    # saved reports ------------------------------------------------------------------------------------------------

    def save_report(self, report: Report) -> int:
        data = json.dumps(report.to_dict(), ensure_ascii=False, sort_keys=True)
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO reports (saved_at, created_at, scope, window_spec, tz, period_start, period_end, "
                "installed, estimated, verdict, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (iso_text(now()), iso_text(report.created_at), report.scope, report.window, report.tz,
                 iso_text(report.period_start) if report.period_start else None,
                 iso_text(report.period_end) if report.period_end else None,
                 report.installed, report.estimated, report.verdict, data),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def list_reports(self) -> list[SavedReport]:
        rows = self._db.execute(
            "SELECT id, saved_at, created_at, scope, window_spec, tz, period_start, period_end, installed, "
            "estimated, verdict FROM reports ORDER BY id"
        ).fetchall()
        result = []
        for row in rows:
            saved, created = parse_iso(row[1]), parse_iso(row[2])
            assert saved is not None and created is not None
            result.append(SavedReport(row[0], saved, created, row[3], row[4], row[5], parse_iso(row[6]),
                                      parse_iso(row[7]), row[8], row[9], row[10]))
        return result

    def get_report(self, report_id: int) -> Report:
        row = self._db.execute("SELECT data FROM reports WHERE id = ?", (report_id,)).fetchone()
        if row is None:
            raise StoreError(f"no report with id {report_id}")
        from evtrack.report import Report

        try:
            return Report.from_dict(json.loads(row[0]))
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"report {report_id} cannot be read: {exc}") from None

    def delete_report(self, report_id: int) -> None:
        """Forget a saved report (the events it was computed from stay)."""
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM reports WHERE id = ?", (report_id,))
            if cursor.rowcount == 0:
                raise StoreError(f"no report with id {report_id}")

    # housekeeping -------------------------------------------------------------------------------------------------

    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                total += Path(str(self.path) + suffix).stat().st_size
        return total

    def info(self) -> StoreInfo:
        db = self._db
        files, last = db.execute("SELECT count(*), max(ingested_at) FROM files").fetchone()
        coverage = tuple(self.coverage())
        hosts = {row[0] for row in db.execute("SELECT DISTINCT host FROM events WHERE host IS NOT NULL")}
        hosts |= {span.host for span in coverage}
        return StoreInfo(
            path=self.path, size_bytes=self.size_bytes(),
            schema_version=db.execute("PRAGMA user_version").fetchone()[0], files=files,
            events=db.execute("SELECT count(*) FROM events").fetchone()[0],
            reports=db.execute("SELECT count(*) FROM reports").fetchone()[0],
            hosts=tuple(sorted(hosts)), coverage=coverage, last_ingest=parse_iso(last), failed=self.failed_files(),
        )

    def vacuum(self) -> tuple[int, int]:
        """Reclaim free pages and fold the WAL back in; returns the size before and after, in bytes."""
        before = self.size_bytes()
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError as exc:
            if _is_locked(exc):
                raise self._busy() from None
            raise StoreError(f"{self.path}: {exc}") from None
        return before, self.size_bytes()

    def prune(self, before: datetime) -> PruneResult:
        """Delete events older than ``before``; clip the coverage that reaches past it, drop what does not.

        File rows stay, so a pruned file is still "already ingested" and is not added back by a later ingest.
        """
        from evtrack.coverage import REACH_PREFIX, ChannelRecords

        cutoff = _us(before)
        clipped = removed = 0
        with self._transaction() as db:
            events = db.execute("DELETE FROM events WHERE time < ?", (cutoff,)).rowcount
            clears = db.execute("DELETE FROM clears WHERE time_us < ?", (cutoff,)).rowcount
            rows = db.execute(
                "SELECT file_id, host, channel, untimed, envelope_first_us, envelope_last_us, record_ids, "
                "record_times, no_id_times, segments, misdated, kdc FROM spans WHERE envelope_first_us < ?",
                (cutoff,),
            ).fetchall()
            for file_id, host, channel, untimed, _first, env_last, ids, times, no_id, packed, wrong, kdc in rows:
                key = (file_id, host, channel)
                if channel.startswith(REACH_PREFIX):
                    continue  # how far an evidence export reaches vouches for stated time after the cut too
                if env_last < cutoff:
                    db.execute("DELETE FROM spans WHERE file_id = ? AND host = ? AND channel = ?", key)
                    removed += 1
                    continue
                pairs = [(i, t) for i, t in zip(unpack(ids), unpack(times), strict=True) if t >= cutoff]
                segments = tuple((max(a, cutoff), b) for a, b in unpack_segments(packed) if b >= cutoff)
                item = ChannelRecords(host, channel, pairs, [t for t in unpack(no_id) if t >= cutoff], untimed,
                                       (cutoff, env_last), segments,
                                       tuple(m for m in unpack_misdated(wrong) if m.placed_us >= cutoff), bool(kdc))
                db.execute("DELETE FROM spans WHERE file_id = ? AND host = ? AND channel = ?", key)
                spans = {(s.host, s.channel): s for s in _import_coverage([item], ()).spans()}
                self._insert_spans(db, file_id, [item], spans)
                clipped += 1
        return PruneResult(before, events, clipped, removed, clears)


