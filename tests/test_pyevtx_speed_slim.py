"""The python-evtx engine's slim read: skipping repeated observation-only logons changes nothing.

With ``slim=True`` the engine may leave out a Security 4624/4634 whose logon type only lends its account to
identity linking, once it has yielded one with the same host, channel and account (see
:class:`evtrack.sources.python_evtx.slim.Slim`); it still counts every record and feeds the coverage itself. A slim read
must therefore give exactly what a full read filtered as :func:`evtrack.reading.read_file` filters gives (the
same rows, coverage and observations), and the same as the default engine's slim read. The template plans
the engine shares across chunks and files change nothing either.
"""

from __future__ import annotations

import binascii
import struct
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from evtrack.catalogue import read_plan
from evtrack.events import needed_for_report
from evtrack.reading import ReadResult, read_inputs
from evtrack.sources.base import CHUNK_SIZE, FILE_HEADER_SIZE, FileStats, RawEvent
from evtrack.sources.binxml.tree import Evaluator
from evtrack.sources.python_evtx import chunk as plan_cache
from evtrack.sources.python_evtx import read_python_evtx
from evtrack.synth import EventSpec, EvtxWriter, write_sample
from evtrack.synth import shapes as sh

from .conftest import SHARED

T0 = datetime(2024, 2, 1, 8, 0, tzinfo=timezone.utc)
PLAN = read_plan()
Observation = tuple[str, str | None, str | None, str]


def _rows(result: ReadResult) -> list[dict[str, Any]]:
    return sorted(result.table.to_pylist(), key=lambda row: tuple(repr(row[name]) for name in sorted(row)))


def _filtered(full: ReadResult) -> tuple[list[dict[str, Any]], tuple[Observation, ...]]:
    """What a slim read keeps of a full read: the rows a report needs, and the accounts of the others."""
    rows = _rows(full)
    kept = [row for row in rows if needed_for_report(row)]
    observations = {
        (row["user"], row["domain"], row["sid"], row["host"])
        for row in rows
        if not needed_for_report(row) and row["user"] is not None
    }
    return kept, tuple(sorted(observations, key=lambda o: tuple(v or "" for v in o)))


def _stats(result: ReadResult) -> list[tuple[Any, ...]]:
    return [(s.path, s.records, s.skipped, s.fallbacks, s.issues, sorted(s.per_channel.items())) for s in result.files]


def _check_slim(files: list[Path]) -> ReadResult:
    full = read_inputs(files, engine="python-evtx", slim=False)
    slim = read_inputs(files, engine="python-evtx", slim=True)
    rows, observations = _filtered(full)
    assert _rows(slim) == rows
    assert slim.observations == observations
    assert slim.coverage == full.coverage
    assert _stats(slim) == _stats(full)
    assert slim.file_errors == full.file_errors
    reference = read_inputs(files, slim=True)  # the default engine (pyevtx-rs)
    assert reference.engine != slim.engine
    assert _rows(slim) == _rows(reference)
    assert slim.observations == reference.observations
    assert slim.coverage == reference.coverage
    assert slim.records == reference.records
    return slim


def _events(path: Path) -> tuple[list[RawEvent], tuple[Any, ...]]:
    stats = FileStats(path)
    events = list(read_python_evtx(path, stats, plan=PLAN))
    return events, (stats.records, stats.skipped, stats.fallbacks, stats.issues, sorted(stats.per_channel.items()))


