"""Large files are read as chunk ranges by several workers: the joined result must equal reading them whole,
whatever the split, also when chunks are damaged or refused."""

from __future__ import annotations

import itertools
import shutil
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evtrack.events import decoded
from evtrack.reading import FileResult, join_ranges, plan_units, read_file, read_inputs
from evtrack.sources.guard import chunk_count

from .conftest import SHARED


def _summary(result: FileResult) -> tuple[object, ...]:
    import pyarrow as pa

    table = pa.Table.from_batches(result.batches) if result.batches else None
    stats = result.stats
    return (
        None if table is None else table.to_pylist(),
        stats.records, stats.size, stats.fallbacks, dict(stats.per_channel), stats.issues, result.error,
        result.coverage.spans(), result.coverage.export(), result.observations,
    )


@pytest.fixture(scope="module")
def security(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from evtrack.synth import write_sample

    folder = tmp_path_factory.mktemp("ranges")
    write_sample(folder, users=6, hosts=1, start=date(2024, 1, 1), end=date(2024, 2, 29), seed=8, size_mb=3,
                 rollover=False, clear_log=False, reexport=False)
    path = folder / "RDSH01-Security.evtx"
    assert chunk_count(path.stat().st_size) >= 20
    return path


def _damaged(security: Path, folder: Path) -> Path:
    """A copy with two chunks' data bit-flipped (checksum failures) and one chunk's header zeroed."""
    path = folder / "damaged-Security.evtx"
    data = bytearray(security.read_bytes())
    for chunk in (3, 11):
        data[0x1000 + chunk * 0x10000 + 0x400] ^= 0xFF
    data[0x1000 + 7 * 0x10000 : 0x1000 + 7 * 0x10000 + 8] = bytes(8)
    path.write_bytes(bytes(data))
    return path


@settings(max_examples=12, deadline=None)
@given(cuts=st.lists(st.integers(1, 40), max_size=4, unique=True), damaged=st.booleans(), slim=st.booleans())
def test_any_split_equals_reading_whole(security: Path, tmp_path_factory: pytest.TempPathFactory, cuts: list[int],
                                        damaged: bool, slim: bool) -> None:
    path = _damaged(security, tmp_path_factory.mktemp("d")) if damaged else security
    count = chunk_count(path.stat().st_size)
    bounds = sorted({0, count, *(c for c in cuts if c < count)})
    parts = [read_file(path, slim=slim, chunks=(lo, hi)) for lo, hi in itertools.pairwise(bounds)]
    whole = read_file(path, slim=slim)
    assert _summary(join_ranges(parts)) == _summary(whole)
    if damaged:
        assert {i.where for i in whole.stats.issues} >= {"chunk 3", "chunk 7", "chunk 11"}


def test_large_files_are_split_and_reports_do_not_change(security: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import evtrack.reading

    monkeypatch.setattr(evtrack.reading, "SPLIT_MIN_CHUNKS", 4)
    monkeypatch.setattr(evtrack.reading, "POOL_MIN_BYTES", 0)  # the caller and three workers share the ranges
    folder = tmp_path / "logs"
    shutil.copytree(security.parent, folder)
    _damaged(security, folder)
    files = sorted(folder.glob("*.evtx"))
    units = plan_units(files, "evtx", 4)
    assert len(units) > len(files)
    assert [u for u in plan_units(files, "python-evtx", 4) if u[1] is not None] == []  # that engine reads whole files
    one = read_inputs([folder], jobs=1, slim=True)
    two = read_inputs([folder], jobs=4, slim=True)
    assert decoded(one.table).equals(decoded(two.table))  # the same values; the dictionaries follow the batches
    assert one.coverage == two.coverage
    assert one.observations == two.observations
    assert [(s.path, s.records, s.size, s.issues, dict(s.per_channel)) for s in one.files] == [
        (s.path, s.records, s.size, s.issues, dict(s.per_channel)) for s in two.files]


def test_each_input_is_fingerprinted_where_it_is_read(security: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A report lists each input's SHA-256: taken by whoever read the whole file (a worker, or the caller), and
    afterwards for a file read in ranges; the same digests either way, and only when asked."""
    import evtrack.reading
    from evtrack.pipeline import input_files
    from evtrack.sources.base import file_sha256

    monkeypatch.setattr(evtrack.reading, "SPLIT_MIN_CHUNKS", 4)
    monkeypatch.setattr(evtrack.reading, "POOL_MIN_BYTES", 0)
    folder = tmp_path / "logs"
    shutil.copytree(security.parent, folder)
    files = sorted(folder.glob("*.evtx"))
    split = {path for path, chunks in plan_units(files, "evtx", 4) if chunks is not None}
    assert split and len(split) < len(files)
    result = read_inputs([folder], jobs=4, slim=True, fingerprint=True)
    assert {s.path: s.sha256 for s in result.files} == {
        path: None if path in split else file_sha256(path) for path in files}
    assert [(i.path, i.sha256) for i in input_files(result)] == [(str(p), file_sha256(p)) for p in files]
    assert {s.sha256 for s in read_inputs([folder], jobs=1).files} == {None}


@pytest.mark.shared
def test_real_files_split_like_whole(tmp_path: Path) -> None:
    for path in sorted(SHARED.glob("*.evtx")):
        count = chunk_count(path.stat().st_size)
        if count < 3:
            continue
        middle = count // 2
        joined = join_ranges([read_file(path, slim=True, chunks=(0, middle)),
                              read_file(path, slim=True, chunks=(middle, count))])
        assert _summary(joined) == _summary(read_file(path, slim=True)), path.name


def _intervals(result: FileResult) -> list[int]:
    return [len(span.intervals) for span in result.coverage.spans() if span.channel == "Security"]


def test_a_refused_chunk_is_a_hole_in_coverage(security: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review finding: pyevtx-rs skipped the zeroed (refused) chunk silently, so coverage ran across it."""
    import evtrack.sources.pyevtx_rs as rust
    from evtrack.sources.guard import REFUSED

    monkeypatch.setattr(rust, "scan_chunks", lambda path, first=0, last=None: [
        (c, REFUSED) for c in [5] if c >= first and (last is None or c < last)])
    whole = read_file(security)
    assert [(i.where, i.skipped > 0) for i in whole.stats.issues] == [("chunk 5", True)]
    assert _intervals(whole) == [2]
    count = chunk_count(security.stat().st_size)
    for cut in (5, 6):
        joined = join_ranges([read_file(security, chunks=(0, cut)), read_file(security, chunks=(cut, count))])
        assert _summary(joined) == _summary(whole)


@pytest.mark.parametrize("engine", ["evtx", "python-evtx"])
def test_a_chunk_with_a_broken_header_is_a_hole_in_coverage(security: Path, tmp_path: Path, engine: str) -> None:
    """Review finding: a chunk whose header is unreadable does not say how many records it held; the records
    are still lost, so coverage must break there."""
    data = bytearray(security.read_bytes())
    data[0x1000 + 5 * 0x10000 : 0x1000 + 5 * 0x10000 + 8] = b"XXXXXXXX"
    broken = tmp_path / "broken-Security.evtx"
    broken.write_bytes(bytes(data))
    result = read_file(broken, engine=engine)
    assert [i.where for i in result.stats.issues] == ["chunk 5"]
    assert _intervals(result) == [2]


def test_a_file_with_an_unusual_header_is_read_whole(security: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Fuzzing finding: pyevtx-rs places chunks by the header's block size, so a range of a file whose header
    says something else than 4096 reads differently: such a file is never split."""
    import struct

    import evtrack.reading

    monkeypatch.setattr(evtrack.reading, "SPLIT_MIN_CHUNKS", 4)
    data = bytearray(security.read_bytes())
    struct.pack_into("<H", data, 40, 4740)
    odd = tmp_path / "odd-Security.evtx"
    odd.write_bytes(bytes(data))
    assert plan_units([odd], "evtx", 4) == [(odd, None)]
    assert len(plan_units([security], "evtx", 4)) > 1
    assert read_inputs([odd], jobs=4).table.equals(read_inputs([odd], jobs=1).table)


@pytest.mark.parametrize("engine", ["evtx", "python-evtx"])
def test_a_wiped_chunk_between_chunks_in_use_is_named_and_a_hole(security: Path, tmp_path: Path,
                                                                 engine: str) -> None:
    """Review finding: pyevtx-rs (and python-evtx) skip an all-zero chunk without a word; between chunks in use
    it means lost records. Zero chunks at the end of a file are unused space."""
    data = bytearray(security.read_bytes())
    data[0x1000 + 5 * 0x10000 : 0x1000 + 6 * 0x10000] = bytes(0x10000)
    data += bytes(3 * 0x10000)  # unused space at the end: not an issue
    wiped = tmp_path / "wiped-Security.evtx"
    wiped.write_bytes(bytes(data))
    result = read_file(wiped, engine=engine)
    assert [(i.where, i.skipped) for i in result.stats.issues] == [("chunk 5", 0)]
    assert "all zeros" in result.stats.issues[0].reason
    assert _intervals(result) == [2]
    if engine == "evtx":
        count = chunk_count(wiped.stat().st_size)
        for cut in (3, 5, 6, count - 2):
            joined = join_ranges([read_file(wiped, chunks=(0, cut)), read_file(wiped, chunks=(cut, count))])
            assert _summary(joined) == _summary(result)
