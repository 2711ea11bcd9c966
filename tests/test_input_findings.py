"""Input audit (an MSP feeding evtrack real-world damage): each test is one defect found, written as the behaviour an
administrator should get, and marked xfail(strict) until it is fixed. Inputs are built in tmp_path with
:mod:`evtrack.synth` (or cut from what it writes); the reproduction with the CLI is in each docstring."""

from __future__ import annotations

import codecs
import csv
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from evtrack.pipeline import run_report
from evtrack.reading import read_inputs
from evtrack.sources.base import CUT_INSIDE_QUOTES, FILE_HEADER_SIZE, ReadPlan
from evtrack.synth import azure as az
from evtrack.synth import write_xml
from evtrack.synth.snapshots import SnapshotSession, broker_csv_text, encode_snapshot
from evtrack.usage import ReportSettings

from .exports import Rec, as_spec, export

ENGINES = ("evtx", "python-evtx")
#: 20 January: a day above 12, so the portal's m/d/y dates decide their own order (no --culture needed).
T0 = datetime(2024, 1, 20, 9, tzinfo=timezone.utc)
UTC_PLAN = ReadPlan(local_zone=timezone.utc)


def _logons(count: int, host: str = "RDSH01.contoso.local") -> list[Rec]:
    """``count`` RDP logons (4624 type 10) by distinct users, an hour apart, record ids 100, 101, ..."""
    return [Rec("4624", T0 + timedelta(hours=i), 100 + i, host=host, user=f"user{i}",
                sid=f"S-1-5-21-1-2-3-{1100 + i}") for i in range(count)]


def _sessions(count: int, wvd: bool = False) -> list[az.AzureSession]:
    users = [az.AzureUser(f"u{i}", "CONTOSO", f"S-1-5-21-9-9-9-{1300 + i}", f"u{i}@contoso.com")
             for i in range(count)]
    return [az.AzureSession(u, "RDSH03.contoso.local", T0 + timedelta(hours=i),
                            T0 + timedelta(hours=i, minutes=50), session_id=2 + i, wvd=wvd)
            for i, u in enumerate(users)]


def _row_start_lines(text: str) -> list[int]:
    """The line each CSV record (header included) starts on."""
    reader = csv.reader(io.StringIO(text, newline=""))
    starts, line = [], 1
    for _record in reader:
        starts.append(line)
        line = reader.line_num + 1
    return starts


# -- cut CSV exports: the csv module returns an unterminated quoted value at the end of the file without a word ---


def test_a_security_event_csv_cut_inside_its_event_data_is_said(tmp_path: Path) -> None:
    """`head -c 3944 SecurityEvent.csv > cut.csv; evtrack report cut.csv coverage.csv` reads 6 of 15 rows with
    "0 skipped" and no issue; with the coverage export the one-day window is *complete* with 2 users instead of 5
    and an OVER BY 2 verdict becomes WITHIN."""
    data = az.portal_csv(az.security_event_table(_sessions(5)))
    text = data.decode("utf-8-sig")
    last_row_line = _row_start_lines(text)[-1]
    cut = tmp_path / "SecurityEvent.csv"
    cut.write_bytes(data[: data.rindex(b"<Data Name=")])  # inside the last row's EventData
    result = read_inputs([cut])
    assert result.file_errors == ()
    assert [(issue.where, issue.reason, issue.skipped) for issue in result.issues if issue.path == cut] == [
        (f"line {last_row_line}", f"{CUT_INSIDE_QUOTES}: row skipped", 1)]
    report, _ = run_report([cut], ReportSettings(installed=5))
    assert report.lower_bound and report.verdict == "within (lower bound)"  # a row lost: never a clean "within"


def test_a_broker_csv_cut_inside_its_last_value_is_said(tmp_path: Path) -> None:
    """`head -c 880 rdusersession_RDCB01.contoso.local_20240109T120000Z.csv` (892 bytes, written by `evtrack sample
    --sources broker`): records 4 instead of 3, no issue, a coverage row for host 'RDCB01.cont'; cut inside the
    first row's last value (`head -c 630`), the second row's session vanishes without a word."""
    polled = datetime(2024, 1, 20, 12, tzinfo=timezone.utc)
    sessions = [SnapshotSession(name, "CONTOSO", "RDSH01.contoso.local", 8 + i, "active", T0 + timedelta(hours=i))
                for i, name in enumerate(("bob", "carol"))]
    data = encode_snapshot(broker_csv_text(polled, "RDCB01.contoso.local", sessions, broker_column=True),
                           "ascii", bom=False)
    cut = tmp_path / "rdusersession_RDCB01.contoso.local_20240120T120000Z.csv"
    cut.write_bytes(data[: data.rindex(b".local") - 3])  # inside the last row's "RDCB01.contoso.local"
    result = read_inputs([cut], plan=UTC_PLAN)
    assert result.file_errors == ()
    assert [(issue.where, issue.reason, issue.skipped) for issue in result.issues if issue.path == cut] == [
        ("line 4", CUT_INSIDE_QUOTES, 1)]
    assert "RDCB01.cont" not in {span.host for span in result.coverage}


