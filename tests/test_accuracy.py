"""Issue 13: the cases where the report was confidently wrong, each from a minimal export (XML and .evtx) whose
answer was worked out by hand (the docstrings say how)."""

from __future__ import annotations

import json
from datetime import timedelta
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

runner = CliRunner()
SHAPES = ["xml", "evtx"]
HOUR = timedelta(hours=6)
JAN_TO_APR = {"start": utc(2024, 1, 1), "end": utc(2024, 4, 1)}


def report(paths: list[Path], **settings: object) -> Report:
    built, _ = run_report(paths, ReportSettings(created_at=utc(2024, 6, 1), **settings))  # type: ignore[arg-type]
    return built


def cli(*args: str) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, ["report", *args, "-f", "json", "-q", "--created-at", "2024-06-01"])
    assert result.exit_code in (0, 3, 4), result.output
    return result.exit_code, json.loads(result.stdout)


def users(built: Report) -> dict[str, tuple[str, ...] | None]:
    return {w.label: (w.user_keys if w.users is not None else None) for w in built.windows}


@pytest.mark.parametrize("shape", SHAPES)
def test_1_account_recreated_for_another_person(tmp_path: Path, shape: str) -> None:
    """CONTOSO\\jsmith is S-...-1200 in January, deleted and re-created for someone else (-1300) in March; the LSM
    events name only CONTOSO\\jsmith. Each LSM 21 is the 4624 of its own logon (seconds apart): January has -1200,
    March has -1300 alone. 10 January + 60 days = 10 March, before the March logons: peak 1, within for 1."""
    old, new = "S-1-5-21-7-8-9-1200", "S-1-5-21-7-8-9-1300"
    security = [*noise(utc(2024, 1, 1), utc(2024, 4, 1), HOUR, 1),
                Rec("4624", utc(2024, 1, 10, 9), 1000, user="jsmith", sid=old),
                Rec("4624", utc(2024, 3, 20, 9), 1001, user="jsmith", sid=new),
                Rec("4624", utc(2024, 3, 27, 9), 1002, user="jsmith", sid=new)]
    lsm_records = [*noise(utc(2024, 1, 1), utc(2024, 4, 1), HOUR, 1, channel=LSM_CHANNEL),
                   Rec("lsm21", utc(2024, 1, 10, 9, 0, 4), 1000, user="jsmith"),
                   Rec("lsm21", utc(2024, 3, 20, 9, 0, 3), 1001, user="jsmith"),
                   Rec("lsm21", utc(2024, 3, 27, 9, 0, 5), 1002, user="jsmith")]
    security.sort(key=lambda r: r.record_id)
    paths = [write(tmp_path / "sec", security, shape), write(tmp_path / "lsm", lsm_records, shape)]
    built = report(paths, installed=1)
    assert users(built)["2024-03"] == (new,)
    assert users(built)["2024-01"] == (old,)
    assert built.windows[2].users == 1 and built.peak_estimated == 1
    assert built.verdict == "within"


@pytest.mark.parametrize("shape", SHAPES)
def test_2_a_burst_of_misdated_records(tmp_path: Path, shape: str) -> None:
    """A Security log from 1 January to 1 April 2024, a record every 6 hours; on 10 February the clock is a year
    off for half an hour: a noise record and alice's RDP logon carry 2023 times. Coverage must not reach back to
    2023; alice counts in February 2024 (where her neighbours place her) and the report names the two records;
    the Jan-Mar verdict is not a clean pass."""
    records = noise(utc(2024, 1, 1), utc(2024, 2, 10, 6), HOUR, 1)
    next_id = records[-1].record_id + 1
    wrong = timedelta(days=366)
    records += [Rec("noise", utc(2024, 2, 10, 9) - wrong, next_id),
                Rec("4624", utc(2024, 2, 10, 9, 20) - wrong, next_id + 1)]
    records += noise(utc(2024, 2, 10, 12), utc(2024, 4, 1), HOUR, next_id + 2)
    path = write(tmp_path / "sec", records, shape)
    built = report([path], installed=5)
    assert not any(w.label.startswith("2023") for w in built.windows)
    assert [(m.record_id, m.time.year, m.placed.date().isoformat()) for m in built.misdated] == [
        (next_id + 1, 2023, "2024-02-10")]
    assert users(built)["2024-02"] == ("S-1-5-21-1-2-3-1105",)
    assert built.lower_bound and built.verdict == "within (lower bound)"
    code, data = cli(str(path), "--installed", "5", "--from", "2024-01-01", "--to", "2024-03-31", "--check")
    assert code in (3, 4) and data["misdated"][0]["record_id"] == next_id + 1
    code, data = cli(str(path), "--installed", "5", "--from", "2023-01-01", "--to", "2024-03-31")
    assert not any(w["status"] == "complete" for w in data["windows"] if w["label"].startswith("2023"))  # type: ignore[attr-defined]


