"""Templates to plans, and element trees to events.

A template body evaluated symbolically (:mod:`evtrack.sources.binxml.tree`) becomes a :class:`Plan`: which
substitution holds EventID, TimeCreated/@SystemTime, EventRecordID, Channel, Computer, Provider/@Name, and the
read plan's payload keys (:attr:`~evtrack.sources.base.ReadPlan.payload_keys`) of the ``EventData/Data[@Name]`` or
``UserData/*/*`` payload: a template's plan depends on those keys, and is cached with them. Per
template and sequence of substitution types, a :class:`Shape` (and a :class:`PayloadShape`) says how each field
reads: a constant, a direct ``struct`` read, a cached UTF-16 or SID text, or the generic decoder.

Format: libevtx's "Windows XML Event Log (EVTX) format",
https://github.com/libyal/libevtx/blob/main/documentation/Windows%20XML%20Event%20Log%20(EVTX).asciidoc,
sections "Binary XML" > "Template instance", "Template definition", "Template instance data" and "Value types".
"""

from __future__ import annotations

from typing import Any, TypeAlias

from evtrack.sources.base import RawEvent, ReadPlan
from evtrack.sources.binxml.tree import Element, Part, Sub
from evtrack.sources.binxml.values import (
    FIXED_SIZES,
    INT_TYPES,
    T_ANSI,
    T_BINXML,
    T_FILETIME,
    T_NULL,
    T_SID,
    T_SYSTIME,
    T_WSTRING,
    Corrupt,
    Unsupported,
)
from evtrack.sources.python_evtx.slim import SLIM_KEYS
from evtrack.sources.xmlfile import parse_system_time


def _find(element: Element, name: str) -> Element | None:
    for child in element.elements():
        if child.name == name:
            return child
    return None


def _resolved(parts: list[Part]) -> str | None:
    """The text of fully resolved parts (no slots), None when there is none (as pyevtx-rs gives null)."""
    if not parts:
        return None
    return "".join(part for part in parts if isinstance(part, str))


def payload_from_tree(event: Element, keys: frozenset[str]) -> dict[str, str | None]:
    """The payload fields named in ``keys`` of an evaluated event."""
    data: dict[str, str | None] = {}
    event_data = _find(event, "EventData")
    if event_data is not None:
        for item in event_data.elements():
            if item.name == "Data" and "Name" in item.attrs:
                name = _resolved(item.attrs["Name"]) or ""
                if name in keys:
                    data[name] = _resolved(item.parts())
        return data
    user_data = _find(event, "UserData")
    if user_data is not None:
        for payload in user_data.elements():
            for item in payload.elements():
                if item.name in keys:
                    data[item.name] = _resolved(item.parts()) or None  # pyevtx-rs: an empty element is null
            break
    return data


def event_from_tree(nodes: list[Element | Part], plan: ReadPlan) -> RawEvent:
    """An evaluated record as a :class:`RawEvent`; its payload only when ``plan`` wants its event id."""
    event = next((node for node in nodes if isinstance(node, Element) and node.name == "Event"), None)
    if event is None:
        raise Unsupported("no Event element")
    system = _find(event, "System") or Element("System")

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
        data=payload_from_tree(event, plan.payload_keys) if event_id in plan.wanted_ids else {},
    )


#: How a field is found: ("lit", text-or-None) or ("sub", index).
Spec = tuple[str, Any]


def _spec(parts: list[Part] | None) -> Spec:
    if not parts:
        return ("lit", None)
    if len(parts) == 1:
        part = parts[0]
        return ("sub", part.index) if isinstance(part, Sub) else ("lit", part)
    if all(isinstance(part, str) for part in parts):
        return ("lit", "".join(part for part in parts if isinstance(part, str)))
    raise Unsupported("field mixes text and substitutions")


class Plan:
    """What one template needs per record: where each System field and payload value sits (the payload values of
    ``keys``, a read plan's payload keys)."""

    __slots__ = (
        "channel", "computer", "event_id", "payload", "payload_parent", "payload_sub", "provider", "record_id",
        "shapes", "time",
    )  # fmt: skip

    def __init__(self, root: list[Element | Part], keys: frozenset[str]) -> None:
        events = [node for node in root if isinstance(node, Element)]
        if len(events) != 1 or events[0].name != "Event":
            raise Unsupported("template root is not one Event element")
        event = events[0]
        system = _find(event, "System")
        if system is None:
            raise Unsupported("template without System")

        def field(name: str, attribute: str | None = None) -> Spec:
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
            raise Unsupported("template without EventID")
        self.payload = PayloadPlan(event, keys)
        self.shapes: dict[tuple[int, ...], Shape] = {}


