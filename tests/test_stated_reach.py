"""Stated coverage (an Azure Monitor coverage export's hours) counts only where an evidence export of the same log
reaches, within a week (:data:`evtrack.coverage.REACH_MARGIN_US`): a coverage export says the workspace received
the log, not that the evidence exports given hold that time. Every answer here is worked out by hand."""

from __future__ import annotations

from evtrack.coverage import REACH_MARGIN_US, CoverageBuilder, clip_intervals
from evtrack.crosscheck import host_cover
from evtrack.hosts import HostNames, HostSelection

DAY = 86_400_000_000
HOUR = 3_600_000_000
T0 = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z


def stated(builder: CoverageBuilder, host: str, channel: str, first_day: int, last_day: int) -> None:
    """Every hour of days ``first_day`` .. ``last_day`` (inclusive) stated for ``host``'s ``channel``."""
    for hour in range(first_day * 24, (last_day + 1) * 24):
        builder.add_interval(host, channel, T0 + hour * HOUR, T0 + (hour + 1) * HOUR)


def test_stated_hours_count_within_a_week_of_the_evidence_rows() -> None:
    """60 days stated; the evidence export's rows run from day 20 to day 30: covered from day 13 to day 37 (a
    week either side, to the microsecond), unconfirmed before and after; the span still reaches day 0 and 59."""
    builder = CoverageBuilder()
    stated(builder, "RDSH01", "Security", 0, 59)
    builder.add_reach("Security", T0 + 20 * DAY, T0 + 30 * DAY)
    (span,) = builder.spans()
    assert (span.host, span.channel, span.first_us, span.last_us) == ("RDSH01", "Security", T0, T0 + 60 * DAY - 1)
    assert span.intervals == ((T0 + 20 * DAY - REACH_MARGIN_US, T0 + 30 * DAY + REACH_MARGIN_US),)
    assert REACH_MARGIN_US == 7 * DAY
    assert span.unconfirmed == ((T0, T0 + 13 * DAY - 1), (T0 + 37 * DAY + 1, T0 + 60 * DAY - 1))


def test_another_logs_evidence_confirms_nothing_and_no_evidence_covers_nothing() -> None:
    """LocalSessionManager rows do not vouch for Security hours; with no Security evidence export at all, the
    span covers nothing (not its envelope, as a span from before intervals were kept would)."""
    builder = CoverageBuilder()
    stated(builder, "RDSH01", "Security", 0, 9)
    builder.add_reach("Microsoft-Windows-TerminalServices-LocalSessionManager/Operational", T0, T0 + 9 * DAY)
    (span,) = builder.spans()
    assert span.intervals == () and span.unconfirmed == ((T0, T0 + 10 * DAY - 1),)
    hosts = HostNames(["RDSH01"])
    cover = host_cover([span], hosts, HostSelection(), [], {})
    assert cover.all == {hosts.key("RDSH01"): ()}


def test_reach_is_per_log_not_per_host_and_adds_to_the_logs_own_records() -> None:
    """One evidence export holds rows of every host: its reach confirms RDSH02's stated hours too. RDSH01's own
    .evtx-style records (days 0-2) stay covered beside its confirmed stated hours."""
    builder = CoverageBuilder()
    stated(builder, "RDSH01", "security", 20, 29)
    stated(builder, "RDSH02", "Security", 20, 29)
    builder.add_reach("SECURITY", T0 + 22 * DAY, T0 + 25 * DAY)
    import numpy as np

    builder.add_block("RDSH01", "security", np.array([1, 2], np.int64), np.array([T0, T0 + 2 * DAY], np.int64))
    first, second = builder.spans()
    assert first.intervals == ((T0, T0 + 2 * DAY), (T0 + 20 * DAY, T0 + 30 * DAY - 1))
    assert second.intervals == ((T0 + 20 * DAY, T0 + 30 * DAY - 1),) and second.unconfirmed == ()


def test_the_store_keeps_what_is_stated_and_reached_apart() -> None:
    """A builder rebuilt from what the store keeps (one per file) gives the same spans as the files read together:
    the stated hours and the reach travel as their own entries, and meet only in the spans."""
    coverage_file, evidence_file, together = CoverageBuilder(), CoverageBuilder(), CoverageBuilder()
    for builder in (coverage_file, together):
        stated(builder, "RDSH01", "Security", 0, 29)
    for builder in (evidence_file, together):
        builder.add_reach("Security", T0 + 10 * DAY, T0 + 12 * DAY)
    rebuilt = CoverageBuilder()
    for builder in (coverage_file, evidence_file):
        rebuilt.merge(CoverageBuilder.from_records(builder.export(), builder.clears()))
    assert rebuilt.spans() == together.spans()
    assert [span.channel for span in rebuilt.spans()] == ["Security"]


def test_clip_intervals() -> None:
    assert clip_intervals(((0, 10), (20, 30)), ((5, 22), (25, 26), (29, 40))) == ((5, 10), (20, 22), (25, 26),
                                                                                   (29, 30))
    assert clip_intervals(((0, 10),), ()) == ()