@pytest.mark.parametrize("shape", SHAPES)
def test_3_two_hosts_with_one_short_name(tmp_path: Path, shape: str) -> None:
    """RDSH01.contoso.local logs until 1 February 00:00, RDSH01.fabrikam.local until April: two hosts, so February and
    March are partial (contoso's host has no logs then) and --check exits 4."""
    contoso = noise(utc(2024, 1, 1), utc(2024, 2, 1), HOUR, 1, host="RDSH01.contoso.local")
    contoso.append(Rec("4624", utc(2024, 1, 15, 9), 900, host="RDSH01.contoso.local"))
    fabrikam = noise(utc(2024, 1, 1), utc(2024, 4, 1), HOUR, 1, host="RDSH01.fabrikam.local")
    fabrikam.append(Rec("4624", utc(2024, 2, 15, 9), 900, host="RDSH01.fabrikam.local", user="bob", domain="FABRIKAM",
                        sid="S-1-5-21-4-5-6-1106"))
    paths = [write(tmp_path / "contoso", contoso, shape), write(tmp_path / "fabrikam", fabrikam, shape)]
    built = report(paths, installed=5)
    statuses = {w.label: w.status for w in built.windows}
    assert statuses == {"2024-01": "complete", "2024-02": "partial", "2024-03": "partial", "2024-04": "partial"}
    assert {h.host for h in built.host_users} == {"rdsh01.contoso.local", "rdsh01.fabrikam.local"}
    code, _ = cli(*map(str, paths), "--installed", "5", "--from", "2024-01-01", "--to", "2024-03-31", "--check")
    assert code == 4


@pytest.mark.parametrize("shape", SHAPES)
def test_4_a_session_that_spans_a_month(tmp_path: Path, shape: str) -> None:
    """Logon 20 January, logoff 5 March, nothing in February: the session was connected all February, so alice
    used RDS in February ("session carried over")."""
    security = [*noise(utc(2024, 1, 1), utc(2024, 4, 1), HOUR, 1),
                Rec("4624", utc(2024, 1, 20, 9), 1000), Rec("4634", utc(2024, 3, 5, 17), 1001)]
    lsm_records = [*noise(utc(2024, 1, 1), utc(2024, 4, 1), HOUR, 1, channel=LSM_CHANNEL),
                   Rec("lsm21", utc(2024, 1, 20, 9, 0, 3), 1000), Rec("lsm23", utc(2024, 3, 5, 17), 1001)]
    paths = [write(tmp_path / "sec", security, shape), write(tmp_path / "lsm", lsm_records, shape)]
    built = report(paths, installed=1)
    assert built.windows[1].label == "2024-02" and built.windows[1].users == 1
    assert built.windows[1].carried_over == ("S-1-5-21-1-2-3-1105",)
    assert built.windows[1].peak_sessions == 1
    assert "session_carried_over" in built.users[0].evidence


@pytest.mark.parametrize("shape", SHAPES)
def test_5_adjacent_exports(tmp_path: Path, shape: str) -> None:
    """One Security log exported as two files with consecutive EventRecordIDs and a quiet spell between them
    (twelve hours here): nothing was lost, so January is complete and --check exits 0 (the log starts in
    November, so the 60 days before 31 January are covered too)."""
    moments = [r.time for r in noise(utc(2023, 11, 1), utc(2024, 2, 1), HOUR, 1) if r.time != utc(2024, 1, 15, 18)]
    kinds = sorted([("noise", t) for t in moments] + [("4624", utc(2024, 1, 10, 9))], key=lambda item: item[1])
    records = [Rec(what, moment, index) for index, (what, moment) in enumerate(kinds, start=1)]
    cut = next(i for i, r in enumerate(records) if r.time > utc(2024, 1, 15, 12))
    first, second = records[:cut], records[cut:]  # ids run on: ...N | N+1..., with twelve quiet hours between
    assert second[0].record_id == first[-1].record_id + 1 and second[0].time - first[-1].time == timedelta(hours=12)
    paths = [write(tmp_path / "part1", first, shape), write(tmp_path / "part2", second, shape)]
    code, data = cli(*map(str, paths), "--installed", "5", "--from", "2024-01-01", "--to", "2024-01-31", "--check")
    assert code == 0, data["notes"]
    assert data["verdict"] == "within"


