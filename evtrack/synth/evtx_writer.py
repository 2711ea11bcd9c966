"""Write real Windows .evtx files: 4 KiB file header, 64 KiB chunks, BinXML template-instance records.

Records are laid out the way Windows writes them: an outer *System* template (Event/System with Provider,
EventID, Version, Level, Task, Opcode, Keywords, TimeCreated, EventRecordID, Correlation, Execution, Channel,
Computer, Security) whose last substitution is a BinXML value holding a second template instance for the
payload (``EventData/Data Name=...`` or ``UserData/<Element xmlns=...>``). Templates are compiled once per
chunk (inline on first use, referenced afterwards); per record only the substitution values are packed.

Two details of Windows' layout, checked on every record of the real logs in ``../shared/evtx``: each record's
size is a multiple of 8 (zero bytes before the trailing size copy); the payload value starts with its template
instance on Windows 10 and 11 (the aptsim-w10, rathbun-w11 and velociraptor logs) and with a fragment header
first in older logs (most of the szechuan Security log): ``fragment_payload`` writes the older shape.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from evtrack.synth.binxml import (
    FRAGMENT_HEADER,
    VT,
    Attr,
    ChunkTables,
    Elem,
    Sub,
    Template,
    Text,
    Value,
    encode_guid,
    encode_sid,
    encode_value,
    template_instance,
    to_filetime,
)

CHUNK_SIZE = 0x10000
CHUNK_HEADER_SIZE = 0x200
FILE_HEADER_SIZE = 0x1000
RECORD_MAGIC = 0x00002A2A
EVENT_NS = "http://schemas.microsoft.com/win/2004/08/events/event"

_REC_HEADER = struct.Struct("<IIQQ")
_U32 = struct.Struct("<I")


@dataclass(frozen=True)
class Provider:
    """An event provider. ``literal``: Name and Guid are literal text in the template (classic providers such
    as Microsoft-Windows-Eventlog write ``Guid="{...}"`` that way); otherwise they are substitutions."""

    name: str
    guid: str
    literal: bool = False


@dataclass(frozen=True, eq=False)
class EventType:
    """The static part of an event: everything the templates and constant System values are built from.

    ``fields`` are the ordered payload fields with their value types. ``payload`` is ``"EventData"`` (fields
    become ``<Data Name="...">``) or ``"UserData"`` (fields become child elements of ``userdata_name`` with
    ``xmlns=userdata_ns``).
    """

    provider: Provider
    channel: str
    event_id: int
    fields: tuple[tuple[str, VT], ...]
    version: int = 0
    level: int = 0
    task: int = 0
    opcode: int = 0
    keywords: int = 0
    qualifiers: int | None = None
    payload: str = "EventData"
    userdata_name: str = "EventXML"
    userdata_ns: str = "Event_NS"

    def __post_init__(self) -> None:
        if self.payload not in ("EventData", "UserData"):
            raise ValueError(f"payload must be EventData or UserData, not {self.payload!r}")


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One record: its type, time (aware datetime or FILETIME ticks), EventRecordID, computer and field values
    (in the order of ``etype.fields``; ``None`` writes a Null value)."""

    etype: EventType
    time: datetime | int
    record_id: int
    computer: str
    values: Sequence[Value]
    process_id: int = 0
    thread_id: int = 0
    activity_id: str | None = None
    user_sid: str | None = None


def payload_template(etype: EventType) -> Template:
    subs = [Sub(i, vtype) for i, (_, vtype) in enumerate(etype.fields)]
    if etype.payload == "EventData":
        children = tuple(
            Elem("Data", (Attr("Name", Text(name)),), (sub,)) for (name, _), sub in zip(etype.fields, subs, strict=True)
        )
        return Template(Elem("EventData", (), children))
    children = tuple(Elem(name, (), (sub,)) for (name, _), sub in zip(etype.fields, subs, strict=True))
    return Template(Elem(etype.userdata_name, (Attr("xmlns", Text(etype.userdata_ns)),), children))


