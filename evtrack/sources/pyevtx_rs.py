"""The default engine (``--engine evtx``): the Rust-backed ``evtx`` package (pyevtx-rs).

Quirks pinned here (and by tests):
- its iterator raises once per bad chunk or record and can be resumed with ``next()``: a plain ``for`` loop
  would stop at the first error;
- ``record["event_record_id"]`` and ``record["timestamp"]`` are the record header's, which exported logs
  renumber: we read ``System/EventRecordID`` and ``System/TimeCreated`` from the JSON instead;
- chunk checksums are verified unless the caller opts out; a failing chunk is reported, not trusted.

Speed: building one Python string per record is the cost, so the System fields every record needs (for
coverage) are taken with one regular expression on the compact JSON, and ``json.loads`` runs only for the
event ids evtrack decodes.

What is read here without pyevtx-rs (a chunk's record count, a file cut short) follows libevtx's "Windows XML
Event Log (EVTX) format",
https://github.com/libyal/libevtx/blob/main/documentation/Windows%20XML%20Event%20Log%20(EVTX).asciidoc,
sections "File header" (number of chunks at offset 42) and "Chunk header" (first and last event record number
at offsets 8 and 16).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evtrack.errors import SourceError
from evtrack.sources.base import (
    CHUNK_SIZE,
    EVTX_MAGIC,
    FILE_HEADER_SIZE,
    CoverageSink,
    FileStats,
    InputKind,
    RawBatch,
    RawEvent,
    Reader,
    ReadPlan,
    chunk_header_records,
    chunk_records_whole,
    missing_chunks,
    truncated_chunk,
    truncated_header,
)
from evtrack.sources.guard import REFUSED, ChunkView, chunk_count, scan_chunks
from evtrack.sources.xmlfile import parse_system_time

if TYPE_CHECKING:
    import pyarrow as pa

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



def chunk_record_count(path: Path, chunk_index: int) -> int:
    """How many records a chunk's header says it holds (:func:`~evtrack.sources.base.chunk_header_records`)."""
    try:
        with path.open("rb") as handle:
            handle.seek(FILE_HEADER_SIZE + chunk_index * CHUNK_SIZE)
            header = handle.read(48)
    except OSError:
        return 0
    return chunk_header_records(header)


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


def _flat(fields: dict[str, Any], keys: frozenset[str]) -> dict[str, str | None]:
    """The fields of a flat payload object (EventData) named in ``keys``, as text."""
    return {name: value if type(value) is str else _value(value) for name, value in fields.items() if name in keys}


def _payload(event: dict[str, Any], keys: frozenset[str]) -> dict[str, str | None]:
    """The payload fields named in ``keys`` (the plan's), as text."""
    event_data = event.get("EventData")
    if isinstance(event_data, dict):
        return _flat(event_data, keys)
    data: dict[str, str | None] = {}
    user_data = event.get("UserData")
    if isinstance(user_data, dict):
        for name, payload in user_data.items():
            if name == "#attributes":
                continue
            if isinstance(payload, dict):
                for key, value in payload.items():
                    if key in keys:
                        data[key] = value if type(value) is str else _value(value)
            break
    return data


def _event_from_json(text: str, keys: frozenset[str]) -> RawEvent:
    """Any record, decoded in full (its payload: the fields in ``keys``). A damaged record can put any JSON type
    anywhere: every field is turned into the text it would render as, never trusted to be a string."""
    event: dict[str, Any] = json.loads(text).get("Event") or {}
    system: dict[str, Any] = event.get("System") or {}
    provider = ((system.get("Provider") or {}).get("#attributes") or {}).get("Name")
    time_created = ((system.get("TimeCreated") or {}).get("#attributes") or {}).get("SystemTime")
    record_id = _value(system.get("EventRecordID"))
    return RawEvent(
        time_us=parse_system_time(_value(time_created)),
        event_id=int(_value(system.get("EventID")) or 0),
        record_id=int(record_id) if record_id is not None else None,
        channel=_value(system.get("Channel")) or "",
        computer=_value(system.get("Computer")) or "",
        provider=_value(provider) or "",
        data=_payload(event, keys),
    )


