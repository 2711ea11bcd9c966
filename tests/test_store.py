"""The store: idempotent ingest, all-or-nothing per file, reports from the store equal reports from the files."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from evtrack.cli import app as cli_app
from evtrack.cli.options import Engine
from evtrack.errors import StoreError
from evtrack.events import encoded_schema, logon_schema
from evtrack.pipeline import FilesInput, run
from evtrack.reading import ENGINES, read_inputs
from evtrack.report import Report
from evtrack.scanning import file_sha256
from evtrack.store import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    STATUS_ALREADY,
    STATUS_FAILED,
    STATUS_INGESTED,
    Store,
)
from evtrack.usage import ReportSettings, build_report

from .conftest import logon_4624, lsm, write_events, xml_event

PINNED = datetime(2024, 6, 1, tzinfo=timezone.utc)
SETTINGS = ReportSettings(installed=2, created_at=PINNED)
HOST = "RDSH01.contoso.local"


def _security(record_id: int, day: int, month: int, hour: int = 9, **kw: Any) -> str:
    return logon_4624(10, record_id=record_id, time=f"2024-{month:02d}-{day:02d}T{hour:02d}:00:00.5Z", **kw)


def _noise(record_id: int, day: int, month: int, hour: int = 12) -> str:
    return xml_event(4688, record_id=record_id, time=f"2024-{month:02d}-{day:02d}T{hour:02d}:00:00Z")


def _lsm(record_id: int, day: int, month: int, **kw: Any) -> str:
    return lsm(21, record_id=record_id, time=f"2024-{month:02d}-{day:02d}T09:00:01Z", **kw)


@pytest.fixture
def exports(tmp_path: Path) -> dict[str, Path]:
    """January, February (overlapping January's end), a copy-free overlap file, and April (a hole in March)."""
    folder = tmp_path / "logs"
    folder.mkdir()
    jan = write_events(
        folder / "jan.xml",
        _security(10, 3, 1), _noise(11, 3, 1), _security(12, 10, 1, user="bob", sid="S-1-5-21-1-2-3-1106"),
        _noise(15, 20, 1),  # ids 13..14 missing: a record-id gap
        _security(16, 30, 1), _lsm(100, 3, 1), _lsm(101, 30, 1, user="CONTOSO\\carol"),
        xml_event(1102, record_id=17, time="2024-01-31T23:00:00Z",
                  data={"SubjectUserName": "admin", "SubjectDomainName": "CONTOSO"}),
    )
    feb = write_events(
        folder / "feb.xml",
        _security(16, 30, 1), xml_event(1102, record_id=17, time="2024-01-31T23:00:00Z"),  # overlaps jan.xml
        _security(18, 2, 2), _noise(19, 14, 2), _security(20, 28, 2, user="dave", sid="S-1-5-21-1-2-3-1107"),
        _lsm(102, 28, 2),
    )
    overlap = write_events(folder / "overlap.xml", _noise(15, 20, 1), _security(16, 30, 1), _security(18, 2, 2))
    apr = write_events(folder / "apr.xml", _security(40, 5, 4), _noise(41, 25, 4),
                       _security(42, 25, 4, computer="RDSH02.contoso.local", user="erin", sid="S-1-5-21-1-2-3-1108"))
    return {"jan": jan, "feb": feb, "overlap": overlap, "apr": apr}


def _from_files(paths: list[Path]) -> dict[str, Any]:
    data = run(FilesInput(paths, slim=False), SETTINGS).to_dict()
    assert all(item.pop("ingested_at") is None for item in data["inputs"])
    return data


def _from_store(store: Store) -> dict[str, Any]:
    """The report from the store, less when each file was ingested (which reading the files cannot know; an input
    that could not be read was not ingested)."""
    data = build_report(store.report_source(), SETTINGS).to_dict()
    assert all((item.pop("ingested_at") is None) == bool(item["error"]) for item in data["inputs"])
    return data


def _dump(path: Path) -> dict[str, list[str]]:
    """The store's contents that must not depend on how often or in which runs files were ingested."""
    db = sqlite3.connect(path)
    try:
        queries = {
            "files": "SELECT sha256, path, size, kind, engine, reader, first_us, last_us, records, events, skipped, "
                     "issues FROM files",
            "events": "SELECT e.time, e.host, e.channel, e.event_id, e.record_id, e.user, e.rdp, e.reason, f.path "
                      "FROM events e JOIN files f ON f.id = e.file_id",
            "spans": "SELECT f.sha256, s.host, s.channel, s.first_us, s.last_us, s.records, s.gaps, s.record_ids, "
                     "s.record_times FROM spans s JOIN files f ON f.id = s.file_id",
            "clears": "SELECT f.sha256, c.host, c.channel, c.time_us FROM clears c JOIN files f ON f.id = c.file_id",
            "reports": "SELECT id, data FROM reports",
        }
        return {name: sorted(repr(row) for row in db.execute(sql)) for name, sql in queries.items()}
    finally:
        db.close()


# -- ingest: idempotent, equal to reading the files ----------------------------------------------------------------


def test_report_from_store_equals_report_from_files(tmp_path: Path, exports: dict[str, Path]) -> None:
    files = [exports["jan"], exports["feb"], exports["apr"]]
    with Store.open(tmp_path / "s.sqlite3") as store:
        result = store.ingest(files)
        assert [o.status for o in result.files] == [STATUS_INGESTED] * 3
        assert _from_store(store) == _from_files(files)
        direct = read_inputs(files)
        assert store.events_table().schema == direct.table.schema == logon_schema()
        # a report reads both the store and files with the repeated strings dictionary-encoded
        assert store.report_source().table.schema == read_inputs(files, slim=True).table.schema == encoded_schema()
        assert store.coverage() == list(direct.coverage)


def test_ingest_twice_changes_nothing(tmp_path: Path, exports: dict[str, Path]) -> None:
    path = tmp_path / "s.sqlite3"
    with Store.open(path) as store:
        store.ingest([exports["jan"], exports["feb"]])
        once = _dump(path)
        report = _from_store(store)
        again = store.ingest([exports["jan"], exports["feb"]])
        assert [o.status for o in again.files] == [STATUS_ALREADY, STATUS_ALREADY]
        assert again.files[0].stored_as == str(exports["jan"])
        assert again.events_added == 0
        assert _dump(path) == once
        assert _from_store(store) == report == _from_files([exports["jan"], exports["feb"]])


def test_overlapping_exports_add_nothing_twice(tmp_path: Path, exports: dict[str, Path]) -> None:
    with Store.open(tmp_path / "s.sqlite3") as store:
        first = store.ingest([exports["jan"]])
        second = store.ingest([exports["overlap"], exports["feb"]])
        overlap, feb = second.files
        assert overlap.events == 2 and overlap.events_added == 1  # record 16 came with jan.xml
        assert feb.events_added == feb.events - 3  # 16, 1102 and 18 were already there
        assert second.events_present == 4
        table = store.events_table()
        keys = list(zip(*(table[c].to_pylist() for c in ("host", "channel", "record_id", "time")), strict=True))
        assert len(keys) == len(set(keys)) == first.events_added + second.events_added
        everything = [exports["jan"], exports["overlap"], exports["feb"]]
        assert _from_store(store) == _from_files(everything)
        spans = {s.channel: s for s in store.coverage()}
        assert spans["Security"].gaps[0].missing == 2  # 13..14, across the files


def test_order_of_ingest_does_not_matter(tmp_path: Path, exports: dict[str, Path]) -> None:
    files = [exports["jan"], exports["overlap"], exports["feb"], exports["apr"]]
    with Store.open(tmp_path / "a.sqlite3") as one, Store.open(tmp_path / "b.sqlite3") as other:
        one.ingest(files)
        for path in reversed(files):
            other.ingest([path])
        assert _from_store(one) == _from_store(other)
        assert one.coverage() == other.coverage()


def test_a_hole_between_two_exports_stays_a_hole(tmp_path: Path, exports: dict[str, Path]) -> None:
    with Store.open(tmp_path / "s.sqlite3") as store:
        store.ingest([exports["jan"]])
        store.ingest([exports["apr"]])
        security = next(s for s in store.coverage() if s.host == HOST and s.channel == "Security")
        assert len(security.intervals) == 2
        march = next(w for w in build_report(store.report_source(), SETTINGS).windows if w.label == "2024-03")
        assert march.status == "unknown" and march.users is None


@pytest.mark.usefixtures("workers_read")
def test_parallel_ingest_equals_serial(tmp_path: Path, exports: dict[str, Path]) -> None:
    files = list(exports.values())
    with Store.open(tmp_path / "a.sqlite3") as serial, Store.open(tmp_path / "b.sqlite3") as parallel:
        serial.ingest(files, jobs=1)
        parallel.ingest(files, jobs=2)
        assert _from_store(serial) == _from_store(parallel)


def test_a_small_ingest_starts_no_pool(tmp_path: Path, exports: dict[str, Path],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A pool takes about a second to start: inputs under ``POOL_MIN_BYTES`` are read in the calling process,
    whatever ``jobs`` says; above it, the pool is used."""
    import evtrack.reading

    def no_pool(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a pool was started")

    monkeypatch.setattr(evtrack.reading, "process_pool", no_pool)
    files = list(exports.values())
    assert sum(f.stat().st_size for f in files) < evtrack.reading.POOL_MIN_BYTES
    with Store.open(tmp_path / "a.sqlite3") as store:
        assert len(store.ingest(files, jobs=2).ingested) == len(files)
    monkeypatch.setattr(evtrack.reading, "POOL_MIN_BYTES", 0)
    with Store.open(tmp_path / "b.sqlite3") as store, pytest.raises(AssertionError, match="a pool was started"):
        store.ingest(files, jobs=2)


def test_bad_inputs_are_reported_and_remembered_not_stored(tmp_path: Path, exports: dict[str, Path]) -> None:
    """An input ingest cannot read adds nothing but is remembered: the store's report counts it as a failed input
    and is a lower bound, exactly as the report from the same files (issue: `report --store --check` said
    "within", exit 0, where `report FILES --check` said lower bound, exit 4)."""
    junk = tmp_path / "junk.evtx"
    junk.write_bytes(b"not a log at all")
    missing = tmp_path / "missing.evtx"
    with Store.open(tmp_path / "s.sqlite3") as store:
        result = store.ingest([junk, missing, exports["jan"]])
        assert [o.status for o in result.files] == [STATUS_FAILED, STATUS_FAILED, STATUS_INGESTED]
        assert [o.path for o in result.failed] == [missing, junk]
        assert "not an event log" in (result.failed[1].error or "")
        assert store.info().events == 6  # jan.xml's alone
        failed = store.failed_files()
        assert [(f.path, f.error, f.sha256, f.size) for f in failed] == [
            (str(junk), result.failed[1].error, file_sha256(junk), 16),
            (str(missing), "no such file or directory", None, None),
        ]
        assert store.info().failed == failed
        assert [(i.path, i.error) for i in store.inputs()] == [  # by path, as a report from the files
            (str(junk), failed[0].error), (str(exports["jan"]), None), (str(missing), failed[1].error)]
        from_store = _from_store(store)
        assert from_store == _from_files([junk, missing, exports["jan"]])
        assert from_store["lower_bound"] and sum(1 for i in from_store["inputs"] if i["error"]) == 2
        # a directory scan ignores non-logs, as `evtrack report` does: not failures
        assert store.ingest([exports["jan"].parent]).ignored == ()
        scanned = tmp_path / "scanned"
        scanned.mkdir()
        (scanned / "notes.txt").write_text("hello", encoding="utf-8")
        assert [i.path for i in store.ingest([scanned, exports["jan"]]).ignored] == [scanned / "notes.txt"]
        assert store.failed_files() == failed


BROKER = ('"ServerName","SessionId","UserName","DomainName","CreateTime","SessionState","HostServer","PolledAt",'
          '"ConnectionBroker"\r\n"RDSH01.contoso.local","2","alice","CONTOSO","1/2/2026 9:00:00 AM","STATE_ACTIVE",'
          '"RDSH01.contoso.local","2026-02-20T10:00:00Z","rdcb01"\r\n')
"""A Connection Broker poll whose one date reads either way: it fails without --culture, reads with en-US."""


def test_a_failure_ends_when_its_path_or_its_content_is_read(tmp_path: Path, exports: dict[str, Path]) -> None:
    from evtrack.catalogue import read_plan

    utc, en_us = read_plan(timezone.utc), read_plan(timezone.utc, culture="en-US")
    first, copy, other = (tmp_path / f"{name}.csv" for name in ("rdusersession_a", "rdusersession_b", "c"))
    first.write_text(BROKER, encoding="utf-8")
    with Store.open(tmp_path / "s.sqlite3") as store:
        (outcome,) = store.ingest([first], plan=utc).files
        assert outcome.status == STATUS_FAILED and "--culture" in (outcome.error or "")
        assert [(f.path, f.sha256) for f in store.failed_files()] == [(str(first), file_sha256(first))]
        assert [f.path for f in store.ingest([first], plan=utc).failed] == [first]  # still failing: still one row
        assert len(store.failed_files()) == 1

        # the same bytes read from another path (with the culture): the failure is over
        shutil.copy(first, copy)
        assert [o.status for o in store.ingest([copy], plan=en_us).files] == [STATUS_INGESTED]
        assert store.failed_files() == ()
        assert [(i.path, i.error) for i in store.inputs()] == [(str(copy), None)]

        # a later failure of the same path replaces the earlier one
        other.write_text("hello", encoding="utf-8")
        store.ingest([other])
        (before,) = store.failed_files()
        other.write_text("hello again", encoding="utf-8")
        store.ingest([other])
        (after,) = store.failed_files()
        assert after.path == before.path and after.sha256 == file_sha256(other) != before.sha256
        assert after.size == 11 and after.failed_at >= before.failed_at

        # the path now holds bytes the store already has: read, so no longer failed
        other.write_text(BROKER, encoding="utf-8")
        assert [o.status for o in store.ingest([other], plan=utc).files] == [STATUS_ALREADY]
        assert store.failed_files() == ()

        # and a path fixed in place (re-exported) is ingested and forgiven
        store.ingest([other.with_name("d.xml")])
        assert [f.error for f in store.failed_files()] == ["no such file or directory"]
        shutil.copy(exports["apr"], other.with_name("d.xml"))
        assert [o.status for o in store.ingest([other.with_name("d.xml")]).files] == [STATUS_INGESTED]
        assert store.failed_files() == ()


def test_forget_failed(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.sqlite3") as store:
        store.ingest([tmp_path / name for name in ("a.evtx", "b.evtx", "c.evtx")])
        assert [f.path for f in store.failed_files()] == [str(tmp_path / n) for n in ("a.evtx", "b.evtx", "c.evtx")]
        with pytest.raises(StoreError, match=r"not a remembered failed input: .*x\.evtx"):
            store.forget_failed([str(tmp_path / "a.evtx"), str(tmp_path / "x.evtx")])
        assert len(store.failed_files()) == 3  # all or nothing
        assert store.forget_failed([str(tmp_path / "b.evtx")]) == (str(tmp_path / "b.evtx"),)
        assert [f.path for f in store.failed_files()] == [str(tmp_path / n) for n in ("a.evtx", "c.evtx")]
        assert store.forget_failed() == (str(tmp_path / "a.evtx"), str(tmp_path / "c.evtx"))
        assert store.failed_files() == () and store.forget_failed() == ()


# -- one transaction per file ----------------------------------------------------------------------------------------


def test_failure_inside_the_transaction_leaves_the_store_as_before(
    tmp_path: Path, exports: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.sqlite3"
    with Store.open(path) as store:
        store.ingest([exports["jan"]])
        before = _dump(path)
        original = Store._insert_spans

        def boom(self: Store, *args: Any) -> None:
            original(self, *args)  # events and spans are written ... and then the process "dies"
            raise KeyboardInterrupt

        monkeypatch.setattr(Store, "_insert_spans", boom)
        with pytest.raises(KeyboardInterrupt):
            store.ingest([exports["feb"]])
        assert _dump(path) == before
        monkeypatch.undo()
        store.ingest([exports["jan"], exports["feb"]])
    with Store.open(tmp_path / "clean.sqlite3") as clean:
        clean.ingest([exports["jan"], exports["feb"]])
    assert _dump(path) == _dump(tmp_path / "clean.sqlite3")


def test_killed_ingest_then_rerun_equals_one_clean_run(tmp_path: Path, exports: dict[str, Path]) -> None:
    path = tmp_path / "s.sqlite3"
    files = [str(exports["jan"]), str(exports["feb"])]
    script = textwrap.dedent(f"""
        import os
        from evtrack.store import Store
        original = Store._insert_spans
        calls = []
        def die(self, *args):
            calls.append(1)
            original(self, *args)
            if len(calls) == 2:
                os._exit(9)  # like kill -9: no rollback, no cleanup, mid-transaction
        Store._insert_spans = die
        Store.open({str(path)!r}).ingest({files!r})
    """)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert killed.returncode == 9, killed.stderr.decode()
    with Store.open(path) as store:
        assert [i.path for i in store.inputs()] == [files[0]]  # the first file whole, nothing of the second
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rerun = store.ingest(files)
        assert [o.status for o in rerun.files] == [STATUS_ALREADY, STATUS_INGESTED]
    with Store.open(tmp_path / "clean.sqlite3") as clean:
        clean.ingest(files)
    assert _dump(path) == _dump(tmp_path / "clean.sqlite3")


def test_second_writer_waits_for_the_first(tmp_path: Path, exports: dict[str, Path]) -> None:
    path = tmp_path / "s.sqlite3"
    Store.open(path).close()
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, lambda: holder.execute("COMMIT")).start()
    started = time.monotonic()
    with Store.open(path, busy_timeout=10) as store:
        assert store.ingest([exports["jan"]]).files[0].status == STATUS_INGESTED
    assert time.monotonic() - started >= 0.25
    holder.close()


def test_second_writer_fails_cleanly_when_the_first_takes_too_long(tmp_path: Path, exports: dict[str, Path]) -> None:
    path = tmp_path / "s.sqlite3"
    Store.open(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with Store.open(path, busy_timeout=0.1) as store, pytest.raises(StoreError, match="store is busy"):
            store.ingest([exports["jan"]])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with Store.open(path) as store:
        assert store.inputs() == ()


# -- opening: only our own files -----------------------------------------------------------------------------------


def test_random_bytes_are_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    path.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(StoreError, match=re.escape(f"not an evtrack store: {path}")):
        Store.open(path)
    assert path.read_bytes() == b"\x00\x01garbage" * 100


def test_another_apps_sqlite_is_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="not an evtrack store"):
        Store.open(path)


def test_corrupt_sqlite_header_is_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    Store.open(path).close()
    data = bytearray(path.read_bytes())
    data[16:100] = b"\xff" * 84  # page size and the rest of the header
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="not an evtrack store"):
        Store.open(path)


def test_new_store_is_marked_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with Store.open(path) as made:
        assert made.created
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer than this evtrack"):
        Store.open(path)


def test_a_schema_3_store_is_upgraded_and_keeps_its_data(tmp_path: Path, exports: dict[str, Path]) -> None:
    """A store evtrack 3 wrote (no ``failed_files``) opens as schema 4 with every file, event, span and report
    kept, and then remembers failures."""
    path = tmp_path / "s.sqlite3"
    with Store.open(path) as store:
        store.ingest([exports["jan"], exports["apr"]])
        store.save_report(build_report(store.report_source(), SETTINGS))
        report = _from_store(store)
    before = _dump(path)
    db = sqlite3.connect(path)  # turn it into what schema 3 was
    db.execute("DROP TABLE failed_files")
    db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    db.execute("PRAGMA user_version = 3")
    db.commit()
    db.close()
    with Store.open(path, create=False) as store:
        assert store.info().schema_version == SCHEMA_VERSION == 4
        assert _dump(path) == before and _from_store(store) == report
        assert store.failed_files() == ()
        store.ingest([tmp_path / "missing.evtx"])
        assert [f.path for f in store.failed_files()] == [str(tmp_path / "missing.evtx")]
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "4"
    db.close()


def test_missing_store_is_not_created_by_reading_commands(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no evtrack store at"):
        Store.open(tmp_path / "none.sqlite3", create=False)
    assert not (tmp_path / "none.sqlite3").exists()


# -- saved reports, info, prune --------------------------------------------------------------------------------------


def test_saved_reports_round_trip(tmp_path: Path, exports: dict[str, Path]) -> None:
    with Store.open(tmp_path / "s.sqlite3") as store:
        store.ingest([exports["jan"]])
        events = store.info().events
        report = build_report(store.report_source(), SETTINGS)
        first, second = store.save_report(report), store.save_report(report)
        assert (first, second) == (1, 2)
        assert store.get_report(first) == report == Report.from_dict(report.to_dict())
        listed = store.list_reports()
        assert [(r.id, r.scope, r.window, r.installed, r.estimated, r.verdict) for r in listed] == [
            (i, "All trusted domains", "month", 2, report.estimated, report.verdict) for i in (1, 2)
        ]
        assert listed[0].created_at == PINNED
        store.delete_report(first)
        assert [r.id for r in store.list_reports()] == [2]
        assert store.info().events == events  # deleting a report never deletes events
        for action in (store.get_report, store.delete_report):
            with pytest.raises(StoreError, match=r"^no report with id 1$"):
                action(1)


def test_info_and_vacuum(tmp_path: Path, exports: dict[str, Path]) -> None:
    with Store.open(tmp_path / "s.sqlite3") as store:
        store.ingest([exports["jan"], exports["apr"]])
        info = store.info()
        assert (info.files, info.events, info.reports) == (2, 8, 0)
        assert info.hosts == (HOST, "RDSH02.contoso.local")
        assert info.last_ingest is not None and info.size_bytes > 0
        before, after = store.vacuum()
        assert after <= before


def test_prune_removes_old_events_and_clips_coverage(tmp_path: Path, exports: dict[str, Path]) -> None:
    with Store.open(tmp_path / "s.sqlite3") as store:
        store.ingest([exports["jan"], exports["feb"], exports["apr"]])
        cutoff = datetime(2024, 2, 1, tzinfo=timezone.utc)
        result = store.prune(cutoff)
        assert result.events_removed == 6 and result.clears_removed == 2
        assert result.spans_removed == 2 and result.spans_clipped == 1  # jan.xml's, and feb.xml's Security
        times = store.events_table()["time"].to_pylist()
        assert times and min(times) >= cutoff
        security = next(s for s in store.coverage() if s.host == HOST and s.channel == "Security")
        assert security.intervals[0][0] == int(cutoff.timestamp()) * 1_000_000
        assert security.cleared_us == ()
        assert store.ingest([exports["jan"]]).files[0].status == STATUS_ALREADY  # pruned stays pruned


# -- the real logs -------------------------------------------------------------------------------------------------


def test_shared_logs_report_from_store_equals_files(tmp_path: Path, shared_evtx: Path) -> None:
    logs = tmp_path / "logs"
    shutil.copytree(shared_evtx, logs)
    with Store.open(tmp_path / "s.sqlite3") as store:
        first = store.ingest([logs], jobs=2)
        assert first.failed == [] and len(first.ingested) >= 20
        again = store.ingest([logs])
        assert again.events_added == 0 and len(again.already) == len(first.ingested)
        assert _from_store(store) == _from_files([logs])


# -- command line --------------------------------------------------------------------------------------------------


runner = CliRunner()


def _app() -> typer.Typer:
    return cli_app


def test_cli_ingest_list_show_export_delete(tmp_path: Path, exports: dict[str, Path]) -> None:
    app, db = _app(), tmp_path / "s.sqlite3"
    env = {"EVTRACK_STORE": str(db)}
    result = runner.invoke(app, ["ingest", str(exports["jan"]), str(exports["overlap"]), "-j", "1"], env=env)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"created a new evtrack store: {db}",
        f"files: 2 ingested, 0 already ingested, 0 failed, 0 ignored; events: 7 added, 1 already present "
        f"(store {db})",
    ]
    result = runner.invoke(app, ["ingest", str(exports["jan"]), "--store", str(db)])
    assert result.exit_code == 0
    assert result.stderr.startswith("files: 0 ingested, 1 already ingested, 0 failed, 0 ignored; events: 0 added")

    result = runner.invoke(app, ["reports", "list"], env=env)
    assert result.exit_code == 0 and "no saved reports" in result.stderr
    with Store.open(db) as store:
        report = build_report(store.report_source(), SETTINGS)
        report_id = store.save_report(report)
    result = runner.invoke(app, ["reports", "list"], env={**env, "COLUMNS": "200"})
    assert result.exit_code == 0
    assert "All trusted domains" in result.stdout and report.verdict in result.stdout

    result = runner.invoke(app, ["reports", "show", str(report_id), "--format", "json"], env=env)
    assert result.exit_code == 0 and json.loads(result.stdout) == json.loads(json.dumps(report.to_dict()))
    out = tmp_path / "users.csv"
    result = runner.invoke(app, ["reports", "export", str(report_id), "-f", "csv", "-o", str(out)], env=env)
    assert result.exit_code == 0 and out.read_text(encoding="utf-8").startswith("\ufeffUser,")

    result = runner.invoke(app, ["reports", "delete", str(report_id)], input="n\n", env=env)
    assert result.exit_code == 1
    result = runner.invoke(app, ["reports", "delete", str(report_id), "--yes"], env=env)
    assert result.exit_code == 0 and f"deleted report {report_id}" in result.stderr
    for args in (["reports", "show", "1"], ["reports", "delete", "1", "--yes"], ["reports", "export", "1", "-o", "x"]):
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 1 and "error: no report with id 1" in result.stderr


def test_cli_store_commands(tmp_path: Path, exports: dict[str, Path]) -> None:
    import pyarrow.parquet as pq

    app, db = _app(), tmp_path / "s.sqlite3"
    env = {"EVTRACK_STORE": str(db)}
    assert runner.invoke(app, ["ingest", str(exports["jan"].parent), "-q"], env=env).exit_code == 0
    result = runner.invoke(app, ["store", "info"], env=env)
    assert result.exit_code == 0 and f"store: {db}" in result.stdout and "files: 4;" in result.stdout
    out = tmp_path / "events.parquet"
    assert runner.invoke(app, ["store", "events", "-o", str(out)], env=env).exit_code == 0
    with Store.open(db) as store:
        assert pq.read_table(out).equals(store.events_table())
    result = runner.invoke(app, ["store", "events"], env=env)
    assert result.exit_code == 1 and "needs --output" in result.stderr
    result = runner.invoke(app, ["store", "prune", "--before", "2024-02-01", "--yes"], env=env)
    assert result.exit_code == 0 and "pruned before 2024-02-01T00:00:00+00:00: 6 events" in result.stderr
    assert runner.invoke(app, ["store", "vacuum"], env=env).exit_code == 0


def test_cli_remembers_failed_inputs_until_read_or_forgotten(tmp_path: Path, exports: dict[str, Path]) -> None:
    app, db = _app(), tmp_path / "s.sqlite3"
    env = {"EVTRACK_STORE": str(db)}
    broker, missing = tmp_path / "rdusersession_rdcb01.csv", tmp_path / "gone.evtx"
    broker.write_text(BROKER, encoding="utf-8")
    result = runner.invoke(app, ["ingest", str(exports["jan"]), str(broker), str(missing), "-j", "1",
                                 "--input-tz", "UTC"], env=env)
    assert result.exit_code == 0, result.output  # exit codes as before: something was stored
    lines = result.stderr.splitlines()
    assert lines[1].startswith("files: 1 ingested, 0 already ingested, 2 failed, 0 ignored;")
    assert lines[2] == f"  failed: {missing}: no such file or directory"
    assert lines[3].startswith(f"  failed: {broker}: the date '1/2/2026 9:00:00 AM'")
    assert lines[4] == ("  the store remembers failed inputs: its reports are a lower bound until each is ingested "
                        "once it can be read, or forgotten with `evtrack store forget-failed`")

    def info() -> list[str]:
        shown = runner.invoke(app, ["store", "info"], env=env)
        assert shown.exit_code == 0, shown.output
        lines = shown.stdout.splitlines()  # from "failed inputs: " to "last ingest: "
        first = next(i for i, line in enumerate(lines) if line.startswith("failed inputs: "))
        return lines[first:next(i for i, line in enumerate(lines) if line.startswith("last ingest: "))]

    def failed_in_report() -> list[str]:
        shown = runner.invoke(app, ["report", "--store", str(db), "-f", "json", "--installed", "5"])
        return [i["path"] for i in json.loads(shown.stdout)["inputs"] if i["error"]]

    shown = info()
    assert shown[0].startswith("failed inputs: 2 (the store remembers failed inputs")
    assert [line.split(": ")[0] for line in shown[1:]] == [f"  {missing}", f"  {broker}"]
    assert failed_in_report() == [str(missing), str(broker)]

    # fixed: read with the culture, the failure is over
    result = runner.invoke(app, ["ingest", str(broker), "-q", "--input-tz", "UTC", "--culture", "en-US"], env=env)
    assert result.exit_code == 0, result.output
    assert failed_in_report() == [str(missing)]

    # gone for good: forgotten, after asking
    result = runner.invoke(app, ["store", "forget-failed", str(tmp_path / "other.evtx")], env=env)
    assert (result.exit_code, result.stderr) == (
        1, f"error: not a remembered failed input: {tmp_path / 'other.evtx'} (`evtrack store info` lists them)\n")
    result = runner.invoke(app, ["store", "forget-failed", str(missing)], input="n\n", env=env)
    assert result.exit_code == 1 and "error: nothing forgotten" in result.stderr
    assert failed_in_report() == [str(missing)]
    result = runner.invoke(app, ["store", "forget-failed", str(missing), "--yes"], env=env)
    assert (result.exit_code, result.stderr) == (0, "forgot 1 failed input\n")
    assert info() == ["failed inputs: 0"] and failed_in_report() == []
    result = runner.invoke(app, ["store", "forget-failed", "-y"], env=env)
    assert (result.exit_code, result.stderr) == (0, "no failed inputs remembered\n")


def test_cli_refuses_a_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello", encoding="utf-8")
    for args in (["reports", "list"], ["store", "info"], ["ingest", str(path)]):
        result = runner.invoke(_app(), [*args, "--store", str(path)])
        assert result.exit_code == 1
        assert f"error: not an evtrack store: {path}" in result.stderr


def test_cli_engines_match_the_registry() -> None:
    assert sorted(e.value for e in Engine) == sorted(ENGINES)


def test_store_commands_import_no_heavy_module() -> None:
    code = ("import sys, evtrack.cli.store, evtrack.store; "
            "print(sorted(m for m in ('pyarrow', 'evtx', 'Evtx', 'evtrack.reading') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