class PayloadPlan:
    """Where an event's payload values sit: the ``EventData/Data[@Name]`` or ``UserData/*/*`` fields named in
    ``keys``, plus at most one substitution holding a nested BinXML payload (``parent`` says under which element
    it sits)."""

    __slots__ = ("fields", "parent", "shapes", "sub")

    def __init__(self, event: Element, keys: frozenset[str]) -> None:
        #: (key, where its value is, whether an empty value reads as null: UserData elements, not EventData/Data)
        self.fields: list[tuple[str, Spec, bool]] = []
        self.shapes: dict[tuple[int, ...], PayloadShape] = {}
        self.sub: int | None = None
        self.parent = "Event"
        for part in event.children:
            if isinstance(part, Sub):
                self._dynamic(part, "Event")
        event_data = _find(event, "EventData")
        user_data = _find(event, "UserData")
        if event_data is not None:
            for item in event_data.children:
                if isinstance(item, Element):
                    if item.name == "Data" and "Name" in item.attrs:
                        name = _spec(item.attrs["Name"])
                        if name[0] != "lit":
                            raise Unsupported("Data Name is a substitution")
                        if (name[1] or "") in keys:
                            self.fields.append((name[1] or "", _spec(item.parts()), False))
                elif isinstance(item, Sub):
                    self._dynamic(item, "EventData")
        elif user_data is not None:
            for item in user_data.children:
                if isinstance(item, Sub):
                    self._dynamic(item, "UserData")
                    break
                if isinstance(item, Element):
                    for child in item.children:
                        if isinstance(child, Element):
                            if child.name in keys:
                                self.fields.append((child.name, _spec(child.parts()), True))
                        elif isinstance(child, Sub):
                            raise Unsupported("substitution inside the UserData payload element")
                    break

    def _dynamic(self, sub: Sub, parent: str) -> None:
        if self.sub is not None:
            raise Unsupported("several dynamic payload substitutions")
        self.sub = sub.index
        self.parent = parent


def wrap(nodes: list[Element | Part], parent: str) -> Element:
    """Put a nested payload's nodes where they sit in the event: under Event, EventData or UserData."""
    wrapper = Element(parent)
    wrapper.children.extend(nodes)
    if parent == "Event":
        return wrapper
    event = Element("Event")
    event.children.append(wrapper)
    return event


# How a shape reads one field of a record (see :class:`Shape`): a constant, a value read directly, or the
# generic path (the ``_field_*`` functions of :mod:`.fast`, with the template's spec).
CONST = 0
DIRECT = 1
GENERIC = 2
SID = 3
INT = 4
#: How a payload value reads: (key, how, where, whether an empty value is null, the layout of an integer).
FieldPlan: TypeAlias = tuple[str, int, Any, bool, Any]
#: Value types whose text :func:`value_text` gives for any size without raising, and the fixed-size types it
#: gives for any size of at least their width (a slim read only skips a record whose full payload would decode).
_SAFE_TYPES = frozenset({T_NULL, T_WSTRING, T_ANSI, 0x0E, 0x13})
_SAFE_FIXED = {vtype: FIXED_SIZES[vtype] for vtype in (*INT_TYPES, 0x0B, 0x0C, 0x0D, 0x0F, 0x14, 0x15)}
FieldRead: TypeAlias = tuple[int, Any, Any, int]


def _int_read(spec: Spec, types: tuple[int, ...]) -> FieldRead:
    if spec[0] == "sub":
        index: int = spec[1]
        if index >= len(types):
            return (CONST, None, None, 0)
        layout = INT_TYPES.get(types[index])
        if layout is not None:
            return (DIRECT, index, layout.unpack_from, layout.size)  # direct when the value is wide enough
    return (GENERIC, spec, None, 0)


