"""A generic BinXML evaluator: a token stream of one chunk into a small element tree.

Template bodies are evaluated symbolically (substitutions stay :class:`Sub` slots: what the python-evtx engine
turns into plans, and what the guard inspects for repeated substitutions); raw BinXML and nested values are
evaluated with their real values. Work is bounded per evaluation, per chunk and in depth, so crafted input
(self-referencing or fanned-out templates) is refused as :class:`~evtrack.sources.binxml.values.Hostile`
instead of taking exponential time.

Format: libevtx's "Windows XML Event Log (EVTX) format",
https://github.com/libyal/libevtx/blob/main/documentation/Windows%20XML%20Event%20Log%20(EVTX).asciidoc,
section "Binary XML": "Token types" (the token bytes dispatched on below, 0x40 the has-more-data flag),
"Fragment header", "Element start" (its dependency identifier is absent in some files, see
:meth:`Evaluator.element_header_size`), "Attribute", "Name" (names are chunk offsets, often defined inline),
"Value text", "Normal substitution"/"Optional substitution", "Character entity reference", "Entity reference",
"CDATA section", "PI target"/"PI data", "Template instance" and "Template definition" (24 bytes before the body).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import Any, TypeAlias

from evtrack.sources.base import CHUNK_HEADER_SIZE, CHUNK_SIZE
from evtrack.sources.binxml.values import (
    T_ANSI,
    T_BINXML,
    T_WSTRING,
    U16,
    U32,
    UTF16,
    Hostile,
    Unsupported,
    instance_data,
    scalar_text,
    template_at,
    value_text,
)

#: Deeper BinXML nesting than any real record (an event nests a payload template once or twice).
MAX_DEPTH = 64
#: Tokens one evaluation may visit: a 64 KiB chunk read once holds far fewer, so more means a template or
#: BinXML value is expanded over and over (self-referencing or fanned-out substitutions: exponential work).
_MAX_STEPS = 50_000
#: Tokens all evaluations of one chunk may visit together (a chunk of many small hostile templates).
MAX_CHUNK_STEPS = 2_000_000

#: Tokens that may carry an attribute's value (an Attribute token starts one; any other token ends it).
_VALUE_TOKENS = frozenset({0x05, 0x06, 0x07, 0x08, 0x09, 0x0D, 0x0E})

_NAME_HEADER = struct.Struct("<IHH").unpack_from

#: What a traced template evaluation noted (see :attr:`Evaluator.trace`): a name it used (offset, text, bytes,
#: position of the reference relative to the body, whether inline), an element header (position relative to the
#: body, the two name offsets it may hold, the size it was given), or something it does not trace.
USES_NAME = 0
HEADER = 1
UNCACHEABLE = 2

_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


class Sub:
    """A substitution slot in a template, while the template is evaluated symbolically."""

    __slots__ = ("index", "optional")

    def __init__(self, index: int, optional: bool) -> None:
        self.index = index
        self.optional = optional


#: Text of an element or attribute: literal pieces and (in templates) substitution slots.
Part: TypeAlias = str | Sub
#: Offsets, sizes or types of a substitution array.
Ints: TypeAlias = Sequence[int]


class Element:
    """An element: its attributes' and its children's text parts, and its child elements, in order."""

    __slots__ = ("attrs", "children", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.attrs: dict[str, list[Part]] = {}
        self.children: list[Element | Part] = []

    def elements(self) -> Iterator[Element]:
        return (child for child in self.children if isinstance(child, Element))

    def parts(self) -> list[Part]:
        return [child for child in self.children if not isinstance(child, Element)]


def _descriptors(buf: bytes, pos: int, end: int) -> tuple[list[int], list[int], list[int], int]:
    """Read a substitution array at ``pos``: (offsets, sizes, types, end of the values), as lists."""
    offsets, sizes, types, stop = instance_data(buf, pos, end)
    return offsets, list(sizes), list(types), stop


_NO_NAMES: dict[int, str] = {}


def header_size(pos: int, with_id: int, without_id: int, names: dict[int, str], more: dict[int, str]) -> int:
    """:meth:`Evaluator.element_header_size` for an element at ``pos`` whose name reference is ``with_id`` (with
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


class Evaluator:
    """Evaluates a BinXML token stream of one chunk into a small element tree.

    With ``values`` None (a template body), substitutions become :class:`Sub` slots; otherwise they are
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
        headers it read (what its course depends on besides the body's bytes; see the plan cache of
        :mod:`evtrack.sources.python_evtx.chunk`)."""
        self.trace_body = 0
        """Where the traced template body starts (positions are noted relative to it)."""
        self.reached = 0
        """Where the last token stream evaluated stopped (only the bytes before it, plus an element header's
        lookahead, were read)."""

    def evaluate(
        self, pos: int, end: int, values: tuple[list[int], list[int], list[int]] | None
    ) -> list[Element | Part]:
        """Evaluate one token stream from the top, within the per-evaluation and per-chunk work bounds."""
        if self.chunk_steps > MAX_CHUNK_STEPS:
            raise Hostile(f"chunk needs more than {MAX_CHUNK_STEPS} BinXML tokens")
        self.steps = 0
        try:
            return self.fragment(pos, end, values)
        finally:
            self.chunk_steps += self.steps

    def name(self, pos: int) -> tuple[str, int]:
        """Read a name reference at ``pos``; returns the name and the position after the reference."""
        offset = U32(self.chunk, pos)[0]
        pos += 4
        inline_end = pos
        if offset == pos:
            _next, _hash, length = _NAME_HEADER(self.chunk, offset)
            inline_end = offset + 8 + 2 * length + 2
        cached = self.names.get(offset)
        if cached is None:
            if offset + 8 > CHUNK_SIZE:
                raise Unsupported(f"name offset 0x{offset:x} outside the chunk")
            _next, _hash, length = _NAME_HEADER(self.chunk, offset)
            if offset + 8 + 2 * length > CHUNK_SIZE:
                raise Unsupported("name past the chunk")
            cached = UTF16(self.chunk[offset + 8 : offset + 8 + 2 * length], "replace", True)[0]
            self.names[offset] = cached
        if self.trace is not None:
            self._trace_name(offset, cached, pos)
        return cached, inline_end

    def _trace_name(self, offset: int, text: str, pos: int) -> None:
        """Note a name the traced evaluation used: its offset, text and bytes, and whether it was inline (its
        offset is the position just after the reference, at ``pos``)."""
        assert self.trace is not None
        if offset + 8 > CHUNK_SIZE:
            self.trace.append((UNCACHEABLE,))
            return
        _next, _hash, length = _NAME_HEADER(self.chunk, offset)
        raw = self.chunk[offset : offset + 8 + 2 * length]
        self.trace.append((USES_NAME, offset, text, raw, pos - self.trace_body, offset == pos))

    def fragment(
        self,
        pos: int,
        end: int,
        values: tuple[list[int], list[int], list[int]] | None,
        depth: int = 0,
    ) -> list[Element | Part]:
        """Evaluate tokens from ``pos`` to ``end`` (or an end-of-stream token); returns the top-level nodes."""
        if depth > MAX_DEPTH:
            raise Hostile(f"BinXML nested deeper than {MAX_DEPTH} levels")
        chunk = self.chunk
        top: list[Element | Part] = []
        stack: list[Element] = []
        attr_target: list[Part] | None = None
        while pos < end:
            self.steps += 1
            if self.steps > _MAX_STEPS:
                raise Hostile(f"BinXML expands to more than {_MAX_STEPS} tokens (self-referencing or fanned out)")
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
                element = Element(name)
                (stack[-1].children if stack else top).append(element)
                stack.append(element)
            elif kind == 0x02:  # close start element
                pos += 1
            elif kind in (0x03, 0x04):  # close empty element, end element
                pos += 1
                if not stack:
                    raise Unsupported("end element without an open element")
                stack.pop()
            elif kind == 0x06:  # attribute
                if not stack:
                    raise Unsupported("attribute outside an element")
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
                    raise Unsupported(f"value token of type 0x{vtype:02x}")
                length = U16(chunk, pos)[0]
                pos += 2
                width = 2 if vtype == T_WSTRING else 1
                raw = chunk[pos : pos + width * length]
                pos += width * length
                self.add_text(stack, top, attr_target, scalar_text(vtype, raw))
            elif kind == 0x08:  # character reference
                self.add_text(stack, top, attr_target, chr(U16(chunk, pos + 1)[0]))
                pos += 3
            elif kind == 0x09:  # entity reference
                name, pos = self.name(pos + 1)
                self.add_text(stack, top, attr_target, _ENTITIES.get(name, f"&{name};"))
            elif kind == 0x0A:  # processing instruction target
                _name, pos = self.name(pos + 1)
            elif kind == 0x0B:  # processing instruction data
                pos += 3 + 2 * U16(chunk, pos + 1)[0]
            elif kind in (0x0D, 0x0E):  # normal / optional substitution
                index = U16(chunk, pos + 1)[0]
                pos += 4
                target = attr_target if attr_target is not None else (stack[-1].children if stack else top)
                if values is None:
                    target.append(Sub(index, kind == 0x0E))
                else:
                    self.substitute(target, values, index, depth)
            else:
                raise Unsupported(f"BinXML token 0x{token:02x} at 0x{pos:x}")
        self.reached = pos
        return top

    def element_header_size(self, pos: int) -> int:
        """Bytes before an element's name reference: token, dependency id (absent in some files), data size.

        Records written by some exporters leave the 2-byte dependency id out; the name reference then sits two
        bytes earlier. A name reference either points just past itself (an inline name) or back into the chunk.
        """
        with_id = U32(self.chunk, pos + 7)[0]
        without_id = U32(self.chunk, pos + 5)[0]
        size = header_size(pos, with_id, without_id, self.names, _NO_NAMES)
        if self.trace is not None:
            self.trace.append((HEADER, pos - self.trace_body, with_id, without_id, size))
        if not size:
            raise Unsupported(f"element name reference at 0x{pos:x} points nowhere")
        return size

    @staticmethod
    def add_text(stack: list[Element], top: list[Element | Part], attr: list[Part] | None, text: str) -> None:
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
        text = value_text(self.chunk, offsets[index], sizes[index], vtype)
        if text is not None:
            target.append(text)

    def template_instance(self, pos: int, end: int, depth: int) -> tuple[list[Element | Part], int]:
        chunk = self.chunk
        found = template_at(chunk, pos)
        if found is None:
            raise Unsupported("template definition not where expected")
        template, pos = found
        if self.trace is not None:
            self.trace.append((UNCACHEABLE,))  # reads another template: not worth tracing
        offsets, sizes, types, after = _descriptors(chunk, pos, end)
        body = template + 24
        body_end = body + U32(chunk, template + 20)[0]
        if body_end > CHUNK_SIZE:
            raise Unsupported("template body past the chunk")
        nodes = self.fragment(body, body_end, (offsets, sizes, types), depth + 1)
        return nodes, after
