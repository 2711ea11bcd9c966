"""Session snapshots as the real tools write them: ``Get-RDUserSession | Export-Csv`` and ``query user``.

For tests and ``evtrack sample``. Like the rest of ``synth/`` this imports nothing outside itself: the shapes are
written from the facts (see ``../shared/DOMAIN.md`` §B1-B2), never by calling the readers they test.

* :func:`write_broker_csv`: Windows PowerShell 5.1 (``#TYPE`` line, plain or after ``Select-Object``),
  PowerShell 7 (no ``#TYPE``; ``Invoke-Command`` adds PSComputerName, RunspaceId, PSShowComputerName); every
  field quoted, nulls as empty unquoted fields; dates as ``DateTime.ToString()`` in a culture (en-US, en-GB,
  de-DE, fr-FR) and the given zone; ``-UseCulture`` switches to the culture's list separator; ASCII (``?`` for
  what ASCII lacks), UTF-8 with or without BOM, UTF-16 LE or BE with BOM; a ``PolledAt`` column (ISO 8601 UTC,
  as our collection script writes it); ``append=True`` adds another poll's rows to the file.
* :func:`write_query_user`: ``query user /server:HOST`` in English, French or German, the columns at the offsets
  quser prints them, ``No User exists for *`` when the host has no session; UTF-8, the console's cp850, or UTF-16.

Sessions are :class:`SnapshotSession`: what a workload model knows of a session at the poll instant.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

#: RDUserSession's properties, in the order Export-Csv writes them.
RDUSERSESSION_COLUMNS = (
    "ServerName", "SessionId", "UserName", "DomainName", "ServerIPAddress", "TSProtocol", "ApplicationType",
    "ResolutionWidth", "ResolutionHeight", "ColorDepth", "CreateTime", "DisconnectTime", "SessionState",
    "CollectionName", "CollectionType", "UnifiedSessionId", "HostServer", "IdleTime", "RemoteFxEnabled",
)
#: What ``Select-Object UserName, DomainName, HostServer, SessionId, SessionState, CreateTime, DisconnectTime``
#: keeps (shape ``ps51-selected``).
SELECTED_COLUMNS = ("UserName", "DomainName", "HostServer", "SessionId", "SessionState", "CreateTime",
                    "DisconnectTime")
#: Note properties ``Invoke-Command`` adds to every object it returns.
INVOKE_COLUMNS = ("PSComputerName", "RunspaceId", "PSShowComputerName")
TYPE_NAME = "Microsoft.RemoteDesktopServices.Management.RDUserSession"
SHAPES = ("ps51", "ps51-selected", "ps7", "ps7-invoke")
CULTURES = ("en-US", "en-GB", "de-DE", "fr-FR")
#: The culture's list separator (what ``Export-Csv -UseCulture`` writes between fields).
LIST_SEPARATOR = {"en-US": ",", "en-GB": ",", "de-DE": ";", "fr-FR": ";"}
BROKER_ENCODINGS = ("ascii", "utf-8", "utf-8-sig", "utf-16", "utf-16-be")
QUERY_USER_ENCODINGS = ("utf-8", "cp850", "utf-16")
_STATE_NAMES = {"active": "STATE_ACTIVE", "disconnected": "STATE_DISCONNECTED"}


@dataclass(frozen=True)
class SnapshotSession:
    """One user session as a poll sees it."""

    user: str
    """sAMAccountName, no domain."""
    domain: str
    """NetBIOS domain name."""
    host: str
    """The session host (FQDN for the broker; :func:`write_query_user` lists the sessions of its server)."""
    session_id: int
    state: str
    """``active`` or ``disconnected``."""
    create_time: datetime
    """When the session was created (aware)."""
    disconnect_time: datetime | None = None
    """When it was last disconnected (aware), if ever."""
    idle: timedelta | None = None
    """Time since the last input; None: no idle time (``none``)."""
    session_name: str | None = None
    """SESSIONNAME for query user; None: ``rdp-tcp#N`` when active, blank when disconnected."""

    def __post_init__(self) -> None:
        if self.state not in _STATE_NAMES:
            raise ValueError(f"state must be one of {', '.join(_STATE_NAMES)}, not {self.state!r}")
        if self.create_time.tzinfo is None:
            raise ValueError("create_time must be an aware datetime")


