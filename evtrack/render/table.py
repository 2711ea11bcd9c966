"""The report as a plain-text table that reads well in an 80-column terminal (rich, rendered to a string).

Every value from the logs goes in as :class:`rich.text.Text`, never as markup, so a user name such as
``[bold]x`` or ``<script>`` is shown as it is. With ``ascii_only`` (a legacy Windows console code page) boxes and
symbols are plain ASCII.
"""

from __future__ import annotations

import io
from datetime import datetime, tzinfo

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from evtrack.identity import host_key
from evtrack.render.words import input_kinds, short_channel
from evtrack.report import Report
from evtrack.windows import zone

WIDTH = 80


def _day(moment: object, tz: tzinfo | None = None) -> str:
    """A date in the report's time zone (the one its windows are cut in), so a user's days match the windows."""
    if not isinstance(moment, datetime):
        return "-"
    return (moment.astimezone(tz) if tz is not None else moment).strftime("%Y-%m-%d")


def _t(value: object, style: str = "") -> Text:
    return Text("-" if value is None else str(value), style=style)


def report_table(report: Report, *, ascii_only: bool = False, width: int = WIDTH, max_users: int | None = None) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=False, color_system=None, legacy_windows=False,
                      emoji=False, highlight=False, markup=False)
    frame = box.ASCII if ascii_only else box.SIMPLE
    dash = "-" if ascii_only else "—"

    console.print(Text(f"evtrack {dash} RDS Per User CAL usage (estimate from RDP evidence)", style="bold"))
    created = report.created_at.strftime("%Y-%m-%d %H:%M UTC")
    console.print(Text(f"Created: {created}   Scope: {report.scope}"))
    console.print(Text(f"Time zone: {report.tz}   Windows: {report.window}"))
    installed = "not set" if report.installed is None else str(report.installed)
    local = zone(report.tz)
    as_of = _day(report.as_of, local) if report.as_of else "-"
    estimated = "unknown" if report.estimated is None else str(report.estimated)
    source = f" (from {report.installed_source})" if report.installed is not None and report.installed_source else ""
    console.print(Text(f"Per User CALs installed: {installed}{source}"))
    console.print(Text(f"Estimated issued as of {as_of}: {estimated} (users seen in the 60 days before)"))
    peak = f"{report.peak_estimated} on {report.peak_day}" if report.peak_estimated is not None else "-"
    busiest = "-" if report.max_window_users is None else str(report.max_window_users)
    console.print(Text(f"Peak of that view: {peak}   Busiest window: {busiest} users"))
    utilisation = "" if report.utilisation is None else f"   Utilisation: {report.utilisation:.0%}"
    coverage = "complete" if report.coverage_complete else "INCOMPLETE"
    console.print(Text(f"Verdict: {report.verdict.upper()}{utilisation}   Log coverage: {coverage}", style="bold"))
    if report.lower_bound:
        console.print(Text("The counts behind this verdict are LOWER BOUNDS: the inputs do not cover all it needs "
                           "(see the notes)."))
    if report.verdict_windows and len(report.verdict_windows) < len(report.windows):
        console.print(Text("Verdict rests on: " + ", ".join(report.verdict_windows)))
    if report.sliding_peaks:
        console.print(Text("Most users in any " + ", ".join(
            f"{p.days} days: {p.users}" + ("" if p.complete else " (lower bound)") for p in report.sliding_peaks)))
    for warning in report.warnings:
        console.print(Text(f"Warning: {warning}", style="bold"))

    windows = Table(title="Distinct RDP users per window", box=frame, title_justify="left", pad_edge=False)
    for name, justify in (("Window", "left"), ("Status", "left"), ("Users", "right"), ("New", "right"),
                          ("Sess.", "right"), ("Peak", "right"), ("Dev.", "right"), ("Verdict", "left")):
        windows.add_column(name, justify=justify)  # type: ignore[arg-type]
    for w in report.windows:
        windows.add_row(_t(w.label), _t(w.status), _t("unknown" if w.users is None else w.users),
                        _t(w.new_users), _t(w.sessions), _t(w.peak_sessions), _t(w.devices), _t(w.verdict))
    console.print(windows)
    labels = sorted({label for w in report.windows for label, _ in w.sources})
    if len(labels) > 1:  # the cross-check: how many of each window's users each source saw
        sources = Table(title="Users each source saw", box=frame, title_justify="left", pad_edge=False)
        sources.add_column("Window")
        for label in labels:
            sources.add_column(label, justify="right", overflow="fold")
        for w in report.windows:
            if w.users is not None:
                seen = dict(w.sources)
                sources.add_row(_t(w.label), *(_t(seen.get(label, 0)) for label in labels))
        console.print(sources)
    for w in report.windows:
        if w.rests_on:
            console.print(Text(f"{w.label} rests on {', '.join(w.rests_on)} (a lower bound)"))

    shown = report.users if max_users is None else report.users[:max_users]
    users = Table(title=f"Users ({len(report.users)})", box=frame, title_justify="left", pad_edge=False)
    for name, justify in (("User", "left"), ("First seen", "left"), ("Last seen", "left"), ("Sess.", "right"),
                          ("Hosts", "right"), ("CAL expiry", "left")):
        users.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for u in shown:
        flags = (" (local)" if u.local_account else "") + ("" if u.domain_resolved else " (domain?)")
        users.add_row(_t(u.display_name + flags), _t(_day(u.first_seen, local)), _t(_day(u.last_seen, local)),
                      _t(u.sessions), _t(len(u.hosts)), _t(_day(u.cal_expiry, local)))
    console.print(users)
    if len(shown) < len(report.users):
        console.print(Text(f"... {len(report.users) - len(shown)} more users (use --format csv for all)"))

    if report.excluded:
        excluded = Table(title=f"Not counted ({len(report.excluded)})", box=frame, title_justify="left",
                         pad_edge=False)
        for name in ("Account", "Reason", "Events", "Last seen"):
            excluded.add_column(name, overflow="fold")
        for e in report.excluded:
            excluded.add_row(_t(e.name), _t(e.reason), _t(e.events), _t(_day(e.last_seen, local)))
        console.print(excluded)

    coverage_table = Table(title="Log coverage", box=frame, title_justify="left", pad_edge=False)
    for name in ("Host", "Log", "First", "Last", "Records", "Holes", "Clr"):
        coverage_table.add_column(name, overflow="ellipsis", no_wrap=True, max_width=18 if name == "Host" else None,
                                  min_width=10 if name in ("First", "Last") else len(name) if name != "Host" else None)
    for c in report.coverage:
        holes = max(len(c.intervals) - 1, 0)
        coverage_table.add_row(_t(host_key(c.host)), _t(short_channel(c.channel)[:8]), _t(_day(c.first, local)),
                               _t(_day(c.last, local)), _t(c.records), _t(holes), _t(len(c.cleared)))
    console.print(coverage_table)

    if report.misdated:
        misdated = Table(title=f"Misdated RDP evidence ({len(report.misdated)})", box=frame, title_justify="left",
                         pad_edge=False)
        for name in ("Host", "Record", "User", "Time it carries", "Counted at"):
            misdated.add_column(name, overflow="fold")
        for m in report.misdated:
            misdated.add_row(_t(m.host), _t(m.record_id), _t(m.user), _t(m.time.strftime("%Y-%m-%d %H:%M")),
                             _t(m.placed.astimezone(local).strftime("%Y-%m-%d %H:%M")))
        console.print(misdated)
    if len(report.host_users) > 1 or any(not h.counted for h in report.host_users):
        console.print(Text("Users per host: " + ", ".join(
            f"{h.host} {h.users}" + ("" if h.counted else " (not counted)") for h in report.host_users)))

    failed = [i for i in report.inputs if i.error]
    console.print(Text(
        f"Inputs: {len(report.inputs) - len(failed)} files read ({input_kinds(report)}), {len(failed)} failed; "
        f"records read {report.records_read:,}, skipped {report.records_skipped:,}"
    ))
    for item in failed:
        console.print(Text(f"  failed: {item.path}: {item.error}"))
    for note in report.notes:
        console.print(Text(f"Note: {note}"))
    return buffer.getvalue()
