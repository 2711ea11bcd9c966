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
from evtrack.sources.base import RawEvent

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["COLUMNS", "ENCODED_COLUMNS", "LSM", "RCM", "SECURITY", "SYSTEM", "BatchBuilder", "Evidence", "Kind",
           "as_report_reads", "classify", "decoded", "empty_table", "encode", "encoded_schema", "is_ip",
           "is_remote_ip", "logon_schema", "needed_for_report", "normalise", "normalise_row", "observation_only",
           "parse_ip", "row_needed_for_report"]


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
    maker = _MAKERS.get(id(definition))
    if maker is None or maker.definition is not definition:
        maker = _MAKERS[id(definition)] = _Maker(definition)
    return maker.row(raw, source)


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
            _int(get(fields.session_id)) if fields.session_id else None,
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


_RDP, _CHANNEL, _EVENT_ID, _LOGON_TYPE = (COLUMNS.index(name) for name in ("rdp", "channel", "event_id", "logon_type"))
#: Where a :func:`normalise_row` row keeps the account a slim read observes: user, domain, sid, host.
ACCOUNT_AT = (COLUMNS.index("user"), COLUMNS.index("domain"), COLUMNS.index("sid"), COLUMNS.index("host"))


class BatchBuilder:
    """Collects rows (tuples in :data:`COLUMNS` order) and turns them into Arrow record batches of bounded size."""

    def __init__(self, batch_rows: int = 65_536) -> None:
        self.batch_rows = batch_rows
        self._rows: list[tuple[Any, ...]] = []

    @property
    def rows(self) -> int:
        return len(self._rows)

    def add(self, row: dict[str, Any]) -> None:
        self._rows.append(tuple(row[name] for name in COLUMNS))

    def add_row(self, row: tuple[Any, ...]) -> None:
        self._rows.append(row)

    def full(self) -> bool:
        return len(self._rows) >= self.batch_rows

    def flush(self) -> pa.RecordBatch:
        import pyarrow as pa

        schema = logon_schema()
        columns = zip(*self._rows, strict=True) if self._rows else ([] for _ in COLUMNS)
        # as lists: pyarrow converts a tuple about 20 times slower than a list
        arrays = [pa.array(list(values), type=f.type) for values, f in zip(columns, schema, strict=True)]
        self._rows = []
        return pa.RecordBatch.from_arrays(arrays, schema=schema)


def empty_table() -> pa.Table:
    return logon_schema().empty_table()
