"""The event catalogue says what each event means, once: every other set derives from it, and a new evidence
event is one catalogue entry."""

from __future__ import annotations

import dataclasses
import importlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from evtrack import catalogue, concurrency, coverage, events
from evtrack.catalogue import SECURITY, EventDef, Evidence, Fields, Kind, Transition
from evtrack.coverage import CoverageBuilder
from evtrack.pipeline import source_from_read
from evtrack.reading import ENGINES, get_reader, read_file, read_inputs
from evtrack.sources.base import FileStats, InputKind, RawEvent, ReadPlan, one_by_one
from evtrack.synth import VT, EventSpec, EventType, EvtxWriter
from evtrack.synth.shapes import AUDIT_SUCCESS, SECURITY_AUDITING
from evtrack.usage import ReportSettings, build_report

from . import exports
from .conftest import write_events, xml_event
from .exports import Rec
from .factories import utc


def test_the_plan_readers_get_is_the_catalogues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Readers import nothing outside sources/: what they decode comes in the plan read_file hands them, and that
    plan is the catalogue's, every set of it derived from the entries."""
    plan = catalogue.read_plan()
    assert plan.wanted_ids == catalogue.WANTED_EVENT_IDS
    assert plan.payload_keys == catalogue.PAYLOAD_KEYS
    assert plan.account_only == catalogue.ACCOUNT_ONLY_EVENT_IDS
    assert plan.session_logon_types == catalogue.SESSION_LOGON_TYPES
    assert plan.kdc_ids == {i for c, i in catalogue.KDC_EVENTS if c == SECURITY} == coverage.KDC_EVENT_IDS
    assert (plan.local_zone, plan.culture) == (None, None)
    assert catalogue.read_plan("Europe/Berlin", "de-DE") == dataclasses.replace(plan, local_zone="Europe/Berlin",
                                                                                culture="de-DE")
    for channel in ("Security", "System", catalogue.LSM):
        for event_id in (4624, 4634, 4647, 21, 104):
            for logon_type in (None, 2, 3, 5, 7, 10, 12, 200, 300):
                assert plan.observation_only(channel, event_id, logon_type) == \
                    events.observation_only(channel, event_id, logon_type)
    assert coverage.COVERED_CHANNELS is catalogue.COVERED_CHANNELS
    # what every reader is handed: the catalogue's plan, unless the caller gives one
    given: list[ReadPlan] = []
    for engine in ENGINES:
        reader = get_reader(InputKind.EVTX, engine)

        def spy(path: Path, stats: FileStats, *, plan: ReadPlan, _read: Any = reader.read, **kw: Any) -> Any:
            given.append(plan)
            return _read(path, stats, plan=plan, **kw)

        monkeypatch.setattr(importlib.import_module(ENGINES[engine]), "READER", dataclasses.replace(reader, read=spy))
    log = exports.write(tmp_path / "security", [Rec("4624", utc(2024, 1, 10, 9), 1)], "evtx")
    mine = catalogue.read_plan("UTC")
    for engine in ENGINES:
        assert read_inputs([log], engine=engine).table.num_rows == 1
        read_file(log, engine, plan=mine)
    assert given == [plan, mine] * len(ENGINES)


def test_derived_sets_come_from_the_entries() -> None:
    rows = {(d.channel, d.event_id) for d in catalogue.CATALOGUE if d.kind is not None}
    assert set(catalogue.EVENT_KINDS) == rows
    in_logs = [d for d in catalogue.CATALOGUE if catalogue.CHANNEL_BY_KEY[d.channel].covers is catalogue.Covers.LOG]
    assert {d.event_id for d in in_logs if d.kind is not None} == catalogue.WANTED_EVENT_IDS
    assert {d.event_id for d in catalogue.CATALOGUE if d.transition} == catalogue.SESSION_EVENT_IDS
    assert {k for d in in_logs for k in d.fields.payload_keys()} == catalogue.PAYLOAD_KEYS
    # every entry's channel is in the channel table, which says how its coverage is proved
    assert {d.channel for d in catalogue.CATALOGUE} <= set(catalogue.CHANNEL_BY_KEY)
    assert {catalogue.BROKER, catalogue.QUERY_USER} == catalogue.POLLED_CHANNELS
    assert {catalogue.SECURITY, catalogue.LSM, catalogue.BROKER, catalogue.WVD} <= catalogue.EVIDENCE_CHANNELS
    assert {(SECURITY, 4624), (SECURITY, 4634)} == catalogue.ACCOUNT_ONLY_EVENT_IDS
    # every row's kind and rule go through the catalogue: classify and observation_only agree with it
    for definition in catalogue.CATALOGUE:
        assert events.classify(definition.channel, definition.event_id, 10, "10.0.0.1", "RDP-Tcp#1") == \
            definition.evidence(10, "10.0.0.1", "RDP-Tcp#1")
        assert events.observation_only(definition.channel, definition.event_id, 3) == \
            (definition.slim is catalogue.Slim.ACCOUNT)