def _json_string(token: str) -> str:
    """A JSON string token (or ``null``) from the regex, unescaped only when it needs to be."""
    if token == "null":
        return ""
    if "\\" in token:
        return str(json.loads(token))
    return token[1:-1]


def _event(text: str, plan: ReadPlan) -> RawEvent:
    match = _SYSTEM_RE.search(text)
    if match is None:
        return _event_from_json(text, plan.payload_keys)
    event_id = int(match.group(1))
    if event_id in plan.wanted_ids:
        return _event_from_json(text, plan.payload_keys)
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


def _issue_from_error(path: Path, stats: FileStats, message: str) -> None:
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


_DECODER = json.JSONDecoder()
_PROVIDER_MARK = '"Provider":{"#attributes":{"Name":"'


def _payload_at(text: str) -> tuple[int, bool]:
    """Where a record's payload object starts (its ``{``), and whether it is UserData (else EventData); -1 when it
    has neither."""
    start = text.find('"EventData":{')
    if start >= 0:
        return start + 12, False
    start = text.find('"UserData":{')
    return (start + 11, True) if start >= 0 else (-1, False)


def _provider(text: str) -> str | None:
    """The provider's name as written, when it needs no unescaping ("" when there is none); else None."""
    p = text.find(_PROVIDER_MARK)
    if p < 0:
        return ""
    provider = text[p + len(_PROVIDER_MARK) : text.find('"', p + len(_PROVIDER_MARK))]
    return None if "\\" in provider else provider


def _decoded_payload(text: str, start: int, user_data: bool, keys: frozenset[str]) -> dict[str, str | None]:
    payload, _ = _DECODER.raw_decode(text, start)
    return _payload({"UserData": payload}, keys) if user_data else _flat(payload, keys)


def _wanted_event(text: str, fields: tuple[int, str, str, str, str], keys: frozenset[str]) -> RawEvent:
    """A wanted record, decoding only its payload (EventData or UserData: the fields in ``keys``) as JSON; the
    System fields are the ones already found. Falls back to decoding the whole record when the payload is not
    where expected."""
    event_id, time_text, record_id, channel, computer = fields
    start, user_data = _payload_at(text)
    provider = _provider(text)
    if start < 0 or provider is None:
        return _event_from_json(text, keys)
    data = _decoded_payload(text, start, user_data, keys)
    return RawEvent(parse_system_time(time_text), event_id, int(record_id), channel, computer, provider, data)


class _Lookups:
    """What the hot loop derives from a plan, made once per plan (:func:`_lookups`), not once per file."""

    __slots__ = ("kdc", "observation_only", "wanted")

    def __init__(self, plan: ReadPlan) -> None:
        self.wanted = frozenset(str(event_id) for event_id in plan.wanted_ids)
        """The wanted event ids as the JSON writes them (the loop compares text, never converts)."""
        self.kdc = frozenset(str(event_id) for event_id in plan.kdc_ids)
        self.observation_only: dict[tuple[int, str], bool] = {}
        """(event id, LogonType digits) -> :meth:`ReadPlan.observation_only` of a Security record, as found."""


@functools.lru_cache(maxsize=16)
def _lookups(plan: ReadPlan) -> _Lookups:
    return _Lookups(plan)


#: What follows a 27-character SystemTime in compact pyevtx-rs JSON.
_AFTER_TIME = '"}},"EventRecordID":'
_ID_AT = 14 + 27 + len(_AFTER_TIME)  # from '"SystemTime":"' to the EventRecordID digits


