"""What the docs and --help promise is what the program does: EVTRACK_STORE, the store's schema, `reports list`
columns, the sample logs' story."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import date, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evtrack.cli import app
from evtrack.store import SCHEMA_VERSION, Store

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
PINNED = ["--created-at", "2024-03-01", "-f", "json"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from evtrack.synth import write_sample

    out = tmp_path_factory.mktemp("fleet")
    write_sample(out, users=3, hosts=1, start=date(2024, 1, 1), end=date(2024, 1, 31), seed=2, noise_ratio=0.2)
    return out


@pytest.fixture
def store(fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("EVTRACK_STORE", raising=False)
    db = tmp_path / "store.sqlite3"
    result = runner.invoke(app, ["ingest", str(fleet), "--store", str(db), "-q", "-j", "1"])
    assert result.exit_code == 0, result.output
    return db


def test_report_without_files_uses_evtrack_store(store: Path, fleet: Path) -> None:
    flagged = runner.invoke(app, ["report", "--store", str(store), *PINNED])
    assert flagged.exit_code == 0, flagged.output
    from_env = runner.invoke(app, ["report", *PINNED], env={"EVTRACK_STORE": str(store)})
    assert from_env.exit_code == 0, from_env.output
    assert json.loads(from_env.stdout) == json.loads(flagged.stdout)
    assert json.loads(from_env.stdout)["windows"][0]["users"] == 3
    # files given: EVTRACK_STORE is not a second input, and not an error either
    files = runner.invoke(app, ["report", str(fleet), *PINNED, "-q"], env={"EVTRACK_STORE": str(store)})
    assert files.exit_code == 0, files.output
    assert json.loads(files.stdout)["windows"] == json.loads(flagged.stdout)["windows"]


def test_report_with_nothing_to_read_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVTRACK_STORE", raising=False)
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 1
    assert result.stderr == "error: give event log files or folders, or --store PATH (or EVTRACK_STORE), or " \
                            "--events DIR\n"


def test_store_doc_names_the_schema_version_and_every_column(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "store.md").read_text(encoding="utf-8")
    assert re.findall(r"^## Schema \(version (\d+)\)$", doc, re.M) == [str(SCHEMA_VERSION)]
    with Store.open(tmp_path / "s.sqlite3"):
        pass
    db = sqlite3.connect(tmp_path / "s.sqlite3")
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        rows = dict(re.findall(r"^\| `(\w+)` \| [^|]+ \| (.+) \|$", doc, re.M))
        for table in ("meta", "files", "spans", "clears", "failed_files", "reports"):
            columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            documented = set(re.findall(r"`(\w+)`", rows[table]))
            assert columns - {"id", "file_id", "host", "channel"} <= documented, table
    finally:
        db.close()


def test_reports_list_prints_the_columns_its_help_names(store: Path, fleet: Path) -> None:
    saved = runner.invoke(app, ["report", "--store", str(store), "--save", "--window", "week", "-q"])
    assert saved.exit_code == 0, saved.output
    help_text = runner.invoke(app, ["reports", "list", "--help"], env={"COLUMNS": "200"}).stdout
    promised = re.search(r"List saved reports: (.+)\.", help_text)
    assert promised is not None
    assert promised.group(1).split(", ") == ["id", "created", "scope", "window", "period", "installed", "estimated",
                                             "verdict"]
    listed = runner.invoke(app, ["reports", "list", "--store", str(store)], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    header, _rule, row = [line for line in listed.stdout.splitlines() if line.strip()][:3]
    assert header.split() == ["id", "created", "scope", "window", "period", "inst.", "est.", "verdict"]
    assert re.search(r" week +2024-01-01 \.\. 2024-02-04 ", row), row  # ISO weeks: Monday 1 Jan .. Sunday 4 Feb


def test_sample_logs_readme_dates_the_log_clear_from_the_data() -> None:
    readme = (ROOT / "sample_logs" / "README.md").read_text(encoding="utf-8")
    truth = json.loads((ROOT / "sample_logs" / "ground_truth.json").read_text(encoding="utf-8"))
    cleared = [datetime.fromisoformat(h["security_cleared_at"].replace("Z", "+00:00")) for h in truth["hosts"]
               if h["security_cleared_at"]]
    assert len(cleared) == 1
    assert f"cleared on {cleared[0].day} {cleared[0]:%B} (1102" in " ".join(readme.split())
    starts = [datetime.fromisoformat(h["security_starts_at"].replace("Z", "+00:00")) for h in truth["hosts"]
              if h["reexport_window"]]
    assert [f"{s:%B}" for s in starts] == ["January"]
    assert "nothing before the end of January is left" in " ".join(readme.split())
