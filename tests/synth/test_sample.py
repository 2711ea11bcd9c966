"""write_sample: every file parses with zero errors, counts are right, output is deterministic, and the ground
truth agrees with the model (checked against the model's sessions, not by re-implementing the counting)."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from parse_helpers import parse_xml, read_py, read_rs

from evtrack.synth import write_sample
from evtrack.synth.workload import build_workload, ft_to_datetime

SERVICE_NAMES = {"system", "network service", "local service", "anonymous logon", "administrator"}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("sample")
    result = write_sample(
        out, users=6, hosts=2, start=date(2024, 1, 1), end=date(2024, 3, 31), tz="Europe/Istanbul", seed=1,
        noise_ratio=1.0,
    )  # fmt: skip
    return out, result


@pytest.mark.parametrize(("seed", "users", "hosts", "noise"), [(1, 6, 2, 1.0), (7, 3, 1, 0.0), (42, 15, 3, 4.0)])
def test_every_file_parses_with_zero_errors(tmp_path: Path, seed: int, users: int, hosts: int, noise: float) -> None:
    result = write_sample(
        tmp_path, users=users, hosts=hosts, start=date(2024, 1, 15), end=date(2024, 2, 20), seed=seed, noise_ratio=noise
    )
    evtx_files = sorted(tmp_path.glob("*.evtx"))
    assert len(evtx_files) == 3 * hosts + 1  # plus one Security re-export
    for path in evtx_files:
        xml, errors = read_rs(path)
        assert errors == [], path.name
        assert len(xml) == result.records[path.name]
    for path in evtx_files:
        if "Security" not in path.name:  # python-evtx is slow: read the small logs fully
            xml_py, bad = read_py(path)
            assert bad == 0 and len(xml_py) == result.records[path.name]


def test_python_evtx_reads_a_security_log(sample: tuple[Path, object]) -> None:
    out, _ = sample
    path = out / "RDSH02-Security-reexport.evtx"
    rs, errors = read_rs(path)
    py, bad = read_py(path)
    assert errors == [] and bad == 0 and len(rs) == len(py) > 100
    for a, b in zip(rs[:300], py[:300], strict=False):
        pa, pb = parse_xml(a), parse_xml(b)
        assert (pa.event_id, pa.record_id, pa.computer, pa.channel) == (
            pb.event_id,
            pb.record_id,
            pb.computer,
            pb.channel,
        )
        assert [n for n, _ in pa.fields] == [n for n, _ in pb.fields]


def test_deterministic(tmp_path: Path) -> None:
    kw = dict(users=5, hosts=2, start=date(2024, 1, 1), end=date(2024, 2, 29), tz="America/New_York", seed=9)
    write_sample(tmp_path / "a", **kw)  # type: ignore[arg-type]
    write_sample(tmp_path / "b", **kw)  # type: ignore[arg-type]
    write_sample(tmp_path / "c", **{**kw, "seed": 10})  # type: ignore[arg-type]
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "RDSH01-Security.evtx").read_bytes() != (
        tmp_path / "c" / "RDSH01-Security.evtx"
    ).read_bytes()


def test_record_ids_increase_and_reexport_overlaps(sample: tuple[Path, object]) -> None:
    out, _ = sample
    ids: dict[str, list[int]] = {}
    for path in out.glob("*.evtx"):
        xml, _ = read_rs(path)
        ids[path.name] = [parse_xml(x).record_id for x in xml]
        assert ids[path.name] == sorted(ids[path.name]) and len(set(ids[path.name])) == len(ids[path.name])
    main, again = set(ids["RDSH02-Security.evtx"]), set(ids["RDSH02-Security-reexport.evtx"])
    assert again <= main and len(again) > 0


def test_cleared_and_rolled_over_security_logs(sample: tuple[Path, object]) -> None:
    out, _ = sample
    gt = json.loads((out / "ground_truth.json").read_text())
    xml, _ = read_rs(out / "RDSH01-Security.evtx")
    first = parse_xml(xml[0])
    assert first.event_id == 1102  # the clear is the first record of the new log
    lsm = gt["files"]["RDSH01-LocalSessionManager.evtx"]
    sec = gt["files"]["RDSH01-Security.evtx"]
    assert lsm["first_time"] < sec["first_time"]  # LSM still covers what Security lost
    rolled = gt["files"]["RDSH02-Security.evtx"]
    assert gt["files"]["RDSH02-LocalSessionManager.evtx"]["first_time"] < rolled["first_time"]


def test_ground_truth_matches_the_model(sample: tuple[Path, object]) -> None:
    out, _ = sample
    gt = json.loads((out / "ground_truth.json").read_text())
    assert gt["schema_version"] == 1
    assert list(gt["months"]) == ["2024-01", "2024-02", "2024-03"]
    p = gt["parameters"]
    wl = build_workload(
        users=p["users"], hosts=p["hosts"], start=date(2024, 1, 1), end=date(2024, 3, 31), tz=p["tz"], seed=p["seed"],
        noise_ratio=1.0, rollover=True, clear_log=True, reexport=True,
    )  # fmt: skip
    tz = ZoneInfo(p["tz"])
    by_sid = {u.sid: u for u in wl.users}
    known = {u["sid"]: u["account"] for u in gt["users"]}
    started: dict[str, set[str]] = {}
    spans: dict[str, list[tuple[datetime, datetime]]] = {}
    for s in wl.sessions:
        sid = wl.users[s.user].sid
        started.setdefault(ft_to_datetime(s.start_ft).astimezone(tz).strftime("%Y-%m"), set()).add(sid)
        spans.setdefault(sid, []).append((ft_to_datetime(s.start_ft), ft_to_datetime(s.end_ft)))
    reconnect_only = 0
    for month, entry in gt["months"].items():
        sids = [u["sid"] for u in entry["users"]]
        assert [u["account"] for u in entry["users"]] == sorted(u["account"] for u in entry["users"])
        y, m = map(int, month.split("-"))
        lo = datetime(y, m, 1, tzinfo=tz).astimezone(timezone.utc)
        hi = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=tz).astimezone(timezone.utc)
        for u in entry["users"]:
            assert u["sid"] in by_sid and known[u["sid"]] == u["account"]
            assert u["account"] == u["account"].lower() and u["account"].startswith("contoso\\")
            assert u["account"].split("\\")[1] not in SERVICE_NAMES and not u["account"].endswith("$")
            # every counted user has a session of the model that is live during that month
            assert any(a < hi and b >= lo for a, b in spans[u["sid"]]), (month, u)
        # every user who started a session that month is counted (LSM 21 always lands in a file)
        assert started.get(month, set()) <= set(sids)
        assert entry["sessions"] == sum(
            1 for s in wl.sessions if ft_to_datetime(s.start_ft).astimezone(tz).strftime("%Y-%m") == month
        )
        reconnect_only += len(set(sids) - started.get(month, set()))
    assert reconnect_only >= 1  # some month where a user only reconnects to an older session


def test_size_mb_is_approximate(tmp_path: Path) -> None:
    result = write_sample(tmp_path, users=4, hosts=2, start=date(2024, 1, 1), end=date(2024, 1, 31), size_mb=8)
    assert 4e6 <= result.bytes <= 16e6