class _Block:
    """System fields of up to _BLOCK records, in file order, turned into coverage in one vectorised step.

    ``keys`` hold the raw ``"Channel":...,"Computer":"..."`` text of each record, decoded once per distinct
    value (:meth:`pair`)."""

    def __init__(self) -> None:
        self.times: list[str] = []
        self.ids: list[str] = []
        self.keys: list[str] = []
        self._pairs: dict[str, tuple[str, str]] = {}

    def pair(self, key: str) -> tuple[str, str] | None:
        """(channel, computer) of a raw key (ending with the character after Computer's value), or None when it
        is not plain JSON."""
        found = self._pairs.get(key)
        if found is None:
            try:
                decoded = json.loads("{" + key[:-1] + "}")
            except ValueError:
                return None
            channel, computer = decoded.get("Channel"), decoded.get("Computer")
            if set(decoded) != {"Channel", "Computer"} or not isinstance(computer, str) \
                    or not isinstance(channel, (str, type(None))):
                return None
            found = self._pairs[key] = (channel or "", computer)
        return found

    def flush(self, stats: FileStats, coverage: CoverageSink) -> None:
        if not self.times:
            return
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            times = pc.cast(pa.array(self.times, pa.string()), pa.timestamp("us", tz="UTC")).cast(pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            times = pa.array([parse_system_time(t) for t in self.times], pa.int64())
        ids = pc.cast(pa.array(self.ids, pa.string()), pa.int64())  # digits only, at most 18: checked on entry
        distinct = set(self.keys)
        if len(distinct) == 1:
            groups = [(self.keys[0], None)]
        else:
            encoded = pa.array(self.keys, pa.string()).dictionary_encode()
            groups = [(str(key), pc.equal(encoded.indices, index))
                      for index, key in enumerate(encoded.dictionary.to_pylist())]
        for key, mask in groups:
            channel, computer = self._pairs[key]
            chosen_times, chosen_ids = (times, ids) if mask is None else (times.filter(mask), ids.filter(mask))
            stats.per_channel[channel] += len(chosen_times)
            untimed = chosen_times.null_count
            if untimed:
                valid = pc.is_valid(chosen_times)
                chosen_times, chosen_ids = chosen_times.filter(valid), chosen_ids.filter(valid)
            coverage.add_block(computer, channel, chosen_ids.to_numpy(zero_copy_only=False).astype(np.int64),
                               chosen_times.to_numpy(zero_copy_only=False).astype(np.int64), untimed)
        self.times.clear()  # in place: the hot loop holds their bound append methods
        self.ids.clear()
        self.keys.clear()


class _Pending:
    """Wanted records of the current block, decoded together into a :class:`RawBatch` when it flushes: each
    record's payload object (sliced from its JSON) goes, with the others of its event id, through Arrow's JSON
    reader (:func:`_payload_columns`), so no Python object is made per record. A group Arrow cannot take as
    columns (a field whose JSON type varies, a value that is not text, a number or true/false) is decoded one
    record at a time, as :func:`_wanted_event` does; so are records the reader had to decode at once."""

    def __init__(self) -> None:
        self.records: list[tuple[str, int, bool, int, str, str, str, str, str]] = []
        """(text, where its payload object starts, whether it is UserData, event id, SystemTime text, record id
        text, channel, computer, provider) of each record; start -1 for a record decoded one by one."""
        self.decoded: dict[int, RawEvent | None] = {}
        """Records decoded one by one, by position (None: it could not be, it is left out)."""

    def add_event(self, event: RawEvent) -> None:
        """A record decoded in full (its System fields from its JSON, in range: :func:`_in_range`); its time and
        record id, numbers already, take their place in the columns in :meth:`take`."""
        self.decoded[len(self.records)] = event
        self.records.append(("", -1, False, event.event_id, _EPOCH_TEXT, "0", event.channel, event.computer,
                             event.provider))

    def take(self, keys: frozenset[str], stats: FileStats) -> RawBatch | None:
        """The records added since the last call, as one batch (None when there are none). A payload that is not
        JSON after all (pyevtx-rs never writes one) leaves its record out, said in ``stats``."""
        if not self.records:
            return None
        import numpy as np
        import pyarrow as pa

        text = pa.string()
        records, decoded = self.records[:], self.decoded
        self.records.clear()  # in place: the hot loop holds its bound append
        self.decoded = {}
        members: dict[tuple[int, bool], list[int]] = {}
        for index, record in enumerate(records):
            if record[1] >= 0:
                members.setdefault((record[3], record[2]), []).append(index)
        positions: list[list[int]] = []
        parts: list[Mapping[str, pa.Array]] = []
        for (_, user_data), indices in members.items():
            columns = _payload_columns([records[i][0][records[i][1] : -2] for i in indices], user_data, keys)
            if columns is None:
                for i in indices:
                    record = records[i]
                    try:
                        data = _decoded_payload(record[0], record[1], user_data, keys)
                    except (ValueError, KeyError, TypeError, AttributeError) as exc:
                        stats.add_issue(f"record {record[5]}", f"unreadable JSON: {exc}", 1)
                        decoded[i] = None
                        continue
                    decoded[i] = RawEvent(None, record[3], None, "", "", "", data)
                continue
            positions.append(indices)
            parts.append(columns)
        if decoded:
            indices = sorted(decoded)
            positions.append(indices)
            parts.append(RawBatch.of([decoded[i] or _NOTHING for i in indices]).data)
        order = pa.array(np.argsort(np.concatenate([np.asarray(p, np.int64) for p in positions]), kind="stable"))
        data = {}
        for name in dict.fromkeys(name for part in parts for name in part):
            data[name] = pa.concat_arrays([part.get(name, pa.nulls(len(where), text))
                                           for where, part in zip(positions, parts, strict=True)]).take(order)
        _, _, _, event_ids, times, record_ids, channels, computers, providers = zip(*records, strict=True)
        time_us, record_id = _times(times), pa.array(record_ids, text).cast(pa.int64())
        alone = {i: event for i, event in decoded.items() if records[i][1] < 0 and event is not None}
        if alone:  # records decoded one by one from the start: their time and record id are their RawEvent's
            moments, numbers = time_us.to_pylist(), record_id.to_pylist()
            for i, event in alone.items():
                moments[i], numbers[i] = event.time_us, event.record_id
            time_us, record_id = pa.array(moments, pa.int64()), pa.array(numbers, pa.int64())
        batch = RawBatch(time_us, pa.array(event_ids, pa.int64()), record_id, pa.array(channels, text),
                         pa.array(computers, text), pa.array(providers, text), data)
        lost = [i for i, event in decoded.items() if event is None]
        return batch if not lost else batch.without(lost)


_EPOCH_TEXT = "1970-01-01T00:00:00.000000Z"  # a placeholder, replaced (see _Pending.add_event)
_NOTHING = RawEvent(None, 0, None, "", "", "")  # the payload of a record left out (see _Pending.take)
#: The one form of SystemTime whose vectorised conversion is known to equal :func:`parse_system_time`'s.
_STRICT_TIME = r"^[1-9]\d{3}-\d\d-\d\dT\d\d:\d\d:[0-5]\d\.\d{6}Z$"


def _times(texts: Sequence[str]) -> pa.Array:
    """:func:`parse_system_time` of each text (int64 µs), converted together when all are in the usual form."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = pa.array(texts, pa.string())
    if pc.all(pc.match_substring_regex(column, _STRICT_TIME)).as_py():
        try:
            return pc.cast(column, pa.timestamp("us", tz="UTC")).cast(pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return pa.array([parse_system_time(text) for text in texts], pa.int64())


def _payload_columns(payloads: list[str], user_data: bool, keys: frozenset[str]) -> dict[str, pa.Array] | None:
    """The fields in ``keys`` of these payload objects (each one compact JSON object, as pyevtx-rs writes them),
    as text columns: what :func:`_flat` (EventData) or :func:`_payload` (UserData: the first element in it) would
    give for each. None when Arrow's JSON reader cannot take them so (see :class:`_Pending`)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    block = "\n".join(payloads).encode()
    try:
        table = pj.read_json(pa.BufferReader(block), read_options=pj.ReadOptions(use_threads=False,
                                                                                  block_size=len(block) + 1))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows != len(payloads):
        return None
    if user_data:
        elements = [name for name in table.column_names if name != "#attributes"]
        if not elements:
            return {}
        if len(elements) > 1 or not pa.types.is_struct(table.schema.field(elements[0]).type):
            return None
        element = table.column(elements[0]).combine_chunks()
        fields = {element.type.field(i).name: pc.struct_field(element, [i]) for i in range(element.type.num_fields)}
    else:
        fields = {name: table.column(name).combine_chunks() for name in table.column_names}
    columns = {}
    for name, values in fields.items():
        if name in keys:
            column = _as_text(values)
            if column is None:
                return None
            columns[name] = column
    return columns


def _as_text(values: pa.Array) -> pa.Array | None:
    """A column of JSON values as :func:`_value` gives each: text as it is, integers in decimal, ``true`` and
    ``false``; None for any other type (a float, an object, a list: the records are then decoded one by one)."""
    import pyarrow as pa

    kind = values.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind) \
            or pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return values.cast(pa.string())
    return None


