"""A cold review of the new evidence sources (issue 14): hand-made inputs that try to make an estimate err
*invisibly* -- a wrong count, a wrong exit 0 from ``report --check``, a silently dropped input or row, a misleading
message. Each docstring works its answer out by hand.

Each finding's test failed when it was written (the product got it wrong) and passes since its fix; the tests
named ``test_held_...`` pin down what held under attack.

Times: 2025-12-01T00:00:00Z starts the logs of most tests; a log's coverage is its first..last record, so a
Security export with a record at 2025-12-01 00:00 and one at 2026-03-01 00:00 covers December to February, and the
60 days before any as-of date in February.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evtrack.cli import app

from .conftest import logon_4624, write_events

runner = CliRunner()

BOM = "\ufeff"
DEC1 = datetime(2025, 12, 1, tzinfo=timezone.utc)
BROKER_HEADER = ('"ServerName","SessionId","UserName","DomainName","CreateTime","SessionState","HostServer",'
                 '"PolledAt","ConnectionBroker"\r\n')


def report(*args: object) -> tuple[int, dict[str, Any]]:
    """``evtrack report ARGS -f json --jobs 1``: (exit code, the JSON report)."""
    result = runner.invoke(app, ["report", *(str(a) for a in args), "-f", "json", "--jobs", "1"])
    assert result.stdout.strip().startswith("{"), result.output
    return result.exit_code, json.loads(result.stdout)


def windows(built: dict[str, Any]) -> list[tuple[str, int | None, str]]:
    return [(w["label"], w["users"], w["status"]) for w in built["windows"]]


def security_log(path: Path, host: str, *events: str) -> Path:
    """A ``wevtutil qe Security /f:xml`` export of ``host``: a network logon (noise, never evidence) at
    2025-12-01 00:00 and at 2026-03-01 00:00 -- coverage of December to February -- around ``events``."""
    return write_events(
        path,
        logon_4624(3, user="svc", computer=host, time="2025-12-01T00:00:00.0000000Z", record_id=1),
        *events,
        logon_4624(3, user="svc", computer=host, time="2026-03-01T00:00:00.0000000Z", record_id=99),
        root=True,
    )


def hourly_coverage(computer: str, channel: str, start: datetime, hours: int, records: int = 50) -> str:
    """The portal CSV of docs/azure.md's coverage query (en-US, UTC): one row per hour from ``start``. Generated
    rather than written out: 2,160 rows of the same shape, each saying ``computer`` delivered ``records`` events
    of ``channel`` in that hour."""
    lines = [f"{BOM}Computer,Channel,TimeGenerated [UTC],Records"]
    for hour in range(hours):
        t = start + timedelta(hours=hour)
        twelve = (t.hour % 12) or 12
        lines.append(f'{computer},{channel},"{t.month}/{t.day}/{t.year}, {twelve}:00:00.000 '
                     f'{"AM" if t.hour < 12 else "PM"}",{records}')
    return "\r\n".join(lines) + "\r\n"


# -- findings -------------------------------------------------------------------------------------------------------


def test_one_broker_poll_must_not_turn_an_over_count_into_within(tmp_path: Path) -> None:
    """RDSH01's Security log covers 1 December to 1 March: carol signs in on 25 January, alice and erin on
    10 February. Logs alone: on 10 February the licence-server view holds carol, alice, erin = 3 > 2 installed:
    *over by 1*, exit 3 (checked below).

    Add the one poll a Connection Broker wrote on 20 January 10:00Z: bob, on RDSH03 since 09:55. On 10 February
    the view then holds bob (20 January), carol, alice, erin = 4: over by 2, exit 3. (January rests on the poll,
    so the report is also a lower bound -- but an over count that is already above stays above.)

    Got: the as-of date becomes 2026-01-20T10:00Z (the broker's only poll is a "host" whose coverage ends there),
    the peak is only computed up to it (1: bob), and the verdict is "within (lower bound)", exit 4 -- more evidence
    made the verdict *lower*. (The same happens with logs only when one host's export ends early: the exact peak
    is never computed past the as-of date.)"""
    logs = security_log(
        tmp_path / "RDSH01-Security.xml", "RDSH01.contoso.local",
        logon_4624(10, user="carol", sid="S-1-5-21-1-2-3-1201", time="2026-01-25T09:00:00.0000000Z", record_id=2),
        logon_4624(10, user="alice", sid="S-1-5-21-1-2-3-1202", time="2026-02-10T09:00:00.0000000Z", record_id=3),
        logon_4624(10, user="erin", sid="S-1-5-21-1-2-3-1203", time="2026-02-10T10:00:00.0000000Z", record_id=4))
    code, alone = report(logs, "--installed", "2", "--check")
    assert (code, alone["verdict"], alone["peak_estimated"]) == (3, "over by 1", 3)

    (tmp_path / "rdusersession_rdcb01_20260120T100000Z.csv").write_text(BROKER_HEADER + (
        '"RDSH03.contoso.local","2","bob","CONTOSO","1/20/2026 9:55:00 AM","STATE_ACTIVE","RDSH03.contoso.local",'
        '"2026-01-20T10:00:00Z","rdcb01.contoso.local"\r\n'), encoding="utf-8")
    code, both = report(tmp_path, "--installed", "2", "--check", "--input-tz", "UTC", "--culture", "en-US")
    assert both["as_of"] != "2026-01-20T10:00:00Z"
    assert (code, both["verdict"]) == (3, "over by 2")


@pytest.mark.parametrize("broken", ["name-error", "malformed"])
def test_azure_rows_that_could_not_be_read_make_the_estimate_a_lower_bound(tmp_path: Path, broken: str) -> None:
    """The coverage export says RDSH01's Security log reached the workspace every hour from 1 December to
    1 March (2,160 hours, 50 events each). The SecurityEvent export holds three 4624 type 10: alice on
    14 January, bob on 20 January, carol on 21 January -- but bob's row is damaged:

    * ``name-error``: Excel re-saved the file and bob's TargetUserName became ``#NAME?``: bob's row is skipped
      (said, 1 skipped); alice and carol are read;
    * ``malformed``: bob's EventData lost its closing quote (``"<EventData>`` never closed): the CSV reader takes
      the rest of the file, carol's row included, as bob's field: "not as many fields as the header has columns:
      row skipped" -- bob and carol both lost, alice read.

    Installed: 2. Really 3 users (over by 1). The report cannot know bob's (or carol's) name, but it knows rows
    proving RDP logons were lost while the coverage export calls every hour covered. A .evtx that lost records
    this way has a hole there (partial). Expected: at least a lower bound, exit 4 -- never a clean "within".
    Got: "within", coverage complete, exit 0."""
    (tmp_path / "coverage.csv").write_text(
        hourly_coverage("RDSH01.contoso.local", "Security", DEC1, 90 * 24), encoding="utf-8")
    header = (f'{BOM}"TimeGenerated [UTC]",Computer,EventID,TargetUserName,TargetDomainName,LogonType,IpAddress,'
              'EventData\r\n')
    alice = '"1/14/2026, 9:05:33.000 AM",RDSH01.contoso.local,4624,alice,CONTOSO,10,"10.1.2.3",\r\n'
    if broken == "name-error":
        bob = '"1/20/2026, 9:06:00.000 AM",RDSH01.contoso.local,4624,#NAME?,CONTOSO,10,"10.1.2.4",\r\n'
    else:
        bob = ('"1/20/2026, 9:06:00.000 AM",RDSH01.contoso.local,4624,bob,CONTOSO,10,"10.1.2.4","<EventData>\r\n'
               '  <Data Name=""TargetUserName"">bob</Data>\r\n')
    carol = '"1/21/2026, 9:06:00.000 AM",RDSH01.contoso.local,4624,carol,CONTOSO,10,"10.1.2.5",\r\n'
    (tmp_path / "SecurityEvent.csv").write_text(header + alice + bob + carol, encoding="utf-8")
    code, built = report(tmp_path, "--installed", "2", "--check")
    assert [u["display_name"] for u in built["users"]] == (
        ["CONTOSO\\alice", "CONTOSO\\carol"] if broken == "name-error" else ["CONTOSO\\alice"])
    assert (code, built["verdict"], built["lower_bound"]) == (4, "within (lower bound)", True)


def test_azure_evidence_without_a_coverage_export_is_never_complete(tmp_path: Path) -> None:
    """RDSH01's Security log covers 1 December to 1 March (nobody signs in). RDSH02 is known only from a
    SecurityEvent portal export with bob's 4624 type 10 on 20 January -- and no coverage export. docs/azure.md: "A
    month without coverage rows is unknown, not 0 users"; the export may hold one day of RDSH02's January (its
    range is not in the file). January: 1 user (bob), but RDSH02 is not covered: partial, within (lower bound),
    exit 4. Got: January "complete" (hosts_complete = [rdsh01]), "within", exit 0."""
    security_log(tmp_path / "RDSH01-Security.xml", "RDSH01.contoso.local")
    (tmp_path / "SecurityEvent.csv").write_text(
        f'{BOM}"TimeGenerated [UTC]",Computer,EventID,TargetUserName,TargetDomainName,LogonType,IpAddress\r\n'
        '"1/20/2026, 9:06:00.000 AM",RDSH02.contoso.local,4624,bob,CONTOSO,10,"10.1.2.4"\r\n', encoding="utf-8")
    code, built = report(tmp_path, "--installed", "2", "--check")
    january = next(w for w in built["windows"] if w["label"] == "2026-01")
    assert january["users"] == 1
    assert january["status"] == "partial"
    assert code == 4


def test_a_session_host_known_only_from_query_user_polls_is_not_covered_by_other_hosts_logs(tmp_path: Path) -> None:
    """RDSH02's Security log covers 1 December to 1 March (alice on 10 January). RDSH01 has no logs: it is known
    only from three ``query user /server:RDSH01`` polls on 1 January 00:00, 00:15, 00:30 that found nobody
    ("No User exists for *"). Who used RDSH01 in December, the rest of January and February is not known (polls
    cover 30 minutes; a host with only a System log would make these windows partial). Expected: a lower bound,
    exit 4. Got: December to February "complete" (hosts_complete = [rdsh02]), "within", exit 0."""
    security_log(tmp_path / "RDSH02-Security.xml", "RDSH02.contoso.local",
                 logon_4624(10, user="alice", computer="RDSH02.contoso.local",
                            time="2026-01-10T09:00:00.0000000Z", record_id=2))
    for stamp in ("20260101T000000Z", "20260101T001500Z", "20260101T003000Z"):
        (tmp_path / f"quser_RDSH01_{stamp}.txt").write_text("No User exists for *\r\n", encoding="utf-8")
    code, built = report(tmp_path, "--installed", "1", "--check")
    assert windows(built)[:3] == [("2025-12", 0, "partial"), ("2026-01", 1, "partial"), ("2026-02", 0, "partial")]
    assert code == 4


def test_a_host_the_broker_listed_has_no_coverage_in_a_later_period(tmp_path: Path) -> None:
    """RDSH01's Security log covers 1 December to 1 March (alice on 10 February). Two broker polls on 20 January
    (10:00Z, 10:15Z) list bob on RDSH03 (no logs). ``--from 2026-02-01 --to 2026-02-28``: February's users are
    alice (1), but RDSH03 is a session host whose February nobody recorded, and the estimate as of 28 February
    (2: alice, and bob's 20 January sign-in) rests, for RDSH03, on two polls 15 minutes apart. Expected: within
    (lower bound), exit 4. Got: February "complete", "within", exit 0."""
    security_log(tmp_path / "RDSH01-Security.xml", "RDSH01.contoso.local",
                 logon_4624(10, user="alice", time="2026-02-10T09:00:00.0000000Z", record_id=2))
    for stamp, polled in (("20260120T100000Z", "2026-01-20T10:00:00Z"), ("20260120T101500Z", "2026-01-20T10:15:00Z")):
        (tmp_path / f"rdusersession_rdcb01_{stamp}.csv").write_text(BROKER_HEADER + (
            '"RDSH03.contoso.local","2","bob","CONTOSO","1/20/2026 9:55:00 AM","STATE_ACTIVE",'
            f'"RDSH03.contoso.local","{polled}","rdcb01.contoso.local"\r\n'), encoding="utf-8")
    code, built = report(tmp_path, "--installed", "2", "--check", "--input-tz", "UTC", "--culture", "en-US",
                         "--from", "2026-02-01", "--to", "2026-02-28")
    assert built["estimated"] == 2
    assert (code, built["verdict"]) == (4, "within (lower bound)")


def test_a_snapshot_that_failed_at_ingest_still_makes_the_store_report_a_lower_bound(tmp_path: Path) -> None:
    """A Connection Broker export (en-US machine) lists alice on RDSH01 at two polls, 20 February 10:00Z and 10:15Z;
    every date in it (``1/2/2026 9:00:00 AM``: 2 January or 1 February, both before the polls) reads either way
    and nothing decides the order, so without --culture it is refused (rightly). RDSH02's SecurityEvent export
    with bob (14 January) and its coverage
    export (1 December to 1 March) are ingested fine. ``evtrack ingest`` (no --culture) then ``report --store
    --check --installed 2``.

    From the files, ``report FOLDER`` says 1 input could not be read: bob counted (1 <= 2), lower bound, exit 4
    (checked below). From
    the store, the same inputs must say the same (or ingest must fail). Was: ingest exit 0, and the store's report
    "within" with complete windows, exit 0 -- alice's RDS use gone without a trace. Fixed (schema 4): the store
    remembers inputs that failed at ingest (``failed_files``) and its report counts them, as the files' does."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "rdusersession_rdcb01_all.csv").write_text(BROKER_HEADER + (
        '"RDSH01.contoso.local","2","alice","CONTOSO","1/2/2026 9:00:00 AM","STATE_DISCONNECTED",'
        '"RDSH01.contoso.local","2026-02-20T10:00:00Z","rdcb01"\r\n'
        '"RDSH01.contoso.local","2","alice","CONTOSO","1/2/2026 9:00:00 AM","STATE_DISCONNECTED",'
        '"RDSH01.contoso.local","2026-02-20T10:15:00Z","rdcb01"\r\n'), encoding="utf-8")
    (inputs / "coverage.csv").write_text(
        hourly_coverage("RDSH02.contoso.local", "Security", DEC1, 90 * 24), encoding="utf-8")
    (inputs / "SecurityEvent.csv").write_text(
        f'{BOM}"TimeGenerated [UTC]",Computer,EventID,TargetUserName,TargetDomainName,LogonType,IpAddress\r\n'
        '"1/14/2026, 9:05:33.000 AM",RDSH02.contoso.local,4624,bob,CONTOSO,10,"10.1.2.3"\r\n', encoding="utf-8")
    code, from_files = report(inputs, "--installed", "2", "--check")
    assert code == 4 and any(i["error"] for i in from_files["inputs"])

    store = tmp_path / "store.sqlite3"
    ingested = runner.invoke(app, ["ingest", str(inputs), "--store", str(store), "--jobs", "1", "-q"])
    code, from_store = report("--store", store, "--installed", "2", "--check")
    assert ingested.exit_code != 0 or code == 4
    # fixed: ingest exits 0 as before (two files stored), and the store remembers the failure, so its report is
    # the files' lower bound and names the same failed input
    assert (ingested.exit_code, code, from_store["verdict"]) == (0, 4, "within (lower bound)")
    failed = [(i["path"], i["error"]) for i in from_files["inputs"] if i["error"]]
    assert [(i["path"], i["error"]) for i in from_store["inputs"] if i["error"]] == failed


