"""Time zones: IANA names in any case, Windows names (CLDR's table via tzlocal), ``local``; one resolver."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

import pytest
import tzlocal
from typer.testing import CliRunner
from tzlocal.windows_tz import win_tz

from evtrack import windows
from evtrack.cli import app
from evtrack.errors import ConfigError
from evtrack.windows import resolve_zone, zone

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    windows._resolve.cache_clear()
    yield
    windows._resolve.cache_clear()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from evtrack.synth import write_sample

    out = tmp_path_factory.mktemp("fleet")
    write_sample(out, users=4, hosts=1, start=date(2024, 1, 1), end=date(2024, 2, 29), seed=5, noise_ratio=0.2)
    return out


@pytest.mark.parametrize(("given", "iana"), [
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("GMT Standard Time", "Europe/London"),
    ("Romance Standard Time", "Europe/Paris"),
    ("w. europe standard time", "Europe/Berlin"),
    ("  Eastern Standard Time ", "America/New_York"),
    ("europe/berlin", "Europe/Berlin"),
    ("AMERICA/NEW_YORK", "America/New_York"),
    ("Europe/Berlin", "Europe/Berlin"),
    ("utc", "UTC"),
    ("UTC", "UTC"),
])
def test_names_resolve_to_the_canonical_iana_zone(given: str, iana: str) -> None:
    resolved = resolve_zone(given)
    assert (resolved.name, resolved.info, resolved.given) == (iana, ZoneInfo(iana), given.strip())
    assert zone(given) == ZoneInfo(iana)


def test_every_windows_name_in_the_cldr_table_resolves() -> None:
    """Windows names that are also IANA names (``UTC``) mean the IANA zone; every other one maps through CLDR."""
    iana_names = {name.lower() for name in available_timezones()}
    mapped = {name: iana for name, iana in win_tz.items() if name.lower() not in iana_names}
    assert len(mapped) > 100 and set(win_tz) - set(mapped) == {"UTC"}
    for windows_name, iana in mapped.items():
        assert resolve_zone(windows_name).info == ZoneInfo(iana), windows_name


def test_local_is_the_machines_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tzlocal, "get_localzone_name", lambda: "europe/paris")
    assert (resolve_zone("local").name, resolve_zone("LOCAL").given) == ("Europe/Paris", "LOCAL")


def test_local_on_this_machine_matches_tzlocal() -> None:
    assert resolve_zone("local").info == ZoneInfo(tzlocal.get_localzone_name())


def test_local_that_cannot_be_told_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tzlocal, "get_localzone_name", lambda: None)
    with pytest.raises(ConfigError, match="cannot tell this machine's time zone for 'local'"):
        resolve_zone("local")


@pytest.mark.parametrize("bad", ["Mars/Olympus", "", "../etc/passwd", "Central European Time"])
def test_unknown_zones_name_the_accepted_forms(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_zone(bad)
    assert str(caught.value) == (
        f"unknown time zone {bad!r} (use an IANA name such as Europe/Berlin or UTC, a Windows name such as "
        "W. Europe Standard Time, or local for this machine's zone)")


def _report(fleet: Path, *args: str) -> tuple[dict[str, object], str]:
    result = runner.invoke(app, ["report", str(fleet), "-f", "json", "--created-at", "2024-03-01", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr.splitlines()[-1]


def test_a_windows_name_gives_the_same_report_as_its_iana_zone(fleet: Path) -> None:
    berlin, line = _report(fleet, "--tz", "Europe/Berlin")
    assert berlin["tz"] == "Europe/Berlin" and line == "time zone: Europe/Berlin (--tz/EVTRACK_TZ)"
    windows_named, line = _report(fleet, "--tz", "W. Europe Standard Time")
    assert windows_named == berlin
    assert line == "time zone: Europe/Berlin (--tz/EVTRACK_TZ 'W. Europe Standard Time')"
    lower, _ = _report(fleet, "--tz", "europe/berlin")
    assert lower == berlin
    utc, line = _report(fleet)
    assert utc["tz"] == "UTC" and utc != berlin
    assert line == "time zone: UTC (the default; set another with --tz or tz in evtrack.toml)"


def test_the_config_file_zone_is_named_with_its_file(fleet: Path, tmp_path: Path) -> None:
    config = tmp_path / "evtrack.toml"
    config.write_text("tz = 'GMT Standard Time'\n", encoding="utf-8")
    data, line = _report(fleet, "--config", str(config))
    assert data["tz"] == "Europe/London"
    assert line == f"time zone: Europe/London (tz 'GMT Standard Time' in {config})"


def test_sample_takes_a_windows_name(tmp_path: Path) -> None:
    out = tmp_path / "logs"
    result = runner.invoke(app, ["sample", "-o", str(out), "--users", "1", "--hosts", "1", "--from", "2024-01-01",
                                 "--to", "2024-01-03", "--tz", "Pacific Standard Time", "-q"])
    assert result.exit_code == 0, result.output
    truth = json.loads((out / "ground_truth.json").read_text(encoding="utf-8"))
    assert truth["parameters"]["tz"] == "America/Los_Angeles"


def test_zone_text_is_parsed_in_one_place() -> None:
    """Outside windows.py (and synth/, which imports nothing of evtrack) no module builds a ZoneInfo itself."""
    offenders = []
    for path in sorted((ROOT / "evtrack").rglob("*.py")):
        relative = path.relative_to(ROOT / "evtrack").as_posix()
        if relative == "windows.py" or relative.startswith("synth/"):
            continue
        if re.search(r"\bZoneInfo\(|tzlocal", path.read_text(encoding="utf-8")):
            offenders.append(relative)
    assert offenders == []


def test_microseconds_and_datetimes_convert_exactly_both_ways() -> None:
    """Times before 1970 too (where Windows' clock functions refuse), at microsecond precision."""
    from datetime import datetime, timezone

    from evtrack.sources.base import datetime_to_us, us_to_datetime

    assert us_to_datetime(1_717_200_000_123_456) == datetime(2024, 6, 1, 0, 0, 0, 123_456, tzinfo=timezone.utc)
    assert us_to_datetime(-1) == datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc)
    for moment in (-62_135_596_800_000_000, -1, 0, 1, 1_717_200_000_123_456, 253_402_300_799_999_999):
        assert datetime_to_us(us_to_datetime(moment)) == moment
        assert us_to_datetime(moment).tzinfo is timezone.utc
    with pytest.raises(OverflowError):
        us_to_datetime(253_402_300_800_000_000)  # the first microsecond of year 10000
