"""From input paths to the normalised event table: expand, detect by content, read, normalise, cover.

The unit of work is one file (:func:`read_file`), a pure function of its arguments whose result pickles, so the
same code runs in-process, in a process pool, or on a remote worker. What the readers decode is the read plan
(:class:`~evtrack.sources.base.ReadPlan`) the event catalogue makes (:func:`evtrack.catalogue.read_plan`): made
once per read here, handed to every reader, and pickled with the path to workers.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import importlib
import multiprocessing
import multiprocessing.context
import os
import stat
import struct
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evtrack import catalogue
from evtrack.coverage import ChannelSpan, CoverageBuilder
from evtrack.errors import NotAnEventLog, SourceError
from evtrack.events import (
    ACCOUNT_AT,
    BatchBuilder,
    encode,
    normalise_batch,
    normalise_row,
    row_needed_for_report,
    rows_needed_for_report,
)
from evtrack.parallel import share
from evtrack.sources.base import (
    CHUNK_MAGIC,
    EVTX_MAGIC,
    FILE_HEADER_SIZE,
    FileStats,
    InputKind,
    RawBatch,
    RawEvent,
    Reader,
    ReadIssue,
    ReadPlan,
    file_sha256,
    unreadable,
)
from evtrack.sources.xmlfile import looks_like_xml_events

if TYPE_CHECKING:
    import pyarrow as pa


#: Engine name → the module whose ``READER`` (a :class:`~evtrack.sources.base.Reader` of that name) reads .evtx
#: with it. Imported lazily so `evtrack --help` never loads a parser.
ENGINES: dict[str, str] = {
    "evtx": "evtrack.sources.pyevtx_rs",
    "python-evtx": "evtrack.sources.python_evtx",
}
#: The module whose ``READER`` reads XML exports.
XML_READER = "evtrack.sources.xmlfile"
#: The other inputs, told apart by content: each module has ``looks_like(head, path)`` and a ``READER``. A new
#: input kind is its reader module, a line here and its catalogue entries.
CONTENT_READERS: dict[InputKind, str] = {
    InputKind.BROKER_CSV: "evtrack.sources.broker_csv",
    InputKind.QUERY_USER: "evtrack.sources.query_user",
    InputKind.AZURE: "evtrack.sources.azure",
}
#: How much of a file content detection looks at.
_HEAD_BYTES = 65_536
DEFAULT_ENGINE = "evtx"
_GLOB_CHARS = frozenset("*?[")


def get_reader(kind: InputKind, engine: str) -> Reader:
    """The reader of ``kind`` inputs (``engine`` for an .evtx), imported on first use."""
    if kind is InputKind.XML:
        module = XML_READER
    elif kind in CONTENT_READERS:
        module = CONTENT_READERS[kind]
    else:
        try:
            module = ENGINES[engine]
        except KeyError:
            raise SourceError(engine, f"unknown engine (choose from {', '.join(ENGINES)})") from None
    reader: Reader = importlib.import_module(module).READER
    return reader


def detect_kind(path: Path) -> InputKind:
    """Tell an .evtx from an XML export by its first bytes, never by its name.

    Content that is no event log raises :class:`NotAnEventLog` (a folder scan ignores such files), unless the file
    claims to be one: named ``*.evtx``, or with the layout of an .evtx whose magic is damaged. Then it raises a
    plain :class:`SourceError`, a failed input."""
    if path.name.startswith(".") and path.name.endswith(".tmp"):  # evtrack's own atomic writes (poll, -o)
        raise NotAnEventLog(path, "a temporary file: a write in progress (e.g. by evtrack poll), read once it is "
                                  "complete")
    try:
        with path.open("rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError as exc:
        raise unreadable(path, exc) from None
    if head.startswith(EVTX_MAGIC):
        return InputKind.EVTX
    if head and looks_like_xml_events(head[:4096]):
        return InputKind.XML
    modules = {kind: importlib.import_module(module) for kind, module in CONTENT_READERS.items()}
    for kind, module in modules.items():
        if module.looks_like(head, path):
            return kind
    for kind, module in modules.items():  # says it is one (its name, its #TYPE line) but cannot be read as one
        if module.claims(head, path):
            return kind  # its reader names what is wrong: a failed input, never a file ignored without a word
    archive = _archive(head, path)
    if archive is not None:  # it may well hold logs: a failed input, never ignored (a host would vanish unsaid)
        raise SourceError(path, f"a {archive} archive: evtrack reads no archives; extract it and give the files "
                                "inside (or move it out of the folder)")
    if not head:
        reason = "not an event log: the file is empty"
    elif not any(head[: FILE_HEADER_SIZE + len(CHUNK_MAGIC)]):
        reason = "not an event log: all zeros where the header should be (never written, or wiped)"
    elif _damaged_evtx(head):
        raise SourceError(path, f"damaged .evtx: bad file header magic {head[:8]!r} (expected {EVTX_MAGIC!r})")
    else:
        reason = f"not an event log (starts with {head[:16]!r})"
    if path.suffix.lower() == ".evtx":
        raise SourceError(path, reason)
    raise NotAnEventLog(path, reason)


#: Archive formats by their magic bytes. ZIP counts only named ``*.zip``: Office documents are ZIP files too.
_ARCHIVES = ((b"\x1f\x8b", "gzip"), (b"7z\xbc\xaf\x27\x1c", "7-Zip"), (b"BZh", "bzip2"),
             (b"\xfd7zXZ\x00", "xz"), (b"Rar!\x1a\x07", "RAR"), (b"MSCF\x00\x00\x00\x00", "cabinet"))


def _archive(head: bytes, path: Path) -> str | None:
    """The kind of archive a file is (by its first bytes), or None."""
    found = next((name for magic, name in _ARCHIVES if head.startswith(magic)), None)
    if found is None and path.suffix.lower() == ".zip" and head[:2] == b"PK":
        found = "ZIP"
    return found


def _damaged_evtx(head: bytes) -> bool:
    """An .evtx header whose magic is damaged: the magic off by a few bytes, the usual header fields (header size
    128, version 3.1, block size 4096 at offsets 32-40: libevtx's EVTX format notes, section "File header"; see
    :mod:`evtrack.sources.base`), or a chunk magic where the first chunk starts."""
    if len(head) >= len(EVTX_MAGIC) and sum(a != b for a, b in zip(head[:8], EVTX_MAGIC, strict=True)) <= 3:
        return True
    if len(head) >= 0x80 and struct.unpack_from("<IHHH", head, 32) == (0x80, 1, 3, FILE_HEADER_SIZE):
        return True
    return head[FILE_HEADER_SIZE : FILE_HEADER_SIZE + len(CHUNK_MAGIC)] == CHUNK_MAGIC


def _cannot_list(folder: Path, exc: OSError) -> ReadIssue:
    return ReadIssue(folder, "input", f"cannot list this folder: {_why(exc)}", 0)


def _why(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    return str(exc.strerror or exc)


def _walk(directory: Path, errors: list[ReadIssue]) -> Iterator[Path]:
    """Every file below ``directory``, sorted, without following symlinked directories (no loops). A folder that
    cannot be listed (permissions) goes to ``errors``: what it holds would otherwise be lost without a word."""

    def denied(exc: OSError) -> None:
        errors.append(_cannot_list(Path(exc.filename) if exc.filename else directory, exc))

    for root, dirs, files in os.walk(directory, onerror=denied, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            yield Path(root) / name


def _what_is(path: Path) -> str | OSError:
    """``dir``, ``file``, ``missing``, or the error that stopped us from telling (a folder on the way that cannot
    be entered)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "missing"
    except NotADirectoryError:
        return "missing"
    except OSError as exc:
        return exc
    return "dir" if stat.S_ISDIR(mode) else "file"