def _check_plan_cache(files: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Plans shared across chunks and files give what evaluating every template in every chunk gives."""
    with monkeypatch.context() as patch:
        patch.setattr(plan_cache, "_MAX_CACHED_BODY", -1)  # no plan is cached: every chunk evaluates its templates
        uncached = [_events(path) for path in files]
    plan_cache._PLAN_CACHE.clear()
    assert [_events(path) for path in files] == uncached  # the cache filled while reading
    assert plan_cache._PLAN_CACHE
    assert [_events(path) for path in reversed(files)] == uncached[::-1]  # every plan from the cache, if it fits


def _yielded(path: Path, slim: bool) -> int:
    return sum(1 for _ in read_python_evtx(path, FileStats(path), plan=PLAN, slim=slim))


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("slim-sample")
    write_sample(folder, users=6, hosts=2, start=date(2024, 1, 1), end=date(2024, 1, 21), seed=7)
    return sorted(folder.glob("*.evtx"))


def test_generated_sample(sample: list[Path]) -> None:
    slim = _check_slim(sample)
    assert slim.table.num_rows > 0
    assert slim.observations
    security = [path for path in sample if "Security" in path.name]
    assert security
    for path in security:  # the skipping really happens, and only yielded records are left out
        assert _yielded(path, slim=True) < _yielded(path, slim=False)


def test_generated_sample_plan_cache(sample: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _check_plan_cache(sample, monkeypatch)
    evaluations = []
    evaluate = Evaluator.evaluate

    def counted(self: Evaluator, *args: Any) -> Any:
        evaluations.append(args)
        return evaluate(self, *args)

    monkeypatch.setattr(Evaluator, "evaluate", counted)
    security = max(sample, key=lambda path: path.stat().st_size)
    with monkeypatch.context() as patch:
        patch.setattr(plan_cache, "_MAX_CACHED_BODY", -1)
        _events(security)
    per_chunk = len(evaluations)  # each template once in every chunk that uses it
    plan_cache._PLAN_CACHE.clear()
    _events(security)
    cold = len(evaluations) - per_chunk
    assert cold == len(plan_cache._PLAN_CACHE) < per_chunk / 2  # each template evaluated once in the file
    _events(security)
    assert len(evaluations) == per_chunk + cold  # read again: every plan from the cache


def test_plan_cache_reads_each_chunks_names(
    sample: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Payload templates refer to names defined by the first one in their chunk: a template whose bytes are
    the same as in another chunk, but whose names differ there, gets its own plan."""
    security = max(sample, key=lambda path: path.stat().st_size)
    data = bytearray(security.read_bytes())
    chunk = FILE_HEADER_SIZE + CHUNK_SIZE  # the second chunk
    name = struct.pack("<H", 4) + "Data".encode("utf-16-le") + bytes(2)  # the name's length, text, NUL
    at = data.find(name, chunk, chunk + CHUNK_SIZE)
    assert at > 0
    data[at : at + len(name)] = struct.pack("<H", 4) + "Dat4".encode("utf-16-le") + bytes(2)
    free_space = struct.unpack_from("<I", data, chunk + 48)[0]
    struct.pack_into("<I", data, chunk + 52, binascii.crc32(data[chunk + 512 : chunk + free_space]))
    header_crc = binascii.crc32(data[chunk + 128 : chunk + 512], binascii.crc32(data[chunk : chunk + 120]))
    struct.pack_into("<I", data, chunk + 124, header_crc)
    renamed = tmp_path / "renamed.evtx"
    renamed.write_bytes(bytes(data))
    _check_plan_cache([security, renamed, security], monkeypatch)
    logons = [event for event in _events(renamed)[0] if event.event_id == 4624]
    empty = sum(1 for event in logons if not event.data)
    assert 0 < empty < len(logons)  # the second chunk's payloads have no Data elements any more


def _logon(
    event_id: int,
    record_id: int,
    logon_type: int,
    user: str,
    *,
    sid: str = "S-1-5-21-1-2-3-1105",
    domain: str = "CONTOSO",
    computer: str = "RDSH01.contoso.local",
    ip: str = "10.0.0.5",
) -> EventSpec:
    time = T0 + timedelta(minutes=record_id)
    if event_id == 4634:
        return EventSpec(sh.E4634, time, record_id, computer, (sid, user, domain, 0x3E7 + record_id, logon_type))
    values: dict[str, str | int] = {
        "SubjectUserSid": "S-1-5-18", "SubjectUserName": "RDSH01$", "SubjectDomainName": "CONTOSO",
        "SubjectLogonId": 0x3E7, "TargetUserSid": sid, "TargetUserName": user, "TargetDomainName": domain,
        "TargetLogonId": 0x1000 + record_id, "LogonType": logon_type, "LogonProcessName": "NtLmSsp",
        "AuthenticationPackageName": "NTLM", "WorkstationName": "-",
        "LogonGuid": "{00000000-0000-0000-0000-000000000000}", "TransmittedServices": "-", "LmPackageName": "-",
        "KeyLength": 0, "ProcessId": 0, "ProcessName": "-", "IpAddress": ip, "IpPort": str(50000 + record_id),
        "ImpersonationLevel": "%%1833", "RestrictedAdminMode": "-", "TargetOutboundUserName": "-",
        "TargetOutboundDomainName": "-", "VirtualAccount": "%%1843", "TargetLinkedLogonId": 0,
        "ElevatedToken": "%%1843",
    }  # fmt: skip
    return EventSpec(sh.E4624, time, record_id, computer, tuple(values[name] for name, _ in sh.E4624.fields))


def test_accounts_are_kept_per_host_and_only_from_observations(tmp_path: Path) -> None:
    """An RDP logon first does not hide the same account's network logons; each host, SID, name and domain
    difference is a new account; empty and blank names are accounts too; 4634s like 4624s."""
    specs = [
        _logon(4624, 1, 10, "alice"),  # a report row, not an observation
        _logon(4624, 2, 3, "alice"),  # the first observation of alice: yielded
        _logon(4624, 3, 3, "alice"),  # the same: may be skipped
        _logon(4634, 4, 3, "alice"),
        _logon(4634, 5, 10, "alice"),  # a report row again
        _logon(4624, 6, 3, "alice", computer="RDSH02.contoso.local"),
        _logon(4624, 7, 3, "alice", sid="S-1-5-21-1-2-3-9999"),
        _logon(4624, 8, 5, "alice", domain="OTHER"),
        _logon(4624, 9, 3, "Alice"),
        _logon(4624, 10, 3, ""),
        _logon(4624, 11, 3, "-"),
        _logon(4624, 12, 3, " alice "),  # the same account once stripped: its own text, yielded once
        _logon(4624, 13, 7, "alice", ip="127.0.0.1"),  # an unlock is a report row
        _logon(4624, 14, 12, "alice"),
        _logon(4624, 15, 2, "bob"),
        _logon(4624, 16, 2, "bob"),
        _logon(4634, 17, 2, "bob"),
        _logon(4624, 18, 3, ""),
        _logon(4624, 19, 3, "alice"),
    ]
    path = tmp_path / "Security.evtx"
    with EvtxWriter(path) as writer:
        for spec in specs:
            writer.add(spec)
    slim = _check_slim([path])
    assert slim.records == len(specs)
    assert {(user, host) for user, _domain, _sid, host in slim.observations} == {
        ("alice", "RDSH01.contoso.local"), ("alice", "RDSH02.contoso.local"), ("Alice", "RDSH01.contoso.local"),
        ("-", "RDSH01.contoso.local"), ("bob", "RDSH01.contoso.local"),
    }  # fmt: skip
    assert _yielded(path, slim=False) == len(specs)
    assert _yielded(path, slim=True) == len(specs) - 6  # records 3, 4, 16, 17, 18 and 19 add nothing


@pytest.mark.shared
def test_shared_logs() -> None:
    files = sorted(SHARED.glob("*.evtx"))
    slim = _check_slim(files)
    assert slim.observations
    assert sum(_yielded(path, slim=True) for path in files) < sum(_yielded(path, slim=False) for path in files)


@pytest.mark.shared
def test_shared_logs_plan_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    _check_plan_cache(sorted(SHARED.glob("*.evtx")), monkeypatch)
