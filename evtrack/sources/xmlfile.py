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
from collections.abc import Generator, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, fromstring

from evtrack.errors import SourceError
from evtrack.sources.base import FileStats, InputKind, RawEvent, Reader, ReadPlan

_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?\s*(Z|[+-]\d{2}:?\d{2})?$"
)
_XML_DECL_RE = re.compile(r"^\s*<\?xml[^>]*\?>", re.DOTALL)
#: Deeper nesting than any real event (Event/EventData/Data is depth 3; UserData payloads reach 5 or 6).
MAX_DEPTH = 64
#: Characters (text, attribute values, names) one ``<Event>`` may hold. An .evtx record is at most 64 KiB, so a
#: real event renders to far less; a larger one is skipped (and counted) instead of held in memory.
MAX_EVENT_CHARS = 1 << 20
_READ_SIZE = 1 << 20
#: Reads (of :data:`_READ_SIZE`) the parser may take without reporting anything: a single tag, attribute or
#: comment that long is refused (expat 2.5 rescans an unfinished token on every read: quadratic time).
_MAX_SILENT_READS = 16
#: EventID is a UInt16; EventRecordID a UInt64 that Windows keeps far below 2**63 (the table stores int64).
_MAX_EVENT_ID = 0xFFFF
_MAX_RECORD_ID = (1 << 63) - 1


_DAY_CACHE: dict[str, int] = {}
_MINUTE_CACHE: dict[str, int] = {}


def _minute(text: str) -> int | None:
    """The minute of a ``YYYY-MM-DDTHH:MM`` prefix in microseconds, its day parsed once (None: not a time)."""
    day = _DAY_CACHE.get(text[:10])
    if day is None:
        day = _parse_system_time(text[:10] + "T00:00:00Z")
        if day is None:
            return None
        if len(_DAY_CACHE) > 100_000:
            _DAY_CACHE.clear()
        _DAY_CACHE[text[:10]] = day
    hour, minute = text[11:13], text[14:16]
    if text[13] != ":" or not (hour.isdecimal() and minute.isdecimal() and hour < "24" and minute < "60"):
        return None
    return day + (int(hour) * 60 + int(minute)) * 60_000_000


def parse_system_time(text: str | None) -> int | None:
    """Fast path for the form pyevtx-rs and Windows write (``2021-02-12T12:33:07.469496Z``), its minute worked
    out once and remembered; anything else goes to the full parser."""
    if (text is not None and len(text) == 27 and text[10] == "T" and text[16] == ":" and text[19] == "."
            and text[26] == "Z"):
        minute = _MINUTE_CACHE.get(text[:16])
        if minute is None:
            minute = _minute(text)
            if minute is None:
                return _parse_system_time(text)
            if len(_MINUTE_CACHE) > 16_384:  # eleven days of minutes, ~2 MB; logs mostly run in order
                _MINUTE_CACHE.clear()
            _MINUTE_CACHE[text[:16]] = minute
        seconds, micro = text[17:19], text[20:26]
        if seconds.isdecimal() and micro.isdecimal() and seconds < "60":
            return minute + int(seconds) * 1_000_000 + int(micro)
    return _parse_system_time(text)


def _parse_system_time(text: str | None) -> int | None:
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


def event_from_element(event: Element, plan: ReadPlan | None = None) -> RawEvent:
    """Map one ``<Event>`` element (any namespace) to a :class:`RawEvent`: with a ``plan``, its payload only when
    the plan wants its event id, and only the plan's payload keys (as the .evtx engines give it); without one, the
    whole payload.

    Raises ValueError when EventID or EventRecordID is outside its type's range (the event is corrupt)."""
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
                    if not 0 <= event_id <= _MAX_EVENT_ID:
                        raise ValueError(f"EventID {event_id} out of range")
                elif field == "EventRecordID":
                    record_id = _int(_text(item))
                    if record_id is not None and not 0 <= record_id <= _MAX_RECORD_ID:
                        raise ValueError(f"EventRecordID {record_id} out of range")
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
    if plan is not None:
        keys = plan.payload_keys
        data = {k: v for k, v in data.items() if k in keys} if event_id in plan.wanted_ids else {}
    return RawEvent(time_us, event_id, record_id, channel, computer, provider, data)


def event_from_xml(xml: str, plan: ReadPlan | None = None) -> RawEvent:
    """Parse one rendered ``<Event>`` (as python-evtx renders it) into a :class:`RawEvent` (see
    :func:`event_from_element` for ``plan``)."""
    return event_from_element(fromstring(xml, forbid_dtd=True), plan)


class _TooDeep(Exception):
    """Elements nested deeper than :data:`MAX_DEPTH`: the document is refused from there on."""