def _observed_account(text: str, start: int, event_id: int, channel: str, plan: ReadPlan,
                      known: dict[tuple[int, str], bool]) -> str | None:
    """For a 4624/4634 that a slim read keeps only as an account: the raw ``TargetUserSid`` ..
    ``TargetDomainName`` text, equal for records whose account fields decode equal. None when the record is
    needed (a session logon type), or its LogonType is not plain digits right after ``TargetLogonId``, or the
    fields are not in Windows' order. Whether a logon type is observation-only is the plan's call, remembered in
    ``known`` (see :class:`_Lookups`).

    The text is searched, not parsed: a record whose JSON repeated one of these keys could fool it, which no
    Windows template does; and the first record of every account is decoded in full."""
    sid = text.find('"TargetUserSid":', start)
    stop = text.find('"TargetLogonId":', sid)
    if sid < 0 or stop < 0:
        return None
    at = text.find('"LogonType":', stop) + 12
    if at < 12:
        return None
    digits = text[at : at + 2]
    if digits[1:] in (",", "}"):
        digits = digits[:1]
    elif text[at + 2 : at + 3] not in (",", "}"):
        return None
    only = known.get((event_id, digits))
    if only is None:
        if not digits.isdigit():
            return None
        only = known[(event_id, digits)] = plan.observation_only(channel, event_id, int(digits))
    if not only:
        return None
    account = text[sid:stop]
    if '"TargetUserName":' not in account or '"TargetDomainName":' not in account:
        return None
    return account