def _zone(zone: str | tzinfo) -> tzinfo:
    return ZoneInfo(zone) if isinstance(zone, str) else zone


def _stamp(polled_at: datetime) -> str:
    return polled_at.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def broker_csv_name(broker: str, polled_at: datetime) -> str:
    """``rdusersession_<broker>_<yyyyMMddTHHmmssZ>.csv``: the name the collection script gives a snapshot."""
    return f"rdusersession_{broker}_{_stamp(polled_at)}.csv"


def query_user_name(server: str, polled_at: datetime) -> str:
    """``quser_<HOST>_<yyyyMMddTHHmmssZ>.txt``: the name ``evtrack poll`` gives a snapshot."""
    return f"quser_{server}_{_stamp(polled_at)}.txt"


def format_datetime(moment: datetime, culture: str, *, seconds: bool = True) -> str:
    """``DateTime.ToString()`` (``ToString("g")`` without seconds) in ``culture``: en-US ``1/14/2026 9:05:33 AM``,
    en-GB / fr-FR ``14/01/2026 09:05:33``, de-DE ``14.01.2026 09:05:33``."""
    sec = f":{moment.second:02d}" if seconds else ""
    if culture == "en-US":
        hour = moment.hour % 12 or 12
        return f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment.minute:02d}{sec} " + (
            "AM" if moment.hour < 12 else "PM")
    date = {"en-GB": "{d:02d}/{m:02d}/{y}", "fr-FR": "{d:02d}/{m:02d}/{y}", "de-DE": "{d:02d}.{m:02d}.{y}"}
    if culture not in date:
        raise ValueError(f"culture must be one of {', '.join(CULTURES)}, not {culture!r}")
    return date[culture].format(d=moment.day, m=moment.month, y=moment.year) + (
        f" {moment.hour:02d}:{moment.minute:02d}{sec}")


def _ip(host: str) -> str:
    digest = hashlib.sha256(host.lower().encode()).digest()
    return f"10.{digest[0]}.{digest[1]}.{digest[2] % 250 + 2}"


def _broker_values(session: SnapshotSession, zone: tzinfo, culture: str) -> dict[str, str | None]:
    create = format_datetime(session.create_time.astimezone(zone), culture)
    disconnect = (format_datetime(session.disconnect_time.astimezone(zone), culture)
                  if session.disconnect_time is not None else None)
    idle_ms = int(session.idle.total_seconds() * 1000) if session.idle is not None else 0
    return {
        "ServerName": session.host, "SessionId": str(session.session_id), "UserName": session.user,
        "DomainName": session.domain, "ServerIPAddress": _ip(session.host), "TSProtocol": "2",
        "ApplicationType": None, "ResolutionWidth": "1920", "ResolutionHeight": "1080", "ColorDepth": "32",
        "CreateTime": create, "DisconnectTime": disconnect, "SessionState": _STATE_NAMES[session.state],
        "CollectionName": "Desktops", "CollectionType": "RD_FARM_RDSH",
        "UnifiedSessionId": str(session.session_id + 100), "HostServer": session.host, "IdleTime": str(idle_ms),
        "RemoteFxEnabled": "False",
    }


def _csv_line(values: Sequence[str | None], separator: str) -> str:
    """Export-Csv's quoting: every value quoted (quotes doubled), a null as an empty unquoted field."""
    return separator.join("" if v is None else '"' + v.replace('"', '""') + '"' for v in values) + "\r\n"


