"""The default engine: the Rust-backed ``evtx`` package (pyevtx-rs).

Quirks pinned here (and by tests):
- its iterator raises once per bad chunk or record and can be resumed with ``next()``: a plain ``for`` loop
  would stop at the first error;
- ``record["event_record_id"]`` and ``record["timestamp"]`` are the record header's, which exported logs
  renumber: we read ``System/EventRecordID`` and ``System/TimeCreated`` from the JSON instead;
- chunk checksums are verified unless the caller opts out; a failing chunk is reported, not trusted.

Speed: building one Python string per record is the cost, so the System fields every record needs (for
coverage) are taken with one regular expression on the compact JSON, and ``json.loads`` runs only for the
event ids evtrack decodes.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evtrack.coverage import CoverageBuilder
from evtrack.errors import SourceError
from evtrack.sources.base import PAYLOAD_KEYS, WANTED_EVENT_IDS, FileStats, InputKind, RawEvent
from evtrack.sources.guard import REFUSED, MaskedFile, explosive_chunks
from evtrack.sources.xmlfile import parse_system_time

ENGINE = "evtx"

_SYSTEM_RE = re.compile(
    r'"EventID":(?:\{"#attributes":\{[^{}]*\},"#text":)?(\d+)'
    r'.*?"TimeCreated":\{"#attributes":\{"SystemTime":"([^"]*)"\}\}'
    r'.*?"EventRecordID":(\d+)'
    r'.*?"Channel":("(?:[^"\\]|\\.)*"|null)'
    r'.*?"Computer":("(?:[^"\\]|\\.)*"|null)',
    re.DOTALL,
)
_PROVIDER_RE = re.compile(r'"Provider":\{"#attributes":\{"Name":("(?:[^"\\]|\\.)*")')
_CHUNK_ERR_RE = re.compile(r"chunk number (\d+)")
_RECORD_ERR_RE = re.compile(r"record number (\d+)")
_MAX_CONSECUTIVE_ERRORS = 100_000

CHUNK_SIZE = 0x10000
FILE_HEADER_SIZE = 0x1000


def chunk_record_count(path: Path, chunk_index: int) -> int:
    """How many records a chunk's header says it holds (0 when its header is unreadable)."""
    try:
        with path.open("rb") as handle:
            handle.seek(FILE_HEADER_SIZE + chunk_index * CHUNK_SIZE)
            header = handle.read(40)
    except OSError:
        return 0
    if len(header) < 40 or header[:8] != b"ElfChnk\x00":
        return 0
    first, last = struct.unpack_from("<QQ", header, 8)
    return int(last - first + 1) if 0 <= last - first < CHUNK_SIZE else 0


def _value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, dict):
        return _value(value.get("#text"))
    if isinstance(value, list):
        return ",".join(v for v in (_value(item) for item in value) if v is not None)
    return str(value)


def _payload(event: dict[str, Any]) -> dict[str, str | None]:
    data: dict[str, str | None] = {}
    event_data = event.get("EventData")
    if isinstance(event_data, dict):
        for name, value in event_data.items():
            if name in PAYLOAD_KEYS:
                data[name] = value if type(value) is str else _value(value)
        return data
    user_data = event.get("UserData")
    if isinstance(user_data, dict):
        for name, payload in user_data.items():
            if name == "#attributes":
                continue
            if isinstance(payload, dict):
                for key, value in payload.items():
                    if key in PAYLOAD_KEYS:
                        data[key] = value if type(value) is str else _value(value)
            break
    return data


def _event_from_json(text: str) -> RawEvent:
    event: dict[str, Any] = json.loads(text).get("Event") or {}
    system: dict[str, Any] = event.get("System") or {}
    provider = ((system.get("Provider") or {}).get("#attributes") or {}).get("Name") or ""
    time_created = ((system.get("TimeCreated") or {}).get("#attributes") or {}).get("SystemTime")
    record_id = system.get("EventRecordID")
    return RawEvent(
        time_us=parse_system_time(time_created),
        event_id=int(_value(system.get("EventID")) or 0),
        record_id=int(record_id) if record_id is not None else None,
        channel=system.get("Channel") or "",
        computer=system.get("Computer") or "",
        provider=provider,
        data=_payload(event),
    )


def _json_string(token: str) -> str:
    """A JSON string token (or ``null``) from the regex, unescaped only when it needs to be."""
    if token == "null":
        return ""
    if "\\" in token:
        return str(json.loads(token))
    return token[1:-1]


