"""What every reader hands on: raw records, read issues and per-file counts.

Readers are the only modules that import a parser library. Each turns one input file into a stream of
:class:`RawEvent` (every record it could read, in file order) and fills a :class:`FileStats` with what it
could not read. Nothing here applies an RDP rule: that is :mod:`evtrack.events`.
"""

from __future__ import annotations

import csv
import io
import struct
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

    from evtrack.errors import SourceError

#: Seconds between the FILETIME epoch (1601-01-01) and the Unix epoch, in 100 ns ticks.
FILETIME_UNIX_OFFSET = 116_444_736_000_000_000

#: The .evtx layout both engines and the guard read: a 4 KiB file header, then 64 KiB chunks whose records
#: start after a 512-byte chunk header, each record with a 24-byte header before its BinXML. Sections "File
#: header", "Chunk", "Chunk header" and "Event record" of libevtx's "Windows XML Event Log (EVTX) format",
#: https://github.com/libyal/libevtx/blob/main/documentation/Windows%20XML%20Event%20Log%20(EVTX).asciidoc
EVTX_MAGIC = b"ElfFile\x00"
CHUNK_MAGIC = b"ElfChnk\x00"
FILE_HEADER_SIZE = 0x1000
CHUNK_SIZE = 0x10000
CHUNK_HEADER_SIZE = 0x200
RECORD_HEADER_SIZE = 24


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unreadable(path: Path, exc: OSError) -> SourceError:
    """The error for a file that cannot be opened or read, in the one wording every reader uses."""
    from evtrack.errors import SourceError

    if isinstance(exc, IsADirectoryError):
        return SourceError(path, "is a directory, not a file")
    if isinstance(exc, PermissionError):
        return SourceError(path, "permission denied")
    if isinstance(exc, FileNotFoundError):
        return SourceError(path, "no such file")
    return SourceError(path, f"cannot read: {exc.strerror or exc}")


def truncated_header(size: int) -> str:
    """The reason both engines give for an .evtx shorter than its file header."""
    return f"truncated file header ({size:,} of {FILE_HEADER_SIZE:,} bytes): the file was cut short"


def truncated_chunk(present: int) -> str:
    """The reason both engines give for a last chunk the file ends inside."""
    return f"truncated chunk ({present:,} of {CHUNK_SIZE:,} bytes): the file was cut short"


#: Why a CSV row is skipped whose quoted value the file ends inside.
CUT_INSIDE_QUOTES = ("the file ends inside this row's quoted value: cut short (an interrupted copy or download?); "
                     "row skipped, export it again")


def csv_records(lines: Iterable[str], delimiter: str) -> Iterator[tuple[int, list[str] | None]]:
    """(line the record starts on, its fields) for each CSV record of ``lines`` (read with ``newline=""``); blank
    lines are skipped. The last record is None when the file ends inside one of its quoted values: the csv module
    returns such a value as if it were whole, and a file cut short there would lose what followed without a word.
    A malformed record raises ``csv.Error`` as the csv module does."""
    consumed: list[str] = []

    def remember() -> Iterator[str]:
        for line in lines:
            consumed.append(line)
            yield line

    reader = csv.reader(remember(), delimiter=delimiter)
    line = 1
    pending: tuple[int, list[str]] | None = None
    raw = ""
    try:
        for record in reader:
            if pending is not None:
                yield pending
                pending = None
            if record and any(record):
                pending, raw = (line, record), "".join(consumed)
            consumed.clear()
            line = reader.line_num + 1
    except csv.Error:
        if pending is not None:  # the record before the malformed one is whole: it is not lost with it
            yield pending
        raise
    if pending is not None:
        yield (pending[0], None) if _ends_inside_quotes(raw, delimiter) else pending


