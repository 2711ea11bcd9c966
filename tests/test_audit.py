"""Issue 17: every counted (user, window) has a proof that can be checked by hand, and the inputs can be verified.

Each proof record is looked up again in the file it names, by EventRecordID, with python-evtx (or the XML text)
directly -- never through evtrack's own readers -- and must carry the stated event ID, time, channel and computer.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evtrack.cli import app
from evtrack.pipeline import run_report
from evtrack.report import Report
from evtrack.usage import ReportSettings

from .conftest import LSM_CHANNEL
from .exports import Rec, noise, write
from .factories import utc

SAMPLE_LOGS = Path(__file__).resolve().parents[1] / "sample_logs"
runner = CliRunner()
SIX_HOURS = timedelta(hours=6)


@dataclass(frozen=True)
class Found:
    event_id: int
    time: datetime
    channel: str
    computer: str


_FIELDS = {
    "event_id": re.compile(r"<EventID[^>]*>\s*(\d+)\s*</EventID>"),
    "record_id": re.compile(r"<EventRecordID>\s*(\d+)\s*</EventRecordID>"),
    "time": re.compile(r"<TimeCreated SystemTime=\"([^\"]+)\""),
    "channel": re.compile(r"<Channel>([^<]*)</Channel>"),
    "computer": re.compile(r"<Computer>([^<]*)</Computer>"),
}


def _system_time(text: str) -> datetime:
    """``2024-01-18 07:50:06.300360+00:00`` (python-evtx) or ``2024-01-18T07:50:06.3003601Z`` (wevtutil)."""
    text = text.strip().replace(" ", "T").replace("Z", "").replace("+00:00", "")
    whole, _, fraction = text.partition(".")
    moment = datetime.fromisoformat(whole).replace(tzinfo=timezone.utc)
    return moment + timedelta(microseconds=int((fraction + "000000")[:6]) if fraction else 0)


def _records_xml(chunks: list[str]) -> dict[tuple[str, int], Found]:
    found = {}
    for xml in chunks:
        values = {name: pattern.search(xml) for name, pattern in _FIELDS.items()}
        if not all(values.values()):
            continue
        got = {name: match.group(1) for name, match in values.items() if match}
        found[(got["channel"].lower(), int(got["record_id"]))] = Found(
            int(got["event_id"]), _system_time(got["time"]), got["channel"], got["computer"])
    return found


def _evtx_record(record: object) -> dict[tuple[str, int], Found]:
    """One python-evtx record: its XML, and the exact TimeCreated from the FILETIME itself (python-evtx's own
    datetime goes through a float and can be a microsecond or two off)."""
    from Evtx.Nodes import FiletimeTypeNode

    xml = record.xml()  # type: ignore[attr-defined]
    (found,) = _records_xml([xml]).items()
    key, value = found
    filetime = next(s for s in record.root().substitutions()  # type: ignore[attr-defined]
                    if isinstance(s, FiletimeTypeNode)).unpack_qword(0)
    exact = datetime(1601, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=filetime // 10)
    assert abs(exact - value.time) <= timedelta(microseconds=2)  # the first FILETIME is TimeCreated
    return {key: Found(value.event_id, exact, value.channel, value.computer)}


def read_independently(path: Path, wanted: set[int]) -> dict[tuple[str, int], Found]:
    """(channel, EventRecordID) → what the record says, for the ``wanted`` record ids, read with python-evtx (only
    the chunks whose header says they hold a wanted id, then every chunk if one is missing) or the XML text."""
    if path.read_bytes()[:8] != b"ElfFile\x00":
        return _records_xml(path.read_text(encoding="utf-8-sig").split("</Event>"))
    import Evtx.Evtx as evtx

    found: dict[tuple[str, int], Found] = {}
    for everything in (False, True):
        with evtx.Evtx(str(path)) as log:
            for chunk in log.get_file_header().chunks(include_inactive=True):
                try:
                    lo, hi = chunk.log_first_record_number(), chunk.log_last_record_number()
                    if not everything and not any(lo <= i <= hi for i in wanted):
                        continue
                    for record in chunk.records():
                        if everything or record.record_num() in wanted:
                            found.update(_evtx_record(record))
                except Exception:  # a torn or foreign chunk: its records cannot be proof anyway
                    continue
        if wanted <= {record_id for _, record_id in found}:
            break
    return found


def check_proofs(built: Report) -> int:
    """Assert every counted (user, window) has a proof whose records exist as stated; the number checked."""
    windows = {w.label: w for w in built.windows}
    wanted: dict[str, set[int]] = {}
    for proof in (p for u in built.users for p in u.proof):
        assert proof.record_id is not None
        wanted.setdefault(proof.file, set()).add(proof.record_id)
    records = {file: read_independently(Path(file), ids) for file, ids in wanted.items()}
    checked = 0
    for user in built.users:
        assert [p.window for p in user.proof if p.which in ("first", "only", "carried over")] == list(user.windows)
        for proof in user.proof:
            assert proof.which in ("first", "last", "only", "carried over")
            assert proof.carried_over == (proof.which == "carried over")
            window = windows[proof.window]
            counted_at = proof.placed or proof.time
            if not proof.carried_over:
                assert window.start <= counted_at < window.end, (user.key, proof)
            else:
                assert counted_at < window.start
            assert proof.local_time == proof.time and proof.local_time.utcoffset() is not None
            assert proof.record_id is not None
            found = records[proof.file][(proof.channel.lower(), proof.record_id)]
            assert (found.event_id, found.time, found.channel, found.computer) == (
                proof.event_id, proof.time, proof.channel, proof.host), (user.key, proof)
            checked += 1
        firsts = [p for p in user.proof if p.which == "first"]
        lasts = [p for p in user.proof if p.which == "last"]
        for first, last in zip(firsts, lasts, strict=True):
            assert first.window == last.window and (first.placed or first.time) <= (last.placed or last.time)
    return checked


def test_every_counted_user_window_of_sample_logs_has_a_proof() -> None:
    built, _ = run_report([SAMPLE_LOGS], ReportSettings(created_at=utc(2024, 6, 1), tz="Europe/Berlin"))
    pairs = sum(len(u.windows) for u in built.users)
    assert pairs > 10
    assert check_proofs(built) >= pairs
    alice = next(u for u in built.users if u.display_name == "CONTOSO\\alice")
    assert alice.proof[0].local_time.utcoffset() == timedelta(hours=1)  # the report's zone, winter time


def test_every_counted_user_window_of_the_shared_logs_has_a_proof(shared_evtx: Path) -> None:
    built, _ = run_report([shared_evtx], ReportSettings(created_at=utc(2024, 6, 1)))
    assert built.users
    assert check_proofs(built) >= sum(len(u.windows) for u in built.users)


@pytest.fixture(scope="module")
def fleet(new_york_fleet: Path) -> Path:
    return new_york_fleet


def test_every_counted_user_window_of_a_generated_fleet_has_a_proof(fleet: Path) -> None:
    built, _ = run_report([fleet], ReportSettings(created_at=utc(2024, 6, 1), tz="America/New_York"))
    pairs = sum(len(u.windows) for u in built.users)
    assert pairs >= 6
    assert check_proofs(built) >= pairs
    # the re-export repeats records of the Security log: the proof names the first file by path that holds them
    reexported = read_independently(fleet / "RDSH02-Security-reexport.evtx",
                                    {p.record_id or 0 for u in built.users for p in u.proof})
    in_both = [p for u in built.users for p in u.proof
               if p.channel == "Security" and (p.channel.lower(), p.record_id) in reexported
               and reexported[(p.channel.lower(), p.record_id)].computer == p.host]
    assert in_both
    assert {Path(p.file).name for p in in_both} == {"RDSH02-Security-reexport.evtx"}


@pytest.mark.parametrize("shape", ["xml", "evtx"])
def test_first_last_and_carried_over_proofs_by_hand(tmp_path: Path, shape: str) -> None:
    """alice logs on 5 January (record 1000, LSM 21 record 1000) and again on 20 January (1001), logs off on
    5 March (4634 record 1002, LSM 23 record 1002) with nothing in February: January's proof is the first and
    last evidence of January, February's the logon of the session carried over (the 20 January 4624, which the
    Security log's logon id follows as LSM's session id does), March's the logoff (only record)."""
    security = [*noise(utc(2024, 1, 1), utc(2024, 4, 1), SIX_HOURS, 1),
                Rec("4624", utc(2024, 1, 5, 9), 1000), Rec("4624", utc(2024, 1, 20, 9), 1001),
                Rec("4634", utc(2024, 3, 5, 17), 1002)]
    lsm_records = [*noise(utc(2024, 1, 1), utc(2024, 4, 1), SIX_HOURS, 1, channel=LSM_CHANNEL),
                   Rec("lsm21", utc(2024, 1, 5, 9, 0, 3), 1000, session=2), Rec("lsm23", utc(2024, 1, 5, 12), 1001,
                                                                                 session=2),
                   Rec("lsm21", utc(2024, 1, 20, 9, 0, 3), 1002), Rec("lsm23", utc(2024, 3, 5, 17), 1003)]
    paths = [write(tmp_path / "sec", security, shape), write(tmp_path / "lsm", lsm_records, shape)]
    built, _ = run_report(paths, ReportSettings(created_at=utc(2024, 6, 1)))
    (alice,) = built.users
    got = [(p.window, p.which, Path(p.file).stem, p.event_id, p.record_id, p.rule, p.time) for p in alice.proof]
    assert got == [
        ("2024-01", "first", "sec", 4624, 1000, "4624_lt10", utc(2024, 1, 5, 9)),
        ("2024-01", "last", "lsm", 21, 1002, "lsm21_ip", utc(2024, 1, 20, 9, 0, 3)),
        ("2024-02", "carried over", "lsm", 21, 1002, "lsm21_ip", utc(2024, 1, 20, 9, 0, 3)),
        ("2024-03", "only", "sec", 4634, 1002, "4634_lt10", utc(2024, 3, 5, 17)),
    ]
    assert alice.proof[2].carried_over and alice.proof[0].user == "CONTOSO\\alice [S-1-5-21-1-2-3-1105]"
    assert check_proofs(built) == 4