def system_template(computer: str, user_data: bool, literal_provider: Provider | None) -> Template:
    """The outer template, substitution indexes as in Windows' own (see docs/synth.md)."""

    def opt(index: int, vtype: VT) -> Sub:
        return Sub(index, vtype, optional=True)

    if literal_provider is None:
        provider = Elem("Provider", (Attr("Name", opt(14, VT.STRING)), Attr("Guid", opt(15, VT.GUID))))
    else:
        guid = "{" + literal_provider.guid.strip("{}").lower() + "}"
        provider = Elem("Provider", (Attr("Name", Text(literal_provider.name)), Attr("Guid", Text(guid))))
    system = Elem(
        "System",
        (),
        (
            provider,
            Elem("EventID", (Attr("Qualifiers", opt(4, VT.UINT16)),), (opt(3, VT.UINT16),), dep=3),
            Elem("Version", (), (opt(11, VT.UINT8),), dep=11),
            Elem("Level", (), (opt(0, VT.UINT8),), dep=0),
            Elem("Task", (), (opt(2, VT.UINT16),), dep=2),
            Elem("Opcode", (), (opt(1, VT.UINT8),), dep=1),
            Elem("Keywords", (), (opt(5, VT.HEXINT64),), dep=5),
            Elem("TimeCreated", (Attr("SystemTime", opt(6, VT.FILETIME)),)),
            Elem("EventRecordID", (), (opt(10, VT.UINT64),), dep=10),
            Elem("Correlation", (Attr("ActivityID", opt(7, VT.GUID)), Attr("RelatedActivityID", opt(13, VT.GUID)))),
            Elem("Execution", (Attr("ProcessID", opt(8, VT.UINT32)), Attr("ThreadID", opt(9, VT.UINT32)))),
            Elem("Channel", (), (opt(16, VT.STRING),), dep=16),
            Elem("Computer", (), (Text(computer),)),
            Elem("Security", (Attr("UserID", opt(12, VT.SID)),)),
        ),
    )
    payload: Elem | Sub = Elem("UserData", (), (opt(17, VT.BINXML),), dep=17) if user_data else opt(17, VT.BINXML)
    return Template(Elem("Event", (Attr("xmlns", Text(EVENT_NS)),), (system, payload)))


class _Compiled:
    """Per-EventType precomputed bytes: the payload template, encoders and the constant System values."""

    __slots__ = ("const_head", "const_tail", "etype", "payload", "types", "user_data")

    def __init__(self, etype: EventType) -> None:
        self.etype = etype
        self.payload = payload_template(etype)
        self.types = tuple(vtype for _, vtype in etype.fields)
        self.user_data = etype.payload == "UserData"
        qual = (VT.NULL, b"") if etype.qualifiers is None else (VT.UINT16, struct.pack("<H", etype.qualifiers))
        # Substitutions 0..5: Level, Opcode, Task, EventID, Qualifiers, Keywords.
        self.const_head: tuple[tuple[VT, bytes], ...] = (
            (VT.UINT8, bytes((etype.level,))),
            (VT.UINT8, bytes((etype.opcode,))),
            (VT.UINT16, struct.pack("<H", etype.task)),
            (VT.UINT16, struct.pack("<H", etype.event_id)),
            qual,
            (VT.HEXINT64, struct.pack("<Q", etype.keywords)),
        )
        # Substitutions 13..16: RelatedActivityID, Provider Name, Provider Guid, Channel.
        self.const_tail: tuple[tuple[VT, bytes], ...] = (
            (VT.NULL, b""),
            (VT.STRING, encode_value(VT.STRING, etype.provider.name)),
            (VT.GUID, encode_guid(etype.provider.guid)),
            (VT.STRING, encode_value(VT.STRING, etype.channel)),
        )


def _subst_array(types: Sequence[int], blobs: Sequence[bytes]) -> bytes:
    n = len(blobs)
    decl = struct.pack("<I" + "HBx" * n, n, *[x for pair in zip(map(len, blobs), types, strict=True) for x in pair])
    return decl + b"".join(blobs)


@dataclass(frozen=True)
class WriteStats:
    """What one file holds: record count, chunk count, bytes, the span of the record numbers in its record headers
    (the EventRecordIDs unless the writer renumbers) and of TimeCreated (FILETIME)."""

    path: Path
    records: int
    chunks: int
    bytes: int
    first_record_id: int | None
    last_record_id: int | None
    first_time: int | None
    last_time: int | None


