"""The command line: exact outputs and exit codes, determinism, config, and bad input."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evtrack.cli import app

from .conftest import logon_4624, lsm, write_events

runner = CliRunner()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from evtrack.synth import write_sample

    out = tmp_path_factory.mktemp("fleet")
    write_sample(out, users=6, hosts=2, start=date(2024, 1, 1), end=date(2024, 2, 29), seed=11, noise_ratio=0.3)
    return out


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("events", "report", "sample", "config"):
        assert command in result.output


def test_events_csv_to_stdout(tmp_path: Path) -> None:
    path = write_events(tmp_path / "x.xml", logon_4624(10, user="=HYPERLINK(\"http://x\")"), lsm(21, address="YEREL"))
    result = runner.invoke(app, ["events", str(path), "-q"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["event_id"], r["rdp"], r["reason"]) for r in rows] == [("4624", "true", "4624_lt10"),
                                                                     ("21", "false", "lsm21_console")]
    assert rows[0]["user"] == "'=HYPERLINK(\"http://x\")"


def test_events_parquet_needs_an_output_file(tmp_path: Path) -> None:
    path = write_events(tmp_path / "x.xml", logon_4624(10))
    result = runner.invoke(app, ["events", str(path), "--format", "parquet"])
    assert result.exit_code == 1
    assert "needs --output" in result.output
    out = tmp_path / "e.parquet"
    assert runner.invoke(app, ["events", str(path), "--format", "parquet", "-o", str(out), "-q"]).exit_code == 0
    import pyarrow.parquet as pq

    assert pq.read_table(out).num_rows == 1


def test_events_refuses_to_overwrite_an_input(tmp_path: Path) -> None:
    path = write_events(tmp_path / "x.xml", logon_4624(10))
    before = path.read_bytes()
    result = runner.invoke(app, ["events", str(path), "-o", str(path), "-q"])
    assert result.exit_code == 1 and "refusing to overwrite input file" in result.output
    assert path.read_bytes() == before


def test_bad_inputs_are_named_and_strict_fails(tmp_path: Path) -> None:
    good = write_events(tmp_path / "x.xml", logon_4624(10))
    bad = tmp_path / "notes.evtx"
    bad.write_text("not a log", encoding="utf-8")
    result = runner.invoke(app, ["events", str(good), str(bad)])
    assert result.exit_code == 0
    assert f"failed: {bad}: not an event log" in result.stderr
    assert runner.invoke(app, ["events", str(good), str(bad), "--strict"]).exit_code == 1


def test_report_json_is_deterministic_with_a_pinned_creation_time(fleet: Path) -> None:
    args = ["report", str(fleet), "--format", "json", "--created-at", "2024-06-01T00:00:00Z", "-q", "--installed", "4"]
    first = runner.invoke(app, args)
    second = runner.invoke(app, [*args, "--jobs", "1"])
    assert first.exit_code == 0, first.output
    assert first.stdout == second.stdout
    data = json.loads(first.stdout)
    assert data["created_at"] == "2024-06-01T00:00:00Z"
    assert data["installed"] == 4


def test_source_date_epoch_pins_the_creation_time(fleet: Path) -> None:
    result = runner.invoke(app, ["report", str(fleet), "-f", "json", "-q"], env={"SOURCE_DATE_EPOCH": "1717200000"})
    assert json.loads(result.stdout)["created_at"] == "2024-06-01T00:00:00Z"


def test_check_exit_codes(fleet: Path) -> None:
    over = runner.invoke(app, ["report", str(fleet), "--installed", "1", "--check", "-q"])
    assert over.exit_code == 3
    incomplete = runner.invoke(app, ["report", str(fleet), "--installed", "1000", "--check", "-q"])
    assert incomplete.exit_code == 4  # the first and last months are only partly covered
    assert runner.invoke(app, ["report", str(fleet), "--installed", "1000", "-q"]).exit_code == 0


def test_csv_per_user_and_per_window(fleet: Path) -> None:
    users = runner.invoke(app, ["report", str(fleet), "-f", "csv", "-q", "--bom"])
    assert users.stdout.startswith("\ufeffUser,CAL Type,Estimated Expiration Date")
    rows = list(csv.DictReader(io.StringIO(users.stdout.lstrip("\ufeff"))))
    assert rows and all(r["CAL Type"] == "RDS Per User CAL" for r in rows)
    windows = runner.invoke(app, ["report", str(fleet), "-f", "csv", "--per", "window", "-q", "--no-bom"])
    labels = [r["Window"] for r in csv.DictReader(io.StringIO(windows.stdout))]
    assert labels == ["2024-01", "2024-02"]


def test_table_fits_80_columns(fleet: Path) -> None:
    result = runner.invoke(app, ["report", str(fleet), "-q", "--installed", "3"])
    assert result.exit_code == 0
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert "Verdict: OVER BY" in result.stdout


def test_config_file_and_flags(tmp_path: Path, fleet: Path) -> None:
    config = tmp_path / "evtrack.toml"
    config.write_text('installed = 7\ntz = "Europe/Berlin"\n[aliases]\n"contoso.local" = "CONTOSO"\n'
                      '[exclude]\nnames = ["CONTOSO\\\\alice"]\n', encoding="utf-8")
    shown = runner.invoke(app, ["config", "show", "--config", str(config), "--installed", "9"])
    assert shown.exit_code == 0
    assert "installed = 9" in shown.stdout and "tz = 'Europe/Berlin'" in shown.stdout
    report = runner.invoke(app, ["report", str(fleet), "--config", str(config), "-f", "json", "-q"])
    data = json.loads(report.stdout)
    assert data["installed"] == 7 and data["tz"] == "Europe/Berlin"
    assert [e["name"] for e in data["excluded"]] == ["CONTOSO\\alice"]


@pytest.mark.parametrize(("args", "message"), [
    (["--tz", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
    (["--window", "fortnight"], "unknown window 'fortnight'"),
    (["--from", "2024-13-01"], "not a date: '2024-13-01'"),
])
def test_bad_settings_give_clear_errors(fleet: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["report", str(fleet), "-q", *args])
    assert result.exit_code == 1
    assert message in result.output


def test_bad_config_file(tmp_path: Path, fleet: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("installed = 'many'\n", encoding="utf-8")
    result = runner.invoke(app, ["report", str(fleet), "--config", str(config)])
    assert result.exit_code == 1 and "installed must be a whole number" in result.output


def test_config_written_by_notepad_with_a_bom(tmp_path: Path, fleet: Path) -> None:
    config = tmp_path / "evtrack.toml"
    config.write_text("\ufeffinstalled = 5\n", encoding="utf-8")
    result = runner.invoke(app, ["config", "show", "--config", str(config)])
    assert result.exit_code == 0 and "installed = 5" in result.stdout


def test_unescaped_backslash_in_config_gets_a_hint(tmp_path: Path) -> None:
    config = tmp_path / "evtrack.toml"
    config.write_text('[exclude]\nnames = ["CONTOSO\\adm-alice"]\n', encoding="utf-8")
    result = runner.invoke(app, ["config", "show", "--config", str(config)])
    assert result.exit_code == 1 and "single quotes" in result.output


@pytest.mark.parametrize("args", [["--to", "9999-12-31"], ["--from", "0001-01-01"], ["--as-of", "9999-12-31"],
                                  ["--created-at", "9999-12-31"], ["--window", "rolling:100000000d"]])
def test_absurd_dates_and_windows_are_clear_errors(fleet: Path, args: list[str]) -> None:
    result = runner.invoke(app, ["report", str(fleet), "-q", *args])
    assert result.exit_code == 1
    assert "error:" in result.output and "Traceback" not in result.output


def test_nothing_readable_is_an_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", str(tmp_path / "typo.evtx")])
    assert result.exit_code == 1 and "none of the inputs could be read" in result.output


def test_a_failed_input_makes_coverage_incomplete(tmp_path: Path, fleet: Path) -> None:
    result = runner.invoke(app, ["report", str(fleet), str(tmp_path / "typo.evtx"), "--installed", "1000", "--check",
                                 "-q", "--from", "2024-02-01", "--to", "2024-02-29"])
    assert result.exit_code == 4


def test_events_from_the_store_as_parquet(tmp_path: Path, fleet: Path) -> None:
    import pyarrow.parquet as pq

    store = tmp_path / "store.sqlite3"
    assert runner.invoke(app, ["ingest", str(fleet), "--store", str(store), "-q"]).exit_code == 0
    out = tmp_path / "events.parquet"
    result = runner.invoke(app, ["events", "--store", str(store), "-f", "parquet", "-o", str(out)])
    assert result.exit_code == 0, result.output
    direct = runner.invoke(app, ["events", str(fleet), "-f", "parquet", "-o", str(tmp_path / "direct.parquet"), "-q"])
    assert direct.exit_code == 0
    stored, read = pq.read_table(out), pq.read_table(tmp_path / "direct.parquet")
    distinct = {(r["host"], r["channel"], r["record_id"], r["time"]) for r in read.to_pylist()}
    assert stored.num_rows == len(distinct) > 0  # the overlapping re-export is stored once
    assert runner.invoke(app, ["events", str(fleet), "--store", str(store)]).exit_code == 1


def test_csv_keeps_non_ascii_names_and_neutralises_formulas(tmp_path: Path) -> None:
    path = write_events(tmp_path / "x.xml", logon_4624(10, user="İlker", domain="KONTOSO", sid="S-1-5-21-1-2-3-1200"),
                        logon_4624(10, user="ローカル太郎", domain="KONTOSO", sid="S-1-5-21-1-2-3-1201", record_id=2),
                        logon_4624(10, user="@SUM(A1)", domain="KONTOSO", sid="S-1-5-21-1-2-3-1202", record_id=3))
    result = runner.invoke(app, ["report", str(path), "-f", "csv", "-q"])
    rows = {r["User"] for r in csv.DictReader(io.StringIO(result.stdout.removeprefix("\ufeff")))}
    assert rows == {"KONTOSO\\İlker", "KONTOSO\\ローカル太郎", "KONTOSO\\@SUM(A1)"}  # not at the start of the cell
    raw = runner.invoke(app, ["report", str(path), "-f", "csv", "-q", "--raw-csv"])
    assert "KONTOSO\\@SUM(A1)" in raw.stdout
    hostile = write_events(tmp_path / "y.xml", logon_4624(10, user="=cmd|' /C calc'!A0", domain="", sid="S-1-5-21-9"))
    out = runner.invoke(app, ["report", str(hostile), "-f", "csv", "-q"]).stdout
    assert "\"'=cmd|' /C calc'!A0\"" in out or "'=cmd|' /C calc'!A0" in out
