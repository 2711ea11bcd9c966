"""Where the installed Per User CAL count came from: --installed, EVTRACK_INSTALLED, the config file or the key
packs; kept in the report (JSON, also when loading reports saved before the field existed) and shown by table,
HTML and JSON."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evtrack.cli import app
from evtrack.render.json import report_json
from evtrack.render.table import report_table
from evtrack.report import Report
from tests.fleet import fleet_report
from tests.test_keypacks import CIM_CSV

runner = CliRunner()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from evtrack.synth import write_sample

    out = tmp_path_factory.mktemp("logs")
    write_sample(out, users=4, hosts=2, start=date(2024, 1, 1), end=date(2024, 1, 31), seed=5, noise_ratio=0.1)
    return out


def test_json_round_trip_and_reports_saved_before_the_field() -> None:
    report = fleet_report(hosts=2, windows=2, users=3, installed=25, installed_source="config file evtrack.toml")
    data = json.loads(report_json(report))
    assert data["installed"] == 25 and data["installed_source"] == "config file evtrack.toml"
    assert Report.from_dict(data) == report
    del data["installed_source"]  # a report saved by an evtrack without the field: same schema version
    old = Report.from_dict(data)
    assert old.installed_source is None and old.installed == 25
    with pytest.raises(KeyError):  # a field without a default is still required
        Report.from_dict({k: v for k, v in data.items() if k != "verdict"})


def test_table_names_the_source() -> None:
    text = report_table(fleet_report(hosts=2, windows=2, users=3, installed=25, installed_source="--installed"))
    assert "Per User CALs installed: 25 (from --installed)" in text
    assert "Per User CALs installed: not set\n" in report_table(fleet_report(hosts=2, windows=2, installed=None))


def source_of(logs: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int | None, str | None]:
    result = runner.invoke(app, ["report", str(logs), "-f", "json", "-q", *args], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    return data["installed"], data["installed_source"]


def test_cli_records_where_installed_came_from(logs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./evtrack.toml
    monkeypatch.delenv("EVTRACK_INSTALLED", raising=False)
    config = tmp_path / "cfg.toml"
    config.write_text("installed = 7\n", encoding="utf-8")
    keypacks = tmp_path / "keypacks.csv"
    keypacks.write_text(CIM_CSV, encoding="utf-8")
    assert source_of(logs) == (None, None)
    assert source_of(logs, "--installed", "9") == (9, "--installed")
    assert source_of(logs, env={"EVTRACK_INSTALLED": "11"}) == (11, "EVTRACK_INSTALLED")
    assert source_of(logs, "--config", str(config)) == (7, f"config file {config}")
    assert source_of(logs, "--config", str(config), "--installed", "9") == (9, "--installed")
    installed, source = source_of(logs, "--config", str(config), "--keypacks", str(keypacks))
    assert source == f"key packs {keypacks}" and installed is not None and installed != 7
    _, source = source_of(logs, "--keypacks", str(keypacks), "--product-version", "2019")
    assert source == f"key packs {keypacks} (2019)"
