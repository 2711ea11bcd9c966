"""The python-evtx engine's reader: walks every chunk slot of a file and every record of a chunk, each record
decoded by the fastest path that can (:mod:`.fast`, then :mod:`.fallback`).

- Every 64 KiB chunk slot up to the end of the file is read, whatever the file header says (python-evtx's
  ``Evtx.records()`` only visits the chunks the header names, which silently loses records in "dirty" logs
  copied from a running system), one chunk at a time (no mmap, no whole-file read). All-zero slots are unused
  and skipped silently (but named when a chunk in use follows); a chunk with a bad magic or (when asked) a
  failing header or data CRC32 is skipped and reported, as pyevtx-rs does.
- The records of a chunk are walked like pyevtx-rs does: from offset 512 up to the free-space offset, stopping
  at a bad record header or after the record the chunk header names as its last.

Format: libevtx's "Windows XML Event Log (EVTX) format",
https://github.com/libyal/libevtx/blob/main/documentation/Windows%20XML%20Event%20Log%20(EVTX).asciidoc,
sections "File header" (4096 bytes, ``ElfFile``), "Chunk header" (512 bytes, ``ElfChnk``: first and last record
number at 8 and 16, last record identifier at 32, free-space offset at 48, event records CRC32 at 52, header
CRC32 at 124 over bytes 0-120 and 128-512) and "Event record" (signature ``**\\0\\0``, size, identifier, written
time: 24 bytes, then BinXML, then a copy of the size).
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from evtrack.errors import SourceError
from evtrack.sources.base import (
    CHUNK_HEADER_SIZE,
    CHUNK_MAGIC,
    CHUNK_SIZE,
    EVTX_MAGIC,
    FILE_HEADER_SIZE,
    RECORD_HEADER_SIZE,
    CoverageSink,
    FileStats,
    InputKind,
    RawEvent,
    Reader,
    ReadPlan,
    chunk_header_records,
    chunk_records_whole,
    missing_chunks,
    truncated_chunk,
    truncated_header,
)
from evtrack.sources.binxml.values import U32, Corrupt
from evtrack.sources.guard import BLANK
from evtrack.sources.python_evtx.chunk import Chunk
from evtrack.sources.python_evtx.fallback import slow_event
from evtrack.sources.python_evtx.fast import fast_event
from evtrack.sources.python_evtx.plans import checked
from evtrack.sources.python_evtx.slim import LOGON_EVENTS, SKIPPED, Slim

ENGINE = "python-evtx"
_RECORD_MAGIC = 0x00002A2A
_ZERO_CHUNK = bytes(CHUNK_SIZE)

_RECORD_HEADER = struct.Struct("<IIQQ").unpack_from
_CHUNK_HEADER = struct.Struct("<QQQQIIII").unpack_from


def _record_event(
    chunk: Chunk, offset: int, size: int, stats: FileStats, number: int, slim: Slim | None = None
) -> RawEvent | None:
    """Decode one record: the fast path, then (counted as a fallback) the slower ones; None when none can."""
    try:
        return checked(fast_event(chunk, offset + RECORD_HEADER_SIZE, offset + size - 4, slim))
    except Corrupt as exc:
        stats.add_issue(f"record {number}", f"corrupt record: {exc}", 1)
        return None
    except Exception:  # anything unexpected in the fast path: the slower paths decide
        return slow_event(chunk, offset, size, stats, number)


def _chunk_problem(data: bytes, verify_checksums: bool) -> str | None:
    """Why a chunk cannot be read (None when it can)."""
    if data[:8] != CHUNK_MAGIC:
        return "bad chunk header magic"
    free_space = U32(data, 48)[0]
    if free_space > CHUNK_SIZE or free_space < CHUNK_HEADER_SIZE:
        return f"free-space offset 0x{free_space:x} outside the chunk"
    if verify_checksums:
        header_crc = binascii.crc32(data[128:512], binascii.crc32(data[:120]))
        if header_crc != U32(data, 124)[0]:
            return "chunk header CRC32 invalid"
        if binascii.crc32(data[CHUNK_HEADER_SIZE:free_space]) != U32(data, 52)[0]:
            return "chunk data CRC32 invalid"
    return None


class _Reading:
    """Where the records of one file go: counts, the coverage (when the reader fills it) and the slim state."""

    __slots__ = ("coverage", "issues_seen", "slim", "stats")

    def __init__(self, stats: FileStats, coverage: CoverageSink | None, slim: bool, plan: ReadPlan) -> None:
        self.stats = stats
        self.coverage = coverage
        self.slim = Slim(plan) if slim else None
        self.issues_seen = 0
        """Issues already looked at for lost records (see :func:`evtrack.reading._with_coverage`)."""


def _chunk_events(chunk: Chunk, stats: FileStats, reading: _Reading | None = None) -> Iterator[RawEvent]:
    """The records of one chunk to yield: every record counted in ``stats``; with a coverage, every record goes
    into it and only the read plan's wanted ids are yielded; a slim read skips logons it already has the account
    of."""
    data = chunk.data
    _first, _last, _first_id, last_id, _hsize, _last_off, free_space, _crc = _CHUNK_HEADER(data, 8)
    offset = CHUNK_HEADER_SIZE
    read = 0
    limit = chunk.limit
    per_channel = stats.per_channel
    issues = stats.issues
    coverage = reading.coverage if reading is not None else None
    slim = reading.slim if reading is not None else None
    wanted = chunk.wanted
    while offset < free_space:
        if offset + RECORD_HEADER_SIZE > limit:
            skipped = max(chunk_header_records(data) - read, 1)
            stats.add_issue(f"chunk {chunk.index}", f"file ends inside the chunk, at offset 0x{limit:x}", skipped)
            return
        if offset + RECORD_HEADER_SIZE > CHUNK_SIZE:
            stats.add_issue(f"chunk {chunk.index}", f"record header at 0x{offset:x} past the chunk", 1)
            return
        magic, size, number, _timestamp = _RECORD_HEADER(data, offset)
        if magic == 0:
            # Zeroed space before the free-space offset (a partly wiped chunk): the records end here.
            stats.add_issue(f"chunk {chunk.index}", f"records end early at zeroed offset 0x{offset:x}", 0)
            return
        if magic != _RECORD_MAGIC:
            stats.add_issue(f"chunk {chunk.index}", f"bad record magic 0x{magic:08x} at offset 0x{offset:x}", 1)
            return
        if size < 28 or offset + size > CHUNK_SIZE:
            stats.add_issue(f"record {number}", f"invalid record size {size} at chunk offset 0x{offset:x}", 1)
            return
        if offset + size > limit:
            skipped = max(chunk_header_records(data) - read, 1)
            stats.add_issue(f"chunk {chunk.index}", f"file ends inside record {number}", skipped)
            return
        event = _record_event(chunk, offset, size, stats, number, slim)
        read += 1
        offset += size
        if event is not None:
            stats.records += 1
            per_channel[event.channel] += 1
            if coverage is not None:
                assert reading is not None
                if len(issues) > reading.issues_seen:  # as reading._with_coverage: lost records break segments
                    if any(issue.skipped for issue in issues[reading.issues_seen :]):
                        coverage.break_segments()
                    reading.issues_seen = len(issues)
                coverage.add(event)
                if event.event_id not in wanted:
                    if number == last_id:
                        return
                    continue
            if slim is None or event.event_id not in LOGON_EVENTS or not (event.data is SKIPPED or slim.skip(event)):
                yield event
        if number == last_id:
            return


def _open(path: Path) -> tuple[BinaryIO, int, bytes]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise SourceError(path, f"cannot open: {exc.strerror or exc}") from exc
    try:
        size = path.stat().st_size
        header = handle.read(FILE_HEADER_SIZE)
    except OSError as exc:
        handle.close()
        raise SourceError(path, f"cannot read: {exc.strerror or exc}") from exc
    if len(header) < 128 or header[:8] != EVTX_MAGIC:
        handle.close()
        raise SourceError(path, "cannot open as .evtx: bad file header magic")
    if size < FILE_HEADER_SIZE:
        handle.close()
        raise SourceError(path, f"cannot open as .evtx: {truncated_header(size)}")
    return handle, size, header


def read_python_evtx(
    path: Path,
    stats: FileStats,
    *,
    plan: ReadPlan,
    verify_checksums: bool = True,
    coverage: CoverageSink | None = None,
    slim: bool = False,
) -> Iterator[RawEvent]:
    """Yield every record python-evtx's layout plus our fast decoder can read; bad chunks/records go to ``stats``.
    The payload (the plan's :attr:`~ReadPlan.payload_keys`) is decoded for the plan's
    :attr:`~ReadPlan.wanted_ids` only.

    With ``coverage`` (see :func:`evtrack.reading.read_file`), every record goes into it and only the wanted
    records are yielded. With ``slim``, an observation-only logon or logoff (:meth:`ReadPlan.observation_only`)
    whose host, channel and account texts were already yielded from this file is not yielded: it adds nothing to
    a slim read (see :class:`Slim`)."""
    stats.kind = InputKind.EVTX
    stats.engine = ENGINE
    handle, size, header = _open(path)
    stats.size = size
    reading = _Reading(stats, coverage, slim, plan)
    blank: list[int] = []
    with handle:
        handle.seek(FILE_HEADER_SIZE)
        index = -1
        while True:
            index += 1
            try:
                data = handle.read(CHUNK_SIZE)
            except OSError as exc:
                stats.add_issue(f"chunk {index}", f"cannot read: {exc}", 0)
                return
            if not data:
                missing = missing_chunks(size, header)
                if missing is not None:
                    stats.add_issue(f"chunk {missing[0]}", missing[1], 0)
                return
            if data == _ZERO_CHUNK[: len(data)]:
                blank.append(index)  # unused space at the end of a file; lost records if a used chunk follows
                continue
            for lost in blank:  # as guard.scan_chunks names them for the Rust engine
                stats.add_issue(f"chunk {lost}", BLANK, 0)
                if coverage is not None:
                    coverage.break_segments()
            blank = []
            limit = len(data)
            if limit < CHUNK_SIZE:
                # The file ends inside this chunk. Where it ends after the chunk's records (in its unused space), they
                # are all there and its checksums hold: read. Else its checksums cannot hold; without verification,
                # the records that are wholly in the file are still read.
                if not any(data):
                    return
                if limit < CHUNK_HEADER_SIZE or data[:8] != CHUNK_MAGIC or (
                        verify_checksums and not chunk_records_whole(data)):
                    skipped = chunk_header_records(data) if limit >= 24 and data[:8] == CHUNK_MAGIC else 0
                    stats.add_issue(f"chunk {index}", truncated_chunk(limit), skipped)
                    return
                data += bytes(CHUNK_SIZE - limit)
            problem = _chunk_problem(data, verify_checksums)
            if problem is not None:
                stats.add_issue(f"chunk {index}", problem, chunk_header_records(data))
                if coverage is not None:  # its records are lost, even when its header cannot say how many
                    coverage.break_segments()
                continue
            yield from _chunk_events(Chunk(data, index, limit, read_plan=plan), stats, reading)


#: The engine as :mod:`evtrack.reading` uses it: it fills the coverage itself and skips observed accounts in a
#: slim read; it cannot read a range of chunks.
READER = Reader(ENGINE, read_python_evtx, fills_coverage=True, skips_observed=True)