def _ends_inside_quotes(text: str, delimiter: str) -> bool:
    try:
        for _ in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def chunk_header_records(header: bytes) -> int:
    """How many records a chunk's header (its first 48 bytes or more) says it holds; 0 when it cannot say. A header
    whose magic is damaged still says it when the rest reads as a chunk header: its header size 128 (offset 40)
    and its first and last record numbers (offsets 8 and 16) a plausible run (libevtx's EVTX notes, "Chunk
    header"). A damaged chunk's records are lost: the count says how many."""
    if len(header) < 48:
        return 0
    first, last = struct.unpack_from("<QQ", header, 8)
    if header[:8] != CHUNK_MAGIC and struct.unpack_from("<I", header, 40)[0] != 0x80:
        return 0
    return int(last - first + 1) if 0 <= last - first < CHUNK_SIZE else 0


def chunk_records_whole(chunk: bytes) -> bool:
    """Whether the bytes of a chunk the file ends inside hold all of its records: its header whole, with the chunk
    magic, and its free-space offset (where its records end; libevtx's EVTX notes, "Chunk header") within them. The
    file was cut in the chunk's unused space: its checksums hold, and it is read padded with zeros."""
    if len(chunk) < CHUNK_HEADER_SIZE or chunk[:8] != CHUNK_MAGIC:
        return False
    free_space: int = struct.unpack_from("<I", chunk, 48)[0]
    return CHUNK_HEADER_SIZE <= free_space <= len(chunk)


def missing_chunks(size: int, header: bytes) -> tuple[int, str] | None:
    """When the file ends (on a chunk boundary) before the last chunk its header names: the first missing chunk
    and why. A header naming fewer chunks than the file holds is usual (a "dirty" log) and not reported."""
    if len(header) < 0x2C or size < FILE_HEADER_SIZE:
        return None
    (named,) = struct.unpack_from("<H", header, 0x2A)
    present = (size - FILE_HEADER_SIZE) // CHUNK_SIZE
    if (size - FILE_HEADER_SIZE) % CHUNK_SIZE or named <= present:
        return None
    return present, (f"the file ends after {present:,} of the {named:,} chunks its header names: "
                     "the file was cut short (records lost)")


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """What a reader is asked to read: built from the event catalogue and the settings by
    :func:`evtrack.catalogue.read_plan`, handed to every reader by :func:`evtrack.reading.read_file`. Readers
    import nothing outside ``sources/``: what they decode, what a slim read may leave out and which records name a
    KDC come from here.

    Frozen and hashable, so a reader caches what it derives from a plan (the ids as text, template plans) keyed by
    the plan; it pickles, so it travels to worker processes and Dask workers with the path. The default
    (``ReadPlan()``) asks for no payload at all: callers take the catalogue's."""

    wanted_ids: frozenset[int] = frozenset()
    """Event ids whose payload a reader decodes; a reader may leave ``data`` empty for any other record (it then
    counts towards coverage only: time, host, channel, record id)."""
    payload_keys: frozenset[str] = frozenset()
    """The payload fields decoded; a fast reader keeps only these (both .evtx engines must give them identical
    text)."""
    account_only: frozenset[tuple[str, int]] = frozenset()
    """(channel in lower case, event id) of records a slim read keeps only as an account, unless their logon
    type is one of :attr:`session_logon_types`."""
    session_logon_types: frozenset[int] = frozenset()
    """Logon types whose account-only records a report reads as rows (they open RDP sessions)."""
    kdc_ids: frozenset[int] = frozenset()
    """Security event ids only a Kerberos KDC writes: a hint that the host is a domain controller."""
    local_zone: tzinfo | None = None
    """The zone (resolved by the settings, once) of inputs that write local times without an offset (Connection
    Broker and ``query user`` snapshots, a portal CSV in local time). None: such an input is refused with a clear
    error."""
    culture: str | None = None
    """The culture (e.g. ``en-US``, ``en-GB``, ``de-DE``) whose date format such inputs use, when the data does not
    decide it. None: infer it from the data where it decides, else refuse with a clear error."""

    def observation_only(self, channel: str, event_id: int, logon_type: int | None) -> bool:
        """Whether a record (with this logon type) is kept only as an account by a slim read: an account-only
        event whose logon type opens no RDP session (the catalogue's rule, as ``evtrack.events`` applies it to
        rows). Readers may skip such a record once they have yielded one with the same account."""
        return ((channel.lower(), event_id) in self.account_only
                and (logon_type is None or not -128 <= logon_type <= 127
                     or logon_type not in self.session_logon_types))


