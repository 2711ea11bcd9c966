"""Issue 17: ``evtrack explain NAME`` says why a person is counted, or gives the right reason why a name is not."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evtrack import explain as ex
from evtrack.cli import app
from evtrack.identity import Exclusions
from evtrack.pipeline import source_from_read
from evtrack.reading import read_inputs
from evtrack.usage import ReportSettings

from .conftest import LSM_CHANNEL
from .exports import Rec, noise, write
from .factories import utc

runner = CliRunner()
SIX_HOURS = timedelta(hours=6)
SHAPES = ["xml", "evtx"]


def logs(folder: Path, shape: str) -> list[Path]:
    """January to March 2024 on one host: alice over RDP (January, March), carol only at the console (LSM 21
    with Address LOCAL), dave of FABRIKAM over RDP, erin only in network logons (type 3), frank over RDP in
    2023 only, and SYSTEM."""
    security = [
        *noise(utc(2024, 1, 1), utc(2024, 4, 1), SIX_HOURS, 1),
        Rec("4624", utc(2023, 12, 20, 9), 900, user="frank", sid="S-1-5-21-1-2-3-1110"),
        Rec("4624", utc(2024, 1, 10, 9), 1000),
        Rec("4624", utc(2024, 1, 11, 9), 1001, user="erin", sid="S-1-5-21-1-2-3-1109", logon_type=3),
        Rec("4624", utc(2024, 1, 12, 9), 1002, user="dave", domain="FABRIKAM", sid="S-1-5-21-4-5-6-1107"),
        Rec("4624", utc(2024, 3, 2, 9), 1003),
    ]
    lsm_records = [
        *noise(utc(2024, 1, 1), utc(2024, 4, 1), SIX_HOURS, 1, channel=LSM_CHANNEL),
        Rec("lsm21", utc(2024, 1, 10, 9, 0, 3), 1000),
        Rec("lsm21", utc(2024, 1, 15, 8), 1001, user="carol", ip="LOCAL", session=1),
        Rec("lsm21", utc(2024, 2, 15, 8), 1002, user="carol", ip="LOCAL", session=1),
    ]
    security.sort(key=lambda r: r.record_id)
    return [write(folder / "sec", security, shape), write(folder / "lsm", lsm_records, shape)]


def explain(paths: list[Path], name: str, window: str | None = None, **settings: object) -> ex.Explanation:
    source = source_from_read(read_inputs(paths, slim=True))
    return ex.explain(source, ReportSettings(created_at=utc(2024, 6, 1), start=utc(2024, 1, 1).date(),
                                             end=utc(2024, 3, 31).date(), **settings),  # type: ignore[arg-type]
                      name, window)


@pytest.mark.parametrize("shape", SHAPES)
def test_a_counted_person_with_aliases_and_proof(tmp_path: Path, shape: str) -> None:
    paths = logs(tmp_path, shape)
    got = explain(paths, "contoso.local\\ALICE")
    assert (got.status, got.counted, got.name, got.windows) == (ex.COUNTED, True, "CONTOSO\\alice",
                                                                ("2024-01", "2024-03"))
    assert got.summary == "CONTOSO\\alice is counted in 2024-01, 2024-03."
    assert [(p.window, p.which, p.event_id, p.record_id) for p in got.proof] == [
        ("2024-01", "first", 4624, 1000), ("2024-01", "last", 21, 1000), ("2024-03", "only", 4624, 1003)]
    links = {link.form: link.how for link in got.links}
    assert links["S-1-5-21-1-2-3-1105"] == "the account's SID"
    assert links["CONTOSO\\alice"].startswith("named with the SID in Security 4624 record 1000 on RDSH01")
    only_march = explain(paths, "alice", "2024-03")
    assert [(p.window, p.record_id) for p in only_march.proof] == [("2024-03", 1003)]
    february = explain(paths, "S-1-5-21-1-2-3-1105", "2024-02")
    assert (february.status, february.counted) == (ex.NOT_IN_WINDOW, False)
    assert february.summary == ("CONTOSO\\alice is not counted in 2024-02: no RDP evidence there, and no session "
                                "carried over into it; counted in 2024-01, 2024-03.")


@pytest.mark.parametrize("shape", SHAPES)
def test_a_console_only_name(tmp_path: Path, shape: str) -> None:
    got = explain(logs(tmp_path, shape), "CONTOSO\\carol")
    assert (got.status, got.counted) == (ex.CONSOLE_ONLY, False)
    assert got.summary == ("CONTOSO\\carol signed in only at the console (LocalSessionManager 21 with Address "
                           "LOCAL): console use needs no RDS CAL.")
    assert [(p.event_id, p.record_id, p.rule) for p in got.proof] == [(21, 1001, "lsm21_console"),
                                                                      (21, 1002, "lsm21_console")]


@pytest.mark.parametrize("shape", SHAPES)
def test_an_excluded_name(tmp_path: Path, shape: str) -> None:
    got = explain(logs(tmp_path, shape), "alice", exclusions=Exclusions.build(names=["CONTOSO\\alice"]))
    assert (got.status, got.name) == (ex.EXCLUDED, "CONTOSO\\alice")
    assert got.summary == ("CONTOSO\\alice is not counted: excluded by name contoso\\alice (3 RDP event(s), first "
                           "2024-01-10 09:00 UTC, last 2024-03-02 09:00 UTC).")


@pytest.mark.parametrize("shape", SHAPES)
def test_a_name_outside_the_scope(tmp_path: Path, shape: str) -> None:
    got = explain(logs(tmp_path, shape), "dave", domains=("CONTOSO",))
    assert got.status == ex.OUT_OF_SCOPE
    assert got.summary == "dave is outside the scope (Domain: CONTOSO): its RDP evidence names the domain FABRIKAM."
    assert explain(logs(tmp_path, shape), "dave").status == ex.COUNTED  # all trusted domains


def test_a_name_never_seen_has_near_matches(tmp_path: Path) -> None:
    got = explain(logs(tmp_path, "xml"), "CONTOSO\\alcie")
    assert (got.status, got.near[0]) == (ex.NEVER_SEEN, "CONTOSO\\alice")
    assert got.summary == "CONTOSO\\alcie is never seen in these inputs (no record names it)."
    assert explain(logs(tmp_path, "xml"), "zyxwvu").near == ()


def test_seen_only_outside_the_period_system_and_network_only(tmp_path: Path) -> None:
    paths = logs(tmp_path, "evtx")
    frank = explain(paths, "frank")
    assert frank.status == ex.OUTSIDE_PERIOD
    assert frank.summary.startswith("frank has RDP evidence only outside the period (2024-01-01 to 2024-04-01, end "
                                    "exclusive): first 2023-12-20 09:00 UTC")
    assert explain(paths, "NT AUTHORITY\\SYSTEM").status == ex.BUILTIN
    erin = explain(paths, "erin")  # a slim read keeps only the account of a network logon
    assert (erin.status, erin.name) == (ex.NOT_RDP, "CONTOSO\\erin")
    assert "network, service, batch" in erin.summary


def test_explain_from_a_store_names_network_logons_and_prints_json(tmp_path: Path) -> None:
    paths = logs(tmp_path, "evtx")
    store = tmp_path / "s.sqlite3"
    assert runner.invoke(app, ["ingest", *map(str, paths), "--store", str(store), "-q"]).exit_code == 0
    result = runner.invoke(app, ["explain", "erin", "--store", str(store), "--from", "2024-01-01", "--to",
                                 "2024-03-31", "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["status"], data["proof"][0]["record_id"]) == (ex.NETWORK_ONLY, 1001)
    assert data["summary"] == ("erin appears only in network logons (4624 type 3 network): file shares, printers, "
                               "authentication -- not an RDS session.")


def test_explain_cli_text_and_window_kind(tmp_path: Path) -> None:
    paths = [str(p) for p in logs(tmp_path, "xml")]
    result = runner.invoke(app, ["explain", "alice", *paths, "-q", "--window", "week", "--window", "2024-W02"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "CONTOSO\\alice is counted in 2024-W02."
    assert lines[-1] == ("Check by hand: open the file in Event Viewer, Filter Current Log > XML > Edit query "
                         "manually: *[System[EventRecordID=1000]]")
    assert len(lines) < 25  # one screen
    bad = runner.invoke(app, ["explain", "alice", *paths, "-q", "--window", "2024-13"])
    assert bad.exit_code == 1 and "is not a window of this report" in bad.output