def test_events_can_read_snapshots(tmp_path: Path) -> None:
    """One broker poll (20 January 10:00Z, bob on RDSH03 since 09:55, en-US) and one query user poll of RDSH01
    (alice, Active since 14/01/2026 09:05, en-GB: 14 > 12 decides). ``evtrack events FOLDER`` must list their
    rows (the issue: "evtrack events and the store carry every source"), given the zone: ``--input-tz UTC``.
    Got: ``--input-tz`` is "No such option" (exit 2); without it both files fail with "set ... --input-tz"."""
    (tmp_path / "rdusersession_rdcb01_20260120T100000Z.csv").write_text(BROKER_HEADER + (
        '"RDSH03.contoso.local","2","bob","CONTOSO","1/20/2026 9:55:00 AM","STATE_ACTIVE","RDSH03.contoso.local",'
        '"2026-01-20T10:00:00Z","rdcb01.contoso.local"\r\n'), encoding="utf-8")
    (tmp_path / "quser_RDSH01_20260120T100000Z.txt").write_text(
        " USERNAME              SESSIONNAME        ID  STATE   IDLE TIME  LOGON TIME\r\n"
        ">alice                 rdp-tcp#3           2  Active          .  14/01/2026 09:05\r\n", encoding="utf-8")
    result = runner.invoke(app, ["events", str(tmp_path), "--jobs", "1", "-q", "--input-tz", "UTC"])
    assert result.exit_code == 0, result.output
    assert "bob" in result.stdout and "alice" in result.stdout


