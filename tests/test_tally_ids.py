"""Missing values in the evidence rows (record and event ids, the rule): found by a cold review of the vectorised
tally, each a report that differed from the row-by-row tally it replaced (tests/test_tally.py holds it to that
loop), or failed with both."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from evtrack.api import make_report
from evtrack.coverage import Misdated
from evtrack.usage import ReportSettings, build_report

from .conftest import EVENT_NS, LSM_CHANNEL
from .factories import CREATED, ev, lsm21, source, span, us, utc


def _lsm21_without_record_id(time: str, user: str, session: int) -> str:
    """An LSM 21 (session logon) as an XML export writes it, but with no ``EventRecordID`` element."""
    return (f'<Event xmlns="{EVENT_NS}"><System>'
            '<Provider Name="Microsoft-Windows-TerminalServices-LocalSessionManager"/><EventID>21</EventID>'
            f'<TimeCreated SystemTime="{time}"/><Channel>{LSM_CHANNEL}</Channel>'
            f"<Computer>RDSH01.contoso.local</Computer></System><UserData><EventXML xmlns=\"Event_NS\">"
            f"<User>CONTOSO\\{user}</User><SessionID>{session}</SessionID><Address>10.0.0.5</Address>"
            f"</EventXML></UserData></Event>")


def test_a_misdated_record_without_a_record_id_is_counted_where_it_says(tmp_path: Path) -> None:
    """Five LSM 21 on 1 March without EventRecordIDs; carol's carries 15 April (a clock 45 days ahead). The
    coverage marks it misdated under no record id, which names no record: the tally, like the session rows,
    counts it at the time it carries, not somewhere else (and lists no misdated record with an id no log has)."""
    times = ["2024-03-01T08:00:00.000000Z", "2024-03-01T09:00:00.000000Z", "2024-04-15T10:00:00.000000Z",
             "2024-03-01T11:00:00.000000Z", "2024-03-01T12:00:00.000000Z"]
    users = ["alice", "bob", "carol", "dave", "erin"]
    events = [_lsm21_without_record_id(time, user, session)
              for session, (time, user) in enumerate(zip(times, users, strict=True), 2)]
    path = tmp_path / "RDSH01-LSM.xml"
    path.write_text("<Events>" + "".join(events) + "</Events>", encoding="utf-8")

    built = make_report([path], window="range", created_at=CREATED)

    assert built.misdated == ()
    carol = next(user for user in built.users if user.key.endswith("carol"))
    assert carol.first_seen == utc(2024, 4, 15, 10)
    assert built.period_end == utc(2024, 4, 16)
    assert built.estimated == 4


def test_a_misdated_record_without_an_event_id_keeps_none() -> None:
    """A misdated 4624 whose event_id is null (an events dataset written by another tool can hold one): the
    report's misdated entry says ``event_id: null``, not an id no log has."""
    carried, placed = utc(2024, 4, 15, 10), utc(2024, 3, 1, 10)
    row = ev(carried, record_id=42)
    row["event_id"] = None
    cover = replace(span(utc(2024, 3, 1), utc(2024, 3, 2)), misdated=(Misdated(42, us(carried), us(placed)),))

    built = build_report(source([row], [cover]), ReportSettings(created_at=CREATED))

    assert [(m.record_id, m.event_id, m.placed) for m in built.misdated] == [(42, None, placed)]


def test_a_start_without_an_event_id_keeps_its_own_log() -> None:
    """One sign-in seen by a Security 4624 and, 30 s later, by an LSM row whose event_id is null (an events
    dataset from another tool): two logs within SESSION_PAIR, one session. A null event id filled in as -1 once
    made (channel 1, -1) and (channel 0, 4624) one code (1 * 4625 - 1 == 0 * 4625 + 4624): the LSM start taken
    for a second Security one, 30 s later, and two sessions."""
    start = utc(2024, 3, 1, 9)
    rows = [ev(start, record_id=1), lsm21(start + timedelta(seconds=30), record_id=2)]
    rows[1]["event_id"] = None
    cover = [span(utc(2024, 3, 1), utc(2024, 3, 2)),
             span(utc(2024, 3, 1), utc(2024, 3, 2), channel=LSM_CHANNEL)]

    built = build_report(source(rows, cover), ReportSettings(created_at=CREATED))

    assert [user.sessions for user in built.users] == [1]
    assert [window.sessions for window in built.windows] == [1]


def test_a_row_without_a_rule_still_counts_and_names_the_other_rules() -> None:
    """An events dataset written by another tool may leave ``reason`` empty: the person still counts, and the
    report lists the rules that are named (it failed sorting None against them)."""
    rows = [ev(utc(2024, 3, 1, 9), record_id=1), ev(utc(2024, 3, 1, 10), record_id=2, reason=None)]  # type: ignore[arg-type]

    built = build_report(source(rows, [span(utc(2024, 3, 1), utc(2024, 3, 2))]), ReportSettings(created_at=CREATED))

    assert [(user.key, user.evidence) for user in built.users] == [(rows[0]["sid"], ("4624_lt10",))]