class _EventCollector:
    """A TreeBuilder-like parser target that builds each ``<Event>`` subtree and hands it out when closed.

    Bounded: nesting deeper than :data:`MAX_DEPTH` stops the document; an event holding more than
    :data:`MAX_EVENT_CHARS` characters is dropped (and counted in :attr:`oversized`) while it streams past. Text
    arrives in many small pieces (expat splits it at every line and entity), so pieces are joined once per
    element, never concatenated one by one (quadratic).
    """

    def __init__(self) -> None:
        self._depth = 0
        self._stack: list[Element] = []
        self._pieces: list[str] = []
        self._event_chars = 0
        self._discarding = False
        self._event_depth = 0
        self.events = 0
        """``<Event>`` elements opened so far."""
        self.closed = 0
        """``<Event>`` elements closed so far (built, or dropped for their size)."""
        self.callbacks = 0
        self.ready: list[Element] = []
        self.oversized: list[int] = []
        """The numbers (1-based, in file order) of events dropped for their size, not yet reported."""

    def _flush_text(self) -> None:
        if self._pieces:
            text = "".join(self._pieces)
            self._pieces.clear()
            element = self._stack[-1]
            if len(element):
                last = element[-1]
                last.tail = (last.tail or "") + text
            else:
                element.text = (element.text or "") + text

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        self.callbacks += 1
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _TooDeep
        if not self._stack and not self._discarding:
            if _local(tag) != "Event":
                return
            self.events += 1
            self._event_chars = 0
        elif self._discarding:
            return
        self._event_chars += len(tag) + sum(len(k) + len(v) for k, v in attrs.items())
        if self._event_chars > MAX_EVENT_CHARS:
            self._discard(self._depth - len(self._stack))
            return
        if self._stack:
            self._flush_text()
        element = Element(tag, attrs)
        if self._stack:
            self._stack[-1].append(element)
        self._stack.append(element)

    def _discard(self, event_depth: int) -> None:
        """Drop the event being built (its ``<Event>`` is at ``event_depth``); skip everything up to its end tag."""
        self._discarding = True
        self._event_depth = event_depth
        self._stack.clear()
        self._pieces.clear()
        self.oversized.append(self.events)

    def end(self, tag: str) -> None:
        self.callbacks += 1
        self._depth -= 1
        if self._discarding:
            if self._depth < self._event_depth:
                self._discarding = False
                self.closed += 1
            return
        if self._stack:
            self._flush_text()
            element = self._stack.pop()
            if not self._stack:
                self.ready.append(element)
                self.closed += 1

    def data(self, text: str) -> None:
        self.callbacks += 1
        if self._stack:
            self._event_chars += len(text)
            if self._event_chars > MAX_EVENT_CHARS:
                self._discard(self._depth - len(self._stack) + 1)
                return
            self._pieces.append(text)

    def close(self) -> None:
        return None


#: The encoding of the bytes after a BOM, for decoding a piece on its own.
_PLAIN = {"utf-8-sig": "utf-8", "utf-16": "utf-16-le"}
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


def _events(collector: _EventCollector, stats: FileStats, plan: ReadPlan) -> Iterator[RawEvent]:
    """The events the collector has completed since the last call; oversized and corrupt ones become issues."""
    for number in collector.oversized:
        stats.add_issue(f"event {number}", f"event larger than {MAX_EVENT_CHARS} characters: skipped", 1)
    collector.oversized.clear()
    ready = list(collector.ready)
    collector.ready.clear()
    for element in ready:
        try:
            event = event_from_element(element, plan)
        except ValueError as exc:
            record = element.find("{*}System/{*}EventRecordID")
            where = f"record {record.text}" if record is not None and (record.text or "").isdigit() else "event"
            stats.add_issue(where[:40], f"corrupt event: {exc}", 1)
            continue
        stats.records += 1
        stats.per_channel[event.channel] += 1
        yield event


