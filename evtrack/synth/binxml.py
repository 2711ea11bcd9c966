"""Binary XML (BinXML) building blocks for .evtx chunks: value types, template trees and their compiler.

A template is a small XML tree whose leaves may be *substitutions* (placeholders filled per record from a
typed value array). Windows writes every record as a template instance: the template definition is written
inline the first time it is used in a 64 KiB chunk and referenced by its chunk offset afterwards; element
and attribute names live in the chunk's string table (inline on first use, then referenced).

Layouts follow libyal's libevtx documentation and what real Windows logs contain.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import IntEnum

# Token bytes.
TOK_EOF = 0x00
TOK_OPEN_START = 0x01
TOK_CLOSE_START = 0x02
TOK_CLOSE_EMPTY = 0x03
TOK_END_ELEMENT = 0x04
TOK_VALUE = 0x05
TOK_ATTRIBUTE = 0x06
TOK_TEMPLATE_INSTANCE = 0x0C
TOK_NORMAL_SUBST = 0x0D
TOK_OPTIONAL_SUBST = 0x0E
TOK_FRAGMENT = 0x0F
FLAG_MORE = 0x40

FRAGMENT_HEADER = b"\x0f\x01\x01\x00"
NO_DEPENDENCY = 0xFFFF

_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=timezone.utc)


class VT(IntEnum):
    """Substitution value types (the subset evtrack writes)."""

    NULL = 0x00
    STRING = 0x01
    INT8 = 0x03
    UINT8 = 0x04
    INT16 = 0x05
    UINT16 = 0x06
    INT32 = 0x07
    UINT32 = 0x08
    INT64 = 0x09
    UINT64 = 0x0A
    BOOL = 0x0D
    GUID = 0x0F
    SIZET = 0x10
    FILETIME = 0x11
    SYSTEMTIME = 0x12
    SID = 0x13
    HEXINT32 = 0x14
    HEXINT64 = 0x15
    BINXML = 0x21


# --------------------------------------------------------------------------------------------- value encoding

Value = str | int | datetime | bytes | None

_U8 = struct.Struct("<B").pack
_I8 = struct.Struct("<b").pack
_U16 = struct.Struct("<H").pack
_I16 = struct.Struct("<h").pack
_U32 = struct.Struct("<I").pack
_I32 = struct.Struct("<i").pack
_U64 = struct.Struct("<Q").pack
_I64 = struct.Struct("<q").pack

_sid_cache: dict[str, bytes] = {}
_guid_cache: dict[str, bytes] = {}


def encode_sid(sid: str) -> bytes:
    """``S-1-5-21-1-2-3-500`` to its binary form (revision, count, 48-bit big-endian authority, LE sub-authorities)."""
    cached = _sid_cache.get(sid)
    if cached is not None:
        return cached
    parts = sid.split("-")
    if len(parts) < 3 or parts[0].upper() != "S":
        raise ValueError(f"not a SID: {sid!r}")
    subs = [int(p) for p in parts[3:]]
    out = bytes((int(parts[1]), len(subs))) + int(parts[2]).to_bytes(6, "big") + struct.pack(f"<{len(subs)}I", *subs)
    if len(_sid_cache) < 100_000:
        _sid_cache[sid] = out
    return out


def encode_guid(guid: str) -> bytes:
    """A GUID string (with or without braces) to its 16-byte mixed-endian form."""
    cached = _guid_cache.get(guid)
    if cached is not None:
        return cached
    out = uuid.UUID(guid.strip("{}")).bytes_le
    if len(_guid_cache) < 100_000:
        _guid_cache[guid] = out
    return out


def to_filetime(value: datetime | int) -> int:
    """An aware datetime (or an int already in FILETIME ticks) to FILETIME: 100 ns ticks since 1601-01-01 UTC."""
    if isinstance(value, int):
        return value
    if value.tzinfo is None:
        raise ValueError("naive datetime: give an aware (UTC) datetime")
    delta = value - _FILETIME_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def encode_systemtime(value: datetime) -> bytes:
    v = value.astimezone(timezone.utc)
    return struct.pack(
        "<8H", v.year, v.month, v.isoweekday() % 7, v.day, v.hour, v.minute, v.second, v.microsecond // 1000
    )


def encode_value(vtype: VT, value: Value) -> bytes:
    """Encode one substitution value. ``None`` is only valid for :attr:`VT.NULL` (callers switch the type)."""
    if vtype == VT.STRING:
        assert isinstance(value, str)
        return value.encode("utf-16-le") + b"\x00\x00"
    if vtype in (VT.UINT32, VT.HEXINT32):
        assert isinstance(value, int)
        return _U32(value)
    if vtype in (VT.UINT64, VT.HEXINT64, VT.SIZET):
        assert isinstance(value, int)
        return _U64(value)
    if vtype == VT.SID:
        assert isinstance(value, str)
        return encode_sid(value)
    if vtype == VT.GUID:
        assert isinstance(value, str)
        return encode_guid(value)
    if vtype == VT.UINT16:
        assert isinstance(value, int)
        return _U16(value)
    if vtype == VT.UINT8:
        assert isinstance(value, int)
        return _U8(value)
    if vtype == VT.FILETIME:
        assert isinstance(value, (int, datetime))
        return _U64(to_filetime(value))
    if vtype == VT.SYSTEMTIME:
        assert isinstance(value, datetime)
        return encode_systemtime(value)
    if vtype == VT.INT32 or vtype == VT.BOOL:
        assert isinstance(value, int)
        return _I32(value)
    if vtype == VT.INT64:
        assert isinstance(value, int)
        return _I64(value)
    if vtype == VT.INT16:
        assert isinstance(value, int)
        return _I16(value)
    if vtype == VT.INT8:
        assert isinstance(value, int)
        return _I8(value)
    if vtype == VT.NULL:
        return b""
    if vtype == VT.BINXML:
        assert isinstance(value, bytes)
        return value
    raise ValueError(f"unsupported value type {vtype!r}")


# --------------------------------------------------------------------------------------------- template trees


@dataclass(frozen=True)
class Text:
    """A literal (UTF-16) text value inside a template."""

    value: str


@dataclass(frozen=True)
class Sub:
    """A substitution placeholder: index into the value array, declared type, optional (0x0e) or normal (0x0d)."""

    index: int
    vtype: VT
    optional: bool = False


Content = Text | Sub


@dataclass(frozen=True)
class Attr:
    name: str
    value: Content


@dataclass(frozen=True)
class Elem:
    """An element. ``dep`` is the substitution index it depends on (0xFFFF: none), as Windows writes it."""

    name: str
    attrs: tuple[Attr, ...] = ()
    children: tuple[Elem | Text | Sub, ...] = ()
    dep: int = NO_DEPENDENCY


@dataclass(frozen=True)
class Template:
    """A template: its root element plus a GUID derived from its content (so equal trees share one GUID)."""

    root: Elem
    guid: bytes = field(init=False)
    template_id: int = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.md5(repr(self.root).encode("utf-8"), usedforsecurity=False).digest()
        object.__setattr__(self, "guid", digest)
        object.__setattr__(self, "template_id", int.from_bytes(digest[:4], "little"))


def name_hash(name: str) -> int:
    """The 16-bit name hash Windows stores with each chunk string (h = h * 65599 + unit)."""
    h = 0
    for unit in struct.unpack(f"<{len(name)}H", name.encode("utf-16-le")):
        h = (h * 65599 + unit) & 0xFFFFFFFF
    return h & 0xFFFF


# --------------------------------------------------------------------------------------------- chunk tables


class ChunkTables:
    """Per-chunk string and template tables with a journal so a record that does not fit can be rolled back."""

    __slots__ = ("journal", "name_heads", "names", "template_heads", "templates")

    def __init__(self) -> None:
        self.names: dict[str, int] = {}
        self.name_heads: list[int] = [0] * 64
        self.templates: dict[bytes, int] = {}
        self.template_heads: list[int] = [0] * 32
        self.journal: list[tuple[int, object, int, int]] = []  # (kind, key, bucket, old head)

    def mark(self) -> int:
        return len(self.journal)

    def rollback(self, mark: int) -> None:
        while len(self.journal) > mark:
            kind, key, bucket, old = self.journal.pop()
            if kind == 0:
                assert isinstance(key, str)
                del self.names[key]
                self.name_heads[bucket] = old
            else:
                assert isinstance(key, bytes)
                del self.templates[key]
                self.template_heads[bucket] = old

    def add_name(self, name: str, offset: int, bucket: int) -> int:
        """Register a name string written at ``offset``; returns the previous bucket head (its next-offset)."""
        old = self.name_heads[bucket]
        self.journal.append((0, name, bucket, old))
        self.names[name] = offset
        self.name_heads[bucket] = offset
        return old

    def add_template(self, guid: bytes, offset: int, bucket: int) -> int:
        old = self.template_heads[bucket]
        self.journal.append((1, guid, bucket, old))
        self.templates[guid] = offset
        self.template_heads[bucket] = offset
        return old

    def header_tables(self) -> bytes:
        return struct.pack("<64I", *self.name_heads) + struct.pack("<32I", *self.template_heads)


# --------------------------------------------------------------------------------------------- compiler


class _Emitter:
    """Writes one template definition into ``out``; ``base`` is the chunk offset of ``out[0]``."""

    __slots__ = ("base", "out", "tables")

    def __init__(self, base: int, tables: ChunkTables) -> None:
        self.base = base
        self.out = bytearray()
        self.tables = tables

    def name_ref(self, field_pos: int, name: str) -> None:
        """Patch the name offset at ``field_pos``; write the name inline here when the chunk lacks it."""
        out = self.out
        known = self.tables.names.get(name)
        if known is not None:
            struct.pack_into("<I", out, field_pos, known)
            return
        offset = self.base + len(out)
        h = name_hash(name)
        nxt = self.tables.add_name(name, offset, h % 64)
        struct.pack_into("<I", out, field_pos, offset)
        out += struct.pack("<IHH", nxt, h, len(name)) + name.encode("utf-16-le") + b"\x00\x00"

    def content(self, node: Content) -> None:
        if isinstance(node, Text):
            encoded = node.value.encode("utf-16-le")
            self.out += struct.pack("<BBH", TOK_VALUE, VT.STRING, len(encoded) // 2) + encoded
        else:
            tok = TOK_OPTIONAL_SUBST if node.optional else TOK_NORMAL_SUBST
            self.out += struct.pack("<BHB", tok, node.index, node.vtype)

    def element(self, elem: Elem) -> None:
        out = self.out
        start = len(out)
        out += struct.pack("<BHII", TOK_OPEN_START | (FLAG_MORE if elem.attrs else 0), elem.dep, 0, 0)
        self.name_ref(start + 7, elem.name)
        if elem.attrs:
            list_pos = len(out)
            out += b"\x00\x00\x00\x00"
            last = len(elem.attrs) - 1
            for i, attr in enumerate(elem.attrs):
                field_pos = len(out) + 1
                out += struct.pack("<BI", TOK_ATTRIBUTE | (FLAG_MORE if i < last else 0), 0)
                self.name_ref(field_pos, attr.name)
                self.content(attr.value)
            struct.pack_into("<I", out, list_pos, len(out) - list_pos - 4)
        if elem.children:
            out.append(TOK_CLOSE_START)
            for child in elem.children:
                if isinstance(child, Elem):
                    self.element(child)
                else:
                    self.content(child)
            out.append(TOK_END_ELEMENT)
        else:
            out.append(TOK_CLOSE_EMPTY)
        struct.pack_into("<I", out, start + 3, len(out) - start - 7)


def template_instance(template: Template, tables: ChunkTables, pos: int) -> bytes:
    """The TemplateInstance token at chunk offset ``pos``, followed by the inline definition on first use.

    The caller must roll ``tables`` back if the record that holds these bytes does not fit in the chunk.
    """
    known = tables.templates.get(template.guid)
    if known is not None:
        return struct.pack("<BBII", TOK_TEMPLATE_INSTANCE, 1, template.template_id, known)
    def_pos = pos + 10
    em = _Emitter(def_pos, tables)
    em.out += bytes(24) + FRAGMENT_HEADER
    nxt = tables.add_template(template.guid, def_pos, template.template_id % 32)
    em.element(template.root)
    em.out.append(TOK_EOF)
    struct.pack_into("<I16sI", em.out, 0, nxt, template.guid, len(em.out) - 24)
    return struct.pack("<BBII", TOK_TEMPLATE_INSTANCE, 1, template.template_id, def_pos) + bytes(em.out)
