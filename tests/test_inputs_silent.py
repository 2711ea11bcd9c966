"""Nothing dropped silently at the input edge: unreadable folders, files cut short, empty or zeroed .evtx, empty
inputs, missing stores. Each case is a failed input named with its path and why, and ``--strict`` exits 1."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evtrack.cli import EXIT_ERROR, EXIT_INTERRUPTED, app
from evtrack.errors import NotAnEventLog, SourceError
from evtrack.reading import detect_kind, expand_inputs, join_ranges, read_file, read_inputs
from evtrack.sources.base import CHUNK_SIZE, FILE_HEADER_SIZE, InputKind
from evtrack.store import Store, StoreError

from .conftest import logon_4624, write_events

runner = CliRunner()
ENGINES = ("evtx", "python-evtx")
WORKTREE = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated fleet (evtrack.synth): one host's Security, LocalSessionManager and RCM logs."""
    from evtrack.synth import write_sample

    out = tmp_path_factory.mktemp("logs")
    write_sample(out, users=4, hosts=1, start=date(2024, 1, 1), end=date(2024, 1, 31), seed=3, noise_ratio=3.0)
    return out


@pytest.fixture(scope="module")
def security(logs: Path) -> bytes:
    data = (logs / "RDSH01-Security.evtx").read_bytes()
    assert (len(data) - FILE_HEADER_SIZE) % CHUNK_SIZE == 0 and len(data) > FILE_HEADER_SIZE + 4 * CHUNK_SIZE
    return data


def _named_chunks(data: bytes) -> int:
    return int.from_bytes(data[0x2A:0x2C], "little")


def _chunk_records(data: bytes, index: int) -> int:
    at = FILE_HEADER_SIZE + index * CHUNK_SIZE
    first, last = (int.from_bytes(data[at + o : at + o + 8], "little") for o in (8, 16))
    return last - first + 1


# -- 1. folders that cannot be listed ------------------------------------------------------------------------------


def _deny(monkeypatch: pytest.MonkeyPatch, denied: Path) -> None:
    """Make listing ``denied`` fail as an unreadable folder does, on any OS (no root or chmod needed)."""
    real = os.scandir

    def scandir(path: str | os.PathLike[str] = ".") -> object:
        if Path(path) == denied:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def _tree(tmp_path: Path, logs: Path) -> tuple[Path, Path]:
    top = tmp_path / "exports"
    locked = top / "locked"
    locked.mkdir(parents=True)
    shutil.copy(logs / "RDSH01-LocalSessionManager.evtx", top)
    shutil.copy(logs / "RDSH01-Security.evtx", locked)
    return top, locked


