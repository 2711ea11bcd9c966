"""The event table reproduces ../shared/evtx/MANIFEST.md: per-file counts and user sets (skips when absent).

The manifest was counted without checksum verification, so these tests read with ``verify_checksums=False``;
with verification on (the default) the VSS-recovered files lose the chunks whose CRC fails, and say so.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from evtrack.reading import read_file

from .conftest import SHARED

NOT_USERS = {"system", "local service", "network service", "anonymous logon", "-", ""}


@dataclass(frozen=True)
class ManifestRow:
    file: str
    records: int
    counts: dict[str, int]
    users: dict[str, set[str]]


def _parse_users(cell: str) -> dict[str, set[str]]:
    if cell.strip() == "none":
        return {}
    result: dict[str, set[str]] = {}
    for part in cell.split("; "):
        label, _, names = part.partition(": ")
        result[label.strip()] = set(re.findall(r"`([^`]*)`", names))
    return result


def manifest_rows() -> list[ManifestRow]:
    text = (SHARED / "MANIFEST.md").read_text(encoding="utf-8")
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 20 or not cells[0].isdigit():
            continue
        lsm = [int(x) for x in cells[15].split("/")]
        counts = {
            "4624_lt10": int(cells[8]), "4624": int(cells[9]), "4778": int(cells[10]), "4779": int(cells[11]),
            "4634": int(cells[12]), "4647": int(cells[13]), "1102": int(cells[14]),
            "lsm21": lsm[0], "lsm23": lsm[1], "lsm24": lsm[2], "lsm25": lsm[3], "1149": int(cells[16]),
        }
        rows.append(ManifestRow(cells[1].strip("`"), int(cells[7]), counts, _parse_users(cells[17])))
    return rows


def _user(user: str | None, domain: str | None) -> str | None:
    name = (user or "").lower()
    if name in NOT_USERS or name.endswith("$") or re.fullmatch(r"(dwm|umfd)-\d+", name):
        return None
    return f"{domain.lower()}\\{name}" if domain else name


ROWS = manifest_rows() if SHARED.is_dir() else []


@pytest.mark.parametrize("entry", ROWS, ids=[r.file[:60] for r in ROWS])
def test_counts_and_users_match_manifest(shared_evtx: Path, entry: ManifestRow) -> None:
    result = read_file(shared_evtx / entry.file, verify_checksums=False)
    assert result.error is None
    assert result.stats.records == entry.records
    rows = [r for batch in result.batches for r in batch.to_pylist()]
    counts: Counter[str] = Counter()
    users: dict[str, set[str]] = {}
    for r in rows:
        eid, channel = r["event_id"], r["channel"]
        key = None
        if channel == "Security":
            key = str(eid)
            if eid == 4624 and r["logon_type"] == 10:
                counts["4624_lt10"] += 1
                users.setdefault("LT10", set()).add(_user(r["user"], r["domain"]) or "")
        elif channel.endswith("LocalSessionManager/Operational"):
            key = f"lsm{eid}"
            if eid in (21, 25):
                label = "LSM 21/25 (IP)" if r["rdp"] else "LSM 21/25 Address=LOCAL (not RDP)"
                users.setdefault(label, set()).add(_user(r["user"], r["domain"]) or "")
        elif channel.endswith("RemoteConnectionManager/Operational"):
            key = str(eid)
            users.setdefault("RCM 1149", set()).add(_user(r["user"], r["domain"]) or "")
        if eid in (4778, 4779):
            users.setdefault("4778/4779", set()).add(_user(r["user"], r["domain"]) or "")
        if key:
            counts[key] += 1
    assert {k: counts.get(k, 0) for k in entry.counts} == entry.counts
    found = {label: names - {""} for label, names in users.items() if names - {""}}
    assert found == entry.users


def test_manifest_was_parsed(shared_evtx: Path) -> None:
    assert len(ROWS) == 22
    assert sum(r.counts["4624_lt10"] for r in ROWS) == 7


def test_default_verification_reports_failing_chunks(shared_evtx: Path) -> None:
    result = read_file(shared_evtx / "omerbenamram-evtx_sample_with_a_bad_chunk_magic.evtx")
    crc_chunks = sorted(i.where for i in result.stats.issues if "CRC32" in i.reason)
    assert crc_chunks == ["chunk 0", "chunk 7", "chunk 9"]
    bad_magic = [i.where for i in result.stats.issues if "magic" in i.reason]
    assert bad_magic == ["chunk 6", "chunk 10"]
    assert result.stats.records == 129
    assert result.stats.skipped > 0


@pytest.mark.parametrize("name", [
    "dfir-museum_szechuan_security.evtx", "velociraptor_rdpauth_security.evtx", "omerbenamram-evtx_sysmon.evtx",
])
def test_every_chunk_is_read_despite_a_stale_header(shared_evtx: Path, name: str) -> None:
    expected = {r.file: r.records for r in ROWS}[name]
    assert read_file(shared_evtx / name).stats.records == expected


def test_both_engines_give_identical_tables_on_every_shared_file(shared_evtx: Path) -> None:
    from evtrack.reading import read_inputs

    tables = []
    for engine in ("evtx", "python-evtx"):
        table = read_inputs([shared_evtx], engine=engine).table
        tables.append(table.sort_by([(c, "ascending") for c in ("source", "host", "channel", "record_id", "time")]))
    assert tables[0].num_rows == 6366
    assert tables[0].equals(tables[1])


def test_report_over_all_shared_files_is_the_union_with_no_one_twice(shared_evtx: Path) -> None:
    from evtrack.pipeline import run_report
    from evtrack.usage import ReportSettings

    expected: set[str] = set()
    for row in ROWS:
        for label in ("LT10", "4778/4779", "LSM 21/25 (IP)"):
            expected |= row.users.get(label, set())
    report, _ = run_report([shared_evtx], ReportSettings())
    names = [u.display_name.lower() for u in report.users]
    assert sorted(names) == sorted(expected)
    assert len(set(names)) == len(names) == len({u.key for u in report.users})