def _glob_root(pattern: str) -> tuple[Path, list[str]]:
    """The literal folder a glob pattern starts from, and the pattern's parts below it."""
    parts = Path(pattern).parts
    for index, part in enumerate(parts):
        if _GLOB_CHARS & set(part):
            return Path(*parts[:index]) if index else Path(), list(parts[index:])
    return Path(pattern), []


def _may_hold(relative: tuple[str, ...], parts: list[str]) -> bool:
    """Whether a folder at ``relative`` (below the glob root) could hold matches of ``parts``."""
    import fnmatch

    if not relative:
        return bool(parts)
    if not parts:
        return False
    if parts[0] == "**":
        return _may_hold(relative, parts[1:]) or _may_hold(relative[1:], parts)
    return fnmatch.fnmatch(relative[0], parts[0]) and _may_hold(relative[1:], parts[1:])


def _unlistable(pattern: str) -> list[ReadIssue]:
    """Folders a glob could not look into (``glob`` skips them without a word), where matches could be."""
    root, parts = _glob_root(pattern)
    found: list[ReadIssue] = []
    recursive = "**" in parts
    depth = len(parts) - 1

    def denied(exc: OSError) -> None:
        folder = Path(exc.filename) if exc.filename else root
        try:
            relative = folder.relative_to(root).parts
        except ValueError:
            relative = ()
        if _may_hold(relative, parts):
            found.append(_cannot_list(folder, exc))

    for top, dirs, _files in os.walk(root, onerror=denied, followlinks=False):
        level = len(Path(top).relative_to(root).parts)
        if not recursive and level >= depth:
            dirs.clear()
            continue
        relative = Path(top).relative_to(root).parts
        dirs[:] = [d for d in dirs if _may_hold((*relative, d), parts)]
    return found


