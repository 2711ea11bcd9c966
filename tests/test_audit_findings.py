"""An auditor's attacks on ``evtrack report --check`` that found a wrong answer. Each test builds its input with
evtrack.synth (through tests/exports.py) and asserts the honest answer worked out by hand in its docstring; each is
``xfail(strict=True)`` until the defect is fixed, so the suite stays green and a fix shows up as an XPASS."""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evtrack.cli import app
from evtrack.cli.errors import EXIT_USAGE

from .conftest import LSM_CHANNEL
from .exports import Rec, noise, write
from .factories import utc

runner = CliRunner()
HALF_HOUR = timedelta(minutes=30)
ALICE = "S-1-5-21-1-2-3-1105"
BOB = "S-1-5-21-1-2-3-1106"
FILE_HEADER = 4096
CHUNK = 65536


def numbered(records: Sequence[Rec]) -> list[Rec]:
    """The records in time order with consecutive EventRecordIDs from 1, as one log writes them."""
    ordered = sorted(records, key=lambda r: r.time)
    return [dataclasses.replace(r, record_id=i) for i, r in enumerate(ordered, start=1)]


def cli(*args: str) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, ["report", *args, "-f", "json", "-q", "--created-at", "2024-06-01"])
    assert result.exit_code in (0, 3, 4), result.output
    return result.exit_code, json.loads(result.stdout)


def security_log(tmp_path: Path, logons: Sequence[Rec], start: datetime, end: datetime) -> tuple[Path, list[Rec]]:
    """One host's Security log: a noise record every 30 minutes from ``start`` to ``end`` and the ``logons``."""
    records = numbered([*noise(start, end, HALF_HOUR, 1), *logons])
    return write(tmp_path / "RDSH01-Security", records, "evtx"), records


