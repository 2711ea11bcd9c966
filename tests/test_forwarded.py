"""Windows Event Forwarding (issue 14, source 7): a collector's ForwardedEvents log holds several hosts' records,
each keeping its origin's Computer, Channel and EventRecordID. Minimal hand-written logs, written by evtrack.synth
as a collector's .evtx (read by both engines) and as `wevtutil qe ForwardedEvents /f:xml` with RenderingInfo.

The fleet, 1 January to 1 February 2024, a noise record every 6 hours in each log (coverage, never evidence):
- RDSH01 Security: alice's 4624 type 10 on 15 January 09:00:00, bob's on 25 January 10:00:00;
- RDSH01 LocalSessionManager: alice's LSM 21 at 09:00:04, bob's at 10:00:03;
- RDSH02 Security: carol's 4624 type 10 on 20 January 14:00:00.
Answer: January has 3 users and 3 sessions (each 4624 and its LSM 21 are one start), alice and bob on rdsh01
with 2 evidence records each, carol on rdsh02 with 1; coverage has one span per origin host and log: RDSH01
Security 127 records (125 noise + 2 logons), RDSH01 LSM 127, RDSH02 Security 126."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from evtrack.catalogue import read_plan
from evtrack.pipeline import run_report
from evtrack.report import Report
from evtrack.sources import pyevtx_rs, python_evtx, xmlfile
from evtrack.sources.base import FileStats
from evtrack.synth import EventSpec, Rendering
from evtrack.synth.shapes import GATEWAY_CHANNEL
from evtrack.usage import ReportSettings

from .conftest import LSM_CHANNEL
from .exports import Rec, export, forwarded
from .factories import utc

RDSH01, RDSH02 = "RDSH01.contoso.local", "RDSH02.contoso.local"
ALICE, BOB, CAROL = "S-1-5-21-1-2-3-1105", "S-1-5-21-1-2-3-1106", "S-1-5-21-1-2-3-1107"
COVERAGE = {(RDSH01, "Security"): 127, (RDSH01, LSM_CHANNEL): 127, (RDSH02, "Security"): 126}


def numbered(records: Sequence[Rec]) -> list[Rec]:
    """One log's records in time order, numbered 1, 2, ... as the log numbers them."""
    ordered = sorted(records, key=lambda r: r.time)
    return [dataclasses.replace(r, record_id=i) for i, r in enumerate(ordered, 1)]


def every_6h(host: str, **kw: object) -> list[Rec]:
    return [Rec("noise", utc(2024, 1, 1) + timedelta(hours=6 * i), 0, host=host, **kw)  # type: ignore[arg-type]
            for i in range(125)]


def fleet() -> tuple[list[Rec], list[Rec], list[Rec]]:
    """(RDSH01 Security, RDSH01 LSM, RDSH02 Security), each numbered as its host numbers it."""
    sec1 = numbered([*every_6h(RDSH01), Rec("4624", utc(2024, 1, 15, 9), 0, host=RDSH01),
                     Rec("4624", utc(2024, 1, 25, 10), 0, host=RDSH01, user="bob", sid=BOB)])
    lsm1 = numbered([*every_6h(RDSH01, channel=LSM_CHANNEL), Rec("lsm21", utc(2024, 1, 15, 9, 0, 4), 0, host=RDSH01),
                     Rec("lsm21", utc(2024, 1, 25, 10, 0, 3), 0, host=RDSH01, user="bob")])
    sec2 = numbered([*every_6h(RDSH02), Rec("4624", utc(2024, 1, 20, 14), 0, host=RDSH02, user="carol", sid=CAROL)])
    return sec1, lsm1, sec2


def german(record: EventSpec) -> Rendering:
    """A forwarder in German, whose message names someone else: the reader must not look at any of it."""
    return Rendering("Ein Konto wurde erfolgreich angemeldet.\r\n\r\nKontoname:\t\tmallory\r\nQuellnetzwerkadresse:\t"
                     "10.6.6.6", level="Informationen", task="Anmelden", opcode="Info", channel="Sicherheit",
                     provider="Microsoft Windows-Sicherheitsüberwachung", keywords=("Überwachung erfolgreich",),
                     culture="de-DE")


