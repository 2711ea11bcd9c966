"""Review of 17e87da (Azure Monitor stated hours count only within a week of an evidence export's rows), by a
helper reading the change cold. Three findings are fixed (an unrelated SecurityEvent export vouched for the
missing one; WVD hours the coverage export counts 0 rows for needed an evidence row; ``store prune`` dropped the
reach that confirmed time after the cut). Two are known limits of the week's margin and the per-log reach, kept as
strict xfails so that they stay in sight (docs/azure.md says them): an evidence export missing for less than two
weeks, and one host's export of per-host exports. The inputs are written with evtrack.synth.azure (the shapes of
tests/test_azure.py) and the answers worked out by hand from the sessions written. The coverage export is the
docs' hourly query over the whole range (Records per computer, channel and hour; a Security background of one
record per hour, as the synth writes it; the WVD series with 0 where no connection row fell).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evtrack.cli import app
from evtrack.synth import azure as synth

UTC = timezone.utc
runner = CliRunner()
RDSH01, RDSH02 = "RDSH01.contoso.local", "RDSH02.contoso.local"
WVD0 = "WVD-0.contoso.local"
NAMES = ("alice", "bob", "carol", "dave", "zed")
USERS = {name: synth.AzureUser(name, "CONTOSO", f"S-1-5-21-1-2-3-{1100 + i}", f"{name}@contoso.com")
         for i, name in enumerate(NAMES)}


def day(year: int, month: int, dom: int, hour: int = 0) -> datetime:
    return datetime(year, month, dom, hour, tzinfo=UTC)


def session(name: str, host: str, start: datetime, wvd: bool = False) -> synth.AzureSession:
    return synth.AzureSession(USERS[name], host, start, start + timedelta(hours=2), wvd=wvd,
                              logon_id=0x10000 + NAMES.index(name) * 0x1000 + start.toordinal() % 0x1000)


def daily(names: tuple[str, ...], host: str, first: datetime, last: datetime, wvd: bool = False,
          weekdays_only: bool = False, hour: int = 9) -> list[synth.AzureSession]:
    """A session a day (09:00, 09:07, ...) for each of ``names`` on ``host`` from ``first`` to ``last``."""
    out = []
    moment = first
    while moment <= last:
        if not weekdays_only or moment.weekday() < 5:
            out += [session(name, host, moment.replace(hour=hour) + timedelta(minutes=7 * i), wvd)
                    for i, name in enumerate(names)]
        moment += timedelta(days=1)
    return out


def write(path: Path, table: synth.Table) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(synth.api_json(table), encoding="utf-8")
    return path


def coverage(sessions: list[synth.AzureSession], start: datetime, end: datetime, channels: set[str]) -> synth.Table:
    table = synth.coverage_table(sessions, start, end)
    table.rows = [row for row in table.rows if row[1] in channels]
    return table


def report(*args: object) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, ["report", *map(str, args), "-f", "json", "-q", "--created-at", "2026-06-01"])
    assert result.exit_code in (0, 3, 4), result.output
    return result.exit_code, json.loads(result.stdout)


def windows(rep: dict[str, object]) -> dict[str, tuple[object, object]]:
    return {w["label"]: (w["users"], w["status"]) for w in rep["windows"]}  # type: ignore[attr-defined]


# --- 1. Remaining wrong exit 0 ----------------------------------------------------------------------------------

NOV1, MAR1 = day(2025, 11, 1), day(2026, 3, 1)
BASE = daily(("alice", "bob"), RDSH01, NOV1, day(2026, 2, 28)) + daily(("carol",), RDSH02, NOV1, day(2026, 2, 28),
                                                                       hour=11)


@pytest.mark.parametrize(("gap", "zed_on"), [
    pytest.param((day(2026, 1, 11), day(2026, 1, 21)), day(2026, 1, 15, 10), id="mid-January-10-days"),
    pytest.param((day(2026, 1, 1), day(2026, 1, 11)), day(2026, 1, 5, 10), id="first-10-days-of-January"),
    pytest.param((day(2026, 1, 22), day(2026, 2, 1)), day(2026, 1, 27, 10), id="last-10-days-of-January"),
    pytest.param((day(2026, 1, 12), day(2026, 1, 19)), day(2026, 1, 14, 10), id="one-weekly-export-of-several"),
])
@pytest.mark.xfail(strict=True, reason="known limit: a gap shorter than two weeks is confirmed by the week's margin "
                   "of the exports on either side (docs/azure.md)")
def test_evidence_missing_for_part_of_a_month_is_not_complete(tmp_path: Path, gap: tuple[datetime, datetime],
                                                             zed_on: datetime) -> None:
    """November 2025 - February 2026: alice and bob on RDSH01, carol on RDSH02 every day; zed once, inside the gap.
    The coverage export states every hour of both hosts' Security log; the SecurityEvent evidence comes as two
    exports, one ending where the gap begins and one starting where it ends (the docs suggest splitting a large
    range, "one export per week, for example"): the export for the gap is left out.

    By hand: January had 4 RDP users (alice, bob, carol, zed); 3 CALs installed. The evidence files hold no row at
    all for up to 10 days of January although the coverage export says both hosts' Security logs reached the
    workspace every hour: January cannot be "complete, 3 users, within". evtrack says exactly that, exit 0 -- a
    gap shorter than two weeks is confirmed by the 7-day margins of the exports on either side (REACH_MARGIN_US),
    wherever it falls in the month."""
    sessions = [*BASE, session("zed", RDSH01, zed_on)]
    folder = tmp_path / "in"
    write(folder / "coverage.json", coverage(sessions, NOV1, MAR1, {"Security"}))
    write(folder / "SecurityEvent-1.json", synth.security_event_table([s for s in sessions if s.start < gap[0]]))
    write(folder / "SecurityEvent-2.json", synth.security_event_table([s for s in sessions if s.start >= gap[1]]))
    code, rep = report(folder, "--installed", "3", "--check")
    assert windows(rep)["2026-01"] != (3, "complete"), "January reads complete without zed"
    assert code != 0


@pytest.mark.xfail(strict=True, reason="known limit: an evidence row of any host confirms a log's stated hours "
                   "(docs/azure.md)")
def test_one_hosts_evidence_export_left_out_is_not_complete(tmp_path: Path) -> None:
    """The same fleet, the SecurityEvent evidence exported per computer (``| where Computer == ...``, to stay under
    the row cap): RDSH01's export is given, RDSH02's is left out. The coverage export states both hosts.

    By hand: January had 4 users (zed on RDSH02 on 15 January); carol and zed are on RDSH02 only, of which the
    files given hold not one row in four months. Every month of RDSH02 is unknown (or at least partial); --check
    must not pass. evtrack reads every month "complete, 2 users, within" and exits 0: an evidence row of any host
    confirms a host's stated hours."""
    sessions = [*BASE, session("zed", RDSH02, day(2026, 1, 15, 10))]
    folder = tmp_path / "in"
    write(folder / "coverage.json", coverage(sessions, NOV1, MAR1, {"Security"}))
    write(folder / f"SecurityEvent-{RDSH01}.json", synth.security_event_table([s for s in sessions
                                                                              if s.host == RDSH01]))
    code, rep = report(folder, "--installed", "3", "--check")
    assert windows(rep)["2026-01"] != (2, "complete")
    assert code != 0


