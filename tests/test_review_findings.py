"""A cold review of the trust fixes of 59ff4f7..9f56b99: each test is one place where a fix is wrong or regressed,
written as the behaviour an administrator should get (worked out by hand, in the docstring) and marked
xfail(strict) until it is fixed. Inputs are built in tmp_path with :mod:`evtrack.synth` (through tests/exports.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from evtrack.reading import read_inputs
from evtrack.synth import VT, EventSpec, EvtxWriter, write_xml
from evtrack.synth import azure as az
from evtrack.synth.evtx_writer import EventType, Provider

from .exports import Rec, as_spec
from .factories import utc
from .test_audit_findings import ALICE, app, cli, runner, security_log

T0 = datetime(2024, 1, 20, 9, tzinfo=timezone.utc)
#: A Sentinel / Entra ID sign-in log as the Log Analytics portal exports it: TimeGenerated and CorrelationId, as
#: every Entra ID and Azure Activity table has, and nothing else evtrack reads.
SIGNIN_LOGS_CSV = ('TimeGenerated [UTC],UserPrincipalName,AppDisplayName,ResultType,CorrelationId,IPAddress\r\n'
                   '"1/20/2024, 9:00:00.000 AM",alice@contoso.com,Windows Sign In,0,'
                   '0f1e2d3c-aaaa-bbbb-cccc-123456789012,10.0.0.1\r\n')
SCM = Provider("Service Control Manager", "{555908d1-a6d7-4695-8e1e-26931d2012f4}")
SERVICE_STATE = EventType(SCM, "System", 7036, (("param1", VT.STRING), ("param2", VT.STRING)))


def clean_log(tmp_path: Path) -> Path:
    """RDSH01's Security log, a record every 30 minutes from 2023-12-31 to 2024-04-01 00:10 UTC, alice logging on
    15 January, February and March: January to March complete, 1 user each, within 1 installed CAL, exit 0."""
    logons = [Rec("4624", utc(2024, month, 15, 9, 5), 0, sid=ALICE) for month in (1, 2, 3)]
    path, _ = security_log(tmp_path, logons, utc(2023, 12, 31), utc(2024, 4, 1, 0, 10))
    return path


def test_an_unrelated_log_analytics_export_in_the_folder_is_no_failed_input(tmp_path: Path) -> None:
    """`evtrack report FOLDER --installed 1 --check` over :func:`clean_log` exits 0 ("within", coverage complete).
    Put an Entra ID SigninLogs.csv (TimeGenerated, CorrelationId, no column of any table evtrack reads) beside it:
    before 5d11e73..b83653b it was ignored as 'not an event log' (listed with -v); it holds no RDP evidence, so by
    hand the answer is unchanged: within, complete, exit 0. Now it is a failed input ("portal CSV whose columns
    ... are none of the results evtrack reads"), the verdict is "within (lower bound)", coverage INCOMPLETE, exit 4."""
    folder = tmp_path / "logs"
    folder.mkdir()
    clean_log(folder)
    (folder / "SigninLogs.csv").write_text(SIGNIN_LOGS_CSV, encoding="utf-8")
    assert read_inputs([folder]).file_errors == ()
    code, report = cli(str(folder), "--installed", "1", "--check")
    assert (code, report["verdict"], report["coverage_complete"]) == (0, "within", True)


def test_a_damaged_log_evtrack_takes_no_evidence_from_leaves_the_verdict_alone(tmp_path: Path) -> None:
    """:func:`clean_log` alone: within, complete, exit 0. Beside it, the same host's System log (3,000 Service Control
    Manager 7036 records, 2024-01-01 onwards a minute apart), cut short inside its last chunk's records: evtrack
    rightly says the records lost (an issue, skipped > 0). But the System log holds no RDP evidence and no
    coverage of an evidence channel: by hand alice is still the only user of January to March, each month still
    fully covered by the Security log, so the answer stays within, complete, exit 0 (the lost records a file
    issue). Before b83653b that was the answer; now the 'damaged' rule makes the report a lower bound, judges
    the edge windows and exits 4."""
    folder = tmp_path / "logs"
    folder.mkdir()
    clean_log(folder)
    system = folder / "RDSH01-System.evtx"
    with EvtxWriter(system) as writer:
        for i in range(3000):
            writer.add(EventSpec(SERVICE_STATE, utc(2024, 1, 1) + timedelta(minutes=i), i + 1,
                                 "RDSH01.contoso.local", ("Windows Update", "running")))
    data = system.read_bytes()
    last = len(data) - 65_536
    free_space = int.from_bytes(data[last + 48 : last + 52], "little")
    system.write_bytes(data[: last + free_space // 2])  # inside the last chunk's records: they are lost
    read = read_inputs([system])
    assert read.skipped > 0 and read.file_errors == ()  # the damage is said
    code, report = cli(str(folder), "--installed", "1", "--check")
    assert (code, report["verdict"], report["coverage_complete"]) == (0, "within", True)
    # the same from a store and from an events dataset, which know which inputs hold an evidence channel too
    store, dataset = tmp_path / "evtrack.sqlite3", tmp_path / "events"
    assert runner.invoke(app, ["ingest", str(folder), "--store", str(store), "-q"]).exit_code == 0
    assert runner.invoke(app, ["events", str(folder), "-f", "parquet", "-o", f"{dataset}/", "-q"]).exit_code == 0
    for other in (["--store", str(store)], ["--events", str(dataset)]):
        code, built = cli(*other, "--installed", "1", "--check")
        assert (code, built["verdict"], built["coverage_complete"]) == (0, "within", True)
        assert built["notes"] == report["notes"]


def test_a_malformed_csv_row_loses_no_good_row_before_it(tmp_path: Path) -> None:
    """A SecurityEvent portal CSV of 5 sessions (15 rows: a 4624, a 4778-or-logon pair... as az.security_event_table
    writes them) followed by one row whose value is longer than the csv module's field limit (131,072 characters),
    which raises csv.Error. By hand: the 15 rows before it are whole and are read (before 5d11e73: records 15, and
    an issue 'malformed CSV from here on'); now csv_records had not yet yielded row 15 when the error came, so
    records is 14 and nothing says row 15 was lost."""
    users = [az.AzureUser(f"u{i}", "CONTOSO", f"S-1-5-21-9-9-9-{1300 + i}", f"u{i}@contoso.com") for i in range(5)]
    sessions = [az.AzureSession(u, "RDSH03.contoso.local", T0 + timedelta(hours=i),
                                T0 + timedelta(hours=i, minutes=50), session_id=2 + i) for i, u in enumerate(users)]
    data = az.portal_csv(az.security_event_table(sessions))
    whole = tmp_path / "whole.csv"
    whole.write_bytes(data)
    assert read_inputs([whole]).records == 15
    path = tmp_path / "SecurityEvent.csv"
    path.write_bytes(data + b'"' + b"x" * 140_000 + b'"\r\n')
    result = read_inputs([path])
    assert [issue.reason.startswith("malformed CSV from here on") for issue in result.issues] == [True]
    assert result.records == 15


def test_an_event_cut_short_inside_an_xml_stream_loses_only_itself(tmp_path: Path) -> None:
    """Six 4624 events (user0..user5) as one `<Events>` document; the text of the third is cut after its
    TargetUserName's start (`...user2` and everything up to the fourth event's `<Event ` removed), as when a
    `wevtutil qe >> all.xml` run was killed and the next run appended. By hand: events 1, 2, 4, 5, 6 are whole and
    read (5 records), the cut one is an issue with 1 record skipped. evtrack reads 4: the fourth event is parsed
    together with the cut third and both are lost as one."""
    recs = [Rec("4624", T0 + timedelta(hours=i), 100 + i, user=f"user{i}", sid=f"S-1-5-21-1-2-3-{1100 + i}")
            for i in range(6)]
    text = write_xml(tmp_path / "whole.xml", [as_spec(r) for r in recs], root=True).read_text(encoding="utf-8")
    cut_at = text.index("user2")
    path = tmp_path / "appended.xml"
    path.write_text(text[:cut_at] + text[text.index("<Event ", cut_at):], encoding="utf-8")
    result = read_inputs([path])
    assert (result.records, result.skipped) == (5, 1)


def test_a_bom_only_broker_poll_is_a_poll_that_saw_no_session(tmp_path: Path) -> None:
    """Two polls of RDCB01 named as evtrack poll names them: one of 0 bytes, one of the 3 bytes EF BB BF (what
    PowerShell 5.1 writes with `Out-File -Encoding utf8` / `Set-Content -Encoding UTF8` of nothing). The reader
    reads the empty one (and one of only blanks or newlines) as a poll that listed no session: 1 record. The
    BOM-only one holds the same nothing, so by hand: 2 files read, 1 record each, no failed input. Before
    a922448 it was ignored as 'not an event log' (a poll lost without a word); now it is a failed input 'without the
    columns it needs (UserName, ...)', which makes every report a lower bound and --strict fail."""
    empty = tmp_path / "rdusersession_RDCB01_20240120T120000Z.csv"
    empty.write_bytes(b"")
    bom = tmp_path / "rdusersession_RDCB01_20240120T121500Z.csv"
    bom.write_bytes(b"\xef\xbb\xbf")
    result = read_inputs([tmp_path])
    assert [(stats.path.name, stats.records) for stats in sorted(result.files, key=lambda s: s.path.name)] == [
        (empty.name, 1), (bom.name, 1)]
    assert result.file_errors == ()