def report(paths: list[Path], engine: str) -> Report:
    built, _ = run_report(paths, ReportSettings(created_at=utc(2024, 6, 1)), engine=engine)
    return built


def answer(built: Report) -> dict[str, object]:
    """What must not change: January's users and sessions, users per host, each person's sessions and evidence
    records, and the coverage (records per origin host and log)."""
    (window,) = [w for w in built.windows if w.label == "2024-01"]
    return {"january": (window.status, window.users, window.user_keys, window.sessions),
            "hosts": {h.host: h.users for h in built.host_users},
            "people": {u.key: (u.sessions, u.events) for u in built.users},
            "coverage": {(c.host, c.channel): c.records for c in built.coverage}}


EXPECTED = {"january": ("complete", 3, (ALICE, BOB, CAROL), 3), "hosts": {"rdsh01": 2, "rdsh02": 1},
            "people": {ALICE: (1, 2), BOB: (1, 2), CAROL: (1, 1)}, "coverage": COVERAGE}
#: (ForwardedEvents shape, per-host export shape, engine)
CASES = [("xml", "xml", "evtx"), ("evtx", "evtx", "evtx"), ("evtx", "evtx", "python-evtx"),
         ("xml", "evtx", "python-evtx"), ("evtx", "xml", "evtx")]


def test_the_collector_log_interleaves_hosts_and_keeps_their_ids(tmp_path: Path) -> None:
    """The .evtx holds the three logs' 380 records in arrival order (hosts alternate batch by batch), its record
    headers numbered 1..380 (the collector's own sequence); every reader gives each record its origin's Computer,
    Channel and EventRecordID, so each origin log reads back complete and in its own order."""
    logs = fleet()
    evtx, xml = forwarded(tmp_path / "fwd", logs, "evtx"), forwarded(tmp_path / "fwd", logs, "xml")
    expected = sorted((r.host, r.channel if r.channel != "Security" or not r.lsm else LSM_CHANNEL, r.record_id)
                      for log in logs for r in log)
    for path, reader in ((evtx, pyevtx_rs.READER), (evtx, python_evtx.READER), (xml, xmlfile.READER)):
        stats = FileStats(path)
        found = [(e.computer, e.channel, e.record_id) for e in reader.read(path, stats, plan=read_plan())]
        assert not stats.issues and stats.records == 380
        assert sorted(found) == expected
        assert found != sorted(found, key=lambda k: (k[0], k[1]))  # interleaved, not one log after another
        for host, channel in COVERAGE:
            ids = [i for h, c, i in found if (h, c) == (host, channel)]
            assert ids == sorted(ids)
        assert stats.per_channel == {"Security": 253, LSM_CHANNEL: 127}
    with open(evtx, "rb") as handle:  # the first record header: number 1, whatever the record's EventRecordID
        handle.seek(0x1000 + 0x200 + 8)
        assert int.from_bytes(handle.read(8), "little") == 1


def test_the_xml_reader_never_reads_renderinginfo(tmp_path: Path) -> None:
    """RenderingInfo follows the payload and repeats Channel, Level, Task and a message in the forwarder's language
    (here German, naming "mallory" from 10.6.6.6): the reader takes System and EventData only."""
    record = Rec("4624", utc(2024, 1, 15, 9), 41, host=RDSH01)
    path = forwarded(tmp_path / "fwd", [[record]], "xml", rendering=german)
    text = path.read_text(encoding="utf-8")
    assert "<RenderingInfo Culture='de-DE'><Message>Ein Konto" in text and text.index("</EventData>") < \
        text.index("<RenderingInfo")
    (event,) = xmlfile.READER.read(path, FileStats(path), plan=read_plan())
    assert (event.computer, event.channel, event.record_id, event.event_id) == (RDSH01, "Security", 41, 4624)
    assert event.data["TargetUserName"] == "alice" and event.data["IpAddress"] == "10.0.0.5"
    assert "mallory" not in repr(event) and "Sicherheit" not in repr(event) and "10.6.6.6" not in repr(event)
    plain = export(tmp_path / "plain", [record], "xml")
    assert event == next(iter(xmlfile.READER.read(plain, FileStats(path), plan=read_plan())))


