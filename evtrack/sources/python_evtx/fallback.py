"""The slower paths, for records the fast path cannot decode (each counts as a ``stats.fallbacks``): the generic
BinXML evaluator over the whole record, then python-evtx's full XML rendering read by
:func:`evtrack.sources.xmlfile.event_from_xml`.

python-evtx has no bounds of its own: its chunk header's string and template chains are walked safely here
(:func:`_safe_chunk_header`), its nested renders are counted (:func:`_bounded_xml`), a hostile record is never
handed to it, and a chunk where it failed often is not given to it again.

Format: libevtx's "Windows XML Event Log (EVTX) format",
https://github.com/libyal/libevtx/blob/main/documentation/Windows%20XML%20Event%20Log%20(EVTX).asciidoc,
sections "Chunk header" (the common string offset array at 128, 64 entries, and the TemplatePtr array at 384,
32 entries) and "Event record" (its BinXML between the 24-byte record header and the 4-byte copy of the size).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from evtrack.sources.base import (
    CHUNK_HEADER_SIZE,
    CHUNK_SIZE,
    RECORD_HEADER_SIZE,
    FileStats,
    RawEvent,
    filetime_to_us,
)
from evtrack.sources.binxml.values import Corrupt, Hostile
from evtrack.sources.python_evtx.chunk import Chunk
from evtrack.sources.python_evtx.plans import checked, event_from_tree
from evtrack.sources.xmlfile import event_from_xml

#: Calls to python-evtx's ``render_root_node`` (one per nested BinXML value rendered) for one record.
_MAX_RENDERS = 64
#: Records of one chunk python-evtx may fail to render before the rest of that chunk's undecodable records are
#: reported without trying it (rendering a damaged record can take it a tenth of a second or more).
_MAX_FAILED_RENDERS = 8

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


def tree_event(chunk: Chunk, pos: int, end: int) -> RawEvent:
    """Decode one record by evaluating its whole BinXML (raw elements or a template instance)."""
    return event_from_tree(chunk.evaluator.evaluate(pos, end, ([], [], [])), chunk.read_plan)


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
                    raise Hostile(f"python-evtx would render more than {_MAX_RENDERS} nested BinXML values")
            return unbounded(root_node)

        render_root_node._evtrack_bounded = True  # type: ignore[attr-defined]
        Views.render_root_node = render_root_node
    token = _renders_left.set([_MAX_RENDERS])
    try:
        return str(record.xml())
    finally:
        _renders_left.reset(token)


def rendered_event(chunk: Chunk, offset: int) -> RawEvent:
    """Decode one record the slow way: python-evtx renders it to XML."""
    from Evtx.Evtx import Record

    if chunk.evtx_chunk is None:
        chunk.evtx_chunk = _safe_chunk_header()(chunk.data, 0)
    record = Record(chunk.data, offset, chunk.evtx_chunk)
    event = event_from_xml(_bounded_xml(record), chunk.read_plan)
    time_us = _exact_time(record, event.time_us)
    return RawEvent(time_us, event.event_id, event.record_id, event.channel, event.computer, event.provider,
                    event.data)


def slow_event(chunk: Chunk, offset: int, size: int, stats: FileStats, number: int) -> RawEvent | None:
    """Decode the record at ``offset`` (``size`` bytes) the slow ways; None, with an issue named, when none can."""
    try:
        return _decoded(chunk, offset, size, stats, number)
    except Corrupt as exc:
        stats.add_issue(f"record {number}", f"corrupt record: {exc}", 1)
        return None


def _decoded(chunk: Chunk, offset: int, size: int, stats: FileStats, number: int) -> RawEvent | None:
    pos, end = offset + RECORD_HEADER_SIZE, offset + size - 4
    stats.fallbacks += 1
    errors: list[str] = []
    try:
        return checked(tree_event(chunk, pos, end))
    except Hostile as exc:  # python-evtx would take even longer: do not hand it over
        stats.add_issue(f"record {number}", f"corrupt record: {exc}", 1)
        return None
    except Exception as exc:  # the evaluator gives up on any inconsistency: python-evtx may still render it
        errors.append(f"{type(exc).__name__}: {exc}")
    if chunk.failed_renders >= _MAX_FAILED_RENDERS:  # a wrecked chunk: do not spend seconds on each record
        errors.append(f"not rendered: python-evtx failed on {chunk.failed_renders} records of this chunk already")
    else:
        try:
            return checked(rendered_event(chunk, offset))
        except Corrupt:
            raise
        except Exception as exc:  # python-evtx raises anything here (AttributeError, OverrunBufferException...)
            chunk.failed_renders += 1
            errors.append(f"{type(exc).__name__}: {exc}")
    stats.add_issue(f"record {number}", "cannot decode record: " + "; ".join(errors)[:300], 1)
    return None