def test_a_folder_that_cannot_be_listed_is_a_failed_input(tmp_path: Path, logs: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    top, locked = _tree(tmp_path, logs)
    _deny(monkeypatch, locked)
    for argument in (top, str(locked / "*.evtx"), str(top / "**" / "*.evtx"), str(top / "*" / "*.evtx")):
        inputs = expand_inputs([argument])
        assert [(i.path, i.reason) for i in inputs.errors] == [(locked, "cannot list this folder: permission denied")]
    result = read_inputs([top])
    assert [stats.path.name for stats in result.files] == ["RDSH01-LocalSessionManager.evtx"]
    assert [str(issue) for issue in result.file_errors] == [f"{locked}: input: cannot list this folder: permission "
                                                            "denied"]
    cli = runner.invoke(app, ["report", str(top), "--strict", "-f", "json"])
    assert cli.exit_code == EXIT_ERROR
    assert f"  failed: {locked}: cannot list this folder: permission denied" in cli.stderr.splitlines()
    assert "files: 1 read, 1 failed" in cli.stderr


def test_a_glob_into_a_folder_that_cannot_be_listed_does_not_crash(tmp_path: Path, logs: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _, locked = _tree(tmp_path, logs)
    _deny(monkeypatch, locked)
    cli = runner.invoke(app, ["report", str(locked / "*.evtx"), "-f", "json"])
    assert cli.exit_code == EXIT_ERROR
    assert cli.stderr.splitlines()[-2:] == [f"  failed: {locked}: cannot list this folder: permission denied",
                                            "error: none of the inputs could be read"]


def _unprivileged() -> list[str]:
    """A command prefix that runs without the root's right to read anything (or nothing, when not root)."""
    if os.name == "nt":
        pytest.skip("POSIX permissions: covered by the monkeypatched tests on Windows")
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop the right to read unreadable folders")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]


def test_a_really_unreadable_folder_with_permissions_enforced(tmp_path: Path, logs: Path) -> None:
    top, locked = _tree(tmp_path, logs)
    prefix = _unprivileged()
    locked.chmod(0)
    try:
        probe = subprocess.run([*prefix, sys.executable, "-c", f"import os; os.listdir({str(locked)!r})"],
                               capture_output=True, check=False)
        if probe.returncode == 0:
            pytest.skip("permissions are not enforced here (the folder stays readable)")
        env = {**os.environ, "PYTHONPATH": str(WORKTREE)}
        evtrack = [*prefix, sys.executable, "-m", "evtrack"]
        folder = subprocess.run([*evtrack, "report", str(top), "--strict", "-f", "json"], capture_output=True,
                                text=True, env=env, check=False)
        glob = subprocess.run([*evtrack, "report", str(locked / "*.evtx"), "-f", "json"], capture_output=True,
                              text=True, env=env, check=False)
        inside = subprocess.run([*evtrack, "report", str(locked / "RDSH01-Security.evtx"), "-f", "json"],
                                capture_output=True, text=True, env=env, check=False)
        ingest = subprocess.run([*evtrack, "ingest", str(top), "--strict", "--store", str(tmp_path / "s.sqlite3")],
                                capture_output=True, text=True, env=env, check=False)
    finally:
        locked.chmod(0o755)
    failed = f"  failed: {locked}: cannot list this folder: permission denied"
    assert folder.returncode == EXIT_ERROR and failed in folder.stderr.splitlines(), folder.stderr
    assert glob.returncode == EXIT_ERROR and "Traceback" not in glob.stderr
    assert glob.stderr.splitlines()[-2:] == [failed, "error: none of the inputs could be read"]
    assert inside.returncode == EXIT_ERROR and "Traceback" not in inside.stderr
    assert f"  failed: {locked / 'RDSH01-Security.evtx'}: cannot access: permission denied" in inside.stderr
    assert ingest.returncode == EXIT_ERROR and failed in ingest.stderr.splitlines(), ingest.stderr


# -- 2. .evtx files cut short: both engines name them -------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_a_file_cut_before_any_whole_record_is_a_failed_file(tmp_path: Path, security: bytes, engine: str) -> None:
    named = _named_chunks(security)
    expected = {
        3_000: "cannot open as .evtx: truncated file header (3,000 of 4,096 bytes): the file was cut short",
        4_096: f"no record could be read: chunk 0: the file ends after 0 of the {named} chunks its header names: "
               "the file was cut short (records lost)",
        10_000: "no record could be read: chunk 0: truncated chunk (5,904 of 65,536 bytes): the file was cut short",
        4_096 + 600: "no record could be read: chunk 0: truncated chunk (600 of 65,536 bytes): the file was cut "
                     "short",
    }
    for cut, reason in expected.items():
        path = tmp_path / f"cut-{cut}.evtx"
        path.write_bytes(security[:cut])
        result = read_inputs([path], engine=engine)
        assert result.files == ()
        assert [(issue.path, issue.reason) for issue in result.file_errors] == [(path, reason)], cut
    cli = runner.invoke(app, ["report", str(tmp_path / "cut-10000.evtx"), "--engine", engine, "-f", "json"])
    assert cli.exit_code == EXIT_ERROR
    assert cli.stderr.splitlines()[-2:] == [f"  failed: {tmp_path / 'cut-10000.evtx'}: {expected[10_000]}",
                                            "error: none of the inputs could be read"]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_file_cut_after_some_records_names_the_cut_chunk(tmp_path: Path, security: bytes, engine: str) -> None:
    named = _named_chunks(security)
    cases = {
        FILE_HEADER_SIZE + CHUNK_SIZE + 368: ("chunk 1", "truncated chunk (368 of 65,536 bytes): the file was cut "
                                              "short", _chunk_records(security, 1)),
        FILE_HEADER_SIZE + 2 * CHUNK_SIZE + 30_000: ("chunk 2", "truncated chunk (30,000 of 65,536 bytes): the "
                                                     "file was cut short", _chunk_records(security, 2)),
        FILE_HEADER_SIZE + 2 * CHUNK_SIZE: ("chunk 2", f"the file ends after 2 of the {named} chunks its header "
                                            "names: the file was cut short (records lost)", 0),
    }
    for cut, (where, reason, lost) in cases.items():
        path = tmp_path / f"cut-{cut}.evtx"
        path.write_bytes(security[:cut])
        result = read_inputs([path], engine=engine)
        assert result.file_errors == ()
        assert result.records == sum(_chunk_records(security, i) for i in range((cut - FILE_HEADER_SIZE)
                                                                                   // CHUNK_SIZE))
        assert [(i.where, i.reason, i.skipped) for i in result.issues] == [(where, reason, lost)], cut
        cli = runner.invoke(app, ["report", str(path), "--engine", engine, "--strict", "-f", "json"])
        assert cli.exit_code == EXIT_ERROR, cut
        assert f"  skipped: {path}: {where}: {reason}" in "\n".join(cli.stderr.splitlines())


def test_a_cut_file_read_in_chunk_ranges_names_the_cut_once(tmp_path: Path, security: bytes) -> None:
    path = tmp_path / "cut.evtx"
    path.write_bytes(security[: FILE_HEADER_SIZE + 3 * CHUNK_SIZE + 1000])
    whole = read_file(path)
    parts = join_ranges([read_file(path, chunks=(0, 2)), read_file(path, chunks=(2, 4))])
    assert [(i.where, i.skipped) for i in whole.stats.issues] == [("chunk 3", _chunk_records(security, 3))]
    assert parts.stats.issues == whole.stats.issues and parts.stats.records == whole.stats.records


def test_a_whole_file_has_no_issue(logs: Path) -> None:
    for engine in ENGINES:
        result = read_inputs([logs], engine=engine)
        assert (result.file_errors, result.issues) == ((), []), engine


# -- 3. empty, zeroed and damaged .evtx in a folder are failed, other non-logs ignored -----------------------------


def test_empty_zeroed_and_damaged_evtx_in_a_folder_are_failed(tmp_path: Path, logs: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    shutil.copy(logs / "RDSH01-LocalSessionManager.evtx", folder)
    (folder / "empty.evtx").write_bytes(b"")
    (folder / "zeros.EVTX").write_bytes(bytes(70_000))
    damaged = bytearray((logs / "RDSH01-RemoteConnectionManager.evtx").read_bytes())
    damaged[:3] = b"XYZ"
    (folder / "damaged.log").write_bytes(bytes(damaged))
    (folder / "notes.txt").write_text("exported on Monday", encoding="utf-8")
    (folder / "empty.dat").write_bytes(b"")
    result = read_inputs([folder])
    assert [(i.path.name, i.reason) for i in result.file_errors] == [
        ("damaged.log", "damaged .evtx: bad file header magic b'XYZFile\\x00' (expected b'ElfFile\\x00')"),
        ("empty.evtx", "not an event log: the file is empty"),
        ("zeros.EVTX", "not an event log: all zeros where the header should be (never written, or wiped)"),
    ]
    assert [(i.path.name, i.reason) for i in result.ignored] == [
        ("empty.dat", "not an event log: the file is empty"),
        ("notes.txt", "not an event log (starts with b'exported on Mond')"),
    ]
    cli = runner.invoke(app, ["report", str(folder), "--strict", "-f", "json"])
    assert cli.exit_code == EXIT_ERROR
    assert "files: 1 read, 3 failed, 2 ignored" in cli.stderr
    ingest = runner.invoke(app, ["ingest", str(folder), "--strict", "--store", str(tmp_path / "s.sqlite3")])
    assert ingest.exit_code == EXIT_ERROR
    assert "files: 1 ingested, 0 already ingested, 3 failed, 2 ignored" in ingest.stderr


def test_only_a_file_that_does_not_claim_to_be_a_log_is_not_an_event_log(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(bytes(10))
    (tmp_path / "a.evtx").write_bytes(bytes(10))
    with pytest.raises(NotAnEventLog):
        detect_kind(tmp_path / "a.txt")
    with pytest.raises(SourceError) as raised:
        detect_kind(tmp_path / "a.evtx")
    assert not isinstance(raised.value, NotAnEventLog)
    header_only = tmp_path / "renamed.bin"
    header_only.write_bytes(b"ElfFilX\x00" + bytes(120))
    with pytest.raises(SourceError, match=r"damaged \.evtx") as raised:
        detect_kind(header_only)
    assert not isinstance(raised.value, NotAnEventLog)
    assert detect_kind(write_events(tmp_path / "x.txt", logon_4624(10))) is InputKind.XML


# -- 4. nothing found, nothing there, no folder for the store -----------------------------------------------------


@pytest.mark.parametrize("command", [["report"], ["events"], ["ingest", "--store", "{tmp}/s.sqlite3"]])
def test_an_empty_folder_is_an_error(tmp_path: Path, command: list[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.txt").write_text("logs go here", encoding="utf-8")
    args = [command[0], str(empty), *(a.replace("{tmp}", str(tmp_path)) for a in command[1:])]
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_ERROR
    assert result.stderr.splitlines()[-1] == f"error: no event logs found in {empty}"
    (empty / "README.txt").unlink()
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_ERROR
    assert result.stderr.splitlines()[-1] == f"error: no event logs found in {empty}"
    if command[0] == "ingest":  # nothing at all to read: no store is made
        (tmp_path / "s.sqlite3").unlink()
        result = runner.invoke(app, args)
        assert result.stderr.splitlines() == [f"error: no event logs found in {empty}"]
        assert not (tmp_path / "s.sqlite3").exists()


def test_ingest_of_a_missing_path_fails_and_makes_no_store(tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite3"
    result = runner.invoke(app, ["ingest", str(tmp_path / "nope"), "--store", str(store)])
    assert result.exit_code == EXIT_ERROR
    assert result.stderr.splitlines() == [f"  failed: {tmp_path / 'nope'}: no such file or directory",
                                          "error: none of the inputs could be read"]
    assert not store.exists()


def test_a_store_in_a_missing_folder_is_an_error_and_a_new_store_is_announced(tmp_path: Path, logs: Path) -> None:
    deep = tmp_path / "no" / "such" / "s.sqlite3"
    with pytest.raises(StoreError, match=r"the folder .* does not exist"):
        Store.open(deep)
    result = runner.invoke(app, ["ingest", str(logs / "RDSH01-LocalSessionManager.evtx"), "--store", str(deep)])
    assert result.exit_code == EXIT_ERROR
    assert result.stderr.splitlines() == [f"error: cannot create store {deep}: the folder {deep.parent} does not "
                                          "exist"]
    assert not (tmp_path / "no").exists()
    store = tmp_path / "s.sqlite3"
    first = runner.invoke(app, ["ingest", str(logs / "RDSH01-LocalSessionManager.evtx"), "--store", str(store)])
    again = runner.invoke(app, ["ingest", str(logs / "RDSH01-LocalSessionManager.evtx"), "--store", str(store)])
    assert first.exit_code == again.exit_code == 0
    assert first.stderr.splitlines()[0] == f"created a new evtrack store: {store}"
    assert [line for line in again.stderr.splitlines() if "created" in line] == []


# -- 5. interrupted runs -------------------------------------------------------------------------------------------


def test_ctrl_c_during_ingest_says_what_is_stored_and_a_rerun_continues(tmp_path: Path, logs: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "s.sqlite3"
    real = Store._add_file
    calls = 0

    def add_then_interrupt(self: Store, *args: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "_add_file", add_then_interrupt)
    args = ["ingest", str(logs), "--store", str(store), "-j", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_INTERRUPTED
    assert result.stderr.splitlines() == [
        f"created a new evtrack store: {store}",
        "interrupted: 1 file stored in this run (each file is stored whole or not at all); run the same command "
        "again to continue: files already stored are skipped",
    ]
    monkeypatch.setattr(Store, "_add_file", real)
    again = runner.invoke(app, args)
    assert again.exit_code == 0
    assert again.stderr.startswith("files: 2 ingested, 2 already ingested, 0 failed, 1 ignored"), again.stderr
    fresh = tmp_path / "fresh.sqlite3"
    assert runner.invoke(app, ["ingest", str(logs), "--store", str(fresh), "-j", "1"]).exit_code == 0
    assert _stored(store) == _stored(fresh)  # the interrupted run plus the re-run: as one uninterrupted run


def _stored(store: Path) -> list[tuple[str, str, int]]:
    import sqlite3

    with contextlib.closing(sqlite3.connect(store)) as db:
        files = db.execute("SELECT path, sha256, events FROM files ORDER BY path").fetchall()
        return [*files, ("events", "", db.execute("SELECT count(*) FROM events").fetchone()[0])]


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError])
def test_an_interrupted_or_failed_sample_leaves_no_partial_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 failure: type[BaseException]) -> None:
    from evtrack.synth import sample

    real = sample._ground_truth

    def written_then_fail(*args: object, **kwargs: object) -> object:
        staged = [p for p in tmp_path.rglob("*.evtx")]
        assert len(staged) == 4 and all(p.stat().st_size > 0 for p in staged)  # the logs are written by now
        raise failure

    monkeypatch.setattr(sample, "_ground_truth", written_then_fail)
    with pytest.raises(failure):
        sample.write_sample(tmp_path, users=2, hosts=1, start=date(2024, 1, 1), end=date(2024, 1, 7))
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(sample, "_ground_truth", real)
    done = sample.write_sample(tmp_path, users=2, hosts=1, start=date(2024, 1, 1), end=date(2024, 1, 7))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in done.files)
    assert all(p.parent == tmp_path and p.is_file() for p in done.files)


# -- records that name no Channel -------------------------------------------------------------------------------


def _no_channel_log(folder: Path, shape: str) -> Path:
    """A Security log covering March 2024 (and a day either side) with a noise record every 6 hours, ids
    consecutive, and three RDP logons (4624 type 10) on 4 March among them: alice's names its Channel; bob's
    Channel is empty and carol's (XML) has no Channel element, or (.evtx) an empty one, as an export or a tool that
    strips it would leave them."""
    import dataclasses

    from evtrack.synth import EventSpec, EvtxWriter

    from . import exports

    utc = exports.timezone.utc
    noise = exports.noise(exports.datetime(2024, 2, 29, tzinfo=utc), exports.datetime(2024, 4, 1, 18, tzinfo=utc),
                          exports.timedelta(hours=6), 1)
    at = next(i for i, rec in enumerate(noise) if rec.time.day == 4 and rec.time.month == 3)
    logons = [exports.Rec("4624", noise[at].time, 0, user=user, sid=f"S-1-5-21-1-2-3-{1105 + n}")
              for n, user in enumerate(("alice", "bob", "carol"))]
    records = [*noise[:at], *logons, *noise[at:]]
    records = [dataclasses.replace(rec, record_id=index + 1) for index, rec in enumerate(records)]
    unplaced = {rec.record_id for rec in records if rec.user in ("bob", "carol") and rec.what == "4624"}
    if shape == "xml":
        texts = [exports.as_xml(rec) for rec in records]
        for rec in records:
            if rec.record_id in unplaced:
                empty = "<Channel></Channel>" if rec.user == "bob" else ""
                texts[rec.record_id - 1] = texts[rec.record_id - 1].replace("<Channel>Security</Channel>", empty)
        return write_events(folder / "security.xml", *texts, root=True)
    path = folder / "security.evtx"
    with EvtxWriter(path) as writer:
        for rec in records:
            spec = exports.as_spec(rec)
            if rec.record_id in unplaced:
                spec = EventSpec(dataclasses.replace(spec.etype, channel=""), spec.time, spec.record_id,
                                 spec.computer, spec.values)
            writer.add(spec)
    return path


@pytest.mark.parametrize(("shape", "engine"), [("xml", "evtx"), ("evtx", "evtx"), ("evtx", "python-evtx")])
def test_records_that_name_no_channel_are_said_and_leave_a_hole(tmp_path: Path, shape: str, engine: str) -> None:
    """Every event evtrack reads is known by its channel, so bob's and carol's logons cannot be read. Worked out by
    hand: the report counts alice alone (1 user); the file reads all 135 records (a noise record every 6 hours from
    29 February to 1 April 18:00: 132; and 3 logons) and says
    that 2 of them name no Channel (before, they vanished without a word); and since the Security log's record
    ids skip those two, its coverage counts 133 records and one gap of 2 missing record ids: coverage is incomplete
    and the verdict a lower bound, never a clean "within" (with 1 installed CAL, a clean "within" would pass
    ``--check`` while bob and carol used RDP)."""
    from evtrack.pipeline import run_report
    from evtrack.usage import ReportSettings

    log = _no_channel_log(tmp_path, shape)
    report, read = run_report([log], ReportSettings(installed=1, tz="UTC"), engine=engine)
    assert [u.display_name for u in report.users] == ["CONTOSO\\alice"]
    (stats,) = read.files
    assert stats.records == 135
    assert [(i.where, i.reason, i.skipped) for i in stats.issues] == [
        ("file", "2 record(s) name no Channel (an export or a tool that left it out?): evtrack cannot tell which "
                 "log they belong to and does not read them", 0)]
    (listed,) = report.inputs
    assert any("2 record(s) name no Channel" in issue for issue in listed.issues)
    (security,) = report.coverage
    assert (security.records, security.record_id_gaps, security.missing_record_ids) == (133, 1, 2)
    assert report.lower_bound and report.verdict == "within (lower bound)" and not report.coverage_complete