def test_an_unrelated_security_export_does_not_vouch_for_the_evidence(tmp_path: Path) -> None:
    """January - April 2024, alice and bob on RDSH01 every weekday. The docs' SecurityEvent evidence export is
    given for January - February only (March - April left out), beside a SecurityEvent export of another query
    (failed logons, 4625: TimeGenerated, Computer, EventID, Account, IpAddress) over January - April: a file any
    security team has lying around. evtrack reads it as a SecurityEvent export (it has TimeGenerated, Computer,
    EventID) and its rows, none of them RDP evidence nor of the evidence query's ids, confirm March - April.

    By hand: no evidence-query row after February; March and April are not known (2 users each in truth, 1 CAL
    installed -> over). evtrack: March and April "complete, 0 users"; the verdict rests on January-February only."""
    start, end = day(2024, 1, 1), day(2024, 5, 1)
    sessions = daily(("alice", "bob"), RDSH01, start, day(2024, 4, 30), weekdays_only=True)
    folder = tmp_path / "in"
    write(folder / "coverage.json", coverage(sessions, start, end, {"Security"}))
    write(folder / "SecurityEvent.json", synth.security_event_table([s for s in sessions if s.start < day(2024, 3, 1)]))
    failed = synth.Table("SecurityEvent", (("TimeGenerated", "datetime"), ("Computer", "string"),
                                           ("EventID", "int"), ("Account", "string"), ("IpAddress", "string")))
    failed.rows = [(start + timedelta(days=d, hours=3), RDSH01, 4625, "\\admin", "203.0.113.9") for d in range(121)]
    write(folder / "failed-logons.json", failed)
    code, rep = report(folder, "--installed", "2", "--check", "--from", "2024-03-01", "--to", "2024-04-30")
    assert windows(rep)["2024-03"] != (0, "complete")
    assert code != 0


# --- 2. False alarms on complete, legitimate inputs -------------------------------------------------------------


