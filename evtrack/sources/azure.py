"""Azure Monitor / Microsoft Sentinel exports: Log Analytics query results as evidence and as stated coverage.

One reader for every export docs/azure.md tells admins to make, in any of the three file shapes
(:mod:`evtrack.sources.azure_formats`), told apart by their columns:

* ``SecurityEvent`` (4624/4634/4647/4778/4779/1102) -> channel ``Security``, the Windows EventData names as data
  keys: from the table's columns (TargetUserName, LogonType, IpAddress, AccountName, ...), else from its EventData
  XML. The table has no EventRecordId column (Azure Monitor Logs reference, SecurityEvent): record_id is None
  unless an export adds one.
* ``Event`` (EventLog, Source, EventData as an XML string ``<DataItem ...><EventData xmlns=...><Data Name=...>``,
  or ``<UserData><EventXML|EventInfo ...>`` for LocalSessionManager and RD Gateway events) and ``WindowsEvent``
  (Channel, Provider, EventRecordId, EventData as dynamic JSON; null when the agent could not parse the event,
  then RawEventData holds its XML) -> their channel, the payload flattened to data.
* ``WVDConnections`` -> channel :data:`WVD_CHANNEL`: a row in state ``Connected`` is evidence
  (:data:`WVD_CONNECTED`), ``Completed`` ends a connection (:data:`WVD_COMPLETED`), ``Started`` gives no row (a
  connection that never reached Connected was not use). computer = SessionHostName, user = UserName (a UPN).
* The hourly coverage export (Computer, Channel, TimeGenerated = the hour, Records = all events of that table from
  that computer in that hour) -> ``coverage.add_interval`` for each hour with Records > 0; for the WVD channel a
  0 also covers (the query makes a series over the whole range; the service logs every connection).

Evidence rows never go to coverage: an export covers its query's time range, which the file does not state.
``#NAME?`` (Excel's error for a value it read as a formula, left by re-saving the file) is reported with its line
and column; the row is skipped when the value is one the row needs, otherwise the value is dropped.
"""

from __future__ import annotations

import ast
import json
from collections import Counter
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from evtrack.errors import SourceError
from evtrack.sources.azure_formats import (
    AZ_TABLE_KEY,
    Export,
    MalformedCsv,
    Row,
    Shape,
    decode_head,
    header_names,
    json_column_names,
    json_text,
    open_export,
    strip_suffix,
)
from evtrack.sources.base import CoverageSink, FileStats, RawEvent, Reader, ReadPlan

READER_NAME = "azure"
WVD_CHANNEL = "Azure Virtual Desktop connections"
#: A WVDConnections row in state Connected: the user reached the session host (evidence).
WVD_CONNECTED = 1
#: A WVDConnections row in state Completed: the connection ended.
WVD_COMPLETED = 2
#: What the coverage query may write in its Channel column for WVDConnections.
WVD_TABLE = "WVDConnections"
SECURITY_CHANNEL = "Security"
GATEWAY_CHANNEL = "Microsoft-Windows-TerminalServices-Gateway/Operational"
SECURITY_PROVIDER = "Microsoft-Windows-Security-Auditing"
EVENTLOG_PROVIDER = "Microsoft-Windows-Eventlog"
WVD_PROVIDER = "Microsoft.DesktopVirtualization"
#: RD Gateway 302/303: payload ``UserData/EventInfo`` (Username, IpAddress, AuthType, Resource, ...).
GATEWAY_IDS = frozenset({302, 303})
GATEWAY_KEYS = frozenset({"Username", "IpAddress", "AuthType", "Resource", "ConnectionProtocol", "ErrorCode"})
#: The WVDConnections columns a row's data keeps.
WVD_KEYS = ("UserName", "ClientSideIPAddress", "CorrelationId", "ClientOS", "ClientType", "ConnectionType", "State")
HOUR_US = 3_600_000_000
#: What Excel writes in a cell whose text it took for a formula it could not evaluate (``-\\-``, ``=...``).
NAME_ERROR = "#NAME?"
_MAX_EVENT_ID = 0xFFFF
_MAX_RECORD_ID = (1 << 63) - 1


class Table(str, Enum):
    """The Log Analytics results this reader knows, by the table (or query) they come from."""

    SECURITY_EVENT = "SecurityEvent"
    EVENT = "Event"
    WINDOWS_EVENT = "WindowsEvent"
    WVD = "WVDConnections"
    COVERAGE = "coverage"


