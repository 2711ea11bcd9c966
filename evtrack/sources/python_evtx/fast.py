"""The fast path: one record through its template's plan, without rendering.

Each record only reads its substitution descriptor array, EventID first, and the System values; payloads are
decoded only for the read plan's :attr:`~evtrack.sources.base.ReadPlan.wanted_ids`, and only its
:attr:`~evtrack.sources.base.ReadPlan.payload_keys` fields (as the pyevtx-rs engine does, so both give identical
``data``). A nested BinXML payload goes through its own template's plan when it is a template instance, else
through the evaluator. What this path cannot decode raises :class:`~evtrack.sources.binxml.values.Unsupported`
(a slower path tries) or :class:`~evtrack.sources.binxml.values.Corrupt` (reported, as pyevtx-rs refuses it).

Format: libevtx's "Windows XML Event Log (EVTX) format",
https://github.com/libyal/libevtx/blob/main/documentation/Windows%20XML%20Event%20Log%20(EVTX).asciidoc,
sections "Binary XML" > "Fragment header", "Template instance", "Template instance data" and "Value types".
"""

from __future__ import annotations

from typing import Any

from evtrack.sources.base import FILETIME_UNIX_OFFSET, RawEvent, filetime_to_us
from evtrack.sources.binxml.tree import MAX_DEPTH, Ints
from evtrack.sources.binxml.values import (
    BINXML_STARTS,
    INT_TYPES,
    T_BINXML,
    T_FILETIME,
    T_NULL,
    U64,
    UTF16,
    Corrupt,
    Hostile,
    Unsupported,
    instance_data,
    sid_text,
    systime_text,
    template_at,
    utf16,
    value_text,
)
from evtrack.sources.python_evtx.chunk import Chunk
from evtrack.sources.python_evtx.plans import (
    CONST,
    DIRECT,
    INT,
    SID,
    FieldPlan,
    FieldRead,
    PayloadPlan,
    PayloadShape,
    Spec,
    add_payload_shape,
    add_shape,
    payload_from_tree,
    wrap,
)
from evtrack.sources.python_evtx.slim import LOGON_CHANNEL, LOGON_EVENTS, SKIPPED, Slim
from evtrack.sources.xmlfile import parse_system_time

_NO_PLAN: Any = object()
#: SID texts already decoded (any file: a SID's text depends on its bytes alone), and how many to keep.
_SID_TEXTS: dict[bytes, str] = {}
_MAX_CACHED = 65_536


def _field_text(buf: bytes, spec: Spec, offsets: Ints, sizes: Ints, types: Ints) -> str | None:
    if spec[0] == "lit":
        return spec[1]  # type: ignore[no-any-return]
    index: int = spec[1]
    if index >= len(types):
        return None
    return value_text(buf, offsets[index], sizes[index], types[index])


def _field_int(buf: bytes, spec: Spec, offsets: Ints, sizes: Ints, types: Ints) -> int | None:
    if spec[0] == "sub":
        index: int = spec[1]
        if index >= len(types):
            return None
        vtype = types[index]
        if vtype in INT_TYPES and sizes[index] >= INT_TYPES[vtype].size:
            return int(INT_TYPES[vtype].unpack_from(buf, offsets[index])[0])
    text = _field_text(buf, spec, offsets, sizes, types)
    if text is None or text == "":
        return None
    return int(text, 16) if text.lower().startswith("0x") else int(text)


def _field_time(buf: bytes, spec: Spec, offsets: Ints, sizes: Ints, types: Ints) -> int | None:
    if spec[0] == "sub":
        index: int = spec[1]
        if index >= len(types):
            return None
        if types[index] == T_FILETIME and sizes[index] == 8:
            return filetime_to_us(U64(buf, offsets[index])[0])
    return parse_system_time(_field_text(buf, spec, offsets, sizes, types))


class _NotSure(Exception):
    """A slim read cannot tell from the keys alone that the full payload would decode: decode it all."""