def chunk_holding(path: Path, record_id: int) -> int:
    """The index of the chunk whose header names ``record_id`` among its records."""
    data = path.read_bytes()
    for index in range((len(data) - FILE_HEADER) // CHUNK):
        first, last = struct.unpack_from("<QQ", data, FILE_HEADER + index * CHUNK + 8)
        if first <= record_id <= last:
            return index
    raise AssertionError(f"no chunk holds record {record_id}")


def _january_partial_and_judged(*paths: str) -> None:
    """With one installed CAL: January partial with 1 user (records lost in it), February and March complete, and
    January judged all the same: coverage not complete, --check exits 4."""
    code, report = cli(*paths, "--installed", "1", "--check")
    windows = {w["label"]: w for w in report["windows"]}  # type: ignore[attr-defined]
    assert windows["2024-01"]["status"] == "partial" and windows["2024-01"]["users"] == 1
    assert windows["2024-02"]["status"] == windows["2024-03"]["status"] == "complete"
    assert "2024-01" in report["verdict_windows"]  # type: ignore[operator]
    assert report["coverage_complete"] is False
    assert code == 4


def test_check_without_an_installed_count_is_no_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--check`` promises exit 0 only when the estimate is within the installed count and coverage is complete.
    With no installed count at all (no --installed, no EVTRACK_INSTALLED, no config: a scheduled task started in
    another working folder loses evtrack.toml) nothing is judged: the verdict is "no installed count".

    By hand: a Security log from 2023-12-31 to 2024-04-01 00:10 UTC, alice logs on 15 January: January to March
    are complete, 1 user each where she is seen. There is no number to be within, so the honest exit code is not 0
    (an error, or 4 "cannot judge"). evtrack exits 0."""
    path, _ = security_log(tmp_path, [Rec("4624", utc(2024, 1, 15, 9), 0, sid=ALICE)],
                           utc(2023, 12, 31), utc(2024, 4, 1, 0, 10))
    monkeypatch.chdir(tmp_path)  # no evtrack.toml here
    for name in ("EVTRACK_INSTALLED", "EVTRACK_CONFIG", "EVTRACK_KEYPACKS"):
        monkeypatch.delenv(name, raising=False)
    result = runner.invoke(app, ["report", str(path), "--check", "-f", "json", "-q"])
    assert json.loads(result.stdout)["verdict"] == "no installed count"  # the report is still written
    assert result.exit_code == EXIT_USAGE
    assert "--check needs the installed Per User CAL count" in result.stderr


def test_a_lost_chunk_in_the_first_full_month_is_no_pass(tmp_path: Path) -> None:
    """One session host, Security log only, a record every 30 minutes from 2023-12-31 00:00 to 2024-04-01 00:10 UTC
    (so December and April are only cut into by the export; January, February and March are covered end to end).
    alice logs on (4624 type 10) on 15 January, 15 February and 15 March; bob once, on 20 January. One installed CAL.

    Then the chunk that holds bob's logon is damaged (bytes flipped: its CRC32 fails), as a bad copy does. evtrack
    rightly skips that chunk and leaves a hole in January (January: 1 user, partial).

    By hand: January's true count is 2 (alice, bob) > 1 installed; evtrack cannot know bob, but it knows January
    lost records, so January is a lower bound inside the span of the logs (not a month an export only cuts into)
    and the verdict over January-March must be "within (lower bound)" with --check exiting 4 (never 0), and the
    report must not say coverage is complete. evtrack rests the verdict on February-March only (the first month
    it finds complete), says "within", coverage complete, and exits 0."""
    logons = [Rec("4624", utc(2024, 1, 15, 9, 5), 0, sid=ALICE), Rec("4624", utc(2024, 2, 15, 9, 5), 0, sid=ALICE),
              Rec("4624", utc(2024, 3, 15, 9, 5), 0, sid=ALICE),
              Rec("4624", utc(2024, 1, 20, 9, 5), 0, user="bob", sid=BOB)]
    path, records = security_log(tmp_path, logons, utc(2023, 12, 31), utc(2024, 4, 1, 0, 10))
    bob = next(r.record_id for r in records if r.user == "bob" and r.what == "4624")
    index = chunk_holding(path, bob)
    data = bytearray(path.read_bytes())
    spot = FILE_HEADER + index * CHUNK + 1024
    data[spot:spot + 8] = bytes(b ^ 0xFF for b in data[spot:spot + 8])
    path.write_bytes(bytes(data))

    _january_partial_and_judged(str(path))


def test_an_events_dataset_missing_a_month_partition_is_no_pass(tmp_path: Path) -> None:
    """A Security log from 2023-12-31 to 2024-04-01 00:10 UTC (January-March covered end to end); alice logs on
    15 January, 15 February and 15 March. One installed CAL. `evtrack events -f parquet -o DIR/` writes the
    dataset (month=2023-12 ... month=2024-04) with _evtrack_coverage.json, whose ``rows`` counts every row.
    Then the month=2024-02 folder is lost (a partial copy, a retention job, an `aws s3 sync` that stopped).

    By hand: February had 1 user (alice); the rows that prove it are gone, while the sidecar still says the logs
    cover February and holds more rows than the dataset now has. The honest answer is not "February: complete,
    0 users" with exit 0: February is unknown (or the dataset is refused as incomplete), and --check does not
    exit 0. evtrack reads the remaining partitions, says February is complete with 0 users, and exits 0."""
    logons = [Rec("4624", utc(2024, month, 15, 9, 5), 0, sid=ALICE) for month in (1, 2, 3)]
    path, _ = security_log(tmp_path, logons, utc(2023, 12, 31), utc(2024, 4, 1, 0, 10))
    dataset = tmp_path / "events"
    made = runner.invoke(app, ["events", str(path), "-f", "parquet", "-o", f"{dataset}/", "-q"])
    assert made.exit_code == 0, made.output
    whole = runner.invoke(app, ["report", "--events", str(dataset), "--installed", "1", "-f", "json", "-q"])
    assert {w["label"]: w["users"] for w in json.loads(whole.stdout)["windows"]}["2024-02"] == 1
    for part in (dataset / "month=2024-02").iterdir():
        part.unlink()
    (dataset / "month=2024-02").rmdir()

    result = runner.invoke(app, ["report", "--events", str(dataset), "--installed", "1", "--check", "-f", "json",
                                 "-q", "--created-at", "2024-06-01"])
    assert result.exit_code == 1  # the dataset is refused: it holds fewer rows than its sidecar says were written
    assert "rows where its _evtrack_coverage.json says" in result.stderr and "part of the dataset is missing" in (
        " ".join(result.stderr.split()))


@pytest.mark.parametrize("shape", ["evtx", "xml"])
def test_a_file_cut_short_is_no_pass(tmp_path: Path, shape: str) -> None:
    """The only session host's Security log, a record every 30 minutes from 2023-12-31 00:00 to 2024-04-01 00:10
    UTC; alice logs on 15 January, 15 February and 15 March; bob once, on 25 March. One installed CAL. The copy of
    the file stopped part-way through the record before bob's logon (.evtx: inside the chunk that holds it; XML: in
    the middle of an element), and evtrack names the file as cut short / malformed on stderr.

    By hand: March truly has 2 users (alice, bob) > 1 installed. The export ran to 1 April; it is the copy that
    lost the rest, which evtrack knows. So March is a lower bound that the verdict must not silently drop as a
    month "the exports only cut into": January-March judged, verdict "within (lower bound)" (bob is unseeable),
    coverage not complete, --check exits 4, never 0. evtrack rests the verdict on January-February, says within,
    coverage complete, and exits 0."""
    logons = [*(Rec("4624", utc(2024, month, 15, 9, 5), 0, sid=ALICE) for month in (1, 2, 3)),
              Rec("4624", utc(2024, 3, 25, 9, 5), 0, user="bob", sid=BOB)]
    records = numbered([*noise(utc(2023, 12, 31), utc(2024, 4, 1, 0, 10), HALF_HOUR, 1), *logons])
    bob = next(r.record_id for r in records if r.user == "bob" and r.what == "4624")
    path = write(tmp_path / "RDSH01-Security", records, shape)
    data = path.read_bytes()
    if shape == "evtx":
        cut = FILE_HEADER + chunk_holding(path, bob) * CHUNK + CHUNK // 2
    else:
        cut = data.index(f">{bob - 1}</EventRecordID>".encode()) - 200
    path.write_bytes(data[:cut])

    code, report = cli(str(path), "--installed", "1", "--check")
    windows = {w["label"]: w for w in report["windows"]}  # type: ignore[attr-defined]
    assert windows["2024-03"]["status"] == "partial" and windows["2024-03"]["users"] == 1
    assert "2024-03" in report["verdict_windows"]  # type: ignore[operator]
    assert report["coverage_complete"] is False
    assert code == 4


def test_a_user_of_unknown_domain_is_not_silently_out_of_scope(tmp_path: Path) -> None:
    """One host, Security and LocalSessionManager logs from 2023-12-01 to 2024-04-01 01:00 UTC (a record every 6
    hours). CORP\\alice (with her SID) logs on 5 February (4624 type 10 and its LSM 21). An LSM 21 from
    10.0.0.5 names the bare account ``bob`` on 12 February: no DOMAIN\\bob appears anywhere, so evtrack keeps him
    apart as "?\\bob" (domain?), and without a scope counts him: February 2 users, over 1 installed (right).

    With ``--scope domain:CORP`` and 1 installed CAL: bob may well be CORP\\bob (a bare name is the usual form in
    `query user` polls and some LSM events). By hand, February's CORP users are 1 (alice) or 2 (alice, bob), so the
    honest verdict is at best "within (lower bound)" with --check exiting 4 — or bob counted (over by 1, exit 3).
    evtrack drops bob as out of scope (a note says "1 user(s) ... outside the scope"), says "within", exits 0."""
    six_hours = timedelta(hours=6)
    start, end = utc(2023, 12, 1), utc(2024, 4, 1, 1)
    sec = numbered([*noise(start, end, six_hours, 1),
                    Rec("4624", utc(2024, 2, 5, 9), 0, domain="CORP", sid=ALICE)])
    lsm = numbered([*noise(start, end, six_hours, 1, channel=LSM_CHANNEL),
                    Rec("lsm21", utc(2024, 2, 5, 9, 0, 5), 0, domain="CORP", channel=LSM_CHANNEL),
                    Rec("lsm21", utc(2024, 2, 12, 9), 0, user="bob", domain="", session=5, channel=LSM_CHANNEL)])
    paths = [str(write(tmp_path / "sec", sec, "evtx")), str(write(tmp_path / "lsm", lsm, "evtx"))]
    period = ["--from", "2024-01-01", "--to", "2024-03-31", "--installed", "1", "--check"]

    code, unscoped = cli(*paths, *period)
    assert code == 3 and {w["label"]: w["users"] for w in unscoped["windows"]}["2024-02"] == 2  # type: ignore[attr-defined]

    code, scoped = cli(*paths, *period, "--scope", "domain:CORP")
    assert {w["label"]: w["users"] for w in scoped["windows"]}["2024-02"] == 1  # type: ignore[attr-defined]
    assert scoped["verdict"] != "within"
    assert code != 0


def test_a_user_missing_from_the_directory_is_not_silently_out_of_an_ou_scope(tmp_path: Path) -> None:
    """One host's Security log from 2023-12-01 to 2024-04-01 01:00 UTC (a record every 6 hours). CONTOSO\\alice
    and CONTOSO\\bob (each with a SID) log on in February (4624 type 10). The Get-ADUser export lists alice in
    OU=Sales; bob is not in it (his account was deleted after he used RDS, or created after the export was taken).
    One installed CAL, ``--scope ou:OU=Sales,DC=contoso,DC=local``.

    By hand: alice is in Sales; bob's OU is unknown, so February's Sales users are 1 or 2. The honest verdict is at
    best "within (lower bound)" with --check exiting 4 (or bob counted: over by 1, exit 3). evtrack drops bob as
    "outside the scope" (a note), says "within" and exits 0."""
    six_hours = timedelta(hours=6)
    sec = numbered([*noise(utc(2023, 12, 1), utc(2024, 4, 1, 1), six_hours, 1),
                    Rec("4624", utc(2024, 2, 5, 9), 0, sid=ALICE),
                    Rec("4624", utc(2024, 2, 12, 9), 0, user="bob", sid=BOB)])
    path = write(tmp_path / "sec", sec, "evtx")
    directory = tmp_path / "users.csv"
    directory.write_text(
        "#TYPE Microsoft.ActiveDirectory.Management.ADUser\n"
        "DistinguishedName,Enabled,Name,SamAccountName,SID,UserPrincipalName\n"
        f'"CN=Alice,OU=Sales,DC=contoso,DC=local",True,Alice,alice,{ALICE},alice@contoso.local\n',
        encoding="utf-8-sig")
    period = ["--from", "2024-01-01", "--to", "2024-03-31", "--installed", "1", "--check"]
    code, everyone = cli(str(path), *period)
    assert code == 3 and {w["label"]: w["users"] for w in everyone["windows"]}["2024-02"] == 2  # type: ignore[attr-defined]

    code, sales = cli(str(path), *period, "--directory", str(directory), "--netbios", "CONTOSO",
                      "--scope", "ou:OU=Sales,DC=contoso,DC=local")
    assert {w["label"]: w["users"] for w in sales["windows"]}["2024-02"] == 1  # type: ignore[attr-defined]
    assert sales["verdict"] != "within"
    assert code != 0


def test_a_hole_between_exports_in_the_first_full_month_is_no_pass(tmp_path: Path) -> None:
    """One host's Security log, exported twice: the first file runs from 2023-12-31 00:00 to 2024-01-10 00:00 UTC
    (EventRecordIDs 1..N), the second from 2024-01-20 00:00 to 2024-04-01 00:10 (ids from N + 800: the log rolled
    over between the exports and 799 records were never exported). A record every 30 minutes in each; alice logs on
    5 January, 15 February and 15 March; bob on 15 January, inside the lost stretch (so no file holds him). One
    installed CAL.

    By hand: January truly has 2 users (alice, bob) > 1 installed. The ids do not join, so 10-20 January is a
    hole and January is partial with 1 user (evtrack gets this right). The hole lies inside the span the logs
    cover (2023-12-31 .. 2024-04-01): January is not a month "the exports only cut into" at the edge of the data,
    so it must stay in the verdict: "within (lower bound)", coverage not complete, --check exit 4. evtrack judges
    only February-March, says within, coverage complete, and exits 0."""
    first = numbered([*noise(utc(2023, 12, 31), utc(2024, 1, 10), HALF_HOUR, 1),
                      Rec("4624", utc(2024, 1, 5, 9, 5), 0, sid=ALICE)])
    rest = numbered([*noise(utc(2024, 1, 20), utc(2024, 4, 1, 0, 10), HALF_HOUR, 1),
                     *(Rec("4624", utc(2024, month, 15, 9, 5), 0, sid=ALICE) for month in (2, 3))])
    rest = [dataclasses.replace(r, record_id=r.record_id + first[-1].record_id + 799) for r in rest]
    paths = [write(tmp_path / "Security-1", first, "evtx"), write(tmp_path / "Security-2", rest, "evtx")]

    _january_partial_and_judged(*map(str, paths))


def test_a_compressed_export_in_the_folder_is_no_pass(tmp_path: Path) -> None:
    """A folder with two session hosts' Security logs, a record every 2 hours from 2023-12-31 to 2024-04-01 01:00
    UTC: RDSH01-Security.evtx (alice logs on 5 February) and RDSH02's log gzipped as it was shipped,
    RDSH02-Security.evtx.gz (bob logs on 6 February). One installed CAL.

    By hand: February has 2 users (alice on RDSH01, bob on RDSH02) > 1 installed. evtrack may read the .gz (over by
    1, exit 3) or name it as an export it cannot read (a failed input: RDSH02 not covered, exit 4); either way
    --check must not exit 0, and the file must be among the report's inputs. evtrack counts it as "ignored (not
    event logs)" on stderr only, leaves it out of the report's inputs, never learns RDSH02 exists, reports
    February complete with 1 user and exits 0."""
    import gzip

    two_hours = timedelta(hours=2)
    start, end = utc(2023, 12, 31), utc(2024, 4, 1, 1)
    rdsh01 = numbered([*noise(start, end, two_hours, 1), Rec("4624", utc(2024, 2, 5, 9, 5), 0, sid=ALICE)])
    rdsh02 = numbered([*noise(start, end, two_hours, 1, host="RDSH02.contoso.local"),
                       Rec("4624", utc(2024, 2, 6, 9, 5), 0, host="RDSH02.contoso.local", user="bob", sid=BOB)])
    folder = tmp_path / "exports"
    folder.mkdir()
    write(folder / "RDSH01-Security", rdsh01, "evtx")
    shipped = write(tmp_path / "RDSH02-Security", rdsh02, "evtx")
    (folder / "RDSH02-Security.evtx.gz").write_bytes(gzip.compress(shipped.read_bytes()))

    result = runner.invoke(app, ["report", str(folder), "--installed", "1", "--check", "-f", "json", "-q",
                                 "--created-at", "2024-06-01"])
    assert result.exit_code == 4  # a failed input: RDSH02 is not covered, the report a lower bound
    report = json.loads(result.stdout)
    (archive,) = [i for i in report["inputs"] if str(i["path"]).endswith("RDSH02-Security.evtx.gz")]
    assert archive["error"] == ("a gzip archive: evtrack reads no archives; extract it and give the files inside "
                                "(or move it out of the folder)")


def test_azure_coverage_without_any_evidence_rows_is_not_zero_users(tmp_path: Path) -> None:
    """`evtrack sample --sources azure` (6 users, 2 hosts, January-April 2024, seed 1): the SecurityEvent evidence
    comes as two exports (SecurityEvent-1.csv: January-February, SecurityEvent-2.json: March-April, logons of
    every type) and one coverage export (coverage.json: Records per host and hour, January-April). From all three
    evtrack's April count is 6, as in ground_truth.json. Then SecurityEvent-2.json is left out (one of two exports
    forgotten, or exported with last month's range).

    By hand: the coverage export says both hosts logged Security records in every hour of April, yet no evidence
    export holds a single April row of any kind (not even a network logon). April's users are not known: the
    honest status is unknown (or at least partial, a lower bound), never "complete, 0 users", and --check does not
    exit 0. evtrack reported April complete with 0 users (March complete with 4 of 6) and exited 0. Now the stated
    hours count only within a week of an evidence export's rows: March is partial (4 of 6), April unknown, a note
    says why, and --check exits 4; the same from a store and from an events dataset."""
    from datetime import date

    from evtrack.synth import write_sample

    write_sample(tmp_path, users=6, hosts=2, start=date(2024, 1, 1), end=date(2024, 4, 30), seed=1,
                 noise_ratio=0.3, sources="azure")
    truth = json.loads((tmp_path / "ground_truth.json").read_text(encoding="utf-8"))
    assert truth["months"]["2024-04"]["user_count"] == 6
    azure = tmp_path / "azure"
    code, whole = cli(str(azure), "--installed", "6", "--check")
    assert {w["label"]: w["users"] for w in whole["windows"]}["2024-04"] == 6  # type: ignore[attr-defined]
    (azure / "SecurityEvent-2.json").unlink()

    code, report = cli(str(azure), "--installed", "6", "--check")
    april = {w["label"]: w for w in report["windows"]}["2024-04"]  # type: ignore[attr-defined]
    assert not (april["status"] == "complete" and april["users"] == 0)
    assert code != 0
    windows = [(w["label"], w["users"], w["status"]) for w in report["windows"]]  # type: ignore[attr-defined]
    assert windows == [("2024-01", 6, "complete"), ("2024-02", 6, "complete"), ("2024-03", 4, "partial"),
                       ("2024-04", None, "unknown")]
    assert any("no evidence export holds a row within a week" in note for note in report["notes"])  # type: ignore
    store, dataset = tmp_path / "store.sqlite3", tmp_path / "events"
    assert runner.invoke(app, ["ingest", str(azure), "--store", str(store), "-q"]).exit_code == 0
    assert runner.invoke(app, ["events", str(azure), "-f", "parquet", "-o", f"{dataset}/", "-q"]).exit_code == 0
    for where in (["--store", str(store)], ["--events", str(dataset)]):
        code, other = cli(*where, "--installed", "6", "--check")
        assert code == 4
        assert [(w["label"], w["users"], w["status"]) for w in other["windows"]] == windows  # type: ignore