def _time_read(spec: Spec, types: tuple[int, ...]) -> FieldRead:
    if spec[0] == "sub":
        index: int = spec[1]
        if index >= len(types):
            return (CONST, None, None, 0)
        if types[index] == T_FILETIME:
            return (DIRECT, index, None, 8)  # direct when the value is exactly 8 bytes
    return (GENERIC, spec, None, 0)


def _text_read(spec: Spec, types: tuple[int, ...]) -> FieldRead:
    if spec[0] == "lit":
        return (CONST, spec[1], None, 0)
    index: int = spec[1]
    if index >= len(types):
        return (CONST, None, None, 0)
    if types[index] == T_WSTRING:
        return (DIRECT, index, None, 0)  # decoded through the chunk's text cache
    return (GENERIC, spec, None, 0)


class Shape:
    """What a template's plan needs for records whose substitution types are ``types`` (built once per template
    and type sequence in a chunk): which values to check, and how each System field is read."""

    __slots__ = (
        "binxml", "channel", "computer", "event_id", "payload", "provider", "record_id", "simple", "time", "times",
    )  # fmt: skip

    def __init__(self, plan: Plan, types: tuple[int, ...]) -> None:
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
        self.payload: PayloadShape | None = None
        """The shape of the plan's payload for these types (set on first use)."""
        self.simple = all(
            read[0] != GENERIC for read in (self.time, self.record_id, self.channel, self.computer, self.provider)
        )


class PayloadShape:
    """How a payload plan's fields read for records whose substitution types are ``types``.

    ``fields`` holds (key, how, where, whether an empty value is null, integer layout) with ``how`` one of:
    ``CONST`` (``where`` is the text), or, ``where`` being the value's index: ``DIRECT`` (a UTF-16 string),
    ``SID``, ``INT`` (an integer type, with its layout), ``GENERIC`` (any value :func:`value_text` decodes).
    ``partial`` is the same for the keys a slim read decides on, and ``safe`` tells whether the other fields are
    sure to decode (given ``sized``: values that must be empty or at least that wide), so that a record can be
    skipped on those keys alone."""

    __slots__ = ("fields", "partial", "safe", "sized")

    def __init__(self, plan: PayloadPlan, types: tuple[int, ...]) -> None:
        count = len(types)
        fields: list[FieldPlan] = []
        sized: list[tuple[int, int]] = []
        safe = True
        for name, spec, empty_is_null in plan.fields:
            if spec[0] != "sub":
                fields.append((name, CONST, spec[1], empty_is_null, None))
                continue
            index: int = spec[1]
            if index >= count:
                fields.append((name, CONST, None, empty_is_null, None))
                continue
            vtype = types[index]
            layout = INT_TYPES.get(vtype)
            how = DIRECT if vtype == T_WSTRING else SID if vtype == T_SID else INT if layout else GENERIC
            fields.append((name, how, index, empty_is_null, layout))
            if vtype in _SAFE_FIXED:
                sized.append((index, _SAFE_FIXED[vtype]))
            elif vtype not in _SAFE_TYPES:
                safe = False
        self.fields = tuple(fields)
        self.partial = tuple(field for field in fields if field[0] in SLIM_KEYS)
        self.sized = tuple(sized)
        self.safe = safe


def add_shape(plan: Plan, types: tuple[int, ...]) -> Shape:
    shape = plan.shapes[types] = Shape(plan, types)
    return shape


def add_payload_shape(plan: PayloadPlan, types: tuple[int, ...]) -> PayloadShape:
    shape = plan.shapes[types] = PayloadShape(plan, types)
    return shape


#: EventID is a UInt16; EventRecordID a UInt64 that Windows keeps far below 2**63 (the event table stores int64).
_MAX_EVENT_ID = 0xFFFF
_MAX_RECORD_ID = (1 << 63) - 1


def checked(event: RawEvent) -> RawEvent:
    """The event, if its EventID and EventRecordID fit their columns; raises Corrupt otherwise."""
    if not 0 <= event.event_id <= _MAX_EVENT_ID:
        raise Corrupt(f"EventID {event.event_id} out of range")
    if event.record_id is not None and not 0 <= event.record_id <= _MAX_RECORD_ID:
        raise Corrupt(f"EventRecordID {event.record_id} out of range")
    return event
