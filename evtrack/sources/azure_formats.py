"""The three file shapes a Log Analytics (Azure Monitor / Microsoft Sentinel) query result is exported in, read into
one stream of rows of text. What the rows mean (which table, which event) is :mod:`evtrack.sources.azure`.

* **Portal CSV** ("Export > CSV" in the Logs blade): UTF-8 with a BOM, a header of column names, datetime
  columns suffixed `` [UTC]`` or `` [Local Time]`` (the portal's display zone), values formatted in the portal's
  display language (en-US ``"1/14/2026, 9:05:33.123 AM"``, en-GB ``"14/01/2026, 09:05:33.123"``), quoted where
  needed (RFC 4180: quotes doubled, line breaks inside quotes: SecurityEvent's EventData is multi-line XML).
  Day/month order is inferred from the data where it decides, else taken from the culture setting, else refused.
* **az CLI JSON** (``az monitor log-analytics query -o json``): the CLI turns each row into an object with a
  ``TableName`` key and ``str(value)`` of every column (``"4624"``, ``"None"``, ``"True"``), and knack's JSON
  output sorts the keys (``json.dumps(..., sort_keys=True, indent=2)``; microsoft/knack ``knack/output.py``
  ``format_json``; the row transform is azure-cli's log-analytics ``Query._output``).
* **Query API JSON** (``POST /v1/workspaces/{id}/query``): ``{"tables": [{"name", "columns": [{"name",
  "type"}], "rows": [[...]]}]}`` with typed values (Microsoft Learn, "Azure Monitor Log Analytics API response
  format").

Every value becomes text (``None`` for null, empty or ``"None"``); a dynamic value that is an object becomes its
JSON text. JSON files are parsed whole (``json``): an export is the result of one query, bounded by the service's
result limits.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from enum import Enum
from pathlib import Path
from typing import Any

from evtrack.errors import SourceError
from evtrack.sources.base import CUT_INSIDE_QUOTES, csv_records, datetime_to_us
from evtrack.sources.snapshots import MONTH_FIRST_CULTURES, local_to_us
from evtrack.sources.xmlfile import parse_system_time

#: Header suffixes the portal adds to datetime columns, and whether the values are in UTC.
UTC_SUFFIX = " [UTC]"
LOCAL_SUFFIX = " [Local Time]"
#: The az CLI's extra key on every row (the result table's name, "PrimaryResult").
AZ_TABLE_KEY = "TableName"
#: The text the az CLI writes for a null (``str(None)``).
AZ_NULL = "None"

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_CULTURE_RE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
#: A portal datetime: date (d/m/y, m/d/y, d.m.y or y-m-d), an optional comma, time with optional seconds and
#: fraction (``.`` or ``,``), optional AM/PM. ``\s`` also matches the narrow no-break space newer browsers put
#: before AM/PM.
_PORTAL_TIME_RE = re.compile(
    r"^(\d{1,4})([./-])(\d{1,2})\2(\d{1,4}),?\s+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"(?:\s*([AaPp])\.?\s?[Mm]\.?)?$"
)
_ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


class Shape(str, Enum):
    """The file shapes a Log Analytics result is exported in."""

    PORTAL_CSV = "portal CSV"
    AZ_JSON = "az CLI JSON"
    API_JSON = "query API JSON"


@dataclass(frozen=True, slots=True)
class Row:
    """One result row: where it is in the file and every column's value as text."""

    where: str
    """``line 12`` (CSV: the line the row starts on) or ``row 3`` (JSON: 1-based, in file order)."""
    values: dict[str, str | None]
    problem: str | None = None
    """Why the row cannot be read at all (its values are then empty), when it is not a count of fields."""


@dataclass(frozen=True, slots=True)
class Instant:
    """A time read from a cell: microseconds since the Unix epoch (UTC), and what to say about it, if anything."""

    time_us: int
    note: str | None = None
    """Set for a local time that does not exist or occurs twice (a DST change): how it was read."""


