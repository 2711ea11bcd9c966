"""Minimal hand-written exports, in both shapes a user feeds evtrack: `wevtutil qe /f:xml` XML and real `.evtx`
(written by `evtrack.synth`). One list of :class:`Rec` makes both, so a test can check both give one answer.

:func:`write` renders XML with the hand-written helpers of conftest; :func:`export` renders it with
`evtrack.synth.xml_writer`, in the exact shape Windows writes (every System element, single quotes), and
:func:`forwarded` writes several logs as one WEF collector's ForwardedEvents log."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from evtrack.synth import VT, EventSpec, EvtxWriter, arrival_order, event_xml, write_forwarded, write_xml
from evtrack.synth import shapes as sh
from evtrack.synth.evtx_writer import EventType
from evtrack.synth.forwarded import english
from evtrack.synth.xml_writer import Rendering

from .conftest import LSM_CHANNEL, logon_4624, lsm, write_events, xml_event

SECURITY_PROVIDER = "Microsoft-Windows-Security-Auditing"
#: "A Kerberos authentication ticket (TGT) was requested": only a domain controller (the KDC) writes it.
E4768 = EventType(sh.SECURITY_AUDITING, sh.SECURITY, 4768, (
    ("TargetUserName", VT.STRING), ("TargetDomainName", VT.STRING), ("TargetSid", VT.SID),
    ("ServiceName", VT.STRING), ("ServiceSid", VT.SID), ("TicketOptions", VT.STRING), ("Status", VT.STRING),
    ("TicketEncryptionType", VT.STRING), ("PreAuthType", VT.STRING), ("IpAddress", VT.STRING),
    ("IpPort", VT.STRING)), task=14339, keywords=sh.AUDIT_SUCCESS)


@dataclass(frozen=True)
class Rec:
    """One record: ``what`` is 4624 (a logon of ``logon_type``), 4634 (its logoff), lsm21/lsm23/lsm24/lsm25, or
    noise (a Security 4672 or an LSM 22 with a console address: coverage, never evidence), or kdc (a 4768), or an
    RD Gateway gw200/gw300/gw302/gw303 (``host`` is then the gateway; ``resource`` the session host it reached,
    ``account`` the Username as written, ``error_code`` its ErrorCode: 0, or 1226 for a 303, by default)."""

    what: str
    time: datetime
    record_id: int
    host: str = "RDSH01.contoso.local"
    user: str = "alice"
    domain: str = "CONTOSO"
    sid: str = "S-1-5-21-1-2-3-1105"
    ip: str = "10.0.0.5"
    logon_type: int = 10
    session: int = 3
    channel: str = "Security"
    resource: str = "RDSH01.contoso.local"
    account: str | None = None
    error_code: int | None = None

    @property
    def lsm(self) -> bool:
        return self.what.startswith("lsm") or self.channel == LSM_CHANNEL


def noise(start: datetime, end: datetime, every: timedelta, first_id: int, **kw: object) -> list[Rec]:
    """Coverage: a noise record every ``every`` from ``start`` to ``end`` inclusive, with consecutive ids."""
    out = []
    moment, record_id = start, first_id
    while moment <= end:
        out.append(Rec("noise", moment, record_id, **kw))  # type: ignore[arg-type]
        moment += every
        record_id += 1
    return out


def _account(rec: Rec) -> str:
    """``DOMAIN\\user`` as LocalSessionManager writes it, or the bare name when the record has no domain."""
    return f"{rec.domain}\\{rec.user}" if rec.domain else rec.user


def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def as_xml(rec: Rec) -> str:
    """The record as `wevtutil qe /f:xml` writes it."""
    if rec.what.startswith("gw"):
        return event_xml(as_spec(rec))
    common = {"computer": rec.host, "time": _stamp(rec.time), "record_id": rec.record_id}
    if rec.what == "4624":
        return logon_4624(rec.logon_type, user=rec.user, domain=rec.domain, ip=rec.ip, sid=rec.sid, **common)
    if rec.what == "4634":
        return xml_event(4634, provider=SECURITY_PROVIDER, data={
            "TargetUserSid": rec.sid, "TargetUserName": rec.user, "TargetDomainName": rec.domain,
            "TargetLogonId": "0x1A2B3C", "LogonType": str(rec.logon_type)}, **common)  # type: ignore[arg-type]
    if rec.what.startswith("lsm"):
        event_id = int(rec.what[3:])
        address = None if event_id == 23 else rec.ip
        return lsm(event_id, user=_account(rec), address=address, session=str(rec.session),
                   **common)
    if rec.what == "kdc":
        return xml_event(4768, provider=SECURITY_PROVIDER, data={
            "TargetUserName": rec.user, "TargetDomainName": rec.domain, "TargetSid": rec.sid,
            "ServiceName": "krbtgt", "Status": "0x0", "IpAddress": f"::ffff:{rec.ip}"}, **common)  # type: ignore[arg-type]
    if rec.what == "noise" and rec.lsm:
        return lsm(22, user=_account(rec), address="LOCAL", session="1", **common)
    if rec.what == "noise":
        return xml_event(4672, provider=SECURITY_PROVIDER, data={
            "SubjectUserSid": "S-1-5-18", "SubjectUserName": "SYSTEM", "SubjectDomainName": "NT AUTHORITY",
            "SubjectLogonId": "0x3e7", "PrivilegeList": "SeTcbPrivilege"}, **common)  # type: ignore[arg-type]
    raise ValueError(rec.what)


def _fill(etype: EventType, given: dict[str, object]) -> tuple[object, ...]:
    default = {VT.STRING: "-", VT.SID: "S-1-0-0", VT.GUID: "{00000000-0000-0000-0000-000000000000}"}
    return tuple(given.get(name, default.get(vtype, 0)) for name, vtype in etype.fields)


def as_spec(rec: Rec) -> EventSpec:
    """The record for :class:`evtrack.synth.EvtxWriter`."""
    etype: EventType
    values: dict[str, object]
    user_sid = None
    if rec.what in ("4624", "4634"):
        etype = sh.E4624 if rec.what == "4624" else sh.E4634
        values = {"TargetUserSid": rec.sid, "TargetUserName": rec.user, "TargetDomainName": rec.domain,
                  "TargetLogonId": 0x1A2B3C, "LogonType": rec.logon_type, "IpAddress": rec.ip}
    elif rec.what.startswith("lsm") or (rec.what == "noise" and rec.lsm):
        event_id = 22 if rec.what == "noise" else int(rec.what[3:])
        etype = {21: sh.LSM21, 22: sh.LSM22, 23: sh.LSM23, 24: sh.LSM24, 25: sh.LSM25}[event_id]
        values = {"User": _account(rec), "SessionID": rec.session if rec.what != "noise" else 1,
                  "Address": "LOCAL" if rec.what == "noise" else rec.ip}
        user_sid = sh.LSM_USER_SID
    elif rec.what == "kdc":
        etype = E4768
        values = {"TargetUserName": rec.user, "TargetDomainName": rec.domain, "TargetSid": rec.sid,
                  "ServiceName": "krbtgt", "Status": "0x0", "IpAddress": f"::ffff:{rec.ip}"}
    elif rec.what.startswith("gw"):
        return _gateway_spec(rec)
    elif rec.what == "noise":
        etype = sh.E4672
        values = {"SubjectUserSid": "S-1-5-18", "SubjectUserName": "SYSTEM", "SubjectDomainName": "NT AUTHORITY",
                  "SubjectLogonId": 0x3E7, "PrivilegeList": "SeTcbPrivilege"}
    else:
        raise ValueError(rec.what)
    return EventSpec(etype, rec.time, rec.record_id, rec.host, _fill(etype, values), user_sid=user_sid)  # type: ignore[arg-type]


def write(path: Path, records: Sequence[Rec], shape: str) -> Path:
    """Write ``records`` (one log: one host and channel) as ``path.xml`` or ``path.evtx``."""
    if shape == "xml":
        return write_events(path.with_suffix(".xml"), *(as_xml(r) for r in records), root=True)
    target = path.with_suffix(".evtx")
    with EvtxWriter(target) as writer:
        for rec in records:
            writer.add(as_spec(rec))
    return target


def lsm_log(records: Sequence[Rec]) -> list[Rec]:
    """The same records marked as LocalSessionManager records (for noise)."""
    return [Rec(r.what, r.time, r.record_id, r.host, r.user, r.domain, r.sid, r.ip, r.logon_type, r.session,
                LSM_CHANNEL) for r in records]


_GATEWAY_TYPES = {"gw200": sh.GW200, "gw300": sh.GW300, "gw302": sh.GW302, "gw303": sh.GW303}


def _gateway_spec(rec: Rec) -> EventSpec:
    """A gateway record as the RD Gateway writes it (one connection's records share an ActivityID)."""
    etype = _GATEWAY_TYPES[rec.what]
    error = rec.error_code if rec.error_code is not None else (1226 if rec.what == "gw303" else 0)
    values = {"Username": rec.account if rec.account is not None else _account(rec), "IpAddress": rec.ip,
              "AuthType": "NTLM" if rec.what == "gw200" else "", "Resource": rec.resource,
              "ConnectionProtocol": "" if rec.what == "gw300" else "HTTP", "BytesReceived": 4_223_901,
              "BytesTransfered": 3_017_755, "SessionDuration": 3775, "ErrorCode": error}
    activity = f"{{7CF86876-882F-0625-F153-{rec.record_id:012X}}}"
    return EventSpec(etype, rec.time, rec.record_id, rec.host, tuple(values[name] for name, _ in etype.fields),
                     process_id=1444, thread_id=2556, activity_id=activity, user_sid=sh.GATEWAY_USER_SID)


def spec(rec: Rec) -> EventSpec:
    """The record as :mod:`evtrack.synth` writes it."""
    return as_spec(rec)


def export(path: Path, records: Sequence[Rec], shape: str) -> Path:
    """Write ``records`` as ``path.evtx``, or as ``path.xml`` in the exact shape `wevtutil qe /f:xml` writes."""
    if shape == "xml":
        return write_xml(path.with_suffix(".xml"), [as_spec(r) for r in records])
    return write(path, records, "evtx")


def forwarded(path: Path, logs: Sequence[Sequence[Rec]], shape: str,
              rendering: Callable[[EventSpec], Rendering | None] | None = english) -> Path:
    """Several hosts' logs (each in record order) as one collector's ForwardedEvents log, interleaved in the order
    the collector received them: ``path.evtx`` or ``path.xml`` (with RenderingInfo from ``rendering``)."""
    feed = arrival_order([[as_spec(r) for r in log] for log in logs])
    return write_forwarded(path.with_suffix(f".{shape}"), feed, shape, rendering)
