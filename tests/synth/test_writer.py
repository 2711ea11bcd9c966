"""The .evtx writer: both parsers read every record back exactly as meant; chunks, checksums, determinism."""

from __future__ import annotations

import random
import struct
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from parse_helpers import Parsed, parse_xml, read_py, read_rs

from evtrack.synth import VT, EventSpec, EvtxWriter
from evtrack.synth import shapes as sh
from evtrack.synth.evtx_writer import EventType

ALL_TYPES = [
    sh.E4624, sh.E4634, sh.E4647, sh.E4672, sh.E4778, sh.E4779, sh.E4798, sh.E5379, sh.E1102,
    sh.LSM21, sh.LSM22, sh.LSM23, sh.LSM24, sh.LSM25, sh.LSM40, sh.RCM1149,
]  # fmt: skip
T0 = datetime(2024, 1, 31, 23, 59, 58, tzinfo=timezone.utc)


def _value(rng: random.Random, vtype: VT) -> object:
    if vtype == VT.STRING:
        return rng.choice(["", "-", "alice", "CONTOSO\\bob", "Çağrı YEREL ü", "x" * rng.randrange(0, 300), "%%1842"])
    if vtype == VT.SID:
        return rng.choice(["S-1-5-18", "S-1-0-0", f"S-1-5-21-1-2-{rng.randrange(10**9)}-{rng.randrange(500, 5000)}"])
    if vtype == VT.GUID:
        return "{" + str(uuid.UUID(int=rng.getrandbits(128))).upper() + "}"
    if vtype == VT.FILETIME:
        return T0 - timedelta(days=rng.randrange(1000), microseconds=rng.randrange(10**6))
    bits = {VT.UINT32: 32, VT.HEXINT64: 64, VT.SIZET: 64, VT.UINT8: 8, VT.UINT16: 16}[vtype]
    return rng.getrandbits(rng.randrange(1, bits + 1))


def _specs(n: int, seed: int = 3) -> list[EventSpec]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        etype = ALL_TYPES[i % len(ALL_TYPES)] if i < 2 * len(ALL_TYPES) else rng.choice(ALL_TYPES)
        values = tuple(_value(rng, vtype) for _, vtype in etype.fields)
        t = T0 + timedelta(seconds=i, microseconds=rng.randrange(10**6))
        computer = rng.choice(["RDSH01.contoso.local", "RDSH02.contoso.local"])
        act = "61A55000-55E5-1017-0000-000000000000" if rng.random() < 0.5 else None
        sid = sh.LSM_USER_SID if etype.channel == sh.LSM_CHANNEL else None
        out.append(EventSpec(etype, t, 1000 + i, computer, values, 572, rng.randrange(4000), act, sid))  # type: ignore[arg-type]
    return out


def _norm(vtype: VT, text: str) -> object:
    if vtype in (VT.UINT32, VT.UINT8, VT.UINT16):
        return int(text)
    if vtype in (VT.HEXINT64, VT.SIZET):
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    if vtype == VT.GUID:
        return text.strip("{}").lower()
    if vtype == VT.FILETIME:
        return datetime.fromisoformat(text.replace(" ", "T").replace("Z", "+00:00")).astimezone(timezone.utc)
    return text


def _expect(etype: EventType, value: object) -> object:
    if isinstance(value, str) and etype and value.startswith("{"):
        return value.strip("{}").lower()
    return value


def _check(spec: EventSpec, got: Parsed, time_slack_us: int = 0) -> None:
    assert got.event_id == spec.etype.event_id
    assert got.record_id == spec.record_id
    assert isinstance(spec.time, datetime)
    # pyevtx-rs: exact to the microsecond; python-evtx converts FILETIME through a float (a few us off).
    assert abs(got.time - spec.time) <= timedelta(microseconds=time_slack_us)
    assert got.computer == spec.computer
    assert got.channel == spec.etype.channel
    assert [name for name, _ in got.fields] == [name for name, _ in spec.etype.fields]
    for (name, vtype), (_, text), value in zip(spec.etype.fields, got.fields, spec.values, strict=True):
        want = _expect(spec.etype, value)
        if vtype == VT.FILETIME and time_slack_us:
            assert isinstance(want, datetime)
            assert abs(_norm(vtype, text) - want) <= timedelta(microseconds=time_slack_us)  # type: ignore[operator]
            continue
        assert _norm(vtype, text) == want, (spec.etype.event_id, name)