@dataclass(frozen=True, slots=True)
class TimeReader:
    """Reads the datetime cells of one export: ISO 8601 (JSON, or a CSV written so), or the portal's localised form
    with the day/month order decided for the whole file."""

    day_first: bool | None = None
    """The portal form's order: True d/m, False m/d, None not needed (no ambiguous value in the file)."""
    zone: tzinfo | None = None
    """Set when the values are local times (a `` [Local Time]`` column); None for UTC."""

    def read(self, text: str) -> Instant:
        """The instant ``text`` names; ValueError (with the reason) when it is no time this export writes."""
        text = text.strip()
        if _ISO_RE.match(text):
            return self._iso(text)
        match = _PORTAL_TIME_RE.match(text)
        if match is None:
            raise ValueError(f"not a date and time: {text!r}")
        first, _sep, second, third, hour, minute, sec, fraction, half = match.groups()
        if len(first) == 4:
            year, month, day = int(first), int(second), int(third)
        else:
            if len(third) != 4:
                raise ValueError(f"no four-digit year in {text!r}")
            a, b = int(first), int(second)
            if self.day_first is None and a != b:
                raise ValueError(f"day/month order unknown for {text!r}")
            day, month = (a, b) if self.day_first else (b, a)
            year = int(third)
        hours = int(hour)
        if half is not None:
            if not 1 <= hours <= 12:
                raise ValueError(f"hour {hours} with AM/PM in {text!r}")
            hours = hours % 12 + (12 if half in "Pp" else 0)
        micro = int((fraction or "").ljust(6, "0")[:6])
        try:
            naive = datetime(year, month, day, hours, int(minute), int(sec or 0), micro)  # noqa: DTZ001
        except ValueError as exc:
            raise ValueError(f"not a valid date and time: {text!r} ({exc})") from None
        return self._place(naive, text)

    def _iso(self, text: str) -> Instant:
        has_zone = text.endswith(("Z", "z")) or re.search(r"[+-]\d{2}:?\d{2}$", text[10:]) is not None
        if has_zone or self.zone is None:
            time_us = parse_system_time(text)
            if time_us is None:
                raise ValueError(f"not a valid date and time: {text!r}")
            return Instant(time_us)
        time_us = parse_system_time(text + "Z")  # a local ISO time: its wall-clock reading, then placed in the zone
        if time_us is None:
            raise ValueError(f"not a valid date and time: {text!r}")
        wall = datetime(1970, 1, 1) + timedelta(microseconds=time_us)  # noqa: DTZ001
        return self._place(wall, text)

    def _place(self, naive: datetime, text: str) -> Instant:
        if self.zone is None:
            return Instant(datetime_to_us(naive.replace(tzinfo=timezone.utc)))
        return local_instant(naive, self.zone, text)


def local_instant(naive: datetime, zone: tzinfo, text: str) -> Instant:
    """A wall-clock time in ``zone``: fold=0 where a DST change makes it occur twice or not at all, said in the
    note (the snapshots' rule, :func:`evtrack.sources.snapshots.local_to_us`)."""
    time_us, why = local_to_us(naive, zone)
    return Instant(time_us, None if why is None else f"{text!r} {why}")


def day_first_culture(culture: str) -> bool:
    """Whether ``culture`` (``en-US``, ``en-GB``, ``de-DE``...) writes short dates day before month."""
    return culture.strip().lower().replace("_", "-") not in MONTH_FIRST_CULTURES


@dataclass(slots=True)
class Export:
    """An opened export: its shape, its column names (datetime suffixes removed), its rows and how to read its
    times."""

    shape: Shape
    columns: tuple[str, ...]
    rows: Iterator[Row]
    times: TimeReader
    """How to read the datetime cells of columns in UTC (or with an offset of their own)."""
    local_times: TimeReader | None = None
    """How to read those of the `` [Local Time]`` columns named in :attr:`local_columns`."""
    local_columns: frozenset[str] = frozenset()

    def time_reader(self, column: str) -> TimeReader:
        """The reader for the datetime cells of ``column``."""
        if self.local_times is not None and column in self.local_columns:
            return self.local_times
        return self.times


