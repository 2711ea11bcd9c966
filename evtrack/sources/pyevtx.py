"""The pure-Python engine: python-evtx (``Evtx``) for the file layout and the slow path, ``struct`` for the rest.

python-evtx renders every record to XML through a tree of node objects (about 12 ms per Security record) and,
through ``Evtx.records()``, only visits the chunks the file header names, which silently loses records in
"dirty" logs copied from a running system. This engine therefore:

- walks every 64 KiB chunk slot up to the end of the file, whatever the file header says, reading the file one
  chunk at a time (no mmap, no whole-file read); all-zero slots are unused and skipped silently, a chunk with a
  bad magic or (when asked) a failing header or data CRC32 is skipped and reported, as pyevtx-rs does;
- walks every record of a chunk like pyevtx-rs: from offset 512 up to the free-space offset, stopping at a bad
  record header or after the record the chunk header names as its last;
- never renders on the fast path: each template is turned into a plan (which substitution holds EventID,
  TimeCreated/@SystemTime, EventRecordID, Channel, Computer, Provider/@Name, and the ``EventData/Data[@Name]``
  or ``UserData/*/*`` payload), once per chunk, or taken from a cache of plans shared by all chunks and files
  when evaluating the template here would read the same bytes and names (:meth:`_Chunk._planned`); per
  template and sequence of substitution types, a *shape* says how each field reads (a constant, a direct
  ``struct`` read, a cached UTF-16 or SID text, or the generic decoder). Each record then only reads its
  substitution descriptor array, EventID first, and the System values; payloads are decoded only for
  :data:`WANTED_EVENT_IDS`, and only their :data:`PAYLOAD_KEYS` fields (as the Rust engine does, so both give
  identical ``data``);
- fills the coverage itself when given one (``fills_coverage``: only wanted records are yielded) and, in a slim
  read (``skips_observed``), skips a repeated observation-only logon or logoff after decoding just its logon
  type and account (:class:`_Slim`);
- records without a template instance (raw BinXML) or with an unexpected layout go through a generic BinXML
  evaluator (still ``struct`` only) and, failing that, through python-evtx's full XML rendering and
  :func:`evtrack.sources.xmlfile.event_from_xml`; both count as ``stats.fallbacks``.

Value text matches pyevtx-rs's JSON as :mod:`evtrack.sources.rust` turns it into text: integers in decimal,
HexInt32/64 and SizeT as lowercase ``0x...`` without padding, GUIDs upper case without braces, SIDs
``S-1-5-...``, binary as upper-case hex, booleans ``true``/``false``, times ``YYYY-MM-DDTHH:MM:SS.ffffffZ``,
arrays comma-joined, UTF-16 strings cut at the first NUL.
"""

from __future__ import annotations

import binascii
import codecs
import struct
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from datetime import datetime, timedelta, timezone
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeAlias, TypeVar

from evtrack.errors import SourceError
from evtrack.events import SECURITY, observation_only
from evtrack.sources.base import (
    CHUNK_HEADER_SIZE,
    CHUNK_MAGIC,
    CHUNK_SIZE,
    EVTX_MAGIC,
    FILE_HEADER_SIZE,
    FILETIME_UNIX_OFFSET,
    PAYLOAD_KEYS,
    WANTED_EVENT_IDS,
    FileStats,
    InputKind,
    RawEvent,
    filetime_to_us,
    missing_chunks,
    truncated_chunk,
    truncated_header,
)
from evtrack.sources.guard import BLANK
from evtrack.sources.xmlfile import event_from_xml, parse_system_time

if TYPE_CHECKING:
    from evtrack.coverage import CoverageBuilder

ENGINE = "python-evtx"

RECORD_HEADER_SIZE = 24
_RECORD_MAGIC = 0x00002A2A
_ZERO_CHUNK = bytes(CHUNK_SIZE)
#: Deeper BinXML nesting than any real record (an event nests a payload template once or twice).
_MAX_DEPTH = 64
#: Tokens one evaluation may visit: a 64 KiB chunk read once holds far fewer, so more means a template or
#: BinXML value is expanded over and over (self-referencing or fanned-out substitutions: exponential work).
_MAX_STEPS = 50_000
#: Tokens all evaluations of one chunk may visit together (a chunk of many small hostile templates).
_MAX_CHUNK_STEPS = 2_000_000
#: Calls to python-evtx's ``render_root_node`` (one per nested BinXML value rendered) for one record.
_MAX_RENDERS = 64
#: Records of one chunk python-evtx may fail to render before the rest of that chunk's undecodable records are
#: reported without trying it (rendering a damaged record can take it a tenth of a second or more).
_MAX_FAILED_RENDERS = 8
#: Tokens that may carry an attribute's value (an Attribute token starts one; any other token ends it).
_VALUE_TOKENS = frozenset({0x05, 0x06, 0x07, 0x08, 0x09, 0x0D, 0x0E})

_U8 = struct.Struct("<B").unpack_from
_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<I").unpack_from
_U64 = struct.Struct("<Q").unpack_from
_RECORD_HEADER = struct.Struct("<IIQQ").unpack_from
_CHUNK_HEADER = struct.Struct("<QQQQIIII").unpack_from
_NAME_HEADER = struct.Struct("<IHH").unpack_from
#: ``bytes.decode("utf-16-le", errors="replace")`` without the codec lookup (final: an odd last byte is replaced).
_UTF16 = codecs.utf_16_le_decode

_EPOCH = datetime(1601, 1, 1, tzinfo=timezone.utc)
#: Tokens a nested BinXML value can start with (fragment header, template instance, element).
_BINXML_STARTS = frozenset({0x0F, 0x0C, 0x01, 0x41})
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}

# BinXML value types.
T_NULL = 0x00
T_WSTRING = 0x01
T_ANSI = 0x02
T_SID = 0x13
T_FILETIME = 0x11
T_SYSTIME = 0x12
T_BINXML = 0x21
_INT_TYPES: dict[int, struct.Struct] = {
    0x03: struct.Struct("<b"),
    0x04: struct.Struct("<B"),
    0x05: struct.Struct("<h"),
    0x06: struct.Struct("<H"),
    0x07: struct.Struct("<i"),
    0x08: struct.Struct("<I"),
    0x09: struct.Struct("<q"),
    0x0A: struct.Struct("<Q"),
}
_FIXED_SIZES = {
    0x03: 1, 0x04: 1, 0x05: 2, 0x06: 2, 0x07: 4, 0x08: 4, 0x09: 8, 0x0A: 8, 0x0B: 4, 0x0C: 8, 0x0D: 4,
    0x0F: 16, 0x11: 8, 0x12: 16, 0x14: 4, 0x15: 8,
}  # fmt: skip


class _Unsupported(Exception):
    """The fast path cannot decode this record (or template): let a slower path try."""


class _Corrupt(_Unsupported):
    """The record's bytes are inconsistent (pyevtx-rs refuses it too): report it, do not try a lenient path."""


class _Hostile(_Corrupt):
    """Decoding the record would take unbounded work (nesting or expansion without end): report it and do not
    hand it to python-evtx, which has no such bounds."""


class _Sub:
    """A substitution slot in a template, while the template is evaluated symbolically."""

    __slots__ = ("index", "optional")

    def __init__(self, index: int, optional: bool) -> None:
        self.index = index
        self.optional = optional


#: Text of an element or attribute: literal pieces and (in templates) substitution slots.
_Part: TypeAlias = str | _Sub
#: Offsets, sizes or types of a substitution array.
_Ints: TypeAlias = Sequence[int]