def _write(path: Path, specs: list[EventSpec]) -> None:
    with EvtxWriter(path) as w:
        for s in specs:
            w.add(s)


def test_round_trip_both_parsers(tmp_path: Path) -> None:
    specs = _specs(400)
    path = tmp_path / "rt.evtx"
    _write(path, specs)
    rs, errors = read_rs(path)
    assert errors == []
    assert len(rs) == len(specs)
    py, bad = read_py(path)
    assert bad == 0
    assert len(py) == len(specs)
    for spec, a, b in zip(specs, rs, py, strict=True):
        _check(spec, parse_xml(a))
        _check(spec, parse_xml(b), time_slack_us=5)


def test_chunk_rollover_and_headers(tmp_path: Path) -> None:
    specs = _specs(3000, seed=5)
    path = tmp_path / "big.evtx"
    with EvtxWriter(path) as w:
        for s in specs:
            w.add(s)
    stats = w.close()
    assert stats.chunks > 3
    data = path.read_bytes()
    assert len(data) == 4096 + stats.chunks * 65536
    magic, first_chunk, last_chunk, next_id, hsize, minor, major, block, count = struct.unpack_from(
        "<8sQQQIHHHH", data, 0
    )
    assert (magic, first_chunk, last_chunk, next_id) == (b"ElfFile\x00", 0, stats.chunks - 1, 1000 + len(specs))
    assert (hsize, minor, major, block, count) == (128, 1, 3, 4096, stats.chunks)
    assert struct.unpack_from("<I", data, 120)[0] == 0  # clean
    expected_first = 1000
    for i in range(stats.chunks):
        base = 4096 + i * 65536
        first_num, last_num, first_id, last_id = struct.unpack_from("<QQQQ", data, base + 8)
        assert first_num == first_id == expected_first
        assert last_num == last_id >= first_id
        expected_first = last_id + 1
    assert expected_first == 1000 + len(specs)
    rs, errors = read_rs(path)
    assert errors == [] and len(rs) == len(specs)
    assert [parse_xml(x).record_id for x in rs] == [s.record_id for s in specs]


@pytest.mark.parametrize("where", ["record", "chunk_header", "string_table"])
def test_flipped_byte_is_a_crc_error(tmp_path: Path, where: str) -> None:
    path = tmp_path / "flip.evtx"
    _write(path, _specs(50))
    data = bytearray(path.read_bytes())
    offset = {"record": 4096 + 512 + 700, "chunk_header": 4096 + 20, "string_table": 4096 + 200}[where]
    if where == "string_table":
        offset = 4096 + 128 + next(i for i in range(0, 256, 4) if data[4096 + 128 + i])
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    _, errors = read_rs(path)
    assert errors, "pyevtx-rs accepted a corrupted chunk"
    assert any("checksum" in str(e).lower() or "crc" in str(e).lower() for e in errors), errors[:3]


def test_same_input_same_bytes(tmp_path: Path) -> None:
    specs = _specs(500)
    _write(tmp_path / "a.evtx", specs)
    _write(tmp_path / "b.evtx", specs)
    assert (tmp_path / "a.evtx").read_bytes() == (tmp_path / "b.evtx").read_bytes()


def test_templates_are_shared_within_a_chunk(tmp_path: Path) -> None:
    """Second and later uses of a template in a chunk reference it: records shrink after the first."""
    path = tmp_path / "t.evtx"
    spec = _specs(1)[0]
    with EvtxWriter(path) as w:
        for i in range(5):
            w.add(EventSpec(spec.etype, spec.time, i + 1, spec.computer, spec.values))
    data = path.read_bytes()
    sizes = []
    pos = 4096 + 512
    for _ in range(5):
        assert data[pos : pos + 4] == b"\x2a\x2a\x00\x00"
        size = struct.unpack_from("<I", data, pos + 4)[0]
        assert struct.unpack_from("<I", data, pos + size - 4)[0] == size
        sizes.append(size)
        pos += size
    assert sizes[0] > sizes[1] == sizes[2] == sizes[3] == sizes[4]