#: A made-up event: "remote session started", with field names no other event uses, and one field evtrack does
#: not read (``Noise``): the fast readers decode only the plan's payload keys.
MADE_UP = EventType(SECURITY_AUDITING, "Security", 9999, (
    ("Who", VT.STRING), ("Where", VT.STRING), ("WhoSid", VT.SID), ("From", VT.STRING), ("Session", VT.HEXINT64),
    ("Noise", VT.STRING)), task=12544, keywords=AUDIT_SUCCESS)
MADE_UP_DATA = {"Who": "zoe", "Where": "CONTOSO", "WhoSid": "S-1-5-21-1-2-3-4242", "From": "10.9.9.9",
                "Session": "0x42"}
HOST = "RDSH01.contoso.local"


def _made_up_log(folder: Path, shape: str) -> Path:
    """One Security log, as .evtx (written by evtrack.synth) or as XML: a 4672 (coverage) on Jan 1 and Jan 31,
    and the made-up 9999 on Jan 10."""
    noise = [Rec("noise", utc(2024, 1, 1), 1), Rec("noise", utc(2024, 1, 31), 3)]
    moment = utc(2024, 1, 10, 9)
    if shape == "xml":
        made_up = xml_event(9999, time="2024-01-10T09:00:00.0000000Z", record_id=2,
                            data={**MADE_UP_DATA, "Noise": "not read"})
        return write_events(folder / "security.xml", exports.as_xml(noise[0]), made_up, exports.as_xml(noise[1]),
                            root=True)
    path = folder / "security.evtx"
    values = (MADE_UP_DATA["Who"], MADE_UP_DATA["Where"], MADE_UP_DATA["WhoSid"], MADE_UP_DATA["From"], 0x42,
              "not read")
    with EvtxWriter(path) as writer:
        writer.add(exports.as_spec(noise[0]))
        writer.add(EventSpec(MADE_UP, moment, 2, HOST, values))
        writer.add(exports.as_spec(noise[1]))
    return path


def _made_up_raws(path: Path, engine: str, plan: ReadPlan) -> list[RawEvent]:
    """The made-up records the reader of ``path`` (``engine`` for an .evtx) yields under ``plan``."""
    reader = get_reader(InputKind.XML if path.suffix == ".xml" else InputKind.EVTX, engine)
    extra: dict[str, Any] = {"coverage": CoverageBuilder()} if reader.fills_coverage else {}
    return [raw for raw in one_by_one(reader.read(path, FileStats(path), plan=plan, **extra)) if raw.event_id == 9999]


@pytest.mark.parametrize(("shape", "engine"), [("evtx", "evtx"), ("evtx", "python-evtx"), ("xml", "evtx")])
def test_a_new_evidence_event_is_one_catalogue_entry(shape: str, engine: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A made-up event 9999 ("remote session started", with its own field names) becomes evidence, a session start
    and a connected session by adding one EventDef -- nothing else is touched: its id and fields reach the readers
    in the catalogue's plan, through an .evtx (both engines) and an XML export."""
    path = _made_up_log(tmp_path, shape)
    without = catalogue.read_plan()
    assert all(raw.data == {} for raw in _made_up_raws(path, engine, without))  # nobody asks for its payload
    made_up = EventDef(
        SECURITY, 9999, "A made-up remote session start", Kind.LOGON,
        Fields(user="Who", domain="Where", sid="WhoSid", address="From", logon_id="Session"),
        lambda _lt, address, _s: Evidence(catalogue.is_remote_ip(address), "9999_remote"),
        lambda _lt, address, _rdp: Transition.CONNECT if catalogue.is_remote_ip(address) else None,
    )
    monkeypatch.setitem(catalogue.BY_KEY, (SECURITY, 9999), made_up)
    plan = catalogue.read_plan()
    assert plan.wanted_ids == without.wanted_ids | {9999}
    assert plan.payload_keys == without.payload_keys | {"Who", "Where", "WhoSid", "From", "Session"}
    # decoded, and only the fields evtrack reads
    assert [raw.data for raw in _made_up_raws(path, engine, plan)] == [MADE_UP_DATA]

    result = read_inputs([path], engine=engine, plan=plan, slim=True)
    assert result.files[0].engine == (engine if shape == "evtx" else "xml") and not result.file_errors
    (row,) = [r for r in result.table.to_pylist() if r["event_id"] == 9999]
    assert row["rdp"] and row["reason"] == "9999_remote" and row["kind"] == "logon"
    assert (row["user"], row["domain"], row["sid"], row["logon_id"], row["address"]) == (
        "zoe", "CONTOSO", "S-1-5-21-1-2-3-4242", "0x42", "10.9.9.9")
    assert concurrency._transition(row) is Transition.CONNECT
    report = build_report(source_from_read(result),
                          ReportSettings(created_at=datetime(2024, 6, 1, tzinfo=timezone.utc)))
    assert report.windows[0].user_keys == ("S-1-5-21-1-2-3-4242",) and report.users[0].evidence == ("9999_remote",)
    assert report.windows[0].sessions == 1
    # a read given no plan takes the catalogue's as it is now, with the new entry in it
    assert read_inputs([path], engine=engine, slim=True).table.equals(result.table)
