"""CSV for Windows administrators: local times with the zone in the header, a BOM by default (Excel), a choice of
delimiter, and host names spelled the same in every format."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import replace
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evtrack.cli import app
from evtrack.render.csv import delimiter, users_csv, windows_csv
from tests.fleet import fleet_report

runner = CliRunner()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from evtrack.synth import write_sample

    out = tmp_path_factory.mktemp("logs")
    write_sample(out, users=5, hosts=3, start=date(2024, 1, 1), end=date(2024, 2, 29), seed=3, noise_ratio=0.1)
    return out


def rows(text: str, sep: str = ",") -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff")), delimiter=sep))


def test_times_are_local_to_the_report_zone_without_microseconds() -> None:
    report = replace(fleet_report(hosts=2, windows=3, users=4), tz="Europe/Berlin")
    users = rows(users_csv(report))
    first = report.users[0]
    assert list(users[0])[2] == "Estimated Expiration Date (Europe/Berlin)"
    # 12:00 UTC in summer is 14:00 in Berlin; the form Excel reads as a date in every locale
    assert users[0]["First Seen (Europe/Berlin)"] == first.first_seen.astimezone(
        __import__("zoneinfo").ZoneInfo("Europe/Berlin")).strftime("%Y-%m-%d %H:%M:%S")
    for row in users:
        for column in ("First Seen (Europe/Berlin)", "Last Seen (Europe/Berlin)",
                       "Estimated Expiration Date (Europe/Berlin)"):
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row[column]), row[column]
    windows = rows(windows_csv(report))
    # a month starts at local midnight: 2023-01-01 00:00 UTC is 01:00 in Berlin
    assert (windows[0]["Start (Europe/Berlin)"], windows[0]["End (Europe/Berlin)"]) == (
        "2023-01-01 01:00:00", "2023-02-01 01:00:00")


def test_a_bom_by_default_so_excel_reads_accents() -> None:
    report = fleet_report(hosts=2, windows=2, users=8)
    text = users_csv(report)
    assert text.startswith("\ufeffUser,CAL Type,")
    data = text.encode("utf-8")
    assert data.startswith(b"\xef\xbb\xbf")
    names = {r["Full Name"] for r in rows(data.decode("utf-8-sig"))}
    assert {"Zoë Müller 6", "Jürgen Groß 1"} <= names
    assert users_csv(report, bom=False).startswith("User,")
    assert windows_csv(report).startswith("\ufeffWindow,")


def test_cli_bom_flags_and_delimiter(logs: Path) -> None:
    default = runner.invoke(app, ["report", str(logs), "-f", "csv", "-q"])
    assert default.exit_code == 0 and default.stdout.startswith("\ufeffUser,")
    assert runner.invoke(app, ["report", str(logs), "-f", "csv", "-q", "--bom"]).stdout == default.stdout
    plain = runner.invoke(app, ["report", str(logs), "-f", "csv", "-q", "--no-bom"])
    assert plain.stdout == default.stdout.removeprefix("\ufeff")
    semi = runner.invoke(app, ["report", str(logs), "-f", "csv", "-q", "--no-bom", "--csv-delimiter", ";",
                               "--per", "window"])
    assert semi.exit_code == 0 and semi.stdout.startswith("Window;Start (UTC);End (UTC);Status;")
    by_comma = rows(runner.invoke(app, ["report", str(logs), "-f", "csv", "-q", "--per", "window"]).stdout)
    assert rows(semi.stdout, ";") == by_comma  # same cells; a cell holding ';' (hosts) is quoted
    assert '"' in semi.stdout
    tabbed = runner.invoke(app, ["report", str(logs), "-f", "csv", "-q", "--csv-delimiter", "tab"])
    assert rows(tabbed.stdout, "\t") == rows(default.stdout)
    bad = runner.invoke(app, ["report", str(logs), "-f", "csv", "-q", "--csv-delimiter", "::"],
                        env={"COLUMNS": "250"})
    assert bad.exit_code == 2
    assert "CSV delimiter '::': use ',' (the default), ';' (European Excel), '|' or 'tab'" in bad.output


def test_events_csv_takes_the_delimiter(logs: Path) -> None:
    comma = runner.invoke(app, ["events", str(logs), "-q"])
    semi = runner.invoke(app, ["events", str(logs), "-q", "--csv-delimiter", ";"])
    assert semi.exit_code == 0 and semi.stdout.splitlines()[0] == comma.stdout.splitlines()[0].replace(",", ";")
    assert rows(semi.stdout, ";") == rows(comma.stdout)


def test_delimiter_words() -> None:
    assert [delimiter(x) for x in (",", ";", "tab", "\\t", "|", " ; ")] == [",", ";", "\t", "\t", "|", ";"]
    with pytest.raises(ValueError, match="CSV delimiter ':'"):
        delimiter(":")


class Text(HTMLParser):
    """The page's visible text: tooltips (SVG <title>, title attributes) may add a host's full computer name."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.depth += tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self.depth -= tag == "title"

    def handle_data(self, data: str) -> None:
        if not self.depth:
            self.parts.append(data)


def test_host_names_are_spelled_the_same_in_every_format(logs: Path) -> None:
    def out(*args: str) -> str:
        result = runner.invoke(app, ["report", str(logs), "-q", "--installed", "3", *args],
                               env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return result.stdout

    data = json.loads(out("-f", "json"))
    keys = {h for w in data["windows"] for h in w["hosts_complete"] + w["hosts_partial"] + w["hosts_unknown"]}
    assert len(keys) == 3 and {h for u in data["users"] for h in u["hosts"]} <= keys
    computers = {c["host"] for c in data["coverage"]}  # the logs' own Computer field, kept as data in JSON
    assert {c.split(".")[0].lower() for c in computers} == keys
    spelled = re.compile("|".join(re.escape(k) for k in sorted(keys)), flags=re.IGNORECASE)
    table = out()
    page = Text()
    page.feed(out("-f", "html"))
    text_of = {
        "table": table,
        "users csv": out("-f", "csv"),
        "windows csv": out("-f", "csv", "--per", "window"),
        "html": " ".join(page.parts),
    }
    paths = sorted((item["path"] for item in data["inputs"]), key=len, reverse=True)  # file names are not hosts
    for name, text in text_of.items():
        for path in paths:
            text = text.replace(path, "")
        found = set(spelled.findall(text))
        assert found == keys, (name, found)  # every host, and only in the one spelling
    assert all(c not in table for c in computers if "." in c)
