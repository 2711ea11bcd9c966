"""A cheap pre-check that keeps crafted BinXML away from pyevtx-rs.

pyevtx-rs 0.14 expands a nested BinXML value once for every substitution that names it, without a bound: a
1 KB record whose template substitutes a BinXML value twice, the value instantiating the same template again,
doubles per level and makes the process allocate until it is killed (tests/test_fuzz.py). No ``except`` can
catch that, so such chunks must never reach it.

The check reads each chunk once and looks at the templates its records instantiate (top level and nested). The
expansion is exponential only when one value is substituted more than once, so a template whose body holds two
or more BinXML-typed substitution tokens, or (parsed properly) uses one substitution index twice, is refused:
pyevtx-rs expands a BinXML value whatever type the token declares. (A bomb through distinct values would need
their bytes repeated too: the file itself would grow exponentially.) No template in the real logs of
../shared/evtx, nor in any generated log, does either. Such a chunk is handed to pyevtx-rs blanked (zeros behind a
bad magic, so it names the chunk where it stands) and reported as refused; the python-evtx engine evaluates it
within a bounded budget instead.

Format: libevtx's "Windows XML Event Log (EVTX) format",
https://github.com/libyal/libevtx/blob/main/documentation/Windows%20XML%20Event%20Log%20(EVTX).asciidoc,
sections "File header" (header size at 32, format version at 36, header block size at 40), "Chunk" and
"Binary XML" > "Fragment header", "Template instance" (token 0x0c, then the template definition's offset at 6),
"Template definition" (its body size at 20, the body at 24), "Normal substitution"/"Optional substitution"
(token 0x0d/0x0e, a 2-byte index, a value type: 0x21 is BinXML, see "Value types"). Templates are parsed with
:mod:`evtrack.sources.binxml`.
"""

from __future__ import annotations

import io
import re
import struct
from pathlib import Path

from evtrack.sources.base import CHUNK_MAGIC, CHUNK_SIZE, EVTX_MAGIC, FILE_HEADER_SIZE
from evtrack.sources.binxml.tree import Element, Evaluator, Sub

_FRAGMENT = b"\x0f\x01\x01\x00"
#: A fragment header followed by a TemplateInstance token: 0x0c, one byte, template id (4), definition offset (4).
_INSTANCE_RE = re.compile(rb"\x0f\x01\x01\x00\x0c.....(....)", re.DOTALL)
#: A (normal or optional) substitution token: token byte, index (2), value type (1). A byte-level match, so it
#: can also hit bytes that are not tokens: a hit is only a reason to parse the template properly.
_SUB_RE = re.compile(rb"[\x0d\x0e](..)(.)", re.DOTALL)
_BINXML = b"\x21"
_REFUSED_MAGIC = b"Refused\x00"
_ZEROS = bytes(CHUNK_SIZE)
BLANK = "all zeros between chunks in use (wiped or never written): any records it held are lost"
REFUSED = "refused: a template substitutes BinXML more than once (exponential expansion: crafted or corrupt)"


def _substitution_indexes(chunk: bytes, start: int, end: int) -> list[int] | None:
    """The substitution indexes a template body really uses (parsed, not pattern-matched); None if unparsable."""
    try:
        nodes = Evaluator(chunk, {}).evaluate(start, end, None)
    except Exception:
        return None
    found: list[int] = []
    stack: list[object] = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, Sub):
            found.append(node.index)
        elif isinstance(node, Element):
            stack.extend(node.children)
            for parts in node.attrs.values():
                stack.extend(parts)
    return found


def _explosive(chunk: bytes, verdicts: dict[bytes, bool]) -> bool:
    for raw in set(_INSTANCE_RE.findall(chunk, 0x200)):
        (offset,) = struct.unpack("<I", raw)
        if not 0x200 <= offset <= len(chunk) - 24:  # a truncated last chunk is shorter than 64 KiB
            continue
        (size,) = struct.unpack_from("<I", chunk, offset + 20)
        start, end = offset + 24, min(offset + 24 + size, len(chunk))
        body = chunk[start:end]
        if not body.startswith(_FRAGMENT):
            continue
        known = verdicts.get(body)  # Windows defines the same templates again in every chunk
        if known is not None:
            if known:
                return True
            continue
        verdicts[body] = explosive = _explosive_template(chunk, start, end, body)
        if explosive:
            return True
    return False


def _explosive_template(chunk: bytes, start: int, end: int, body: bytes) -> bool:
    hits = _SUB_RE.findall(body)
    if sum(1 for _, kind in hits if kind == _BINXML) >= 2:
        return True  # two BinXML-typed substitutions: the shape of the bomb, never seen in real templates
    indexes = [index for index, _ in hits]
    if len(set(indexes)) < len(indexes):  # maybe one value substituted twice: parse the template to be sure
        used = _substitution_indexes(chunk, start, end)
        return used is not None and len(set(used)) < len(used)
    return False


#: Verdicts by template body, shared by every file this process reads: a fleet's hosts write the same templates,
#: so each is parsed once. Bounded: cleared when full.
_VERDICTS: dict[bytes, bool] = {}
_MAX_VERDICTS = 20_000


def explosive_chunks(path: Path, first: int = 0, last: int | None = None) -> list[int]:
    """Indexes of the chunks pyevtx-rs must not see (usually none), among chunks ``first`` up to ``last``
    (exclusive; None: to the end). Reads those chunks once, one at a time."""
    return [index for index, reason in scan_chunks(path, first, last) if reason == REFUSED]