def read_pyevtx_rs(path: Path, stats: FileStats, *, plan: ReadPlan, verify_checksums: bool = True,
                   coverage: CoverageSink | None = None, slim: bool = False,
                   chunks: tuple[int, int] | None = None) -> Iterator[RawEvent | RawBatch]:
    """Yield the records pyevtx-rs can read from ``path``; bad chunks and records go to ``stats``. The payload
    (the plan's :attr:`~ReadPlan.payload_keys`) is decoded for the plan's :attr:`~ReadPlan.wanted_ids` only.

    Without ``coverage`` every record is yielded. With it (the fast path), every record goes into ``coverage`` in
    blocks and only the wanted records are yielded. With ``slim`` too, a Security 4624/4634 that
    :meth:`ReadPlan.observation_only` leaves out is yielded only for the first time its account (host, channel
    and target account text) appears. ``chunks`` (first, last exclusive) reads only that range of chunks.
    """
    import evtx  # lazy: keeps `evtrack --help` fast

    stats.kind = InputKind.EVTX
    stats.engine = ENGINE
    first, last = chunks if chunks is not None else (0, None)
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            header = handle.read(FILE_HEADER_SIZE)
        if size < FILE_HEADER_SIZE and header.startswith(EVTX_MAGIC):
            raise SourceError(path, f"cannot open as .evtx: {truncated_header(size)}")
        withheld = scan_chunks(path, first, last)
        refused = [index for index, _ in withheld]
        cut, pad = _cut_short(path, size, header, first, last)
        source: Any = (ChunkView(path, refused, first, last, pad=pad) if refused or chunks is not None or pad
                       else str(path))
    except OSError as exc:
        raise SourceError(path, f"cannot read: {exc.strerror or exc}") from exc
    for index, reason in withheld:  # pyevtx-rs names them where they stand: coverage breaks there
        stats.add_issue(f"chunk {index}", reason, chunk_record_count(path, index) if reason == REFUSED else 0)
    try:
        parser = evtx.PyEvtxParser(source, number_of_threads=1, indent=False, validate_checksums=verify_checksums)
        records = parser.records_json()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # OSError, RuntimeError, or a Rust panic (a BaseException)
        raise SourceError(path, f"cannot open as .evtx: {exc}") from exc
    if coverage is None:
        yield from _every_record(path, stats, records, refused, first, plan)
    else:
        yield from _fast(path, stats, records, refused, first, coverage, slim, plan)
    if cut is not None:  # pyevtx-rs stops before a chunk the file ends inside, and says nothing
        stats.add_issue(*cut)


