"""The event catalogue: what each event evtrack reads means, said once.

Per (channel, event ID): its kind, the payload fields read into each column of the event table, the evidence rule
(does it prove an RDP session, and which rule said so), its session transition (connect, disconnect, end: for
concurrency and sessions carried over), its role in coverage (a log cleared, a Kerberos KDC), and what a slim read
may do with it. Everything else derives from this table: the plan the readers receive (:func:`read_plan`: the
event ids and payload fields they decode, what a slim read may leave out), the kinds, the session events, the slim
rules; a test ties every derived set to it. Adding an evidence event is one :class:`EventDef` here, plus its test.

Sources for the rules: Microsoft's pages for 4624/4634/4647/4778/4779/1102 and the RD Gateway events, the
LocalSessionManager and RD Gateway field maps (EvtxECmd), sample XML (hayabusa rules, public gateway records), and
the localisation trap: console sessions say ``LOCAL`` in English Windows and e.g. ``YEREL`` in Turkish, so "not
LOCAL" is no test for RDP -- only "is an IP address" is. See docs/how-it-works.md.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import tzinfo
from enum import Enum

from evtrack.sources.base import ReadPlan

SECURITY = "security"
SYSTEM = "system"
LSM = "microsoft-windows-terminalservices-localsessionmanager/operational"
RCM = "microsoft-windows-terminalservices-remoteconnectionmanager/operational"
GATEWAY = "microsoft-windows-terminalservices-gateway/operational"

#: Snapshots of the sessions a Connection Broker lists (``Get-RDUserSession``) and of ``query user /server:HOST``
#: (readers: evtrack.sources.broker_csv, evtrack.sources.query_user).
BROKER = "connection broker sessions"
QUERY_USER = "query user sessions"
#: Azure Virtual Desktop's WVDConnections table (reader: evtrack.sources.azure).
WVD = "azure virtual desktop connections"


class Covers(str, Enum):
    """How an input proves the time it covers."""

    LOG = "log"
    """A log: each export covers its first to its last record (record ids tell lost records)."""
    POLLED = "polled"
    """Snapshots: consecutive polls no further apart than twice the usual interval cover the time between them;
    sessions shorter than the interval can fall between polls, so a window only polls cover is a lower bound."""
    STATED = "stated"
    """An export states the hours it covers (a per-computer hourly count beside an Azure Monitor export)."""


@dataclass(frozen=True, slots=True)
class ChannelDef:
    """A log (or snapshot stream) evtrack reads, and what its coverage means."""

    channel: str
    """Lower case."""
    source: str
    """The evidence source it belongs to, as reports name it (the cross-check counts users per source)."""
    covers: Covers = Covers.LOG
    evidence: bool = True
    """Its coverage proves RDP evidence was being recorded (the others give context only)."""
    collector: bool = False
    """Written by a machine that sees other hosts' sessions (a Connection Broker, an RD Gateway): its coverage
    stands for the session hosts its rows name, and a host known only through it rests on it (a broker's polls
    miss short sessions, a gateway misses connections that bypass it)."""


CHANNELS: tuple[ChannelDef, ...] = (
    ChannelDef(SECURITY, "session host logs"),
    ChannelDef(LSM, "session host logs"),
    ChannelDef(SYSTEM, "session host logs", evidence=False),
    ChannelDef(RCM, "session host logs", evidence=False),
    ChannelDef(GATEWAY, "RD Gateway", collector=True),  # its Computer is the gateway; its rows name the host
    ChannelDef(BROKER, "Connection Broker polls", Covers.POLLED, collector=True),
    ChannelDef(QUERY_USER, "query user polls", Covers.POLLED),
    ChannelDef(WVD, "Azure Virtual Desktop", Covers.STATED),
)
CHANNEL_BY_KEY: dict[str, ChannelDef] = {c.channel: c for c in CHANNELS}

#: Logs whose coverage matters: the evidence channels, RCM (context) and System (log-cleared 104).
COVERED_CHANNELS = frozenset(c.channel for c in CHANNELS)
#: Logs whose records prove a host was logging RDP evidence at a time (the others give context only).
EVIDENCE_CHANNELS = frozenset(c.channel for c in CHANNELS if c.evidence)
#: Snapshot streams: covered between polls, and only ever a lower bound on their own.
POLLED_CHANNELS = frozenset(c.channel for c in CHANNELS if c.covers is Covers.POLLED)
#: Logs of machines that see other hosts' sessions (see :attr:`ChannelDef.collector`).
COLLECTOR_CHANNELS = frozenset(c.channel for c in CHANNELS if c.collector)


def is_evidence_channel(channel: str) -> bool:
    """Whether a log (in any case) is one of :data:`EVIDENCE_CHANNELS`."""
    return channel.lower() in EVIDENCE_CHANNELS


def channel_source(channel: str) -> str:
    """The evidence source a log belongs to (``session host logs``, ``Connection Broker polls``...)."""
    found = CHANNEL_BY_KEY.get(channel.lower())
    return found.source if found is not None else "other logs"


class Kind(str, Enum):
    LOGON = "logon"
    RECONNECT = "reconnect"
    DISCONNECT = "disconnect"
    LOGOFF = "logoff"
    AUTH = "auth"
    LOG_CLEARED = "log_cleared"
    SEEN = "seen"
    """A poll listed the session: the user had one at that instant (neither a sign-in nor a renewal)."""


class Transition(str, Enum):
    """What an event does to a session (half-open connected intervals ``[connect, disconnect or end)``)."""

    CONNECT = "connect"
    DISCONNECT = "disconnect"
    END = "end"


class Slim(str, Enum):
    """What a slim read (a report's) may do with the event."""

    KEEP = "keep"
    """The report needs the row."""
    ACCOUNT = "account"
    """Only its account (for identity linking), unless its logon type is one of :data:`SESSION_LOGON_TYPES`."""


class Role(str, Enum):
    """The event's role in coverage."""

    NONE = "none"
    CLEARED = "cleared"
    """The log was cleared (1102 in Security; System 104 names the log it cleared in ``Channel``)."""
    KDC = "kdc"
    """Only a Kerberos KDC writes it: the host is a domain controller (a hint, never a silent rule)."""
    POLL = "poll"
    """A poll ran (also when it listed no session): the snapshot stream's coverage."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """Whether a row proves an RDP session, and which rule said so (a short, stable reason code)."""

    rdp: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Fields:
    """The payload field read into each column of the event table (None: the column stays empty)."""

    user: str | None = None
    domain: str | None = None
    sid: str | None = None
    logon_id: str | None = None
    logon_type: str | None = None
    address: str | None = None
    session_name: str | None = None
    client_name: str | None = None
    session_id: str | None = None
    elevated: str | None = None
    detail: str | None = None
    """A field whose text goes to ``detail`` (System 104: the log it cleared)."""
    host: str | None = None
    """A field naming the host the session ran on (RD Gateway: ``Resource``), read into ``host`` in place of the
    record's ``Computer`` (the gateway). Coverage still comes from ``Computer``: it is the log that was kept."""
    status: str | None = None
    """A field saying whether the action succeeded (RD Gateway 302: ``ErrorCode``): any value but 0 makes the row
    no evidence, whatever its rule says (see :meth:`EventDef.verdict`)."""
    qualified_user: bool = False
    """``user`` holds ``DOMAIN\\user`` (LocalSessionManager, RD Gateway), split into user and domain."""

    def payload_keys(self) -> frozenset[str]:
        return frozenset(v for v in (self.user, self.domain, self.sid, self.logon_id, self.logon_type, self.address,
                                     self.session_name, self.client_name, self.session_id, self.elevated,
                                     self.detail, self.host, self.status) if v)


#: (logon_type, address, session_name) -> the evidence verdict
Rule = Callable[[int | None, str | None, str | None], Evidence]
#: (logon_type, address, rdp) -> the session transition, or None
TransitionRule = Callable[[int | None, str | None, bool], Transition | None]


@dataclass(frozen=True, slots=True)
class EventDef:
    channel: str
    """Lower case, as :func:`key` compares it."""
    event_id: int
    title: str
    kind: Kind | None
    """None: not a row of the event table (read for coverage only)."""
    fields: Fields
    evidence: Rule
    transition: TransitionRule | None = None
    slim: Slim = Slim.KEEP
    role: Role = Role.NONE
    rekind: Callable[[int | None], Kind | None] | None = None
    """A kind that depends on the logon type (a 4624 type 7 is a reconnect or an unlock, not a logon)."""

    def verdict(self, logon_type: int | None, address: str | None, session_name: str | None,
                status: str | None = None) -> Evidence:
        """The evidence rule, after the status test: a row whose status field (``fields.status``) holds anything
        but 0 records a failure and is never evidence; an absent status is no failure (the event id says what
        happened)."""
        if self.fields.status is not None and failed(status):
            return Evidence(False, f"{self.evidence(logon_type, address, session_name).reason}_failed")
        return self.evidence(logon_type, address, session_name)


# -- tests the rules use ----------------------------------------------------------------------------------------

RDP_LOGON_TYPES = frozenset({10, 12})
UNLOCK_OR_RECONNECT = 7
#: Logon types whose 4624/4634 rows a report reads; every other logon only lends its account to identities.
SESSION_LOGON_TYPES = frozenset({7, 10, 12})


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


def failed(status: str | None) -> bool:
    """A status code (decimal or ``0x`` hex text) that is present and not 0; text that is no number is a failure
    too (a damaged record proves nothing)."""
    if status is None or not status.strip():
        return False
    value = status.strip()
    try:
        return (int(value, 16) if value.lower().startswith("0x") else int(value)) != 0
    except ValueError:
        return True


def is_remote_ip(text: str | None) -> bool:
    """An IP address that is neither loopback nor unspecified (console unlocks log 127.0.0.1 in 4624 type 7)."""
    address = parse_ip(text)
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (address.is_loopback or address.is_unspecified)


# -- the rules ---------------------------------------------------------------------------------------------------


def _logon_4624(logon_type: int | None, address: str | None, _session: str | None) -> Evidence:
    """Type 10 or 12 (RemoteInteractive, CachedRemoteInteractive); type 7 (unlock or reconnect) only with a remote
    IpAddress (console unlocks log 127.0.0.1)."""
    if logon_type in RDP_LOGON_TYPES:
        return Evidence(True, f"4624_lt{logon_type}")
    if logon_type == UNLOCK_OR_RECONNECT:
        return Evidence(True, "4624_lt7_remote_ip") if is_remote_ip(address) else Evidence(False, "4624_lt7_local")
    return Evidence(False, f"4624_lt{logon_type if logon_type is not None else 'unknown'}")


def _logoff_4634(logon_type: int | None, _address: str | None, _session: str | None) -> Evidence:
    """The logoff of a type 10/12 logon."""
    if logon_type in RDP_LOGON_TYPES:
        return Evidence(True, f"4634_lt{logon_type}")
    return Evidence(False, "logoff_not_remote")


def _window_station(event_id: int) -> Rule:
    """4778/4779: SessionName ``RDP-Tcp#...`` or ClientAddress is an IP (console: ``Console``, ``LOCAL``)."""

    def rule(_logon_type: int | None, address: str | None, session: str | None) -> Evidence:
        if session is not None and session.upper().startswith("RDP-TCP#"):
            return Evidence(True, f"{event_id}_rdp_session")
        if is_ip(address):
            return Evidence(True, f"{event_id}_ip")
        return Evidence(False, f"{event_id}_console")

    return rule


def _lsm(event_id: int) -> Rule:
    """LSM 21/24/25: Address is an IP address (console sessions write LOCAL or a localised word)."""

    def rule(_logon_type: int | None, address: str | None, _session: str | None) -> Evidence:
        return Evidence(True, f"lsm{event_id}_ip") if is_ip(address) else Evidence(False, f"lsm{event_id}_console")

    return rule


def _always_rdp(reason: str) -> Rule:
    def rule(_logon_type: int | None, _address: str | None, _session: str | None) -> Evidence:
        return Evidence(True, reason)

    return rule


def _not_console(reason: str) -> Rule:
    """``query user`` lists the console session too (SESSIONNAME ``console``): that is no RDP session. A
    disconnected session has no session name and counts (it was a remote session or a console one, which
    nothing in the output tells apart; disconnected console sessions on a session host are rare)."""

    def rule(_logon_type: int | None, _address: str | None, session: str | None) -> Evidence:
        if session is not None and session.strip().lower() == "console":
            return Evidence(False, "quser_console")
        return Evidence(True, reason)

    return rule


def _gateway(event_id: int) -> Rule:
    """RD Gateway 302/303: the gateway carried a user's connection to a resource (a session host), so the user used
    RDS there. The client's IpAddress is the far side of the gateway and proves nothing either way."""

    def rule(_logon_type: int | None, _address: str | None, _session: str | None) -> Evidence:
        return Evidence(True, f"gateway{event_id}")

    return rule


def _never(reason: str) -> Rule:
    def rule(_logon_type: int | None, _address: str | None, _session: str | None) -> Evidence:
        return Evidence(False, reason)

    return rule


def _connect_if_remote_type(logon_type: int | None, _address: str | None, _rdp: bool) -> Transition | None:
    return Transition.CONNECT if logon_type in RDP_LOGON_TYPES else None


def _end_if_remote_type(logon_type: int | None, _address: str | None, _rdp: bool) -> Transition | None:
    return Transition.END if logon_type in RDP_LOGON_TYPES else None


def _connect_if_ip(_logon_type: int | None, address: str | None, _rdp: bool) -> Transition | None:
    return Transition.CONNECT if is_ip(address) else None


def _connect_if_rdp(_logon_type: int | None, _address: str | None, rdp: bool) -> Transition | None:
    return Transition.CONNECT if rdp else None


def _always(transition: Transition) -> TransitionRule:
    def rule(_logon_type: int | None, _address: str | None, _rdp: bool) -> Transition | None:
        return transition

    return rule


def _reconnect_if_type_7(logon_type: int | None) -> Kind | None:
    return Kind.RECONNECT if logon_type == UNLOCK_OR_RECONNECT else None


_TARGET = Fields(user="TargetUserName", domain="TargetDomainName", sid="TargetUserSid", logon_id="TargetLogonId",
                 logon_type="LogonType")
_STATION = Fields(user="AccountName", domain="AccountDomain", logon_id="LogonID", session_name="SessionName",
                  client_name="ClientName", address="ClientAddress")
_LSM_FIELDS = Fields(user="User", session_id="SessionID", address="Address", qualified_user=True)
_SUBJECT = Fields(user="SubjectUserName", domain="SubjectDomainName", sid="SubjectUserSid")
_BROKER_FIELDS = Fields(user="UserName", domain="DomainName", session_id="SessionId")
_QUSER_FIELDS = Fields(user="UserName", session_id="SessionId", session_name="SessionName")

#: Event ids of the snapshot streams (their readers write these; see evtrack.sources.snapshots).
POLL_RAN, SESSION_LISTED, SESSION_CREATED = 1, 2, 3
#: Event ids of WVDConnections rows (see evtrack.sources.azure).
WVD_CONNECTED, WVD_COMPLETED = 1, 2
#: RD Gateway ``UserData/EventInfo`` (xmlns ``aag``): Username is ``DOMAIN\\user`` (or ``fqdn\\user``), IpAddress the
#: client, Resource the session host it reached; 302 adds AuthType, 303 BytesReceived/BytesTransfered/SessionDuration.
_GATEWAY_FIELDS = Fields(user="Username", address="IpAddress", host="Resource", qualified_user=True)

CATALOGUE: tuple[EventDef, ...] = (
    EventDef(SECURITY, 4624, "An account was successfully logged on", Kind.LOGON,
             Fields(user="TargetUserName", domain="TargetDomainName", sid="TargetUserSid", logon_id="TargetLogonId",
                    logon_type="LogonType", address="IpAddress", elevated="ElevatedToken"),
             _logon_4624, _connect_if_remote_type, Slim.ACCOUNT, rekind=_reconnect_if_type_7),
    EventDef(SECURITY, 4634, "An account was logged off", Kind.LOGOFF, _TARGET, _logoff_4634, _end_if_remote_type,
             Slim.ACCOUNT),
    EventDef(SECURITY, 4647, "User initiated logoff", Kind.LOGOFF, _TARGET, _never("logoff_no_marker"),
             _always(Transition.END)),
    EventDef(SECURITY, 4778, "A session was reconnected to a Window Station", Kind.RECONNECT, _STATION,
             _window_station(4778), _connect_if_rdp),
    EventDef(SECURITY, 4779, "A session was disconnected from a Window Station", Kind.DISCONNECT, _STATION,
             _window_station(4779), _always(Transition.DISCONNECT)),
    EventDef(SECURITY, 1102, "The audit log was cleared", Kind.LOG_CLEARED, _SUBJECT, _never("log_cleared"),
             role=Role.CLEARED),
    EventDef(SECURITY, 4768, "A Kerberos authentication ticket (TGT) was requested", None, Fields(),
             _never("kdc"), role=Role.KDC),
    EventDef(SECURITY, 4769, "A Kerberos service ticket was requested", None, Fields(), _never("kdc"),
             role=Role.KDC),
    EventDef(SYSTEM, 104, "The log file was cleared", Kind.LOG_CLEARED,
             Fields(user="SubjectUserName", domain="SubjectDomainName", sid="SubjectUserSid", detail="Channel"),
             _never("log_cleared"), role=Role.CLEARED),
    EventDef(LSM, 21, "Session logon succeeded", Kind.LOGON, _LSM_FIELDS, _lsm(21), _connect_if_ip),
    EventDef(LSM, 23, "Session logoff succeeded", Kind.LOGOFF, _LSM_FIELDS, _never("logoff_no_marker"),
             _always(Transition.END)),
    EventDef(LSM, 24, "Session has been disconnected", Kind.DISCONNECT, _LSM_FIELDS, _lsm(24),
             _always(Transition.DISCONNECT)),
    EventDef(LSM, 25, "Session reconnection succeeded", Kind.RECONNECT, _LSM_FIELDS, _lsm(25), _connect_if_ip),
    EventDef(RCM, 1149, "User authentication succeeded (network level, not a logon)", Kind.AUTH,
             Fields(user="Param1", domain="Param2", address="Param3"), _never("1149_auth_only")),
    # RD Gateway: no session transition. The gateway sees its tunnel, not the session: a 303 is the tunnel closing
    # (the session may stay, disconnected), a 302 may be a reconnect, and neither names a session id to pair with
    # the host's own events. The 200/300 authorisations (and 201/301/304 failures) are not evidence: not read.
    EventDef(GATEWAY, 302, "The user connected to a resource (RD Gateway)", Kind.LOGON,
             replace(_GATEWAY_FIELDS, status="ErrorCode"), _gateway(302)),
    # A 303 whose 302 was lost (rolled over, filtered) still shows use. Its ErrorCode is why the tunnel closed
    # (1226, "connection aborted by the local system", in the public samples), not a failure to connect.
    EventDef(GATEWAY, 303, "The user disconnected from a resource (RD Gateway)", Kind.DISCONNECT, _GATEWAY_FIELDS,
             _gateway(303)),
    # snapshots: 1 a poll ran, 2 a session it listed (at the poll time), 3 that session's CreateTime / LOGON TIME
    EventDef(BROKER, POLL_RAN, "A Connection Broker poll ran", None, Fields(), _never("poll"), role=Role.POLL),
    EventDef(BROKER, SESSION_LISTED, "Get-RDUserSession listed a user session", Kind.SEEN, _BROKER_FIELDS,
             _always_rdp("broker_session_listed")),
    EventDef(BROKER, SESSION_CREATED, "A listed session's CreateTime", Kind.LOGON, _BROKER_FIELDS,
             _always_rdp("broker_session_created")),
    EventDef(QUERY_USER, POLL_RAN, "A query user poll ran", None, Fields(), _never("poll"), role=Role.POLL),
    EventDef(QUERY_USER, SESSION_LISTED, "query user listed a user session", Kind.SEEN, _QUSER_FIELDS,
             _not_console("quser_session_listed")),
    EventDef(QUERY_USER, SESSION_CREATED, "A listed session's LOGON TIME", Kind.LOGON, _QUSER_FIELDS,
             _not_console("quser_logon_time")),
    # Azure Virtual Desktop: only a connection that reached Connected was used
    EventDef(WVD, WVD_CONNECTED, "An Azure Virtual Desktop connection reached Connected", Kind.LOGON,
             Fields(user="UserName", address="ClientSideIPAddress"), _always_rdp("wvd_connected")),
    EventDef(WVD, WVD_COMPLETED, "An Azure Virtual Desktop connection completed", Kind.LOGOFF,
             Fields(user="UserName", address="ClientSideIPAddress"), _never("wvd_completed")),
)

BY_KEY: dict[tuple[str, int], EventDef] = {(d.channel, d.event_id): d for d in CATALOGUE}


def lookup(channel: str, event_id: int) -> EventDef | None:
    """The definition of an event (``channel`` in any case), or None for an event evtrack does not read."""
    return BY_KEY.get((channel.lower(), event_id))


# -- derived: nothing below names an event id --------------------------------------------------------------------

#: Event ids (per channel, lower case) that become rows of the event table, and the kind of each.
EVENT_KINDS: dict[tuple[str, int], Kind] = {(d.channel, d.event_id): d.kind for d in CATALOGUE if d.kind}
#: The entries event logs (.evtx, XML exports) hold; the snapshot and Azure streams have readers of their own.
_IN_LOGS = tuple(d for d in CATALOGUE if CHANNEL_BY_KEY[d.channel].covers is Covers.LOG)
#: Event ids whose payload the event log readers decode (rows of the event table).
WANTED_EVENT_IDS: frozenset[int] = frozenset(d.event_id for d in _IN_LOGS if d.kind is not None)
#: The payload fields the event log readers decode (both engines must give them identical text).
PAYLOAD_KEYS: frozenset[str] = frozenset(k for d in _IN_LOGS for k in d.fields.payload_keys())
#: Event ids with a session transition (the rows concurrency and sessions carried over read).
SESSION_EVENT_IDS: frozenset[int] = frozenset(d.event_id for d in CATALOGUE if d.transition is not None)
#: Event ids that a slim read keeps only as an account unless their logon type opens sessions.
ACCOUNT_ONLY_EVENT_IDS: frozenset[tuple[str, int]] = frozenset(
    (d.channel, d.event_id) for d in CATALOGUE if d.slim is Slim.ACCOUNT)
#: Event ids only a Kerberos KDC writes (per channel).
KDC_EVENTS: frozenset[tuple[str, int]] = frozenset((d.channel, d.event_id) for d in CATALOGUE if d.role is Role.KDC)
#: Event ids that say a log was cleared (per channel).
CLEARED_EVENTS: frozenset[tuple[str, int]] = frozenset(
    (d.channel, d.event_id) for d in CATALOGUE if d.role is Role.CLEARED)


def read_plan(local_zone: tzinfo | None = None, culture: str | None = None) -> ReadPlan:
    """The readers' plan: the event ids and payload fields they decode, what a slim read may leave out and which
    records name a KDC, derived from the entries :func:`lookup` reads (:data:`BY_KEY`, at call time: an entry a
    test adds is in the plan) of the channels event logs hold (the snapshot and Azure readers read their own
    columns), with the settings' zone and culture for inputs that write local times."""
    entries = tuple(d for d in BY_KEY.values() if CHANNEL_BY_KEY[d.channel].covers is Covers.LOG)
    return ReadPlan(
        wanted_ids=frozenset(d.event_id for d in entries if d.kind is not None),
        payload_keys=frozenset(k for d in entries for k in d.fields.payload_keys()),
        account_only=frozenset((d.channel, d.event_id) for d in entries if d.slim is Slim.ACCOUNT),
        session_logon_types=SESSION_LOGON_TYPES,
        kdc_ids=frozenset(d.event_id for d in entries if d.role is Role.KDC and d.channel == SECURITY),
        local_zone=local_zone, culture=culture,
    )
