"""The python-evtx engine against pyevtx-rs, on the real logs in ``../shared/evtx``.

The default engine (:func:`evtrack.sources.pyevtx_rs.read_pyevtx_rs`) is the reference: on every shared file, with and
without checksum verification, both engines must yield the same multiset of events (every field evtrack uses),
and where one reads a record the other does not, the difference must be accounted for by counted issues.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from evtrack.catalogue import read_plan
from evtrack.errors import SourceError
from evtrack.sources.base import FileStats, InputKind, RawEvent
from evtrack.sources.binxml.values import Unsupported
from evtrack.sources.pyevtx_rs import read_pyevtx_rs
from evtrack.sources.python_evtx import ENGINE, fallback, read_python_evtx, reader

from .conftest import SHARED

pytestmark = pytest.mark.shared  # skipped by conftest where ../shared/evtx is absent

FILES = sorted(SHARED.glob("*.evtx"))
#: What both engines are asked to read: the catalogue's plan.
PLAN = read_plan()
#: The payload fields both engines decode (each may decode more; only these are compared).
DATA_KEYS = tuple(sorted(PLAN.payload_keys))
SZECHUAN = SHARED / "dfir-museum_szechuan_security.evtx"
MULTI_HOST_1149 = SHARED / "evtx-to-mitre_id1149-rdp_success_logins_to_multiple_hosts.evtx"
SMALL_RCM = SHARED / "velociraptor_rdpauth_remoteconnectionmanager.evtx"
#: Two chunks: 117 records in chunk 0, 6 in chunk 1.
TWO_CHUNKS = SHARED / "dfir-museum_szechuan_microsoft-windows-terminalservices-localsessionmanager-operational.evtx"
CHUNK_REFUSALS = ("chunk header CRC32", "chunk data CRC32", "bad chunk header magic", "all zeros between chunks")


def _key(event: RawEvent) -> tuple[Any, ...]:
    data: tuple[tuple[str, str | None], ...] = ()
    if event.event_id in PLAN.wanted_ids:
        data = tuple((name, event.data[name]) for name in DATA_KEYS if name in event.data)
    return (event.record_id, event.time_us, event.event_id, event.channel, event.computer, event.provider, data)


def _read(reader: Any, path: Path, verify: bool = True) -> tuple[Counter[tuple[Any, ...]], FileStats]:
    stats = FileStats(path)
    events = Counter(_key(event) for event in reader(path, stats, plan=PLAN, verify_checksums=verify))
    return events, stats


def _describe(events: Counter[tuple[Any, ...]]) -> str:
    return "; ".join(f"record {key[0]} (EventID {key[2]}, {key[5]})" for key in sorted(events, key=str)[:10])


@pytest.mark.parametrize("verify", [True, False], ids=["verify", "no-verify"])
@pytest.mark.parametrize("path", FILES, ids=[path.stem[:60] for path in FILES])
def test_same_events_as_pyevtx_rs(path: Path, verify: bool) -> None:
    rust_events, rust_stats = _read(read_pyevtx_rs, path, verify)
    py_events, py_stats = _read(read_python_evtx, path, verify)

    only_rust = rust_events - py_events
    only_py = py_events - rust_events
    assert not only_rust and not only_py, (
        f"only pyevtx-rs read: {_describe(only_rust) or 'none'}; only python-evtx read: {_describe(only_py) or 'none'}"
        f"; pyevtx-rs issues {rust_stats.issues}; python-evtx issues {py_stats.issues}"
    )
    # Whatever neither engine could read is counted, and counted alike.
    assert py_stats.records == rust_stats.records == sum(rust_events.values())
    assert py_stats.skipped == rust_stats.skipped
    assert py_stats.records + py_stats.skipped == rust_stats.records + rust_stats.skipped
    # The same chunks are refused (bad magic, a failing CRC32 when verifying, all zeros before a chunk in use).
    rust_chunks = {issue.where for issue in rust_stats.issues if issue.where.startswith("chunk")}
    py_chunks = {issue.where for issue in py_stats.issues if issue.reason.startswith(CHUNK_REFUSALS)}
    assert py_chunks == rust_chunks
    assert py_stats.kind is InputKind.EVTX
    assert py_stats.engine == ENGINE
    assert sum(py_stats.per_channel.values()) == py_stats.records
    # Every skip is named: where (a chunk, a record or the file) and why. (pyevtx-rs does not always say which
    # record it could not read: its issues may name just "record".)
    for issue in py_stats.issues:
        assert re.fullmatch(r"chunk \d+|record \d+|file", issue.where) and issue.reason, issue
    assert all(issue.where and issue.reason for issue in rust_stats.issues)


@pytest.mark.parametrize("path", FILES, ids=[path.stem[:60] for path in FILES])
def test_python_engine_decodes_only_the_payload_keys(path: Path) -> None:
    stats = FileStats(path)
    for event in read_python_evtx(path, stats, plan=PLAN, verify_checksums=False):
        assert set(event.data) <= PLAN.payload_keys
        assert not event.data or event.event_id in PLAN.wanted_ids


def test_reads_chunks_a_stale_file_header_leaves_out() -> None:
    from Evtx.Evtx import Evtx

    with Evtx(str(SZECHUAN)) as log:
        assert sum(1 for _ in log.records()) == 6160  # python-evtx's own iteration trusts the stale header
    stats = FileStats(SZECHUAN)
    events = list(read_python_evtx(SZECHUAN, stats, plan=PLAN))
    assert len(events) == stats.records == 8574
    assert stats.issues == []
    assert stats.fallbacks == 0
    rdp = [event for event in events if event.event_id == 4624 and event.data.get("LogonType") == "10"]
    assert len(rdp) == 4
    assert {(event.data["TargetDomainName"] or "").lower() for event in rdp} == {"c137"}
    assert all(event.data["TargetLogonId"] and event.data["TargetLogonId"].startswith("0x") for event in rdp)


def test_raw_binxml_records_are_read_as_fallbacks() -> None:
    stats = FileStats(MULTI_HOST_1149)
    events = list(read_python_evtx(MULTI_HOST_1149, stats, plan=PLAN))
    assert stats.records == len(events) == 11
    assert stats.fallbacks == 11  # no template instance: the fast path cannot take them
    assert stats.issues == []
    assert {event.event_id for event in events} == {1149}
    assert len({event.computer for event in events}) == 11
    assert {event.data["Param1"] for event in events} == {"admmig"}


def test_rendering_fallback_matches_and_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    def unsupported(*args: object) -> RawEvent:
        raise Unsupported("forced")

    monkeypatch.setattr(reader, "fast_event", unsupported)
    monkeypatch.setattr(fallback, "tree_event", unsupported)
    rendered, stats = _read(read_python_evtx, SMALL_RCM)
    assert stats.fallbacks == stats.records == 4
    assert rendered == _read(read_pyevtx_rs, SMALL_RCM)[0]


def test_records_nothing_can_decode_are_issues(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> RawEvent:
        raise AttributeError("'NullTypeNode' object has no attribute 'find_end_of_stream'")

    monkeypatch.setattr(reader, "fast_event", broken)
    monkeypatch.setattr(fallback, "tree_event", broken)
    monkeypatch.setattr(fallback, "rendered_event", broken)
    stats = FileStats(SMALL_RCM)
    assert list(read_python_evtx(SMALL_RCM, stats, plan=PLAN)) == []
    assert stats.records == 0
    assert [issue.where for issue in stats.issues] == [f"record {n}" for n in range(32, 36)]
    assert stats.skipped == 4


def _copy(tmp_path: Path, data: bytes) -> Path:
    target = tmp_path / "copy.evtx"
    target.write_bytes(data)
    return target


def test_a_flipped_byte_fails_its_chunk_only(tmp_path: Path) -> None:
    data = bytearray(TWO_CHUNKS.read_bytes())
    data[0x1000 + 0x4000] ^= 0xFF  # inside chunk 0's records
    path = _copy(tmp_path, bytes(data))
    stats = FileStats(path)
    events = list(read_python_evtx(path, stats, plan=PLAN))
    assert len(events) == stats.records == 6  # chunk 1 is still read
    assert [(issue.where, issue.skipped) for issue in stats.issues] == [("chunk 0", 117)]
    assert "CRC32" in stats.issues[0].reason
    # pyevtx-rs refuses the same chunk
    rust_stats = FileStats(path)
    assert sum(1 for _ in read_pyevtx_rs(path, rust_stats, plan=PLAN)) == 6
    assert [(issue.where, issue.skipped) for issue in rust_stats.issues] == [("chunk 0", 117)]


def test_a_bad_chunk_magic_skips_the_chunk(tmp_path: Path) -> None:
    data = bytearray(TWO_CHUNKS.read_bytes())
    data[0x1000 : 0x1000 + 8] = b"XXXXXXXX"
    path = _copy(tmp_path, bytes(data))
    for verify in (True, False):
        stats = FileStats(path)
        assert sum(1 for _ in read_python_evtx(path, stats, plan=PLAN, verify_checksums=verify)) == 6
        assert [issue.where for issue in stats.issues] == ["chunk 0"]
        assert "magic" in stats.issues[0].reason


def test_a_truncated_file_keeps_what_is_whole(tmp_path: Path) -> None:
    data = TWO_CHUNKS.read_bytes()
    cut_in_header = _copy(tmp_path, data[: 0x1000 + 0x10000 + 300])
    for verify in (True, False):
        stats = FileStats(cut_in_header)
        assert sum(1 for _ in read_python_evtx(cut_in_header, stats, plan=PLAN, verify_checksums=verify)) == 117
        assert [(issue.where, issue.skipped) for issue in stats.issues] == [("chunk 1", 6)]

    # cut in the unused space of chunk 1, after its 6 records: nothing is lost, and its checksums hold
    cut_in_chunk = _copy(tmp_path, data[: 0x1000 + 0x10000 + 0x2000])
    for verify in (True, False):
        stats = FileStats(cut_in_chunk)
        assert sum(1 for _ in read_python_evtx(cut_in_chunk, stats, plan=PLAN, verify_checksums=verify)) == 123
        assert stats.issues == []

    cut_in_record = _copy(tmp_path, data[: 0x1000 + 0x10000 + 0x200 + 100])
    stats = FileStats(cut_in_record)
    assert sum(1 for _ in read_python_evtx(cut_in_record, stats, plan=PLAN, verify_checksums=False)) == 117
    assert [(issue.where, issue.skipped) for issue in stats.issues] == [("chunk 1", 6)]


@pytest.mark.parametrize("content", [b"", b"not an event log at all", b"ElfFile"], ids=["empty", "text", "short"])
def test_files_that_are_not_event_logs_raise(tmp_path: Path, content: bytes) -> None:
    path = _copy(tmp_path, content)
    with pytest.raises(SourceError):
        list(read_python_evtx(path, FileStats(path), plan=PLAN))


def test_a_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(SourceError):
        list(read_python_evtx(tmp_path / "missing.evtx", FileStats(tmp_path / "missing.evtx"), plan=PLAN))
