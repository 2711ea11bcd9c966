"""Raw events to rows of the normalised event table (:func:`logon_schema`), as the event catalogue says.

What each event means -- its kind, the payload fields read, its evidence rule -- is said once, in
:mod:`evtrack.catalogue`; this module applies it: :func:`normalise` turns a raw event into a row, :func:`classify`
gives an event's evidence verdict, :func:`observation_only` and :func:`needed_for_report` say what a slim read keeps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from evtrack.catalogue import (
    LSM,
    RCM,
    SECURITY,
    SESSION_LOGON_TYPES,
    SYSTEM,
    EventDef,
    Evidence,
    Kind,
    Slim,
    is_ip,
    is_remote_ip,
    lookup,
    parse_ip,
)
from evtrack.sources.base import RawBatch, RawEvent

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["COLUMNS", "ENCODED_COLUMNS", "LSM", "RCM", "SECURITY", "SYSTEM", "BatchBuilder", "Evidence", "Kind",
           "as_report_reads", "classify", "decoded", "empty_table", "encode", "encoded_schema", "is_ip",
           "is_remote_ip", "logon_schema", "needed_for_report", "normalise", "normalise_batch", "normalise_row",
           "observation_only", "parse_ip", "row_needed_for_report", "rows_needed_for_report"]


def _columns() -> list[tuple[str, Any]]:
    import pyarrow as pa

    return [
        ("time", pa.timestamp("us", tz="UTC")),
        ("host", pa.string()),
        ("channel", pa.string()),
        ("provider", pa.string()),
        ("event_id", pa.int32()),
        ("record_id", pa.int64()),
        ("kind", pa.string()),
        ("logon_type", pa.int8()),
        ("user", pa.string()),
        ("domain", pa.string()),
        ("sid", pa.string()),
        ("address", pa.string()),
        ("client_name", pa.string()),
        ("session_id", pa.int64()),
        ("logon_id", pa.string()),
        ("session_name", pa.string()),
        ("elevated", pa.bool_()),
        ("rdp", pa.bool_()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("source", pa.string()),
    ]


def logon_schema() -> pa.Schema:
    """The one schema of the normalised event table (built lazily: pyarrow is a heavy import).

    Every table evtrack hands out (``evtrack events``, the library's tables and DataFrames, the store, Parquet
    datasets) has exactly this schema. A slim read, the table a report is built from, carries the columns of
    :data:`ENCODED_COLUMNS` dictionary-encoded instead (:func:`encoded_schema`): the same values, each distinct
    string stored once per batch. Whatever reads a report's table compares values, never types, and turns a part
    of it into Python objects only through :func:`decoded` (or ``to_pylist``, which gives the values)."""
    import pyarrow as pa

    return pa.schema(_columns())


#: The columns a slim read (a report's table) carries dictionary-encoded: few distinct values repeated on many
#: rows (the LocalSessionManager channel name alone is 67 characters), read as values, never searched with string
#: functions. On the dense 150 MB set they were 31 of the table's 43 MiB, 4.5 once encoded. ``user`` and ``sid``
#: would save 3 MiB more there but are searched (identity sightings, ``explain``); the others repeat too little.
ENCODED_COLUMNS: tuple[str, ...] = ("host", "channel", "provider", "kind", "domain", "address", "reason", "source")


def encoded_schema() -> pa.Schema:
    """:func:`logon_schema` with :data:`ENCODED_COLUMNS` as ``dictionary<int32, string>``."""
    import pyarrow as pa

    return pa.schema([(name, pa.dictionary(pa.int32(), kind) if name in ENCODED_COLUMNS else kind)
                      for name, kind in _columns()])


def encode(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A batch of :func:`logon_schema` with :data:`ENCODED_COLUMNS` dictionary-encoded (:func:`encoded_schema`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = [pc.dictionary_encode(column) if name in ENCODED_COLUMNS else column
              for name, column in zip(batch.schema.names, batch.columns, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=encoded_schema())


def decoded(table: pa.Table) -> pa.Table:
    """``table`` with every dictionary-encoded column as plain values again (the table itself when it has none)."""
    import pyarrow as pa

    fields = [pa.field(f.name, f.type.value_type, f.nullable, f.metadata) if pa.types.is_dictionary(f.type) else f
              for f in table.schema]
    schema = pa.schema(fields, metadata=table.schema.metadata)
    return table if schema.equals(table.schema) else table.cast(schema)


def as_report_reads(table: pa.Table) -> pa.Table:
    """``table`` as a report reads it: a dictionary column whose dictionary holds a null (evtrack never makes one:
    :func:`encode` keeps nulls out of it and Parquet cannot store one; another report input might) plain again,
    since Arrow cannot unify such dictionaries. The table itself when there is none."""
    import pyarrow as pa

    for index, field in enumerate(table.schema):
        column = table.column(index)
        if pa.types.is_dictionary(field.type) and any(chunk.dictionary.null_count for chunk in column.chunks):
            table = table.set_column(index, pa.field(field.name, field.type.value_type, field.nullable),
                                     column.cast(field.type.value_type))
    return table


COLUMNS: tuple[str, ...] = (
    "time", "host", "channel", "provider", "event_id", "record_id", "kind", "logon_type", "user", "domain", "sid",
    "address", "client_name", "session_id", "logon_id", "session_name", "elevated", "rdp", "reason", "detail",
    "source",
)  # fmt: skip


def _clean(value: str | None) -> str | None:
    """Stripped text, None for nothing or blanks (one expression: it runs several times per evidence record)."""
    return (value.strip() or None) if value else None


def _int(value: str | None) -> int | None:
    value = _clean(value)
    if value is None:
        return None
    try:
        return int(value, 16) if value.lower().startswith("0x") else int(value)
    except ValueError:
        return None


def _session_id(value: str | None) -> int | None:
    """A session id the table can hold (a 64-bit integer); one beyond that is no session id a session host gives."""
    number = _int(value)
    return number if number is not None and -(2**63) <= number < 2**63 else None


def _logon_id(value: str | None) -> str | None:
    number = _int(value)
    return None if number is None else f"0x{number:x}"


_ELEVATED = {"%%1842": True, "yes": True, "%%1843": False, "no": False}


def _elevated(value: str | None) -> bool | None:
    value = _clean(value)
    if value is None or value == "-":
        return None
    return _ELEVATED.get(value.lower())


def classify(channel: str, event_id: int, logon_type: int | None, address: str | None,
             session_name: str | None, status: str | None = None) -> Evidence:
    """THE RDP evidence rule of one event, as the catalogue (:mod:`evtrack.catalogue`) says it; events the
    catalogue does not know are not evidence. ``status``: the event's status field, for events that have one
    (RD Gateway 302 ``ErrorCode``)."""
    definition = lookup(channel, event_id)
    if definition is None:
        return Evidence(False, "not_covered")
    return definition.verdict(logon_type, address, session_name, status)


def _split_user(value: str | None) -> tuple[str | None, str | None]:
    """``DOMAIN\\user`` → (user, domain); ``user`` → (user, None)."""
    value = _clean(value)
    if value is None:
        return None, None
    if "\\" in value:
        domain, user = value.split("\\", 1)
        return _clean(user), _clean(domain)
    return value, None


def normalise(raw: RawEvent, source: str) -> dict[str, Any] | None:
    """One table row for an event the catalogue makes a row, or None (an event that is not a row)."""
    row = normalise_row(raw, source)
    return None if row is None else dict(zip(COLUMNS, row, strict=True))


def normalise_row(raw: RawEvent, source: str) -> tuple[Any, ...] | None:
    """:func:`normalise` as a tuple in :data:`COLUMNS` order (what :meth:`BatchBuilder.add_row` takes): the
    readers' hot path, one per evidence record, so what a row's payload decides is worked out once per distinct
    payload (:class:`_Maker`)."""
    definition = lookup(raw.channel, raw.event_id)
    if definition is None or definition.kind is None:
        return None
    return _maker(definition).row(raw, source)


class _Maker:
    """How one catalogue entry becomes a row. The verdict and the kind depend only on (logon type, address,
    session name, status), which repeat: memoised per entry (bounded)."""

    __slots__ = ("_verdicts", "definition", "fields")

    def __init__(self, definition: EventDef) -> None:
        self.definition = definition
        self.fields = definition.fields
        self._verdicts: dict[tuple[Any, ...], tuple[str, bool, str]] = {}

    def _verdict(self, logon_type: int | None, address: str | None, session_name: str | None,
                 status: str | None) -> tuple[str, bool, str]:
        """(kind, rdp, reason) of a row."""
        key = (logon_type, address, session_name, status)
        found = self._verdicts.get(key)
        if found is None:
            definition = self.definition
            evidence = definition.verdict(logon_type, address, session_name, status)
            kind = (definition.rekind(logon_type) if definition.rekind else None) or definition.kind
            assert kind is not None  # only entries with a kind get a maker
            found = (kind.value, evidence.rdp, evidence.reason)
            if len(self._verdicts) > 65_536:
                self._verdicts.clear()
            self._verdicts[key] = found
        return found

    def row(self, raw: RawEvent, source: str) -> tuple[Any, ...]:
        data, fields = raw.data, self.fields
        get = data.get
        if fields.qualified_user:
            user, domain = _split_user(get(fields.user)) if fields.user else (None, None)
        else:
            user = _clean(get(fields.user)) if fields.user else None
            domain = _clean(get(fields.domain)) if fields.domain else None
        logon_type = _int(get(fields.logon_type)) if fields.logon_type else None
        if logon_type is not None and not -128 <= logon_type <= 127:
            logon_type = None
        address = _clean(get(fields.address)) if fields.address else None
        session_name = _clean(get(fields.session_name)) if fields.session_name else None
        kind, rdp, reason = self._verdict(logon_type, address, session_name,
                                          get(fields.status) if fields.status else None)
        return (
            raw.time_us,
            # the session host a gateway names (its Resource), else the host that wrote the record
            (_clean(get(fields.host)) if fields.host else None) or raw.computer,
            raw.channel,
            raw.provider,
            raw.event_id,
            raw.record_id,
            kind,
            logon_type,
            user,
            domain,
            _clean(get(fields.sid)) if fields.sid else None,
            address,
            _clean(get(fields.client_name)) if fields.client_name else None,
            _session_id(get(fields.session_id)) if fields.session_id else None,
            _logon_id(get(fields.logon_id)) if fields.logon_id else None,
            session_name,
            _elevated(get(fields.elevated)) if fields.elevated else None,
            rdp,
            reason,
            _detail(raw, self.definition),
            source,
        )


#: id(catalogue entry) -> its :class:`_Maker` (checked to be that entry's: a test may swap entries).
_MAKERS: dict[int, _Maker] = {}


def _maker(definition: EventDef) -> _Maker:
    maker = _MAKERS.get(id(definition))
    if maker is None or maker.definition is not definition:
        maker = _MAKERS[id(definition)] = _Maker(definition)
    return maker


def normalise_batch(batch: RawBatch, source: str) -> pa.RecordBatch:
    """:func:`normalise_row` of every record of ``batch``, as one batch of :func:`logon_schema` rows in the batch's
    order (records the catalogue makes no row of left out). Equal to the rows one at a time, row for row (tested),
    but Python runs once per distinct value of a field and once per distinct (logon type, address, session name,
    status) of an entry, not once per record: the fast readers' records come this way."""
    import numpy as np
    import pyarrow as pa

    schema = logon_schema()
    channels = batch.channel.dictionary_encode()
    event_ids = batch.event_id.to_numpy(zero_copy_only=False)
    # (channel, event id) of each record as one integer; an event id beyond 16 bits is in no catalogue entry (the
    # general path can hand one on: it makes no row, as normalise_row says)
    valid = (event_ids >= 0) & (event_ids <= 0xFFFF)
    groups = np.where(valid, (channels.indices.to_numpy(zero_copy_only=False).astype(np.int64) << 16)
                      | np.where(valid, event_ids, 0).astype(np.int64), -1)
    keys, inverse = np.unique(groups, return_inverse=True)
    names = channels.dictionary.to_pylist()
    parts: list[pa.RecordBatch] = []
    order: list[Any] = []
    for index, key in enumerate(keys.tolist()):
        definition = lookup(names[key >> 16], key & 0xFFFF) if key >= 0 else None
        if definition is None or definition.kind is None:
            continue
        at = np.flatnonzero(inverse == index)
        parts.append(pa.RecordBatch.from_arrays(_group_columns(batch, pa.array(at), _maker(definition), source),
                                                schema=schema))
        order.append(at)
    if not parts:
        return pa.RecordBatch.from_pylist([], schema=schema)
    table = pa.Table.from_batches(parts, schema=schema)
    if len(parts) > 1:
        table = table.take(pa.array(np.argsort(np.concatenate(order), kind="stable")))
    return table.combine_chunks().to_batches()[0]