#: The columns each result needs (docs/azure.md projects them).
REQUIRED: dict[Table, tuple[str, ...]] = {
    Table.SECURITY_EVENT: ("TimeGenerated", "Computer", "EventID"),
    Table.EVENT: ("TimeGenerated", "Computer", "EventID", "EventLog", "EventData"),
    Table.WINDOWS_EVENT: ("TimeGenerated", "Computer", "EventID", "Channel", "EventData"),
    Table.WVD: ("TimeGenerated", "SessionHostName", "State", "UserName", "CorrelationId"),
    Table.COVERAGE: ("TimeGenerated", "Computer", "Channel", "Records"),
}
_TYPES = {table.value: table for table in Table if table is not Table.COVERAGE}

#: SecurityEvent columns that are no Windows EventData field (table metadata, or values Azure derives, such as
#: Account = "DOMAIN\\user" and LogonTypeName = "10 - RemoteInteractive"): never copied into data.
NOT_PAYLOAD = frozenset({
    "TimeGenerated", "Computer", "EventID", "Channel", "EventData", "EventSourceName", "Activity", "Account",
    "AccountType", "LogonTypeName", "SubjectAccount", "TargetAccount", "TargetUser", "Process", "FilePathNoUser",
    "Fqbn", "FullyQualifiedSubjectUserName", "FullyQualifiedSubjectMachineName", "SourceComputerId", "EventOriginId",
    "MG", "ManagementGroupName", "TenantId", "Type", "_ResourceId", "_SubscriptionId", "_BilledSize", "_IsBillable",
    "SourceSystem", "TimeCollected", "AzureDeploymentID", "Role", "Level", "Task", AZ_TABLE_KEY, "EventRecordId",
    "Provider", "RawEventData", "EventLog", "Source", "EventLevel", "EventLevelName", "EventCategory", "Message",
    "ParameterXml", "RenderedDescription", "UserName", "Correlation", "Keywords", "Opcode", "SystemProcessId",
    "SystemThreadId", "SystemUserId", "Version",
})
_WINDOWS_NEEDED = frozenset({"TimeGenerated", "Computer", "EventID", "Channel", "EventLog", "EventData",
                             "RawEventData"}) | GATEWAY_KEYS
_NEEDED: dict[Table, frozenset[str]] = {
    Table.WVD: frozenset({"TimeGenerated", "SessionHostName", "State", "UserName"}),
    Table.COVERAGE: frozenset(REQUIRED[Table.COVERAGE]),
}


def classify(columns: tuple[str, ...] | list[str] | set[str]) -> Table | None:
    """Which result an export holds, from its column names (datetime suffixes removed)."""
    names = set(columns)
    if "Records" in names and "EventID" not in names and "SessionHostName" not in names:
        return Table.COVERAGE
    if "SessionHostName" in names or {"State", "CorrelationId"} <= names:
        return Table.WVD
    if "EventLog" in names:
        return Table.EVENT
    if "Provider" in names or "RawEventData" in names:
        return Table.WINDOWS_EVENT
    if "EventID" in names:
        return Table.SECURITY_EVENT
    return None


def _claims(names: list[str]) -> bool:
    """Whether a header names a Log Analytics result this reader is for (a TimeGenerated column and the columns
    that tell its table): other CSV and JSON files are left to other readers."""
    found = set(names)
    if "TimeGenerated" not in found:
        return False
    return (({"EventID", "Computer"} <= found) or {"SessionHostName", "State"} <= found
            or {"Computer", "Channel", "Records"} <= found)


#: Columns only the Log Analytics results evtrack reads have (beside TimeGenerated): a header with one of them
#: says it is such a result even when a column evtrack needs is missing (:func:`claims`).
_TELLING = frozenset({"EventID", "SessionHostName", "Records", "EventLog", "RawEventData"})
#: (CorrelationId is not one: Entra ID's SigninLogs and AuditLogs, AzureActivity have it too.)


def _names(head: bytes) -> tuple[Shape | None, list[str]] | None:
    """A file's column names (datetime suffixes removed) and its JSON shape (None: a CSV header), from its first
    bytes; None when it is neither."""
    text = decode_head(head)
    if not text or text.startswith("<"):
        return None
    found = json_column_names(text)
    if found is not None:
        return found
    header = header_names(text)
    return None if header is None else (None, [strip_suffix(name)[0] for name in header])


