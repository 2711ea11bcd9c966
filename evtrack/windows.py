"""Time windows: calendar months (default), ISO weeks, back-to-back N-day blocks or one custom range.

Sliding N-day peaks (the most users in any N consecutive days) are not windows: see :mod:`evtrack.licence`.

Boundaries are local midnights in an explicit time zone (an IANA name, a Windows name or ``local``, resolved once
to IANA by :func:`resolve_zone`; DST handled by zoneinfo + tzdata), stored as aware datetimes; windows are half-open
``[start, end)`` and tile the period without gap or overlap.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from evtrack.errors import ConfigError

_BLOCKS_RE = re.compile(r"^(blocks|rolling):(\d+)d$")
#: ``rolling:Nd`` was the old name of ``blocks:Nd``: accepted, but the windows never slid.
MAX_ROLLING_DAYS = 3660
#: Dates evtrack accepts: no RDS log is older than 2000, and arithmetic near year 9999 overflows.
FIRST_YEAR, LAST_YEAR = 1990, 2200


def _check_year(day: date, text: str) -> date:
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise ConfigError(f"{text!r} is out of range (years {FIRST_YEAR} to {LAST_YEAR})")
    return day


@dataclass(frozen=True, slots=True)
class Zone:
    """A time zone as the user named it, resolved once: its canonical IANA name and the zone itself."""

    name: str
    """The IANA name the report records (``Europe/Berlin``), whatever spelling the user gave."""
    info: ZoneInfo
    given: str
    """The text it was resolved from (``W. Europe Standard Time``, ``local``, ``europe/berlin``)."""


def resolve_zone(text: str) -> Zone:
    """Turn a zone name into a :class:`Zone`: the one place where zone text is parsed.

    Accepted, in this order: an IANA name in any letter case (``Europe/Berlin``, ``europe/berlin``, ``UTC``),
    ``local`` (this machine's zone, via tzlocal), and a Windows zone name (``W. Europe Standard Time``, as
    ``tzutil /g`` or ``Get-TimeZone`` print it), mapped to IANA by CLDR's windowsZones table that tzlocal ships.
    """
    return _resolve(text.strip())


def zone(name: str) -> ZoneInfo:
    """The zone for ``name`` (see :func:`resolve_zone`), with a clear error for a wrong one."""
    return resolve_zone(name).info


@functools.lru_cache(maxsize=64)
def _resolve(text: str) -> Zone:
    if text == "UTC":  # the default: no need to list the zone database
        return Zone("UTC", ZoneInfo("UTC"), text)
    if text.lower() == "local":
        return Zone(*_iana(_local_name(), text))
    canonical = _iana_names().get(text.lower()) or _windows_names().get(text.lower())
    if canonical is not None:
        return Zone(*_iana(canonical, text))
    try:  # a zone the database listing missed (a custom TZPATH entry)
        return Zone(text, ZoneInfo(text), text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(f"unknown time zone {text!r} (use an IANA name such as Europe/Berlin or UTC, a Windows "
                          "name such as W. Europe Standard Time, or local for this machine's zone)") from None


def _iana(name: str, given: str) -> tuple[str, ZoneInfo, str]:
    name = _iana_names().get(name.lower(), name)
    try:
        return name, ZoneInfo(name), given
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(f"time zone {given!r} means {name!r}, which this machine's zone database does not have "
                          "(pip install -U tzdata)") from None


@functools.lru_cache(maxsize=1)
def _iana_names() -> dict[str, str]:
    """Lower-case IANA name -> its proper spelling (Windows and macOS file systems would accept any case)."""
    return {name.lower(): name for name in available_timezones()}


@functools.lru_cache(maxsize=1)
def _windows_names() -> dict[str, str]:
    from tzlocal.windows_tz import win_tz

    return {windows.lower(): iana for windows, iana in win_tz.items()}


def _local_name() -> str:
    import tzlocal

    try:
        name = tzlocal.get_localzone_name()
    except (LookupError, ValueError, OSError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ConfigError(f"cannot tell this machine's time zone for 'local' ({exc}): give its name, e.g. "
                          "--tz Europe/Berlin") from None
    if not name:
        raise ConfigError("cannot tell this machine's time zone for 'local': give its name, e.g. --tz Europe/Berlin")
    return name


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """How the period is cut: ``month``, ``week``, ``blocks:Nd`` (back-to-back N-day blocks from the first day;
    ``rolling:Nd`` is its old name) or ``range`` (one window from --from/--to)."""

    kind: str
    days: int = 0

    @staticmethod
    def parse(text: str) -> WindowSpec:
        text = text.strip().lower()
        if text in ("month", "week", "range"):
            return WindowSpec(text)
        match = _BLOCKS_RE.match(text)
        if match and 0 < int(match.group(2)) <= MAX_ROLLING_DAYS:
            return WindowSpec("blocks", int(match.group(2)))
        raise ConfigError(f"unknown window {text!r} (use month, week, blocks:Nd with 1 <= N <= {MAX_ROLLING_DAYS}, "
                          "or range)")

    def __str__(self) -> str:
        return f"blocks:{self.days}d" if self.kind == "blocks" else self.kind


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open interval ``[start, end)`` of local time in the report's zone."""

    label: str
    start: datetime
    end: datetime

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of ``day`` in ``tz`` (a DST gap at midnight moves it forward, as clocks do)."""
    moment = datetime(day.year, day.month, day.day, tzinfo=tz)
    # round-trip through UTC normalises a non-existent local time
    return moment.astimezone(timezone.utc).astimezone(tz)


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def windows_between(spec: WindowSpec, first: date, last: date, tz: ZoneInfo) -> list[Window]:
    """Windows in ``tz`` covering the local dates ``first`` .. ``last`` (inclusive), tiled without gaps."""
    if last < first:
        raise ConfigError(f"the period ends ({last}) before it starts ({first})")
    days: list[tuple[str, date, date]] = []
    if spec.kind == "month":
        cursor = _month_start(first)
        while cursor <= last:
            following = _next_month(cursor)
            days.append((cursor.strftime("%Y-%m"), cursor, following))
            cursor = following
    elif spec.kind == "week":
        cursor = first - timedelta(days=first.weekday())
        while cursor <= last:
            year, week, _ = cursor.isocalendar()
            days.append((f"{year}-W{week:02d}", cursor, cursor + timedelta(days=7)))
            cursor += timedelta(days=7)
    elif spec.kind == "blocks":
        cursor = first
        while cursor <= last:
            end = cursor + timedelta(days=spec.days)
            days.append((f"{cursor.isoformat()}/{(end - timedelta(days=1)).isoformat()}", cursor, end))
            cursor = end
    elif spec.kind == "range":
        end = last + timedelta(days=1)
        days.append((f"{first.isoformat()}/{last.isoformat()}", first, end))
    else:  # pragma: no cover - WindowSpec.parse admits no other kind
        raise ConfigError(f"unknown window kind {spec.kind!r}")
    windows = [Window(label, local_midnight(start, tz), local_midnight(end, tz)) for label, start, end in days]
    # a local day that never happened (Samoa skipped 30 December 2011) has no instants: no window
    return [w for w in windows if w.start.astimezone(timezone.utc) < w.end.astimezone(timezone.utc)]


def local_date(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


def parse_date(text: str) -> date:
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"not a date: {text!r} (use YYYY-MM-DD)") from None
    return _check_year(day, text)


def parse_moment(text: str, tz: ZoneInfo) -> datetime:
    """``YYYY-MM-DD`` (the end of that local day) or an ISO date-time (local to ``tz`` unless it has an offset)."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = _check_year(date.fromisoformat(text), text)
            return local_midnight(day + timedelta(days=1), tz) - timedelta(microseconds=1)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"not a date or time: {text!r} (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    _check_year(moment.date(), text)
    return moment if moment.tzinfo else moment.replace(tzinfo=tz)