def test_portal_csv_dotted_dates_are_day_first_whatever_the_culture(tmp_path: Path) -> None:
    """One ``[inputs] culture`` serves every input: the brokers are en-US machines (``--culture en-US``), but the
    admin who exported SecurityEvent from the portal browses in German: ``05.01.2026, 09:05:33.123``. Every
    culture that writes dates with dots puts the day first (the rule the snapshot readers follow since f0d5bf6):
    5 January. Got: 1 May -- alice counted in May, January empty."""
    (tmp_path / "SecurityEvent.csv").write_text(
        f'{BOM}"TimeGenerated [UTC]",Computer,EventID,TargetUserName,TargetDomainName,LogonType,IpAddress\r\n'
        '"05.01.2026, 09:05:33.123",RDSH01.contoso.local,4624,alice,CONTOSO,10,"10.1.2.3"\r\n', encoding="utf-8")
    _, built = report(tmp_path, "--culture", "en-US")
    assert [(u["display_name"], u["windows"]) for u in built["users"]] == [("CONTOSO\\alice", ["2026-01"])]


def test_hourly_azure_coverage_is_one_interval_not_two_thousand_holes(tmp_path: Path) -> None:
    """RDSH01's coverage export: every hour from 1 December to 1 March, 50 events each, no hour missing. Its
    coverage is one interval, 2025-12-01T00:00Z to 2026-03-01T00:00Z, with no hole. Got: 2,160 intervals; the
    table output lists the host with "Holes 2159" (and Records 0)."""
    (tmp_path / "coverage.csv").write_text(
        hourly_coverage("RDSH01.contoso.local", "Security", DEC1, 90 * 24), encoding="utf-8")
    (tmp_path / "SecurityEvent.csv").write_text(
        f'{BOM}"TimeGenerated [UTC]",Computer,EventID,TargetUserName,TargetDomainName,LogonType,IpAddress\r\n'
        '"1/14/2026, 9:05:33.000 AM",RDSH01.contoso.local,4624,alice,CONTOSO,10,"10.1.2.3"\r\n', encoding="utf-8")
    _, built = report(tmp_path)
    (coverage,) = built["coverage"]
    assert len(coverage["intervals"]) == 1