def claims(head: bytes, path: Path) -> bool:
    """Whether a file says it is one of the Azure Monitor results evtrack reads although :func:`looks_like` does
    not take it (a column it needs is missing): a TimeGenerated column and one of :data:`_TELLING`. Its reader then
    names the missing column: a failed input, not a file a folder scan ignores."""
    del path
    found = _names(head)
    return found is not None and "TimeGenerated" in found[1] and not _TELLING.isdisjoint(found[1])


def looks_like(head: bytes, path: Path) -> bool:
    """Whether ``head`` (a file's first bytes) starts an Azure export: decided by its column names or JSON keys."""
    del path  # content only
    found = _names(head)
    if found is None:
        return False
    shape, names = found
    if shape is Shape.AZ_JSON and AZ_TABLE_KEY not in names:
        return False
    return _claims(names)


def read(path: Path, stats: FileStats, *, plan: ReadPlan = ReadPlan(), verify_checksums: bool = True,  # noqa: B008
         coverage: CoverageSink | None = None) -> Iterator[RawEvent]:
    """Stream the evidence rows of an Azure export, or feed its stated coverage to ``coverage``."""
    del verify_checksums  # no checksums in a query result
    stats.engine = READER_NAME
    export = open_export(path, plan.culture, plan.local_zone)
    table = classify(export.columns)
    if table is None:
        raise SourceError(path, f"{export.shape.value} whose columns ({', '.join(export.columns[:8])}"
                          f"{', ...' if len(export.columns) > 8 else ''}) are none of the results evtrack reads "
                          "(SecurityEvent, Event, WindowsEvent, WVDConnections, or the hourly coverage query): "
                          "run the queries of docs/azure.md")
    missing = [name for name in REQUIRED[table] if name not in export.columns]
    if missing:
        raise SourceError(path, f"a {table.value} export without the column{'s' if len(missing) > 1 else ''} "
                          f"{', '.join(missing)}: run the query of docs/azure.md, which projects them")
    rows = _Rows(path, stats, plan, export, coverage)
    try:
        for row in export.rows:
            event = rows.read(row, table)
            if event is not None:
                rows.reached(event)
                yield event
    except MalformedCsv as exc:
        stats.add_issue("file", f"malformed CSV from here on ({exc.reason}): the rest of the file was not read", 0)
    rows.finish()


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if number.is_integer() else None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _text(element: Element) -> str | None:
    text = "".join(element.itertext())
    return text if text != "" else None


def xml_payload(text: str) -> dict[str, str | None]:
    """The payload of an event's XML in any wrapping (``<Event>``, the Event table's ``<DataItem>``, a bare
    ``<EventData>``): ``EventData/Data[@Name]``, or the children of ``UserData``'s first element. ValueError when
    it is no XML."""
    try:
        root = fromstring(text.strip(), forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, SyntaxError) as exc:
        raise ValueError(f"unreadable event XML ({exc})") from None
    for element in root.iter():
        name = _local(element.tag)
        if name == "EventData":
            items = [item for item in element if _local(item.tag) == "Data"]
            if items or not len(element):
                return {item.get("Name") or f"Data{index + 1}": _text(item) for index, item in enumerate(items)}
        elif name == "UserData":
            for payload in element:
                return {_local(item.tag): _text(item) for item in payload}
            return {}
    return {}


def json_payload(value: Any) -> dict[str, str | None]:
    """WindowsEvent's EventData (dynamic) flattened: its scalar members by name; a nested object (a UserData
    element such as ``EventXML``) contributes its own members; XML attribute members (``@...``, ``xmlns``) are
    dropped."""
    if isinstance(value, list):
        return {f"Data{index + 1}": json_text(item) for index, item in enumerate(value)}
    if not isinstance(value, dict):
        return {}
    data: dict[str, str | None] = {}
    for key, item in value.items():
        key = str(key)
        if key.startswith(("@", "#")) or key == "xmlns":
            continue
        if isinstance(item, dict):
            data.update(json_payload(item))
        elif isinstance(item, list) and (pairs := [_named(x) for x in item]) and all(pairs):
            data.update(pair for pair in pairs if pair)  # [{"@Name": ..., "#text": ...}]: Data elements as JSON
        else:
            data[key] = json_text(item)
    return data


def _named(item: Any) -> tuple[str, str | None] | None:
    """A ``<Data Name="...">`` element converted to JSON (``{"@Name": n, "#text": v}`` or ``{"Name", "Value"}``)."""
    if not isinstance(item, dict):
        return None
    for name_key, text_key in (("@Name", "#text"), ("Name", "#text"), ("Name", "Value"), ("@Name", "Value")):
        name = item.get(name_key)
        if isinstance(name, str):
            return name, json_text(item.get(text_key))
    return None


