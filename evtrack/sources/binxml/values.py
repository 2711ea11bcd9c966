"""BinXML values as text, exactly as pyevtx-rs writes them (and :mod:`evtrack.sources.pyevtx_rs` turns them
into text), and the substitution array of a template instance.

Format: libevtx's "Windows XML Event Log (EVTX) format",
https://github.com/libyal/libevtx/blob/main/documentation/Windows%20XML%20Event%20Log%20(EVTX).asciidoc,
sections "Binary XML" > "Value types" (the type codes below, 0x80 marking an array), "Template instance" and
"Template instance data" (a value count, then a descriptor of 2 bytes size and 1 byte type plus 1 empty byte per
value, then the values back to back).

Text forms: integers in decimal, HexInt32/64 and SizeT as lowercase ``0x...`` without padding, GUIDs upper case
without braces, SIDs ``S-1-5-...``, binary as upper-case hex, booleans ``true``/``false``, times
``YYYY-MM-DDTHH:MM:SS.ffffffZ``, arrays comma-joined, UTF-16 strings cut at the first NUL.
"""

from __future__ import annotations

import codecs
import struct
from datetime import datetime, timedelta, timezone
from itertools import accumulate

from evtrack.sources.base import CHUNK_HEADER_SIZE

U16 = struct.Struct("<H").unpack_from
U32 = struct.Struct("<I").unpack_from
U64 = struct.Struct("<Q").unpack_from

#: ``bytes.decode("utf-16-le", errors="replace")`` without the codec lookup (final: an odd last byte is replaced).
UTF16 = codecs.utf_16_le_decode

_EPOCH = datetime(1601, 1, 1, tzinfo=timezone.utc)
#: Tokens a nested BinXML value can start with (fragment header, template instance, element).
BINXML_STARTS = frozenset({0x0F, 0x0C, 0x01, 0x41})

# BinXML value types (section "Value types"); 0x80 marks an array of the type.
T_NULL = 0x00
T_WSTRING = 0x01
T_ANSI = 0x02
T_SID = 0x13
T_FILETIME = 0x11
T_SYSTIME = 0x12
T_BINXML = 0x21
INT_TYPES: dict[int, struct.Struct] = {
    0x03: struct.Struct("<b"),
    0x04: struct.Struct("<B"),
    0x05: struct.Struct("<h"),
    0x06: struct.Struct("<H"),
    0x07: struct.Struct("<i"),
    0x08: struct.Struct("<I"),
    0x09: struct.Struct("<q"),
    0x0A: struct.Struct("<Q"),
}
FIXED_SIZES = {
    0x03: 1, 0x04: 1, 0x05: 2, 0x06: 2, 0x07: 4, 0x08: 4, 0x09: 8, 0x0A: 8, 0x0B: 4, 0x0C: 8, 0x0D: 4,
    0x0F: 16, 0x11: 8, 0x12: 16, 0x14: 4, 0x15: 8,
}  # fmt: skip


class Unsupported(Exception):
    """The fast path cannot decode this record (or template): let a slower path try."""


class Corrupt(Unsupported):
    """The record's bytes are inconsistent (pyevtx-rs refuses it too): report it, do not try a lenient path."""


class Hostile(Corrupt):
    """Decoding the record would take unbounded work (nesting or expansion without end): report it and do not
    hand it to python-evtx, which has no such bounds."""


def utf16(raw: bytes) -> str:
    text = UTF16(raw, "replace", True)[0]
    cut = text.find("\x00")
    return text if cut < 0 else text[:cut]


def _iso(time_us: int) -> str:
    moment = _EPOCH + timedelta(microseconds=time_us)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ").rjust(27, "0")