def _event(text: str) -> RawEvent:
    match = _SYSTEM_RE.search(text)
    if match is None:
        return _event_from_json(text)
    event_id = int(match.group(1))
    if event_id in WANTED_EVENT_IDS:
        return _event_from_json(text)
    channel, computer = match.group(4), match.group(5)
    provider = _PROVIDER_RE.search(text)
    return RawEvent(
        time_us=parse_system_time(match.group(2)),
        event_id=event_id,
        record_id=int(match.group(3)),
        channel=_json_string(channel),
        computer=_json_string(computer),
        provider=_json_string(provider.group(1)) if provider else "",
    )


def _issue_from_error(path: Path, stats: FileStats, exc: BaseException) -> None:
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    chunk = _CHUNK_ERR_RE.search(message)
    record = _RECORD_ERR_RE.search(message)
    if record:
        stats.add_issue(f"record {record.group(1)}", message, 1)
    elif chunk:
        index = int(chunk.group(1))
        stats.add_issue(f"chunk {index}", message, chunk_record_count(path, index))
    else:
        stats.add_issue("record", message, 1)


_BLOCK = 8192
_OUT_OF_RANGE = "corrupt record: EventID above 65535 or EventRecordID beyond 2^63"


def _in_range(event_id: int, record_id: int | None) -> bool:
    return 0 <= event_id <= 0xFFFF and (record_id is None or 0 <= record_id < 1 << 63)


def _system_fields(text: str) -> tuple[int, str, str, str, str] | None:
    """(EventID, SystemTime, EventRecordID, Channel, Computer) found with ``str.find`` in compact pyevtx-rs JSON,
    or None when the record is not in the usual shape (the caller then parses it fully)."""
    i = text.find('"EventID":')
    if i < 0 or text.startswith("{", i + 10):
        return None
    j = text.find(",", i + 10)
    digits = text[i + 10 : j]
    if not digits.isdigit():
        return None
    t = text.find('"SystemTime":"', j)
    if t < 0:
        return None
    t_end = text.find('"', t + 14)
    e = text.find('"EventRecordID":', t_end)
    if e < 0:
        return None
    e_end = text.find(",", e + 16)
    record_id = text[e + 16 : e_end]
    c = text.find('"Channel":"', e_end)
    if c < 0:
        return None
    c_end = text.find('"', c + 11)
    h = text.find('"Computer":"', c_end)
    if h < 0:
        return None
    h_end = text.find('"', h + 12)
    channel, computer = text[c + 11 : c_end], text[h + 12 : h_end]
    if not record_id.isdigit() or "\\" in channel or "\\" in computer:
        return None
    return int(digits), text[t + 14 : t_end], record_id, channel, computer


_DECODER = json.JSONDecoder()
_PROVIDER_MARK = '"Provider":{"#attributes":{"Name":"'


def _wanted_event(text: str, fields: tuple[int, str, str, str, str]) -> RawEvent:
    """A wanted record, decoding only its payload (EventData or UserData) as JSON; the System fields are the
    ones already found. Falls back to decoding the whole record when the payload is not where expected."""
    event_id, time_text, record_id, channel, computer = fields
    start = text.find('"EventData":{')
    offset = 12
    if start < 0:
        start = text.find('"UserData":{')
        offset = 11
    if start < 0:
        return _event_from_json(text)
    payload, _ = _DECODER.raw_decode(text, start + offset)
    p = text.find(_PROVIDER_MARK)
    provider = text[p + len(_PROVIDER_MARK) : text.find('"', p + len(_PROVIDER_MARK))] if p >= 0 else ""
    if "\\" in provider:
        return _event_from_json(text)
    wrapped = {"EventData": payload} if offset == 12 else {"UserData": payload}
    return RawEvent(parse_system_time(time_text), event_id, int(record_id), channel, computer, provider,
                    _payload(wrapped))


