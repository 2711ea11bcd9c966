"""Every RDP evidence rule, on hand-written XML events (the rules live in evtrack.events.classify)."""

from __future__ import annotations

import pytest

from evtrack.events import is_ip, is_remote_ip, normalise
from evtrack.sources.xmlfile import event_from_xml

from .conftest import RCM_CHANNEL, logon_4624, lsm, xml_event


def row(xml: str) -> dict[str, object]:
    result = normalise(event_from_xml(xml), "test.xml")
    assert result is not None
    return result


@pytest.mark.parametrize(("logon_type", "rdp", "reason"), [
    (10, True, "4624_lt10"), (12, True, "4624_lt12"), (2, False, "4624_lt2"), (3, False, "4624_lt3"),
    (5, False, "4624_lt5"), (11, False, "4624_lt11"),
])
def test_4624_logon_types(logon_type: int, rdp: bool, reason: str) -> None:
    r = row(logon_4624(logon_type))
    assert (r["rdp"], r["reason"], r["kind"]) == (rdp, reason, "logon")
    assert (r["user"], r["domain"], r["logon_type"]) == ("alice", "CONTOSO", logon_type)
    assert r["sid"] == "S-1-5-21-1-2-3-1105"
    assert r["logon_id"] == "0x1a2b3c"


@pytest.mark.parametrize("ip", ["127.0.0.1", "::1", "0.0.0.0", "-", ""])
def test_4624_type_7_unlock_on_console_is_not_rdp(ip: str) -> None:
    r = row(logon_4624(7, ip=ip))
    assert (r["rdp"], r["reason"], r["kind"]) == (False, "4624_lt7_local", "reconnect")


@pytest.mark.parametrize("ip", ["10.1.2.3", "fe80::1%12", "::ffff:192.168.1.4", "2001:db8::5"])
def test_4624_type_7_with_remote_ip_is_an_rdp_reconnect(ip: str) -> None:
    r = row(logon_4624(7, ip=ip))
    assert (r["rdp"], r["reason"], r["kind"]) == (True, "4624_lt7_remote_ip", "reconnect")


def test_4624_type_10_over_loopback_tunnel_is_rdp() -> None:
    assert row(logon_4624(10, ip="127.0.0.1"))["rdp"] is True


@pytest.mark.parametrize("event_id", [21, 24, 25])
@pytest.mark.parametrize("address", ["10.0.0.5", "0.0.0.0", "127.0.0.1", "::1", "fe80::c0a8:1%10", "::ffff:10.0.0.9"])
def test_lsm_with_an_ip_is_rdp(event_id: int, address: str) -> None:
    r = row(lsm(event_id, address=address))
    assert (r["rdp"], r["reason"]) == (True, f"lsm{event_id}_ip")
    assert (r["user"], r["domain"], r["session_id"], r["address"]) == ("alice", "CONTOSO", 3, address)


@pytest.mark.parametrize("event_id", [21, 25])
@pytest.mark.parametrize("address", ["LOCAL", "YEREL", "ローカル", "LOKAL", "", "local"])
def test_lsm_console_in_any_language_is_not_rdp(event_id: int, address: str) -> None:
    r = row(lsm(event_id, address=address))
    assert (r["rdp"], r["reason"]) == (False, f"lsm{event_id}_console")


def test_lsm_kinds() -> None:
    assert row(lsm(21))["kind"] == "logon"
    assert row(lsm(25))["kind"] == "reconnect"
    assert row(lsm(24))["kind"] == "disconnect"
    logoff = row(lsm(23, address=None))
    assert (logoff["kind"], logoff["rdp"], logoff["reason"]) == ("logoff", False, "logoff_no_marker")


def test_lsm_user_without_domain() -> None:
    r = row(lsm(21, user="bob"))
    assert (r["user"], r["domain"]) == ("bob", None)


def _session_event(event_id: int, session_name: str, address: str) -> str:
    return xml_event(event_id, data={
        "AccountName": "alice", "AccountDomain": "CONTOSO", "LogonID": "0x513DA", "SessionName": session_name,
        "ClientName": "LAPTOP-7", "ClientAddress": address,
    })


