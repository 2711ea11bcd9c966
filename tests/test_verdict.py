"""What the verdict rests on (issue 13's semantics, issue 16's flags): renewals, sliding peaks, host selection,
lower bounds at the top, the default period of a routine monthly run, and the period governing everything."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from evtrack.hosts import HostNames, HostSelection
from evtrack.identity import Exclusions
from evtrack.licence import DAY_US, Peak, active_at, licence_peak, sliding_peak
from evtrack.report import Report
from evtrack.usage import ReportSettings, build_report

from .factories import CREATED, SID_A, SID_B, ev, source, span, utc

SID_C = "S-1-5-21-10-20-30-1106"


def build(rows: list[dict[str, object]], cover: list[object], **settings: object) -> Report:
    return build_report(source(rows, cover), ReportSettings(created_at=CREATED, **settings))  # type: ignore[arg-type]


def test_an_idle_logoff_does_not_renew_the_estimated_cal() -> None:
    """Sign-in 1 December (valid to 30 January), idle logoff 03:00 on 1 February: not issued on 1 February."""
    rows = [ev(utc(2023, 12, 1, 9)), ev(utc(2024, 2, 1, 3), event_id=4634, kind="logoff", reason="4634_lt10")]
    built = build(rows, [span(utc(2023, 11, 1), utc(2024, 2, 29))])
    curve = {p.day: p.users for p in built.curve}
    assert curve[date(2024, 1, 29)] == 1 and curve[date(2024, 2, 1)] == 0
    assert built.users[0].cal_expiry == utc(2023, 12, 1, 9) + timedelta(days=60)
    assert built.windows[3].user_keys == (SID_A,)  # February: the logoff still shows the session was there


def test_exact_peaks_by_hand() -> None:
    day = DAY_US
    a, b, c = [0], [61 * day], [59 * day + 1]
    # licence view (60 days): a is active [0, 60d), c from 59d+1: overlap; b starts after a ended
    assert licence_peak([a, b, c], 0, 200 * day, 60 * day).count == 2
    assert licence_peak([a, b, c], 0, 200 * day, 60 * day).moment == 59 * day + 1
    # sliding 60-day windows [s, s+60d): a and c fit in one (c - a < 60d), so do c and b; never all three
    people = [(a, []), (b, []), (c, [])]
    assert sliding_peak(people, 0, 200 * day, 60).count == 2
    assert sliding_peak(people, 0, 200 * day, 62).count == 3
    assert sliding_peak(people, 0, 200 * day, 62).moment == 0
    # a session connected from day 100 to day 150 puts its person in any stretch that overlaps it
    assert sliding_peak([([], [(100 * day, 150 * day)]), ([149 * day], [])], 0, 200 * day, 30).count == 2
    assert sliding_peak([([], [(100 * day, 150 * day)]), ([181 * day], [])], 0, 200 * day, 30).count == 1


def test_a_one_microsecond_gap_is_a_gap() -> None:
    """Validity 10 µs: a signs in at 0 and 11 (active [0, 10) and [11, 21): not at 10), b at 1, c at 10. Never
    more than two at once (a and b on [1, 10), b and c at 10, a and c from 11); a's two stretches must not be
    joined across the microsecond between them, which made it three at 10."""
    people = [[0, 11], [1], [10]]
    assert [active_at(people, moment, 10) for moment in (0, 1, 9, 10, 11, 19, 20, 21)] == [1, 2, 2, 2, 2, 2, 1, 0]
    assert licence_peak(people, 0, 100, 10) == Peak(2, 1)
    # the same in sliding one-day windows: a's evidence at 0 and one day + 1 µs later leaves the window that starts
    # at 1 µs empty of a; b (at 1 µs) and c (at one day) are both in it
    day = DAY_US
    assert sliding_peak([([0, day + 1], []), ([1], []), ([day], [])], 0, 10 * day, 1).count == 2


_RENEWALS = st.lists(st.lists(st.integers(0, 16), max_size=3).map(sorted), max_size=5)


@settings(max_examples=300, deadline=None)
@given(_RENEWALS, st.integers(1, 6), st.integers(0, 8), st.integers(1, 24))
def test_the_licence_peak_is_the_most_active_at_any_moment(people: list[list[int]], validity: int, lo: int,
                                                           length: int) -> None:
    """The sweep against brute force: active_at at every microsecond of [lo, hi)."""
    hi = lo + length
    counts = [active_at(people, moment, validity) for moment in range(lo, hi)]
    best = max(counts)
    peak = licence_peak(people, lo, hi, validity)
    assert peak.count == best
    assert peak.moment == (lo + counts.index(best) if best else None)


_EIGHTHS = st.lists(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 2)), max_size=3), max_size=5)


@settings(max_examples=300, deadline=None)
@given(_EIGHTHS, st.integers(0, 8), st.integers(1, 24))
def test_the_sliding_peak_is_the_most_people_in_any_window(people: list[list[tuple[int, int]]], lo: int,
                                                          length: int) -> None:
    """The sweep against brute force, in one-day windows, times a few µs past eighths of a day (so two of them
    can be a day and 1 µs apart): every start where the answer can change (1 µs after a time, a day less 1 µs
    before it; the range's first and last)."""
    day, step = DAY_US, DAY_US // 8
    lo, hi = lo * step, (lo + length) * step
    times = [sorted(k * step + extra for k, extra in person) for person in people]
    peak = sliding_peak([(person, []) for person in times], lo, hi, 1)
    last_start = max(lo, hi - day)
    inside = [[t for t in person if lo <= t < hi] for person in times]
    starts = [s for s in {lo, last_start, *(t + shift for person in inside for t in person for shift in (1 - day, 1))}
              if lo <= s <= last_start]
    assert peak.count == max(sum(any(s <= t < s + day for t in person) for person in inside) for s in starts)


def test_sliding_peaks_are_in_the_report_with_their_coverage() -> None:
    rows = [ev(utc(2024, 1, 5), sid=SID_A), ev(utc(2024, 2, 20), "bob", sid=SID_B),
            ev(utc(2024, 4, 1), "carol", sid=SID_C)]
    built = build(rows, [span(utc(2024, 1, 1), utc(2024, 6, 30))])
    peaks = {p.days: p for p in built.sliding_peaks}
    assert peaks[90].users == 3 and peaks[60].users == 2 and peaks[90].complete
    assert peaks[90].start is not None and peaks[90].end is not None
    assert peaks[90].end - peaks[90].start == timedelta(days=90)


def test_blocks_window_is_what_rolling_used_to_be() -> None:
    rows = [ev(utc(2024, 1, 5))]
    built = build(rows, [span(utc(2024, 1, 1), utc(2024, 3, 1))], window="rolling:30d")
    assert built.window == "blocks:30d" and built.windows[0].label == "2024-01-01/2024-01-30"


def test_host_names_keep_fqdn_hosts_apart_and_join_short_names() -> None:
    hosts = HostNames(["RDSH01.contoso.local", "rdsh01", "RDSH02.contoso.local", "RDSH03.a.local", "RDSH03.b.local",
                       "RDSH03"])
    assert hosts.key("RDSH01") == hosts.key("rdsh01.CONTOSO.local") == "rdsh01"
    assert hosts.key("RDSH03.a.local") != hosts.key("RDSH03.b.local")
    assert hosts.key("RDSH03") == "rdsh03" and hosts.ambiguous == {"rdsh03": ("rdsh03.a.local", "rdsh03.b.local")}


def test_excluded_hosts_do_not_count_and_say_how_many_users_they_had() -> None:
    rows = [ev(utc(2024, 1, 5)), ev(utc(2024, 1, 6), "bob", sid=SID_B, host="DC01.contoso.local")]
    cover = [span(utc(2024, 1, 1), utc(2024, 2, 1)), span(utc(2024, 1, 1), utc(2024, 2, 1), host="DC01.contoso.local")]
    built = build(rows, cover, hosts=HostSelection.build(exclude=["dc*"]))
    assert built.windows[0].user_keys == (SID_A,) and built.windows[0].status == "complete"
    assert {(h.host, h.users, h.counted) for h in built.host_users} == {("rdsh01", 1, True), ("dc01", 1, False)}
    nothing = build(rows, cover, hosts=HostSelection.build(include=["nosuchhost*"]))
    assert nothing.warnings == ("The host pattern --host 'nosuchhost*' matches no host in the inputs.",
                                "No host is counted: every host in the inputs is left out by the host patterns.")
    typo = build(rows, cover, hosts=HostSelection.build(exclude=["dc01", "dc1*"]))  # one right, one a typo
    assert typo.warnings == ("The host pattern --exclude-host 'dc1*' matches no host in the inputs.",)
    everything = build(rows, cover, hosts=HostSelection.build(exclude=["*contoso*"]))
    assert everything.warnings == ("No host is counted: every host in the inputs is left out by the host "
                                   "patterns.",)


def test_an_expected_host_without_logs_makes_windows_partial() -> None:
    rows = [ev(utc(2024, 1, 5))]
    built = build(rows, [span(utc(2024, 1, 1), utc(2024, 2, 1))], expected_hosts=("RDSH02",), installed=5)
    assert built.windows[0].status == "partial" and built.windows[0].hosts_unknown == ("rdsh02",)
    assert built.lower_bound and built.verdict == "within (lower bound)"
    assert any("RDSH02" in note for note in built.notes)


def test_a_routine_monthly_run_can_pass() -> None:
    """Logs from 15 November to 3 March (exported on 3 March): the verdict rests on December to February, the
    months the logs cover fully; the 60 days before 3 March are covered: a clean within."""
    rows = [ev(utc(2023, 12, 5)), ev(utc(2024, 2, 5), "bob", sid=SID_B)]
    built = build(rows, [span(utc(2023, 11, 15, 10), utc(2024, 3, 3, 8))], installed=2)
    assert built.verdict_windows == ("2023-12", "2024-01", "2024-02")
    assert built.verdict == "within" and built.coverage_complete and not built.lower_bound
    assert [w.in_verdict for w in built.windows] == [False, True, True, True, False]
    # the same logs with an explicit period that includes the cut months: a lower bound, said at the top
    explicit = build(rows, [span(utc(2023, 11, 15, 10), utc(2024, 3, 3, 8))], installed=2,
                     start=date(2023, 11, 1), end=date(2024, 3, 31))
    assert explicit.verdict == "within (lower bound)" and explicit.lower_bound and not explicit.coverage_complete


def test_a_short_look_back_makes_the_estimate_a_lower_bound() -> None:
    rows = [ev(utc(2024, 2, 5))]
    built = build(rows, [span(utc(2024, 2, 1), utc(2024, 3, 1))], installed=2)
    assert built.windows[0].status == "complete" and built.lower_bound
    assert built.verdict == "within (lower bound)"


def test_an_over_edge_window_is_still_judged() -> None:
    rows = [ev(utc(2024, 1, 20)), ev(utc(2024, 1, 21), "bob", sid=SID_B)]
    built = build(rows, [span(utc(2024, 1, 15), utc(2024, 2, 10))], installed=1)
    assert built.verdict == "over by 1" and "2024-01" in built.verdict_windows


def test_the_period_governs_the_users_list() -> None:
    """--from/--to: January's users only, not bob who first came in February."""
    rows = [ev(utc(2024, 1, 5)), ev(utc(2024, 2, 5), "bob", sid=SID_B)]
    built = build(rows, [span(utc(2024, 1, 1), utc(2024, 3, 1))], start=date(2024, 1, 1), end=date(2024, 1, 31))
    assert [u.key for u in built.users] == [SID_A]
    assert built.users[0].last_seen == utc(2024, 1, 5)


def test_no_data_gives_no_verdict_and_unknown_windows_say_unknown() -> None:
    built = build([], [], installed=1, start=date(2024, 1, 1), end=date(2024, 1, 31))
    assert built.verdict == "unknown" and built.windows[0].users is None
    assert built.windows[0].sessions is None and built.windows[0].reconnects is None
    assert not built.coverage_complete


def test_a_scope_or_exclusion_that_matches_nothing_warns() -> None:
    rows = [ev(utc(2024, 1, 5))]
    cover = [span(utc(2024, 1, 1), utc(2024, 2, 1))]
    built = build(rows, cover, domains=("FABRIKAM",), installed=1)
    assert built.users == () and any("scope" in w for w in built.warnings)
    typo = build(rows, cover, exclusions=Exclusions.build(names=["CONTOSO\bob"]))  # a TOML \b: a backspace
    assert any("matches no account" in w for w in typo.warnings)
    fine = build(rows, cover, exclusions=Exclusions.build(names=["CONTOSO\\alice"]))
    assert fine.warnings == () and fine.excluded[0].name == "CONTOSO\\alice"


def test_peak_concurrency_follows_the_scope() -> None:
    rows = [ev(utc(2024, 1, 5, 9)), ev(utc(2024, 1, 5, 9, 30), "bob", sid=SID_B, domain="FABRIKAM")]
    rows[0]["logon_id"], rows[1]["logon_id"] = "0x1", "0x2"  # open until the logs end: both at 09:30
    built = build(rows, [span(utc(2024, 1, 1), utc(2024, 2, 1))], domains=("FABRIKAM",))
    everyone = build(rows, [span(utc(2024, 1, 1), utc(2024, 2, 1))])
    assert everyone.windows[0].peak_sessions == 2 and built.windows[0].peak_sessions == 1


def test_hosts_from_config_and_flags_and_strict_warnings(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from evtrack.cli import app
    from evtrack.config import load_config

    from .conftest import logon_4624, write_events

    config = tmp_path / "evtrack.toml"
    config.write_text("[hosts]\ninclude = ['rdsh*']\nexclude = ['rdsh09*']\nexpected = ['RDSH02']\n", encoding="utf-8")
    loaded = load_config(config)
    assert (loaded.hosts_include, loaded.hosts_exclude, loaded.hosts_expected) == (("rdsh*",), ("rdsh09*",),
                                                                                    ("RDSH02",))
    logs = write_events(tmp_path / "a.xml", logon_4624(10, computer="RDSH01.contoso.local", record_id=1),
                        logon_4624(10, user="bob", sid="S-1-5-21-1-2-3-1106", computer="DC01.contoso.local",
                                   record_id=2))
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(logs), "--config", str(config), "-f", "json", "-q"])
    data = json.loads(result.stdout)
    assert [u["display_name"] for u in data["users"]] == ["CONTOSO\\alice"]
    assert "rdsh02" in data["windows"][0]["hosts_unknown"]
    flags = runner.invoke(app, ["report", str(logs), "--exclude-host", "RDSH01*", "-f", "json", "-q"])
    assert [u["display_name"] for u in json.loads(flags.stdout)["users"]] == ["CONTOSO\\bob"]
    strict = runner.invoke(app, ["report", str(logs), "--scope", "domain:FABRIKAM", "--strict", "-q"])
    assert strict.exit_code == 1 and "matches no user" in strict.stderr


def test_every_format_says_lower_bound_warnings_and_what_the_verdict_rests_on() -> None:
    import json

    from evtrack.render.csv import windows_csv
    from evtrack.render.html import report_html
    from evtrack.render.json import report_json
    from evtrack.render.table import report_table

    rows = [ev(utc(2023, 12, 5))]
    built = build(rows, [span(utc(2023, 11, 15, 10), utc(2024, 3, 3, 8))], installed=2, expected_hosts=("RDSH09",),
                  exclusions=Exclusions.build(names=["CONTOSO\bob"]))
    assert built.lower_bound and built.warnings
    table = report_table(built)
    assert "LOWER BOUNDS" in table and "Warning: The exclusion" in table
    page = report_html(built)
    assert "counts are lower bounds" in page and "Warning:" in page and "Most users in any" in page
    data = json.loads(report_json(built))
    assert data["lower_bound"] is True and data["warnings"] == list(built.warnings)
    assert "2023-11" in windows_csv(built)
