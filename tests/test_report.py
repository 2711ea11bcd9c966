"""The report: time zones and windows, sessions, coverage (unknown is never 0), the licence-server view,
invariants under shuffling/duplicating/splitting, and the generator's ground truth."""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evtrack.pipeline import run_report
from evtrack.report import Report
from evtrack.usage import ReportSettings, build_report
from evtrack.windows import WindowSpec, windows_between, zone

from .factories import CREATED, SID_A, SID_B, ev, lsm21, source, span, us, utc


def window_users(report: Report) -> dict[str, tuple[str, ...] | None]:
    return {w.label: (w.user_keys if w.users is not None else None) for w in report.windows}


def test_last_evening_of_a_month_in_utc_is_next_month_in_berlin() -> None:
    rows = [ev(utc(2024, 3, 31, 23, 30))]
    cover = [span(utc(2024, 3, 1), utc(2024, 4, 30, 21))]
    in_utc = build_report(source(rows, cover), ReportSettings(tz="UTC", created_at=CREATED))
    in_berlin = build_report(source(rows, cover), ReportSettings(tz="Europe/Berlin", created_at=CREATED))
    assert window_users(in_utc)["2024-03"] == (SID_A,)
    assert window_users(in_utc)["2024-04"] == ()
    assert window_users(in_berlin)["2024-03"] == ()
    assert window_users(in_berlin)["2024-04"] == (SID_A,)


def test_month_windows_follow_dst() -> None:
    berlin = zone("Europe/Berlin")
    windows = windows_between(WindowSpec.parse("month"), date(2024, 3, 5), date(2024, 4, 2), berlin)
    assert [w.label for w in windows] == ["2024-03", "2024-04"]
    assert windows[0].start.utcoffset() == timedelta(hours=1)
    assert windows[0].end.utcoffset() == timedelta(hours=2)
    elapsed = windows[0].end.astimezone(timezone.utc) - windows[0].start.astimezone(timezone.utc)
    assert elapsed == timedelta(days=31) - timedelta(hours=1)  # the DST night is an hour short


@settings(max_examples=150, deadline=None)
@given(
    first=st.dates(min_value=date(2001, 1, 1), max_value=date(2030, 12, 31)),
    length=st.integers(min_value=0, max_value=400),
    tz=st.sampled_from(["UTC", "Europe/Berlin", "America/Santiago", "Australia/Lord_Howe", "Asia/Kolkata",
                        "America/St_Johns", "Pacific/Apia"]),
    spec=st.sampled_from(["month", "week", "blocks:1d", "rolling:30d", "blocks:7d", "range"]),
)
def test_windows_tile_the_period_without_gap_or_overlap(first: date, length: int, tz: str, spec: str) -> None:
    last = first + timedelta(days=length)
    zone_info = zone(tz)
    windows = windows_between(WindowSpec.parse(spec), first, last, zone_info)
    assert windows
    for before, after in pairwise(windows):
        assert before.end == after.start
    for window in windows:
        assert window.start < window.end
        assert window.start.astimezone(zone_info).time().hour in (0, 1)  # 1 only where a DST gap eats midnight
    assert windows[0].start.astimezone(zone_info).date() <= first
    assert windows[-1].end.astimezone(zone_info).date() > last


def test_one_logon_seen_twice_is_one_session() -> None:
    t = utc(2024, 2, 5, 9, 0, 0)
    rows = [
        ev(t), ev(t + timedelta(milliseconds=10), record_id=2),  # UAC split token: two 4624 type 10
        lsm21(t + timedelta(seconds=1)),  # the same logon in LSM
        ev(t + timedelta(hours=3), record_id=3),  # a second logon later
    ]
    report = build_report(source(rows, [span(utc(2024, 2, 1), utc(2024, 2, 29))]), ReportSettings(created_at=CREATED))
    assert report.users[0].sessions == 2
    assert report.windows[0].sessions == 2
    assert report.users[0].key == SID_A  # LSM's DOMAIN\\user joined the SID seen in 4624


def test_a_month_the_logs_do_not_cover_is_unknown_not_zero() -> None:
    rows = [ev(utc(2024, 1, 10, 9)), ev(utc(2024, 3, 10, 9), "bob", sid=SID_B)]
    cover = [span(utc(2024, 1, 1), utc(2024, 1, 31, 23, 59)), span(utc(2024, 3, 1), utc(2024, 3, 31, 23, 59))]
    report = build_report(source(rows, cover), ReportSettings(installed=5, created_at=CREATED))
    by_label = {w.label: w for w in report.windows}
    assert by_label["2024-02"].users is None
    assert by_label["2024-02"].status == "unknown"
    assert by_label["2024-02"].verdict == "unknown"
    assert by_label["2024-01"].users == 1 and by_label["2024-03"].users == 1
    assert not report.coverage_complete


