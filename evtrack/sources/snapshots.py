"""What the session-snapshot readers share: channel names and event ids, text decoding, poll times, local dates.

Two inputs are snapshots of the sessions alive at one instant, taken by polling: a Connection Broker's
``Get-RDUserSession | Export-Csv`` (:mod:`evtrack.sources.broker_csv`) and ``query user /server:HOST``
(:mod:`evtrack.sources.query_user`). Each snapshot becomes one :data:`POLL` record (the poll ran: coverage) and,
per user session, a :data:`SESSION_LISTED` record at the poll time and a :data:`SESSION_CREATED` record at the
session's start (evidence, never coverage).

Both write dates as ``ToString()`` in the polling machine's culture and local time zone, without an offset
(``1/14/2026 9:05:33 AM``, ``14/01/2026 09:05:33``, ``14.01.2026 09:05``). The day/month order is inferred from
the file's own dates where they decide it (a field above 12; an order that would put a session's start after
its poll); otherwise the configured culture decides; otherwise the file is refused, naming ``--culture``. Local
times go to UTC through the configured zone; a time the clock change makes ambiguous or skips is read with
``fold=0`` and reported.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from enum import Enum
from pathlib import Path

from evtrack.errors import SourceError
from evtrack.sources.base import FileStats, datetime_to_us, unreadable, us_to_datetime
from evtrack.sources.xmlfile import parse_system_time

BROKER_CHANNEL = "Connection Broker sessions"
"""Sessions listed by ``Get-RDUserSession`` on a Connection Broker."""
QUERY_USER_CHANNEL = "query user sessions"
"""Sessions listed by ``query user /server:HOST`` on a session host."""
BROKER_PROVIDER = "Get-RDUserSession"
QUERY_USER_PROVIDER = "query user"

POLL = 1
"""A poll ran (one per snapshot, also when it listed no session): the only record that goes to coverage."""
SESSION_LISTED = 2
"""A user session in the snapshot, at the poll time."""
SESSION_CREATED = 3
"""The same session at its start (CreateTime / LOGON TIME)."""

#: ``evtrack poll`` and the collection script name their files ``<kind>_<HOST>_<yyyyMMddTHHmmssZ>.<ext>``.
STAMP_PATTERN = r"\d{8}T\d{6}Z"
_DAY_US = 86_400_000_000
#: How far a session's start may lie after the poll that lists it (the clocks of a broker and a session host
#: differ by minutes at most); later is impossible: a wrong clock, or a wrong --input-tz.
POLL_SKEW_US = 15 * 60 * 1_000_000


def after_its_poll(start_us: int, poll_us: int | None, what: str, where: str, stats: FileStats) -> bool:
    """Whether a listed session's start lies after the poll that lists it (more than :data:`POLL_SKEW_US`); if so
    an issue says so: the listing still counts, the start is no sign-in."""
    if poll_us is None or start_us <= poll_us + POLL_SKEW_US:
        return False
    stats.add_issue(where, f"{what} is after the poll that lists the session (a wrong clock, or a wrong --input-tz?): "
                           "the listing counts, the start is not taken as a sign-in", 0)
    return True
_MAX_SNAPSHOT_BYTES = 256 << 20


# ---------------------------------------------------------------------------------------------------------------
# Text


_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    encoding: str
    """The encoding the text was decoded with (``utf-16-le`` for a BOM-marked UTF-16 file)."""
    damaged: bool = False
    """Some bytes were not valid in ``encoding`` and became U+FFFD."""


def sniff_encoding(raw: bytes) -> str | None:
    """The encoding a BOM, or the NUL bytes of BOM-less UTF-16, give away; None when the bytes do not say."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return encoding
    sample = raw[:512]
    if len(sample) >= 4:
        even, odd = sample[0::2].count(0), sample[1::2].count(0)
        half = len(sample) // 2
        if odd >= half * 0.4 and even == 0:
            return "utf-16-le"  # ASCII text in UTF-16 LE: every second byte is NUL
        if even >= half * 0.4 and odd == 0:
            return "utf-16-be"
    return None