def _cut_short(path: Path, size: int, header: bytes, first: int, last: int | None
               ) -> tuple[tuple[str, str, int] | None, bool]:
    """The issue (where, reason, records lost) of a file that ends inside its last chunk, or before the last chunk
    its header names, when that end falls in the range read (``first`` to ``last``); None if it does not. And
    whether the file ends in its last chunk's unused space, after all of its records
    (:func:`~evtrack.sources.base.chunk_records_whole`): nothing is lost, no issue, the chunk is read padded."""
    slots = chunk_count(size)
    if last is not None and last < slots:
        return None, False  # another range holds the end of the file
    present = (size - FILE_HEADER_SIZE) % CHUNK_SIZE
    if present:
        index = slots - 1
        if index < first:
            return None, False
        with path.open("rb") as handle:
            handle.seek(FILE_HEADER_SIZE + index * CHUNK_SIZE)
            tail = handle.read(present)
        if not any(tail):
            return None, False  # unused space at the end of the file
        if chunk_records_whole(tail):
            return None, True
        return (f"chunk {index}", truncated_chunk(present), chunk_header_records(tail)), False
    missing = missing_chunks(size, header)
    if missing is None:
        return None, False
    return (f"chunk {missing[0]}", missing[1], 0), False


def _lost(path: Path, stats: FileStats, exc: BaseException, refused: list[int], first: int) -> int:
    """Note a record or chunk pyevtx-rs could not read; how many records it held. ``first`` is the file's chunk
    that pyevtx-rs saw as chunk 0 (a worker reading one range of a large file)."""
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if first:
        message = _CHUNK_ERR_RE.sub(lambda m: f"chunk number {int(m.group(1)) + first}", message)
    chunk = _CHUNK_ERR_RE.search(message)
    if chunk is None or int(chunk.group(1)) not in refused:  # a refused chunk is already named
        _issue_from_error(path, stats, message)
        # a chunk whose header is unreadable does not say how many records it held: still a hole
        return stats.issues[-1].skipped or (1 if chunk else 0)
    return 1


