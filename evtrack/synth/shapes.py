"""Event types copied from real Windows records (System values, payload field names, order and value types)."""

from __future__ import annotations

from evtrack.synth.binxml import VT
from evtrack.synth.evtx_writer import EventType, Provider

SECURITY = "Security"
LSM_CHANNEL = "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational"
RCM_CHANNEL = "Microsoft-Windows-TerminalServices-RemoteConnectionManager/Operational"

SECURITY_AUDITING = Provider("Microsoft-Windows-Security-Auditing", "{54849625-5478-4994-A5BA-3E3B0328C30D}")
EVENTLOG = Provider("Microsoft-Windows-Eventlog", "{fc65ddd8-d6ef-4962-83d5-6e5cfe9ce148}", literal=True)
LSM = Provider("Microsoft-Windows-TerminalServices-LocalSessionManager", "{5D896912-022D-40AA-A3A8-4FA5515C76D7}")
RCM = Provider("Microsoft-Windows-TerminalServices-RemoteConnectionManager", "{C76BAA63-AE81-421C-B425-340B4B24157F}")

AUDIT_SUCCESS = 0x8020000000000000
S, SID, HEX64, U32, GUID, SIZET, FT = VT.STRING, VT.SID, VT.HEXINT64, VT.UINT32, VT.GUID, VT.SIZET, VT.FILETIME

_SUBJECT = (("SubjectUserSid", SID), ("SubjectUserName", S), ("SubjectDomainName", S), ("SubjectLogonId", HEX64))


def _sec(event_id: int, task: int, fields: tuple[tuple[str, VT], ...], version: int = 0) -> EventType:
    return EventType(SECURITY_AUDITING, SECURITY, event_id, fields, version=version, task=task, keywords=AUDIT_SUCCESS)


E4624 = _sec(
    4624,
    12544,
    (
        *_SUBJECT,
        ("TargetUserSid", SID),
        ("TargetUserName", S),
        ("TargetDomainName", S),
        ("TargetLogonId", HEX64),
        ("LogonType", U32),
        ("LogonProcessName", S),
        ("AuthenticationPackageName", S),
        ("WorkstationName", S),
        ("LogonGuid", GUID),
        ("TransmittedServices", S),
        ("LmPackageName", S),
        ("KeyLength", U32),
        ("ProcessId", SIZET),
        ("ProcessName", S),
        ("IpAddress", S),
        ("IpPort", S),
        ("ImpersonationLevel", S),
        ("RestrictedAdminMode", S),
        ("TargetOutboundUserName", S),
        ("TargetOutboundDomainName", S),
        ("VirtualAccount", S),
        ("TargetLinkedLogonId", HEX64),
        ("ElevatedToken", S),
    ),
    version=2,
)
E4634 = _sec(
    4634,
    12545,
    (
        ("TargetUserSid", SID),
        ("TargetUserName", S),
        ("TargetDomainName", S),
        ("TargetLogonId", HEX64),
        ("LogonType", U32),
    ),
)
E4647 = _sec(
    4647, 12545, (("TargetUserSid", SID), ("TargetUserName", S), ("TargetDomainName", S), ("TargetLogonId", HEX64))
)
E4672 = _sec(4672, 12548, (*_SUBJECT, ("PrivilegeList", S)))
_SESSION = (
    ("AccountName", S),
    ("AccountDomain", S),
    ("LogonID", HEX64),
    ("SessionName", S),
    ("ClientName", S),
    ("ClientAddress", S),
)
E4778 = _sec(4778, 12551, _SESSION)
E4779 = _sec(4779, 12551, _SESSION)
E4798 = _sec(
    4798,
    13824,
    (
        ("TargetUserName", S),
        ("TargetDomainName", S),
        ("TargetSid", SID),
        *_SUBJECT,
        ("CallerProcessId", SIZET),
        ("CallerProcessName", S),
    ),
)
E5379 = _sec(
    5379,
    13824,
    (
        *_SUBJECT,
        ("TargetName", S),
        ("Type", U32),
        ("CountOfCredentialsReturned", U32),
        ("ReadOperation", S),
        ("ReturnCode", U32),
        ("ProcessCreationTime", FT),
        ("ClientProcessId", U32),
    ),
)
E1102 = EventType(
    EVENTLOG,
    SECURITY,
    1102,
    _SUBJECT,
    level=4,
    task=104,
    keywords=0x4020000000000000,
    payload="UserData",
    userdata_name="LogFileCleared",
    userdata_ns="http://manifests.microsoft.com/win/2004/08/windows/eventlog",
)