def broker_csv_text(polled_at: datetime, broker: str, sessions: Sequence[SnapshotSession], *, shape: str = "ps51",
                    culture: str = "en-US", use_culture: bool = False, polled_at_column: bool = True,
                    zone: str | tzinfo = "UTC", header: bool = True, broker_column: bool = False) -> str:
    """The text of one poll's export (``header=False``: its rows only, to append to a file); ``broker_column``
    adds a ``ConnectionBroker`` column after ``PolledAt``, as ``evtrack poll`` and our collection script write."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}, not {shape!r}")
    if culture not in LIST_SEPARATOR:
        raise ValueError(f"culture must be one of {', '.join(CULTURES)}, not {culture!r}")
    separator = LIST_SEPARATOR[culture] if use_culture else ","
    columns = list(SELECTED_COLUMNS if shape == "ps51-selected" else RDUSERSESSION_COLUMNS)
    if shape == "ps7-invoke":
        columns += INVOKE_COLUMNS
    if polled_at_column:
        columns.append("PolledAt")
    if broker_column:
        columns.append("ConnectionBroker")
    lines: list[str] = []
    if header:
        if shape == "ps51":
            lines.append(f"#TYPE {TYPE_NAME}\r\n")
        elif shape == "ps51-selected":
            lines.append(f"#TYPE Selected.{TYPE_NAME}\r\n")
        lines.append(_csv_line(columns, separator))
    polled = polled_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{polled_at.microsecond:06d}0Z")  # ToString("o") of a UTC DateTime: seven fraction digits
    runspace = str(uuid.UUID(bytes=hashlib.sha256(f"{broker}{polled}".encode()).digest()[:16]))
    for session in sessions:
        values = _broker_values(session, _zone(zone), culture)
        values.update({"PSComputerName": broker, "RunspaceId": runspace, "PSShowComputerName": "True",
                       "PolledAt": polled, "ConnectionBroker": broker})
        lines.append(_csv_line([values[c] for c in columns], separator))
    return "".join(lines)


def encode_snapshot(text: str, encoding: str, *, bom: bool) -> bytes:
    """``text`` in a snapshot encoding (:data:`BROKER_ENCODINGS`, ``cp850``); ``bom`` for the UTF encodings."""
    if encoding == "ascii":
        return text.encode("ascii", errors="replace")  # Windows PowerShell's ASCII: '?' for the rest
    if encoding in ("utf-16", "utf-16-be"):
        plain = "utf-16-le" if encoding == "utf-16" else "utf-16-be"
        return ("\ufeff" if bom else "").encode(plain) + text.encode(plain)
    if encoding == "utf-8-sig":
        return text.encode("utf-8-sig" if bom else "utf-8")
    return text.encode(encoding)


def _target(path: Path, name: str) -> Path:
    return path / name if path.is_dir() else path


def write_broker_csv(path: Path, polled_at: datetime, broker: str, sessions: Sequence[SnapshotSession], *,
                     shape: str = "ps51", culture: str = "en-US", use_culture: bool = False,
                     encoding: str = "ascii", polled_at_column: bool = True, zone: str | tzinfo = "UTC",
                     append: bool = False) -> Path:
    """Write one poll of ``Get-RDUserSession -ConnectionBroker <broker> | Export-Csv`` (into a folder: named by
    :func:`broker_csv_name`); ``append=True`` adds the poll's rows to an existing file in the same shape."""
    if encoding not in BROKER_ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(BROKER_ENCODINGS)}, not {encoding!r}")
    target = _target(Path(path), broker_csv_name(broker, polled_at))
    adding = append and target.exists()
    text = broker_csv_text(polled_at, broker, sessions, shape=shape, culture=culture, use_culture=use_culture,
                           polled_at_column=polled_at_column, zone=zone, header=not adding)
    data = encode_snapshot(text, encoding, bom=not adding)
    with target.open("ab" if adding else "wb") as handle:
        handle.write(data)
    return target