def test_a_create_time_after_its_poll_is_reported(tmp_path: Path) -> None:
    """A poll at 31 January 10:00Z lists bob with CreateTime ``2/14/2026 9:00:00 AM`` (the 14 decides month first:
    14 February) -- a session cannot start two weeks after the poll that lists it (a wrong clock, or a wrong
    --input-tz). Expected: an issue on the row (and not a February sign-in that renews bob's CAL to 15 April).
    Got: no issue; bob is counted in February from a January poll."""
    (tmp_path / "rdusersession_rdcb01_20260131T100000Z.csv").write_text(BROKER_HEADER + (
        '"RDSH03.contoso.local","2","bob","CONTOSO","2/14/2026 9:00:00 AM","STATE_ACTIVE","RDSH03.contoso.local",'
        '"2026-01-31T10:00:00Z","rdcb01.contoso.local"\r\n'), encoding="utf-8")
    _, built = report(tmp_path, "--input-tz", "UTC")
    (broker,) = built["inputs"]
    assert broker["issues"], "CreateTime after PolledAt was accepted silently"
    assert built["users"][0]["windows"] == ["2026-01"]


def test_a_polled_at_without_a_zone_is_said(tmp_path: Path) -> None:
    """An admin's own script wrote ``PolledAt`` with ``Get-Date -Format s`` on a New York broker:
    ``2026-01-31T20:30:00``
    (local: 2026-02-01T01:30Z), and CreateTime ``1/31/2026 8:25:00 PM`` (local, read with --input-tz
    America/New_York: 2026-02-01T01:25Z). The docs require ISO 8601 *UTC*; a time without Z or offset is not that.
    Expected: an issue saying what was assumed. Got: read as 20:30Z on 31 January without a word -- five hours
    *before* the session it lists began, and in the wrong month."""
    (tmp_path / "rdusersession_rdcb01.csv").write_text(BROKER_HEADER + (
        '"RDSH03.contoso.local","2","bob","CONTOSO","1/31/2026 8:25:00 PM","STATE_ACTIVE","RDSH03.contoso.local",'
        '"2026-01-31T20:30:00","rdcb01.contoso.local"\r\n'), encoding="utf-8")
    _, built = report(tmp_path, "--input-tz", "America/New_York", "--culture", "en-US")
    (broker,) = built["inputs"]
    assert any("PolledAt" in issue for issue in broker["issues"])