class _Block:
    """System fields of up to _BLOCK records, turned into coverage in one vectorised step."""

    def __init__(self) -> None:
        self.times: list[str] = []
        self.ids: list[str] = []
        self.channels: list[str] = []
        self.computers: list[str] = []

    def clear(self) -> None:
        self.times, self.ids, self.channels, self.computers = [], [], [], []

    def add(self, time: str, record_id: str, channel: str, computer: str) -> None:
        self.times.append(time)
        self.ids.append(record_id)
        self.channels.append(channel)
        self.computers.append(computer)

    def flush(self, stats: FileStats, coverage: CoverageBuilder) -> None:
        if not self.times:
            return
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        stats.per_channel.update(self.channels)
        try:
            times = pc.cast(pa.array(self.times, pa.string()), pa.timestamp("us", tz="UTC")).cast(pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            times = pa.array([parse_system_time(t) for t in self.times], pa.int64())
        ids = pa.array([int(i) for i in self.ids], pa.int64())
        valid = pc.is_valid(times)
        untimed_all = len(times) - pc.sum(valid).as_py() if valid.null_count == 0 else 0
        pairs = set(zip(self.computers, self.channels, strict=True))
        for computer, channel in sorted(pairs):
            if len(pairs) == 1:
                mask = valid
            else:
                mask = pc.and_(pc.and_(pc.equal(pa.array(self.computers), computer),
                                       pc.equal(pa.array(self.channels), channel)), valid)
            chosen_ids = ids.filter(mask).to_numpy(zero_copy_only=False).astype(np.int64)
            chosen_times = times.filter(mask).to_numpy(zero_copy_only=False).astype(np.int64)
            untimed = untimed_all if len(pairs) == 1 else 0
            coverage.add_block(computer, channel, chosen_ids, chosen_times, untimed)
        self.clear()


def read_rust(path: Path, stats: FileStats, *, verify_checksums: bool = True,
              coverage: CoverageBuilder | None = None) -> Iterator[RawEvent]:
    """Yield the records pyevtx-rs can read from ``path``; bad chunks and records go to ``stats``.

    Without ``coverage`` every record is yielded. With it (the fast path), every record goes into ``coverage`` in
    blocks and only the records of :data:`WANTED_EVENT_IDS` are yielded, decoded.
    """
    import evtx  # lazy: keeps `evtrack --help` fast

    stats.kind = InputKind.EVTX
    stats.engine = ENGINE
    try:
        refused = explosive_chunks(path)
    except OSError as exc:
        raise SourceError(path, f"cannot read: {exc.strerror or exc}") from exc
    for index in refused:
        stats.add_issue(f"chunk {index}", REFUSED, chunk_record_count(path, index))
    source: Any = MaskedFile(path, refused) if refused else str(path)
    try:
        parser = evtx.PyEvtxParser(source, indent=False, validate_checksums=verify_checksums)
        records = parser.records_json()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # OSError, RuntimeError, or a Rust panic (a BaseException)
        raise SourceError(path, f"cannot open as .evtx: {exc}") from exc
    block = _Block()
    consecutive_errors = 0
    while True:
        try:
            record = next(records)
        except StopIteration:
            break
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as exc:  # pyevtx-rs raises per bad record; a Rust panic is a BaseException
            chunk = _CHUNK_ERR_RE.search(str(exc))
            lost = 1
            if chunk is None or int(chunk.group(1)) not in refused:  # a refused chunk is already named
                _issue_from_error(path, stats, exc)
                lost = stats.issues[-1].skipped
            if coverage is not None and lost:
                block.flush(stats, coverage)
                coverage.break_segments()  # what the lost records spanned is a hole, not covered
            consecutive_errors += 1
            if consecutive_errors >= _MAX_CONSECUTIVE_ERRORS:
                stats.add_issue("file", f"gave up after {consecutive_errors} consecutive errors", 0)
                break
            continue
        consecutive_errors = 0
        if not isinstance(record, dict):
            stats.add_issue("record", "the parser returned no record", 1)
            continue
        text = record.get("data")
        try:
            fields = _system_fields(text) if coverage is not None and isinstance(text, str) else None
            if fields is None:
                event = _event(text)  # type: ignore[arg-type]
                if not _in_range(event.event_id, event.record_id):
                    stats.add_issue(f"record {record.get('event_record_id', '?')}", _OUT_OF_RANGE, 1)
                    continue
                stats.records += 1
                if coverage is None:
                    stats.per_channel[event.channel] += 1
                    yield event
                    continue
                coverage.add(event)
                stats.per_channel[event.channel] += 1
                if event.event_id in WANTED_EVENT_IDS:
                    yield event
                continue
            event_id, time_text, record_id, channel, computer = fields
            if not _in_range(event_id, int(record_id)):
                stats.add_issue(f"record {record.get('event_record_id', '?')}", _OUT_OF_RANGE, 1)
                continue
            wanted = _wanted_event(text, fields) if event_id in WANTED_EVENT_IDS else None  # type: ignore[arg-type]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            stats.add_issue(f"record {record.get('event_record_id', '?')}", f"unreadable JSON: {exc}", 1)
            continue
        assert coverage is not None
        stats.records += 1
        block.add(time_text, record_id, channel, computer)
        if len(block.times) >= _BLOCK:
            block.flush(stats, coverage)
        if wanted is not None:
            coverage.note_clear(wanted)
            yield wanted
    if coverage is not None:
        block.flush(stats, coverage)


read_rust.fills_coverage = True  # type: ignore[attr-defined]