@dataclass(frozen=True, slots=True)
class Inputs:
    files: tuple[Path, ...]
    """Distinct files to read, in a stable order."""
    errors: tuple[ReadIssue, ...]
    """Arguments that named nothing readable."""
    from_directories: frozenset[Path]
    """Files found by scanning a directory (a non-log there is ignored with a note, not an error)."""


def expand_inputs(arguments: Iterable[str | Path]) -> Inputs:
    """Files, directories (recursive) and globs, mixed; duplicates (same resolved path) read once."""
    files: list[Path] = []
    errors: list[ReadIssue] = []
    scanned: set[Path] = set()
    seen: set[Path] = set()

    def add(path: Path, from_directory: bool) -> None:
        key = path.resolve()
        if key in seen:
            return
        seen.add(key)
        files.append(path)
        if from_directory:
            scanned.add(path)

    for argument in arguments:
        path = Path(argument)
        what = _what_is(path)
        if what == "dir":
            for found in _walk(path, errors):
                add(found, True)
        elif what == "file":
            add(path, False)
        elif _GLOB_CHARS & set(str(argument)):
            matches = sorted(glob.glob(str(argument), recursive=True))
            unlistable = _unlistable(str(argument))
            errors.extend(unlistable)
            if not matches and not unlistable:
                errors.append(ReadIssue(path, "input", "no file matches this pattern", 0))
            for match in matches:
                found_path = Path(match)
                if _what_is(found_path) == "dir":
                    for found in _walk(found_path, errors):
                        add(found, True)
                else:
                    add(found_path, False)
        elif isinstance(what, OSError):
            errors.append(ReadIssue(path, "input", f"cannot access: {_why(what)}", 0))
        else:
            errors.append(ReadIssue(path, "input", "no such file or directory", 0))
    return Inputs(tuple(files), tuple(dict.fromkeys(errors)), frozenset(scanned))  # a folder named twice: once


@dataclass(slots=True)
class FileResult:
    """Everything reading one file produced: rows (as Arrow batches), what could not be read, coverage."""

    stats: FileStats
    batches: list[pa.RecordBatch] = field(default_factory=list)
    coverage: CoverageBuilder = field(default_factory=CoverageBuilder)
    error: str | None = None
    """Set when the file could not be read at all (not an event log, unreadable, no record readable)."""
    not_a_log: bool = False
    """The file is no event log and does not claim to be one (:class:`evtrack.errors.NotAnEventLog`): a folder
    scan ignores it."""
    observations: set[tuple[str, str | None, str | None, str]] = field(default_factory=set)
    """(user, domain, SID, host) of rows left out by a slim read, for identity linking."""