def _lsm(event_id: int, fields: tuple[tuple[str, VT], ...]) -> EventType:
    return EventType(LSM, LSM_CHANNEL, event_id, fields, level=4, keywords=0x1000000000000000, payload="UserData")


_USER_SESSION_ADDR = (("User", S), ("SessionID", U32), ("Address", S))
LSM21 = _lsm(21, _USER_SESSION_ADDR)
LSM22 = _lsm(22, _USER_SESSION_ADDR)
LSM23 = _lsm(23, (("User", S), ("SessionID", U32)))
LSM24 = _lsm(24, _USER_SESSION_ADDR)
LSM25 = _lsm(25, _USER_SESSION_ADDR)
LSM40 = _lsm(40, (("Session", U32), ("Reason", U32)))

RCM1149 = EventType(
    RCM,
    RCM_CHANNEL,
    1149,
    (("Param1", S), ("Param2", S), ("Param3", S)),
    level=4,
    keywords=0x1000000000000000,
    payload="UserData",
)

#: The SIDs Windows writes as ``Security/@UserID`` for these channels.
LSM_USER_SID = "S-1-5-18"
RCM_USER_SID = "S-1-5-20"

# -- RD Gateway (Microsoft-Windows-TerminalServices-Gateway/Operational) ----------------------------------------
# Payload UserData/EventInfo xmlns="aag"; field names and order from public records (EvtxECmd maps, a 2018 303
# rendered by ToXml(), a 2024 302/300 pair of one connection on Windows Server); System values from those records:
# 302 Task 3 Opcode 30, 303 Task 3 Opcode 44, 300 Task 5 Opcode 30, 200 Task 2 Opcode 30, Level 4, Version 0,
# Security UserID S-1-5-20 (NETWORK SERVICE). ErrorCode renders as a number (0 on a 302); the width of the number
# fields (UInt32 here, UInt64 for byte counts) is not documented.
GATEWAY_CHANNEL = "Microsoft-Windows-TerminalServices-Gateway/Operational"
GATEWAY = Provider("Microsoft-Windows-TerminalServices-Gateway", "{4D5AE6A1-C7C8-4E6D-B840-4D8080B42E1B}")
GATEWAY_USER_SID = "S-1-5-20"
_GATEWAY_KEYWORDS = 0x4000000001000000
_GATEWAY_AUDIT_KEYWORDS = 0x4020000001000000
U64 = VT.UINT64


def _gateway(event_id: int, task: int, opcode: int, keywords: int, fields: tuple[tuple[str, VT], ...]) -> EventType:
    return EventType(GATEWAY, GATEWAY_CHANNEL, event_id, fields, level=4, task=task, opcode=opcode, keywords=keywords,
                     payload="UserData", userdata_name="EventInfo", userdata_ns="aag")


#: "met connection authorization policy requirements" (RD CAP): authorised to use the gateway, not yet connected.
GW200 = _gateway(200, 2, 30, _GATEWAY_AUDIT_KEYWORDS, (("Username", S), ("IpAddress", S), ("AuthType", S),
                                                      ("ConnectionProtocol", S), ("ErrorCode", U32)))
#: "met resource authorization policy requirements" (RD RAP): authorised to connect to Resource, not yet connected.
GW300 = _gateway(300, 5, 30, _GATEWAY_AUDIT_KEYWORDS, (("Username", S), ("IpAddress", S), ("AuthType", S),
                                                      ("Resource", S), ("ConnectionProtocol", S), ("ErrorCode", U32)))
#: "The user ... connected to resource ...".
GW302 = _gateway(302, 3, 30, _GATEWAY_KEYWORDS, (("Username", S), ("IpAddress", S), ("AuthType", S), ("Resource", S),
                                                 ("ConnectionProtocol", S), ("ErrorCode", U32)))
#: "The user ... disconnected from the following network resource ..." (BytesTransfered: sic).
GW303 = _gateway(303, 3, 44, _GATEWAY_KEYWORDS, (("Username", S), ("IpAddress", S), ("AuthType", S), ("Resource", S),
                                                 ("BytesReceived", U64), ("BytesTransfered", U64),
                                                 ("SessionDuration", U32), ("ConnectionProtocol", S),
                                                 ("ErrorCode", U32)))
