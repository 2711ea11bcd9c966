"""Scope by domain or OU (with a directory export), installed count from key packs, HTML from the CLI."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evtrack.cli import app

runner = CliRunner()
SALES = "OU=Sales,OU=Staff,DC=contoso,DC=local"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], Path]:
    """A generated fleet and a Get-ADUser export that puts every other user in OU=Sales (a child OU below it)."""
    from evtrack.synth import write_sample

    out = tmp_path_factory.mktemp("fleet")
    write_sample(out / "logs", users=8, hosts=2, start=date(2024, 1, 1), end=date(2024, 2, 29), seed=5,
                 noise_ratio=0.3)
    truth = json.loads((out / "logs" / "ground_truth.json").read_text(encoding="utf-8"))
    ou_of: dict[str, str] = {}
    export = out / "users.csv"
    with export.open("w", encoding="utf-8-sig", newline="") as handle:
        handle.write('#TYPE Microsoft.ActiveDirectory.Management.ADUser\n')
        writer = csv.writer(handle)
        writer.writerow(["DistinguishedName", "Enabled", "Name", "SamAccountName", "SID", "UserPrincipalName"])
        for index, user in enumerate(truth["users"]):
            ou = (f"OU=Berlin,{SALES}" if index % 4 == 0 else SALES) if index % 2 == 0 else "OU=IT,DC=contoso,DC=local"
            ou_of[user["sid"]] = ou
            writer.writerow([f"CN={user['sam'].title()},{ou}", "True", user["sam"].title(), user["sam"],
                             user["sid"], user["upn"]])
    return out / "logs", ou_of, export


def _report(args: list[str]) -> dict[str, object]:
    result = runner.invoke(app, ["report", *args, "-f", "json", "-q", "--created-at", "2024-06-01"])
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_ou_scope_gives_exactly_the_users_of_that_ou_and_its_children(
        fleet: tuple[Path, dict[str, str], Path]) -> None:
    logs, ou_of, export = fleet
    everyone = _report([str(logs)])
    in_sales = _report([str(logs), "--directory", str(export), "--netbios", "CONTOSO", "--scope", f"ou:{SALES}"])
    counted = {u["key"] for u in everyone["users"]}  # type: ignore[attr-defined]
    expected = {sid for sid in counted if ou_of[sid].endswith(SALES)}
    assert expected and expected != counted
    assert {u["key"] for u in in_sales["users"]} == expected  # type: ignore[attr-defined]
    assert in_sales["scope"] == "OU=Sales"
    assert all(u["full_name"] and u["in_directory"] for u in in_sales["users"])  # type: ignore[attr-defined]


def test_ou_scope_needs_a_directory(fleet: tuple[Path, dict[str, str], Path]) -> None:
    result = runner.invoke(app, ["report", str(fleet[0]), "--scope", f"ou:{SALES}", "-q"])
    assert result.exit_code == 1 and "needs --directory" in result.output


def test_domain_scope(fleet: tuple[Path, dict[str, str], Path]) -> None:
    assert _report([str(fleet[0]), "--scope", "domain:contoso.local"])["scope"] == "Domain: CONTOSO.LOCAL"
    assert _report([str(fleet[0]), "--scope", "domain:FABRIKAM"])["users"] == []
    assert _report([str(fleet[0]), "--scope", "all"])["scope"] == "All trusted domains"


def test_installed_from_keypacks(tmp_path: Path, fleet: tuple[Path, dict[str, str], Path]) -> None:
    packs = tmp_path / "keypacks.csv"
    packs.write_text(
        "KeyPackId,KeyPackType,ProductVersion,ProductVersionID,TypeAndModel,TotalLicenses,AvailableLicenses,"
        "IssuedLicenses,ProductType\n"
        "2,2,Windows Server 2019,5,RDS Per User CAL,25,20,5,1\n"
        "3,2,Windows Server 2022,6,RDS Per User CAL,10,10,0,1\n"
        "4,2,Windows Server 2019,5,RDS Per Device CAL,50,50,0,0\n"
        "5,6,Windows 2000 Server,1,Existing Windows License,4294967295,4294967295,0,0\n",
        encoding="utf-8")
    assert _report([str(fleet[0]), "--keypacks", str(packs)])["installed"] == 35
    assert _report([str(fleet[0]), "--keypacks", str(packs), "--product-version", "2019"])["installed"] == 25
    assert _report([str(fleet[0]), "--keypacks", str(packs), "--installed", "3"])["installed"] == 3


def test_html_format(fleet: tuple[Path, dict[str, str], Path], tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = runner.invoke(app, ["report", str(fleet[0]), "-f", "html", "-o", str(out), "-q", "--installed", "2"])
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "Content-Security-Policy" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