def _decode_fields(
    buf: bytes, fields: tuple[FieldPlan, ...], offsets: Ints, sizes: Ints, types: Ints
) -> dict[str, str | None]:
    """Payload values as a :class:`PayloadShape` says how to read them (the text :func:`value_text` gives)."""
    data: dict[str, str | None] = {}
    value: str | None
    for name, how, where, empty_is_null, layout in fields:
        if how == DIRECT:  # most payload values: inline the common case
            start = offsets[where]
            value = UTF16(buf[start : start + sizes[where]], "replace", True)[0]
            cut = value.find("\x00")
            if cut >= 0:
                value = value[:cut]
        elif how == CONST:
            value = where
        elif how == SID and sizes[where]:  # through a cache: accounts repeat
            start = offsets[where]
            raw = buf[start : start + sizes[where]]
            value = _SID_TEXTS.get(raw)
            if value is None:
                if len(_SID_TEXTS) >= _MAX_CACHED:
                    _SID_TEXTS.clear()
                value = _SID_TEXTS[raw] = sid_text(raw)
        elif how == INT and sizes[where] >= layout.size:
            value = str(layout.unpack_from(buf, offsets[where])[0])
        else:
            value = value_text(buf, offsets[where], sizes[where], types[where])
        data[name] = (value or None) if empty_is_null else value
    return data


def _payload(
    chunk: Chunk,
    plan: PayloadPlan,
    offsets: Ints,
    sizes: Ints,
    types: tuple[int, ...],
    depth: int,
    shape: PayloadShape | None = None,
) -> dict[str, str | None]:
    """The payload's values of the read plan's payload keys (``shape``: the plan's shape for ``types``, when
    known)."""
    if shape is None:
        shape = plan.shapes.get(types)
        if shape is None:
            shape = add_payload_shape(plan, types)
    data = _decode_fields(chunk.data, shape.fields, offsets, sizes, types) if shape.fields else {}
    index = plan.sub
    if index is not None and index < len(types) and sizes[index]:
        if types[index] == T_BINXML:
            start = offsets[index]
            data.update(_nested_payload(chunk, start, start + sizes[index], plan.parent, depth + 1))
        elif types[index] != T_NULL:
            raise Unsupported("payload substitution is not BinXML")
    return data