def _parse_dynamic(text: str) -> Any:
    """A dynamic value's text: JSON, or the Python form (``{'User': ...}``) the az CLI writes for an object."""
    try:
        return json.loads(text)
    except ValueError:
        if text.lstrip().startswith(("{", "[")):
            try:
                return ast.literal_eval(text)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                pass
        raise ValueError("EventData is neither JSON nor XML") from None


def payload(values: dict[str, str | None]) -> tuple[dict[str, str | None], str | None]:
    """An event row's payload (EventData, else RawEventData) and, when there is none, why."""
    problem = None
    for column in ("EventData", "RawEventData"):
        text = values.get(column)
        if text is None or not text.strip():
            continue
        try:
            if text.lstrip().startswith("<"):
                return xml_payload(text), None
            return json_payload(_parse_dynamic(text)), None
        except ValueError as exc:
            problem = f"{column}: {exc}"
    return {}, problem or "no EventData (null: the agent could not parse the event) and no RawEventData"


def default_provider(channel: str, event_id: int) -> str:
    """The Windows provider of an event whose table does not name it."""
    if channel.lower() == SECURITY_CHANNEL.lower():
        return EVENTLOG_PROVIDER if event_id == 1102 else SECURITY_PROVIDER
    return channel.split("/", 1)[0]