def _every_record(path: Path, stats: FileStats, records: Any, refused: list[int], first: int, plan: ReadPlan
                  ) -> Iterator[RawEvent]:
    """Every record, fully decoded (``evtrack events`` without coverage). The report's loop is :func:`_fast`."""
    for record in _resilient(path, stats, records, refused, first):
        try:
            event = _event(record["data"], plan)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            stats.add_issue(f"record {_header_id(record)}", f"unreadable JSON: {exc}", 1)
            continue
        if not _in_range(event.event_id, event.record_id):
            stats.add_issue(f"record {_header_id(record)}", _OUT_OF_RANGE, 1)
            continue
        stats.records += 1
        stats.per_channel[event.channel] += 1
        yield event


def _resilient(path: Path, stats: FileStats, records: Any, refused: list[int], first: int,
               on_lost: Callable[[], None] | None = None) -> Iterator[Any]:
    """pyevtx-rs's records, going on past each one it cannot read (noted in ``stats``; ``on_lost`` is called
    where records were lost)."""
    consecutive_errors = 0
    while True:
        try:
            record = next(records)
        except StopIteration:
            return
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as exc:  # pyevtx-rs raises per bad record; a Rust panic is a BaseException
            if _lost(path, stats, exc, refused, first) and on_lost is not None:
                on_lost()
            consecutive_errors += 1
            if consecutive_errors >= _MAX_CONSECUTIVE_ERRORS:
                stats.add_issue("file", f"gave up after {consecutive_errors} consecutive errors", 0)
                return
            continue
        consecutive_errors = 0
        yield record


def _header_id(record: Any) -> Any:
    return record.get("event_record_id", "?") if isinstance(record, dict) else "?"


def _fast(path: Path, stats: FileStats, records: Any, refused: list[int], first: int, coverage: CoverageSink,
          slim: bool, plan: ReadPlan) -> Iterator[RawEvent | RawBatch]:
    """The hot loop: five ``str.find`` per record for its System fields, the payload only for wanted ones.

    A record is taken apart here only when it has the usual compact shape and the same Channel and Computer as
    the record before (``key``); anything else goes through :func:`_shape`, and failing that the general path."""
    block = _Block()
    pending = _Pending()
    pend = pending.records.append
    times_append, ids_append, keys_append = block.times.append, block.ids.append, block.keys.append
    observed: set[tuple[str, str]] = set()
    kdc_keys: set[str] = set()
    lookups = _lookups(plan)
    wanted_ids, kdc_ids, keys = lookups.wanted, lookups.kdc, plan.payload_keys
    count = 0
    room = _BLOCK  # records until the next flush (later, if something flushed early: harmless)
    key = "\0"  # matches no record: the first one sets it

    def lost() -> None:
        block.flush(stats, coverage)
        coverage.break_segments()  # what the lost records spanned is a hole, not covered

    def taken() -> Iterator[RawBatch]:
        batch = pending.take(keys, stats)
        if batch is not None:
            coverage.note_clears(batch)
            yield batch

    for record in _resilient(path, stats, records, refused, first, lost):
        try:
            text = record["data"]
            i = text.find('"EventID":') + 10
            j = text.find(",", i)
            eid = text[i:j]
            t = text.find('"SystemTime":"', j)
            k = text.find(",", t + _ID_AT)
            rid = text[t + _ID_AT : k]
            c = text.find('"Channel":', k)
        except (KeyError, TypeError, AttributeError) as exc:
            stats.add_issue(f"record {_header_id(record)}", f"unreadable record: {exc}", 1)
            continue
        if not (i > 9 and eid.isdigit() and len(eid) < 5 and rid.isdigit() and len(rid) < 19
                and text.startswith(_AFTER_TIME, t + 41) and text.startswith(key, c)):
            shape = _shape(text, i, j, t, k, c)
            if shape is None:
                event = _unusual(text, record, stats, coverage, block, plan)
                if event is not None:
                    yield from taken()  # the records before it first
                    yield event
                continue
            key = shape
            if key not in block._pairs and block.pair(key) is None:
                key = "\0"
                event = _unusual(text, record, stats, coverage, block, plan)
                if event is not None:
                    yield from taken()  # the records before it first
                    yield event
                continue
        if eid in wanted_ids:
            channel, computer = block._pairs[key]
            skip = False
            account = None
            if slim and (eid == "4624" or eid == "4634") and channel == "Security":
                account = _observed_account(text, c + len(key), int(eid), channel, plan, lookups.observation_only)
                if account is not None:
                    skip = (key, account) in observed  # its only use, the account, is already observed
            if not skip:
                start, user_data = _payload_at(text)
                provider = _provider(text)
                if start >= 0 and provider is not None:
                    pend((text, start, user_data, int(eid), text[t + 14 : t + 41], rid, channel, computer, provider))
                else:
                    try:
                        event = _wanted_event(text, (int(eid), text[t + 14 : t + 41], rid, channel, computer), keys)
                    except (ValueError, KeyError, TypeError, AttributeError) as exc:
                        stats.add_issue(f"record {_header_id(record)}", f"unreadable JSON: {exc}", 1)
                        continue
                    if not _in_range(event.event_id, event.record_id):  # its JSON said otherwise than its text
                        stats.add_issue(f"record {_header_id(record)}", _OUT_OF_RANGE, 1)
                        continue
                    pending.add_event(event)
                if account is not None:
                    observed.add((key, account))  # only once its account has been taken
        elif eid in kdc_ids:
            kdc_keys.add(key)
        count += 1
        times_append(text[t + 14 : t + 41])
        ids_append(rid)
        keys_append(key)
        room -= 1
        if not room:
            block.flush(stats, coverage)
            room = _BLOCK
            yield from taken()
    block.flush(stats, coverage)
    yield from taken()
    for found in kdc_keys:
        channel, computer = block._pairs[found]
        coverage.note_kdc(computer, channel)
    stats.records += count