def test_complete_partial_and_verdicts() -> None:
    rows = [ev(utc(2024, 2, 10, 9)), ev(utc(2024, 2, 11, 9), "bob", sid=SID_B)]
    cover = [span(utc(2024, 1, 15), utc(2024, 3, 10))]
    report = build_report(source(rows, cover), ReportSettings(installed=1, created_at=CREATED))
    statuses = {w.label: (w.status, w.users, w.verdict) for w in report.windows}
    assert statuses == {
        "2024-01": ("partial", 0, "within (lower bound)"),
        "2024-02": ("complete", 2, "over by 1"),
        "2024-03": ("partial", 0, "within (lower bound)"),
    }
    assert report.verdict == "over by 1"
    assert report.over_by == 1


def test_licence_server_view_is_users_in_the_60_days_before() -> None:
    rows = [ev(utc(2024, 1, 10, 9)), ev(utc(2024, 2, 20, 9), "bob", sid=SID_B)]
    cover = [span(utc(2024, 1, 1), utc(2024, 4, 30))]
    settings_ = ReportSettings(as_of=utc(2024, 3, 15), created_at=CREATED)
    report = build_report(source(rows, cover), settings_)
    assert report.estimated == 1  # alice's CAL (Jan 10) expired on Mar 10
    assert report.peak_estimated == 2
    assert report.peak_day == date(2024, 2, 20)
    assert report.users[0].cal_expiry == utc(2024, 3, 10, 9)
    day = {p.day: p.users for p in report.curve}
    assert day[date(2024, 3, 9)] == 2 and day[date(2024, 3, 10)] == 1


def test_excluded_and_builtin_accounts_are_not_counted_but_excluded_ones_are_reported() -> None:
    from evtrack.identity import Exclusions

    rows = [ev(utc(2024, 2, 1, 9)), ev(utc(2024, 2, 1, 10), "adm-bob", sid=SID_B),
            ev(utc(2024, 2, 1, 11), "RDSH01$", sid="S-1-5-21-10-20-30-1000"),
            ev(utc(2024, 2, 1, 12), "DWM-3", sid="S-1-5-90-0-3", domain="Window Manager")]
    report = build_report(source(rows, [span(utc(2024, 2, 1), utc(2024, 2, 29))]),
                          ReportSettings(exclusions=Exclusions.build(names=["adm-bob"]), created_at=CREATED))
    assert [u.key for u in report.users] == [SID_A]
    assert [(e.name, e.reason, e.events) for e in report.excluded] == [
        ("CONTOSO\\adm-bob", "excluded by name adm-bob", 1)]


def test_domain_scope() -> None:
    rows = [ev(utc(2024, 2, 1, 9)), ev(utc(2024, 2, 1, 10), "zed", sid="S-1-5-21-9-9-9-1001", domain="FABRIKAM")]
    report = build_report(source(rows, [span(utc(2024, 2, 1), utc(2024, 2, 29))]),
                          ReportSettings(domains=("contoso",), created_at=CREATED))
    assert [u.display_name for u in report.users] == ["CONTOSO\\alice"]
    assert report.scope == "Domain: CONTOSO"


def test_report_round_trips_through_json() -> None:
    rows = [ev(utc(2024, 1, 10, 9)), lsm21(utc(2024, 2, 3, 9), "bob")]
    report = build_report(source(rows, [span(utc(2024, 1, 1), utc(2024, 2, 28))]),
                          ReportSettings(installed=3, tz="Europe/Berlin", created_at=CREATED))
    data = json.loads(json.dumps(report.to_dict()))
    assert Report.from_dict(data) == report
    assert data["schema_version"] == 1
    with pytest.raises(ValueError, match="schema version"):
        Report.from_dict({**data, "schema_version": 99})


def test_no_evidence_and_no_coverage_is_unknown() -> None:
    report = build_report(source([], []), ReportSettings(installed=3, created_at=CREATED))
    assert report.verdict == "unknown" and report.windows == () and report.estimated is None


# -- invariants ---------------------------------------------------------------------------------------------------

_users = st.sampled_from([("alice", SID_A), ("bob", SID_B), ("carol", None), ("dave", None)])


@st.composite
def _rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(min_value=1, max_value=25))
    rows = []
    for index in range(count):
        user, sid = draw(_users)
        moment = utc(2024, 1, 1) + timedelta(minutes=draw(st.integers(min_value=0, max_value=60 * 24 * 120)))
        if draw(st.booleans()):
            rows.append(ev(moment, user, sid=sid, record_id=index + 1))
        else:
            rows.append(lsm21(moment, user, record_id=index + 1))
    return rows