def _mapped(values: pa.Array | None, function: Any, kind: pa.DataType, rows: int) -> pa.Array:
    """``function`` of each value (None where there is none), worked out once per distinct value."""
    import pyarrow as pa

    if values is None:
        nothing = function(None)
        return pa.nulls(rows, kind) if nothing is None else pa.array([nothing] * rows, kind)
    encoded = values.dictionary_encode()
    distinct = [function(value) for value in encoded.dictionary.to_pylist()]
    mapped = pa.array(distinct, kind).take(encoded.indices)
    if encoded.indices.null_count and function(None) is not None:
        mapped = mapped.fill_null(pa.scalar(function(None), kind))
    return mapped


def _logon_type(value: str | None) -> int | None:
    number = _int(value)
    return number if number is not None and -128 <= number <= 127 else None


def _group_columns(batch: RawBatch, at: pa.Array, maker: _Maker, source: str) -> list[pa.Array]:
    """The :data:`COLUMNS` of the records at ``at``, all of one catalogue entry (``maker``'s) and one channel."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = len(at)
    definition, fields = maker.definition, maker.fields
    text = pa.string()

    def field(name: str | None) -> pa.Array | None:
        column = batch.data.get(name) if name else None
        return None if column is None else column.take(at)

    def mapped(name: str | None, function: Any, kind: pa.DataType = text) -> pa.Array:
        return _mapped(field(name), function, kind, rows)  # no field, or none in these records: all None

    if fields.qualified_user:
        user = mapped(fields.user, lambda value: _split_user(value)[0])
        domain = mapped(fields.user, lambda value: _split_user(value)[1])
    else:
        user, domain = mapped(fields.user, _clean), mapped(fields.domain, _clean)
    logon_type = mapped(fields.logon_type, _logon_type, pa.int8())
    address, session_name = mapped(fields.address, _clean), mapped(fields.session_name, _clean)
    status = field(fields.status)
    # the verdict, once per distinct (logon type, address, session name, status)
    decoders, codes = [], []
    for column in (logon_type, address, session_name, pa.nulls(rows, text) if status is None else status):
        encoded = column.dictionary_encode()
        decoders.append([None, *encoded.dictionary.to_pylist()])
        codes.append(encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64) + 1)
    which = np.zeros(rows, np.int64)  # each record's combination, numbered 0.. (one column added at a time)
    for decoder, code in zip(decoders, codes, strict=True):
        which = np.unique(which * len(decoder) + code, return_inverse=True)[1].reshape(-1)
    first = np.unique(which, return_index=True)[1].tolist()  # a record of each combination
    verdicts = [maker._verdict(*(decoder[code[row]] for decoder, code in zip(decoders, codes, strict=True)))
                for row in first]
    pick = pa.array(which)
    kind = pa.array([v[0] for v in verdicts], text).take(pick)
    rdp = pa.array([v[1] for v in verdicts], pa.bool_()).take(pick)
    reason = pa.array([v[2] for v in verdicts], text).take(pick)
    computer = batch.computer.take(at)
    host = pc.coalesce(mapped(fields.host, _clean), computer) if fields.host else computer
    channel = batch.channel.take(at)
    if fields.detail:
        detail = mapped(fields.detail, _clean)
    elif definition.kind is Kind.LOG_CLEARED:
        name = channel[0].as_py()
        detail = pa.array(["Security" if name.lower() == SECURITY else name] * rows, text)
    else:
        detail = pa.nulls(rows, text)
    return [
        batch.time_us.take(at).cast(pa.timestamp("us", tz="UTC")),
        host,
        channel,
        batch.provider.take(at),
        batch.event_id.take(at).cast(pa.int32()),
        batch.record_id.take(at),
        kind,
        logon_type,
        user,
        domain,
        mapped(fields.sid, _clean),
        address,
        mapped(fields.client_name, _clean),
        mapped(fields.session_id, _session_id, pa.int64()),
        mapped(fields.logon_id, _logon_id),
        session_name,
        mapped(fields.elevated, _elevated, pa.bool_()),
        rdp,
        reason,
        detail,
        pa.array([source] * rows, text),
    ]


def _detail(raw: RawEvent, definition: EventDef) -> str | None:
    """What a log-cleared row says was cleared: the log named in the payload (System 104), else its own log."""
    if definition.fields.detail:
        return _clean(raw.data.get(definition.fields.detail))
    if definition.kind is Kind.LOG_CLEARED:
        return "Security" if raw.channel.lower() == SECURITY else raw.channel
    return None


def observation_only(channel: str, event_id: int, logon_type: int | None) -> bool:
    """Whether a row (as :func:`normalise` reads it) is left out of a slim read, keeping only its account
    (TargetUserName, TargetDomainName, TargetUserSid, host) for identity linking: the catalogue's account-only
    events (4624/4634) whose logon type opens no RDP session. Readers use this to skip such records once they have
    yielded one with the same account."""
    definition = lookup(channel, event_id)
    return (definition is not None and definition.slim is Slim.ACCOUNT
            and (logon_type is None or not -128 <= logon_type <= 127 or logon_type not in SESSION_LOGON_TYPES))


def needed_for_report(row: dict[str, Any]) -> bool:
    """Whether the report needs the row itself; the others (network and service logons, their logoffs: most of a
    Security log) only lend their account names and SIDs to identity linking."""
    return row["rdp"] or not observation_only(row["channel"], row["event_id"], row["logon_type"])


def row_needed_for_report(row: tuple[Any, ...]) -> bool:
    """:func:`needed_for_report` of a row from :func:`normalise_row`."""
    return row[_RDP] or not observation_only(row[_CHANNEL], row[_EVENT_ID], row[_LOGON_TYPE])


def rows_needed_for_report(rows: pa.RecordBatch) -> Any:
    """:func:`row_needed_for_report` of each row of ``rows`` (:func:`logon_schema`), as a numpy bool mask: the rule
    worked out once per distinct (channel, event id, logon type)."""
    import numpy as np

    keys = list(zip(*(rows.column(name).to_pylist() for name in ("channel", "event_id", "logon_type")), strict=True))
    needed = {key: not observation_only(*key) for key in set(keys)}
    return np.fromiter((needed[key] for key in keys), bool, len(keys)) | \
        rows.column("rdp").fill_null(False).to_numpy(zero_copy_only=False)


_RDP, _CHANNEL, _EVENT_ID, _LOGON_TYPE = (COLUMNS.index(name) for name in ("rdp", "channel", "event_id", "logon_type"))
#: Where a :func:`normalise_row` row keeps the account a slim read observes: user, domain, sid, host.
ACCOUNT_AT = (COLUMNS.index("user"), COLUMNS.index("domain"), COLUMNS.index("sid"), COLUMNS.index("host"))


class BatchBuilder:
    """Collects rows (tuples in :data:`COLUMNS` order) and turns them into Arrow record batches of bounded size."""

    def __init__(self, batch_rows: int = 65_536) -> None:
        self.batch_rows = batch_rows
        self._rows: list[tuple[Any, ...]] = []
        self._batches: list[pa.RecordBatch] = []
        """Rows already in columns (:meth:`add_batch`), before ``_rows``."""
        self._batched = 0

    @property
    def rows(self) -> int:
        return self._batched + len(self._rows)

    def add(self, row: dict[str, Any]) -> None:
        self._rows.append(tuple(row[name] for name in COLUMNS))

    def add_row(self, row: tuple[Any, ...]) -> None:
        self._rows.append(row)

    def add_batch(self, batch: pa.RecordBatch) -> None:
        """Rows in columns (:func:`logon_schema`), after the rows added so far."""
        if not batch.num_rows:
            return
        if self._rows:
            self._batches.append(self._columns())
        self._batches.append(batch)
        self._batched += batch.num_rows

    def full(self) -> bool:
        return self.rows >= self.batch_rows

    def _columns(self) -> pa.RecordBatch:
        import pyarrow as pa

        schema = logon_schema()
        columns = zip(*self._rows, strict=True) if self._rows else ([] for _ in COLUMNS)
        # as lists: pyarrow converts a tuple about 20 times slower than a list
        arrays = [pa.array(list(values), type=f.type) for values, f in zip(columns, schema, strict=True)]
        self._rows = []
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def flush(self) -> pa.RecordBatch:
        """Every row added since the last flush, as one batch."""
        import pyarrow as pa

        if not self._batches:
            return self._columns()
        if self._rows:
            self._batches.append(self._columns())
        parts, self._batches, self._batched = self._batches, [], 0
        if len(parts) == 1:
            return parts[0]
        return pa.Table.from_batches(parts, schema=logon_schema()).combine_chunks().to_batches()[0]


def empty_table() -> pa.Table:
    return logon_schema().empty_table()
