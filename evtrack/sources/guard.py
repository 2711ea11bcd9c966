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
../shared/evtx, nor in any generated log, does either. Such a chunk is handed to pyevtx-rs zeroed and reported
as refused; the python-evtx engine evaluates it within a bounded budget instead.
"""

from __future__ import annotations

import io
import re
import struct
from pathlib import Path

CHUNK_SIZE = 0x10000
FILE_HEADER_SIZE = 0x1000
_CHUNK_MAGIC = b"ElfChnk\x00"
_FRAGMENT = b"\x0f\x01\x01\x00"
#: A fragment header followed by a TemplateInstance token: 0x0c, one byte, template id (4), definition offset (4).
_INSTANCE_RE = re.compile(rb"\x0f\x01\x01\x00\x0c.....(....)", re.DOTALL)
#: A (normal or optional) substitution token: token byte, index (2), value type (1). A byte-level match, so it
#: can also hit bytes that are not tokens: a hit is only a reason to parse the template properly.
_SUB_RE = re.compile(rb"[\x0d\x0e](..)(.)", re.DOTALL)
_BINXML = b"\x21"
REFUSED = "refused: a template substitutes BinXML more than once (exponential expansion: crafted or corrupt)"


def _substitution_indexes(chunk: bytes, start: int, end: int) -> list[int] | None:
    """The substitution indexes a template body really uses (parsed, not pattern-matched); None if unparsable."""
    from evtrack.sources.pyevtx import _Element, _Evaluator, _Sub

    try:
        nodes = _Evaluator(chunk, {}).evaluate(start, end, None)
    except Exception:
        return None
    found: list[int] = []
    stack: list[object] = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, _Sub):
            found.append(node.index)
        elif isinstance(node, _Element):
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


def explosive_chunks(path: Path) -> list[int]:
    """Indexes of the chunks pyevtx-rs must not see (usually none). Reads the file once, a chunk at a time."""
    found = []
    if len(_VERDICTS) > _MAX_VERDICTS:
        _VERDICTS.clear()
    verdicts = _VERDICTS
    with path.open("rb") as handle:
        handle.seek(FILE_HEADER_SIZE)
        index = 0
        while True:
            chunk = handle.read(CHUNK_SIZE)
            if len(chunk) < 0x200:
                break
            if chunk.startswith(_CHUNK_MAGIC) and _explosive(chunk, verdicts):
                found.append(index)
            index += 1
    return found


class MaskedFile(io.RawIOBase):
    """The file as pyevtx-rs may see it: the given chunks read as zeros (a bad chunk it skips and names)."""

    def __init__(self, path: Path, chunks: list[int]) -> None:
        super().__init__()
        self._handle = path.open("rb")
        self._masked = [(FILE_HEADER_SIZE + c * CHUNK_SIZE, FILE_HEADER_SIZE + (c + 1) * CHUNK_SIZE) for c in chunks]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        start = self._handle.tell()
        data = self._handle.read(len(buffer))
        view = memoryview(buffer)
        view[: len(data)] = data
        end = start + len(data)
        for lo, hi in self._masked:
            if lo < end and hi > start:
                a, b = max(lo, start) - start, min(hi, end) - start
                view[a:b] = bytes(b - a)
        return len(data)

    def close(self) -> None:
        self._handle.close()
        super().close()