@pytest.mark.parametrize(("first", "last", "start", "end", "expected"), [
    pytest.param(day(2025, 10, 1), day(2025, 12, 19), day(2025, 10, 1), day(2026, 1, 1),
                 {"2025-10": (2, "complete"), "2025-11": (2, "complete"), "2025-12": (2, "complete")},
                 id="range-ends-in-the-year-end-closure"),
    pytest.param(day(2026, 1, 12), day(2026, 3, 31), day(2026, 1, 1), day(2026, 4, 1),
                 {"2026-01": (2, "complete"), "2026-02": (2, "complete"), "2026-03": (2, "complete")},
                 id="first-connection-on-12-January"),
    pytest.param(day(2025, 11, 20), day(2025, 12, 31), day(2025, 10, 1), day(2026, 1, 1),
                 {"2025-10": (0, "complete"), "2025-11": (2, "complete"), "2025-12": (2, "complete")},
                 id="host-pool-in-use-from-20-November"),
])
def test_wvd_hours_the_coverage_export_counts_as_zero_need_no_evidence_row(
        tmp_path: Path, first: datetime, last: datetime, start: datetime, end: datetime,
        expected: dict[str, tuple[int, str]]) -> None:
    """An Azure Virtual Desktop pool (one session host), alice and bob connecting on weekdays from ``first`` to
    ``last``; both exports (WVDConnections and the coverage query) run over [start, end) and are complete. The
    coverage query's WVD part is a make-series: every hour of the range, Records 0 where WVDConnections holds no
    row at all (not even Started).

    By hand: an hour whose Records is 0 is an hour of which no WVDConnections export can hold a row, so no
    evidence export can be missing for it: these months are complete (before 17e87da they were, exit 0). evtrack
    now marks the quiet stretch more than 7 days from the first/last connection row unconfirmed: the month is
    partial or unknown, judged, and --check exits 4 (a year-end closure at the end of the range, a pool first used
    after the range starts); --from/--to on the later months does not help when the 60-day look-back reaches the
    quiet stretch."""
    sessions = daily(("alice", "bob"), WVD0, first, last, wvd=True, weekdays_only=True)
    folder = tmp_path / "in"
    write(folder / "coverage.json", coverage(sessions, start, end, {"WVDConnections"}))
    write(folder / "WVDConnections.json", synth.wvd_table(sessions))
    code, rep = report(folder, "--installed", "2", "--check")
    assert {label: value for label, value in windows(rep).items() if label in expected} == expected
    assert code == 0


# --- 3. Paths disagreeing -----------------------------------------------------------------------------------------


def test_store_prune_keeps_what_confirms_the_time_after_it(tmp_path: Path) -> None:
    """January - April 2024, alice and bob on RDSH01 on weekdays; the office is closed 1-10 March. SecurityEvent
    comes as two exports (before March, from March); the coverage export states every hour of the range.

    By hand: 1-3 March are within a week of the first export's last row (29 February), 4-10 March within a week
    of the second's first (11 March): from the files, March and April are complete, 2 users, exit 0 -- and from a
    store of the same files. After `evtrack store prune --before 2024-03-01` (docs/store.md: events before the date
    removed, each file's coverage clipped at it) a report of March - April should read the same. It reads March
    partial and exits 4: prune removed the first export's reach (wholly before the date) and with it the week it
    confirmed after the date."""
    start, end = day(2024, 1, 1), day(2024, 5, 1)
    sessions = [s for s in daily(("alice", "bob"), RDSH01, start, day(2024, 4, 30), weekdays_only=True)
                if not day(2024, 3, 1) <= s.start < day(2024, 3, 11)]
    folder = tmp_path / "in"
    write(folder / "coverage.json", coverage(sessions, start, end, {"Security"}))
    march = day(2024, 3, 1)
    write(folder / "SecurityEvent-1.json", synth.security_event_table([s for s in sessions if s.start < march]))
    write(folder / "SecurityEvent-2.json", synth.security_event_table([s for s in sessions if s.start >= march]))
    period = ("--installed", "2", "--check", "--from", "2024-03-01", "--to", "2024-04-30")
    code, rep = report(folder, *period)
    assert (code, windows(rep)) == (0, {"2024-03": (2, "complete"), "2024-04": (2, "complete")})
    store = tmp_path / "store.sqlite3"
    assert runner.invoke(app, ["ingest", str(folder), "--store", str(store), "-q"]).exit_code == 0
    assert report("--store", store, *period)[0] == 0
    pruned = runner.invoke(app, ["store", "prune", "--before", "2024-03-01", "--yes", "--store", str(store)])
    assert pruned.exit_code == 0, pruned.output
    code, rep = report("--store", store, *period)
    assert (code, windows(rep)) == (0, {"2024-03": (2, "complete"), "2024-04": (2, "complete")})