def test_the_table_counts_inputs_per_kind(tmp_path: Path) -> None:
    """A folder with one broker poll and one SecurityEvent portal export, no .evtx at all. The table's inputs line
    must say what was read per kind (1 broker-csv, 1 azure). Got: "Inputs: 2 files read (evtx), 0 failed"."""
    (tmp_path / "rdusersession_rdcb01_20260120T100000Z.csv").write_text(BROKER_HEADER + (
        '"RDSH03.contoso.local","2","bob","CONTOSO","1/20/2026 9:55:00 AM","STATE_ACTIVE","RDSH03.contoso.local",'
        '"2026-01-20T10:00:00Z","rdcb01.contoso.local"\r\n'), encoding="utf-8")
    (tmp_path / "SecurityEvent.csv").write_text(
        f'{BOM}"TimeGenerated [UTC]",Computer,EventID,TargetUserName,TargetDomainName,LogonType,IpAddress\r\n'
        '"1/14/2026, 9:05:33.000 AM",RDSH02.contoso.local,4624,alice,CONTOSO,10,"10.1.2.3"\r\n', encoding="utf-8")
    result = runner.invoke(app, ["report", str(tmp_path), "--jobs", "1", "--input-tz", "UTC", "--culture", "en-US"])
    line = next(text for text in result.stdout.splitlines() if text.startswith("Inputs:"))
    assert "(evtx)" not in line and "broker" in line and "azure" in line