def _shape(text: str, i: int, j: int, t: int, k: int, c: int) -> str | None:
    """The Channel..Computer key of a record in the usual compact shape whose key differs from the record
    before; None when the record is not in that shape (then the general path reads it)."""
    eid, rid = text[i:j], text[t + _ID_AT : k]
    if i <= 9 or t < 0 or c < 0 or not eid.isdigit() or len(eid) > 5 or (len(eid) == 5 and eid > "65535"):
        return None
    if not rid.isdigit() or len(rid) > 18 or not text.startswith(_AFTER_TIME, t + 41):
        return None
    h = text.find('"Computer":"', c)
    end = text.find('"', h + 12)
    if h < 0 or end < 0 or text[end - 1] == "\\" or text[end + 1 : end + 2] not in (",", "}"):
        return None
    return text[c : end + 2]  # with the character after the closing quote: no computer name is a prefix


class _Unusual(Exception):
    """A record not in the usual compact shape: it goes through the general path."""


def _unusual(text: Any, record: Any, stats: FileStats, coverage: CoverageSink, block: _Block,
             plan: ReadPlan) -> RawEvent | None:
    """A record the hot loop could not take apart: parsed fully; returned when it is wanted."""
    try:
        event = _event(text, plan)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        stats.add_issue(f"record {_header_id(record)}", f"unreadable JSON: {exc}", 1)
        return None
    if not _in_range(event.event_id, event.record_id):
        stats.add_issue(f"record {_header_id(record)}", _OUT_OF_RANGE, 1)
        return None
    block.flush(stats, coverage)  # keep file order
    stats.records += 1
    stats.per_channel[event.channel] += 1
    coverage.add(event)
    return event if event.event_id in plan.wanted_ids else None


#: The engine as :mod:`evtrack.reading` uses it: it fills the coverage itself, skips observed accounts in a slim
#: read, and reads ranges of chunks (several workers share one large file).
READER = Reader(ENGINE, read_pyevtx_rs, fills_coverage=True, skips_observed=True, reads_ranges=True)