class _Element:
    __slots__ = ("attrs", "children", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.attrs: dict[str, list[_Part]] = {}
        self.children: list[_Element | _Part] = []

    def elements(self) -> Iterator[_Element]:
        return (child for child in self.children if isinstance(child, _Element))

    def parts(self) -> list[_Part]:
        return [child for child in self.children if not isinstance(child, _Element)]


# ---------------------------------------------------------------------------------------------------------------
# Value decoding (text as pyevtx-rs writes it)


def _utf16(raw: bytes) -> str:
    text = _UTF16(raw, "replace", True)[0]
    cut = text.find("\x00")
    return text if cut < 0 else text[:cut]


def _iso(time_us: int) -> str:
    moment = _EPOCH + timedelta(microseconds=time_us)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ").rjust(27, "0")


def _filetime_text(value: int) -> str:
    return _iso(value // 10)


def _systime_text(raw: bytes) -> str:
    year, month, _weekday, day, hour, minute, second, millis = struct.unpack_from("<8H", raw)
    if year == 0 and month == 0 and day == 0:
        return _iso(0)
    moment = datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _sid_text(raw: bytes) -> str:
    if len(raw) < 8:
        return "S-?"
    revision, count = raw[0], raw[1]
    authority = int.from_bytes(raw[2:8], "big")
    subs = struct.unpack_from(f"<{min(count, (len(raw) - 8) // 4)}I", raw, 8)
    return "-".join(["S", str(revision), str(authority), *map(str, subs)])


def _guid_text(raw: bytes) -> str:
    d1, d2, d3 = struct.unpack_from("<IHH", raw)
    tail = raw[8:16].hex().upper()
    return f"{d1:08X}-{d2:04X}-{d3:04X}-{tail[:4]}-{tail[4:]}"


def _float32_text(value: float) -> str:
    """Shortest text that reads back as the same float32 (as Rust prints an f32), through Python's float."""
    packed = struct.pack("<f", value)
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack("<f", candidate) == packed:
            return str(candidate)
    return str(value)


def _scalar_text(vtype: int, raw: bytes) -> str:
    """One value of a fixed-size or string type as text; raises _Unsupported for anything else."""
    if vtype in _INT_TYPES:
        return str(_INT_TYPES[vtype].unpack_from(raw)[0])
    if vtype == T_WSTRING:
        return _utf16(raw)
    if vtype == T_ANSI:
        text = raw.decode("cp1252", errors="replace")
        cut = text.find("\x00")
        return text if cut < 0 else text[:cut]
    if vtype == 0x14:
        return f"0x{_U32(raw)[0]:x}"
    if vtype == 0x15:
        return f"0x{_U64(raw)[0]:x}"
    if vtype == 0x10:
        return f"0x{_U32(raw)[0]:x}" if len(raw) == 4 else f"0x{_U64(raw)[0]:x}"
    if vtype == 0x13:
        return _sid_text(raw)
    if vtype == 0x0F:
        return _guid_text(raw)
    if vtype == T_FILETIME:
        return _filetime_text(_U64(raw)[0])
    if vtype == T_SYSTIME:
        return _systime_text(raw)
    if vtype == 0x0D:
        return "true" if struct.unpack_from("<i", raw)[0] != 0 else "false"
    if vtype == 0x0E:
        return raw.hex().upper()
    if vtype == 0x0B:
        return _float32_text(struct.unpack_from("<f", raw)[0])
    if vtype == 0x0C:
        return str(struct.unpack_from("<d", raw)[0])
    raise _Unsupported(f"value type 0x{vtype:02x}")


def _value_text(buf: bytes, offset: int, size: int, vtype: int) -> str | None:
    """A substitution value as text (None for a null value). BinXML values raise _Unsupported."""
    if vtype == T_WSTRING:
        return _utf16(buf[offset : offset + size])
    if vtype == T_NULL or size == 0:
        return None
    raw = buf[offset : offset + size]
    if vtype & 0x80:
        base = vtype & 0x7F
        if base == T_WSTRING:
            items = _UTF16(raw, "replace", True)[0].split("\x00")
            if items and items[-1] == "":
                items.pop()
            return ",".join(items)
        width = 4 if base == 0x10 and size % 8 else _FIXED_SIZES.get(base, 8 if base == 0x10 else 0)
        if not width or base == T_ANSI:
            raise _Unsupported(f"array type 0x{vtype:02x}")
        return ",".join(_scalar_text(base, raw[i : i + width]) for i in range(0, size - width + 1, width))
    if vtype in _FIXED_SIZES and size < _FIXED_SIZES[vtype]:
        raise _Unsupported(f"value of type 0x{vtype:02x} too short ({size} bytes)")
    if vtype == T_BINXML:
        raise _Unsupported("nested BinXML value")
    return _scalar_text(vtype, raw)


_DESCRIPTOR_ARRAYS: dict[int, struct.Struct] = {}


def _template_at(buf: bytes, pos: int) -> tuple[int, int] | None:
    """At a TemplateInstance token: (the template definition's offset, where the substitution array starts),
    stepping over a definition written inline; None when the definition is not earlier in the chunk."""
    template = _U32(buf, pos + 6)[0]
    pos += 10
    if template == pos:
        pos += 24 + _U32(buf, pos + 20)[0]
    if not CHUNK_HEADER_SIZE <= template < pos:
        return None
    return template, pos


def _descriptors(buf: bytes, pos: int, end: int) -> tuple[list[int], list[int], list[int], int]:
    """Read a substitution array at ``pos``: (offsets, sizes, types, end of the values), as lists."""
    offsets, sizes, types, stop = _values(buf, pos, end)
    return offsets, list(sizes), list(types), stop


# ---------------------------------------------------------------------------------------------------------------
# Generic BinXML evaluation (templates, symbolically; raw BinXML and nested values, with real values)


_NO_NAMES: dict[int, str] = {}


def _header_size(pos: int, with_id: int, without_id: int, names: dict[int, str], more: dict[int, str]) -> int:
    """:meth:`_Evaluator.element_header_size` for an element at ``pos`` whose name reference is ``with_id`` (with
    a dependency id) or ``without_id`` (without), ``names`` and ``more`` being the names known; 0 for none."""
    if with_id == pos + 11 or (pos + 11 <= CHUNK_SIZE and (with_id in names or with_id in more)):
        return 7
    if without_id == pos + 9 or without_id in names or without_id in more:
        return 5
    if CHUNK_HEADER_SIZE <= with_id < pos:
        return 7
    if CHUNK_HEADER_SIZE <= without_id < pos:
        return 5
    return 0


class _Evaluator:
    """Evaluates a BinXML token stream of one chunk into a small element tree.

    With ``values`` None (a template body), substitutions become :class:`_Sub` slots; otherwise they are
    replaced by the text of the given values (nested BinXML values are evaluated in place).
    """

    def __init__(self, chunk: bytes, names: dict[int, str]) -> None:
        self.chunk = chunk
        self.names = names
        self.steps = 0
        """Tokens visited by the current evaluation (see :meth:`evaluate`)."""
        self.chunk_steps = 0
        """Tokens visited by all evaluations in this chunk so far."""
        self.trace: list[tuple[Any, ...]] | None = None
        """While a template body is evaluated for the plan cache: in order, the names it used and the element
        headers it read (what its course depends on besides the body's bytes; see :meth:`_Chunk._replayed`)."""
        self.trace_body = 0
        """Where the traced template body starts (positions are noted relative to it)."""
        self.reached = 0
        """Where the last token stream evaluated stopped (only the bytes before it, plus an element header's
        lookahead, were read)."""

    def evaluate(
        self, pos: int, end: int, values: tuple[list[int], list[int], list[int]] | None
    ) -> list[_Element | _Part]:
        """Evaluate one token stream from the top, within the per-evaluation and per-chunk work bounds."""
        if self.chunk_steps > _MAX_CHUNK_STEPS:
            raise _Hostile(f"chunk needs more than {_MAX_CHUNK_STEPS} BinXML tokens")
        self.steps = 0
        try:
            return self.fragment(pos, end, values)
        finally:
            self.chunk_steps += self.steps

    def name(self, pos: int) -> tuple[str, int]:
        """Read a name reference at ``pos``; returns the name and the position after the reference."""
        offset = _U32(self.chunk, pos)[0]
        pos += 4
        inline_end = pos
        if offset == pos:
            _next, _hash, length = _NAME_HEADER(self.chunk, offset)
            inline_end = offset + 8 + 2 * length + 2
        cached = self.names.get(offset)
        if cached is None:
            if offset + 8 > CHUNK_SIZE:
                raise _Unsupported(f"name offset 0x{offset:x} outside the chunk")
            _next, _hash, length = _NAME_HEADER(self.chunk, offset)
            if offset + 8 + 2 * length > CHUNK_SIZE:
                raise _Unsupported("name past the chunk")
            cached = _UTF16(self.chunk[offset + 8 : offset + 8 + 2 * length], "replace", True)[0]
            self.names[offset] = cached
        if self.trace is not None:
            self._trace_name(offset, cached, pos)
        return cached, inline_end

    def _trace_name(self, offset: int, text: str, pos: int) -> None:
        """Note a name the traced evaluation used: its offset, text and bytes, and whether it was inline (its
        offset is the position just after the reference, at ``pos``)."""
        assert self.trace is not None
        if offset + 8 > CHUNK_SIZE:
            self.trace.append((_UNCACHEABLE,))
            return
        _next, _hash, length = _NAME_HEADER(self.chunk, offset)
        raw = self.chunk[offset : offset + 8 + 2 * length]
        self.trace.append((_USES_NAME, offset, text, raw, pos - self.trace_body, offset == pos))

    def fragment(
        self,
        pos: int,
        end: int,
        values: tuple[list[int], list[int], list[int]] | None,
        depth: int = 0,
    ) -> list[_Element | _Part]:
        """Evaluate tokens from ``pos`` to ``end`` (or an end-of-stream token); returns the top-level nodes."""
        if depth > _MAX_DEPTH:
            raise _Hostile(f"BinXML nested deeper than {_MAX_DEPTH} levels")
        chunk = self.chunk
        top: list[_Element | _Part] = []
        stack: list[_Element] = []
        attr_target: list[_Part] | None = None
        while pos < end:
            self.steps += 1
            if self.steps > _MAX_STEPS:
                raise _Hostile(f"BinXML expands to more than {_MAX_STEPS} tokens (self-referencing or fanned out)")
            token = chunk[pos]
            kind = token & 0x0F
            if kind not in _VALUE_TOKENS:
                attr_target = None
            if kind == 0x00:  # end of stream
                break
            if kind == 0x0F:  # fragment header
                pos += 4
            elif kind == 0x0C:  # template instance
                nodes, pos = self.template_instance(pos, end, depth)
                (stack[-1].children if stack else top).extend(nodes)
            elif kind == 0x01:  # open start element
                pos += self.element_header_size(pos)
                name, pos = self.name(pos)
                if token & 0x40:
                    pos += 4  # attribute list size
                element = _Element(name)
                (stack[-1].children if stack else top).append(element)
                stack.append(element)
            elif kind == 0x02:  # close start element
                pos += 1
            elif kind in (0x03, 0x04):  # close empty element, end element
                pos += 1
                if not stack:
                    raise _Unsupported("end element without an open element")
                stack.pop()
            elif kind == 0x06:  # attribute
                if not stack:
                    raise _Unsupported("attribute outside an element")
                name, pos = self.name(pos + 1)
                attr_target = stack[-1].attrs.setdefault(name, [])
            elif kind in (0x05, 0x07):  # value, CDATA
                if kind == 0x05:
                    vtype = chunk[pos + 1]
                    pos += 2
                else:
                    vtype = T_WSTRING
                    pos += 1
                if vtype not in (T_WSTRING, T_ANSI):
                    raise _Unsupported(f"value token of type 0x{vtype:02x}")
                length = _U16(chunk, pos)[0]
                pos += 2
                width = 2 if vtype == T_WSTRING else 1
                raw = chunk[pos : pos + width * length]
                pos += width * length
                self.add_text(stack, top, attr_target, _scalar_text(vtype, raw))
            elif kind == 0x08:  # character reference
                self.add_text(stack, top, attr_target, chr(_U16(chunk, pos + 1)[0]))
                pos += 3
            elif kind == 0x09:  # entity reference
                name, pos = self.name(pos + 1)
                self.add_text(stack, top, attr_target, _ENTITIES.get(name, f"&{name};"))
            elif kind == 0x0A:  # processing instruction target
                _name, pos = self.name(pos + 1)
            elif kind == 0x0B:  # processing instruction data
                pos += 3 + 2 * _U16(chunk, pos + 1)[0]
            elif kind in (0x0D, 0x0E):  # normal / optional substitution
                index = _U16(chunk, pos + 1)[0]
                pos += 4
                target = attr_target if attr_target is not None else (stack[-1].children if stack else top)
                if values is None:
                    target.append(_Sub(index, kind == 0x0E))
                else:
                    self.substitute(target, values, index, depth)
            else:
                raise _Unsupported(f"BinXML token 0x{token:02x} at 0x{pos:x}")
        self.reached = pos
        return top

    def element_header_size(self, pos: int) -> int:
        """Bytes before an element's name reference: token, dependency id (absent in some files), data size.

        Records written by some exporters leave the 2-byte dependency id out; the name reference then sits two
        bytes earlier. A name reference either points just past itself (an inline name) or back into the chunk.
        """
        with_id = _U32(self.chunk, pos + 7)[0]
        without_id = _U32(self.chunk, pos + 5)[0]
        size = _header_size(pos, with_id, without_id, self.names, _NO_NAMES)
        if self.trace is not None:
            self.trace.append((_HEADER, pos - self.trace_body, with_id, without_id, size))
        if not size:
            raise _Unsupported(f"element name reference at 0x{pos:x} points nowhere")
        return size

    @staticmethod
    def add_text(stack: list[_Element], top: list[_Element | _Part], attr: list[_Part] | None, text: str) -> None:
        if attr is not None:
            attr.append(text)
        else:
            (stack[-1].children if stack else top).append(text)

    def substitute(
        self,
        target: list[Any],
        values: tuple[list[int], list[int], list[int]],
        index: int,
        depth: int,
    ) -> None:
        offsets, sizes, types = values
        if index >= len(types):
            return
        vtype = types[index]
        if vtype == T_BINXML:
            if sizes[index]:
                start = offsets[index]
                target.extend(self.fragment(start, start + sizes[index], ([], [], []), depth + 1))
            return
        text = _value_text(self.chunk, offsets[index], sizes[index], vtype)
        if text is not None:
            target.append(text)

    def template_instance(self, pos: int, end: int, depth: int) -> tuple[list[_Element | _Part], int]:
        chunk = self.chunk
        found = _template_at(chunk, pos)
        if found is None:
            raise _Unsupported("template definition not where expected")
        template, pos = found
        if self.trace is not None:
            self.trace.append((_UNCACHEABLE,))  # reads another template: not worth tracing
        offsets, sizes, types, after = _descriptors(chunk, pos, end)
        body = template + 24
        body_end = body + _U32(chunk, template + 20)[0]
        if body_end > CHUNK_SIZE:
            raise _Unsupported("template body past the chunk")
        nodes = self.fragment(body, body_end, (offsets, sizes, types), depth + 1)
        return nodes, after


# ---------------------------------------------------------------------------------------------------------------
# Templates to plans; trees to events


def _find(element: _Element, name: str) -> _Element | None:
    for child in element.elements():
        if child.name == name:
            return child
    return None


def _resolved(parts: list[_Part]) -> str | None:
    """The text of fully resolved parts (no slots), None when there is none (as pyevtx-rs gives null)."""
    if not parts:
        return None
    return "".join(part for part in parts if isinstance(part, str))


def _payload_from_tree(event: _Element) -> dict[str, str | None]:
    data: dict[str, str | None] = {}
    event_data = _find(event, "EventData")
    if event_data is not None:
        for item in event_data.elements():
            if item.name == "Data" and "Name" in item.attrs:
                name = _resolved(item.attrs["Name"]) or ""
                if name in PAYLOAD_KEYS:
                    data[name] = _resolved(item.parts())
        return data
    user_data = _find(event, "UserData")
    if user_data is not None:
        for payload in user_data.elements():
            for item in payload.elements():
                if item.name in PAYLOAD_KEYS:
                    data[item.name] = _resolved(item.parts()) or None  # pyevtx-rs: an empty element is null
            break
    return data


def _event_from_tree(nodes: list[_Element | _Part]) -> RawEvent:
    event = next((node for node in nodes if isinstance(node, _Element) and node.name == "Event"), None)
    if event is None:
        raise _Unsupported("no Event element")
    system = _find(event, "System") or _Element("System")

    def text(name: str) -> str | None:
        element = _find(system, name)
        return _resolved(element.parts()) if element is not None else None

    def attr(name: str, attribute: str) -> str | None:
        element = _find(system, name)
        return _resolved(element.attrs.get(attribute, [])) if element is not None else None

    event_id = int(text("EventID") or 0)
    record_id = text("EventRecordID")
    return RawEvent(
        time_us=parse_system_time(attr("TimeCreated", "SystemTime")),
        event_id=event_id,
        record_id=int(record_id) if record_id else None,
        channel=text("Channel") or "",
        computer=text("Computer") or "",
        provider=attr("Provider", "Name") or "",
        data=_payload_from_tree(event) if event_id in WANTED_EVENT_IDS else {},
    )


#: How a field is found: ("lit", text-or-None) or ("sub", index).
_Spec = tuple[str, Any]


def _spec(parts: list[_Part] | None) -> _Spec:
    if not parts:
        return ("lit", None)
    if len(parts) == 1:
        part = parts[0]
        return ("sub", part.index) if isinstance(part, _Sub) else ("lit", part)
    if all(isinstance(part, str) for part in parts):
        return ("lit", "".join(part for part in parts if isinstance(part, str)))
    raise _Unsupported("field mixes text and substitutions")


class _Plan:
    """What one template needs per record: where each System field and payload value sits."""

    __slots__ = (
        "channel", "computer", "event_id", "payload", "payload_parent", "payload_sub", "provider", "record_id",
        "shapes", "time",
    )  # fmt: skip

    def __init__(self, root: list[_Element | _Part]) -> None:
        events = [node for node in root if isinstance(node, _Element)]
        if len(events) != 1 or events[0].name != "Event":
            raise _Unsupported("template root is not one Event element")
        event = events[0]
        system = _find(event, "System")
        if system is None:
            raise _Unsupported("template without System")

        def field(name: str, attribute: str | None = None) -> _Spec:
            element = _find(system, name)
            if element is None:
                return ("lit", None)
            return _spec(element.attrs.get(attribute) if attribute else element.parts())

        self.event_id = field("EventID")
        self.time = field("TimeCreated", "SystemTime")
        self.record_id = field("EventRecordID")
        self.channel = field("Channel")
        self.computer = field("Computer")
        self.provider = field("Provider", "Name")
        if self.event_id[0] != "sub" and self.event_id[1] is None:
            raise _Unsupported("template without EventID")
        self.payload = _PayloadPlan(event)
        self.shapes: dict[tuple[int, ...], _Shape] = {}


class _PayloadPlan:
    """Where an event's payload values sit: ``EventData/Data[@Name]`` or ``UserData/*/*`` keys, plus at most one
    substitution holding a nested BinXML payload (``parent`` says under which element it sits)."""

    __slots__ = ("fields", "parent", "shapes", "sub")

    def __init__(self, event: _Element) -> None:
        #: (key, where its value is, whether an empty value reads as null: UserData elements, not EventData/Data)
        self.fields: list[tuple[str, _Spec, bool]] = []
        self.shapes: dict[tuple[int, ...], _PayloadShape] = {}
        self.sub: int | None = None
        self.parent = "Event"
        for part in event.children:
            if isinstance(part, _Sub):
                self._dynamic(part, "Event")
        event_data = _find(event, "EventData")
        user_data = _find(event, "UserData")
        if event_data is not None:
            for item in event_data.children:
                if isinstance(item, _Element):
                    if item.name == "Data" and "Name" in item.attrs:
                        name = _spec(item.attrs["Name"])
                        if name[0] != "lit":
                            raise _Unsupported("Data Name is a substitution")
                        if (name[1] or "") in PAYLOAD_KEYS:
                            self.fields.append((name[1] or "", _spec(item.parts()), False))
                elif isinstance(item, _Sub):
                    self._dynamic(item, "EventData")
        elif user_data is not None:
            for item in user_data.children:
                if isinstance(item, _Sub):
                    self._dynamic(item, "UserData")
                    break
                if isinstance(item, _Element):
                    for child in item.children:
                        if isinstance(child, _Element):
                            if child.name in PAYLOAD_KEYS:
                                self.fields.append((child.name, _spec(child.parts()), True))
                        elif isinstance(child, _Sub):
                            raise _Unsupported("substitution inside the UserData payload element")
                    break

    def _dynamic(self, sub: _Sub, parent: str) -> None:
        if self.sub is not None:
            raise _Unsupported("several dynamic payload substitutions")
        self.sub = sub.index
        self.parent = parent


def _wrap(nodes: list[_Element | _Part], parent: str) -> _Element:
    """Put a nested payload's nodes where they sit in the event: under Event, EventData or UserData."""
    wrapper = _Element(parent)
    wrapper.children.extend(nodes)
    if parent == "Event":
        return wrapper
    event = _Element("Event")
    event.children.append(wrapper)
    return event


# ---------------------------------------------------------------------------------------------------------------
# Reading


#: What a traced template evaluation noted (see :attr:`_Evaluator.trace`): a name it used (offset, text, bytes,
#: position of the reference relative to the body, whether inline), an element header (position relative to the
#: body, the two name offsets it may hold, the size it was given), or something it does not trace.
_USES_NAME = 0
_HEADER = 1
_UNCACHEABLE = 2
_P = TypeVar("_P")


class _CachedPlan:
    """A template body's plan, with what evaluating the body read besides its bytes (see :meth:`_Chunk._planned`)."""

    __slots__ = ("plan", "steps", "tail", "trace")

    def __init__(self, plan: Any, steps: int, trace: tuple[tuple[Any, ...], ...], tail: bytes) -> None:
        self.plan = plan
        self.steps = steps
        self.trace = trace
        """In order: the names used and the element headers read (see :attr:`_Evaluator.trace`)."""
        self.tail = tail
        """The bytes just after the body that the evaluation read (its last token's lookahead)."""


#: Plans by (parent, body bytes), across chunks and files: logs repeat their templates chunk after chunk, and
#: evaluating a template costs as much as decoding a hundred records.
_PLAN_CACHE: dict[tuple[str, bytes] | None, _CachedPlan] = {}
_PLAN_CACHE_BYTES = 0
_MAX_PLAN_CACHE_BYTES = 8 << 20
_MAX_CACHED_BODY = 16 << 10


class _Chunk:
    """One chunk's bytes plus the per-chunk caches (names and template plans)."""

    def __init__(self, data: bytes, index: int, limit: int = CHUNK_SIZE) -> None:
        self.data = data
        self.index = index
        self.limit = limit
        """Bytes of the chunk actually in the file (less than 64 KiB only for a truncated last chunk)."""
        self.names: dict[int, str] = {}
        self.plans: dict[int, _Plan | None] = {}
        self.payload_plans: dict[tuple[int, str], _PayloadPlan | None] = {}
        self.texts: dict[bytes, str] = {}
        """UTF-16 System values (channel, provider names) already decoded in this chunk."""
        self.evaluator = _Evaluator(data, self.names)
        self._pyevtx_chunk: Any = None
        self.failed_renders = 0
        """Records of this chunk python-evtx failed to render (each can cost it a tenth of a second)."""

    def plan(self, template: int) -> _Plan | None:
        if template in self.plans:
            return self.plans[template]
        plan: _Plan | None
        try:
            plan = self._planned(template, "", _Plan)
        except (_Unsupported, struct.error, IndexError, ValueError):
            plan = None
        self.plans[template] = plan
        return plan

    def payload_plan(self, template: int, parent: str) -> _PayloadPlan | None:
        """The plan of a template used inside a nested BinXML payload value (cached per chunk)."""
        key = (template, parent)
        if key in self.payload_plans:
            return self.payload_plans[key]
        plan: _PayloadPlan | None
        try:
            plan = self._planned(template, parent, lambda nodes: _PayloadPlan(_wrap(nodes, parent)))
        except (_Unsupported, struct.error, IndexError, ValueError):
            plan = None
        self.payload_plans[key] = plan
        return plan

    def _planned(self, template: int, parent: str, build: Callable[[list[_Element | _Part]], _P]) -> _P:
        """``build`` applied to the evaluated template body (``parent``: "" for an event's template, else where a
        nested payload sits), through :data:`_PLAN_CACHE`: the cached plan of a body with the same bytes is used
        only where evaluating it here would take the same course (:meth:`_replayed`), and then leaves the
        evaluator (names, step counts) as evaluating it would. A hostile chunk's work bound holds as before."""
        data = self.data
        size = _U32(data, template + 20)[0]
        body, high = template + 24, template + 24 + size
        if high > CHUNK_SIZE:
            raise _Unsupported("template body past the chunk")
        evaluator = self.evaluator
        key = (parent, data[body:high]) if size <= _MAX_CACHED_BODY else None
        cached = _PLAN_CACHE.get(key) if key is not None else None
        if cached is not None and evaluator.chunk_steps <= _MAX_CHUNK_STEPS and self._replayed(cached, body, high):
            return cached.plan  # type: ignore[no-any-return]
        evaluator.trace = [] if key is not None else None
        evaluator.trace_body = body
        try:
            nodes = evaluator.evaluate(body, high, None)
            trace = evaluator.trace
        finally:
            evaluator.trace = None
        plan = build(nodes)
        if key is not None and trace is not None and all(event[0] != _UNCACHEABLE for event in trace):
            global _PLAN_CACHE_BYTES
            if _PLAN_CACHE_BYTES > _MAX_PLAN_CACHE_BYTES:
                _PLAN_CACHE.clear()
                _PLAN_CACHE_BYTES = 0
            # Each token moves past what it read but an element header, which looks up to 11 bytes ahead.
            headers = [body + event[1] + 11 for event in trace if event[0] == _HEADER]
            tail_end = max(high, evaluator.reached, *headers)
            _PLAN_CACHE[key] = _CachedPlan(plan, evaluator.steps, tuple(trace), data[high:tail_end])
            _PLAN_CACHE_BYTES += size + tail_end - high
        return plan

    def _replayed(self, cached: _CachedPlan, body: int, high: int) -> bool:
        """Whether ``cached`` holds what evaluating its body (the same bytes, at ``body`` here) gives: the same
        bytes read after the body, the same bytes at every name used, names inline exactly where they were, and
        every element header given the same size (its tests on positions and on the names known so far). If so,
        the evaluator's name cache and step counts are left as that evaluation would leave them."""
        data = self.data
        tail = cached.tail
        if data[high : high + len(tail)] != tail:
            return False
        names = self.names
        used: dict[int, str] = {}
        for event in cached.trace:
            kind = event[0]
            if kind == _USES_NAME:
                _kind, offset, text, raw, at, inline = event
                if data[offset : offset + len(raw)] != raw or (offset == body + at) != inline:
                    return False
                used[offset] = text
            else:  # _HEADER: the same size, with the names known at that point
                _kind, at, with_id, without, size = event
                if _header_size(body + at, with_id, without, names, used) != size:
                    return False
        for offset, text in used.items():
            names.setdefault(offset, text)
        self.evaluator.steps = cached.steps
        self.evaluator.chunk_steps += cached.steps
        return True

    def pyevtx_chunk(self) -> Any:
        if self._pyevtx_chunk is None:
            self._pyevtx_chunk = _safe_chunk_header()(self.data, 0)
        return self._pyevtx_chunk


_SAFE_CHUNK_HEADER: Any = None


def _safe_chunk_header() -> Any:
    """python-evtx's ``ChunkHeader``, with its string and template hash chains walked safely.

    python-evtx follows each chain's next-offsets ``while ofs > 0``: a chain that points back into itself never
    ends (found by fuzzing: one rewritten template next-offset hangs the reader). Here each offset is visited
    once and must lie inside the chunk. The template chain's "Unexpected token" is not logged either: it goes to
    the ``Evtx`` logger's last-resort handler, i.e. to stderr, once per record.
    """
    global _SAFE_CHUNK_HEADER
    if _SAFE_CHUNK_HEADER is not None:
        return _SAFE_CHUNK_HEADER
    from Evtx.Evtx import ChunkHeader

    class SafeChunkHeader(ChunkHeader):  # type: ignore[misc]
        def _load_strings(self) -> None:
            if self._strings is None:
                self._strings: dict[int, Any] = {}
            seen: set[int] = set()
            for bucket in range(64):
                ofs = self.unpack_dword(0x80 + bucket * 4)
                while CHUNK_HEADER_SIZE <= ofs < CHUNK_SIZE - 8 and ofs not in seen:
                    seen.add(ofs)
                    ofs = self.add_string(ofs).next_offset()

        def _load_templates(self) -> None:
            if self._templates is None:
                self._templates: dict[int, Any] = {}
            seen: set[int] = set()
            for bucket in range(32):
                ofs = self.unpack_dword(0x180 + bucket * 4)
                while CHUNK_HEADER_SIZE + 10 <= ofs < CHUNK_SIZE - 24 and ofs not in seen:
                    seen.add(ofs)
                    if self.unpack_byte(ofs - 10) != 0x0C or self.unpack_dword(ofs - 4) != ofs:
                        break
                    ofs = self.add_template(ofs).next_offset()

    _SAFE_CHUNK_HEADER = SafeChunkHeader
    return SafeChunkHeader


def _field_text(buf: bytes, spec: _Spec, offsets: _Ints, sizes: _Ints, types: _Ints) -> str | None:
    if spec[0] == "lit":
        return spec[1]  # type: ignore[no-any-return]
    index: int = spec[1]
    if index >= len(types):
        return None
    return _value_text(buf, offsets[index], sizes[index], types[index])


def _field_int(buf: bytes, spec: _Spec, offsets: _Ints, sizes: _Ints, types: _Ints) -> int | None:
    if spec[0] == "sub":
        index: int = spec[1]
        if index >= len(types):
            return None
        vtype = types[index]
        if vtype in _INT_TYPES and sizes[index] >= _INT_TYPES[vtype].size:
            return int(_INT_TYPES[vtype].unpack_from(buf, offsets[index])[0])
    text = _field_text(buf, spec, offsets, sizes, types)
    if text is None or text == "":
        return None
    return int(text, 16) if text.lower().startswith("0x") else int(text)


def _field_time(buf: bytes, spec: _Spec, offsets: _Ints, sizes: _Ints, types: _Ints) -> int | None:
    if spec[0] == "sub":
        index: int = spec[1]
        if index >= len(types):
            return None
        if types[index] == T_FILETIME and sizes[index] == 8:
            return filetime_to_us(_U64(buf, offsets[index])[0])
    return parse_system_time(_field_text(buf, spec, offsets, sizes, types))


# How a shape reads one field of a record (see :class:`_Shape`): a constant, a value read directly, or the
# generic path above (``_field_text``/``_field_int``/``_field_time`` with the template's spec).
_CONST = 0
_DIRECT = 1
_GENERIC = 2
_SID = 3
_INT = 4
#: How a payload value reads: (key, how, where, whether an empty value is null, the layout of an integer).
_FieldPlan: TypeAlias = tuple[str, int, Any, bool, Any]
#: SID texts already decoded (any file: a SID's text depends on its bytes alone), and how many to keep.
_SID_TEXTS: dict[bytes, str] = {}
_MAX_CACHED = 65_536
#: Value types whose text :func:`_value_text` gives for any size without raising, and the fixed-size types it
#: gives for any size of at least their width (a slim read only skips a record whose full payload would decode).
_SAFE_TYPES = frozenset({T_NULL, T_WSTRING, T_ANSI, 0x0E, 0x13})
_SAFE_FIXED = {vtype: _FIXED_SIZES[vtype] for vtype in (*_INT_TYPES, 0x0B, 0x0C, 0x0D, 0x0F, 0x14, 0x15)}
_FieldRead: TypeAlias = tuple[int, Any, Any, int]


def _int_read(spec: _Spec, types: tuple[int, ...]) -> _FieldRead:
    if spec[0] == "sub":
        index: int = spec[1]
        if index >= len(types):
            return (_CONST, None, None, 0)
        layout = _INT_TYPES.get(types[index])
        if layout is not None:
            return (_DIRECT, index, layout.unpack_from, layout.size)  # direct when the value is wide enough
    return (_GENERIC, spec, None, 0)


def _time_read(spec: _Spec, types: tuple[int, ...]) -> _FieldRead:
    if spec[0] == "sub":
        index: int = spec[1]
        if index >= len(types):
            return (_CONST, None, None, 0)
        if types[index] == T_FILETIME:
            return (_DIRECT, index, None, 8)  # direct when the value is exactly 8 bytes
    return (_GENERIC, spec, None, 0)


def _text_read(spec: _Spec, types: tuple[int, ...]) -> _FieldRead:
    if spec[0] == "lit":
        return (_CONST, spec[1], None, 0)
    index: int = spec[1]
    if index >= len(types):
        return (_CONST, None, None, 0)
    if types[index] == T_WSTRING:
        return (_DIRECT, index, None, 0)  # decoded through the chunk's text cache
    return (_GENERIC, spec, None, 0)


class _Shape:
    """What a template's plan needs for records whose substitution types are ``types`` (built once per template
    and type sequence in a chunk): which values to check, and how each System field is read."""

    __slots__ = (
        "binxml", "channel", "computer", "event_id", "payload", "provider", "record_id", "simple", "time", "times",
    )  # fmt: skip

    def __init__(self, plan: _Plan, types: tuple[int, ...]) -> None:
        #: FILETIME/SYSTIME values to check, in index order: (index, is a FILETIME).
        self.times = tuple((i, t == T_FILETIME) for i, t in enumerate(types) if t in (T_FILETIME, T_SYSTIME))
        self.binxml = tuple(i for i, t in enumerate(types) if t == T_BINXML)
        self.event_id = _int_read(plan.event_id, types)
        self.time = _time_read(plan.time, types)
        self.record_id = _int_read(plan.record_id, types)
        self.channel = _text_read(plan.channel, types)
        self.computer = _text_read(plan.computer, types)
        self.provider = _text_read(plan.provider, types)
        #: Whether every System field after EventID reads without the generic path (which may raise): only then
        #: may they be read before the payload, whose errors would otherwise come first.
        self.payload: _PayloadShape | None = None
        """The shape of the plan's payload for these types (set on first use)."""
        self.simple = all(
            read[0] != _GENERIC for read in (self.time, self.record_id, self.channel, self.computer, self.provider)
        )


class _PayloadShape:
    """How a payload plan's fields read for records whose substitution types are ``types``.

    ``fields`` holds (key, how, where, whether an empty value is null, integer layout) with ``how`` one of:
    ``_CONST`` (``where`` is the text), or, ``where`` being the value's index: ``_DIRECT`` (a UTF-16 string),
    ``_SID``, ``_INT`` (an integer type, with its layout), ``_GENERIC`` (any value :func:`_value_text` decodes).
    ``partial`` is the same for the keys a slim read decides on, and ``safe`` tells whether the other fields are
    sure to decode (given ``sized``: values that must be empty or at least that wide), so that a record can be
    skipped on those keys alone."""

    __slots__ = ("fields", "partial", "safe", "sized")

    def __init__(self, plan: _PayloadPlan, types: tuple[int, ...]) -> None:
        count = len(types)
        fields: list[_FieldPlan] = []
        sized: list[tuple[int, int]] = []
        safe = True
        for name, spec, empty_is_null in plan.fields:
            if spec[0] != "sub":
                fields.append((name, _CONST, spec[1], empty_is_null, None))
                continue
            index: int = spec[1]
            if index >= count:
                fields.append((name, _CONST, None, empty_is_null, None))
                continue
            vtype = types[index]
            layout = _INT_TYPES.get(vtype)
            how = _DIRECT if vtype == T_WSTRING else _SID if vtype == T_SID else _INT if layout else _GENERIC
            fields.append((name, how, index, empty_is_null, layout))
            if vtype in _SAFE_FIXED:
                sized.append((index, _SAFE_FIXED[vtype]))
            elif vtype not in _SAFE_TYPES:
                safe = False
        self.fields = tuple(fields)
        self.partial = tuple(field for field in fields if field[0] in _SLIM_KEYS)
        self.sized = tuple(sized)
        self.safe = safe


def _shape(plan: _Plan, types: tuple[int, ...]) -> _Shape:
    shape = plan.shapes[types] = _Shape(plan, types)
    return shape


def _payload_shape(plan: _PayloadPlan, types: tuple[int, ...]) -> _PayloadShape:
    shape = plan.shapes[types] = _PayloadShape(plan, types)
    return shape


class _NotSure(Exception):
    """A slim read cannot tell from the keys alone that the full payload would decode: decode it all."""


def _decode_fields(
    buf: bytes, fields: tuple[_FieldPlan, ...], offsets: _Ints, sizes: _Ints, types: _Ints
) -> dict[str, str | None]:
    """Payload values as a :class:`_PayloadShape` says how to read them (the text :func:`_value_text` gives)."""
    data: dict[str, str | None] = {}
    value: str | None
    for name, how, where, empty_is_null, layout in fields:
        if how == _DIRECT:  # most payload values: inline the common case
            start = offsets[where]
            value = _UTF16(buf[start : start + sizes[where]], "replace", True)[0]
            cut = value.find("\x00")
            if cut >= 0:
                value = value[:cut]
        elif how == _CONST:
            value = where
        elif how == _SID and sizes[where]:  # through a cache: accounts repeat
            start = offsets[where]
            raw = buf[start : start + sizes[where]]
            value = _SID_TEXTS.get(raw)
            if value is None:
                if len(_SID_TEXTS) >= _MAX_CACHED:
                    _SID_TEXTS.clear()
                value = _SID_TEXTS[raw] = _sid_text(raw)
        elif how == _INT and sizes[where] >= layout.size:
            value = str(layout.unpack_from(buf, offsets[where])[0])
        else:
            value = _value_text(buf, offsets[where], sizes[where], types[where])
        data[name] = (value or None) if empty_is_null else value
    return data


def _payload(
    chunk: _Chunk,
    plan: _PayloadPlan,
    offsets: _Ints,
    sizes: _Ints,
    types: tuple[int, ...],
    depth: int,
    shape: _PayloadShape | None = None,
) -> dict[str, str | None]:
    """The payload's :data:`PAYLOAD_KEYS` values (``shape``: the plan's shape for ``types``, when known)."""
    if shape is None:
        shape = plan.shapes.get(types)
        if shape is None:
            shape = _payload_shape(plan, types)
    data = _decode_fields(chunk.data, shape.fields, offsets, sizes, types) if shape.fields else {}
    index = plan.sub
    if index is not None and index < len(types) and sizes[index]:
        if types[index] == T_BINXML:
            start = offsets[index]
            data.update(_nested_payload(chunk, start, start + sizes[index], plan.parent, depth + 1))
        elif types[index] != T_NULL:
            raise _Unsupported("payload substitution is not BinXML")
    return data


def _partial_payload(
    chunk: _Chunk,
    plan: _PayloadPlan,
    shape: _PayloadShape,
    offsets: _Ints,
    sizes: _Ints,
    types: tuple[int, ...],
    depth: int,
) -> dict[str, str | None]:
    """The :data:`_SLIM_KEYS` values of the payload, as :func:`_payload` gives them; raises (:class:`_NotSure`
    or whatever) unless all of :func:`_payload` would succeed (every value it decodes is of a type and size that
    decodes, every nested payload a template instance with a plan)."""
    if not shape.safe:
        raise _NotSure
    for at, width in shape.sized:
        if 0 < sizes[at] < width:
            raise _NotSure
    data = _decode_fields(chunk.data, shape.partial, offsets, sizes, types) if shape.partial else {}
    index = plan.sub
    if index is not None and index < len(types) and sizes[index]:
        if types[index] != T_BINXML or depth >= _MAX_DEPTH:
            raise _NotSure
        # The nested value, as _nested_payload reads it.
        buf = chunk.data
        pos = offsets[index]
        end = pos + sizes[index]
        if buf[pos] == 0x0F:
            pos += 4
        found = _template_at(buf, pos) if buf[pos] == 0x0C else None
        if found is None:
            raise _NotSure
        template, pos = found
        nested = chunk.payload_plans.get((template, plan.parent), _NO_PLAN)
        if nested is _NO_PLAN:
            nested = chunk.payload_plan(template, plan.parent)
        if nested is None:
            raise _NotSure
        nested_offsets, nested_sizes, nested_types, _stop = _values(buf, pos, end)
        nested_shape = nested.shapes.get(nested_types)
        if nested_shape is None:
            nested_shape = _payload_shape(nested, nested_types)
        data.update(
            _partial_payload(chunk, nested, nested_shape, nested_offsets, nested_sizes, nested_types, depth + 1)
        )
    return data


def _nested_payload(chunk: _Chunk, pos: int, end: int, parent: str, depth: int) -> dict[str, str | None]:
    """The payload held in a nested BinXML value: through a cached plan when it is a template instance."""
    if depth > _MAX_DEPTH:
        raise _Hostile(f"BinXML nested deeper than {_MAX_DEPTH} levels")
    buf = chunk.data
    start = pos
    if buf[pos] == 0x0F:
        pos += 4
    found = _template_at(buf, pos) if buf[pos] == 0x0C else None
    if found is not None:
        template, pos = found
        plan = chunk.payload_plan(template, parent)
        if plan is not None:
            offsets, sizes, types, _stop = _values(buf, pos, end)
            return _payload(chunk, plan, offsets, sizes, types, depth)
    return _payload_from_tree(_wrap(chunk.evaluator.evaluate(start, end, ([], [], [])), parent))


#: 9999-12-31T23:59:59.9999999Z as FILETIME: pyevtx-rs refuses a record with any later time (found by fuzzing),
#: and Python's datetime cannot hold one either.
_MAX_FILETIME = 2_650_466_808_009_999_999


def _values(buf: bytes, pos: int, end: int) -> tuple[list[int], tuple[int, ...], tuple[int, ...], int]:
    """Read a substitution array at ``pos``: (offsets, sizes, types, end of the values), with tuples for the
    sizes and types (the types key a plan's shapes)."""
    if pos + 4 > end:
        raise _Unsupported("substitution array past the record")
    count = _U32(buf, pos)[0]
    pos += 4
    if count > 4096 or pos + 4 * count > end:
        raise _Corrupt(f"implausible substitution count {count}")
    layout = _DESCRIPTOR_ARRAYS.get(count)
    if layout is None:
        layout = _DESCRIPTOR_ARRAYS[count] = struct.Struct("<" + "HBx" * count)
    spec = layout.unpack_from(buf, pos)
    sizes = spec[0::2]
    offsets = list(accumulate(sizes, initial=pos + 4 * count))
    stop = offsets.pop()
    if stop > end:
        raise _Corrupt(f"substitution values end at 0x{stop:x}, past the BinXML end 0x{end:x}")
    return offsets, sizes, spec[1::2], stop


def _fast_event(chunk: _Chunk, pos: int, end: int, slim: _Slim | None = None) -> RawEvent:
    """Decode one record's BinXML (from ``pos`` to ``end``) through its template's plan, without rendering.

    With ``slim``, a logon or logoff whose account the read has already yielded comes back with
    :data:`_SKIPPED` as its data (the payload decoded only as far as that takes)."""
    buf = chunk.data
    if buf[pos] == 0x0F:
        pos += 4
    found = _template_at(buf, pos) if buf[pos] == 0x0C else None
    if found is None:
        raise _Unsupported("no template instance, or its definition is not where expected")
    template, pos = found
    plan = chunk.plans.get(template, _NO_PLAN)
    if plan is _NO_PLAN:
        plan = chunk.plan(template)
    if plan is None:
        raise _Unsupported("template without a plan")
    offsets, sizes, types, stop = _values(buf, pos, end)
    if stop < end and buf[stop] != 0x00:
        raise _Corrupt(f"invalid BinXML token 0x{buf[stop]:02x} at 0x{stop:x} after the substitution values")
    shape = plan.shapes.get(types)
    if shape is None:
        shape = _shape(plan, types)
    for index, is_filetime in shape.times:
        if is_filetime:
            if sizes[index] == 8 and _U64(buf, offsets[index])[0] > _MAX_FILETIME:
                raise _Corrupt(f"FILETIME value {index} after the year 9999")
        elif sizes[index] >= 16:
            try:
                _systime_text(buf[offsets[index] : offsets[index] + 16])
            except ValueError as exc:
                raise _Corrupt(f"SYSTEMTIME value {index}: {exc}") from None
    for index in shape.binxml:
        if sizes[index] and buf[offsets[index]] not in _BINXML_STARTS:
            raise _Corrupt(f"BinXML value {index} starts with invalid token 0x{buf[offsets[index]]:02x}")
    how, where, unpack, width = shape.event_id
    if how == _DIRECT and sizes[where] >= width:
        event_id = unpack(buf, offsets[where])[0]
    elif how == _CONST:
        event_id = 0
    else:
        event_id = _field_int(buf, plan.event_id, offsets, sizes, types) or 0
    if event_id not in WANTED_EVENT_IDS:
        data = {}
    elif slim is not None and event_id in _LOGON_EVENTS and shape.simple:
        texts = chunk.texts
        channel = _text(buf, shape.channel, offsets, sizes, texts)
        computer = _text(buf, shape.computer, offsets, sizes, texts)
        payload = shape.payload
        if payload is None:
            payload = shape.payload = _payload_shape(plan.payload, types)
        keys = None
        if channel.lower() == SECURITY:
            try:
                keys = _partial_payload(chunk, plan.payload, payload, offsets, sizes, types, 0)
            except Exception:  # whatever a partial read cannot vouch for, the full read decides as before
                keys = None
        if keys is not None and slim.seen(computer, channel, event_id, keys):
            data = _SKIPPED
        else:
            data = _payload(chunk, plan.payload, offsets, sizes, types, 0, payload)
        return RawEvent(
            _time(buf, shape.time, plan.time, offsets, sizes, types),
            event_id,
            _int(buf, shape.record_id, plan.record_id, offsets, sizes, types),
            channel,
            computer,
            _text(buf, shape.provider, offsets, sizes, texts),
            data,
        )
    else:
        data = _payload(chunk, plan.payload, offsets, sizes, types, 0)
    if shape.simple:
        texts = chunk.texts
        return RawEvent(
            _time(buf, shape.time, plan.time, offsets, sizes, types),
            event_id,
            _int(buf, shape.record_id, plan.record_id, offsets, sizes, types),
            _text(buf, shape.channel, offsets, sizes, texts),
            _text(buf, shape.computer, offsets, sizes, texts),
            _text(buf, shape.provider, offsets, sizes, texts),
            data,
        )
    return RawEvent(
        time_us=_field_time(buf, plan.time, offsets, sizes, types),
        event_id=event_id,
        record_id=_field_int(buf, plan.record_id, offsets, sizes, types),
        channel=_field_text(buf, plan.channel, offsets, sizes, types) or "",
        computer=_field_text(buf, plan.computer, offsets, sizes, types) or "",
        provider=_field_text(buf, plan.provider, offsets, sizes, types) or "",
        data=data,
    )


def _text(buf: bytes, read: _FieldRead, offsets: _Ints, sizes: _Ints, texts: dict[bytes, str]) -> str:
    """A System text field through its shape (never the generic path: see :attr:`_Shape.simple`)."""
    how, where, _unused, _width = read
    if how == _CONST:
        return where or ""
    start = offsets[where]
    raw = buf[start : start + sizes[where]]
    text = texts.get(raw)
    if text is None:
        text = texts[raw] = _utf16(raw)
    return text or ""


def _int(buf: bytes, read: _FieldRead, spec: _Spec, offsets: _Ints, sizes: _Ints, types: _Ints) -> int | None:
    how, where, unpack, width = read
    if how == _DIRECT and sizes[where] >= width:
        return unpack(buf, offsets[where])[0]  # type: ignore[no-any-return]
    if how == _CONST:
        return None
    return _field_int(buf, spec, offsets, sizes, types)


def _time(buf: bytes, read: _FieldRead, spec: _Spec, offsets: _Ints, sizes: _Ints, types: _Ints) -> int | None:
    how, where, _unused, width = read
    if how == _DIRECT and sizes[where] == width:
        return int(_U64(buf, offsets[where])[0] - FILETIME_UNIX_OFFSET) // 10
    if how == _CONST:
        return None
    return _field_time(buf, spec, offsets, sizes, types)


def _tree_event(chunk: _Chunk, pos: int, end: int) -> RawEvent:
    """Decode one record by evaluating its whole BinXML (raw elements or a template instance)."""
    return _event_from_tree(chunk.evaluator.evaluate(pos, end, ([], [], [])))


def _exact_time(record: Any, rendered_us: int | None) -> int | None:
    """python-evtx renders FILETIMEs through a float (up to 2 µs off): take the exact value of the FILETIME
    substitution the rendered time came from, when there is one."""
    if rendered_us is None:
        return None
    from Evtx.Nodes import FiletimeTypeNode

    try:
        for value in record.root().substitutions():
            if isinstance(value, FiletimeTypeNode):
                exact = filetime_to_us(value.unpack_qword(0))
                if abs(exact - rendered_us) <= 2:
                    return exact
    except Exception:  # no substitutions to read: keep the rendered time
        pass
    return rendered_us


#: Renders left for the record python-evtx is rendering (None: not rendering, no bound).
_renders_left: ContextVar[list[int] | None] = ContextVar("_renders_left", default=None)


def _bounded_xml(record: Any) -> str:
    """``record.xml()`` with at most :data:`_MAX_RENDERS` nested renders.

    python-evtx renders a nested BinXML value once per substitution that names it, recursively, without a
    bound: a template whose substitutions repeat a value that instantiates the template again takes exponential
    time. Its renderer calls the module-level ``render_root_node`` for each nested value, so that function is
    wrapped, once, with a counter that is only active here.
    """
    from Evtx import Views

    if not getattr(Views.render_root_node, "_evtrack_bounded", False):
        unbounded = Views.render_root_node

        def render_root_node(root_node: Any) -> Any:
            left = _renders_left.get()
            if left is not None:
                left[0] -= 1
                if left[0] < 0:
                    raise _Hostile(f"python-evtx would render more than {_MAX_RENDERS} nested BinXML values")
            return unbounded(root_node)

        render_root_node._evtrack_bounded = True  # type: ignore[attr-defined]
        Views.render_root_node = render_root_node
    token = _renders_left.set([_MAX_RENDERS])
    try:
        return str(record.xml())
    finally:
        _renders_left.reset(token)


def _rendered_event(chunk: _Chunk, offset: int) -> RawEvent:
    """Decode one record the slow way: python-evtx renders it to XML."""
    from Evtx.Evtx import Record

    record = Record(chunk.data, offset, chunk.pyevtx_chunk())
    event = event_from_xml(_bounded_xml(record))
    data = {k: v for k, v in event.data.items() if k in PAYLOAD_KEYS} if event.event_id in WANTED_EVENT_IDS else {}
    time_us = _exact_time(record, event.time_us)
    return RawEvent(time_us, event.event_id, event.record_id, event.channel, event.computer, event.provider, data)


#: EventID is a UInt16; EventRecordID a UInt64 that Windows keeps far below 2**63 (the event table stores int64).
_MAX_EVENT_ID = 0xFFFF
_MAX_RECORD_ID = (1 << 63) - 1


def _checked(event: RawEvent) -> RawEvent:
    """The event, if its EventID and EventRecordID fit their columns; raises _Corrupt otherwise."""
    if not 0 <= event.event_id <= _MAX_EVENT_ID:
        raise _Corrupt(f"EventID {event.event_id} out of range")
    if event.record_id is not None and not 0 <= event.record_id <= _MAX_RECORD_ID:
        raise _Corrupt(f"EventRecordID {event.record_id} out of range")
    return event


def _record_event(
    chunk: _Chunk, offset: int, size: int, stats: FileStats, number: int, slim: _Slim | None = None
) -> RawEvent | None:
    """Decode one record: the fast path, then (counted as a fallback) the slower ones; None when none can."""
    try:
        return _checked(_fast_event(chunk, offset + RECORD_HEADER_SIZE, offset + size - 4, slim))
    except _Corrupt as exc:
        stats.add_issue(f"record {number}", f"corrupt record: {exc}", 1)
        return None
    except Exception:  # anything unexpected in the fast path: the slower paths decide
        return _slow_event(chunk, offset, size, stats, number)


def _slow_event(chunk: _Chunk, offset: int, size: int, stats: FileStats, number: int) -> RawEvent | None:
    try:
        return _decoded(chunk, offset, size, stats, number)
    except _Corrupt as exc:
        stats.add_issue(f"record {number}", f"corrupt record: {exc}", 1)
        return None


def _decoded(chunk: _Chunk, offset: int, size: int, stats: FileStats, number: int) -> RawEvent | None:
    pos, end = offset + RECORD_HEADER_SIZE, offset + size - 4
    stats.fallbacks += 1
    errors: list[str] = []
    try:
        return _checked(_tree_event(chunk, pos, end))
    except _Hostile as exc:  # python-evtx would take even longer: do not hand it over
        stats.add_issue(f"record {number}", f"corrupt record: {exc}", 1)
        return None
    except Exception as exc:  # the evaluator gives up on any inconsistency: python-evtx may still render it
        errors.append(f"{type(exc).__name__}: {exc}")
    if chunk.failed_renders >= _MAX_FAILED_RENDERS:  # a wrecked chunk: do not spend seconds on each record
        errors.append(f"not rendered: python-evtx failed on {chunk.failed_renders} records of this chunk already")
    else:
        try:
            return _checked(_rendered_event(chunk, offset))
        except _Corrupt:
            raise
        except Exception as exc:  # python-evtx raises anything here (AttributeError, OverrunBufferException...)
            chunk.failed_renders += 1
            errors.append(f"{type(exc).__name__}: {exc}")
    stats.add_issue(f"record {number}", "cannot decode record: " + "; ".join(errors)[:300], 1)
    return None


def _chunk_record_count(data: bytes) -> int:
    first, last = struct.unpack_from("<QQ", data, 8)
    return int(last - first + 1) if 0 <= last - first < CHUNK_SIZE else 0


def _chunk_problem(data: bytes, verify_checksums: bool) -> str | None:
    """Why a chunk cannot be read (None when it can)."""
    if data[:8] != CHUNK_MAGIC:
        return "bad chunk header magic"
    free_space = _U32(data, 48)[0]
    if free_space > CHUNK_SIZE or free_space < CHUNK_HEADER_SIZE:
        return f"free-space offset 0x{free_space:x} outside the chunk"
    if verify_checksums:
        header_crc = binascii.crc32(data[128:512], binascii.crc32(data[:120]))
        if header_crc != _U32(data, 124)[0]:
            return "chunk header CRC32 invalid"
        if binascii.crc32(data[CHUNK_HEADER_SIZE:free_space]) != _U32(data, 52)[0]:
            return "chunk data CRC32 invalid"
    return None


#: The logon and logoff events a slim read may skip (see :class:`_Slim`).
_LOGON_EVENTS = frozenset({4624, 4634})
#: The payload keys a slim read decides on: the logon type and the account.
_SLIM_KEYS = frozenset({"LogonType", "TargetUserSid", "TargetUserName", "TargetDomainName"})
#: The data of a record a slim read skips (only counted, and given to the coverage).
_SKIPPED: dict[str, str | None] = {}
_NO_PLAN: Any = object()


def _logon_type(text: str | None) -> int | None:
    """The logon type as :func:`evtrack.events.normalise` reads it (``_int``: stripped, decimal or ``0x`` hex)."""
    if text is None:
        return None
    text = text.strip()
    if not text:
        return None
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        return None


class _Slim:
    """A slim read's memory of the accounts it has yielded in observation-only logons and logoffs.

    A Security 4624/4634 whose logon type makes it observation-only (:func:`evtrack.events.observation_only`)
    only lends (user, domain, SID, host) to identity linking: once one with the same host, channel and
    TargetUserSid/TargetUserName/TargetDomainName texts has been yielded, the next ones add nothing and are
    skipped (still counted and given to the coverage)."""

    __slots__ = ("accounts",)

    def __init__(self) -> None:
        self.accounts: set[tuple[str, str, str | None, str | None, str | None]] = set()

    def seen(self, computer: str, channel: str, event_id: int, data: dict[str, str | None]) -> bool:
        """Whether a record with this payload may be skipped (its account is already yielded)."""
        if not observation_only(channel, event_id, _logon_type(data.get("LogonType"))):
            return False
        key = (computer, channel, data.get("TargetUserSid"), data.get("TargetUserName"), data.get("TargetDomainName"))
        return key in self.accounts

    def skip(self, event: RawEvent) -> bool:
        """Whether to skip a decoded logon or logoff; one that is not skipped has its account noted."""
        data = event.data
        if not observation_only(event.channel, event.event_id, _logon_type(data.get("LogonType"))):
            return False
        key = (
            event.computer,
            event.channel,
            data.get("TargetUserSid"),
            data.get("TargetUserName"),
            data.get("TargetDomainName"),
        )
        if key in self.accounts:
            return True
        self.accounts.add(key)
        return False


class _Reading:
    """Where the records of one file go: counts, the coverage (when the reader fills it) and the slim state."""

    __slots__ = ("coverage", "issues_seen", "slim", "stats")

    def __init__(self, stats: FileStats, coverage: CoverageBuilder | None, slim: bool) -> None:
        self.stats = stats
        self.coverage = coverage
        self.slim = _Slim() if slim else None
        self.issues_seen = 0
        """Issues already looked at for lost records (see :func:`evtrack.reading._with_coverage`)."""


def _chunk_events(chunk: _Chunk, stats: FileStats, reading: _Reading | None = None) -> Iterator[RawEvent]:
    """The records of one chunk to yield: every record counted in ``stats``; with a coverage, every record goes
    into it and only :data:`WANTED_EVENT_IDS` are yielded; a slim read skips logons it already has the account of."""
    data = chunk.data
    _first, _last, _first_id, last_id, _hsize, _last_off, free_space, _crc = _CHUNK_HEADER(data, 8)
    offset = CHUNK_HEADER_SIZE
    read = 0
    limit = chunk.limit
    per_channel = stats.per_channel
    issues = stats.issues
    coverage = reading.coverage if reading is not None else None
    slim = reading.slim if reading is not None else None
    while offset < free_space:
        if offset + RECORD_HEADER_SIZE > limit:
            skipped = max(_chunk_record_count(data) - read, 1)
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
            skipped = max(_chunk_record_count(data) - read, 1)
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
                if event.event_id not in WANTED_EVENT_IDS:
                    if number == last_id:
                        return
                    continue
            if slim is None or event.event_id not in _LOGON_EVENTS or not (event.data is _SKIPPED or slim.skip(event)):
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
    verify_checksums: bool = True,
    coverage: CoverageBuilder | None = None,
    slim: bool = False,
) -> Iterator[RawEvent]:
    """Yield every record python-evtx's layout plus our fast decoder can read; bad chunks/records go to ``stats``.

    With ``coverage`` (see :func:`evtrack.reading.read_file`), every record goes into it and only the records of
    :data:`WANTED_EVENT_IDS` are yielded. With ``slim``, an observation-only logon or logoff
    (:func:`evtrack.events.observation_only`) whose host, channel and account texts were already yielded from
    this file is not yielded: it adds nothing to a slim read (see :class:`_Slim`)."""
    stats.kind = InputKind.EVTX
    stats.engine = ENGINE
    handle, size, header = _open(path)
    stats.size = size
    reading = _Reading(stats, coverage, slim)
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
                # The file ends inside this chunk. Its checksums cannot hold; without verification, the records
                # that are wholly in the file are still read.
                if not any(data):
                    return
                if limit < CHUNK_HEADER_SIZE or data[:8] != CHUNK_MAGIC or verify_checksums:
                    skipped = _chunk_record_count(data) if limit >= 24 and data[:8] == CHUNK_MAGIC else 0
                    stats.add_issue(f"chunk {index}", truncated_chunk(limit), skipped)
                    return
                data += bytes(CHUNK_SIZE - limit)
            problem = _chunk_problem(data, verify_checksums)
            if problem is not None:
                skipped = _chunk_record_count(data) if data[:8] == CHUNK_MAGIC else 0
                stats.add_issue(f"chunk {index}", problem, skipped)
                if coverage is not None:  # its records are lost, even when its header cannot say how many
                    coverage.break_segments()
                continue
            yield from _chunk_events(_Chunk(data, index, limit), stats, reading)


read_python_evtx.fills_coverage = True  # type: ignore[attr-defined]
read_python_evtx.skips_observed = True  # type: ignore[attr-defined]