def filetime_to_us(filetime: int) -> int:
    """FILETIME (100 ns ticks since 1601) to microseconds since the Unix epoch, truncating like pyevtx-rs."""
    return (filetime - FILETIME_UNIX_OFFSET) // 10


#: 2000-01-01T00:00:00Z: no RDS event log is older; 1601 (FILETIME 0) and other wild values are damage.
MIN_PLAUSIBLE_US = 946_684_800_000_000
_DAY_US = 86_400_000_000


def plausible_time(time_us: int | None, now_us: int | None = None) -> bool:
    """A timestamp worth counting: present, not before 2000, not after now + 1 day (clock or file damage)."""
    if time_us is None:
        return False
    if now_us is None:
        import time

        now_us = time.time_ns() // 1000
    return MIN_PLAUSIBLE_US <= time_us <= latest_plausible(now_us)


def latest_plausible(now_us: int) -> int:
    """The latest timestamp :func:`plausible_time` takes at ``now_us``: a day of clock skew past it."""
    return now_us + _DAY_US


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def datetime_to_us(moment: datetime) -> int:
    """An aware datetime to microseconds since the Unix epoch (exact: integer arithmetic only)."""
    delta = moment.astimezone(timezone.utc) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def us_to_datetime(time_us: int) -> datetime:
    """Microseconds since the Unix epoch to an aware UTC datetime (exact: integer arithmetic only, and no call to
    the platform's clock functions, which refuse times before 1970 on Windows); OverflowError outside years 1 to
    9999."""
    return _EPOCH + timedelta(microseconds=time_us)


class _NoPayload(dict[str, "str | None"]):
    """The payload of a record read without one: empty, and refusing to change (one object is every such record's
    payload); a dict, so that a RawEvent pickles, copies and serialises as before."""

    def _refuse(self, *_args: object, **_kwargs: object) -> None:
        raise TypeError("a RawEvent's payload does not change")

    __setitem__ = __delitem__ = __ior__ = update = setdefault = pop = popitem = clear = _refuse  # type: ignore[assignment]


_NO_DATA: Mapping[str, str | None] = _NoPayload()


class RawEvent(NamedTuple):
    """One record as read from a file, before any rule is applied (immutable; a named tuple because readers make
    one per evidence record: a frozen dataclass took six times as long to build).

    Everything comes from the event's XML (``System/TimeCreated``, ``System/EventRecordID``), never from the
    record header, which exported logs renumber.
    """

    time_us: int | None
    """``System/TimeCreated/@SystemTime`` in microseconds since the Unix epoch (UTC), truncated; None if absent."""
    event_id: int
    """``System/EventID`` (the Qualifiers attribute, if any, is dropped)."""
    record_id: int | None
    """``System/EventRecordID``."""
    channel: str
    computer: str
    provider: str
    data: Mapping[str, str | None] = _NO_DATA
    """The payload, flattened: ``EventData/Data[@Name]`` or the children of ``UserData/<Element>``, as text
    (integers in decimal, hex integers as ``0x...``). May be empty for event ids outside the
    :attr:`ReadPlan.wanted_ids` the reader was given; the fast readers keep only its :attr:`ReadPlan.payload_keys`.
    Never changed once made."""


