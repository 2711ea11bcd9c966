"""RD Gateway 302/303 as evidence (issue 14, source 5), from minimal hand-written gateway logs written by
evtrack.synth as .evtx (read by both engines) and as `wevtutil qe /f:xml` XML. Each docstring works the answer out.

The gateway log of RDGW01 always holds a "monitor" account's 200 (authorised to use the gateway) every 6 hours from
1 January to 1 February 2024: records that prove the gateway was logging (coverage), never evidence."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from evtrack import events
from evtrack.catalogue import GATEWAY, read_plan
from evtrack.hosts import HostNames
from evtrack.identity import host_key
from evtrack.pipeline import run_report
from evtrack.report import Report
from evtrack.sources import pyevtx_rs, python_evtx, xmlfile
from evtrack.sources.base import FileStats, RawEvent
from evtrack.usage import ReportSettings

from .conftest import LSM_CHANNEL
from .exports import Rec, export
from .factories import utc

GW = "RDGW01.contoso.local"
SID = "S-1-5-21-1-2-3-1105"
#: (shape, engine): the XML reader, and .evtx through each engine.
CASES = [("xml", "evtx"), ("evtx", "evtx"), ("evtx", "python-evtx")]
IDS = ["xml", "evtx-pyevtx-rs", "evtx-python-evtx"]


def numbered(records: Sequence[Rec]) -> list[Rec]:
    """One log's records in time order, numbered 1, 2, ... as the log numbers them."""
    ordered = sorted(records, key=lambda r: r.time)
    return [dataclasses.replace(r, record_id=i) for i, r in enumerate(ordered, 1)]


def every_6h(what: str, host: str, **kw: object) -> list[Rec]:
    """A record every 6 hours from 1 January to 1 February 2024 inclusive (125 records)."""
    return [Rec(what, utc(2024, 1, 1) + timedelta(hours=6 * i), 0, host=host, **kw)  # type: ignore[arg-type]
            for i in range(125)]


def gateway_log(tmp_path: Path, shape: str, *records: Rec) -> Path:
    return export(tmp_path / "gateway", numbered([*every_6h("gw200", GW, user="monitor"), *records]), shape)


def report(paths: list[Path], engine: str) -> Report:
    built, _ = run_report(paths, ReportSettings(created_at=utc(2024, 6, 1)), engine=engine)
    return built


def january(built: Report) -> tuple[str, int | None, tuple[str, ...], int | None]:
    window = next(w for w in built.windows if w.label == "2024-01")
    return window.status, window.users, window.user_keys, window.sessions


def hosts(built: Report) -> dict[str, int]:
    return {h.host: h.users for h in built.host_users}


def gw(what: str, moment: datetime, **kw: object) -> Rec:
    return Rec(what, moment, 0, host=GW, **kw)  # type: ignore[arg-type]


# -- reading ------------------------------------------------------------------------------------------------------


def _read(path: Path, engine: str) -> list[RawEvent]:
    reader = {"xml": xmlfile.READER, "evtx": pyevtx_rs.READER, "python-evtx": python_evtx.READER}[engine]
    stats = FileStats(path)
    found = list(reader.read(path, stats, plan=read_plan()))
    assert not stats.issues and stats.records == len(found)
    return found


KEYS = read_plan().payload_keys


def test_every_reader_decodes_the_eventinfo_payload_alike(tmp_path: Path) -> None:
    """The 302/303 payload sits in UserData/EventInfo (xmlns "aag"), not EventData: pyevtx-rs, python-evtx and the
    XML reader give the same Username, IpAddress, Resource and ErrorCode text, hence the same rows; the 200/300
    records (not catalogue events) give no row."""
    records = numbered([gw("gw200", utc(2024, 1, 10, 9)), gw("gw300", utc(2024, 1, 10, 9, 0, 1)),
                        gw("gw302", utc(2024, 1, 10, 9, 0, 2), account="contoso.local\\alice"),
                        gw("gw303", utc(2024, 1, 10, 10, 2, 57), account="contoso.local\\alice")])
    evtx, xml = export(tmp_path / "gw", records, "evtx"), export(tmp_path / "gw", records, "xml")
    read = {"evtx": _read(evtx, "evtx"), "python-evtx": _read(evtx, "python-evtx"), "xml": _read(xml, "xml")}
    payloads = {engine: [(e.event_id, e.record_id, e.computer, e.channel, e.time_us,
                          {k: v for k, v in e.data.items() if k in KEYS}) for e in found if e.event_id >= 302]
                for engine, found in read.items()}
    assert payloads["evtx"] == payloads["python-evtx"] == payloads["xml"]
    assert payloads["xml"][0][5] == {"Username": "contoso.local\\alice", "IpAddress": "10.0.0.5",
                                     "Resource": "RDSH01.contoso.local", "ErrorCode": "0"}
    assert payloads["xml"][1][5]["ErrorCode"] == "1226"
    rows = {engine: [events.normalise(e, "f") for e in found] for engine, found in read.items()}
    assert rows["evtx"] == rows["python-evtx"] == rows["xml"]
    assert [r is None for r in rows["xml"]] == [True, True, False, False]
    logon, disconnect = rows["xml"][2], rows["xml"][3]
    assert logon is not None and disconnect is not None
    assert (logon["host"], logon["user"], logon["domain"], logon["address"]) == \
        ("RDSH01.contoso.local", "alice", "contoso.local", "10.0.0.5")
    assert (logon["kind"], logon["rdp"], logon["reason"]) == ("logon", True, "gateway302")
    assert (disconnect["kind"], disconnect["rdp"], disconnect["reason"]) == ("disconnect", True, "gateway303")


