"""One chunk's bytes with its caches: names, template plans (through a plan cache shared by every chunk and file
this process reads, per set of payload keys), decoded System texts, and the BinXML evaluator.

Format: libevtx's "Windows XML Event Log (EVTX) format",
https://github.com/libyal/libevtx/blob/main/documentation/Windows%20XML%20Event%20Log%20(EVTX).asciidoc,
sections "Chunk" (64 KiB, the records after a 512-byte chunk header; names and template definitions are
referenced by their offset in the chunk) and "Binary XML" > "Template definition" (the body size at offset 20,
the body at 24).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, TypeVar

from evtrack.sources.base import CHUNK_SIZE, ReadPlan
from evtrack.sources.binxml.tree import (
    HEADER,
    MAX_CHUNK_STEPS,
    UNCACHEABLE,
    USES_NAME,
    Element,
    Evaluator,
    Part,
    header_size,
)
from evtrack.sources.binxml.values import U32, Unsupported
from evtrack.sources.python_evtx.plans import PayloadPlan, Plan, wrap

_P = TypeVar("_P")


class _CachedPlan:
    """A template body's plan, with what evaluating the body read besides its bytes (see :meth:`Chunk._planned`)."""

    __slots__ = ("plan", "steps", "tail", "trace")

    def __init__(self, plan: Any, steps: int, trace: tuple[tuple[Any, ...], ...], tail: bytes) -> None:
        self.plan = plan
        self.steps = steps
        self.trace = trace
        """In order: the names used and the element headers read (see :attr:`Evaluator.trace`)."""
        self.tail = tail
        """The bytes just after the body that the evaluation read (its last token's lookahead)."""


#: Plans by (payload keys, parent, body bytes), across chunks and files: logs repeat their templates chunk after
#: chunk, and evaluating a template costs as much as decoding a hundred records. A plan holds where the payload
#: keys of the read plan sit, so reads with other keys keep their own.
_PLAN_CACHE: dict[tuple[frozenset[str], str, bytes], _CachedPlan] = {}
_PLAN_CACHE_BYTES = 0
_MAX_PLAN_CACHE_BYTES = 8 << 20
_MAX_CACHED_BODY = 16 << 10


class Chunk:
    """One chunk's bytes plus the per-chunk caches (names and template plans), read for ``read_plan``."""

    def __init__(self, data: bytes, index: int, limit: int = CHUNK_SIZE, *, read_plan: ReadPlan) -> None:
        self.data = data
        self.index = index
        self.limit = limit
        """Bytes of the chunk actually in the file (less than 64 KiB only for a truncated last chunk)."""
        self.read_plan = read_plan
        self.wanted = read_plan.wanted_ids
        """The event ids whose payload is decoded."""
        self.keys = read_plan.payload_keys
        """The payload fields decoded (what the template plans of this chunk look for)."""
        self.names: dict[int, str] = {}
        self.plans: dict[int, Plan | None] = {}
        self.payload_plans: dict[tuple[int, str], PayloadPlan | None] = {}
        self.texts: dict[bytes, str] = {}
        """UTF-16 System values (channel, provider names) already decoded in this chunk."""
        self.evaluator = Evaluator(data, self.names)
        self.evtx_chunk: Any = None
        """python-evtx's ``ChunkHeader`` of this chunk, made by :mod:`.fallback` when a record needs it."""
        self.failed_renders = 0
        """Records of this chunk python-evtx failed to render (each can cost it a tenth of a second)."""

    def plan(self, template: int) -> Plan | None:
        if template in self.plans:
            return self.plans[template]
        plan: Plan | None
        try:
            plan = self._planned(template, "", lambda nodes: Plan(nodes, self.keys))
        except (Unsupported, struct.error, IndexError, ValueError):
            plan = None
        self.plans[template] = plan
        return plan

    def payload_plan(self, template: int, parent: str) -> PayloadPlan | None:
        """The plan of a template used inside a nested BinXML payload value (cached per chunk)."""
        key = (template, parent)
        if key in self.payload_plans:
            return self.payload_plans[key]
        plan: PayloadPlan | None
        try:
            plan = self._planned(template, parent, lambda nodes: PayloadPlan(wrap(nodes, parent), self.keys))
        except (Unsupported, struct.error, IndexError, ValueError):
            plan = None
        self.payload_plans[key] = plan
        return plan

    def _planned(self, template: int, parent: str, build: Callable[[list[Element | Part]], _P]) -> _P:
        """``build`` applied to the evaluated template body (``parent``: "" for an event's template, else where a
        nested payload sits), through :data:`_PLAN_CACHE`: the cached plan of a body with the same bytes is used
        only where evaluating it here would take the same course (:meth:`_replayed`), and then leaves the
        evaluator (names, step counts) as evaluating it would. A hostile chunk's work bound holds as before."""
        data = self.data
        size = U32(data, template + 20)[0]
        body, high = template + 24, template + 24 + size
        if high > CHUNK_SIZE:
            raise Unsupported("template body past the chunk")
        evaluator = self.evaluator
        key = (self.keys, parent, data[body:high]) if size <= _MAX_CACHED_BODY else None
        cached = _PLAN_CACHE.get(key) if key is not None else None
        if cached is not None and evaluator.chunk_steps <= MAX_CHUNK_STEPS and self._replayed(cached, body, high):
            return cached.plan  # type: ignore[no-any-return]
        evaluator.trace = [] if key is not None else None
        evaluator.trace_body = body
        try:
            nodes = evaluator.evaluate(body, high, None)
            trace = evaluator.trace
        finally:
            evaluator.trace = None
        plan = build(nodes)
        if key is not None and trace is not None and all(event[0] != UNCACHEABLE for event in trace):
            global _PLAN_CACHE_BYTES
            if _PLAN_CACHE_BYTES > _MAX_PLAN_CACHE_BYTES:
                _PLAN_CACHE.clear()
                _PLAN_CACHE_BYTES = 0
            # Each token moves past what it read but an element header, which looks up to 11 bytes ahead.
            headers = [body + event[1] + 11 for event in trace if event[0] == HEADER]
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
            if kind == USES_NAME:
                _kind, offset, text, raw, at, inline = event
                if data[offset : offset + len(raw)] != raw or (offset == body + at) != inline:
                    return False
                used[offset] = text
            else:  # HEADER: the same size, with the names known at that point
                _kind, at, with_id, without, size = event
                if header_size(body + at, with_id, without, names, used) != size:
                    return False
        for offset, text in used.items():
            names.setdefault(offset, text)
        self.evaluator.steps = cached.steps
        self.evaluator.chunk_steps += cached.steps
        return True