@dataclass(frozen=True, slots=True)
class RawBatch:
    """Records as columns, in file order: what a fast reader yields for a run of evidence records in place of one
    :class:`RawEvent` each. Every column holds what the RawEvent field of that name would (Arrow arrays of equal
    length: ``time_us``, ``record_id`` int64 with nulls; ``event_id`` int64; ``channel``, ``computer``,
    ``provider`` strings); ``data`` one string column per payload key any of the records has (null where a record
    lacks it), the text :attr:`RawEvent.data` would hold. :func:`evtrack.events.normalise_batch` makes its rows."""

    time_us: pa.Array
    event_id: pa.Array
    record_id: pa.Array
    channel: pa.Array
    computer: pa.Array
    provider: pa.Array
    data: Mapping[str, pa.Array]

    @property
    def rows(self) -> int:
        return len(self.event_id)

    def events(self) -> list[RawEvent]:
        """The records one by one (their ``data``: the fields with a value)."""
        system = zip(*(column.to_pylist() for column in (self.time_us, self.event_id, self.record_id, self.channel,
                                                          self.computer, self.provider)), strict=True)
        payloads = [{name: value for name, value in zip(self.data, values, strict=True) if value is not None}
                    for values in zip(*(column.to_pylist() for column in self.data.values()), strict=True)] \
            if self.data else [{} for _ in range(self.rows)]
        return [RawEvent(time_us, event_id, record_id, channel, computer, provider, payload or _NO_DATA)
                for (time_us, event_id, record_id, channel, computer, provider), payload
                in zip(system, payloads, strict=True)]

    def take(self, positions: Sequence[int]) -> RawBatch:
        """The records at ``positions``, in that order."""
        import pyarrow as pa

        at = pa.array(positions, pa.int64())
        return RawBatch(self.time_us.take(at), self.event_id.take(at), self.record_id.take(at),
                        self.channel.take(at), self.computer.take(at), self.provider.take(at),
                        {name: column.take(at) for name, column in self.data.items()})

    def without(self, positions: Sequence[int]) -> RawBatch:
        """This batch less the records at ``positions``."""
        left = set(positions)
        return self.take([index for index in range(self.rows) if index not in left])

    @staticmethod
    def of(events: Sequence[RawEvent]) -> RawBatch:
        """The batch holding ``events``."""
        import pyarrow as pa

        keys = dict.fromkeys(key for event in events for key in event.data)
        text = pa.string()
        return RawBatch(
            time_us=pa.array([event.time_us for event in events], pa.int64()),
            event_id=pa.array([event.event_id for event in events], pa.int64()),
            record_id=pa.array([event.record_id for event in events], pa.int64()),
            channel=pa.array([event.channel for event in events], text),
            computer=pa.array([event.computer for event in events], text),
            provider=pa.array([event.provider for event in events], text),
            data={key: pa.array([event.data.get(key) for event in events], text) for key in keys},
        )


def one_by_one(items: Iterable[RawEvent | RawBatch]) -> Iterator[RawEvent]:
    """A reader's records one by one, its :class:`RawBatch` runs taken apart (:meth:`RawBatch.events`)."""
    for item in items:
        if isinstance(item, RawBatch):
            yield from item.events()
        else:
            yield item


class InputKind(str, Enum):
    EVTX = "evtx"
    XML = "xml"
    BROKER_CSV = "broker-csv"
    """``Get-RDUserSession | Export-Csv`` snapshots."""
    QUERY_USER = "query-user"
    """``query user /server:HOST`` snapshots."""
    AZURE = "azure"
    """Azure Monitor / Microsoft Sentinel exports (SecurityEvent, Event, WindowsEvent, WVDConnections)."""


@dataclass(frozen=True, slots=True)
class ReadIssue:
    """Something a reader could not read, and where. Collected, never fatal unless the caller is strict."""

    path: Path
    where: str
    """e.g. ``chunk 6``, ``record 463011``, ``file``."""
    reason: str
    skipped: int = 1
    """How many records this issue cost, as far as the reader can tell (0 if unknown or none)."""

    def __str__(self) -> str:
        return f"{self.path}: {self.where}: {self.reason}"