def test_wrong_value_count_is_rejected(tmp_path: Path) -> None:
    with EvtxWriter(tmp_path / "x.evtx") as w, pytest.raises(ValueError):
        w.add(EventSpec(sh.LSM21, T0, 1, "H", ("a", 1)))


def _layout(path: Path) -> list[tuple[int, int, bytes]]:
    """(record size, zero bytes before its trailing size copy, the first bytes of its payload value) of every
    record: the payload is the outer template instance's last substitution value (its BinXML)."""
    data = path.read_bytes()
    out = []
    for base in range(4096, len(data), 65536):
        chunk = data[base : base + 65536]
        if chunk[:8] != b"ElfChnk\x00":
            continue
        free, pos = struct.unpack_from("<I", chunk, 48)[0], 512
        while pos < free:
            magic, size = struct.unpack_from("<II", chunk, pos)
            assert magic == 0x2A2A and struct.unpack_from("<I", chunk, pos + size - 4)[0] == size
            ti = pos + 28  # after the record header and the fragment header
            definition = struct.unpack_from("<I", chunk, ti + 6)[0]
            after = ti + 10
            if definition == after:  # defined inline: skip it
                after += 24 + struct.unpack_from("<I", chunk, after + 20)[0]
            count = struct.unpack_from("<I", chunk, after)[0]
            sizes = [struct.unpack_from("<H", chunk, after + 4 + 4 * k)[0] for k in range(count)]
            value = after + 4 + 4 * count + sum(sizes[:-1])
            tail = chunk[value + sizes[-1] : pos + size - 4]
            out.append((size, len(tail) if not any(tail) else -1, chunk[value : value + 5]))
            pos += size
    return out


@pytest.mark.parametrize("fragment_payload", [False, True])
def test_records_are_laid_out_as_windows_does(tmp_path: Path, fragment_payload: bool) -> None:
    """Every record is 8-byte aligned, padded with zeros before its trailing size copy (as every record of the
    real logs in ../shared/evtx is); the payload value starts with its template instance (Windows 10 and 11) or,
    with ``fragment_payload``, with a fragment header first (older Windows). Both engines read either shape back
    exactly."""
    specs = _specs(300, seed=11)
    path = tmp_path / "layout.evtx"
    with EvtxWriter(path, fragment_payload=fragment_payload) as w:
        for s in specs:
            w.add(s)
    layout = _layout(path)
    assert len(layout) == len(specs)
    assert all(size % 8 == 0 and 0 <= padding < 8 for size, padding, _ in layout)
    assert any(padding for _, padding, _ in layout)  # sizes vary: some records needed padding
    start = b"\x0f\x01\x01\x00\x0c" if fragment_payload else b"\x0c\x01"
    assert all(head.startswith(start) for _, _, head in layout)
    rs, errors = read_rs(path)
    py, bad = read_py(path)
    assert errors == [] and bad == 0
    for spec, a, b in zip(specs, rs, py, strict=True):
        _check(spec, parse_xml(a))
        _check(spec, parse_xml(b), time_slack_us=5)


def test_the_layout_matches_the_real_logs(shared_evtx: Path) -> None:
    """What the layout test above asserts is what Windows writes: every record of these real logs is 8-byte
    aligned and its payload starts in one of the two shapes."""
    shapes: set[bytes] = set()
    checked = 0
    for name in ("velociraptor_rdpauth_localsessionmanager.evtx", "dfir-museum_rathbun-w11_security.evtx",
                 "dfir-museum_szechuan_security.evtx",
                 "dfir-museum_szechuan_microsoft-windows-terminalservices-remoteconnectionmanager-operational.evtx"):
        for size, _, head in _layout(shared_evtx / name):
            assert size % 8 == 0
            shapes.add(head[:2] if head[:1] == b"\x0c" else head)
            checked += 1
    assert checked > 5000
    assert shapes == {b"\x0c\x01", b"\x0f\x01\x01\x00\x0c"}