def read_xml(path: Path, stats: FileStats, *, plan: ReadPlan, verify_checksums: bool = True) -> Iterator[RawEvent]:
    """Stream the events of an XML export, each with the payload ``plan`` asks for (see
    :func:`event_from_element`). Where the document turns malformed, the events after the one it broke in are read
    one by one (:func:`_event_by_event`): the malformed event is a counted issue, the good ones are kept; a
    document that declares a DTD, or breaks where no whole event follows (a file cut short), stops the file with a
    counted issue."""
    del verify_checksums  # XML has no checksums
    stats.kind = InputKind.XML
    stats.engine = "xml"
    collector = _EventCollector()
    encoding = "utf-8"
    parser: Any = DefusedXMLParser(target=collector, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise SourceError(path, f"cannot open: {exc.strerror or exc}") from exc
    at: int | None = None
    try:
        with handle:
            head = handle.read(4)
            encoding = _encoding(head)
            handle.seek(0)
            decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
            started = False
            silent_reads = 0
            fed = 0
            while True:
                raw = handle.read(_READ_SIZE)
                fed += len(raw)
                undecodable: UnicodeDecodeError | None = None
                try:
                    text = decoder.decode(raw, final=not raw)
                except UnicodeDecodeError as exc:  # parse what comes before the bad bytes, then stop
                    undecodable = exc
                    at = fed - len(exc.object) + exc.start  # its offset in the file (the decoder held some back)
                    text = exc.object[: exc.start].decode(_PLAIN.get(encoding, encoding), errors="ignore")
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
                    callbacks = collector.callbacks
                    parser.feed(text)
                    silent_reads = silent_reads + 1 if collector.callbacks == callbacks else 0
                    if silent_reads > _MAX_SILENT_READS:
                        stats.add_issue("file", "refused XML: a single tag, attribute or comment longer than "
                                        f"{_MAX_SILENT_READS * _READ_SIZE >> 20} MiB", 0)
                        return
                yield from _events(collector, stats, plan)
                if undecodable is not None:
                    raise undecodable
                if not raw:
                    break
            if started:
                parser.feed("</evtrack-root>")
                parser.close()
            yield from _events(collector, stats, plan)
    except (_TooDeep, DefusedXmlException, SyntaxError, UnicodeDecodeError, OSError) as exc:
        yield from _events(collector, stats, plan)  # the events completed before the damage
        if isinstance(exc, SyntaxError):  # (a refused DTD or entity is a DefusedXmlException, never this)
            # one malformed event (a bare &, a character XML forbids): the good events after it are read one by one
            resumed = yield from _event_by_event(path, encoding, collector.closed, stats, plan)
            if resumed:
                return
        damage = isinstance(exc, (SyntaxError, UnicodeDecodeError))  # what follows it is lost: one record at least
        stats.add_issue("file", _refusal(exc, encoding, at) + ("; what follows is lost" if damage else ""), int(damage))


_EVENT_START_RE = re.compile(r"<Event[\s>/]")
_EVENT_END = "</Event>"


def _event_by_event(path: Path, encoding: str, done: int, stats: FileStats, plan: ReadPlan
                    ) -> Generator[RawEvent, None, bool]:
    """After the document broke: the events after the first ``done`` ones, each parsed on its own (a malformed one
    is an issue, one record lost). Returns whether it found the broken event whole (else the file ends inside it:
    cut short, and the caller says so)."""
    number = 0
    found = False
    buffer = ""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        with path.open("rb") as handle:
            while True:
                raw = handle.read(_READ_SIZE)
                buffer += decoder.decode(raw, final=not raw)
                if "<!DOCTYPE" in buffer or "<!ENTITY" in buffer:
                    return False  # a document type declaration: the whole document is refused, never taken apart
                while True:
                    start = _EVENT_START_RE.search(buffer)
                    end = buffer.find(_EVENT_END, start.start()) if start else -1
                    if start is None or end < 0:
                        break
                    number += 1
                    following = _EVENT_START_RE.search(buffer, start.start() + 1, end)
                    if following is not None:  # this event was cut where the next one starts: it alone is lost
                        buffer = buffer[following.start() :]
                        if number > done:
                            found = True
                            stats.add_issue(f"event {number}", "cut short where the next event starts: event "
                                                               "skipped", 1)
                        continue
                    text, buffer = buffer[start.start() : end + len(_EVENT_END)], buffer[end + len(_EVENT_END) :]
                    if number <= done:
                        continue
                    found = True
                    yield from _one_event(text, number, stats, plan)
                if start is None:
                    buffer = buffer[-16:]  # no event starts here: keep only what may begin a start tag
                elif len(buffer) - start.start() > 2 * MAX_EVENT_CHARS:
                    buffer = buffer[start.start() + 1 :]  # an event that never ends: not one to read
                if not raw:
                    break
    except (OSError, UnicodeDecodeError):
        return False
    if found and _EVENT_START_RE.search(buffer):
        stats.add_issue("file", "the file ends inside an event: cut short; that event is lost", 1)
    return found


def _one_event(text: str, number: int, stats: FileStats, plan: ReadPlan) -> Iterator[RawEvent]:
    """One ``<Event>`` element's text, parsed on its own (the namespace it declares, the same limits)."""
    collector = _EventCollector()
    collector.events = collector.closed = number - 1
    parser: Any = DefusedXMLParser(target=collector, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    try:
        parser.feed(text)
        parser.close()
    except (_TooDeep, DefusedXmlException, SyntaxError) as exc:
        stats.add_issue(f"event {number}", f"{_refusal(exc, 'utf-8')}: event skipped", 1)
        return
    yield from _events(collector, stats, plan)


def _refusal(exc: Exception, encoding: str, at: int | None = None) -> str:
    """Why an XML document stops being read, for its issue (``at``: where undecodable bytes start in the file)."""
    if isinstance(exc, _TooDeep):
        return f"refused XML: elements nested deeper than {MAX_DEPTH} levels"
    if isinstance(exc, DefusedXmlException):
        return f"refused XML: {type(exc).__name__} (DTDs and entities are not allowed)"
    if isinstance(exc, UnicodeDecodeError):
        return f"not {encoding} text: {exc.reason} at byte {exc.start if at is None else at:,}"
    if isinstance(exc, SyntaxError):  # xml.etree.ElementTree.ParseError
        return f"malformed XML: {exc}"
    return f"cannot read: {getattr(exc, 'strerror', None) or exc}"


#: XML exports as :mod:`evtrack.reading` reads them: no capability beyond the basic contract.
READER = Reader("xml", read_xml)