def _encoding(raw: bytes) -> str:
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return encoding
    return "utf-8"


def decode_head(head: bytes) -> str:
    """The first bytes of a file as text (BOM-aware, damage ignored), without the BOM and leading blanks."""
    return head.decode(_encoding(head), errors="ignore").lstrip("\ufeff").lstrip()


def strip_suffix(name: str) -> tuple[str, bool | None]:
    """A portal column header without its datetime suffix, and whether that suffix said UTC (True), local time
    (False) or nothing (None)."""
    if name.endswith(UTC_SUFFIX):
        return name[: -len(UTC_SUFFIX)], True
    if name.endswith(LOCAL_SUFFIX):
        return name[: -len(LOCAL_SUFFIX)], False
    return name, None


def _delimiter(header_line: str) -> str:
    """``,`` as the portal writes; ``;`` for a file Excel re-saved with a European list separator."""
    outside = re.sub(r'"[^"]*"', "", header_line)
    return ";" if ";" in outside and "," not in outside else ","


def header_names(text: str) -> list[str] | None:
    """The column names of a CSV header (the first line of ``text``), suffixes kept; None when it is no CSV."""
    line = text.split("\n", 1)[0].rstrip("\r")
    if not line:
        return None
    try:
        return next(csv.reader([line], delimiter=_delimiter(line)))
    except (csv.Error, StopIteration):
        return None


def json_column_names(text: str) -> tuple[Shape, list[str]] | None:
    """The shape and column names of a JSON export from its first bytes (the file may be cut off), or None."""
    if text.startswith("["):
        start = text.find("{")
        if start < 0:
            return None
        try:
            first, _end = json.JSONDecoder().raw_decode(text, start)
            keys = list(first) if isinstance(first, dict) else []
        except ValueError:  # the first row does not fit in the head: its keys, as far as they go
            keys = re.findall(r'"((?:[^"\\]|\\.)+)"\s*:', text[start:])
        return Shape.AZ_JSON, keys
    if text.startswith("{") and '"tables"' in text:
        names = re.findall(r'\{\s*"name"\s*:\s*"([^"\\]+)"\s*,\s*"type"\s*:', text)
        names += re.findall(r'\{\s*"type"\s*:\s*"[^"\\]*"\s*,\s*"name"\s*:\s*"([^"\\]+)"', text)
        return Shape.API_JSON, names
    return None


def open_export(path: Path, culture: str | None, local_zone: tzinfo | None) -> Export:
    """Open an export of any of the three shapes. Raises SourceError when the file as a whole cannot be read: not
    text, not JSON, local times without a zone, dates whose day/month order nothing decides."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as exc:
        raise SourceError(path, f"cannot open: {exc.strerror or exc}") from exc
    encoding = _encoding(head)
    try:
        with path.open(encoding=encoding, newline="") as handle:
            first = handle.read(1 << 16).lstrip("\ufeff").lstrip()
    except UnicodeDecodeError as exc:
        raise SourceError(path, f"not {encoding} text ({exc.reason} at byte {exc.start}): export the query result "
                          "again (the portal writes UTF-8; a copy re-saved by Excel may not be)") from None
    except OSError as exc:
        raise SourceError(path, f"cannot read: {exc.strerror or exc}") from exc
    if first.startswith(("[", "{")):
        return _open_json(path, encoding)
    return _open_csv(path, encoding, culture, local_zone)


def _load_json(path: Path, encoding: str) -> Any:
    try:
        return json.loads(path.read_text(encoding=encoding).lstrip("\ufeff"))
    except UnicodeDecodeError as exc:
        raise SourceError(path, f"not {encoding} text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise SourceError(path, f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg} (the file was "
                          "cut short or edited): export the query result again") from None
    except OSError as exc:
        raise SourceError(path, f"cannot read: {exc.strerror or exc}") from exc


def json_text(value: Any) -> str | None:
    """A JSON value as the text evtrack keeps: strings as they are, numbers in decimal, booleans as ``True`` /
    ``False`` (what the az CLI writes), objects and arrays as their JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _open_json(path: Path, encoding: str) -> Export:
    document = _load_json(path, encoding)
    if isinstance(document, list):
        return _az_export(path, document)
    if isinstance(document, dict) and isinstance(document.get("tables"), list):
        return _api_export(path, document["tables"])
    raise SourceError(path, "JSON that is neither `az monitor log-analytics query -o json` output (an array of "
                      'rows) nor a Log Analytics query API response ({"tables": [...]})')


