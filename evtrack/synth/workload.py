"""A seeded, deterministic model of an RDS session-host fleet: users, hosts, RDP sessions and noise.

The model produces, per host and channel, a time-ordered stream of :class:`ModelEvent` (Security, LSM, RCM),
each tagged with the user it is *RDP evidence* for (or -1). Ground truth is computed from these tags, never
by parsing the written files. Session events are held in memory; noise is generated lazily as a Poisson
stream so gigabyte-sized samples do not need gigabytes of RAM.

RDP evidence, as the counting side defines it: 4624 LogonType 10/12; 4624 type 7 with a non-loopback IP;
LSM 21/24/25 whose Address is an IP; 4778/4779 whose SessionName starts with RDP-Tcp# or whose ClientAddress
is an IP; 4634 with LogonType 10. 1149 alone, console sessions and type 3 (NLA) logons are not evidence.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from evtrack.synth import shapes as sh
from evtrack.synth.binxml import Value
from evtrack.synth.evtx_writer import EventType

FILETIME_UNIX_OFFSET = 116_444_736_000_000_000
TICKS_PER_SECOND = 10_000_000
SEC, LSM, RCM = "Security", "LocalSessionManager", "RemoteConnectionManager"
CHANNELS = (SEC, LSM, RCM)

_FIRST_NAMES = [
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "nina",
    "oscar",
    "peggy",
    "quentin",
    "rupert",
    "sybil",
    "trent",
    "ursula",
    "victor",
    "wendy",
    "xavier",
    "yvonne",
    "zoe",
]


def ft_from_datetime(value: datetime) -> int:
    delta = value.astimezone(timezone.utc) - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return FILETIME_UNIX_OFFSET + (delta.days * 86_400 + delta.seconds) * TICKS_PER_SECOND + delta.microseconds * 10


def ft_to_datetime(ft: int) -> datetime:
    us = (ft - FILETIME_UNIX_OFFSET) // 10
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=us)


@dataclass(frozen=True)
class Domain:
    netbios: str
    fqdn: str
    sid: str
    upn_suffix: str


@dataclass(frozen=True)
class User:
    index: int
    sam: str
    sid: str
    upn: str
    admin: bool
    activity: float
    client_ip: str
    client_name: str
    home_host: int

    def account(self, domain: Domain) -> str:
        return f"{domain.netbios.lower()}\\{self.sam.lower()}"


@dataclass(frozen=True)
class Host:
    index: int
    name: str
    fqdn: str
    machine_sid: str
    console_word: str  # "LOCAL", or a localised word ("YEREL") on a localised host


@dataclass(slots=True)
class ModelEvent:
    """One event of the model. ``evidence`` is the index of the user it is RDP evidence for, else -1."""

    ft: int
    seq: int
    channel: str
    etype: EventType
    values: tuple[Value, ...]
    pid: int = 0
    tid: int = 0
    activity: str | None = None
    user_sid: str | None = None
    evidence: int = -1


@dataclass
class SessionRecord:
    """One RDP session of the model. ``connected`` holds its connected intervals ``(from, until)``: from the
    first evidence event of a logon (4624 type 10) or reconnect (4624 type 7) to the first event of the next
    disconnect (4779) or logoff (4647 / LSM 23); ``until`` is None while it is still connected when the model
    stops (ground truth then closes it at the host's last logged event). ``session_id`` is the host's session id
    (LSM SessionID, what a broker or ``query user`` poll lists)."""

    user: int
    host: int
    start_ft: int
    end_ft: int
    connected: list[tuple[int, int | None]] = field(default_factory=list)
    session_id: int = 0


@dataclass
class HostPlan:
    """What the files of one host hold: the Security file starts at ``security_start`` (roll-over or clear);
    ``clear_ft`` writes a 1102 there; ``reexport`` is the TimeCreated window of the overlapping re-export."""

    host: Host
    events: dict[str, list[ModelEvent]] = field(default_factory=dict)
    security_start: int | None = None
    clear_ft: int | None = None
    reexport: tuple[int, int] | None = None
    noise_count: int = 0


@dataclass
class Workload:
    seed: int
    tz: str
    start: date
    end: date
    start_ft: int
    end_ft: int
    domain: Domain
    users: list[User]
    hosts: list[Host]
    plans: list[HostPlan]
    sessions: list[SessionRecord]
    noise_ratio: float

    def rdp_event_count(self) -> int:
        return sum(len(evs) for plan in self.plans for evs in plan.events.values())


class _HostState:
    def __init__(self, rng: random.Random) -> None:
        self.logon_id = rng.randrange(0x100000, 0x400000)
        self.session_id = 1
        self.rdp_tcp = rng.randrange(0, 5)
        self.seq = 0

    def next_logon_id(self, rng: random.Random) -> int:
        self.logon_id += rng.randrange(0x100, 0x4000)
        return self.logon_id

    def next_session(self) -> int:
        self.session_id = self.session_id + 1 if self.session_id < 60 else 2
        return self.session_id


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128))).upper()


class _Builder:
    """Builds the session events; every RDP flow is copied from the shape of real Windows logs."""

    def __init__(self, wl: Workload, rng: random.Random) -> None:
        self.wl = wl
        self.rng = rng
        self.state = [_HostState(rng) for _ in wl.hosts]
        self.seq = 0
        self.connect_ft = 0  # time of the last (re)connect's first evidence event (4624 type 10 / type 7)

    def emit(
        self,
        plan: HostPlan,
        ft: int,
        channel: str,
        etype: EventType,
        values: tuple[Value, ...],
        evidence: int = -1,
        pid: int = 0,
        activity: str | None = None,
    ) -> None:
        self.seq += 1
        user_sid = sh.LSM_USER_SID if channel == LSM else sh.RCM_USER_SID if channel == RCM else None
        if not pid:
            pid = {SEC: 572, LSM: 740, RCM: 948}[channel]
        tid = self.rng.randrange(100, 9000, 4)
        ev = ModelEvent(ft, self.seq, channel, etype, values, pid, tid, activity, user_sid, evidence)
        plan.events.setdefault(channel, []).append(ev)

    # --- Security payloads ---------------------------------------------------------------------------------

    def logon(
        self,
        host: Host,
        user_sid: str,
        name: str,
        domain: str,
        logon_id: int,
        logon_type: int,
        ip: str,
        workstation: str,
        elevated: str = "%%1842",
        linked: int = 0,
    ) -> tuple[Value, ...]:
        if logon_type in (10, 7, 2):
            proc, auth, pname, pid, port = "User32 ", "Negotiate", "C:\\Windows\\System32\\svchost.exe", 0x3BC, "0"
            subject: tuple[Value, ...] = ("S-1-5-18", host.name + "$", self.wl.domain.netbios, 0x3E7)
            guid = "{" + _guid(self.rng) + "}"
        elif logon_type == 3:
            proc, auth, pname, pid, port = "NtLmSsp ", "NTLM", "-", 0, str(self.rng.randrange(49152, 65535))
            subject = ("S-1-0-0", "-", "-", 0)
            guid = "{00000000-0000-0000-0000-000000000000}"
        else:  # 5: service
            proc, auth, pname, pid, port = "Advapi  ", "Negotiate", "C:\\Windows\\System32\\services.exe", 0x26C, "-"
            subject = ("S-1-5-18", host.name + "$", self.wl.domain.netbios, 0x3E7)
            guid = "{00000000-0000-0000-0000-000000000000}"
        lm = "NTLM V2" if auth == "NTLM" else "-"
        return (
            *subject,
            user_sid,
            name,
            domain,
            logon_id,
            logon_type,
            proc,
            auth,
            workstation,
            guid,
            "-",
            lm,
            128 if auth == "NTLM" else 0,
            pid,
            pname,
            ip,
            port,
            "%%1833",
            "%%1843" if logon_type == 10 else "-",
            "-",
            "-",
            "%%1843",
            linked,
            elevated,
        )

    def domain_form(self, user: User) -> str:
        """TargetDomainName / LSM User domain as Windows writes it: mostly NETBIOS, sometimes FQDN or lower."""
        r = self.rng.random()
        d = self.wl.domain
        if r < 0.8:
            return d.netbios
        if r < 0.9:
            return d.fqdn
        if r < 0.95:
            return d.netbios.lower()
        return d.fqdn.upper()

    # --- flows ------------------------------------------------------------------------------------------------

    def connect(self, plan: HostPlan, user: User, ft: int, first: bool, session_id: int, logon_id: int) -> int:
        """NLA type 3 logon, RCM 1149, then (first) the type 10 logon(s) or (reconnect) type 7. Returns time."""
        rng = self.rng
        host = plan.host
        st = self.state[host.index]
        u = user.index
        dom = self.domain_form(user)
        nla_id = st.next_logon_id(rng)
        values = self.logon(host, user.sid, user.sam, dom, nla_id, 3, user.client_ip, user.client_name, "%%1843")
        self.emit(plan, ft, SEC, sh.E4624, values)
        t = ft + rng.randrange(1, 3) * TICKS_PER_SECOND + rng.randrange(0, 9_999_990, 10)
        param2 = self.wl.domain.netbios if rng.random() < 0.6 else ""
        activity = _guid(rng)
        self.emit(plan, t, RCM, sh.RCM1149, (user.sam, param2, user.client_ip), activity=activity)
        self.emit(plan, t + 4_000_000, SEC, sh.E4634, (user.sid, user.sam, dom, nla_id, 3))
        t += rng.randrange(2, 5) * TICKS_PER_SECOND
        st.rdp_tcp += 1
        if first:
            sid_str = f"S-1-5-90-0-{session_id}"
            for name, dname in ((f"UMFD-{session_id}", "Font Driver Host"), (f"DWM-{session_id}", "Window Manager")):
                sys_id = st.next_logon_id(rng)
                vals = self.logon(
                    host,
                    sid_str if "DWM" in name else f"S-1-5-96-0-{session_id}",
                    name,
                    dname,
                    sys_id,
                    2,
                    "-",
                    "",
                    "%%1842",
                )
                self.emit(plan, t, SEC, sh.E4624, vals)
            t += 5_000_000
            self.connect_ft = t
            if user.admin:  # UAC split token: two type 10 logons in the same second, linked to each other
                linked = st.next_logon_id(rng)
                for lid, other, elevated in ((logon_id, linked, "%%1842"), (linked, logon_id, "%%1843")):
                    vals = self.logon(
                        host, user.sid, user.sam, dom, lid, 10, user.client_ip, host.name, elevated, other
                    )
                    self.emit(plan, t, SEC, sh.E4624, vals, evidence=u)
                    t += 10
                self.emit(plan, t, SEC, sh.E4672, (user.sid, user.sam, dom, logon_id, _PRIVILEGES))
            else:
                vals = self.logon(host, user.sid, user.sam, dom, logon_id, 10, user.client_ip, host.name, "%%1843")
                self.emit(plan, t, SEC, sh.E4624, vals, evidence=u)
            t += rng.randrange(1, 3) * TICKS_PER_SECOND
            lsm_user = f"{dom}\\{user.sam}"
            act = "F4205BAC-1B01-40FC-AEEF-3C971C73" + f"{rng.randrange(0, 0xFFFF):04X}"
            self.emit(plan, t, LSM, sh.LSM21, (lsm_user, session_id, user.client_ip), evidence=u, activity=act)
            t += rng.randrange(1, 4) * TICKS_PER_SECOND
            self.emit(plan, t, LSM, sh.LSM22, (lsm_user, session_id, user.client_ip), evidence=-1, activity=act)
        else:
            lid = st.next_logon_id(rng)
            self.connect_ft = t
            vals = self.logon(host, user.sid, user.sam, dom, lid, 7, user.client_ip, host.name, "%%1843")
            self.emit(plan, t, SEC, sh.E4624, vals, evidence=u)
            t += rng.randrange(1, 3) * TICKS_PER_SECOND
            lsm_user = f"{dom}\\{user.sam}"
            self.emit(plan, t, LSM, sh.LSM25, (lsm_user, session_id, user.client_ip), evidence=u)
            t += 3_000_000
            session_vals = (user.sam, dom, logon_id, f"RDP-Tcp#{st.rdp_tcp}", user.client_name, user.client_ip)
            self.emit(plan, t, SEC, sh.E4778, session_vals, evidence=u)
        return t

    def disconnect(self, plan: HostPlan, user: User, ft: int, session_id: int, logon_id: int) -> None:
        st = self.state[plan.host.index]
        dom = self.domain_form(user)
        vals = (user.sam, dom, logon_id, f"RDP-Tcp#{st.rdp_tcp}", user.client_name, user.client_ip)
        self.emit(plan, ft, SEC, sh.E4779, vals, evidence=user.index)
        self.emit(plan, ft + 1_000_000, LSM, sh.LSM40, (session_id, 11))
        self.emit(
            plan, ft + 1_500_000, LSM, sh.LSM24, (f"{dom}\\{user.sam}", session_id, user.client_ip), evidence=user.index
        )

    def logoff(self, plan: HostPlan, user: User, ft: int, session_id: int, logon_id: int, via_user: bool) -> None:
        dom = self.domain_form(user)
        t = ft
        if via_user:
            self.emit(plan, t, SEC, sh.E4647, (user.sid, user.sam, dom, logon_id))
            t += 2_000_000
        self.emit(plan, t, LSM, sh.LSM23, (f"{dom}\\{user.sam}", session_id))
        self.emit(plan, t + 500_000, LSM, sh.LSM40, (session_id, 12 if via_user else 5))
        self.emit(plan, t + 3_000_000, SEC, sh.E4634, (user.sid, user.sam, dom, logon_id, 10), evidence=user.index)

    def session(self, user: User, host_idx: int, start: int, actions: Sequence[tuple[str, int]]) -> None:
        """One RDP session: connect at ``start``, then ("disconnect"|"reconnect"|"logoff"|"idle_logoff", ft)."""
        plan = self.wl.plans[host_idx]
        st = self.state[host_idx]
        session_id = st.next_session()
        logon_id = st.next_logon_id(self.rng)
        self.connect(plan, user, start, True, session_id, logon_id)
        connected: list[tuple[int, int | None]] = []
        since: int | None = self.connect_ft
        end = start
        for kind, ft in actions:
            end = ft
            if kind == "disconnect":
                self.disconnect(plan, user, ft, session_id, logon_id)
            elif kind == "reconnect":
                self.connect(plan, user, ft, False, session_id, logon_id)
            else:
                self.logoff(plan, user, ft, session_id, logon_id, kind == "logoff")
            if kind == "reconnect":
                if since is None:
                    since = self.connect_ft
            elif since is not None:  # a disconnect or logoff ends the connected interval
                connected.append((since, ft))
                since = None
        if since is not None:
            connected.append((since, None))
        self.wl.sessions.append(SessionRecord(user.index, host_idx, start, end, connected, session_id))

    def console(self, host_idx: int, ft: int) -> None:
        """A local administrator at the console: 4624 type 2, LSM 21/22 with LOCAL (or localised), logoff."""
        rng = self.rng
        plan = self.wl.plans[host_idx]
        host = plan.host
        st = self.state[host_idx]
        sid = host.machine_sid + "-500"
        lid = st.next_logon_id(rng)
        session_id = 1
        vals = self.logon(host, sid, "Administrator", host.name, lid, 2, "127.0.0.1", host.name, "%%1842")
        self.emit(plan, ft, SEC, sh.E4624, vals)
        self.emit(plan, ft + 10, SEC, sh.E4672, (sid, "Administrator", host.name, lid, _PRIVILEGES))
        user = f"{host.name}\\Administrator"
        self.emit(plan, ft + 20_000_000, LSM, sh.LSM21, (user, session_id, host.console_word))
        self.emit(plan, ft + 30_000_000, LSM, sh.LSM22, (user, session_id, host.console_word))
        t = ft + rng.randrange(300, 3600) * TICKS_PER_SECOND
        self.emit(plan, t, SEC, sh.E4779, ("Administrator", host.name, lid, "Console", "Unknown", "LOCAL"))
        self.emit(plan, t + 1_000_000, LSM, sh.LSM24, (user, session_id, host.console_word))
        t += rng.randrange(60, 600) * TICKS_PER_SECOND
        self.emit(plan, t, LSM, sh.LSM25, (user, session_id, host.console_word))
        self.emit(plan, t + 1_000_000, SEC, sh.E4778, ("Administrator", host.name, lid, "Console", "Unknown", "LOCAL"))
        t += rng.randrange(60, 1200) * TICKS_PER_SECOND
        self.emit(plan, t, SEC, sh.E4647, (sid, "Administrator", host.name, lid))
        self.emit(plan, t + 1_000_000, LSM, sh.LSM23, (user, session_id))
        self.emit(plan, t + 3_000_000, SEC, sh.E4634, (sid, "Administrator", host.name, lid, 2))


_PRIVILEGES = (
    "SeSecurityPrivilege\n\t\t\tSeBackupPrivilege\n\t\t\tSeRestorePrivilege\n\t\t\tSeTakeOwnershipPrivilege\n\t\t\t"
    "SeDebugPrivilege\n\t\t\tSeSystemEnvironmentPrivilege\n\t\t\tSeLoadDriverPrivilege\n\t\t\t"
    "SeImpersonatePrivilege\n\t\t\tSeDelegateSessionUserImpersonatePrivilege"
)


def _local(tzinfo: ZoneInfo, day: date, seconds: float) -> int:
    dt = datetime(day.year, day.month, day.day, tzinfo=tzinfo) + timedelta(seconds=seconds)
    # Re-localise so that DST gaps/folds resolve like a wall clock would.
    dt = dt.replace(tzinfo=None).replace(tzinfo=tzinfo)
    return ft_from_datetime(dt) // 10 * 10


def _random_sid(rng: random.Random) -> str:
    return "S-1-5-21-" + "-".join(str(rng.randrange(10**9, 4 * 10**9)) for _ in range(3))


def _weekdays(start: date, end: date) -> list[date]:
    days = []
    d = start
    while d <= end:
        if d.weekday() < 5:
            days.append(d)
        d += timedelta(days=1)
    return days


def build_workload(
    *,
    users: int,
    hosts: int,
    start: date,
    end: date,
    tz: str,
    seed: int,
    noise_ratio: float,
    rollover: bool,
    clear_log: bool,
    reexport: bool,
) -> Workload:
    """Build the session part of the model (noise is streamed later by :func:`host_streams`)."""
    if users < 1 or hosts < 1:
        raise ValueError("need at least one user and one host")
    if end < start:
        raise ValueError("end before start")
    rng = random.Random(f"evtrack-synth/{seed}")
    tzinfo = ZoneInfo(tz)
    dom_sid = _random_sid(rng)
    domain = Domain("CONTOSO", "contoso.local", dom_sid, "contoso.com")
    host_list = []
    for i in range(hosts):
        name = f"RDSH{i + 1:02d}"
        msid = _random_sid(rng)
        word = "YEREL" if i == 1 else "LOCAL"
        host_list.append(Host(i, name, f"{name}.{domain.fqdn}", msid, word))
    user_list = []
    for i in range(users):
        base = _FIRST_NAMES[i % len(_FIRST_NAMES)]
        sam = base if i < len(_FIRST_NAMES) else f"{base}{i // len(_FIRST_NAMES) + 1}"
        activity = rng.choice((0.05, 0.15, 0.4, 0.6, 0.8))
        user_list.append(
            User(
                index=i,
                sam=sam,
                sid=f"{dom_sid}-{1104 + i}",
                upn=f"{sam}@{domain.upn_suffix}",
                admin=rng.random() < 0.25,
                activity=activity,
                client_ip=f"10.{rng.randrange(1, 250)}.{rng.randrange(0, 250)}.{rng.randrange(2, 250)}",
                client_name=f"WS-{sam.upper()}"[:15],
                home_host=rng.randrange(hosts),
            )
        )
    start_ft = _local(tzinfo, start, 0)
    end_ft = _local(tzinfo, end + timedelta(days=1), 0) - 10
    plans = [HostPlan(h, {c: [] for c in CHANNELS}) for h in host_list]
    wl = Workload(seed, tz, start, end, start_ft, end_ft, domain, user_list, host_list, plans, [], noise_ratio)
    b = _Builder(wl, rng)
    days = _weekdays(start, end)
    # The last user (when there are at least 3) only keeps one long session per two months: it starts on the
    # last weekday of a month and is only *reconnected* during the next one (no new logon that month).
    persistent = user_list[-1] if users >= 3 else None
    for day in days:
        for user in user_list:
            if user is persistent or rng.random() >= user.activity:
                continue
            host_idx = user.home_host if rng.random() < 0.8 else rng.randrange(hosts)
            begin = _local(tzinfo, day, rng.uniform(7.5 * 3600, 11 * 3600))
            length = rng.uniform(1 * 3600, 8 * 3600)
            actions: list[tuple[str, int]] = []
            t = begin
            for _ in range(rng.choice((0, 0, 1, 1, 2))):
                t += int(rng.uniform(0.2, 0.4) * length * TICKS_PER_SECOND) // 10 * 10
                actions.append(("disconnect", t))
                t += rng.randrange(5 * 60, 90 * 60) * TICKS_PER_SECOND
                actions.append(("reconnect", t))
            t = max(t + 60 * TICKS_PER_SECOND, begin + int(length * TICKS_PER_SECOND) // 10 * 10)
            if rng.random() < 0.1:  # left disconnected, logged off by the idle policy in the night
                actions.append(("disconnect", t))
                actions.append(("idle_logoff", t + rng.randrange(2 * 3600, 10 * 3600) * TICKS_PER_SECOND))
            else:
                actions.append(("logoff", t))
            if actions[-1][1] <= end_ft:
                b.session(user, host_idx, begin, actions)
        if rng.random() < 0.15:
            b.console(rng.randrange(hosts), _local(tzinfo, day, rng.uniform(6 * 3600, 20 * 3600)))
    if persistent is not None:
        _persistent_sessions(b, persistent, days, tzinfo, end_ft)
    for plan in plans:
        for evs in plan.events.values():
            evs.sort(key=lambda e: (e.ft, e.seq))
    span = end_ft - start_ft
    for plan in plans:
        h = plan.host.index
        if rollover and h == (1 % hosts):
            plan.security_start = start_ft + span * 3 // 10
        if clear_log and h == 0:
            plan.clear_ft = start_ft + span * 6 // 10 // 10 * 10
            plan.security_start = plan.clear_ft
        if reexport and h == hosts - 1:
            lo = max(plan.security_start or start_ft, start_ft + span // 4)
            plan.reexport = (lo, lo + span * 4 // 10)
    return wl


def _persistent_sessions(b: _Builder, user: User, days: Sequence[date], tzinfo: ZoneInfo, end_ft: int) -> None:
    rng = b.rng
    months: dict[tuple[int, int], list[date]] = {}
    for d in days:
        months.setdefault((d.year, d.month), []).append(d)
    keys = sorted(months)
    for i in range(0, len(keys), 2):
        first = months[keys[i]][-1]
        begin = _local(tzinfo, first, rng.uniform(15 * 3600, 16 * 3600))
        actions: list[tuple[str, int]] = [("disconnect", begin + rng.randrange(1800, 7200) * TICKS_PER_SECOND)]
        if i + 1 < len(keys):
            for d in months[keys[i + 1]][:5]:
                t = _local(tzinfo, d, rng.uniform(8 * 3600, 10 * 3600))
                actions.append(("reconnect", t))
                actions.append(("disconnect", t + rng.randrange(1800, 6 * 3600) * TICKS_PER_SECOND))
            actions[-1] = ("logoff", actions[-1][1])
        else:
            actions.append(("idle_logoff", actions[-1][1] + 3600 * TICKS_PER_SECOND))
        if actions[-1][1] <= end_ft:
            b.session(user, user.home_host, begin, actions)


# ------------------------------------------------------------------------------------------------- noise


def _noise_stream(wl: Workload, plan: HostPlan, count: int) -> Iterator[ModelEvent]:
    """``count`` non-RDP Security events spread over the whole range, in time order (Poisson process)."""
    if count <= 0:
        return
    rng = random.Random(f"evtrack-synth/{wl.seed}/noise/{plan.host.index}")
    host = plan.host
    dom = wl.domain
    span = wl.end_ft - wl.start_ft
    mean_gap = span / (count + 1)
    t = float(wl.start_ft)
    logon_id = 0x10000000
    seq = 10**12
    made = 0
    users = wl.users
    machine = f"{host.name}$"
    while made < count:
        t += rng.expovariate(1.0) * mean_gap
        ft = int(t) // 10 * 10
        ft = min(ft, wl.end_ft)
        r = rng.random()
        logon_id += rng.randrange(0x10, 0x400)
        seq += 1
        tid = rng.randrange(100, 9000, 4)
        values: tuple[Value, ...]
        if r < 0.3:  # machine / computer account network logon (or a user's SMB logon) and its logoff
            if rng.random() < 0.5:
                sid, name, dname = "S-1-5-18", machine, dom.netbios
            else:
                u = users[rng.randrange(len(users))]
                sid, name, dname = u.sid, u.sam, dom.netbios
            values = (
                "S-1-0-0",
                "-",
                "-",
                0,
                sid,
                name,
                dname,
                logon_id,
                3,
                "Kerberos",
                "Kerberos",
                "",
                "{" + _guid(rng) + "}",
                "-",
                "-",
                0,
                0,
                "-",
                f"10.0.0.{rng.randrange(2, 40)}",
                str(rng.randrange(49152, 65535)),
                "%%1833",
                "-",
                "-",
                "-",
                "%%1843",
                0,
                "%%1842",
            )
            etype = sh.E4624 if rng.random() < 0.6 else sh.E4634
            if etype is sh.E4634:
                values = (sid, name, dname, logon_id, 3)
        elif r < 0.6:  # services: SYSTEM / NETWORK SERVICE / LOCAL SERVICE type 5 (+ 4672)
            sid, name = rng.choice(
                (("S-1-5-18", "SYSTEM"), ("S-1-5-20", "NETWORK SERVICE"), ("S-1-5-19", "LOCAL SERVICE"))
            )
            if rng.random() < 0.7:
                etype = sh.E4624
                values = (
                    "S-1-5-18",
                    machine,
                    dom.netbios,
                    0x3E7,
                    sid,
                    name,
                    "NT AUTHORITY",
                    0x3E7 if name == "SYSTEM" else 0x3E4 if name == "NETWORK SERVICE" else 0x3E5,
                    5,
                    "Advapi  ",
                    "Negotiate",
                    "-",
                    "{00000000-0000-0000-0000-000000000000}",
                    "-",
                    "-",
                    0,
                    0x26C,
                    "C:\\Windows\\System32\\services.exe",
                    "-",
                    "-",
                    "%%1833",
                    "-",
                    "-",
                    "-",
                    "%%1843",
                    0,
                    "%%1842",
                )
            else:
                etype = sh.E4672
                values = (sid, name, "NT AUTHORITY", 0x3E7, _PRIVILEGES)
        elif r < 0.8:  # credential manager reads by a user
            u = users[rng.randrange(len(users))]
            etype = sh.E5379
            values = (
                u.sid,
                u.sam,
                dom.netbios,
                logon_id,
                f"MicrosoftOffice16_Data:SSPI:{u.upn}",
                1,
                0,
                "%%8100",
                0,
                wl.start_ft,
                rng.randrange(1000, 20000, 4),
            )
        else:  # a user's local group membership was enumerated
            u = users[rng.randrange(len(users))]
            etype = sh.E4798
            values = (
                u.sam,
                dom.netbios,
                u.sid,
                "S-1-5-18",
                machine,
                dom.netbios,
                0x3E7,
                rng.randrange(1000, 9000, 4),
                "C:\\Windows\\System32\\svchost.exe",
            )
        made += 1
        yield ModelEvent(ft, seq, SEC, etype, values, rng.choice((572, 636, 804)), tid)


def host_streams(wl: Workload, plan: HostPlan) -> dict[str, Iterator[ModelEvent]]:
    """Per channel, the time-ordered event stream of one host: session events merged with lazy noise."""
    sec: Iterator[ModelEvent] = heapq.merge(
        plan.events.get(SEC, []), _noise_stream(wl, plan, plan.noise_count), key=lambda e: (e.ft, e.seq)
    )
    return {SEC: sec, LSM: iter(plan.events.get(LSM, [])), RCM: iter(plan.events.get(RCM, []))}


def clear_event(wl: Workload, plan: HostPlan, ft: int) -> ModelEvent:
    """The 1102 an administrator's clear writes as the first record of the new Security log."""
    admin = next((u for u in wl.users if u.admin), wl.users[0])
    return ModelEvent(ft, -1, SEC, sh.E1102, (admin.sid, admin.sam, wl.domain.netbios, 0x1FEBB0), 1040, 1172)


def month_key(ft: int, tzinfo: ZoneInfo) -> str:
    return ft_to_datetime(ft).astimezone(tzinfo).strftime("%Y-%m")