class _Rows:
    """Maps one export's rows to events, keeping its issues and counts in ``stats``."""

    def __init__(self, path: Path, stats: FileStats, plan: ReadPlan, export: Export,
                 coverage: CoverageSink | None) -> None:
        self.path = path
        self.stats = stats
        self.export = export
        self.coverage = coverage
        self.times = export.time_reader("TimeGenerated")
        self.needed = dict(_NEEDED)
        windows = _WINDOWS_NEEDED | plan.payload_keys
        for table in (Table.SECURITY_EVENT, Table.EVENT, Table.WINDOWS_EVENT):
            self.needed[table] = windows
        self.payload_ids = plan.wanted_ids | GATEWAY_IDS
        self.unknown_states: Counter[str] = Counter()
        self.reach: dict[str, tuple[int, int]] = {}
        """Per log, the first and last time of this export's evidence rows."""

    def reached(self, event: RawEvent) -> None:
        """Note how far this export's evidence rows reach: rows of the ids evtrack reads as evidence only (another
        query's result read as SecurityEvent, failed logons say, vouches for nothing)."""
        if event.time_us is not None and (event.event_id in self.payload_ids or event.channel == WVD_CHANNEL):
            first, last = self.reach.get(event.channel, (event.time_us, event.time_us))
            self.reach[event.channel] = (min(first, event.time_us), max(last, event.time_us))

    def skip(self, row: Row, reason: str) -> None:
        self.stats.add_issue(row.where, f"{reason}: row skipped", 1)

    def read(self, row: Row, table: Table) -> RawEvent | None:
        """The event a row gives (None: no event, or skipped with an issue)."""
        if not row.values:
            self.skip(row, row.problem or "not as many fields as the header has columns")
            return None
        if table is not Table.COVERAGE:
            table = _TYPES.get(row.values.get("Type") or "", table)
        values = self.clean(row, table)
        if values is None:
            return None
        if table is Table.COVERAGE:
            self.cover(row, values)
            return None
        if table is Table.WVD:
            return self.wvd(row, values)
        return self.windows(row, values, table)

    def clean(self, row: Row, table: Table) -> dict[str, str | None] | None:
        """The row's values with Excel's ``#NAME?`` taken out and said; None when one of them is needed."""
        broken = [name for name, value in row.values.items() if value is not None and value.strip() == NAME_ERROR]
        if not broken:
            return row.values
        needed = [name for name in broken if name in self.needed[table]]
        columns = ", ".join(broken)
        why = (f"{NAME_ERROR} in column{'s' if len(broken) > 1 else ''} {columns} (Excel re-saved this file and "
               "replaced a value it took for a formula): export the query result again")
        if needed:
            self.skip(row, why)
            return None
        self.stats.add_issue(row.where, f"{why}; value ignored", 0)
        return {name: (None if name in broken else value) for name, value in row.values.items()}

    def time(self, row: Row, values: dict[str, str | None]) -> int | None:
        text = values.get("TimeGenerated")
        if text is None:
            self.skip(row, "no TimeGenerated")
            return None
        try:
            instant = self.times.read(text)
        except ValueError as exc:
            self.skip(row, f"TimeGenerated: {exc}")
            return None
        if instant.note:
            self.stats.add_issue(row.where, instant.note, 0)
        return instant.time_us

    def count(self, channel: str) -> None:
        self.stats.records += 1
        self.stats.per_channel[channel] += 1

    def windows(self, row: Row, values: dict[str, str | None], table: Table) -> RawEvent | None:
        event_id = _int(values.get("EventID"))
        if event_id is None or not 0 <= event_id <= _MAX_EVENT_ID:
            self.skip(row, f"EventID {values.get('EventID')!r} is no event id")
            return None
        computer = values.get("Computer")
        if not computer:
            self.skip(row, "no Computer")
            return None
        channel = values.get("Channel") or values.get("EventLog")
        if not channel:
            if table is not Table.SECURITY_EVENT:
                self.skip(row, "no Channel / EventLog")
                return None
            channel = SECURITY_CHANNEL
        time_us = self.time(row, values)
        if time_us is None:
            return None
        record_id = _int(values.get("EventRecordId"))
        if record_id is not None and not 0 <= record_id <= _MAX_RECORD_ID:
            record_id = None
        provider = (values.get("EventSourceName") or values.get("Source") or values.get("Provider")
                    or default_provider(channel, event_id))
        data, problem = payload(values)
        if table is Table.SECURITY_EVENT:
            for name, value in values.items():
                if value is not None and name not in NOT_PAYLOAD:
                    data[name] = value
        if not data and problem is not None and event_id in self.payload_ids:
            self.skip(row, f"event {event_id} without its payload ({problem})")
            return None
        self.count(channel)
        return RawEvent(time_us, event_id, record_id, channel, computer, provider, data)

    def wvd(self, row: Row, values: dict[str, str | None]) -> RawEvent | None:
        state = (values.get("State") or "").strip()
        event_id = {"connected": WVD_CONNECTED, "completed": WVD_COMPLETED}.get(state.lower())
        if event_id is None:
            if state.lower() != "started":
                self.unknown_states[state or "(empty)"] += 1
                return None
            self.count(WVD_CHANNEL)  # a connection attempt: read, but not use
            return None
        computer = values.get("SessionHostName")
        if not computer:
            self.skip(row, f"a {state} connection without SessionHostName")
            return None
        time_us = self.time(row, values)
        if time_us is None:
            return None
        self.count(WVD_CHANNEL)
        data = {key: values.get(key) for key in WVD_KEYS}
        return RawEvent(time_us, event_id, None, WVD_CHANNEL, computer, WVD_PROVIDER, data)

    def cover(self, row: Row, values: dict[str, str | None]) -> None:
        computer, channel = values.get("Computer"), values.get("Channel")
        if not computer or not channel:
            self.skip(row, "a coverage row without Computer or Channel")
            return
        if channel in (WVD_TABLE, WVD_CHANNEL):
            channel = WVD_CHANNEL
        records = _int(values.get("Records"))
        if records is None or records < 0:
            self.skip(row, f"Records {values.get('Records')!r} is no count")
            return
        start = self.time(row, values)
        if start is None:
            return
        if start % HOUR_US:
            self.skip(row, f"TimeGenerated {values.get('TimeGenerated')!r} does not start an hour (the coverage "
                      "query bins by 1h)")
            return
        self.count(channel)
        if self.coverage is not None and (records > 0 or channel == WVD_CHANNEL):
            # an hour the WVD series counts 0 connection rows for holds none an evidence export could lack
            self.coverage.add_interval(computer, channel, start, start + HOUR_US, needs_evidence=records > 0)

    def finish(self) -> None:
        """Say what was left out without a row-level issue each; hand on how far the evidence rows reach."""
        if self.coverage is not None:
            for channel, (first, last) in sorted(self.reach.items()):
                self.coverage.add_reach(channel, first, last)
        for state, count in sorted(self.unknown_states.items()):
            self.stats.add_issue("file", f"{count:,} WVDConnections row{'s' if count > 1 else ''} in state "
                                 f"{state!r}, which evtrack does not know (Started, Connected, Completed): "
                                 "not read", count)


#: Azure exports as :mod:`evtrack.reading` reads them: fills coverage itself (hourly counts only).
READER = Reader(READER_NAME, read, fills_coverage=True)