@pytest.mark.parametrize(("event_id", "kind"), [(4778, "reconnect"), (4779, "disconnect")])
def test_4778_4779_rdp_session_name_or_ip(event_id: int, kind: str) -> None:
    by_name = row(_session_event(event_id, "RDP-Tcp#3", "LOCAL"))
    assert (by_name["rdp"], by_name["reason"], by_name["kind"]) == (True, f"{event_id}_rdp_session", kind)
    assert (by_name["client_name"], by_name["session_name"]) == ("LAPTOP-7", "RDP-Tcp#3")
    assert by_name["logon_id"] == "0x513da"
    by_ip = row(_session_event(event_id, "{5A7E...}#2", "192.168.38.1"))
    assert (by_ip["rdp"], by_ip["reason"]) == (True, f"{event_id}_ip")
    console = row(_session_event(event_id, "Console", "LOCAL"))
    assert (console["rdp"], console["reason"]) == (False, f"{event_id}_console")


def test_4634_of_a_type_10_logon_is_rdp_other_logoffs_are_not() -> None:
    def logoff(logon_type: int) -> str:
        fields = {"TargetUserSid": "S-1-5-21-1-2-3-1105", "TargetUserName": "alice", "TargetDomainName": "CONTOSO",
                  "TargetLogonId": "0x1", "LogonType": str(logon_type)}
        return xml_event(4634, data=fields)

    assert (row(logoff(10))["rdp"], row(logoff(10))["reason"]) == (True, "4634_lt10")
    assert row(logoff(3))["rdp"] is False
    user_logoff = row(xml_event(4647, data={"TargetUserSid": "S-1", "TargetUserName": "alice",
                                            "TargetDomainName": "CONTOSO", "TargetLogonId": "0x1"}))
    assert (user_logoff["kind"], user_logoff["rdp"]) == ("logoff", False)


def test_1149_is_authentication_only() -> None:
    r = row(xml_event(1149, channel=RCM_CHANNEL, provider="Microsoft-Windows-TerminalServices-RemoteConnectionManager",
                      user_data={"Param1": "alice", "Param2": "", "Param3": "10.0.0.5"}))
    assert (r["kind"], r["rdp"], r["reason"]) == ("auth", False, "1149_auth_only")
    assert (r["user"], r["domain"], r["address"]) == ("alice", None, "10.0.0.5")


def test_log_cleared_1102_and_104() -> None:
    security = row(xml_event(1102, provider="Microsoft-Windows-Eventlog", user_data_element="LogFileCleared",
                             user_data={"SubjectUserSid": "S-1-5-21-1", "SubjectUserName": "admin",
                                        "SubjectDomainName": "CONTOSO", "SubjectLogonId": "0x1"}))
    assert (security["kind"], security["rdp"], security["user"], security["detail"]) == (
        "log_cleared", False, "admin", "Security")
    system = row(xml_event(104, channel="System", provider="Microsoft-Windows-Eventlog",
                           user_data_element="LogFileCleared",
                           user_data={"SubjectUserName": "admin", "SubjectDomainName": "CONTOSO",
                                      "Channel": LSM_CHANNEL_NAME, "BackupPath": ""}))
    assert (system["kind"], system["detail"]) == ("log_cleared", LSM_CHANNEL_NAME)


LSM_CHANNEL_NAME = "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational"


def test_events_outside_their_channel_are_not_rows() -> None:
    assert normalise(event_from_xml(xml_event(21, channel="Application")), "x") is None
    assert normalise(event_from_xml(xml_event(4688)), "x") is None


def test_time_is_truncated_to_the_microsecond_and_utc() -> None:
    r = row(logon_4624(10, time="2024-03-31T23:30:00.9999999Z"))
    assert r["time"] == 1711927800999999


@pytest.mark.parametrize(("text", "ip", "remote"), [
    ("10.0.0.1", True, True), ("0.0.0.0", True, False), ("127.0.0.1", True, False), ("::1", True, False),
    ("::ffff:127.0.0.1", True, False), ("::ffff:10.0.0.1", True, True), ("fe80::1%3", True, True),
    ("LOCAL", False, False), ("-", False, False), (None, False, False), ("[2001:db8::1]", True, True),
])
def test_address_tests(text: str | None, ip: bool, remote: bool) -> None:
    assert (is_ip(text), is_remote_ip(text)) == (ip, remote)