# -- what held ------------------------------------------------------------------------------------------------------


def test_held_azure_evidence_alone_without_coverage_is_never_complete(tmp_path: Path) -> None:
    """Only a SecurityEvent export (alice, 14 January), no coverage export, installed 5: January has 1 user and is
    partial, the verdict within (lower bound), exit 4."""
    (tmp_path / "SecurityEvent.csv").write_text(
        f'{BOM}"TimeGenerated [UTC]",Computer,EventID,TargetUserName,TargetDomainName,LogonType,IpAddress\r\n'
        '"1/14/2026, 9:05:33.000 AM",RDSH01.contoso.local,4624,alice,CONTOSO,10,"10.1.2.3"\r\n', encoding="utf-8")
    code, built = report(tmp_path, "--installed", "5", "--check")
    assert windows(built) == [("2026-01", 1, "partial")]
    assert (code, built["verdict"]) == (4, "within (lower bound)")


def test_held_coverage_rows_with_records_0_cover_nothing(tmp_path: Path) -> None:
    """The coverage export says RDSH01's Security log delivered 0 events every hour (a broken agent): no hour is
    covered; alice's 4624 on 14 January still counts. January: partial, 1 user; exit 4."""
    (tmp_path / "coverage.csv").write_text(
        hourly_coverage("RDSH01.contoso.local", "Security", DEC1, 90 * 24, records=0),
        encoding="utf-8")
    (tmp_path / "SecurityEvent.csv").write_text(
        f'{BOM}"TimeGenerated [UTC]",Computer,EventID,TargetUserName,TargetDomainName,LogonType,IpAddress\r\n'
        '"1/14/2026, 9:05:33.000 AM",RDSH01.contoso.local,4624,alice,CONTOSO,10,"10.1.2.3"\r\n', encoding="utf-8")
    code, built = report(tmp_path, "--installed", "5", "--check")
    assert windows(built) == [("2026-01", 1, "partial")] and code == 4