def _az_export(path: Path, document: list[Any]) -> Export:
    if not all(isinstance(item, dict) for item in document):
        raise SourceError(path, "a JSON array whose items are not all objects: not az CLI query output")
    columns: dict[str, None] = {}
    for item in document[:1]:
        columns.update(dict.fromkeys(key for key in item if key != AZ_TABLE_KEY))

    def rows() -> Iterator[Row]:
        for number, item in enumerate(document, 1):
            values: dict[str, str | None] = {}
            for key, value in item.items():
                if key == AZ_TABLE_KEY:
                    continue
                text = json_text(value)
                values[key] = None if text in (AZ_NULL, "") else text
            yield Row(f"row {number}", values)

    return Export(Shape.AZ_JSON, tuple(columns), rows(), TimeReader())


def _api_export(path: Path, tables: list[Any]) -> Export:
    chosen = [t for t in tables if isinstance(t, dict) and t.get("name") == "PrimaryResult"] or [
        t for t in tables if isinstance(t, dict)]
    for table in chosen:
        if not isinstance(table.get("columns"), list) or not isinstance(table.get("rows"), list):
            raise SourceError(path, "a query API response whose table has no columns or rows")
    names = [[str(c.get("name")) if isinstance(c, dict) else str(c) for c in t["columns"]] for t in chosen]
    columns: dict[str, None] = {}
    for table_names in names:
        columns.update(dict.fromkeys(table_names))

    def rows() -> Iterator[Row]:
        number = 0
        for table, table_names in zip(chosen, names, strict=True):
            for row in table["rows"]:
                number += 1
                if not isinstance(row, list) or len(row) != len(table_names):
                    yield Row(f"row {number}", {})
                    continue
                yield Row(f"row {number}", {name: _api_text(value) for name, value in zip(table_names, row,
                                                                                          strict=True)})

    return Export(Shape.API_JSON, tuple(columns), rows(), TimeReader())


def _api_text(value: Any) -> str | None:
    text = json_text(value)
    return None if text == "" else text


def _csv_records(path: Path, encoding: str, delimiter: str) -> Iterator[tuple[int, list[str] | None]]:
    """(line the record starts on, fields) for each record; blank lines are skipped; a last record the file ends
    inside a quoted value of is None (:func:`evtrack.sources.base.csv_records`)."""
    with path.open(encoding=encoding, newline="") as handle:
        yield from csv_records(handle, delimiter)


def _open_csv(path: Path, encoding: str, culture: str | None, local_zone: tzinfo | None) -> Export:
    with path.open(encoding=encoding, newline="") as handle:
        header_line = handle.readline().lstrip("\ufeff")
    delimiter = _delimiter(header_line.rstrip("\r\n"))
    records = _csv_records(path, encoding, delimiter)
    try:
        _line, header = next(records)
    except StopIteration:
        raise SourceError(path, "an empty CSV file (no header)") from None
    except csv.Error as exc:
        raise SourceError(path, f"malformed CSV header: {exc}") from None
    if header is None:
        raise SourceError(path, "the file ends inside its header's quoted value: cut short, export it again")
    header[0] = header[0].lstrip("\ufeff")
    columns: list[str] = []
    utc_flags: dict[str, bool] = {}
    for name in header:
        plain, utc = strip_suffix(name)
        columns.append(plain)
        if utc is not None:
            utc_flags[plain] = utc
    local = [name for name, utc in utc_flags.items() if not utc]
    zone = None
    if local:
        zone = _zone(path, local_zone, local[0])
    time_columns = [index for index, name in enumerate(columns) if name in utc_flags or name == "TimeGenerated"]
    day_first = _day_order(path, encoding, delimiter, time_columns, columns, culture)
    local_times = TimeReader(day_first, zone) if zone is not None else None
    return Export(Shape.PORTAL_CSV, tuple(columns), _csv_rows(path, records, columns), TimeReader(day_first),
                  local_times, frozenset(local))