@dataclass(slots=True)
class FileStats:
    """What reading one file produced, filled in by the reader as it goes."""

    path: Path
    kind: InputKind | None = None
    engine: str = ""
    size: int = 0
    records: int = 0
    """Records read successfully (wanted or not)."""
    fallbacks: int = 0
    """Records a fast path could not decode and that were read by the slow, full path instead."""
    sha256: str | None = None
    """The SHA-256 of the file's bytes, when the read was asked to take it (a report's list of its inputs)."""
    issues: list[ReadIssue] = field(default_factory=list)
    per_channel: Counter[str] = field(default_factory=Counter)

    @property
    def skipped(self) -> int:
        return sum(issue.skipped for issue in self.issues)

    def add_issue(self, where: str, reason: str, skipped: int = 1) -> None:
        self.issues.append(ReadIssue(self.path, where, reason, skipped))


class CoverageSink(Protocol):
    """Where a reader puts what its records say about coverage (evtrack.coverage.CoverageBuilder is one): defined
    here, beside the readers, so that readers import nothing from the analysis."""

    def add(self, event: RawEvent) -> None: ...

    def add_block(self, computer: str, channel: str, ids: Any, times: Any, untimed: int = 0) -> None: ...

    def note_clear(self, event: RawEvent) -> None: ...

    def note_clears(self, batch: RawBatch) -> None:
        """:meth:`note_clear` of each record of ``batch``."""
        ...

    def note_kdc(self, computer: str, channel: str) -> None: ...

    def add_interval(self, computer: str, channel: str, start_us: int, end_us: int, *,
                     needs_evidence: bool = True) -> None:
        """Time an input states it covers for a host and channel, without records to prove it record by record
        (an hourly count of the events a Log Analytics workspace holds): covered where an evidence export reaches
        (:meth:`add_reach`), or at once when it ``needs_evidence`` not (an hour the count says held no row)."""
        ...

    def add_reach(self, channel: str, first_us: int, last_us: int) -> None:
        """An export of evidence rows holds rows of ``channel`` from ``first_us`` to ``last_us``: stated time
        counts only where such an export reaches."""
        ...

    def break_segments(self) -> None: ...


class ReadFunction(Protocol):
    """A parsing engine's read function: yields every record it can read from ``path`` and records what it cannot
    in ``stats``.

    Must be streaming (never hold a whole file's records), must visit every chunk whatever the file header says,
    and must not raise for a bad chunk or record: it counts it in ``stats`` and goes on. It raises
    :class:`evtrack.errors.SourceError` only when the file as a whole cannot be opened.

    A reader may yield a run of records as one :class:`RawBatch` (the same records, in the same order, as
    columns).

    ``plan`` (always passed, by keyword) says what to read: which event ids to decode the payload of, which payload
    fields, what a slim read may leave out (see :class:`ReadPlan`). The keywords a :class:`Reader` declares beyond
    ``plan`` and ``verify_checksums`` are passed only when it declares them.
    """

    def __call__(self, path: Path, stats: FileStats, *, plan: ReadPlan,
                 verify_checksums: bool = True) -> Iterator[RawEvent | RawBatch]: ...


@dataclass(frozen=True, slots=True)
class Reader:
    """A reader and what it can do beyond :class:`ReadFunction`'s contract, declared once beside it.

    Each reader module holds one as ``READER``; :data:`evtrack.reading.ENGINES` names the module of each engine
    (imported only when that engine is used)."""

    name: str
    """What :attr:`FileStats.engine` says after a read: the engine name (``--engine``), or ``xml``."""
    read: ReadFunction
    fills_coverage: bool = False
    """``read`` takes ``coverage=`` (a :class:`CoverageSink`) and feeds it itself; an .evtx engine feeds it every
    record and yields only the records of :attr:`ReadPlan.wanted_ids`."""
    skips_observed: bool = False
    """``read`` takes ``slim=True``: it may leave out a record whose only use is an account it already yielded
    (an observation-only logon or logoff: :meth:`ReadPlan.observation_only`)."""
    reads_ranges: bool = False
    """``read`` takes ``chunks=(first, last)``: it reads only that range of an .evtx's chunks (see
    :func:`evtrack.reading.plan_units`)."""