def test_held_security_event_overlapping_the_evtx_is_one_user_and_one_session(tmp_path: Path) -> None:
    """alice's 4624 type 10 at 14 January 09:05:33.1234567Z is in RDSH01's Security export and, as
    09:05:33.123, in the SecurityEvent portal export (same SID); alice@contoso.com reaches Connected in
    WVDConnections on RDSH01 on 15 January (after a Started row). One person (the UPN's first label is the NetBIOS
    domain seen), two sessions (14th, 15th) -- not three. (Her ``events`` count is 3: the one 4624 twice.)"""
    security_log(tmp_path / "RDSH01-Security.xml", "RDSH01.contoso.local",
                 logon_4624(10, user="alice", time="2026-01-14T09:05:33.1234567Z", record_id=5))
    (tmp_path / "SecurityEvent.csv").write_text(
        f'{BOM}"TimeGenerated [UTC]",Computer,EventID,TargetUserName,TargetDomainName,TargetUserSid,LogonType,'
        'IpAddress\r\n'
        '"1/14/2026, 9:05:33.123 AM",RDSH01.contoso.local,4624,alice,CONTOSO,S-1-5-21-1-2-3-1105,10,"10.0.0.5"\r\n',
        encoding="utf-8")
    (tmp_path / "wvd.csv").write_text(
        f'{BOM}"TimeGenerated [UTC]",UserName,SessionHostName,State,CorrelationId,ClientSideIPAddress\r\n'
        '"1/15/2026, 9:00:00.000 AM",alice@contoso.com,RDSH01.contoso.local,Started,c1,10.0.0.9\r\n'
        '"1/15/2026, 9:00:05.000 AM",alice@contoso.com,RDSH01.contoso.local,Connected,c1,10.0.0.9\r\n'
        '"1/16/2026, 9:00:00.000 AM",carol@contoso.com,RDSH01.contoso.local,Started,c2,10.0.0.8\r\n',
        encoding="utf-8")
    _, built = report(tmp_path)
    (user,) = built["users"]
    assert user["sessions"] == 2
    assert user["sources"] == ["Azure Monitor", "Azure Virtual Desktop", "session host logs"]


def test_held_a_query_user_file_without_its_host_is_refused_by_name(tmp_path: Path) -> None:
    """``quser.txt`` (no host in the name) beside a complete log: the file fails naming what to do, and the
    report is a lower bound (exit 4), never a clean within."""
    security_log(tmp_path / "RDSH01-Security.xml", "RDSH01.contoso.local",
                 logon_4624(10, user="alice", time="2026-01-10T09:00:00.0000000Z", record_id=2))
    (tmp_path / "quser.txt").write_text(
        " USERNAME              SESSIONNAME        ID  STATE   IDLE TIME  LOGON TIME\r\n"
        ">bob                   rdp-tcp#3           2  Active          .  14/01/2026 09:05\r\n", encoding="utf-8")
    code, built = report(tmp_path, "--installed", "5", "--check")
    (failed,) = [i for i in built["inputs"] if i["error"]]
    assert "quser_<HOST>_" in failed["error"] and code == 4


def test_held_the_store_keeps_polled_and_stated_coverage(tmp_path: Path) -> None:
    """Broker polls every 6 hours from 1 December to 1 March list alice (disconnected, CreateTime 12/1/2025
    9:55 AM: month first, since day first would put it on 12 January, after the first poll); RDSH02's
    SecurityEvent (bob, 14 January) has its hourly coverage export. The report from the files and from a store
    fed with the same files (same --input-tz/--culture) agree: same windows, verdict, as-of date, coverage."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    rows = []
    moment = DEC1
    while moment <= datetime(2026, 3, 1, tzinfo=timezone.utc):
        rows.append(f'"RDSH01.contoso.local","2","alice","CONTOSO","12/1/2025 9:55:00 AM","STATE_DISCONNECTED",'
                    f'"RDSH01.contoso.local","{moment:%Y-%m-%dT%H:%M:%SZ}","rdcb01"\r\n')
        moment += timedelta(hours=6)
    (inputs / "rdusersession_rdcb01_all.csv").write_text(BROKER_HEADER + "".join(rows), encoding="utf-8")
    (inputs / "coverage.csv").write_text(
        hourly_coverage("RDSH02.contoso.local", "Security", DEC1, 90 * 24), encoding="utf-8")
    (inputs / "SecurityEvent.csv").write_text(
        f'{BOM}"TimeGenerated [UTC]",Computer,EventID,TargetUserName,TargetDomainName,LogonType,IpAddress\r\n'
        '"1/14/2026, 9:05:33.000 AM",RDSH02.contoso.local,4624,bob,CONTOSO,10,"10.1.2.3"\r\n', encoding="utf-8")
    zone = ("--input-tz", "UTC", "--culture", "en-US")
    code_files, from_files = report(inputs, "--installed", "2", "--check", *zone)
    store = tmp_path / "store.sqlite3"
    assert runner.invoke(app, ["ingest", str(inputs), "--store", str(store), "--jobs", "1", "-q", *zone]).exit_code == 0
    code_store, from_store = report("--store", store, "--installed", "2", "--check")
    assert code_files == code_store == 4  # the polls are the only source for RDSH01: a lower bound
    for key in ("verdict", "estimated", "as_of", "windows", "coverage"):
        assert from_files[key] == from_store[key], key