@pytest.mark.parametrize("shape", SHAPES)
def test_6_exact_peak_of_the_licence_server_view(tmp_path: Path, shape: str) -> None:
    """A signs in 5 January 12:00 (valid until 5 March 12:00), C on 20 January, B first on 5 March 08:00: from
    08:00 to 12:00 on 5 March three CALs are out. A daily sample at midnight sees 2; the exact peak is 3, over by
    1 for 2 installed."""
    records = noise(utc(2024, 1, 1), utc(2024, 5, 1), HOUR, 1)
    records += [Rec("4624", utc(2024, 1, 5, 12), 2000, user="a", sid="S-1-5-21-1-2-3-2001"),
                Rec("4624", utc(2024, 1, 20, 12), 2001, user="c", sid="S-1-5-21-1-2-3-2003"),
                Rec("4624", utc(2024, 3, 5, 8), 2002, user="b", sid="S-1-5-21-1-2-3-2002")]
    built = report([write(tmp_path / "sec", records, shape)], installed=2)
    assert built.peak_estimated == 3 and built.peak_at == utc(2024, 3, 5, 8)
    assert max(point.users for point in built.curve) == 2  # the daily curve alone misses it
    assert built.verdict == "over by 1" and built.over_by == 1


@pytest.mark.parametrize("shape", SHAPES)
def test_7_sparse_edges_stay_covered(tmp_path: Path, shape: str) -> None:
    """A sparse log: 2 January, three records on 1 February, 28 March. In record order nothing contradicts its
    neighbours, so the log covers 2 January to 28 March: January and March partial, February complete."""
    records = [Rec("noise", utc(2024, 1, 2), 1), Rec("noise", utc(2024, 2, 1), 2),
               Rec("4624", utc(2024, 2, 1, 0, 1), 3), Rec("noise", utc(2024, 2, 1, 0, 2), 4),
               Rec("noise", utc(2024, 3, 28), 5)]
    built = report([write(tmp_path / "sec", records, shape)])
    assert {w.label: w.status for w in built.windows} == {
        "2024-01": "partial", "2024-02": "complete", "2024-03": "partial"}
    assert built.as_of == utc(2024, 3, 28)


@pytest.mark.parametrize("shape", SHAPES)
def test_8_lsm_21_twelve_seconds_after_its_4624_is_one_session(tmp_path: Path, shape: str) -> None:
    security = [*noise(utc(2024, 1, 1), utc(2024, 2, 1), HOUR, 1), Rec("4624", utc(2024, 1, 10, 9), 500),
                Rec("4624", utc(2024, 1, 11, 9), 501)]
    lsm_records = [*noise(utc(2024, 1, 1), utc(2024, 2, 1), HOUR, 1, channel=LSM_CHANNEL),
                   Rec("lsm21", utc(2024, 1, 10, 9, 0, 12), 500), Rec("lsm21", utc(2024, 1, 11, 9, 0, 45), 501)]
    paths = [write(tmp_path / "sec", security, shape), write(tmp_path / "lsm", lsm_records, shape)]
    built = report(paths)
    assert built.windows[0].sessions == 2 and built.users[0].sessions == 2


