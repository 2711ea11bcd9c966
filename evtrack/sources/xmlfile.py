"""XML event exports, and the one place that turns an ``<Event>`` element into a :class:`RawEvent`.

Two shapes are read, told apart by content: ``wevtutil qe LOG /f:xml`` (a stream of ``<Event>`` elements with
no root) and Event Viewer's "Save All Events As... XML" (an ``<Events>`` root). Parsing goes through defusedxml:
no DTD, no entity expansion, no external entities; depth is bounded.

The python-evtx engine renders records it cannot decode quickly to XML and hands them to :func:`event_from_xml`,
so both input kinds and both engines share one XML-to-event mapping.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, fromstring

from evtrack.errors import SourceError
from evtrack.sources.base import FileStats, InputKind, RawEvent

_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?\s*(Z|[+-]\d{2}:?\d{2})?$"
)
_XML_DECL_RE = re.compile(r"^\s*<\?xml[^>]*\?>", re.DOTALL)
#: Deeper nesting than any real event (Event/EventData/Data is depth 3; UserData payloads reach 5 or 6).
MAX_DEPTH = 64
_READ_SIZE = 1 << 20


def parse_system_time(text: str | None) -> int | None:
    """``TimeCreated/@SystemTime`` to microseconds since the Unix epoch, truncating sub-microsecond digits.

    Accepts the forms Windows and the parsers write: ``2021-02-12T12:33:07.4694964Z`` (7 digits),
    ``...07.469496Z``, no fraction, a numeric offset, or none (taken as UTC). Returns None when it is not a time.
    """
    if not text:
        return None
    match = _TIME_RE.match(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = (match.group(7) or "").ljust(6, "0")[:6]
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError:
        return None
    offset = match.group(8)
    shift = 0
    if offset and offset != "Z":
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        shift = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    seconds = int((moment - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds()) - shift
    return seconds * 1_000_000 + int(fraction)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _text(element: Element) -> str | None:
    text = "".join(element.itertext())
    return text if text != "" else None


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        return None


def event_from_element(event: Element) -> RawEvent:
    """Map one ``<Event>`` element (any namespace) to a :class:`RawEvent`."""
    event_id = 0
    record_id: int | None = None
    time_us: int | None = None
    channel = computer = provider = ""
    data: dict[str, str | None] = {}
    for part in event:
        name = _local(part.tag)
        if name == "System":
            for item in part:
                field = _local(item.tag)
                if field == "EventID":
                    event_id = _int(_text(item)) or 0
                elif field == "EventRecordID":
                    record_id = _int(_text(item))
                elif field == "TimeCreated":
                    time_us = parse_system_time(item.get("SystemTime"))
                elif field == "Channel":
                    channel = _text(item) or ""
                elif field == "Computer":
                    computer = _text(item) or ""
                elif field == "Provider":
                    provider = item.get("Name") or ""
        elif name == "EventData":
            for index, item in enumerate(part):
                if _local(item.tag) == "Data":
                    data[item.get("Name") or f"Data{index + 1}"] = _text(item)
        elif name == "UserData":
            for payload in part:
                for item in payload:
                    data[_local(item.tag)] = _text(item)
                break
    return RawEvent(time_us, event_id, record_id, channel, computer, provider, data)


def event_from_xml(xml: str) -> RawEvent:
    """Parse one rendered ``<Event>`` (as python-evtx renders it) into a :class:`RawEvent`."""
    return event_from_element(fromstring(xml, forbid_dtd=True))


class _EventCollector:
    """A TreeBuilder-like parser target that builds each ``<Event>`` subtree and hands it out when closed."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stack: list[Element] = []
        self.ready: list[Element] = []

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        if len(self._stack) >= MAX_DEPTH:
            raise SourceError(self._path, f"XML nested deeper than {MAX_DEPTH} levels")
        if self._stack or _local(tag) == "Event":
            element = Element(tag, attrs)
            if self._stack:
                self._stack[-1].append(element)
            self._stack.append(element)

    def end(self, tag: str) -> None:
        if self._stack:
            element = self._stack.pop()
            if not self._stack:
                self.ready.append(element)

    def data(self, text: str) -> None:
        if self._stack:
            element = self._stack[-1]
            if len(element):
                last = element[-1]
                last.tail = (last.tail or "") + text
            else:
                element.text = (element.text or "") + text

    def close(self) -> None:
        return None


_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _encoding(raw: bytes) -> str:
    """The text encoding, from a BOM (wevtutil redirected by PowerShell writes UTF-16) or the first bytes."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return encoding
    if raw[:2] == b"<\x00":
        return "utf-16-le"
    return "utf-8"


def looks_like_xml_events(head: bytes) -> bool:
    """True when ``head`` (the first bytes of a file) starts like an XML event export."""
    encoding = _encoding(head)
    try:
        text = head.decode(encoding, errors="ignore").lstrip("\ufeff").lstrip()
    except LookupError:
        return False
    text = _XML_DECL_RE.sub("", text).lstrip()
    return text.startswith(("<Event", "<!DOCTYPE"))


def read_xml(path: Path, stats: FileStats, *, verify_checksums: bool = True) -> Iterator[RawEvent]:
    """Stream the events of an XML export. A malformed document stops the file with a counted issue."""
    del verify_checksums  # XML has no checksums
    stats.kind = InputKind.XML
    stats.engine = "xml"
    collector = _EventCollector(path)
    parser: Any = DefusedXMLParser(target=collector, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
            encoding = _encoding(head)
            handle.seek(0)
            decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
            started = False
            while True:
                raw = handle.read(_READ_SIZE)
                text = decoder.decode(raw, final=not raw)
                if not started:
                    text = text.lstrip("\ufeff")
                    stripped = _XML_DECL_RE.sub("", text, count=1)
                    if stripped != text or text.strip():
                        started = True
                        if stripped.lstrip().startswith("<!DOCTYPE"):
                            stats.add_issue("file", "refused XML: a DTD (document type declaration) is not allowed "
                                            "in an event export; entity expansion is never performed", 0)
                            return
                        text = "<evtrack-root>" + stripped
                if text:
                    parser.feed(text)
                for element in collector.ready:
                    event = event_from_element(element)
                    stats.records += 1
                    stats.per_channel[event.channel] += 1
                    yield event
                collector.ready.clear()
                if not raw:
                    break
            if started:
                parser.feed("</evtrack-root>")
                parser.close()
    except DefusedXmlException as exc:
        stats.add_issue("file", f"refused XML: {type(exc).__name__} (DTDs and entities are not allowed)", 0)
    except SyntaxError as exc:  # xml.etree.ElementTree.ParseError
        stats.add_issue("file", f"malformed XML: {exc}", 0)
    except UnicodeDecodeError as exc:
        stats.add_issue("file", f"not {encoding} text: {exc.reason} at byte {exc.start}", 0)
