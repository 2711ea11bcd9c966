"""``evtrack sample --sources all`` (issue 14, "Across sources"): every evidence source is written from one workload
model, and the one pipeline reading each source alone, and all of them together, gives exactly the users the
model's per-source ground truth says (computed by evtrack.synth, never by evtrack's counting code).

The sample: 6 users, 2 session hosts, 15 January to 29 February 2024 in Europe/Berlin, seed 7, polls every 2 hours.
With 2-hour polls the polls miss erin's only session in February (shorter than 2 hours, between two polls): the
broker and query user truths then differ from the others', so a source read in place of another would show. erin
has no session in January: the month's WVD attempt (Started only) and gateway attempt (200/300 without 302) are
hers, so counting an attempt would add her.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from evtrack import catalogue
from evtrack.cli import app
from evtrack.pipeline import FilesInput, run
from evtrack.reading import ReadResult
from evtrack.report import Report
from evtrack.sources import pyevtx_rs
from evtrack.sources.base import FileStats, RawEvent, datetime_to_us
from evtrack.synth.sources import SOURCES
from evtrack.usage import ReportSettings

ARGS = ["--users", "6", "--hosts", "2", "--from", "2024-01-15", "--to", "2024-02-29", "--tz", "Europe/Berlin",
        "--seed", "7", "--noise-ratio", "0.2", "--poll-minutes", "120"]
#: How the report names each source (WindowUsage.sources, UserUsage.sources).
LABELS = {"logs": "session host logs", "broker": "Connection Broker polls", "quser": "query user polls",
          "azure": "Azure Monitor", "wvd": "Azure Virtual Desktop", "gateway": "RD Gateway"}
POLLED = {"broker", "quser"}
RESTING = {"broker", "quser", "gateway"}
MONTHS = ["2024-01", "2024-02"]
FEBRUARY_US = datetime_to_us(datetime(2024, 1, 31, 23, tzinfo=timezone.utc))


def read_evtx(path: Path) -> list[RawEvent]:
    return list(pyevtx_rs.READER.read(path, FileStats(path), plan=catalogue.read_plan()))


def write(folder: Path, *extra: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["sample", "-o", str(folder), *ARGS, *extra, "-q"])
    assert result.exit_code == 0, result.output
    truth: dict[str, Any] = json.loads((folder / "ground_truth.json").read_text(encoding="utf-8"))
    return truth


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("sample")
    return folder, write(folder, "--sources", "all")


def settings(truth: dict[str, Any]) -> ReportSettings:
    """The settings ground_truth.json says the sources need: the zone and culture of their local times, the UPN
    suffix's domain (WVD), the domain of query user's bare names."""
    how = truth["source_settings"]
    return ReportSettings(tz=truth["parameters"]["tz"], input_tz=how["input_tz"], culture=how["culture"],
                          aliases=how["aliases"], default_domain=how["default_domain"],
                          created_at=datetime(2024, 6, 1, tzinfo=timezone.utc))


def inputs(folder: Path, source: str) -> list[Path]:
    if source == "logs":
        return sorted(folder.glob("*.evtx"))
    return [folder] if source == "all" else [folder / source]


@pytest.fixture(scope="module")
def reports(sample: tuple[Path, dict[str, Any]]) -> dict[str, tuple[Report, ReadResult]]:
    folder, truth = sample
    built: dict[str, tuple[Report, ReadResult]] = {}
    for source in (*SOURCES, "all"):
        reads: list[ReadResult] = []
        built[source] = run(FilesInput(inputs(folder, source), on_read=reads.append), settings(truth)), reads[0]
    return built


def accounts(truth: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    """The report's user keys as the model's accounts (a SID where the source gave one, else ``domain\\sam``)."""
    by_sid = {u["sid"]: u["account"] for u in truth["users"]}
    return sorted(by_sid.get(key, key) for key in keys)


# -- the sample ---------------------------------------------------------------------------------------------------


def test_every_source_has_its_folder_files_and_truth(sample: tuple[Path, dict[str, Any]]) -> None:
    folder, truth = sample
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == sorted(s for s in SOURCES if s != "logs")
    assert set(truth["sources"]) == {*SOURCES, "all"}
    for source in SOURCES[1:]:
        assert truth["sources"][source]["files"] == len(list((folder / source).iterdir())), source
    assert len(list(folder.glob("*.evtx"))) == len(truth["files"]) == 7
    # 46 days of 2-hour polls: 552 broker polls; query user skips a German host's empty poll (no file)
    assert truth["sources"]["broker"]["files"] == 46 * 12
    assert 46 * 12 < truth["sources"]["quser"]["files"] < 2 * 46 * 12
    for label in MONTHS:
        union = sorted({a for s in SOURCES for a in truth["sources"][s]["months"][label]})
        assert truth["sources"]["all"]["months"][label] == union
        assert truth["sources"]["logs"]["months"][label] == [u["account"] for u in truth["months"][label]["users"]]


def test_the_sources_truths_differ_where_the_model_says(sample: tuple[Path, dict[str, Any]]) -> None:
    """Not a vacuous comparison: the polls miss erin in February, which every other source shows; nobody shows
    her in January."""
    months = {s: t["months"] for s, t in sample[1]["sources"].items()}
    for source in POLLED:
        assert set(months["all"]["2024-02"]) - set(months[source]["2024-02"]) == {"contoso\\erin"}
        assert months[source]["2024-01"] == months["all"]["2024-01"]
    for source in ("logs", "azure", "wvd", "gateway"):
        assert months[source] == months["all"], source
    assert "contoso\\erin" not in months["all"]["2024-01"]


def test_evtx_and_ground_truth_do_not_depend_on_the_other_sources(sample: tuple[Path, dict[str, Any]],
                                                                  tmp_path: Path) -> None:
    """--sources adds folders and two keys; the .evtx and every other key are what --sources logs writes."""
    folder, truth = sample
    alone = write(tmp_path)
    assert "sources" not in alone and "source_settings" not in alone
    assert {k: v for k, v in truth.items() if k not in ("sources", "source_settings")} == alone
    for path in folder.glob("*.evtx"):
        assert path.read_bytes() == (tmp_path / path.name).read_bytes(), path.name


def test_the_attempts_that_never_connected_are_in_the_files(sample: tuple[Path, dict[str, Any]]) -> None:
    """erin, who has no session in January, tried on 15 January at noon: a WVD connection that stayed Started and
    a gateway authorisation (200, 300) without a 302."""
    folder, _ = sample
    with (folder / "wvd" / "WVDConnections.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["UserName"] == "erin@contoso.com"]
    january: dict[str, list[tuple[str, str]]] = {
        row["CorrelationId"]: [] for row in rows if row["TimeGenerated [Local Time]"].startswith("1/")}
    for row in rows:
        if row["CorrelationId"] in january:
            january[row["CorrelationId"]].append((row["TimeGenerated [Local Time]"], row["State"]))
    assert list(january.values()) == [[("1/15/2024, 11:59:50.000 AM", "Started")]]
    gateway = [e for e in read_evtx(folder / "gateway" / "RDGW01-Gateway.evtx") if e.time_us is not None]
    noon = datetime_to_us(datetime(2024, 1, 15, 11, tzinfo=timezone.utc))  # 12:00 in Berlin
    assert [e.event_id for e in gateway if noon - 10_000_000 <= (e.time_us or 0) <= noon + 10_000_000] == [200, 300]
    assert not [e for e in gateway if e.event_id in (302, 303) and (e.time_us or 0) < FEBRUARY_US
                and str(e.data.get("Username")).lower().endswith("\\erin")]


# -- reading them back --------------------------------------------------------------------------------------------


def test_every_file_reads_without_a_skipped_record(reports: dict[str, tuple[Report, ReadResult]]) -> None:
    for source, (_, read) in reports.items():
        assert not read.file_errors and read.skipped == 0, source


@pytest.mark.parametrize("source", SOURCES)
def test_each_source_alone_gives_its_truth(source: str, sample: tuple[Path, dict[str, Any]],
                                          reports: dict[str, tuple[Report, ReadResult]]) -> None:
    truth = sample[1]
    report, _ = reports[source]
    assert [w.label for w in report.windows] == MONTHS
    for window in report.windows:
        expected = truth["sources"][source]["months"][window.label]
        assert accounts(truth, window.user_keys) == expected, window.label
        assert window.sources == ((LABELS[source], len(expected)),), window.label
        # alone, polls and the gateway are all a host has: the count rests on them (a lower bound)
        assert window.rests_on == ((LABELS[source],) if source in RESTING else ()), window.label


def test_all_sources_together_give_the_union_one_person_per_user(
        sample: tuple[Path, dict[str, Any]], reports: dict[str, tuple[Report, ReadResult]]) -> None:
    """Broker DomainName+UserName, query user's bare names, WVD UPNs, SecurityEvent and gateway DOMAIN\\sam (or
    fqdn\\sam) all join the SID the session hosts' 4624 give: every user key is a SID, one per model user."""
    truth = sample[1]
    report, _ = reports["all"]
    sids = {u["sid"] for u in truth["users"]}
    for window in report.windows:
        assert accounts(truth, window.user_keys) == truth["sources"]["all"]["months"][window.label]
        assert set(window.user_keys) <= sids, window.label
        expected = {LABELS[s]: len(truth["sources"][s]["months"][window.label]) for s in SOURCES}
        assert dict(window.sources) == {k: v for k, v in expected.items() if v}, window.label
    for user in report.users:
        account = accounts(truth, (user.key,))[0]
        seen_by = {LABELS[s] for s in SOURCES if any(account in m for m in truth["sources"][s]["months"].values())}
        assert set(user.sources) == seen_by, account


# -- the command --------------------------------------------------------------------------------------------------


def test_help_names_every_source() -> None:
    text = " ".join(CliRunner().invoke(app, ["sample", "--help"]).output.replace("│", " ").split())
    for source in (*SOURCES, "all"):
        assert f"{source} (" in text or f"or {source}." in text, source


def test_an_unknown_source_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sample", "-o", str(tmp_path), "--sources", "logs,broker,ftp", "-q"])
    assert result.exit_code == 1
    assert "--sources: unknown source 'ftp': choose from logs, broker, quser, azure, wvd, gateway, all" in (
        result.output)
    assert not any(tmp_path.iterdir())