class _Chunk:
    __slots__ = ("buf", "count", "first_id", "free", "last_id", "last_offset", "tables")

    def __init__(self) -> None:
        self.buf = bytearray(CHUNK_SIZE)
        self.tables = ChunkTables()
        self.free = CHUNK_HEADER_SIZE
        self.last_offset = 0
        self.first_id = 0
        self.last_id = 0
        self.count = 0

    def finish(self) -> bytes:
        buf = self.buf
        struct.pack_into(
            "<8sQQQQIIII",
            buf,
            0,
            b"ElfChnk\x00",
            self.first_id,
            self.last_id,
            self.first_id,
            self.last_id,
            128,
            self.last_offset,
            self.free,
            zlib.crc32(memoryview(buf)[CHUNK_HEADER_SIZE : self.free]),
        )
        struct.pack_into("<I", buf, 120, 1)
        buf[128:512] = self.tables.header_tables()
        struct.pack_into("<I", buf, 124, zlib.crc32(memoryview(buf)[128:512], zlib.crc32(memoryview(buf)[:120])))
        return bytes(buf)


class EvtxWriter:
    """Stream records into one .evtx file. Use as a context manager, or call :meth:`close`.

    Records may come from several computers and channels (a forwarded-events log): the outer template is built per
    computer, the channel is a substitution.

    >>> with EvtxWriter(path) as w:
    ...     w.add(EventSpec(etype, time, record_id, "HOST.contoso.local", values))
    """

    def __init__(self, path: Path | str, *, renumber: bool = False, fragment_payload: bool = False) -> None:
        self.path = Path(path)
        self.renumber = renumber
        """Number the records 1, 2, ... in the record and chunk headers (the file's own sequence, as in a WEF
        collector's ForwardedEvents log, whose records keep their origin's ``EventRecordID`` in the XML); by default
        the headers carry each record's EventRecordID, as in a live log."""
        self._payload_head = FRAGMENT_HEADER if fragment_payload else b""
        """What the payload value starts with before its template instance: nothing (Windows 10 and 11) or a
        fragment header (older Windows)."""
        self._fh: BinaryIO = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._fh.write(bytes(FILE_HEADER_SIZE))
        self._chunk = _Chunk()
        self._chunks_written = 0
        self._compiled: dict[int, _Compiled] = {}
        self._outer: dict[tuple[str, bool, Provider | None], Template] = {}
        self._records = 0
        self._first_id: int | None = None
        self._last_id: int | None = None
        self._first_time: int | None = None
        self._last_time: int | None = None
        self._stats: WriteStats | None = None

    def __enter__(self) -> EvtxWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ records

    def _compiled_for(self, etype: EventType) -> _Compiled:
        compiled = self._compiled.get(id(etype))
        if compiled is None or compiled.etype is not etype:
            compiled = _Compiled(etype)
            self._compiled[id(etype)] = compiled
        return compiled

    def _outer_for(self, computer: str, compiled: _Compiled) -> Template:
        provider = compiled.etype.provider
        key = (computer, compiled.user_data, provider if provider.literal else None)
        tpl = self._outer.get(key)
        if tpl is None:
            tpl = system_template(computer, compiled.user_data, key[2])
            self._outer[key] = tpl
        return tpl

    def _build(self, spec: EventSpec, compiled: _Compiled, outer: Template, filetime: int, number: int
               ) -> bytes | None:
        chunk = self._chunk
        tables = chunk.tables
        mark = tables.mark()
        pos = chunk.free
        ti = template_instance(outer, tables, pos + 28)
        types: list[int] = []
        blobs: list[bytes] = []
        for vtype, blob in compiled.const_head:
            types.append(vtype)
            blobs.append(blob)
        types += (VT.FILETIME, VT.GUID if spec.activity_id else VT.NULL, VT.UINT32, VT.UINT32, VT.UINT64, VT.UINT8)
        blobs += (
            struct.pack("<Q", filetime),
            encode_guid(spec.activity_id) if spec.activity_id else b"",
            _U32.pack(spec.process_id),
            _U32.pack(spec.thread_id),
            struct.pack("<Q", spec.record_id),
            bytes((compiled.etype.version,)),
        )
        if spec.user_sid:
            types.append(VT.SID)
            blobs.append(encode_sid(spec.user_sid))
        else:
            types.append(VT.NULL)
            blobs.append(b"")
        for vtype, blob in compiled.const_tail:
            types.append(vtype)
            blobs.append(blob)
        # The payload is the last value: its chunk offset is known once everything before it is.
        payload_pos = pos + 28 + len(ti) + 4 + 18 * 4 + sum(map(len, blobs))
        head = self._payload_head
        inner_ti = template_instance(compiled.payload, tables, payload_pos + len(head))
        ptypes: list[int] = []
        pblobs: list[bytes] = []
        for vtype, value in zip(compiled.types, spec.values, strict=False):
            if value is None:
                ptypes.append(VT.NULL)
                pblobs.append(b"")
            else:
                ptypes.append(vtype)
                pblobs.append(encode_value(vtype, value))
        if len(pblobs) != len(compiled.types):
            tables.rollback(mark)
            raise ValueError(
                f"event {compiled.etype.event_id}: {len(spec.values)} values for {len(compiled.types)} fields"
            )
        payload = head + inner_ti + _subst_array(ptypes, pblobs)
        types.append(VT.BINXML)
        blobs.append(payload)
        body = FRAGMENT_HEADER + ti + _subst_array(types, blobs)
        padding = -(24 + len(body) + 4) % 8  # Windows keeps every record 8-byte aligned
        size = 24 + len(body) + padding + 4
        if pos + size > CHUNK_SIZE:
            tables.rollback(mark)
            return None
        return _REC_HEADER.pack(RECORD_MAGIC, size, number, filetime) + body + bytes(padding) + _U32.pack(size)

    def add(self, spec: EventSpec) -> None:
        """Append one record (record ids should increase, as Windows writes them; this is not enforced)."""
        compiled = self._compiled_for(spec.etype)
        outer = self._outer_for(spec.computer, compiled)
        filetime = to_filetime(spec.time)
        number = self._records + 1 if self.renumber else spec.record_id
        record = self._build(spec, compiled, outer, filetime, number)
        if record is None:
            if self._chunk.count == 0:
                raise ValueError(f"record {spec.record_id} does not fit in an empty chunk")
            self._flush_chunk()
            record = self._build(spec, compiled, outer, filetime, number)
            if record is None:
                raise ValueError(f"record {spec.record_id} does not fit in an empty chunk")
        chunk = self._chunk
        pos = chunk.free
        chunk.buf[pos : pos + len(record)] = record
        chunk.last_offset = pos
        chunk.free = pos + len(record)
        if chunk.count == 0:
            chunk.first_id = number
        chunk.last_id = number
        chunk.count += 1
        self._records += 1
        if self._first_id is None:
            self._first_id = number
            self._first_time = filetime
        self._last_id = number
        self._last_time = filetime

    def add_all(self, specs: Iterable[EventSpec]) -> None:
        for spec in specs:
            self.add(spec)

    # ------------------------------------------------------------------ file

    def _flush_chunk(self) -> None:
        self._fh.write(self._chunk.finish())
        self._chunks_written += 1
        self._chunk = _Chunk()

    def close(self) -> WriteStats:
        """Write the last chunk and the file header; returns what was written. Idempotent."""
        if self._stats is not None:
            return self._stats
        if self._chunk.count:
            self._flush_chunk()
        n = self._chunks_written
        header = bytearray(FILE_HEADER_SIZE)
        next_id = (self._last_id + 1) if self._last_id is not None else 1
        struct.pack_into(
            "<8sQQQIHHHH", header, 0, b"ElfFile\x00", 0, max(n - 1, 0), next_id, 128, 1, 3, FILE_HEADER_SIZE, n
        )
        struct.pack_into("<I", header, 120, 0)  # flags: clean, not full
        struct.pack_into("<I", header, 124, zlib.crc32(header[:120]))
        self._fh.seek(0)
        self._fh.write(header)
        self._fh.close()
        self._stats = WriteStats(
            path=self.path,
            records=self._records,
            chunks=n,
            bytes=FILE_HEADER_SIZE + n * CHUNK_SIZE,
            first_record_id=self._first_id,
            last_record_id=self._last_id,
            first_time=self._first_time,
            last_time=self._last_time,
        )
        return self._stats

    @property
    def records(self) -> int:
        return self._records