def _partial_payload(
    chunk: Chunk,
    plan: PayloadPlan,
    shape: PayloadShape,
    offsets: Ints,
    sizes: Ints,
    types: tuple[int, ...],
    depth: int,
) -> dict[str, str | None]:
    """The :data:`SLIM_KEYS` values of the payload, as :func:`_payload` gives them; raises (:class:`_NotSure`
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
        if types[index] != T_BINXML or depth >= MAX_DEPTH:
            raise _NotSure
        # The nested value, as _nested_payload reads it.
        buf = chunk.data
        pos = offsets[index]
        end = pos + sizes[index]
        if buf[pos] == 0x0F:
            pos += 4
        found = template_at(buf, pos) if buf[pos] == 0x0C else None
        if found is None:
            raise _NotSure
        template, pos = found
        nested = chunk.payload_plans.get((template, plan.parent), _NO_PLAN)
        if nested is _NO_PLAN:
            nested = chunk.payload_plan(template, plan.parent)
        if nested is None:
            raise _NotSure
        nested_offsets, nested_sizes, nested_types, _stop = instance_data(buf, pos, end)
        nested_shape = nested.shapes.get(nested_types)
        if nested_shape is None:
            nested_shape = add_payload_shape(nested, nested_types)
        data.update(
            _partial_payload(chunk, nested, nested_shape, nested_offsets, nested_sizes, nested_types, depth + 1)
        )
    return data


def _nested_payload(chunk: Chunk, pos: int, end: int, parent: str, depth: int) -> dict[str, str | None]:
    """The payload held in a nested BinXML value: through a cached plan when it is a template instance."""
    if depth > MAX_DEPTH:
        raise Hostile(f"BinXML nested deeper than {MAX_DEPTH} levels")
    buf = chunk.data
    start = pos
    if buf[pos] == 0x0F:
        pos += 4
    found = template_at(buf, pos) if buf[pos] == 0x0C else None
    if found is not None:
        template, pos = found
        plan = chunk.payload_plan(template, parent)
        if plan is not None:
            offsets, sizes, types, _stop = instance_data(buf, pos, end)
            return _payload(chunk, plan, offsets, sizes, types, depth)
    return payload_from_tree(wrap(chunk.evaluator.evaluate(start, end, ([], [], [])), parent), chunk.keys)


#: 9999-12-31T23:59:59.9999999Z as FILETIME: pyevtx-rs refuses a record with any later time (found by fuzzing),
#: and Python's datetime cannot hold one either.
_MAX_FILETIME = 2_650_466_808_009_999_999


def fast_event(chunk: Chunk, pos: int, end: int, slim: Slim | None = None) -> RawEvent:
    """Decode one record's BinXML (from ``pos`` to ``end``) through its template's plan, without rendering.

    With ``slim``, a logon or logoff whose account the read has already yielded comes back with
    :data:`SKIPPED` as its data (the payload decoded only as far as that takes)."""
    buf = chunk.data
    if buf[pos] == 0x0F:
        pos += 4
    found = template_at(buf, pos) if buf[pos] == 0x0C else None
    if found is None:
        raise Unsupported("no template instance, or its definition is not where expected")
    template, pos = found
    plan = chunk.plans.get(template, _NO_PLAN)
    if plan is _NO_PLAN:
        plan = chunk.plan(template)
    if plan is None:
        raise Unsupported("template without a plan")
    offsets, sizes, types, stop = instance_data(buf, pos, end)
    if stop < end and buf[stop] != 0x00:
        raise Corrupt(f"invalid BinXML token 0x{buf[stop]:02x} at 0x{stop:x} after the substitution values")
    shape = plan.shapes.get(types)
    if shape is None:
        shape = add_shape(plan, types)
    for index, is_filetime in shape.times:
        if is_filetime:
            if sizes[index] == 8 and U64(buf, offsets[index])[0] > _MAX_FILETIME:
                raise Corrupt(f"FILETIME value {index} after the year 9999")
        elif sizes[index] >= 16:
            try:
                systime_text(buf[offsets[index] : offsets[index] + 16])
            except ValueError as exc:
                raise Corrupt(f"SYSTEMTIME value {index}: {exc}") from None
    for index in shape.binxml:
        if sizes[index] and buf[offsets[index]] not in BINXML_STARTS:
            raise Corrupt(f"BinXML value {index} starts with invalid token 0x{buf[offsets[index]]:02x}")
    how, where, unpack, width = shape.event_id
    if how == DIRECT and sizes[where] >= width:
        event_id = unpack(buf, offsets[where])[0]
    elif how == CONST:
        event_id = 0
    else:
        event_id = _field_int(buf, plan.event_id, offsets, sizes, types) or 0
    if event_id not in chunk.wanted:
        data = {}
    elif slim is not None and event_id in LOGON_EVENTS and shape.simple:
        texts = chunk.texts
        channel = _text(buf, shape.channel, offsets, sizes, texts)
        computer = _text(buf, shape.computer, offsets, sizes, texts)
        payload = shape.payload
        if payload is None:
            payload = shape.payload = add_payload_shape(plan.payload, types)
        keys = None
        if channel.lower() == LOGON_CHANNEL:
            try:
                keys = _partial_payload(chunk, plan.payload, payload, offsets, sizes, types, 0)
            except Exception:  # whatever a partial read cannot vouch for, the full read decides as before
                keys = None
        if keys is not None and slim.seen(computer, channel, event_id, keys):
            data = SKIPPED
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


def _text(buf: bytes, read: FieldRead, offsets: Ints, sizes: Ints, texts: dict[bytes, str]) -> str:
    """A System text field through its shape (never the generic path: see :attr:`Shape.simple`)."""
    how, where, _unused, _width = read
    if how == CONST:
        return where or ""
    start = offsets[where]
    raw = buf[start : start + sizes[where]]
    text = texts.get(raw)
    if text is None:
        text = texts[raw] = utf16(raw)
    return text or ""


def _int(buf: bytes, read: FieldRead, spec: Spec, offsets: Ints, sizes: Ints, types: Ints) -> int | None:
    how, where, unpack, width = read
    if how == DIRECT and sizes[where] >= width:
        return unpack(buf, offsets[where])[0]  # type: ignore[no-any-return]
    if how == CONST:
        return None
    return _field_int(buf, spec, offsets, sizes, types)


def _time(buf: bytes, read: FieldRead, spec: Spec, offsets: Ints, sizes: Ints, types: Ints) -> int | None:
    how, where, _unused, width = read
    if how == DIRECT and sizes[where] == width:
        return int(U64(buf, offsets[where])[0] - FILETIME_UNIX_OFFSET) // 10
    if how == CONST:
        return None
    return _field_time(buf, spec, offsets, sizes, types)