def decode_text(raw: bytes, fallback: str) -> Decoded:
    """Decode a whole snapshot: by its BOM or UTF-16 layout, else UTF-8, else ``fallback`` (the Windows code page
    the tool writes in: ``cp1252`` for Windows PowerShell's ``-Encoding Default``, ``cp850`` for a console)."""
    sniffed = sniff_encoding(raw)
    if sniffed is not None:
        bom = next((len(b) for b, e in _BOMS if raw.startswith(b)), 0)
        plain = "utf-8" if sniffed == "utf-8-sig" else sniffed
        try:
            return Decoded(raw[bom:].decode(plain), sniffed)
        except UnicodeDecodeError:
            return Decoded(raw[bom:].decode(plain, errors="replace"), sniffed, damaged=True)
    try:
        return Decoded(raw.decode("utf-8"), "utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return Decoded(raw.decode(fallback), fallback)
    except UnicodeDecodeError:
        return Decoded(raw.decode(fallback, errors="replace"), fallback, damaged=True)


def head_text(head: bytes) -> str:
    """The first bytes of a file as text, for detection: BOM/UTF-16 aware, never failing (a character cut at
    the end of ``head`` is dropped)."""
    sniffed = sniff_encoding(head)
    if sniffed is None:
        try:
            return head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start >= len(head) - 3:  # only a character cut at the end
                return head[: exc.start].decode("utf-8")
            return head.decode("cp1252", errors="ignore")
    bom = next((len(b) for b, e in _BOMS if head.startswith(b)), 0)
    body = head[bom:]
    plain = "utf-8" if sniffed == "utf-8-sig" else sniffed
    if plain != "utf-8":
        body = body[: len(body) - len(body) % 2]
    return body.decode(plain, errors="ignore")


def read_snapshot(path: Path) -> bytes:
    """A snapshot's bytes; SourceError when it cannot be read or is far larger than any snapshot."""
    try:
        size = path.stat().st_size
        if size > _MAX_SNAPSHOT_BYTES:
            raise SourceError(path, f"{size:,} bytes is far more than a session snapshot holds: not read")
        return path.read_bytes()
    except OSError as exc:
        raise unreadable(path, exc) from None


def accent_pattern(word: str) -> str:
    """A regex for a localised word that also matches it after a console code page garbled its accented letters:
    each accented letter may appear as itself, its plain letter, ``?``, one or two other non-ASCII characters
    (``É`` read in the wrong code page: ``\\x90``, ``╔``, ``Ã‰``), or not at all. Match case-insensitively."""
    parts: list[str] = []
    for char in word:
        if ord(char) < 128:
            parts.append(re.escape(char))
            continue
        plain = unicodedata.normalize("NFKD", char)[0]
        plain_part = f"|{re.escape(plain)}" if ord(plain) < 128 else ""
        parts.append(f"(?:{re.escape(char)}|[^\\x00-\\x7f]{{1,2}}|\\?{plain_part})?")
    return "".join(parts)


def reencode(text: str, encoding: str) -> bytes | None:
    """``text`` back to the bytes it was read from in ``encoding``, keeping characters the codec does not map
    (U+0080..U+00FF, as Windows maps unassigned cp1252 bytes); None when that is impossible."""
    out = bytearray()
    for char in text:
        try:
            out += char.encode(encoding)
        except UnicodeEncodeError:
            if ord(char) > 0xFF:
                return None
            out.append(ord(char))
    return bytes(out)


# ---------------------------------------------------------------------------------------------------------------
# Poll times


@dataclass(frozen=True, slots=True)
class SnapshotName:
    """What a snapshot's file name says: ``<prefix>_<HOST>_<yyyyMMddTHHmmssZ>.<ext>`` (the stamp optional)."""

    host: str | None
    stamp_us: int | None
    stamp: str | None


def parse_name(path: Path, prefix: str) -> SnapshotName:
    """The host and poll stamp in a name like ``quser_RDSH01_20260114T091000Z.txt`` (prefix ``quser``)."""
    match = re.fullmatch(rf"{re.escape(prefix)}_(?P<host>.+?)(?:_(?P<stamp>{STAMP_PATTERN}))?",
                         path.stem, flags=re.IGNORECASE)
    if match is None:
        stamp = re.search(rf"(?:^|_)({STAMP_PATTERN})$", path.stem, flags=re.IGNORECASE)
        if stamp is None:
            return SnapshotName(None, None, None)
        return SnapshotName(None, stamp_to_us(stamp.group(1)), stamp.group(1))
    text = match.group("stamp")
    return SnapshotName(match.group("host"), stamp_to_us(text) if text else None, text)


def stamp_to_us(stamp: str) -> int | None:
    """``20260114T091000Z`` to microseconds since the Unix epoch; None when it is no date."""
    try:
        moment = datetime.strptime(stamp.upper(), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return datetime_to_us(moment)


def parse_polled_at(text: str | None) -> int | None:
    """A ``PolledAt`` value (ISO 8601 in UTC: ``2026-01-14T09:10:00Z``, ``...00.1234567Z``, ``+00:00``)."""
    if text is None or not text.strip():
        return None
    return parse_system_time(text.strip())


def has_offset(text: str | None) -> bool:
    """Whether an ISO 8601 time names its zone (``Z`` or ``+01:00``)."""
    value = (text or "").strip()
    return value.endswith(("Z", "z")) or re.search(r"[+-]\d{2}:?\d{2}$", value[10:]) is not None


def assumed_poll_time(path: Path, name: SnapshotName, stats: FileStats, *, why: str, stamp_is_assumption: bool,
                      how_to_fix: str) -> int:
    """The poll time of a snapshot that does not state it: the file name's stamp, else the file's modification
    time. The mtime is always an assumption (an issue says so); the stamp is one when ``stamp_is_assumption``."""
    if name.stamp_us is not None:
        if stamp_is_assumption:
            stats.add_issue("file", f"{why}: the poll time is taken from the file name's stamp {name.stamp}", 0)
        return name.stamp_us
    try:
        mtime_ns = path.stat().st_mtime_ns
    except OSError as exc:
        raise SourceError(path, f"{why}, and the file's modification time cannot be read ({exc.strerror or exc}):"
                                f" {how_to_fix}") from None
    time_us = mtime_ns // 1000
    stamp = us_to_datetime(time_us).strftime("%Y-%m-%dT%H:%M:%SZ")
    stats.add_issue("file", f"{why}: the poll time is assumed to be the file's modification time {stamp} "
                            f"({how_to_fix})", 0)
    return time_us


# ---------------------------------------------------------------------------------------------------------------
# Local dates


class DateOrder(str, Enum):
    DAY_FIRST = "day/month/year"
    MONTH_FIRST = "month/day/year"


#: Cultures whose short date puts the month first (.NET's en-US pattern ``M/d/yyyy``); every other culture named
#: writes the day first, or the year first (which the text itself shows).
MONTH_FIRST_CULTURES = frozenset({"en", "en-us", "es-us", "en-ph", "fil", "fil-ph"})
_CULTURE_RE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")

_LOCAL_RE = re.compile(
    r"^\s*(\d{1,4})([./-])(\d{1,2})\2(\d{1,4})\.?"  # 1/14/2026, 14.01.2026, 2026-01-14
    r"(?:,?\s+|T)(\d{1,2})[:.](\d{2})(?:[:.](\d{2}))?"  # 9:05:33, 09:05, 9.05.33 (fi-FI)
    r"\s*([AaPp]\.?\s?[Mm]\.?)?\s*$"  # AM / PM / a.m. / p. m.
)


@dataclass(frozen=True, slots=True)
class LocalStamp:
    """A local date and time as written, before its day/month order is known."""

    text: str
    first: int
    second: int
    year: int
    year_first: bool
    hour: int
    minute: int
    sec: int
    dotted: bool = False
    """Written with dots (``14.01.2026``): every culture that writes dates so puts the day first (de-DE, ru-RU,
    fi-FI, pl-PL...), so the text itself decides, whatever ``--culture`` says."""

    def moment(self, order: DateOrder) -> datetime | None:
        """The naive local time in ``order`` (ignored when the year comes first); None when it is no date."""
        if self.year_first:
            month, day = self.first, self.second
        elif order is DateOrder.DAY_FIRST:
            day, month = self.first, self.second
        else:
            month, day = self.first, self.second
        try:
            return datetime(self.year, month, day, self.hour, self.minute, self.sec)  # noqa: DTZ001 -- local time
        except ValueError:
            return None

    def decides(self) -> DateOrder | None:
        """The order this date alone allows, when only one gives a real date."""
        if self.year_first:
            return None
        if self.dotted:
            return DateOrder.DAY_FIRST if self.moment(DateOrder.DAY_FIRST) is not None else None
        day_first = self.moment(DateOrder.DAY_FIRST) is not None
        month_first = self.moment(DateOrder.MONTH_FIRST) is not None
        if day_first != month_first:
            return DateOrder.DAY_FIRST if day_first else DateOrder.MONTH_FIRST
        return None

    def same_either_way(self) -> bool:
        return self.year_first or self.first == self.second

    def valid(self) -> bool:
        return any(self.moment(order) is not None for order in DateOrder)


def parse_local(text: str | None) -> LocalStamp | None:
    """A culture-formatted local date and time (``ToString()`` of a DateTime), or None when it is not one."""
    if text is None:
        return None
    match = _LOCAL_RE.match(text)
    if match is None:
        return None
    a, separator, b, c, hour_text, minute_text, sec_text, designator = match.groups()
    if len(a) == 4:
        year, first, second, year_first = int(a), int(b), int(c), True
    elif len(c) in (2, 4) and len(a) <= 2:
        year = int(c) + (2000 if len(c) == 2 else 0)
        first, second, year_first = int(a), int(b), False
    else:
        return None
    hour, minute, sec = int(hour_text), int(minute_text), int(sec_text or 0)
    if designator:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if designator[0] in "Pp" else 0)
    if hour > 23 or minute > 59 or sec > 59:
        return None
    return LocalStamp(text.strip(), first, second, year, year_first, hour, minute, sec, separator == ".")


def order_for_culture(culture: str, path: Path) -> DateOrder:
    """The day/month order of a culture name (``en-US`` month first; ``en-GB``, ``de-DE``, ``fr-FR`` day first)."""
    if not _CULTURE_RE.match(culture):
        raise SourceError(path, f"--culture {culture!r} is not a culture name (e.g. en-US, en-GB, de-DE)")
    return DateOrder.MONTH_FIRST if culture.replace("_", "-").lower() in MONTH_FIRST_CULTURES else (
        DateOrder.DAY_FIRST)


def local_zone(zone: tzinfo | None, path: Path) -> tzinfo:
    """The zone of the local times a snapshot writes (``plan.local_zone``, resolved by the settings); SourceError
    naming the option when it is not set."""
    if zone is None:
        raise SourceError(path, "its times are local times without an offset: set the time zone of the machine "
                                "that wrote it with --input-tz (e.g. --input-tz Europe/Berlin) or [inputs] tz")
    return zone


def local_to_us(moment: datetime, zone: tzinfo) -> tuple[int, str | None]:
    """A naive local time in ``zone`` to UTC microseconds, and why it is uncertain (the clock change made it
    ambiguous, or skipped it) or None. Uncertain times are read with ``fold=0``: the earlier offset."""
    first = moment.replace(tzinfo=zone, fold=0)
    second = moment.replace(tzinfo=zone, fold=1)
    time_us = datetime_to_us(first)
    if first.utcoffset() == second.utcoffset():
        return time_us, None
    taken = us_to_datetime(time_us).strftime("%Y-%m-%dT%H:%M:%SZ")
    back = first.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None)
    name = getattr(zone, "key", None) or str(zone)
    if back != moment:
        return time_us, (f"does not exist in {name} (the clocks went forward): read as {taken}")
    return time_us, (f"happened twice in {name} (the clocks went back): read as the first, {taken}")


