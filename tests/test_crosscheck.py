"""Polls beside logs: a window whose count rests on polls is a lower bound, polls only cross-check complete logs,
and each window says how many users each source saw. Answers worked out by hand in each docstring."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa

from evtrack.catalogue import BROKER, POLL_RAN, SESSION_LISTED
from evtrack.coverage import CoverageBuilder, poll_interval, poll_intervals
from evtrack.events import logon_schema
from evtrack.sources.base import RawEvent
from evtrack.usage import ReportSettings, ReportSource, build_report

from .factories import CREATED, ev, lsm21, span, us, utc

LSM_CHANNEL = "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational"

BROKER_NAME = "Connection Broker sessions"
CB = "rdcb01.contoso.local"
MIN = 60_000_000


def seen(moment: datetime, user: str, host: str = "RDSH01.contoso.local", **kw: Any) -> dict[str, Any]:
    """A session a Connection Broker poll listed (no SID: the broker gives DomainName and UserName)."""
    return ev(moment, user, sid=None, event_id=SESSION_LISTED, logon_type=None, host=host, channel=BROKER_NAME,
              kind="seen", reason="broker_session_listed", record_id=2, **kw)


def report(rows: list[dict[str, Any]], coverage: list[Any], **settings: Any) -> Any:
    table = pa.Table.from_pylist(rows, schema=logon_schema()) if rows else logon_schema().empty_table()
    return build_report(ReportSource(table, coverage, (), "test", 0, 0),
                        ReportSettings(created_at=CREATED, installed=5, start=utc(2024, 2, 1).date(),
                                       end=utc(2024, 2, 29).date(), **settings))


def test_poll_interval_is_the_median_gap_and_a_missed_poll_is_a_hole() -> None:
    """Polls at 0, 15, 30, 45 min, then 120 and 135: the usual gap is 15 min; 45 -> 120 (75 min > 30) is a hole."""
    times = [0, 15 * MIN, 30 * MIN, 45 * MIN, 120 * MIN, 135 * MIN]
    assert poll_interval(times) == 15 * MIN
    assert poll_intervals(times) == ((0, 45 * MIN), (120 * MIN, 135 * MIN))
    assert poll_intervals([7]) == ((7, 7),)  # a lone poll covers its instant only


def test_polls_only_a_covered_month_is_a_lower_bound() -> None:
    """The broker polled all February; alice was listed once. February: 1 user, coverage complete, but the count
    rests on polls (a 10-minute session between two polls is invisible): within (lower bound), never a clean
    within."""
    rows = [seen(utc(2024, 2, 10, 9), "alice")]
    built = report(rows, [span(utc(2024, 1, 31, 23), utc(2024, 3, 1, 1), host=CB, channel=BROKER_NAME)])
    february = built.windows[0]
    assert february.users == 1 and february.status == "complete" and february.rests_on
    assert february.verdict == "within (lower bound)"
    assert built.lower_bound and not built.coverage_complete and built.verdict == "within (lower bound)"
    assert february.sources == (("Connection Broker polls", 1),)
    assert built.users[0].sources == ("Connection Broker polls",)


def test_complete_logs_make_a_poll_gap_harmless() -> None:
    """RDSH01's Security log covers December to February; the broker stopped polling on 15 February. alice: a 4624
    and a broker listing. The logs decide: complete, not snapshot-bound, within (the 60 days before 29 February
    are covered too, and the broker's early end does not cut the as-of date); both sources saw alice."""
    rows = [ev(utc(2024, 2, 10, 9), "alice"), seen(utc(2024, 2, 10, 9, 15), "alice")]
    coverage = [span(utc(2023, 12, 1), utc(2024, 3, 1, 1)),
                span(utc(2024, 1, 31), utc(2024, 2, 15), host=CB, channel=BROKER_NAME)]
    built = report(rows, coverage)
    february = built.windows[0]
    assert february.users == 1 and february.status == "complete" and not february.rests_on
    assert february.verdict == "within" and not built.lower_bound and built.verdict == "within"
    assert built.as_of is not None and built.as_of.date().isoformat() == "2024-02-29"
    assert february.sources == (("Connection Broker polls", 1), ("session host logs", 1))
    assert built.users[0].sources == ("Connection Broker polls", "session host logs")


def test_a_host_only_the_broker_sees_makes_the_month_a_lower_bound() -> None:
    """RDSH01's logs cover February (alice); the broker also lists bob on RDSH02, which has no logs. 2 users, but
    RDSH02's short sessions could be missed: snapshot-bound, a lower bound."""
    rows = [ev(utc(2024, 2, 10, 9), "alice"), seen(utc(2024, 2, 12, 9), "bob", host="RDSH02.contoso.local")]
    coverage = [span(utc(2024, 1, 31), utc(2024, 3, 1, 1)),
                span(utc(2024, 1, 31), utc(2024, 3, 1, 1), host=CB, channel=BROKER_NAME)]
    built = report(rows, coverage)
    february = built.windows[0]
    assert february.users == 2 and february.rests_on and built.lower_bound
    assert february.verdict == "within (lower bound)"


def test_a_month_between_polls_is_unknown_not_zero() -> None:
    """Hourly polls all January and all March, none in February: February is a hole, unknown (not 0 users)."""
    builder = CoverageBuilder()
    for month in (1, 3):
        moment = datetime(2024, month, 1, tzinfo=timezone.utc)
        while moment.month == month:
            builder.add(RawEvent(us(moment), POLL_RAN, None, BROKER_NAME, CB, "evtrack"))
            moment += timedelta(hours=1)
    spans = builder.spans()
    assert [s.channel for s in spans] == [BROKER_NAME] and spans[0].channel.lower() == BROKER
    assert len(spans[0].intervals) == 2
    built = report([], spans)
    assert built.windows[0].users is None and built.windows[0].status == "unknown"


def test_a_bare_name_takes_the_default_domain_only_when_nothing_else_decides() -> None:
    """query user names carry no domain. 'alice' joins CONTOSO\\alice seen in a 4624; 'carol' (no qualified
    name anywhere) takes the configured default domain; without it she stays domain-less but counted."""
    rows = [ev(utc(2024, 2, 10, 9), "alice"),
            {**seen(utc(2024, 2, 11, 9), "alice"), "domain": None},
            {**seen(utc(2024, 2, 12, 9), "carol"), "domain": None}]
    coverage = [span(utc(2024, 1, 31), utc(2024, 3, 1, 1))]
    plain = report(rows, coverage)
    assert sorted(u.display_name for u in plain.users) == ["CONTOSO\\alice", "carol"]
    defaulted = report(rows, coverage, default_domain="contoso")
    assert sorted(u.display_name for u in defaulted.users) == ["CONTOSO\\alice", "CONTOSO\\carol"]
    assert defaulted.windows[0].users == 2


def test_a_gateway_connection_that_carried_a_reconnect_is_no_new_session() -> None:
    """alice signs in at 08:00 (4624 type 10), disconnects, and reconnects through the RD Gateway at 12:00: the
    gateway logs a 302 (it logs one for every connection), RDSH01 a 4624 type 7 from her IP at 12:00:02. One
    session and one reconnect -- the 302 is the reconnect, not a second sign-in. A 302 with no reconnect near it
    (15:00) is a session start of its own."""
    gateway = "Microsoft-Windows-TerminalServices-Gateway/Operational"
    rows = [ev(utc(2024, 2, 10, 8), "alice"),
            ev(utc(2024, 2, 10, 12), "alice", sid=None, event_id=302, logon_type=None, channel=gateway,
               reason="gateway302"),
            {**ev(utc(2024, 2, 10, 12, 0, 2), "alice", logon_type=7, kind="reconnect", reason="4624_lt7_remote_ip"),
             "address": "10.1.2.3"},
            ev(utc(2024, 2, 10, 15), "alice", sid=None, event_id=302, logon_type=None, channel=gateway,
               reason="gateway302")]
    built = report(rows, [span(utc(2023, 12, 1), utc(2024, 3, 1, 1))])
    assert (built.users[0].sessions, built.users[0].reconnects) == (2, 1)
    assert built.windows[0].sessions == 2


def test_one_logon_seen_by_four_sources_is_one_session() -> None:
    """alice's 09:00 logon on RDSH01 as four sources see it: the gateway's 302 at 09:00:00, the 4624 type 10 at
    09:00:02, the broker's CreateTime at 09:00:03 (listed by the 09:15 poll) and the LSM 21 at 09:00:05 -- four
    logs of one host within 120 s: one session start. One user, four sources."""
    gateway = "Microsoft-Windows-TerminalServices-Gateway/Operational"
    rows = [ev(utc(2024, 2, 10, 9), "alice", sid=None, event_id=302, logon_type=None, channel=gateway,
               reason="gateway302"),
            ev(utc(2024, 2, 10, 9, 0, 2), "alice"),
            {**seen(utc(2024, 2, 10, 9, 0, 3), "alice"), "event_id": 3, "kind": "logon",
             "reason": "broker_session_created"},
            lsm21(utc(2024, 2, 10, 9, 0, 5), "alice"),
            seen(utc(2024, 2, 10, 9, 15), "alice")]
    built = report(rows, [span(utc(2023, 12, 1), utc(2024, 3, 1, 1)),
                          span(utc(2023, 12, 1), utc(2024, 3, 1, 1), channel=LSM_CHANNEL)])
    assert built.windows[0].users == 1 and built.windows[0].sessions == 1 and built.users[0].sessions == 1
    assert built.users[0].sources == ("Connection Broker polls", "RD Gateway", "session host logs")
