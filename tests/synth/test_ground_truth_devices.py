"""ground_truth.json per month: client devices and peak concurrency of connected RDP sessions. Checked for
consistency with the model (its users, client addresses and sessions), not by re-implementing the counting."""

from __future__ import annotations

import ipaddress
import json
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from evtrack.synth import write_sample
from evtrack.synth.sample import _connected_intervals, _peak
from evtrack.synth.workload import SessionRecord, Workload, build_workload, ft_from_datetime

CASES = {
    "istanbul": dict(users=6, hosts=2, start=date(2024, 1, 1), end=date(2024, 3, 31), tz="Europe/Istanbul", seed=1,
                     noise_ratio=0.0),
    "three-hosts": dict(users=15, hosts=3, start=date(2024, 1, 15), end=date(2024, 4, 20), tz="America/New_York",
                        seed=42, noise_ratio=0.0),
}  # fmt: skip


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Workload]:
    kw = CASES[request.param]
    out = tmp_path_factory.mktemp(request.param)
    write_sample(out, **kw)  # type: ignore[arg-type]
    gt = json.loads((out / "ground_truth.json").read_text(encoding="utf-8"))
    wl = build_workload(**kw, rollover=True, clear_log=True, reexport=True)  # type: ignore[arg-type]
    return gt, wl


def _bounds(month: str, tz: ZoneInfo) -> tuple[int, int]:
    y, m = map(int, month.split("-"))
    hi = date(y + (m == 12), m % 12 + 1, 1)
    return ft_from_datetime(datetime(y, m, 1, tzinfo=tz)), ft_from_datetime(datetime(hi.year, hi.month, 1, tzinfo=tz))


def _connected_in(s: SessionRecord, lo: int, hi: int) -> bool:
    return any(max(a, lo) < min(hi if b is None else b, hi) for a, b in s.connected)


def test_schema(case: tuple[dict[str, Any], Workload]) -> None:
    gt, _ = case
    assert isinstance(gt["concurrency_rule"], str) and "half-open" in gt["concurrency_rule"]
    assert isinstance(gt["device_rule"], str)
    hosts = [h["name"] for h in gt["hosts"]]
    for month, entry in gt["months"].items():
        devices = entry["devices"]
        assert entry["device_count"] == len(devices)
        addrs = [d["address"] for d in devices]
        assert addrs == sorted(addrs, key=ipaddress.ip_address) and len(set(addrs)) == len(addrs), month
        for d in devices:
            assert set(d) == {"address", "name"}
            assert d["address"].startswith("10.") and (d["name"] is None or isinstance(d["name"], str))
        assert isinstance(entry["peak_sessions"], int)
        assert list(entry["peak_sessions_by_host"]) == hosts


def test_devices_are_the_clients_of_the_months_users(case: tuple[dict[str, Any], Workload]) -> None:
    gt, wl = case
    tz = ZoneInfo(wl.tz)
    by_sid = {u.sid: u for u in wl.users}
    names_of_ip: dict[str, set[str]] = {}
    for u in wl.users:
        names_of_ip.setdefault(u.client_ip, set()).add(u.client_name)
    some_named = False
    for month, entry in gt["months"].items():
        active = [by_sid[u["sid"]] for u in entry["users"]]
        addrs = {d["address"] for d in entry["devices"]}
        # devices are a subset of the client addresses of the users active that month ...
        assert addrs <= {u.client_ip for u in active}, month
        # ... and every active user contributes at least one device
        for u in active:
            assert u.client_ip in addrs, (month, u.sam)
        assert entry["device_count"] <= entry["user_count"] or len(names_of_ip) < len(wl.users)
        # the name, when there is one, is the ClientName the model writes for that address
        for d in entry["devices"]:
            if d["name"] is not None:
                some_named = True
                assert d["name"] in names_of_ip[d["address"]], (month, d)
        # a user who logged on that month (LSM 21 always lands in a file) is a device of that month
        lo, hi = _bounds(month, tz)
        for s in wl.sessions:
            if lo <= s.start_ft < hi:
                assert wl.users[s.user].client_ip in addrs
    assert some_named


def test_peaks_are_consistent_with_the_models_sessions(case: tuple[dict[str, Any], Workload]) -> None:
    gt, wl = case
    tz = ZoneInfo(wl.tz)
    for month, entry in gt["months"].items():
        lo, hi = _bounds(month, tz)
        peak, by_host = entry["peak_sessions"], entry["peak_sessions_by_host"]
        live = [s for s in wl.sessions if _connected_in(s, lo, hi)]
        if entry["user_count"]:
            assert peak >= 1, month
        assert peak <= len(live), month
        assert peak <= len({s.user for s in live})  # one user never has two connected sessions at once here
        assert max(by_host.values(), default=0) <= peak <= sum(by_host.values()), month
        for h in wl.hosts:
            on_host = [s for s in live if s.host == h.index]
            assert (by_host[h.name] >= 1) == bool(on_host), (month, h.name)
            assert by_host[h.name] <= len(on_host)
        # brute force over the model's intervals: the peak is reached at some connect instant in the month
        spans = [(max(a, lo), min(b if b is not None else hi, hi)) for s in live for a, b in s.connected]
        spans = [(a, b) for a, b in spans if a < b]
        best = max((sum(1 for a, b in spans if a <= t < b) for t, _ in spans), default=0)
        assert best == peak, month
    assert any(e["peak_sessions"] >= 2 for e in gt["months"].values())


def test_connected_intervals_of_the_model(case: tuple[dict[str, Any], Workload]) -> None:
    _, wl = case
    for s in wl.sessions:
        assert s.connected, s
        prev_end = s.start_ft
        for a, b in s.connected:
            assert b is not None and prev_end <= a < b <= s.end_ft
            prev_end = b
        assert s.connected[0][0] - s.start_ft < 30 * 10_000_000  # 4624 type 10 follows NLA within seconds


def test_half_open_intervals_and_clipping() -> None:
    assert _peak([(0, 10), (10, 20)], 0, 100) == 1  # an end and a connect at one instant do not overlap
    assert _peak([(0, 10), (9, 20)], 0, 100) == 2
    assert _peak([(0, 10), (5, 20), (15, 30)], 0, 100) == 2
    assert _peak([(0, 10), (5, 20)], 10, 100) == 1  # clipped to the month
    assert _peak([(0, 10)], 10, 100) == 0
    assert _peak([], 0, 100) == 0


def test_sessions_still_connected_close_at_the_hosts_last_logged_event() -> None:
    wl = build_workload(users=2, hosts=2, start=date(2024, 1, 1), end=date(2024, 1, 31), tz="UTC", seed=5,
                        noise_ratio=0.0, rollover=False, clear_log=False, reexport=False)  # fmt: skip
    wl.sessions = [SessionRecord(0, 1, 100, 100, [(100, 200), (300, None)])]
    last = ft_from_datetime(datetime(2024, 1, 31, 18, tzinfo=ZoneInfo("UTC")))
    stats: Any = [
        SimpleNamespace(path=Path("RDSH02-Security.evtx"), last_time=last - 5),
        SimpleNamespace(path=Path("RDSH02-LocalSessionManager.evtx"), last_time=last),
        SimpleNamespace(path=Path("RDSH01-Security.evtx"), last_time=last + 10**9),
    ]
    assert _connected_intervals(wl, stats) == [[], [(100, 200), (300, last)]]
    assert _peak(_connected_intervals(wl, stats)[1], last - 3600 * 10**7, last + 1) == 1