def _csv_rows(path: Path, records: Iterator[tuple[int, list[str] | None]], columns: list[str]) -> Iterator[Row]:
    try:
        for line, record in records:
            if record is None:
                yield Row(f"line {line}", {}, CUT_INSIDE_QUOTES)
                continue
            if len(record) != len(columns):
                yield Row(f"line {line}", {})
                continue
            yield Row(f"line {line}", {name: (value if value != "" else None)
                                       for name, value in zip(columns, record, strict=True)})
    except csv.Error as exc:
        raise MalformedCsv(path, str(exc)) from None


class MalformedCsv(SourceError):
    """The CSV turned malformed part-way (an unbalanced quote): what came before was read."""


def _zone(path: Path, local_zone: tzinfo | None, column: str) -> tzinfo:
    if local_zone is None:
        raise SourceError(path, f"'{column}' is in the portal's local time ('{column}{LOCAL_SUFFIX}'), which the "
                          "file does not name: give its time zone with --input-tz (e.g. --input-tz "
                          "Europe/Berlin) or [inputs] tz, or export again with the portal's display time zone set "
                          "to UTC")
    return local_zone


def _day_order(path: Path, encoding: str, delimiter: str, time_columns: list[int], columns: list[str],
               culture: str | None) -> bool | None:
    """Whether the file's portal-form dates put the day first, decided by its data where a value decides it, else
    by ``culture``; None when no value needs an order. Raises SourceError when nothing decides it."""
    if not time_columns:
        return None
    day_first_seen: str | None = None
    month_first_seen: str | None = None
    ambiguous: str | None = None
    records = _csv_records(path, encoding, delimiter)
    try:
        next(records, None)
        for _line, record in records:
            for index in time_columns:
                if record is None or index >= len(record):
                    continue
                match = _PORTAL_TIME_RE.match(record[index].strip())
                if match is None or len(match.group(1)) == 4:
                    continue
                a, b = int(match.group(1)), int(match.group(3))
                # no culture writes month.day.year: dots put the day first
                if match.group(2) == "." or (a > 12 and b <= 12):
                    day_first_seen = day_first_seen or record[index]
                elif b > 12 and a <= 12:
                    month_first_seen = month_first_seen or record[index]
                elif ambiguous is None and a != b:  # 5/5 reads the same either way
                    ambiguous = record[index]
            if day_first_seen and month_first_seen:
                raise SourceError(path, f"dates in both day/month orders ({day_first_seen!r} and "
                                  f"{month_first_seen!r}): the file mixes exports from different display languages")
    except csv.Error:
        pass  # the rows read will stop at the same place, with an issue
    if day_first_seen or month_first_seen:
        return day_first_seen is not None
    if ambiguous is None:
        return None
    if culture is None:
        names = ", ".join(f"'{columns[index]}'" for index in time_columns)
        raise SourceError(path, f"the dates in {names} (e.g. {ambiguous!r}) do not show whether the day or the "
                          "month comes first: give the portal's display language with --culture (en-US: month "
                          "first; en-GB, fr-FR, de-DE: day first) or [inputs] culture")
    if not _CULTURE_RE.match(culture.strip()):
        raise SourceError(path, f"unknown culture {culture!r} (--culture / [inputs] culture): use a name such "
                          "as en-US or en-GB")
    return day_first_culture(culture)