def ignorable(result: FileResult, inputs: Inputs) -> bool:
    """A file a folder scan found that is no event log (nor claims to be one): noted as ignored, not failed."""
    return result.not_a_log and result.stats.path in inputs.from_directories


def _with_coverage(events: Iterator[RawEvent | RawBatch], coverage: CoverageBuilder, stats: FileStats
                   ) -> Iterator[RawEvent]:
    """Feed every record to ``coverage``; where the reader lost records since the last one, start a new segment.
    (Only a reader that fills the coverage itself yields :class:`RawBatch` runs.)"""
    seen_issues = 0
    for event in events:
        if isinstance(event, RawBatch):
            raise TypeError("a reader that yields RawBatch runs must fill the coverage itself (fills_coverage)")
        if len(stats.issues) > seen_issues:
            if any(issue.skipped for issue in stats.issues[seen_issues:]):
                coverage.break_segments()
            seen_issues = len(stats.issues)
        coverage.add(event)
        yield event


def read_file(path: Path, engine: str = DEFAULT_ENGINE, verify_checksums: bool = True,
              batch_rows: int = 65_536, slim: bool = False, chunks: tuple[int, int] | None = None,
              plan: ReadPlan | None = None, fingerprint: bool = False) -> FileResult:
    """Read one file into rows, stats and coverage. Never raises for bad content: it is in the result.

    ``plan`` says what the reader decodes (None: the catalogue's, :func:`evtrack.catalogue.read_plan`). ``slim``
    keeps only the rows a report needs (:func:`evtrack.events.row_needed_for_report`); the account names and SIDs of
    the others go to ``observations``, so memory stays small on large Security logs; its batches carry the
    repeated strings dictionary-encoded (:func:`evtrack.events.encoded_schema`), smaller to send and to hold.
    ``chunks`` (first, last exclusive) reads only that range of an .evtx (see :func:`join_ranges`); ``stats.size``
    is then the range's share of the file. ``fingerprint`` takes the file's SHA-256 too (``stats.sha256``; not for
    a range), where the file is read: in a pool's worker, beside the others."""
    if plan is None:
        plan = catalogue.read_plan()
    stats = FileStats(path)
    result = FileResult(stats)
    source = str(path)
    builder = BatchBuilder(batch_rows)

    def batch() -> pa.RecordBatch:
        return encode(builder.flush()) if slim else builder.flush()

    with contextlib.suppress(OSError):  # before detection: a file that fails there still has its size
        stats.size = path.stat().st_size
    try:
        kind = detect_kind(path)
        stats.kind = kind
        reader = get_reader(kind, engine)
        options: dict[str, Any] = {"plan": plan, "verify_checksums": verify_checksums}
        if slim and reader.skips_observed:
            options["slim"] = True  # the reader may skip records whose only use is an account already yielded
        if chunks is not None:
            if kind is not InputKind.EVTX or not reader.reads_ranges:
                raise SourceError(path, "this engine cannot read a range of chunks")
            options["chunks"] = chunks
            stats.size = _range_bytes(stats.size, chunks)
        if reader.fills_coverage:
            options["coverage"] = result.coverage
            raws = reader.read(path, stats, **options)
        else:
            raws = _with_coverage(reader.read(path, stats, **options), result.coverage, stats)
        user, domain, sid, host = ACCOUNT_AT
        for raw in raws:
            if isinstance(raw, RawBatch):  # records as columns: rows as columns
                rows = normalise_batch(raw, source)
                builder.add_batch(_kept(rows, result.observations) if slim else rows)
                if builder.full():
                    result.batches.append(batch())
                continue
            row = normalise_row(raw, source)
            if row is not None:
                if slim and not row_needed_for_report(row):
                    if row[user] is not None:
                        result.observations.add((row[user], row[domain], row[sid], row[host]))
                    continue
                builder.add_row(row)
                if builder.full():
                    result.batches.append(batch())
    except SourceError as exc:
        result.error = exc.reason
        result.not_a_log = isinstance(exc, NotAnEventLog)
    if builder.rows:
        result.batches.append(batch())
    if fingerprint and chunks is None:
        with contextlib.suppress(OSError):
            stats.sha256 = file_sha256(path)
    return result if chunks is not None else _settle(result)


