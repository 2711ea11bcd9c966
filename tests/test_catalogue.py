"""The event catalogue says what each event means, once: every other set derives from it, and a new evidence
event is one catalogue entry."""

from __future__ import annotations

import dataclasses
import importlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from evtrack import catalogue, concurrency, coverage, events
from evtrack.catalogue import SECURITY, EventDef, Evidence, Fields, Kind, Transition
from evtrack.reading import ENGINES, get_reader, read_file, read_inputs
from evtrack.sources.base import FileStats, InputKind, RawEvent, ReadPlan
from evtrack.usage import ReportSettings, ReportSource, build_report

from . import exports
from .exports import Rec
from .factories import span, utc


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
    assert {i for _, i in rows} == catalogue.WANTED_EVENT_IDS
    assert {d.event_id for d in catalogue.CATALOGUE if d.transition} == catalogue.SESSION_EVENT_IDS
    assert {k for d in catalogue.CATALOGUE for k in d.fields.payload_keys()} == catalogue.PAYLOAD_KEYS
    assert {(SECURITY, 4624), (SECURITY, 4634)} == catalogue.ACCOUNT_ONLY_EVENT_IDS
    # every row's kind and rule go through the catalogue: classify and observation_only agree with it
    for definition in catalogue.CATALOGUE:
        assert events.classify(definition.channel, definition.event_id, 10, "10.0.0.1", "RDP-Tcp#1") == \
            definition.evidence(10, "10.0.0.1", "RDP-Tcp#1")
        assert events.observation_only(definition.channel, definition.event_id, 3) == \
            (definition.slim is catalogue.Slim.ACCOUNT)


def _raw(event_id: int, moment: datetime, data: dict[str, str], record_id: int) -> RawEvent:
    return RawEvent(int(moment.timestamp() * 1_000_000), event_id, record_id, "Security", "RDSH01.contoso.local",
                    "p", data)


def test_a_new_evidence_event_is_one_catalogue_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A made-up event 9999 ("remote session started", with its own field names) becomes evidence, a session start
    and a connected session by adding one EventDef -- nothing else is touched."""
    made_up = EventDef(
        SECURITY, 9999, "A made-up remote session start", Kind.LOGON,
        Fields(user="Who", domain="Where", sid="WhoSid", address="From", logon_id="Session"),
        lambda _lt, address, _s: Evidence(catalogue.is_remote_ip(address), "9999_remote"),
        lambda _lt, address, _rdp: Transition.CONNECT if catalogue.is_remote_ip(address) else None,
    )
    monkeypatch.setitem(catalogue.BY_KEY, (SECURITY, 9999), made_up)
    data = {"Who": "zoe", "Where": "CONTOSO", "WhoSid": "S-1-5-21-1-2-3-4242", "From": "10.9.9.9", "Session": "0x42"}
    row = events.normalise(_raw(9999, utc(2024, 1, 10, 9), data, 77), "test")
    assert row is not None and row["rdp"] and row["reason"] == "9999_remote" and row["kind"] == "logon"
    assert row["user"] == "zoe" and row["sid"] == "S-1-5-21-1-2-3-4242" and row["logon_id"] == "0x42"
    assert concurrency._transition(row) is Transition.CONNECT
    table = pa.Table.from_pylist([row], schema=events.logon_schema())
    report = build_report(ReportSource(table, [span(utc(2024, 1, 1), utc(2024, 2, 1))], (), "test", 1, 0),
                          ReportSettings(created_at=datetime(2024, 6, 1, tzinfo=timezone.utc)))
    assert report.windows[0].user_keys == ("S-1-5-21-1-2-3-4242",) and report.users[0].evidence == ("9999_remote",)
    assert report.windows[0].sessions == 1