COVER = [span(utc(2024, 1, 1), utc(2024, 5, 1))]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_rows(), seed=st.integers(min_value=0, max_value=1000))
def test_shuffling_and_duplicating_rows_changes_nothing(rows: list[dict[str, Any]], seed: int) -> None:
    base = build_report(source(rows, COVER), ReportSettings(created_at=CREATED))
    shuffled = list(rows) + random.Random(seed).sample(rows, k=len(rows) // 2)  # overlapping re-export
    random.Random(seed).shuffle(shuffled)
    again = build_report(source(shuffled, COVER), ReportSettings(created_at=CREATED))
    assert again.to_dict() == base.to_dict()
    for window in base.windows:  # every counted user has evidence inside the window
        for key in window.user_keys:
            user = next(u for u in base.users if u.key == key)
            assert window.label in user.windows
            names = {alias.split("\\")[-1].lower() for alias in user.aliases}
            start, end = us(window.start), us(window.end)
            assert any(start <= r["time"] < end for r in rows if r["sid"] == key or r["user"].lower() in names)


# -- the generator's ground truth, end to end through real .evtx files --------------------------------------------


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(min_value=0, max_value=1_000_000),
    tz=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]),
    users=st.integers(min_value=2, max_value=12),
    hosts=st.integers(min_value=1, max_value=3),
)
def test_report_over_generated_logs_matches_ground_truth(seed: int, tz: str, users: int, hosts: int) -> None:
    import tempfile

    from evtrack.synth import write_sample

    with tempfile.TemporaryDirectory() as folder:
        tmp_path = Path(folder)
        write_sample(tmp_path, users=users, hosts=hosts, start=date(2024, 1, 1), end=date(2024, 3, 31), tz=tz,
                     seed=seed, noise_ratio=0.5)
        truth = json.loads((tmp_path / "ground_truth.json").read_text(encoding="utf-8"))
        report, read = run_report([tmp_path], ReportSettings(tz=tz, created_at=CREATED))
    assert read.skipped == 0 and not read.file_errors
    found = {w.label: set(w.user_keys) for w in report.windows if w.users is not None}
    expected = {month: {u["sid"] for u in entry["users"]} for month, entry in truth["months"].items()}
    for month, sids in expected.items():
        assert found.get(month, set()) == sids, month
    assert {u.key for u in report.users} == set().union(*expected.values())
    for window in report.windows:  # devices and concurrency too
        assert window.devices == truth["months"][window.label]["device_count"], window.label
        assert window.peak_sessions == truth["months"][window.label]["peak_sessions"], window.label


def test_splitting_inputs_across_files_and_engines_gives_the_same_users(tmp_path: Path) -> None:
    from evtrack.synth import write_sample

    write_sample(tmp_path, users=5, hosts=2, start=date(2024, 2, 1), end=date(2024, 3, 15), seed=3, noise_ratio=0.2)
    files = sorted(tmp_path.glob("*.evtx"))
    together, _ = run_report(files, ReportSettings(created_at=CREATED))
    reversed_, _ = run_report(list(reversed(files)), ReportSettings(created_at=CREATED), jobs=2)
    python_engine, _ = run_report(files, ReportSettings(created_at=CREATED), engine="python-evtx")
    assert window_users(reversed_) == window_users(together)
    assert window_users(python_engine) == window_users(together)
    assert [u.key for u in python_engine.users] == [u.key for u in together.users]


def test_impossible_times_are_counted_as_suspicious_never_bucketed() -> None:
    rows = [ev(utc(2024, 2, 1, 9)), ev(datetime(1601, 1, 1, tzinfo=timezone.utc), "bob", sid=SID_B, record_id=5),
            ev(utc(2099, 1, 1), "carol", sid=None, record_id=6),
            {**ev(utc(2024, 2, 2), "dave", sid=None), "time": None}]
    report = build_report(source(rows, [span(utc(2024, 2, 1), utc(2024, 2, 28))]), ReportSettings(created_at=CREATED))
    assert [u.key for u in report.users] == [SID_A]
    assert [w.label for w in report.windows] == ["2024-02"]
    assert any(note.startswith("3 RDP event(s) with a missing or impossible time") for note in report.notes)


def test_coverage_ignores_impossible_times() -> None:
    from evtrack.coverage import CoverageBuilder
    from evtrack.sources.base import RawEvent

    builder = CoverageBuilder()
    for time_us in (us(utc(2024, 1, 5)), 0, -11_644_473_600_000_000, None, us(utc(2024, 1, 9))):
        builder.add(RawEvent(time_us, 4624, 1, "Security", "RDSH01", "p"))
    (only,) = builder.spans()
    assert (only.first_us, only.last_us) == (us(utc(2024, 1, 5)), us(utc(2024, 1, 9)))