# -- a whole file's good records dropped for damage elsewhere ----------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_an_evtx_cut_in_the_unused_end_of_its_last_chunk_keeps_every_record(tmp_path: Path, engine: str) -> None:
    """`head -c 133022 RDGW01-Gateway.evtx` (135,168 bytes; chunk 1's records end at byte 34,232 of the chunk):
    "chunk 1: truncated chunk (63,390 of 65,536 bytes)", 57 of 170 records skipped and one of four users gone, with
    both engines alike."""
    whole = export(tmp_path / "whole", _logons(10), "evtx").read_bytes()
    chunk = whole[FILE_HEADER_SIZE:]
    free_space = int.from_bytes(chunk[48:52], "little")  # the end of the records (libevtx: chunk header)
    assert free_space < 20_000
    cut = tmp_path / "RDSH01-Security.evtx"
    cut.write_bytes(whole[: FILE_HEADER_SIZE + free_space + 10_000])
    result = read_inputs([cut], engine=engine)
    assert (result.records, result.skipped) == (10, 0)


@pytest.mark.parametrize("root", [False, True], ids=["wevtutil", "event-viewer"])
@pytest.mark.parametrize("damage", [">R&D user4<", ">user4&#x1;<"], ids=["bare-ampersand", "control-char"])
def test_one_malformed_event_in_an_xml_export_keeps_the_events_after_it(tmp_path: Path, root: bool,
                                                                        damage: str) -> None:
    """An export of 10 logons whose 5th has an unescaped `&` in TargetUserName: "records: 4 read, 0 skipped", the
    issue "file: malformed XML: not well-formed (invalid token): line 1, column 7433" and 5 good users missing. A
    control character in a value as a character reference (`&#x1;`, which XML 1.0 forbids; that an export carries
    one is not verified against a real wevtutil export) does the same: "reference to invalid character number"."""
    path = write_xml(tmp_path / "Security.xml", [as_spec(rec) for rec in _logons(10)], root=root)
    text = path.read_text(encoding="utf-8")
    broken = text.replace(">user4<", damage)
    assert broken.count("&") == 1
    path.write_text(broken, encoding="utf-8")
    result = read_inputs([path])
    assert (result.records, result.skipped) == (9, 1)
    (issue,) = result.issues
    assert issue.where == "event 5" and issue.reason.startswith("malformed XML: ") and issue.reason.endswith(
        ": event skipped")


# -- exports missing a column are ignored in a folder scan, with no word of which column ------------------------


def test_a_broker_csv_without_a_required_column_is_a_failed_input_naming_it(tmp_path: Path) -> None:
    """`evtrack report FOLDER` with such a poll beside a good log: "1 read, 0 failed, 1 ignored (not event logs)";
    named directly: "ignored: ...: not an event log (starts with b'#TYPE Microsoft.')"."""
    polled = datetime(2024, 1, 20, 12, tzinfo=timezone.utc)
    sessions = [SnapshotSession("bob", "CONTOSO", "RDSH01.contoso.local", 8, "active", T0)]
    rows = list(csv.reader(io.StringIO(broker_csv_text(polled, "RDCB01.contoso.local", sessions), newline="")))
    type_line, header, values = rows
    drop = header.index("UserName")
    poll = tmp_path / "rdusersession_RDCB01.contoso.local_20240120T120000Z.csv"
    poll.write_text("\r\n".join([type_line[0]] + [",".join(f'"{v}"' for i, v in enumerate(r) if i != drop)
                                                  for r in (header, values)]) + "\r\n", encoding="ascii")
    export(tmp_path / "RDSH01-Security", _logons(2), "evtx")
    result = read_inputs([tmp_path], plan=UTC_PLAN)
    assert result.ignored == ()
    assert [(issue.path, "UserName" in issue.reason) for issue in result.file_errors] == [(poll, True)]


@pytest.mark.parametrize(("table", "column"), [("security", "Computer"), ("wvd", "State")])
def test_an_azure_export_without_a_required_column_is_a_failed_input_naming_it(tmp_path: Path, table: str,
                                                                               column: str) -> None:
    """Named directly it fails with "not an event log (starts with b'\\xef\\xbb\\xbfTimeGenerated')", where a
    WVDConnections export without UserName gets "a WVDConnections export without the column UserName"."""
    sessions = _sessions(3, wvd=True)
    made = az.security_event_table(sessions) if table == "security" else az.wvd_table(sessions)
    drop = [name for name, _kind in made.columns].index(column)
    made.columns = tuple(c for i, c in enumerate(made.columns) if i != drop)
    made.rows = [tuple(v for i, v in enumerate(row) if i != drop) for row in made.rows]
    bad = tmp_path / f"{table}.csv"
    bad.write_bytes(az.portal_csv(made))
    export(tmp_path / "RDSH01-Security", _logons(2), "evtx")
    result = read_inputs([tmp_path])
    assert result.ignored == ()
    assert [(issue.path, column in issue.reason) for issue in result.file_errors] == [(bad, True)]