def scan_chunks(path: Path, first: int = 0, last: int | None = None) -> list[tuple[int, str]]:
    """The chunks among ``first`` up to ``last`` that pyevtx-rs must not be trusted with, and why: refused
    (:data:`REFUSED`), or all zeros while a chunk in use follows (:data:`BLANK`: pyevtx-rs would skip it without a
    word, and whatever it held is lost). Zero chunks at the end of a file are unused space, not reported."""
    found: list[tuple[int, str]] = []
    blank: list[int] = []
    if len(_VERDICTS) > _MAX_VERDICTS:
        _VERDICTS.clear()
    verdicts = _VERDICTS
    with path.open("rb") as handle:
        handle.seek(FILE_HEADER_SIZE + first * CHUNK_SIZE)
        index = first
        while True:
            chunk = handle.read(CHUNK_SIZE)
            if not chunk:
                break
            used = chunk != _ZEROS[: len(chunk)]
            if last is not None and index >= last:  # past the range: only to learn whether its blanks lead on
                if used:
                    found.extend((b, BLANK) for b in blank)
                if used or not blank:
                    break
            elif not used:
                blank.append(index)
            else:
                found.extend((b, BLANK) for b in blank)
                blank = []
                if len(chunk) >= 0x200 and chunk.startswith(CHUNK_MAGIC) and _explosive(chunk, verdicts):
                    found.append((index, REFUSED))
            index += 1
    return sorted(found)


def splittable(path: Path) -> bool:
    """Whether :class:`ChunkView` ranges of this .evtx read like the whole file: its header must be the usual
    one (header size 128, block size 4096), since pyevtx-rs places chunks by the header's block size."""
    try:
        with path.open("rb") as handle:
            header = handle.read(0x80)
    except OSError:
        return False
    if len(header) < 0x80 or header[:8] != EVTX_MAGIC:
        return False
    header_size, _minor, _major, block_size = struct.unpack_from("<IHHH", header, 32)
    return bool(header_size == 0x80 and block_size == FILE_HEADER_SIZE)


def chunk_count(size: int) -> int:
    """How many chunk slots (the last one maybe truncated) a file of ``size`` bytes has."""
    return max(0, -(-(size - FILE_HEADER_SIZE) // CHUNK_SIZE))


class ChunkView(io.RawIOBase):
    """The file as pyevtx-rs may see it: its header, then only chunks ``first`` up to ``last`` (exclusive), with
    the ``masked`` ones (absolute indexes) read as zeros behind a bad magic, a bad chunk it names and skips.
    Chunk ``n`` of the view is chunk ``first + n`` of the file. pyevtx-rs reads as many chunks as the file is
    long, whatever the header says, so a worker can read one range of a large file."""

    def __init__(self, path: Path, masked: list[int], first: int = 0, last: int | None = None, *,
                 pad: bool = False) -> None:
        """``pad``: the file ends inside its last chunk, after that chunk's records (in its unused space): the view
        holds the chunk whole, zeros where the file ends, so that pyevtx-rs reads it (its checksums cover the
        records, which are all there)."""
        super().__init__()
        self._handle = path.open("rb")
        size = self._handle.seek(0, io.SEEK_END)
        self._base = FILE_HEADER_SIZE + first * CHUNK_SIZE
        end = size if last is None else min(size, FILE_HEADER_SIZE + last * CHUNK_SIZE)
        if pad and (end - FILE_HEADER_SIZE) % CHUNK_SIZE:
            end += CHUNK_SIZE - (end - FILE_HEADER_SIZE) % CHUNK_SIZE
        self._size = max(FILE_HEADER_SIZE, end - self._base + FILE_HEADER_SIZE) if size > FILE_HEADER_SIZE else size
        self._pos = 0
        self._masked = [
            (FILE_HEADER_SIZE + (c - first) * CHUNK_SIZE, FILE_HEADER_SIZE + (c - first + 1) * CHUNK_SIZE)
            for c in masked if c >= first and (last is None or c < last)
        ]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = self._size + offset
        self._pos = max(0, self._pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def _real(self, virtual: int) -> int:
        return virtual if virtual < FILE_HEADER_SIZE else virtual - FILE_HEADER_SIZE + self._base

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        start = self._pos
        want = max(0, min(len(view), self._size - start))
        done = 0
        while done < want:  # the header and the chunks are not adjacent in the file: read each part apart
            position = start + done
            part = want - done if position >= FILE_HEADER_SIZE else min(want - done, FILE_HEADER_SIZE - position)
            self._handle.seek(self._real(position))
            data = self._handle.read(part) or bytes(part)  # past the file's end: the padding (``pad``)
            view[done : done + len(data)] = data
            done += len(data)
        end = start + done
        for lo, hi in self._masked:
            if lo < end and hi > start:
                a, b = max(lo, start) - start, min(hi, end) - start
                view[a:b] = bytes(b - a)
                # Not all zeros: pyevtx-rs skips an empty chunk silently, but must raise for this one where it
                # stands, so the reader breaks coverage there (the records it held are a hole).
                m0, m1 = max(lo, start), min(lo + len(_REFUSED_MAGIC), end)
                if m0 < m1:
                    view[m0 - start : m1 - start] = _REFUSED_MAGIC[m0 - lo : m1 - lo]
        self._pos = end
        return done

    def close(self) -> None:
        self._handle.close()
        super().close()