#: Per language: the header line exactly as quser prints it, the states, the word for no idle time, and where the
#: IDLE TIME column ends (LOGON TIME starts three columns later).
_QUSER = {
    "en": (" USERNAME              SESSIONNAME        ID  STATE   IDLE TIME  LOGON TIME",
           {"active": "Active", "disconnected": "Disc"}, "none", 62, "en-US"),
    "fr": (" UTILISATEUR           SESSION            ID  ÉTAT    TEMPS INACT TEMPS SESSION",
           {"active": "Actif", "disconnected": "Déco"}, "aucun", 63, "fr-FR"),
    "de": (" BENUTZERNAME          SITZUNGSNAME       ID  STATUS  LEERLAUF   ANMELDEZEIT",
           {"active": "Aktiv", "disconnected": "Getr."}, "Kein", 62, "de-DE"),
}
NO_USER = "No User exists for *"


def format_idle(idle: timedelta | None, none_word: str = "none") -> str:
    """IDLE TIME as quser prints it: the none word, ``.`` (under a minute), minutes, ``H:MM`` or ``D+HH:MM``."""
    if idle is None:
        return none_word
    minutes = int(idle.total_seconds() // 60)
    if minutes < 1:
        return "."
    if minutes < 60:
        return str(minutes)
    hours, minute = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}:{minute:02d}"
    days, hour = divmod(hours, 24)
    return f"{days}+{hour:02d}:{minute:02d}"


def query_user_text(server: str, sessions: Sequence[SnapshotSession], *, language: str = "en",
                    culture: str | None = None, zone: str | tzinfo = "UTC", current_user: str | None = None) -> str:
    """What ``query user /server:<server>`` prints: the sessions whose host is ``server`` (its first label,
    case-insensitively), ordered by session id; ``No User exists for *`` when there is none."""
    if language not in _QUSER:
        raise ValueError(f"language must be one of {', '.join(_QUSER)}, not {language!r}")
    header, states, none_word, idle_end, default_culture = _QUSER[language]
    culture = culture or default_culture
    short = server.split(".")[0].lower()
    mine = sorted((s for s in sessions if s.host.split(".")[0].lower() == short), key=lambda s: s.session_id)
    if not mine:
        return NO_USER + "\r\n"
    lines = [header]
    for session in mine:
        marker = ">" if current_user is not None and session.user == current_user else " "
        name = session.session_name
        if name is None:
            name = f"rdp-tcp#{session.session_id + 40}" if session.state == "active" else ""
        left = f"{marker}{session.user:<21} {name:<18}{session.session_id:>3}  {states[session.state]:<6}"
        idle = format_idle(session.idle, none_word)
        width = max(idle_end - len(left) + 1, len(idle) + 1)
        field = f"{idle:>{width - 1}} " if session.idle is None else f"{idle:>{width}}"
        logon = format_datetime(session.create_time.astimezone(_zone(zone)), culture, seconds=False)
        lines.append(f"{left}{field}  {logon}")
    return "\r\n".join(lines) + "\r\n"


def write_query_user(path: Path, polled_at: datetime, server: str, sessions: Sequence[SnapshotSession], *,
                     language: str = "en", culture: str | None = None, zone: str | tzinfo = "UTC",
                     encoding: str = "utf-8", current_user: str | None = None) -> Path:
    """Write one ``query user /server:<server>`` snapshot taken at ``polled_at`` (into a folder: named by
    :func:`query_user_name`). ``encoding``: ``utf-8``, ``cp850`` (``quser > file`` in cmd) or ``utf-16``
    (``quser > file`` in Windows PowerShell 5.1)."""
    if encoding not in QUERY_USER_ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(QUERY_USER_ENCODINGS)}, not {encoding!r}")
    target = _target(Path(path), query_user_name(server, polled_at))
    text = query_user_text(server, sessions, language=language, culture=culture, zone=zone,
                           current_user=current_user)
    target.write_bytes(encode_snapshot(text, encoding, bom=True))
    return target