def test_proof_survives_json_and_csv(tmp_path: Path) -> None:
    built, _ = run_report([SAMPLE_LOGS], ReportSettings(created_at=utc(2024, 6, 1)))
    assert Report.from_dict(json.loads(json.dumps(built.to_dict()))) == built
    result = runner.invoke(app, ["report", str(SAMPLE_LOGS), "-q", "-f", "csv", "--per", "proof"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == ("\ufeffUser,Key,Window,Which,File,Host,Channel,Record ID,Event ID,Time (UTC),Time (UTC),Rule,"
                        "Account In Record,Placed At (UTC),Carried Over")
    assert len(lines) == 1 + sum(len(u.proof) for u in built.users)
    first = built.users[0].proof[0]
    assert lines[1].split(",")[2:9] == [first.window, first.which, first.file, first.host, first.channel,
                                        str(first.record_id), str(first.event_id)]


def test_old_reports_without_proof_or_hashes_still_load() -> None:
    built, _ = run_report([SAMPLE_LOGS], ReportSettings(created_at=utc(2024, 6, 1)))
    data = built.to_dict()
    for user in data["users"]:
        del user["proof"]
    for item in data["inputs"]:
        del item["size"], item["sha256"], item["ingested_at"]
    old = Report.from_dict(data)
    assert old.users[0].proof == () and old.inputs[0].sha256 is None


def test_input_hashes_match_the_files_and_the_json_is_byte_identical(tmp_path: Path) -> None:
    args = ["report", str(SAMPLE_LOGS), "-q", "-f", "json", "--created-at", "2024-06-01T00:00:00Z"]
    first = runner.invoke(app, [*args, "-j", "1"])
    second = runner.invoke(app, [*args, "-j", "2"])
    assert first.exit_code == second.exit_code == 0
    assert first.stdout_bytes == second.stdout_bytes
    inputs = json.loads(first.stdout)["inputs"]
    files = sorted(p for p in SAMPLE_LOGS.iterdir() if p.suffix == ".evtx")
    assert [Path(i["path"]).name for i in inputs] == [p.name for p in files]
    for item, path in zip(inputs, files, strict=True):
        assert item["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert item["size"] == path.stat().st_size


def test_store_inputs_name_the_ingest_and_the_hash(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite3"
    result = runner.invoke(app, ["ingest", str(SAMPLE_LOGS), "--store", str(store), "-q"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["report", "--store", str(store), "-q", "-f", "json", "--created-at", "2024-06-01"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for item in data["inputs"]:
        path = Path(item["path"])
        assert item["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert item["ingested_at"] is not None
    built = Report.from_dict(data)
    assert check_proofs(built) >= sum(len(u.windows) for u in built.users) > 10
    again = runner.invoke(app, ["report", "--store", str(store), "-q", "-f", "json", "--created-at", "2024-06-01"])
    assert again.stdout_bytes == result.stdout_bytes


def test_html_has_an_expandable_proof_per_user_and_every_input_hash() -> None:
    from evtrack.render.html import report_html

    built, _ = run_report([SAMPLE_LOGS], ReportSettings(created_at=utc(2024, 6, 1)))
    page = report_html(built)
    cells = re.findall(r'<td class="proof" data-sort="(\d+)" title="[^"]*"><details class="proof"><summary>\d+: '
                       r'(\d+) records</summary><ul>(.*?)</ul>', page)
    assert [(int(a), int(b)) for a, b, _ in cells] == [(len(u.windows), len(u.proof)) for u in built.users]
    first = built.users[0].proof[0]
    assert (f"record {first.record_id} on {first.host.split('.')[0].lower()}" in cells[0][2]
            and cells[0][2].count("<li>") == len(built.users[0].proof))
    for item in built.inputs:
        assert f"{item.size:,} bytes, SHA-256 <span class=\"mono\">{item.sha256}</span>" in page
