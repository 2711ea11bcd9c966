"""The RDP evidence rules and the normalised event table (:data:`LOGON_SCHEMA`).

Every rule that decides whether an event proves a remote (RDP) session lives in :func:`classify`; see
docs/rules.md for the sources behind each one (Microsoft's 4624/4778 pages, the LocalSessionManager field
maps, and the localisation trap: console logons say ``LOCAL`` in English Windows and e.g. ``YEREL`` in Turkish,
so "not LOCAL" is not a test for RDP — only "is an IP address" is).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from evtrack.sources.base import RawEvent

if TYPE_CHECKING:
    import pyarrow as pa

SECURITY = "security"
SYSTEM = "system"
LSM = "microsoft-windows-terminalservices-localsessionmanager/operational"
RCM = "microsoft-windows-terminalservices-remoteconnectionmanager/operational"


class Kind(str, Enum):
    LOGON = "logon"
    RECONNECT = "reconnect"
    DISCONNECT = "disconnect"
    LOGOFF = "logoff"
    AUTH = "auth"
    LOG_CLEARED = "log_cleared"


#: Event ids per channel (lower case) that become rows, and the kind of each.
EVENT_KINDS: dict[tuple[str, int], Kind] = {
    (SECURITY, 4624): Kind.LOGON,
    (SECURITY, 4634): Kind.LOGOFF,
    (SECURITY, 4647): Kind.LOGOFF,
    (SECURITY, 4778): Kind.RECONNECT,
    (SECURITY, 4779): Kind.DISCONNECT,
    (SECURITY, 1102): Kind.LOG_CLEARED,
    (SYSTEM, 104): Kind.LOG_CLEARED,
    (LSM, 21): Kind.LOGON,
    (LSM, 23): Kind.LOGOFF,
    (LSM, 24): Kind.DISCONNECT,
    (LSM, 25): Kind.RECONNECT,
    (RCM, 1149): Kind.AUTH,
}

RDP_LOGON_TYPES = frozenset({10, 12})
UNLOCK_OR_RECONNECT = 7


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
    """The one schema of the normalised event table (built lazily: pyarrow is a heavy import)."""
    import pyarrow as pa

    return pa.schema(_columns())


COLUMNS: tuple[str, ...] = (
    "time", "host", "channel", "provider", "event_id", "record_id", "kind", "logon_type", "user", "domain", "sid",
    "address", "client_name", "session_id", "logon_id", "session_name", "elevated", "rdp", "reason", "detail",
    "source",
)  # fmt: skip


def parse_ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP address (v4, v6, ``::ffff:`` mapped, with or without an IPv6 zone id), or None when it is not one."""
    if not text:
        return None
    value = text.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    value = value.split("%", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def is_ip(text: str | None) -> bool:
    """True for any IP address, including 0.0.0.0, 127.0.0.1 and ::1 (RDP tunnels and enhanced sessions)."""
    return parse_ip(text) is not None


def is_remote_ip(text: str | None) -> bool:
    """An IP address that is neither loopback nor unspecified (console unlocks log 127.0.0.1 in 4624 type 7)."""
    address = parse_ip(text)
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (address.is_loopback or address.is_unspecified)


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


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


def _elevated(value: str | None) -> bool | None:
    value = _clean(value)
    if value is None or value == "-":
        return None
    return {"%%1842": True, "yes": True, "%%1843": False, "no": False}.get(value.lower())


@dataclass(frozen=True, slots=True)
class Evidence:
    """Whether a row proves an RDP session, and which rule said so (a short, stable reason code)."""

    rdp: bool
    reason: str


def classify(channel: str, event_id: int, logon_type: int | None, address: str | None,
             session_name: str | None) -> Evidence:
    """THE RDP evidence rules, all in one place.

    - 4624 type 10 or 12 (RemoteInteractive, CachedRemoteInteractive);
    - 4624 type 7 (unlock or reconnect) only with a remote IpAddress (console unlocks log 127.0.0.1);
    - LSM 21 / 24 / 25 only when Address is an IP address (console sessions write LOCAL or a localised word);
    - 4778 / 4779 when SessionName is ``RDP-Tcp#...`` or ClientAddress is an IP;
    - 4634 of a type 10/12 logon.
    1149 (authentication only), console sessions and logoffs without a remote marker are not evidence.
    """
    if channel == SECURITY:
        if event_id == 4624:
            if logon_type in RDP_LOGON_TYPES:
                return Evidence(True, f"4624_lt{logon_type}")
            if logon_type == UNLOCK_OR_RECONNECT:
                if is_remote_ip(address):
                    return Evidence(True, "4624_lt7_remote_ip")
                return Evidence(False, "4624_lt7_local")
            return Evidence(False, f"4624_lt{logon_type if logon_type is not None else 'unknown'}")
        if event_id == 4634:
            if logon_type in RDP_LOGON_TYPES:
                return Evidence(True, f"4634_lt{logon_type}")
            return Evidence(False, "logoff_not_remote")
        if event_id in (4778, 4779):
            if session_name is not None and session_name.upper().startswith("RDP-TCP#"):
                return Evidence(True, f"{event_id}_rdp_session")
            if is_ip(address):
                return Evidence(True, f"{event_id}_ip")
            return Evidence(False, f"{event_id}_console")
        if event_id == 4647:
            return Evidence(False, "logoff_no_marker")
        if event_id == 1102:
            return Evidence(False, "log_cleared")
    if channel == SYSTEM and event_id == 104:
        return Evidence(False, "log_cleared")
    if channel == LSM:
        if event_id in (21, 24, 25):
            if is_ip(address):
                return Evidence(True, f"lsm{event_id}_ip")
            return Evidence(False, f"lsm{event_id}_console")
        return Evidence(False, "logoff_no_marker")
    if channel == RCM:
        return Evidence(False, "1149_auth_only")
    return Evidence(False, "not_covered")


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
    """One table row for a relevant event, or None for an event that is not a row (counted elsewhere)."""
    channel = raw.channel.lower()
    kind = EVENT_KINDS.get((channel, raw.event_id))
    if kind is None:
        return None
    data = raw.data
    logon_type: int | None = None
    user = domain = sid = address = client_name = logon_id = session_name = detail = None
    session_id: int | None = None
    elevated: bool | None = None
    if channel == SECURITY and raw.event_id in (4624, 4634, 4647):
        user, domain, sid = _clean(data.get("TargetUserName")), _clean(data.get("TargetDomainName")), _clean(
            data.get("TargetUserSid")
        )
        logon_id = _logon_id(data.get("TargetLogonId"))
        logon_type = _int(data.get("LogonType"))
        if raw.event_id == 4624:
            address = _clean(data.get("IpAddress"))
            elevated = _elevated(data.get("ElevatedToken"))
    elif channel == SECURITY and raw.event_id in (4778, 4779):
        user, domain = _clean(data.get("AccountName")), _clean(data.get("AccountDomain"))
        logon_id = _logon_id(data.get("LogonID"))
        session_name = _clean(data.get("SessionName"))
        client_name = _clean(data.get("ClientName"))
        address = _clean(data.get("ClientAddress"))
    elif kind is Kind.LOG_CLEARED:
        user, domain = _clean(data.get("SubjectUserName")), _clean(data.get("SubjectDomainName"))
        sid = _clean(data.get("SubjectUserSid"))
        detail = _clean(data.get("Channel")) if channel == SYSTEM else "Security"
    elif channel == LSM:
        user, domain = _split_user(data.get("User"))
        session_id = _int(data.get("SessionID"))
        address = _clean(data.get("Address"))
    elif channel == RCM:
        user, domain = _clean(data.get("Param1")), _clean(data.get("Param2"))
        address = _clean(data.get("Param3"))
    if logon_type is not None and not -128 <= logon_type <= 127:
        logon_type = None
    evidence = classify(channel, raw.event_id, logon_type, address, session_name)
    if channel == SECURITY and raw.event_id == 4624 and logon_type == UNLOCK_OR_RECONNECT:
        kind = Kind.RECONNECT
    return {
        "time": raw.time_us,
        "host": raw.computer,
        "channel": raw.channel,
        "provider": raw.provider,
        "event_id": raw.event_id,
        "record_id": raw.record_id,
        "kind": kind.value,
        "logon_type": logon_type,
        "user": user,
        "domain": domain,
        "sid": sid,
        "address": address,
        "client_name": client_name,
        "session_id": session_id,
        "logon_id": logon_id,
        "session_name": session_name,
        "elevated": elevated,
        "rdp": evidence.rdp,
        "reason": evidence.reason,
        "detail": detail,
        "source": source,
    }


#: Events a report reads even when they are not RDP evidence (session ends and reconnects for concurrency).
_SESSION_EVENTS = frozenset({4778, 4779, 4647, 1102, 104})
#: Logon types whose 4624/4634 rows a report reads; every other logon only lends its account to identities.
SESSION_LOGON_TYPES = frozenset({7, 10, 12})


def observation_only(channel: str, event_id: int, logon_type: int | None) -> bool:
    """Whether a Security 4624/4634 row with this logon type (as :func:`normalise` reads it) is left out of a
    slim read, keeping only its account (TargetUserName, TargetDomainName, TargetUserSid, host) for identity
    linking. Readers use this to skip such records once they have yielded one with the same account."""
    return (channel.lower() == SECURITY and event_id in (4624, 4634)
            and (logon_type is None or not -128 <= logon_type <= 127 or logon_type not in SESSION_LOGON_TYPES))


def needed_for_report(row: dict[str, Any]) -> bool:
    """Whether the report needs the row itself; the others (network and service logons, their logoffs: most of a
    Security log) only lend their account names and SIDs to identity linking."""
    if row["rdp"] or row["event_id"] in _SESSION_EVENTS:
        return True
    channel = row["channel"].lower()
    if channel in (LSM, RCM):
        return True
    return row["event_id"] in (4624, 4634) and not observation_only(channel, row["event_id"], row["logon_type"])


class BatchBuilder:
    """Collects rows column-wise and turns them into Arrow record batches of bounded size."""

    def __init__(self, batch_rows: int = 65_536) -> None:
        self.batch_rows = batch_rows
        self._columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
        self.rows = 0

    def add(self, row: dict[str, Any]) -> None:
        for name in COLUMNS:
            self._columns[name].append(row[name])
        self.rows += 1

    def full(self) -> bool:
        return self.rows >= self.batch_rows

    def flush(self) -> pa.RecordBatch:
        import pyarrow as pa

        schema = logon_schema()
        arrays = [pa.array(self._columns[f.name], type=f.type) for f in schema]
        batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
        self._columns = {name: [] for name in COLUMNS}
        self.rows = 0
        return batch




def empty_table() -> pa.Table:
    return logon_schema().empty_table()