def test_the_rule_reads_the_error_code_of_a_302_only() -> None:
    """A 302 whose ErrorCode is not 0 records no connection; a 303's ErrorCode is why the tunnel closed (1226 in
    every public sample), never a reason to drop it; an absent ErrorCode is no failure."""
    assert events.classify(GATEWAY, 302, None, "10.0.0.5", None, "0").rdp
    assert events.classify(GATEWAY, 302, None, "10.0.0.5", None, None).rdp
    assert events.classify(GATEWAY, 302, None, "10.0.0.5", None, "0x0").rdp
    assert events.classify(GATEWAY, 302, None, "10.0.0.5", None, "1326") == events.Evidence(False, "gateway302_failed")
    assert events.classify(GATEWAY, 303, None, "10.0.0.5", None, "1226") == events.Evidence(True, "gateway303")
    assert not events.classify(GATEWAY, 300, None, "10.0.0.5", None, "0").rdp
    assert not events.classify(GATEWAY, 200, None, "10.0.0.5", None, "0").rdp


def test_an_ip_address_is_a_host_name_of_its_own() -> None:
    """A gateway's Resource may be the address the user typed: it is not cut at its first dot."""
    names = HostNames(["RDSH01.contoso.local", "10.0.0.21", "10.0.0.22", "rdsh01", "fe80::1"])
    assert [names.key(n) for n in ("10.0.0.21", "10.0.0.22", "RDSH01", "fe80::1")] == \
        ["10.0.0.21", "10.0.0.22", "rdsh01", "fe80::1"]
    assert not names.ambiguous
    assert host_key("10.0.0.21") == "10.0.0.21" and host_key("RDSH01.contoso.local") == "rdsh01"


# -- reports ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "engine"), CASES, ids=IDS)
def test_a_302_counts_the_user_on_the_resource_host(tmp_path: Path, shape: str, engine: str) -> None:
    """alice connects through RDGW01 to RDSH01 on 10 January (300 then 302, one ActivityID). January: one user,
    contoso\\alice (no SID: the gateway writes none), one session start (the 302), on host rdsh01 -- not on the
    gateway, which contributes nobody. The gateway's log covers 1 January to 1 February, and stands for rdsh01 (no
    log of its own): January is complete, but its count rests on the gateway (a connection that bypasses it is
    never seen): a lower bound."""
    path = gateway_log(tmp_path, shape, gw("gw300", utc(2024, 1, 10, 9)), gw("gw302", utc(2024, 1, 10, 9, 0, 1)))
    built = report([path], engine)
    assert january(built) == ("complete", 1, ("contoso\\alice",), 1)
    assert next(w for w in built.windows if w.label == "2024-01").rests_on == ("RD Gateway",) and built.lower_bound
    assert hosts(built) == {"rdsh01": 1}
    (user,) = built.users
    assert (user.display_name, user.hosts, user.evidence, user.sessions) == \
        ("CONTOSO\\alice", ("rdsh01",), ("gateway302",), 1)
    assert [(c.host, c.channel, c.records) for c in built.coverage] == \
        [(GW, "Microsoft-Windows-TerminalServices-Gateway/Operational", 127)]


@pytest.mark.parametrize(("shape", "engine"), CASES, ids=IDS)
def test_a_303_whose_302_was_lost_still_shows_use(tmp_path: Path, shape: str, engine: str) -> None:
    """Only bob's 303 (disconnected from RDSH02 after 3775 s, ErrorCode 1226) is in the log: he used RDS in
    January. A disconnect starts no session: sessions 0."""
    path = gateway_log(tmp_path, shape, gw("gw303", utc(2024, 1, 12, 18), user="bob", resource="RDSH02.contoso.local"))
    built = report([path], engine)
    assert january(built) == ("complete", 1, ("contoso\\bob",), 0)
    assert built.users[0].evidence == ("gateway303",) and built.users[0].hosts == ("rdsh02",)


