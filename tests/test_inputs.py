"""Inputs: files, folders and globs; kind by content; XML exports in both shapes; bad files named, run goes on."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from evtrack.errors import SourceError
from evtrack.reading import detect_kind, expand_inputs, read_file, read_inputs
from evtrack.sources.base import InputKind

from .conftest import logon_4624, lsm, write_events


def test_wevtutil_stream_without_root(tmp_path: Path) -> None:
    path = write_events(tmp_path / "export.txt", logon_4624(10, record_id=7), lsm(21, record_id=8))
    assert detect_kind(path) is InputKind.XML
    result = read_file(path)
    rows = [r for b in result.batches for r in b.to_pylist()]
    assert [(r["event_id"], r["record_id"], r["rdp"]) for r in rows] == [(4624, 7, True), (21, 8, True)]
    assert result.stats.records == 2 and result.stats.kind is InputKind.XML


def test_event_viewer_save_as_xml_with_root_and_declaration(tmp_path: Path) -> None:
    path = tmp_path / "saved.xml"
    path.write_text('<?xml version="1.0" encoding="utf-8" standalone="yes"?>\n<Events>'
                    + logon_4624(10) + "</Events>", encoding="utf-8")
    result = read_file(path)
    assert result.error is None and sum(b.num_rows for b in result.batches) == 1


def test_utf16_export_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "ps-redirect.xml"
    text = '<?xml version="1.0" encoding="UTF-16"?>' + logon_4624(10, user="İlker", domain="KONTOSO")
    path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    rows = [r for b in read_file(path).batches for r in b.to_pylist()]
    assert rows[0]["user"] == "İlker"


def test_billion_laughs_is_refused_with_a_clear_issue(tmp_path: Path) -> None:
    path = tmp_path / "lol.xml"
    path.write_text('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
                    "<Events><Event>&lol2;</Event></Events>", encoding="utf-8")
    result = read_file(path)
    assert result.stats.records == 0
    assert any("refused XML" in issue.reason for issue in result.stats.issues)


def test_malformed_xml_keeps_the_events_before_the_damage(tmp_path: Path) -> None:
    path = write_events(tmp_path / "cut.xml", logon_4624(10), lsm(21))
    path.write_text(path.read_text(encoding="utf-8")[:-40], encoding="utf-8")
    result = read_file(path)
    assert sum(b.num_rows for b in result.batches) == 1
    assert any("malformed XML" in issue.reason for issue in result.stats.issues)


def test_not_an_event_log_and_empty_file_are_named_and_do_not_stop_the_run(tmp_path: Path) -> None:
    notes = tmp_path / "notes.evtx"
    notes.write_text("hello, this is not a log", encoding="utf-8")
    empty = tmp_path / "empty.evtx"
    empty.write_bytes(b"")
    good = write_events(tmp_path / "good.xml", logon_4624(10))
    result = read_inputs([notes, empty, good])
    assert result.table.num_rows == 1
    reasons = {issue.path.name: issue.reason for issue in result.file_errors}
    assert reasons["notes.evtx"] == "not an event log (starts with b'hello, this is n')"
    assert reasons["empty.evtx"] == "not an event log: the file is empty"


def test_missing_path_and_empty_glob_are_errors(tmp_path: Path) -> None:
    inputs = expand_inputs([tmp_path / "nope.evtx", str(tmp_path / "*.evtx")])
    assert inputs.files == ()
    assert [issue.reason for issue in inputs.errors] == ["no such file or directory", "no file matches this pattern"]


def test_directory_scan_is_recursive_deduplicated_and_ignores_non_logs(tmp_path: Path) -> None:
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    first = write_events(sub / "one.xml", logon_4624(10))
    (tmp_path / "README.txt").write_text("exports of March", encoding="utf-8")
    result = read_inputs([tmp_path, first, str(tmp_path / "**" / "*.xml")])
    assert [stats.path.name for stats in result.files] == ["one.xml"]
    assert result.file_errors == ()
    assert [issue.path.name for issue in result.ignored] == ["README.txt"]


def test_directory_given_as_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is a directory"):
        detect_kind(tmp_path)


def test_symlink_loop_does_not_hang(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    write_events(tmp_path / "logs" / "one.xml", logon_4624(10))
    try:
        (tmp_path / "logs" / "loop").symlink_to(tmp_path, target_is_directory=True)
    except OSError:
        pytest.skip("symlinks not permitted here")
    assert [p.name for p in expand_inputs([tmp_path]).files] == ["one.xml"]


def test_evtx_detected_by_magic_not_by_name(tmp_path: Path, shared_evtx: Path) -> None:
    renamed = tmp_path / "security.log"
    renamed.write_bytes((shared_evtx / "velociraptor_rdpauth_localsessionmanager.evtx").read_bytes())
    assert detect_kind(renamed) is InputKind.EVTX
    assert read_file(renamed).stats.records == 17


@pytest.mark.usefixtures("workers_read")
def test_results_do_not_depend_on_jobs(shared_evtx: Path) -> None:
    files = sorted(shared_evtx.glob("velociraptor_*.evtx"))
    one = read_inputs(files, jobs=1)
    two = read_inputs(files, jobs=2)
    assert one.table.equals(two.table)
    assert one.coverage == two.coverage


@pytest.mark.usefixtures("workers_read")
def test_a_parallel_read_under_spawn_equals_a_serial_read(tmp_path: Path) -> None:
    """Windows and macOS start workers with ``spawn``: nothing may depend on a forked parent's state."""
    from datetime import date

    from evtrack.reading import pool_context
    from evtrack.synth import write_sample

    write_sample(tmp_path, users=4, hosts=2, start=date(2024, 1, 1), end=date(2024, 1, 31), seed=5)
    one = read_inputs([tmp_path], jobs=1, slim=True)
    two = read_inputs([tmp_path], jobs=2, slim=True, start_method="spawn")
    assert len(one.files) == len(list(tmp_path.glob("*.evtx"))) > 2 and one.table.num_rows > 0
    assert one.table.equals(two.table)
    assert (one.coverage, one.files, one.ignored, one.observations) == (two.coverage, two.files, two.ignored,
                                                                        two.observations)
    assert pool_context().get_start_method() != "fork"  # no fork of a process running pyarrow's threads


def test_the_local_dask_cluster_spawns_its_workers() -> None:
    dask = pytest.importorskip("dask")
    pytest.importorskip("dask.distributed")
    assert dask.config.get("distributed.worker.multiprocessing-method") == "spawn"