def _filetime_text(value: int) -> str:
    return _iso(value // 10)


def systime_text(raw: bytes) -> str:
    year, month, _weekday, day, hour, minute, second, millis = struct.unpack_from("<8H", raw)
    if year == 0 and month == 0 and day == 0:
        return _iso(0)
    moment = datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sid_text(raw: bytes) -> str:
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


def scalar_text(vtype: int, raw: bytes) -> str:
    """One value of a fixed-size or string type as text; raises Unsupported for anything else."""
    if vtype in INT_TYPES:
        return str(INT_TYPES[vtype].unpack_from(raw)[0])
    if vtype == T_WSTRING:
        return utf16(raw)
    if vtype == T_ANSI:
        text = raw.decode("cp1252", errors="replace")
        cut = text.find("\x00")
        return text if cut < 0 else text[:cut]
    if vtype == 0x14:
        return f"0x{U32(raw)[0]:x}"
    if vtype == 0x15:
        return f"0x{U64(raw)[0]:x}"
    if vtype == 0x10:
        return f"0x{U32(raw)[0]:x}" if len(raw) == 4 else f"0x{U64(raw)[0]:x}"
    if vtype == 0x13:
        return sid_text(raw)
    if vtype == 0x0F:
        return _guid_text(raw)
    if vtype == T_FILETIME:
        return _filetime_text(U64(raw)[0])
    if vtype == T_SYSTIME:
        return systime_text(raw)
    if vtype == 0x0D:
        return "true" if struct.unpack_from("<i", raw)[0] != 0 else "false"
    if vtype == 0x0E:
        return raw.hex().upper()
    if vtype == 0x0B:
        return _float32_text(struct.unpack_from("<f", raw)[0])
    if vtype == 0x0C:
        return str(struct.unpack_from("<d", raw)[0])
    raise Unsupported(f"value type 0x{vtype:02x}")


def value_text(buf: bytes, offset: int, size: int, vtype: int) -> str | None:
    """A substitution value as text (None for a null value). BinXML values raise Unsupported."""
    if vtype == T_WSTRING:
        return utf16(buf[offset : offset + size])
    if vtype == T_NULL or size == 0:
        return None
    raw = buf[offset : offset + size]
    if vtype & 0x80:
        base = vtype & 0x7F
        if base == T_WSTRING:
            items = UTF16(raw, "replace", True)[0].split("\x00")
            if items and items[-1] == "":
                items.pop()
            return ",".join(items)
        width = 4 if base == 0x10 and size % 8 else FIXED_SIZES.get(base, 8 if base == 0x10 else 0)
        if not width or base == T_ANSI:
            raise Unsupported(f"array type 0x{vtype:02x}")
        return ",".join(scalar_text(base, raw[i : i + width]) for i in range(0, size - width + 1, width))
    if vtype in FIXED_SIZES and size < FIXED_SIZES[vtype]:
        raise Unsupported(f"value of type 0x{vtype:02x} too short ({size} bytes)")
    if vtype == T_BINXML:
        raise Unsupported("nested BinXML value")
    return scalar_text(vtype, raw)


_DESCRIPTOR_ARRAYS: dict[int, struct.Struct] = {}


def template_at(buf: bytes, pos: int) -> tuple[int, int] | None:
    """At a TemplateInstance token: (the template definition's offset, where the substitution array starts),
    stepping over a definition written inline; None when the definition is not earlier in the chunk."""
    template = U32(buf, pos + 6)[0]
    pos += 10
    if template == pos:
        pos += 24 + U32(buf, pos + 20)[0]
    if not CHUNK_HEADER_SIZE <= template < pos:
        return None
    return template, pos


def instance_data(buf: bytes, pos: int, end: int) -> tuple[list[int], tuple[int, ...], tuple[int, ...], int]:
    """Read a substitution array at ``pos``: (offsets, sizes, types, end of the values), with tuples for the
    sizes and types (the types key a plan's shapes)."""
    if pos + 4 > end:
        raise Unsupported("substitution array past the record")
    count = U32(buf, pos)[0]
    pos += 4
    if count > 4096 or pos + 4 * count > end:
        raise Corrupt(f"implausible substitution count {count}")
    layout = _DESCRIPTOR_ARRAYS.get(count)
    if layout is None:
        layout = _DESCRIPTOR_ARRAYS[count] = struct.Struct("<" + "HBx" * count)
    spec = layout.unpack_from(buf, pos)
    sizes = spec[0::2]
    offsets = list(accumulate(sizes, initial=pos + 4 * count))
    stop = offsets.pop()
    if stop > end:
        raise Corrupt(f"substitution values end at 0x{stop:x}, past the BinXML end 0x{end:x}")
    return offsets, sizes, spec[1::2], stop
