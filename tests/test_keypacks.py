"""Licence key packs (Win32_TSLicenseKeyPack exports): Per User packs summed, the rest left out and named."""

from __future__ import annotations

import codecs
from datetime import datetime, timezone
from pathlib import Path

import pytest

from evtrack.errors import SourceError
from evtrack.keypacks import UNLIMITED, load_keypacks, parse_wmi_datetime

CIM_CSV = f"""#TYPE Microsoft.Management.Infrastructure.CimInstance#root/cimv2/Win32_TSLicenseKeyPack
"AccessRights","AvailableLicenses","Description","ExpirationDate","IssuedLicenses","KeyPackId","KeyPackType","ProductType","ProductVersion","ProductVersionID","TotalLicenses","TypeAndModel","PSComputerName"
"0","{UNLIMITED}","Existing Windows License","","0","2","0","0","Windows 2000 Server","0","{UNLIMITED}","Built-in TS Per Device CAL","LS01"
"0","5","A02-5.00-S","1/19/2038 3:14:07 AM","20","3","2","1","Windows Server 2019","5","25","RDS Per User CAL","LS01"
"0","3","A02-6.00-S","1/19/2038 3:14:07 AM","7","4","1","1","Windows Server 2022","6","10","RDS Per User CAL","LS01"
"0","0","A02-6.00-S","1/19/2038 3:14:07 AM","50","5","2","0","Windows Server 2022","6","50","RDS Per Device CAL","LS01"
"0","0","Temporary licenses","7/1/2024 9:00:00 AM","4","6","4","1","Windows Server 2022","6","4","RDS Per User CAL","LS01"
"0","1","A02-5.00-S","1/19/2038 3:14:07 AM","4","7","1","1","Windows Server 2019","5","5","RDS Per User CAL","LS01"
"""  # noqa: E501

WMI_CSV = """__GENUS,__CLASS,AvailableLicenses,ExpirationDate,IssuedLicenses,KeyPackId,KeyPackType,ProductVersion,TotalLicenses,TypeAndModel
2,Win32_TSLicenseKeyPack,5,20380119031407.000000-000,20,3,2,Windows Server 2016,25,RDS Per User CAL
2,Win32_TSLicenseKeyPack,0,20380119031407.000000-000,10,4,2,Windows Server 2016,10,RDS Per Device CAL
"""  # noqa: E501


def write(tmp_path: Path, text: str, encoding: str = "utf-8", bom: bytes = b"") -> Path:
    path = tmp_path / "keypacks.csv"
    path.write_bytes(bom + text.replace("\n", "\r\n").encode(encoding))
    return path


@pytest.mark.parametrize(("encoding", "bom"), [("utf-8", b""), ("utf-16-le", codecs.BOM_UTF16_LE)])
def test_per_user_packs_are_summed(tmp_path: Path, encoding: str, bom: bytes) -> None:
    packs = load_keypacks(write(tmp_path, CIM_CSV, encoding, bom))
    assert len(packs.packs) == 6
    assert packs.per_user_installed() == 25 + 10 + 5  # not per device, not temporary, not built-in
    assert packs.per_user_issued() == 20 + 7 + 4
    assert packs.per_user_installed("Windows Server 2019") == 30
    assert packs.per_user_installed("2022") == 10
    assert packs.per_user_installed("windows server 2022") == 10
    assert packs.per_user_installed("2016") == 0
    assert [(v.product_version, v.installed, v.issued, v.available, v.packs) for v in packs.by_product_version()] == [
        ("Windows Server 2019", 30, 24, 6, 2), ("Windows Server 2022", 10, 7, 3, 1)]
    assert sorted(p.kind for p in packs.ignored) == ["built-in", "per device", "temporary"]


def test_built_in_unlimited_pack_is_not_a_number(tmp_path: Path) -> None:
    packs = load_keypacks(write(tmp_path, CIM_CSV))
    built_in = next(p for p in packs.packs if p.built_in)
    assert built_in.total is None and built_in.available is None and not built_in.counted
    # even a Per User pack reporting 2^32-1 licences is never added as a count
    text = CIM_CSV.replace('"Built-in TS Per Device CAL"', '"RDS Per User CAL"').replace(
        '"0","0","Windows 2000 Server"', '"0","1","Windows 2000 Server"')
    assert load_keypacks(write(tmp_path, text)).per_user_installed() == 40


def test_wmi_export_without_product_type_uses_type_and_model(tmp_path: Path) -> None:
    packs = load_keypacks(write(tmp_path, WMI_CSV))
    assert packs.per_user_installed() == 25
    assert packs.packs[0].expires == datetime(2038, 1, 19, 3, 14, 7, tzinfo=timezone.utc)
    assert packs.packs[0].expires_text == "20380119031407.000000-000"


def test_culture_formatted_dates_are_kept_as_text(tmp_path: Path) -> None:
    pack = load_keypacks(write(tmp_path, CIM_CSV)).packs[1]
    assert pack.expires is None and pack.expires_text == "1/19/2038 3:14:07 AM"


def test_parse_wmi_datetime() -> None:
    assert parse_wmi_datetime("20240701090000.000000+060") == datetime(2024, 7, 1, 8, tzinfo=timezone.utc)
    assert parse_wmi_datetime("2024-07-01T09:00:00Z") == datetime(2024, 7, 1, 9, tzinfo=timezone.utc)
    assert parse_wmi_datetime("never") is None
    assert parse_wmi_datetime("20241399000000.000000+000") is None


def test_not_a_keypack_export_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as error:
        load_keypacks(write(tmp_path, "SamAccountName,SID\nalice,S-1-5-21-1-2-3-4\n"))
    message = str(error.value)
    assert "keypacks.csv" in message and "Win32_TSLicenseKeyPack" in message and "TotalLicenses" in message


def test_bad_number_names_the_file_and_row(tmp_path: Path) -> None:
    text = CIM_CSV.replace('"5","25","RDS Per User CAL"', '"5","twenty","RDS Per User CAL"')
    with pytest.raises(SourceError, match=r"keypacks\.csv: key pack row 2: totallicenses is not a number"):
        load_keypacks(write(tmp_path, text))


def test_a_product_version_that_matches_no_pack_warns_and_fails_under_strict(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from evtrack.cli import app

    from .conftest import logon_4624, write_events

    packs = write(tmp_path, CIM_CSV)
    logs = write_events(tmp_path / "a.xml", logon_4624(10))
    runner = CliRunner()
    base = ["report", str(logs), "--keypacks", str(packs), "-q"]
    assert runner.invoke(app, [*base, "--product-version", "2019"]).stderr == ""
    result = runner.invoke(app, [*base, "--product-version", "2031", "--strict"])
    assert result.exit_code == 1
    assert "no Per User CAL key pack of product version '2031'" in result.stderr