@pytest.mark.parametrize("engine", ["evtx", "python-evtx"])
@pytest.mark.parametrize("shape", SHAPES)
def test_a_domain_controller_is_hinted_not_silently_dropped(tmp_path: Path, shape: str, engine: str) -> None:
    """Admin RDP to a domain controller: its Security log holds Kerberos KDC events (4768). The report counts the
    user (no silent rule) and hints that the host is no session host; --exclude-host leaves it out."""
    dc = [*noise(utc(2024, 1, 1), utc(2024, 2, 1), HOUR, 1, host="DC01.contoso.local"),
          Rec("kdc", utc(2024, 1, 3, 8), 900, host="DC01.contoso.local"),
          Rec("4624", utc(2024, 1, 3, 9), 901, host="DC01.contoso.local", user="admin", sid="S-1-5-21-1-2-3-500")]
    rdsh = [*noise(utc(2024, 1, 1), utc(2024, 2, 1), HOUR, 1), Rec("4624", utc(2024, 1, 4, 9), 900)]
    paths = [write(tmp_path / "dc", dc, shape), write(tmp_path / "rdsh", rdsh, shape)]
    _, data = cli(*map(str, paths), "--engine", engine)
    hints = {h["host"]: h["hint"] for h in data["host_users"]}  # type: ignore[attr-defined]
    assert hints["rdsh01"] is None and "domain controller" in hints["dc01"]
    assert len(data["users"]) == 2 and any("Kerberos KDC" in note for note in data["notes"])  # type: ignore[attr-defined]
    _, data = cli(*map(str, paths), "--engine", engine, "--exclude-host", "dc*")
    assert [u["display_name"] for u in data["users"]] == ["CONTOSO\\alice"]  # type: ignore[index]


def test_misdated_evidence_and_kdc_hints_survive_the_store(tmp_path: Path) -> None:
    """The store keeps what coverage found (schema 3): a report from the store equals the report from the files."""
    records = noise(utc(2024, 1, 1), utc(2024, 2, 10, 6), HOUR, 1)
    next_id = records[-1].record_id + 1
    records += [Rec("kdc", utc(2024, 2, 10, 7), next_id, user="svc"),
                Rec("4624", utc(2023, 2, 10, 9, 20), next_id + 1)]  # a year off, between 7:00 and 12:00
    records += noise(utc(2024, 2, 10, 12), utc(2024, 4, 1), HOUR, next_id + 2)
    path = write(tmp_path / "sec", records, "evtx")
    store = tmp_path / "store.sqlite3"
    assert runner.invoke(app, ["ingest", str(path), "--store", str(store), "-q"]).exit_code == 0
    _, from_files = cli(str(path), "--installed", "5")
    _, from_store = cli("--store", str(store), "--installed", "5")
    for key in ("misdated", "host_users", "windows", "verdict", "lower_bound"):
        assert from_store[key] == from_files[key], key
    assert from_store["misdated"][0]["record_id"] == next_id + 1  # type: ignore[index]
    assert from_store["host_users"][0]["hint"]  # type: ignore[index]


def test_a_store_from_before_clock_checks_is_rechecked_on_upgrade(tmp_path: Path) -> None:
    """A schema-2 store (ingested before evtrack checked clocks) holds the misdated time as it was: upgrading it
    finds the misdated record from the stored pairs, as a fresh ingest does, so Jan-Mar 2024 is not a clean pass."""
    import sqlite3

    from evtrack.store_schema import pack, unpack

    records = noise(utc(2024, 1, 1), utc(2024, 2, 10, 6), HOUR, 1)
    next_id = records[-1].record_id + 1
    records.append(Rec("4624", utc(2023, 2, 10, 9, 20), next_id))
    records += noise(utc(2024, 2, 10, 12), utc(2024, 4, 1), HOUR, next_id + 1)
    path = write(tmp_path / "sec", records, "xml")
    store = tmp_path / "store.sqlite3"
    assert runner.invoke(app, ["ingest", str(path), "--store", str(store), "-q"]).exit_code == 0
    db = sqlite3.connect(store)  # turn it into what evtrack 2 wrote: raw times, stretched segments, no new columns
    ids, times = db.execute("SELECT record_ids, record_times FROM spans WHERE channel = 'Security'").fetchone()
    raw = [t if i != next_id else int(utc(2023, 2, 10, 9, 20).timestamp() * 1e6) for i, t in
           zip(unpack(ids), unpack(times), strict=True)]
    db.execute("UPDATE spans SET record_times = ?, segments = ?, envelope_first_us = ?", (
        pack(raw), pack([min(raw), max(raw)]), min(raw)))
    db.execute("ALTER TABLE spans DROP COLUMN misdated")
    db.execute("ALTER TABLE spans DROP COLUMN kdc")
    db.execute("DROP TABLE failed_files")  # schema 4's
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    code, data = cli("--store", str(store), "--installed", "5", "--from", "2024-01-01", "--to", "2024-03-31",
                     "--check")
    assert code == 4 and data["misdated"][0]["record_id"] == next_id  # type: ignore[index]
    _, older = cli("--store", str(store), "--from", "2023-01-01", "--to", "2023-12-31")
    assert all(w["users"] is None for w in older["windows"])  # type: ignore[union-attr]