def _kept(rows: pa.RecordBatch, observations: set[tuple[str, str | None, str | None, str]]) -> pa.RecordBatch:
    """The rows of a slim read (:func:`evtrack.events.rows_needed_for_report`); the accounts of the others go to
    ``observations``, as the row-by-row loop of :func:`read_file` puts them."""
    import pyarrow as pa

    keep = rows_needed_for_report(rows)
    if keep.all():
        return rows
    left = rows.filter(pa.array(~keep))
    accounts = zip(*(left.column(index).to_pylist() for index in ACCOUNT_AT), strict=True)
    observations.update(account for account in accounts if account[0] is not None)
    return rows.filter(pa.array(keep))


#: What a file's records that name no Channel become: every event evtrack reads is known by its channel, so they
#: are not read; said once per file, never dropped without a word.
NO_CHANNEL = ("record(s) name no Channel (an export or a tool that left it out?): evtrack cannot tell which log "
              "they belong to and does not read them")


def _settle(result: FileResult) -> FileResult:
    """A whole file from which not one record could be read, while its reader named what went wrong (a file cut
    short, every chunk damaged), is a failed file, not an empty log. Records that name no Channel are said."""
    stats = result.stats
    unplaced = stats.per_channel.get("", 0)
    if unplaced:
        stats.add_issue("file", f"{unplaced} {NO_CHANNEL}", 0)
    if result.error is None and stats.records == 0 and stats.issues:
        first = stats.issues[0]
        more = len(stats.issues) - 1
        result.error = f"no record could be read: {first.where}: {first.reason}" + (
            f" (and {more} more issue{'s' if more > 1 else ''})" if more else "")
    return result


@dataclass(frozen=True, slots=True)
class ReadResult:
    """The event table over all inputs, with per-file stats and merged coverage."""

    table: pa.Table
    """The rows read: :func:`evtrack.events.logon_schema`; a slim read's (a report's) is
    :func:`evtrack.events.encoded_schema`, the same values with the repeated strings
    (:data:`evtrack.events.ENCODED_COLUMNS`: host, channel, provider, source, ...) dictionary-encoded.
    :func:`evtrack.events.decoded` gives the plain table."""
    files: tuple[FileStats, ...]
    file_errors: tuple[ReadIssue, ...]
    """Inputs that could not be read at all, with why."""
    ignored: tuple[ReadIssue, ...]
    """Files found in a directory scan that are not event logs (noted, not errors)."""
    coverage: tuple[ChannelSpan, ...]
    engine: str
    observations: tuple[tuple[str, str | None, str | None, str], ...] = ()
    """Accounts seen in rows a slim read left out (sorted, distinct)."""

    @property
    def records(self) -> int:
        return sum(stats.records for stats in self.files)

    @property
    def skipped(self) -> int:
        return sum(stats.skipped for stats in self.files)

    @property
    def issues(self) -> list[ReadIssue]:
        return [issue for stats in self.files for issue in stats.issues]


ProgressCallback = Callable[[FileResult], None]
"""Called as each file, or range of a large file, is read; ``result.stats.size`` is the bytes it covered."""


def default_jobs() -> int:
    return max(1, os.cpu_count() or 1)


#: With several jobs, an .evtx larger than this many chunks (and than its share of the work) is read as chunk
#: ranges by several workers, so one big Security log does not leave the other cores idle.
SPLIT_MIN_CHUNKS = 48


def _range_bytes(size: int, chunks: tuple[int, int]) -> int:
    from evtrack.sources.base import CHUNK_SIZE, FILE_HEADER_SIZE

    first, last = chunks
    low = FILE_HEADER_SIZE + first * CHUNK_SIZE
    high = min(size, FILE_HEADER_SIZE + last * CHUNK_SIZE)
    return max(0, high - low) + (min(size, FILE_HEADER_SIZE) if first == 0 else 0)