# -- issues that say the wrong thing -----------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_a_chunk_with_a_damaged_header_counts_the_records_it_held(tmp_path: Path, engine: str) -> None:
    """A sample Security.evtx with chunk 4's magic overwritten: "records: 623 read, 0 skipped" (724 before)."""
    log = export(tmp_path / "whole", _logons(400), "evtx")
    data = bytearray(log.read_bytes())
    chunks = (len(data) - FILE_HEADER_SIZE) // 65_536
    assert chunks >= 3
    at = FILE_HEADER_SIZE + 65_536
    first, last = (int.from_bytes(data[at + o : at + o + 8], "little") for o in (8, 16))
    data[at : at + 8] = b"XXXXXXXX"
    damaged = tmp_path / "RDSH01-Security.evtx"
    damaged.write_bytes(bytes(data))
    result = read_inputs([damaged], engine=engine)
    assert result.records == 400 - (last - first + 1)
    assert [(issue.where, issue.skipped) for issue in result.issues] == [("chunk 1", last - first + 1)]


def test_a_utf16_xml_export_cut_mid_character_names_where(tmp_path: Path) -> None:
    """`wevtutil qe Security /f:xml > Security.xml` in Windows PowerShell 5.1 writes UTF-16 LE with a BOM; cut at
    an odd length: "file: not utf-16 text: truncated data at byte 0"."""
    text = write_xml(tmp_path / "utf8.xml", [as_spec(rec) for rec in _logons(10)]).read_text(encoding="utf-8")
    data = codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    cut = tmp_path / "Security.xml"
    size = (len(data) // 2) | 1
    cut.write_bytes(data[:size])
    result = read_inputs([cut])
    reasons = [issue.reason for issue in result.issues]
    assert len(reasons) == 1 and "at byte 0" not in reasons[0]
    assert str(size - 1) in reasons[0].replace(",", "")


def test_a_query_user_poll_that_failed_is_a_failed_input(tmp_path: Path) -> None:
    """`quser /server:RDSH01 > quser_RDSH01_20240120T120000Z.txt 2>&1` on a host that refuses it: "1 ignored (not
    event logs, -v lists them)"; with -v "not an event log (starts with b'Error [5]:Access')". A `.evtx` that is no
    log is a failed input (evtrack.reading.detect_kind); a file named as a poll should be one too."""
    poll = tmp_path / "quser_RDSH01_20240120T120000Z.txt"
    poll.write_bytes(b"Error [5]:Access is denied.\r\n")
    export(tmp_path / "RDSH01-Security", _logons(2), "evtx")
    result = read_inputs([tmp_path])
    assert result.ignored == ()
    assert [(issue.path, "Access is denied" in issue.reason) for issue in result.file_errors] == [(poll, True)]


def test_a_malformed_event_then_a_cut_end_reads_every_whole_event_between(tmp_path: Path) -> None:
    """The same export of 10 logons, the 5th with a bare `&`, and the file cut in the middle of the 9th event. By
    hand: events 1-4 (before the damage) and 6-8 (whole, read one by one) are read: 7 records; the 5th and the 9th
    are lost (2 skipped), each said once; the 10th never reached the file."""
    path = write_xml(tmp_path / "Security.xml", [as_spec(rec) for rec in _logons(10)], root=False)
    text = path.read_text(encoding="utf-8").replace(">user4<", ">R&D user4<")
    ninth = text.index(">user8<")
    path.write_text(text[:ninth], encoding="utf-8")
    result = read_inputs([path])
    assert (result.records, result.skipped) == (7, 2)
    assert [(issue.where, issue.skipped) for issue in result.issues] == [("event 5", 1), ("file", 1)]
    assert result.issues[1].reason == "the file ends inside an event: cut short; that event is lost"


def test_a_poll_named_file_whose_header_holds_nul_bytes_is_a_failed_input(tmp_path: Path) -> None:
    """A file named as a Get-RDUserSession poll whose header line holds NUL bytes (a crash zeroed it): no header
    holds NUL bytes, so it is a failed input that names the columns a poll needs, never a traceback (Python
    3.10's csv refuses NUL bytes)."""
    poll = tmp_path / "rdusersession_RDCB01.contoso.local_20240120T120000Z.csv"
    poll.write_bytes(b'"UserName","Session\x00\x00","SessionState"\r\n"bob","3","STATE_ACTIVE"\r\n')
    result = read_inputs([tmp_path], plan=UTC_PLAN)
    assert [issue.path for issue in result.file_errors] == [poll]
    assert "a Get-RDUserSession export without the columns it needs (UserName, " in result.file_errors[0].reason