@pytest.mark.parametrize(("shape", "engine"), CASES, ids=IDS)
def test_authorisations_without_a_connection_do_not_count(tmp_path: Path, shape: str, engine: str) -> None:
    """carol is authorised (200: RD CAP, 300: RD RAP for RDSH01) but no 302 follows (the session host refused
    her, or she gave up); dave's 302 carries ErrorCode 1326: neither connected. January: complete, 0 users (the
    monitor account's 200s are no evidence either)."""
    path = gateway_log(tmp_path, shape, gw("gw200", utc(2024, 1, 10, 9), user="carol"),
                       gw("gw300", utc(2024, 1, 10, 9, 0, 1), user="carol"),
                       gw("gw302", utc(2024, 1, 11, 9), user="dave", error_code=1326))
    built = report([path], engine)
    assert january(built) == ("complete", 0, (), 0)
    assert built.users == ()


@pytest.mark.parametrize("account", ["CONTOSO\\alice", "contoso.local\\alice", "alice@contoso.local"])
@pytest.mark.parametrize(("shape", "engine"), CASES, ids=IDS)
def test_every_username_form_is_the_person_of_the_4624(tmp_path: Path, shape: str, engine: str, account: str) -> None:
    """RDSH01's Security log has alice's 4624 type 10 (with her SID) on 10 January; on 20 January the gateway
    connects ``account`` to RDSH01. NetBIOS, FQDN (its first label is the NetBIOS domain seen) and UPN forms are
    all the one CONTOSO\\alice, so they join her SID: January has one user, with two session starts (10th, 20th)."""
    security = export(tmp_path / "security", numbered([*every_6h("noise", "RDSH01.contoso.local"),
                                                        Rec("4624", utc(2024, 1, 10, 9), 0)]), shape)
    path = gateway_log(tmp_path, shape, gw("gw302", utc(2024, 1, 20, 9), account=account))
    built = report([security, path], engine)
    assert january(built) == ("complete", 1, (SID,), 2)
    (user,) = built.users
    assert user.evidence == ("4624_lt10", "gateway302") and user.hosts == ("rdsh01",)


@pytest.mark.parametrize(("shape", "engine"), CASES, ids=IDS)
def test_one_session_seen_by_4624_lsm_21_and_gateway_302_is_one(tmp_path: Path, shape: str, engine: str) -> None:
    """On 10 January the gateway logs alice's 302 to "rdsh01" (the short name she typed) at 09:00:00, RDSH01 logs
    the 4624 type 10 at 09:00:02 and the LSM 21 at 09:00:05: three logs of one host (rdsh01 is RDSH01.contoso.local)
    within 120 s of the first sighting, each its first sighting there: one session start. On 15 January only the
    4624 and LSM 21 (a direct connection): a second session. Sessions: 2, not 3 or 5."""
    security = export(tmp_path / "security", numbered([
        *every_6h("noise", "RDSH01.contoso.local"), Rec("4624", utc(2024, 1, 10, 9, 0, 2), 0),
        Rec("4624", utc(2024, 1, 15, 14), 0)]), shape)
    lsm = export(tmp_path / "lsm", numbered([
        *every_6h("noise", "RDSH01.contoso.local", channel=LSM_CHANNEL), Rec("lsm21", utc(2024, 1, 10, 9, 0, 5), 0),
        Rec("lsm21", utc(2024, 1, 15, 14, 0, 3), 0)]), shape)
    path = gateway_log(tmp_path, shape, gw("gw302", utc(2024, 1, 10, 9), resource="rdsh01"))
    built = report([security, lsm, path], engine)
    assert january(built) == ("complete", 1, (SID,), 2)
    assert built.users[0].sessions == 2 and built.users[0].hosts == ("rdsh01",)
    assert hosts(built) == {"rdsh01": 1}


@pytest.mark.parametrize(("shape", "engine"), CASES, ids=IDS)
def test_a_resource_given_as_an_address_is_that_host(tmp_path: Path, shape: str, engine: str) -> None:
    """alice connected to 10.0.0.21 (she typed the address): the user counts on host "10.0.0.21" -- not "10", and
    not any named host (evtrack resolves no names)."""
    path = gateway_log(tmp_path, shape, gw("gw302", utc(2024, 1, 10, 9), resource="10.0.0.21"))
    built = report([path], engine)
    assert january(built)[:3] == ("complete", 1, ("contoso\\alice",))
    assert hosts(built) == {"10.0.0.21": 1}


def test_a_302_without_a_resource_stays_on_the_gateway() -> None:
    """No public 302 lacks a Resource; a damaged one is kept on the host that wrote it (its Computer), never
    dropped and never given an empty host."""
    raw = RawEvent(1_704_877_200_000_000, 302, 7, "Microsoft-Windows-TerminalServices-Gateway/Operational", GW,
                   "Microsoft-Windows-TerminalServices-Gateway", {"Username": "CONTOSO\\alice", "Resource": " "})
    row = events.normalise(raw, "f")
    assert row is not None and row["host"] == GW and row["rdp"] and (row["user"], row["domain"]) == ("alice", "CONTOSO")
