"""One pipeline: settings parsed once, three input adapters giving the same report, one renderer registry, one
place that turns errors into exit codes, and a --help path without heavy imports."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evtrack.cli import EXIT_ERROR, app
from evtrack.cli.options import Per, ReportFormat
from evtrack.config import FileConfig
from evtrack.dataset import DatasetRead, write_events_dataset
from evtrack.errors import ConfigError
from evtrack.pipeline import DatasetInput, FilesInput, StoreInput, run, run_with_source, source_from_read
from evtrack.reading import read_inputs
from evtrack.render.registry import RENDERERS, RenderOptions, render
from evtrack.settings import SettingFlags, resolve_settings
from evtrack.store import Store
from evtrack.synth import write_sample
from evtrack.usage import ReportSettings
from evtrack.windows import WindowSpec

PINNED = datetime(2024, 6, 1, tzinfo=timezone.utc)
SETTINGS = ReportSettings(installed=3, created_at=PINNED, tz="W. Europe Standard Time")


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fleet") / "logs"
    write_sample(folder, users=4, hosts=2, start=date(2024, 1, 1), end=date(2024, 2, 29), seed=5)
    return folder


def test_settings_hold_the_parsed_zone_and_window() -> None:
    settings = ReportSettings(tz="W. Europe Standard Time", window="blocks:30d")
    assert settings.tz == "Europe/Berlin"
    assert settings.zone.name == "Europe/Berlin" and settings.zone.given == "W. Europe Standard Time"
    assert str(settings.zone.info) == "Europe/Berlin"
    assert settings.spec == WindowSpec("blocks", 30)
    with pytest.raises(ConfigError, match="unknown window 'fortnight'"):
        ReportSettings(window="fortnight")


def test_resolve_settings_merges_file_environment_and_flags() -> None:
    file = FileConfig(path=Path("evtrack.toml"), installed=9, tz="Europe/Berlin", window="week",
                      aliases={"contoso.local": "CONTOSO"})
    flags = SettingFlags(tz="America/New_York", aliases=("corp.example=CORP",), excludes=("svc_*", "S-1-5-21-1"))
    resolved = resolve_settings(flags, file, {"SOURCE_DATE_EPOCH": "1717200000"})
    settings = resolved.report
    assert settings.tz == "America/New_York" and settings.spec == WindowSpec("week")
    assert settings.installed == 9 and settings.installed_source == "config file evtrack.toml"
    assert dict(settings.aliases) == {"contoso.local": "CONTOSO", "corp.example": "CORP"}
    assert settings.exclusions.patterns == ("svc_*",) and settings.exclusions.sids == frozenset({"S-1-5-21-1"})
    assert settings.created_at == datetime(2024, 6, 1, tzinfo=timezone.utc)
    assert resolved.zone_line() == "time zone: America/New_York (--tz/EVTRACK_TZ)"


def test_the_three_adapters_give_the_same_report(logs: Path, tmp_path: Path) -> None:
    from_files = run(FilesInput([logs]), SETTINGS)
    with Store.open(tmp_path / "s.sqlite3") as store:
        store.ingest([logs], jobs=1)
    from_store = run(StoreInput(tmp_path / "s.sqlite3"), SETTINGS)
    write_events_dataset(source_from_read(read_inputs([logs], slim=True)), tmp_path / "ds")
    from_dataset = run(DatasetInput(tmp_path / "ds"), SETTINGS)
    assert from_files.to_dict()["windows"] == from_store.to_dict()["windows"] == from_dataset.to_dict()["windows"]
    assert [u.key for u in from_files.users] == [u.key for u in from_store.users] == [u.key for u in
                                                                                       from_dataset.users]
    assert from_files.notes == from_dataset.notes


def test_a_dataset_read_in_part_says_so_in_the_report(logs: Path, tmp_path: Path) -> None:
    write_events_dataset(source_from_read(read_inputs([logs], slim=True)), tmp_path / "ds")
    settings = dataclasses.replace(SETTINGS, start=date(2024, 2, 1), end=date(2024, 2, 29))
    seen: list[DatasetRead] = []
    built, source = run_with_source(DatasetInput(tmp_path / "ds", on_read=seen.append), settings)
    note = ("Only events from 2023-11-30 to 2024-03-01 (UTC) were read from the dataset (--from/--to): per-user "
            "totals and first/last seen, new users, and the estimate as of a date after the period count only those.")
    assert source.notes == (note,)
    assert built.notes[-1] == note
    assert seen[0].time_range == (datetime(2023, 11, 30, 23, tzinfo=timezone.utc),  # Berlin midnight - 62 days
                                  datetime(2024, 3, 1, 23, tzinfo=timezone.utc))
    whole = run(DatasetInput(tmp_path / "ds", push_down=False), settings)
    assert note not in whole.notes


def test_every_format_choice_has_a_renderer(logs: Path) -> None:
    assert sorted(RENDERERS) == sorted(f.value for f in ReportFormat)
    built = run(FilesInput([logs]), SETTINGS)
    assert render(built, "json").startswith(b"{")
    assert render(built, "html").lstrip().lower().startswith(b"<!doctype html>")
    firsts = {per.value: render(built, "csv", RenderOptions(per=per.value, bom=False)).split(b",")[:3] for per in Per}
    assert firsts == {"user": [b"User", b"CAL Type", b"Estimated Expiration Date (Europe/Berlin)"],
                      "window": [b"Window", b"Start (Europe/Berlin)", b"End (Europe/Berlin)"],
                      "proof": [b"User", b"Key", b"Window"]}
    assert render(built, "csv").startswith(b"\xef\xbb\xbf")
    with pytest.raises(ValueError, match="unknown format 'pdf'"):
        render(built, "pdf")


def test_errors_become_one_message_and_exit_code(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path), "--tz", "Nowhere/Zone", "-q"])
    assert result.exit_code == EXIT_ERROR
    assert result.stderr.startswith("error: unknown time zone 'Nowhere/Zone'")
    cli = Path(__file__).parents[1] / "evtrack" / "cli"
    sources = "".join(p.read_text(encoding="utf-8") for p in sorted(cli.glob("*.py")))
    assert sources.count("except EvtrackError as") == 1


def test_help_imports_no_heavy_module() -> None:
    code = ("import sys\nfrom evtrack.cli import main\nsys.argv = ['evtrack', 'report', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('pyarrow', 'pandas', 'evtx', 'Evtx', 'evtrack.reading', 'evtrack.usage', "
            "'evtrack.pipeline') if m in sys.modules), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.strip() == "[]"
    assert "Usage:" in done.stdout


def test_python_m_evtrack_and_the_console_entry_point_run_the_same_app() -> None:
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    assert '[project.scripts]\nevtrack = "evtrack.cli:main"\n' in pyproject
    done = subprocess.run([sys.executable, "-m", "evtrack", "--version"], capture_output=True, text=True, check=True)
    from evtrack import __version__

    assert done.stdout == f"evtrack {__version__}\n"