@pytest.mark.parametrize("shape", SHAPES)
def test_a_reused_session_id_never_carries_another_users_session(tmp_path: Path, shape: str) -> None:
    """Alice's session 3 opens on 20 January and its end is never logged (a crash); after a reboot bob gets session
    3 on 5 March and logs off. Bob's logoff must not close alice's session: February has no user."""
    security = [*noise(utc(2024, 1, 1), utc(2024, 4, 1), HOUR, 1), Rec("4624", utc(2024, 1, 20, 9), 1000),
                Rec("4624", utc(2024, 3, 5, 9), 1001, user="bob", sid="S-1-5-21-1-2-3-1200"),
                Rec("4634", utc(2024, 3, 5, 17), 1002, user="bob", sid="S-1-5-21-1-2-3-1200")]
    lsm_records = [*noise(utc(2024, 1, 1), utc(2024, 4, 1), HOUR, 1, channel=LSM_CHANNEL),
                   Rec("lsm21", utc(2024, 1, 20, 9, 0, 3), 1000),
                   Rec("lsm21", utc(2024, 3, 5, 9, 0, 3), 1001, user="bob"),
                   Rec("lsm23", utc(2024, 3, 5, 17), 1002, user="bob")]
    for name, logs in (("security only", [write(tmp_path / "sec", security, shape)]),
                       ("with LSM", [write(tmp_path / "sec", security, shape),
                                     write(tmp_path / "lsm", lsm_records, shape)])):
        built = report(logs)
        assert users(built)["2024-02"] == (), name
        assert users(built)["2024-03"] == ("S-1-5-21-1-2-3-1200",), name


@pytest.mark.parametrize("shape", SHAPES)
def test_a_recreated_account_named_without_a_domain(tmp_path: Path, shape: str) -> None:
    """As case 1, but the LSM events name the account without a domain (``jsmith``): still March's own SID."""
    old, new = "S-1-5-21-7-8-9-1200", "S-1-5-21-7-8-9-1300"
    security = [*noise(utc(2024, 1, 1), utc(2024, 4, 1), HOUR, 1),
                Rec("4624", utc(2024, 1, 10, 9), 1000, user="jsmith", sid=old),
                Rec("4624", utc(2024, 3, 20, 9), 1001, user="jsmith", sid=new)]
    lsm_records = [*noise(utc(2024, 1, 1), utc(2024, 4, 1), HOUR, 1, channel=LSM_CHANNEL),
                   Rec("lsm21", utc(2024, 1, 10, 9, 0, 4), 1000, user="jsmith", domain=""),
                   Rec("lsm21", utc(2024, 3, 20, 9, 0, 3), 1001, user="jsmith", domain="")]
    built = report([write(tmp_path / "sec", security, shape), write(tmp_path / "lsm", lsm_records, shape)],
                   installed=1)
    assert users(built)["2024-03"] == (new,) and users(built)["2024-01"] == (old,)


def test_an_export_written_newest_first_reads_like_one_written_oldest_first(tmp_path: Path) -> None:
    """``wevtutil qe /rd:true`` writes the newest record first: misdated detection follows record ids, so a
    sparse log with users at both ends gives the same report either way."""
    records = [Rec("4624", utc(2023, 12, 27, 9), 1, user="bob", sid="S-1-5-21-1-2-3-1200"),
               *noise(utc(2024, 1, 1), utc(2024, 3, 28), HOUR, 2)]
    records.append(Rec("4624", utc(2024, 4, 2, 9), records[-1].record_id + 1))
    forward = report([write(tmp_path / "forward", records, "xml")])
    backward = report([write(tmp_path / "backward", list(reversed(records)), "xml")])
    assert forward.misdated == backward.misdated == ()
    assert users(forward) == users(backward)
    assert users(backward)["2023-12"] == ("S-1-5-21-1-2-3-1200",) and users(backward)["2024-04"] == (
        "S-1-5-21-1-2-3-1105",)
