"""The same records as XML, in the shape Windows writes them: ``wevtutil qe LOG /f:xml`` (one ``<Event>`` after
another, no root, attributes in single quotes) or an ``<Events>`` root, optionally with the ``RenderingInfo`` a WEF
subscription in RenderedText format (or ``wevtutil qe /f:RenderedXml``) adds after the payload.

One :class:`~evtrack.synth.evtx_writer.EventSpec` renders here exactly as :class:`~evtrack.synth.EvtxWriter`
writes it into an .evtx, so one record list gives both inputs. Values render as Windows renders them: numbers in
decimal, HexInt and SizeT as lower-case ``0x...``, GUIDs upper case in braces, ``TimeCreated`` with nine
fraction digits (``2018-08-16T10:51:11.995276700Z``, as ``ToXml()`` gives it), a Null value as an empty element.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from xml.sax.saxutils import escape

from evtrack.synth.binxml import VT, Value, to_filetime
from evtrack.synth.evtx_writer import EVENT_NS, EventSpec

_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=timezone.utc)
#: Characters Windows writes as character references in text (the rendered message keeps its line breaks).
_TEXT_ENTITIES = {"\r": "&#13;", "\n": "&#10;", "\t": "&#9;"}
_ATTR_ENTITIES = {"'": "&apos;", '"': "&quot;"}


@dataclass(frozen=True)
class Rendering:
    """What ``RenderingInfo`` says: the event rendered on the machine that forwarded it, in its language.

    evtrack must never read it (it is localised, and a subscription may leave it out)."""

    message: str
    level: str = "Information"
    task: str = ""
    opcode: str = "Info"
    channel: str = ""
    provider: str = ""
    keywords: tuple[str, ...] = ()
    culture: str = "en-US"


def _text(value: str) -> str:
    out = escape(value)
    for char, ref in _TEXT_ENTITIES.items():
        out = out.replace(char, ref)
    return out


def _attr(value: str) -> str:
    return escape(value, _ATTR_ENTITIES)


def system_time(value: datetime | int) -> str:
    """``TimeCreated/@SystemTime`` as Windows renders it: UTC, 100 ns digits plus ``00``, ``Z``."""
    ticks = to_filetime(value)
    seconds, rest = divmod(ticks, 10_000_000)
    moment = _FILETIME_EPOCH + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{rest:07d}00Z"


def _guid(text: str) -> str:
    return "{" + text.strip("{}").upper() + "}"


def render_value(vtype: VT, value: Value) -> str:
    """One substitution value as text (None: empty)."""
    if value is None:
        return ""
    if vtype in (VT.HEXINT32, VT.HEXINT64, VT.SIZET):
        assert isinstance(value, int)
        return f"0x{value:x}"
    if vtype == VT.GUID:
        assert isinstance(value, str)
        return _guid(value)
    if vtype == VT.FILETIME:
        assert isinstance(value, (int, datetime))
        return system_time(value)
    if vtype == VT.SYSTEMTIME:
        assert isinstance(value, datetime)
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "000000Z"
    if vtype == VT.BOOL:
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.hex().upper()
    return str(value)


def _element(name: str, text: str) -> str:
    return f"<{name}>{_text(text)}</{name}>"


def _rendering_xml(rendering: Rendering) -> str:
    keywords = "".join(_element("Keyword", k) for k in rendering.keywords)
    return (f"<RenderingInfo Culture='{_attr(rendering.culture)}'>{_element('Message', rendering.message)}"
            f"{_element('Level', rendering.level)}{_element('Task', rendering.task)}"
            f"{_element('Opcode', rendering.opcode)}{_element('Channel', rendering.channel)}"
            f"{_element('Provider', rendering.provider)}<Keywords>{keywords}</Keywords></RenderingInfo>")


def event_xml(spec: EventSpec, rendering: Rendering | None = None) -> str:
    """One record as ``wevtutil qe /f:xml`` writes it (with ``RenderingInfo`` when given)."""
    etype = spec.etype
    provider = etype.provider
    qualifiers = f" Qualifiers='{etype.qualifiers}'" if etype.qualifiers is not None else ""
    correlation = f"<Correlation ActivityID='{_guid(spec.activity_id)}'/>" if spec.activity_id else "<Correlation/>"
    security = f"<Security UserID='{_attr(spec.user_sid)}'/>" if spec.user_sid else "<Security/>"
    system = (
        f"<System><Provider Name='{_attr(provider.name)}' Guid='{_guid(provider.guid)}'/>"
        f"<EventID{qualifiers}>{etype.event_id}</EventID><Version>{etype.version}</Version>"
        f"<Level>{etype.level}</Level><Task>{etype.task}</Task><Opcode>{etype.opcode}</Opcode>"
        f"<Keywords>0x{etype.keywords:x}</Keywords><TimeCreated SystemTime='{system_time(spec.time)}'/>"
        f"<EventRecordID>{spec.record_id}</EventRecordID>{correlation}"
        f"<Execution ProcessID='{spec.process_id}' ThreadID='{spec.thread_id}'/>"
        f"{_element('Channel', etype.channel)}{_element('Computer', spec.computer)}{security}</System>"
    )
    if len(spec.values) != len(etype.fields):
        raise ValueError(f"event {etype.event_id}: {len(spec.values)} values for {len(etype.fields)} fields")
    pairs = [(name, render_value(vtype, value)) for (name, vtype), value in zip(etype.fields, spec.values, strict=True)]
    if etype.payload == "EventData":
        payload = "<EventData>" + "".join(f"<Data Name='{_attr(n)}'>{_text(v)}</Data>" for n, v in pairs) + \
            "</EventData>"
    else:
        children = "".join(_element(n, v) for n, v in pairs)
        payload = (f"<UserData><{etype.userdata_name} xmlns='{_attr(etype.userdata_ns)}'>{children}"
                   f"</{etype.userdata_name}></UserData>")
    rendered = _rendering_xml(rendering) if rendering is not None else ""
    return f"<Event xmlns='{EVENT_NS}'>{system}{payload}{rendered}</Event>"


def write_xml(path: Path | str, records: Iterable[EventSpec | tuple[EventSpec, Rendering | None]], *,
              root: bool = False) -> Path:
    """Write records as one XML export: a ``wevtutil qe`` stream (no root, no declaration), or with ``root`` an
    ``<Events>`` document. A record is an EventSpec, or (EventSpec, its RenderingInfo)."""
    parts = []
    for record in records:
        spec, rendering = record if isinstance(record, tuple) else (record, None)
        parts.append(event_xml(spec, rendering))
    body = "".join(parts)
    text = f'<?xml version="1.0" encoding="utf-8"?><Events>{body}</Events>' if root else body
    target = Path(path)
    target.write_text(text, encoding="utf-8")
    return target