@pytest.mark.parametrize("engine", ["evtx", "python-evtx"])
@pytest.mark.parametrize("shape", ["xml", "evtx"])
def test_a_forwarded_log_alone_is_attributed_to_its_origin_hosts(tmp_path: Path, shape: str, engine: str) -> None:
    """The ForwardedEvents log alone gives the module's answer: users on their own hosts, coverage per origin host
    and log (the collector itself appears nowhere)."""
    built = report([forwarded(tmp_path / "fwd", fleet(), shape)], engine)
    assert answer(built) == EXPECTED


@pytest.mark.parametrize(("fwd_shape", "host_shape", "engine"), CASES)
def test_a_record_in_forwarded_events_and_a_per_host_export_counts_once(tmp_path: Path, fwd_shape: str,
                                                                       host_shape: str, engine: str) -> None:
    """RDSH01's Security log was also exported on the host (``wevtutil epl Security``) up to 16 January 00:00 (62
    records: 61 noise and alice's 4624), the same records (same Computer, Channel, EventRecordID, time) as the
    forwarded ones. They count once: the answer is the module's (3 users, 3 sessions, alice's 2 evidence records,
    127 RDSH01 Security records), not 3 evidence records or 189 (127 + 62) Security records. A per-host export of
    all of RDSH01's LSM log changes nothing either. The order the files are given in does not matter."""
    sec1, lsm1, sec2 = fleet()
    fwd = forwarded(tmp_path / "fwd", (sec1, lsm1, sec2), fwd_shape)
    early = [r for r in sec1 if r.time <= utc(2024, 1, 16)]
    assert len(early) == 62 and any(r.what == "4624" for r in early)
    per_host = [export(tmp_path / "rdsh01-security", early, host_shape), export(tmp_path / "rdsh01-lsm", lsm1,
                                                                                  host_shape)]
    assert answer(report([fwd, *per_host], engine)) == EXPECTED
    assert answer(report([*per_host, fwd], engine)) == EXPECTED



@pytest.mark.parametrize(("fwd_shape", "host_shape", "engine"), CASES)
def test_a_forwarded_gateway_record_counts_once_on_its_resource(tmp_path: Path, fwd_shape: str, host_shape: str,
                                                                engine: str) -> None:
    """The RD Gateway's log (RDGW01: a 200 every 6 hours, alice's 302 to RDSH01 on 15 January 08:59:58) reaches the
    collector too, and is also exported on the gateway. alice's 302 counts once, on rdsh01 (its Resource), and joins
    her 4624 and LSM 21 of 09:00 in one session: the answer is the module's, with alice's 3 evidence records (not
    4) and the gateway's 126 records (not 252) in one span of its own."""
    gw_log = numbered([*[Rec("gw200", utc(2024, 1, 1) + timedelta(hours=6 * i), 0, host="RDGW01.contoso.local",
                             user="monitor") for i in range(125)],
                       Rec("gw302", utc(2024, 1, 15, 8, 59, 58), 0, host="RDGW01.contoso.local")])
    fwd = forwarded(tmp_path / "fwd", (*fleet(), gw_log), fwd_shape)
    built = report([fwd, export(tmp_path / "gateway", gw_log, host_shape)], engine)
    assert answer(built) == {**EXPECTED, "hosts": {"rdsh01": 2, "rdsh02": 1},
                             "people": {ALICE: (1, 3), BOB: (1, 2), CAROL: (1, 1)},
                             "coverage": {**COVERAGE, ("RDGW01.contoso.local", GATEWAY_CHANNEL): 126}}