@dataclass(frozen=True, slots=True)
class DateValue:
    """A local date from a snapshot, with what it must respect: its poll time and where it was written."""

    stamp: LocalStamp
    poll_us: int | None
    where: str
    """e.g. ``line 12 CreateTime``."""


def choose_order(values: Sequence[DateValue], culture: str | None, zone: tzinfo, path: Path,
                 stats: FileStats) -> DateOrder:
    """The day/month order of a file's dates: decided by the dates themselves where they can, else by
    ``culture``; a SourceError naming ``--culture`` when neither decides or the dates contradict each other.

    Decided by the data: a date that is only a real date in one order (``14/01/2026``), or an order that would
    put a date more than a day after its poll (a session cannot start after the poll that lists it)."""
    candidates = [v for v in values if not v.stamp.year_first and v.stamp.valid()]
    possible = set(DateOrder)
    why: dict[DateOrder, DateValue] = {}
    for value in candidates:
        decided = value.stamp.decides()
        if decided is not None:
            why.setdefault(decided, value)
            possible.discard(DateOrder.MONTH_FIRST if decided is DateOrder.DAY_FIRST else DateOrder.DAY_FIRST)
    if not possible:
        day, month = why[DateOrder.DAY_FIRST], why[DateOrder.MONTH_FIRST]
        raise SourceError(path, f"its dates contradict each other: {day.stamp.text!r} ({day.where}) puts the day "
                                f"first, {month.stamp.text!r} ({month.where}) the month")
    if len(possible) == 2:
        for order in DateOrder:
            for value in candidates:
                moment = value.stamp.moment(order)
                if value.poll_us is not None and moment is not None and (
                        local_to_us(moment, zone)[0] > value.poll_us + _DAY_US):
                    possible.discard(order)
                    break
    if len(possible) == 1:
        (order,) = possible
        dotted = bool(candidates) and all(v.stamp.dotted for v in candidates)  # the format itself decides
        if culture is not None and order_for_culture(culture, path) is not order and not dotted:
            stats.add_issue("file", f"the dates are written {order.value}, not as --culture {culture} writes them: "
                                    f"read {order.value}", 0)
        return order
    if culture is not None:
        return order_for_culture(culture, path)
    unclear = next((v for v in candidates if not v.stamp.same_either_way()), None)
    if unclear is None:
        return DateOrder.DAY_FIRST  # every date reads the same either way
    raise SourceError(path, f"the date {unclear.stamp.text!r} ({unclear.where}) may be day/month or month/day and "
                            "no date in the file decides which: set the culture of the machine that wrote it with "
                            "--culture (e.g. en-US, en-GB, de-DE) or [inputs] culture")