@pytest.mark.parametrize(("seed", "tz"), [(5, "Europe/Istanbul"), (8, "America/New_York")])
def test_devices_and_peak_concurrency_match_ground_truth(tmp_path: Path, seed: int, tz: str) -> None:
    from evtrack.synth import write_sample

    write_sample(tmp_path, users=9, hosts=3, start=date(2024, 1, 1), end=date(2024, 3, 31), tz=tz, seed=seed,
                 noise_ratio=0.3)
    truth = json.loads((tmp_path / "ground_truth.json").read_text(encoding="utf-8"))
    report, _ = run_report([tmp_path], ReportSettings(tz=tz, created_at=CREATED))
    for window in report.windows:
        month = truth["months"][window.label]
        assert window.devices == month["device_count"], window.label
        assert window.peak_sessions == month["peak_sessions"], window.label
        by_host = {p.host: p.peak_sessions for p in report.host_peaks if p.window == window.label}
        assert by_host == {h.lower(): n for h, n in month["peak_sessions_by_host"].items() if n}, window.label
    addresses = {a for d in report.devices for a in d.addresses}
    assert addresses == {d["address"] for m in truth["months"].values() for d in m["devices"]}


def test_verdict_counts_the_peak_of_the_licence_server_view() -> None:
    late_january = [ev(utc(2024, 1, 25, 9), f"u{i}", sid=f"S-1-5-21-10-20-30-{2000 + i}", record_id=i)
                    for i in range(4)]
    early_february = [ev(utc(2024, 2, 5, 9), f"v{i}", sid=f"S-1-5-21-10-20-30-{3000 + i}", record_id=10 + i)
                      for i in range(4)]
    report = build_report(source(late_january + early_february, [span(utc(2023, 12, 1), utc(2024, 4, 30))]),
                          ReportSettings(installed=6, created_at=CREATED))
    assert report.max_window_users == 4 and report.peak_estimated == 8
    assert report.verdict == "over by 2"


def test_a_host_seen_only_in_other_logs_is_not_covered() -> None:
    rows = [ev(utc(2024, 3, 5, 9))]
    cover = [span(utc(2024, 3, 1), utc(2024, 3, 31, 23, 59, 59)),
             span(utc(2024, 3, 1), utc(2024, 3, 31), host="RDSH02", channel=RCM)]
    report = build_report(source(rows, cover), ReportSettings(start=date(2024, 3, 1), end=date(2024, 3, 31),
                                                              created_at=CREATED))
    (window,) = report.windows
    assert (window.status, window.hosts_unknown) == ("partial", ("rdsh02",))


def test_as_of_follows_to_and_is_unknown_without_logs() -> None:
    rows = [ev(utc(2024, 1, 10, 9)), ev(utc(2024, 3, 10, 9), "bob", sid=SID_B)]
    cover = [span(utc(2024, 1, 1), utc(2024, 3, 31))]
    january = build_report(source(rows, cover), ReportSettings(end=date(2024, 1, 31), created_at=CREATED))
    assert january.as_of is not None and january.as_of.date() == date(2024, 1, 31)
    assert january.estimated == 1
    late = build_report(source(rows, cover), ReportSettings(as_of=utc(2024, 12, 31), created_at=CREATED))
    assert late.estimated is None
    assert any("estimate as of that day is unknown" in note for note in late.notes)


RCM = "Microsoft-Windows-TerminalServices-RemoteConnectionManager/Operational"


def test_slim_reading_gives_the_same_report(tmp_path: Path) -> None:
    from evtrack.pipeline import source_from_read
    from evtrack.reading import read_inputs
    from evtrack.synth import write_sample

    from .conftest import SHARED

    write_sample(tmp_path, users=6, hosts=2, start=date(2024, 1, 1), end=date(2024, 2, 29), seed=9, noise_ratio=3)
    inputs: list[Path] = [tmp_path] + ([SHARED] if SHARED.is_dir() else [])
    full = read_inputs(inputs)
    slim = read_inputs(inputs, slim=True)
    assert slim.table.num_rows < full.table.num_rows / 2
    settings_ = ReportSettings(created_at=CREATED)
    assert build_report(source_from_read(slim), settings_).to_dict() == build_report(
        source_from_read(full), settings_).to_dict()


def test_a_day_that_never_happened_has_no_window() -> None:
    apia = zone("Pacific/Apia")  # Samoa skipped 30 December 2011
    windows = windows_between(WindowSpec.parse("blocks:1d"), date(2011, 12, 29), date(2011, 12, 31), apia)
    assert [w.label for w in windows] == ["2011-12-29/2011-12-29", "2011-12-31/2011-12-31"]
    assert windows[0].end == windows[1].start