def unit_bytes(path: Path, chunks: tuple[int, int] | None = None) -> int:
    """How much of a file a unit of work reads: the file, or a range of its chunks (0 when it cannot be told:
    such units go last)."""
    try:
        size = path.stat().st_size
    except OSError:
        return 0
    return size if chunks is None else _range_bytes(size, chunks)


def plan_units(files: Sequence[Path], engine: str, jobs: int) -> list[tuple[Path, tuple[int, int] | None]]:
    """The pieces of work for ``jobs`` workers, in input order: whole files, and chunk ranges of large .evtx
    files when the engine can read ranges."""
    from evtrack.sources.base import CHUNK_SIZE
    from evtrack.sources.guard import chunk_count, splittable

    if jobs <= 1:
        return [(path, None) for path in files]
    reader = get_reader(InputKind.EVTX, engine)
    sizes = []
    for path in files:
        try:
            sizes.append(path.stat().st_size)
        except OSError:
            sizes.append(0)
    share = max(SPLIT_MIN_CHUNKS, sum(sizes) // CHUNK_SIZE // (2 * jobs))
    units: list[tuple[Path, tuple[int, int] | None]] = []
    for path, size in zip(files, sizes, strict=True):
        count = chunk_count(size)
        if count < 2 * share or not reader.reads_ranges or not splittable(path):
            units.append((path, None))
            continue
        pieces = -(-count // share)
        step = -(-count // pieces)
        units.extend((path, (lo, min(count, lo + step))) for lo in range(0, count, step))
    return units


def join_ranges(parts: Sequence[FileResult]) -> FileResult:
    """One file's result from the results of its chunk ranges, in order: equal to reading it whole."""
    from evtrack.sources.guard import BLANK, REFUSED

    head = parts[0]
    stats = head.stats
    issues = list(stats.issues)
    for part in parts[1:]:
        if part.error is not None and head.error is None:
            head.error = part.error
        stats.size += part.stats.size
        stats.records += part.stats.records
        stats.fallbacks += part.stats.fallbacks
        stats.per_channel.update(part.stats.per_channel)
        issues.extend(part.stats.issues)
        head.batches.extend(part.batches)
        head.coverage.continue_with(part.coverage)
        head.observations |= part.observations
    # reading whole, the guard names every chunk it withholds before pyevtx-rs reports anything
    guard = (REFUSED, BLANK)
    stats.issues = [i for i in issues if i.reason in guard] + [i for i in issues if i.reason not in guard]
    return _settle(head)


#: What every worker needs, imported once by the forkserver so that forked workers start with it (~0.8 s each
#: otherwise: pyarrow, numpy, the parsers, and pandas, which pyarrow imports when it makes its first array).
_PRELOAD = ["evtrack.reading", *ENGINES.values(), XML_READER, "evtx", "pyarrow", "pyarrow.compute", "pyarrow.json",
            "numpy", "pandas"]


def pool_context(method: str | None = None) -> multiprocessing.context.BaseContext:
    """The start method of every evtrack process pool, chosen explicitly rather than left to the platform.

    Not ``fork``: forking a process that runs pyarrow's threads may deadlock (Python 3.12+ warns about it), and
    it is not what Windows and macOS do. ``forkserver`` where it exists (Linux, BSD): a clean server process that
    imports :data:`_PRELOAD` once and forks workers from it; ``spawn`` on Windows and macOS. ``method`` forces
    one (tests run ``spawn`` on Linux too)."""
    if method is None:
        methods = multiprocessing.get_all_start_methods()
        method = "forkserver" if "forkserver" in methods and sys.platform != "darwin" else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(_PRELOAD)
    return context


def process_pool(workers: int, method: str | None = None) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes started by :func:`pool_context`."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=pool_context(method))


#: With several jobs, inputs smaller than this are read in the calling process alone: a pool takes about a second
#: to start, longer than reading them.
POOL_MIN_BYTES = 16 * 2**20


def worth_a_pool(jobs: int, sizes: Sequence[int]) -> bool:
    """Whether units of work of these sizes (:func:`unit_bytes`) are read by a pool of processes: several jobs,
    several units, and :data:`POOL_MIN_BYTES` at least."""
    return jobs > 1 and len(sizes) > 1 and sum(sizes) >= POOL_MIN_BYTES
#: The calling process reads while the pool of ``jobs`` workers starts (:func:`evtrack.parallel.share`); tests turn
#: it off to make the workers read everything.
CALLER_READS = True


def _read_unit(unit: tuple[Path, tuple[int, int] | None], *, engine: str, verify_checksums: bool, slim: bool,
               plan: ReadPlan, fingerprint: bool = False) -> FileResult:
    """:func:`read_file` of one unit of :func:`plan_units` (module level: it pickles to workers)."""
    path, chunks = unit
    return read_file(path, engine, verify_checksums, slim=slim, chunks=chunks, plan=plan, fingerprint=fingerprint)


def read_inputs(arguments: Sequence[str | Path], *, engine: str = DEFAULT_ENGINE, verify_checksums: bool = True,
                jobs: int = 1, progress: ProgressCallback | None = None, slim: bool = False,
                start_method: str | None = None, plan: ReadPlan | None = None, fingerprint: bool = False
                ) -> ReadResult:
    """Read every input with one read ``plan`` (None: the catalogue's, :func:`evtrack.catalogue.read_plan`); the
    result does not depend on ``jobs``, on the pool's ``start_method`` (see :func:`pool_context`) or on the order
    files finish in (the table's values: how a slim read's dictionaries are cut follows its batches).
    ``fingerprint``: each file's SHA-256 too (:attr:`FileStats.sha256`), taken where it is read."""
    import pyarrow as pa

    from evtrack.events import encoded_schema, logon_schema

    if engine not in ENGINES:
        raise SourceError(engine, f"unknown engine (choose from {', '.join(ENGINES)})")
    if plan is None:
        plan = catalogue.read_plan()
    inputs = expand_inputs(arguments)
    units = plan_units(inputs.files, engine, jobs)
    read_unit = functools.partial(_read_unit, engine=engine, verify_checksums=verify_checksums, slim=slim,
                                  plan=plan, fingerprint=fingerprint)
    sizes = [unit_bytes(path, chunks) for path, chunks in units]
    if worth_a_pool(jobs, sizes):
        finished = share(units, read_unit, sizes=sizes, workers=jobs,
                         pool=functools.partial(process_pool, jobs, start_method),
                         on_result=progress, caller_works=CALLER_READS)
    else:
        finished = []
        for unit in units:
            finished.append(read_unit(unit))
            if progress:
                progress(finished[-1])
    results: list[FileResult] = []
    for (path, chunks), result in zip(units, finished, strict=True):
        if chunks is None:
            results.append(result)
        elif chunks[0] == 0:  # a file read in ranges: its ranges follow in order
            results.append(join_ranges([r for (p, c), r in zip(units, finished, strict=True)
                                        if p == path and c is not None]))
    observations: set[tuple[str, str | None, str | None, str]] = set()
    coverage = CoverageBuilder()
    batches: list[pa.RecordBatch] = []
    files: list[FileStats] = []
    errors = list(inputs.errors)
    ignored: list[ReadIssue] = []
    for result in results:
        if result.error is not None:
            issue = ReadIssue(result.stats.path, "file", result.error, 0)
            (ignored if ignorable(result, inputs) else errors).append(issue)
            continue
        files.append(result.stats)
        batches.extend(result.batches)
        coverage.merge(result.coverage)
        observations.update(result.observations)
    table = pa.Table.from_batches(batches, schema=encoded_schema() if slim else logon_schema())
    return ReadResult(table, tuple(files), tuple(errors), tuple(ignored), tuple(coverage.spans()), engine,
                      tuple(sorted(observations, key=lambda o: tuple(v or "" for v in o))))
