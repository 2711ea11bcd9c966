"""The report as one self-contained HTML file: headline, charts as inline SVG, sortable tables.

Nothing is fetched: no fonts, images, CDN or JavaScript library. The one small script (sorting the tables) and the
style sheet are inline and allowed by a Content-Security-Policy ``<meta>`` that names their SHA-256 hashes and
forbids everything else (``default-src 'none'``), so even a name from the logs that slipped through unescaped could
not run. The page is a Jinja2 template (``templates/report.html.j2``) with autoescaping on: every value from the
logs is escaped by default. The charts are hand-made SVG whose text is escaped with :func:`esc`; where their labels
go is computed here as boxes (:class:`Label`) so that a test can check that no two overlap. The output depends only
on the report: the same report gives the same bytes. Without the script (e-mail clients) the tables are still
complete, only not sortable; the charts repeat what the tables say.

At fleet size the page stays short: a window lists its hosts as "20/20 complete" and names only the hosts that are
not complete; long tables scroll inside their own box; the coverage chart draws the logs with holes or clears and
counts the rest.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from evtrack.identity import host_key
from evtrack.render.charts import (
    coverage_chart_layout,
    curve_chart_layout,
    local_day,
    local_text,
    verdict_class,
    windows_chart_layout,
)
from evtrack.render.words import evidence_words, host_summary, input_kinds, short_channel
from evtrack.report import (
    CAL_VALIDITY_DAYS,
    STATUS_COMPLETE,
    STATUS_UNKNOWN,
    Proof,
    Report,
    iso,
)
from evtrack.windows import zone

# -- the fixed parts: style sheet and script (their hashes go into the CSP) -------------------------------------

STYLE = """
:root { color-scheme: light; --ink: #1b1f24; --muted: #57606a; --line: #d0d7de; --complete: #2f6fb3;
  --partial: #8fb5dd; --over: #b42318; --ok: #1a7f37; --unknown: #8c959f; --bg-alt: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1180px; padding: 1.5rem; color: var(--ink); background: #fff;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 .5rem; border-bottom: 1px solid var(--line); padding-bottom: .25rem; }
p.lead { color: var(--muted); margin: 0 0 1rem; }
dl.headline { display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr)); gap: .5rem 1rem;
  margin: 0; }
dl.headline div { border: 1px solid var(--line); border-radius: 6px; padding: .5rem .75rem; }
dl.headline dt { color: var(--muted); font-size: .8rem; }
dl.headline dd { margin: 0; font-size: 1.15rem; font-weight: 600; overflow-wrap: anywhere; }
dl.headline dd.source { font-size: .75rem; font-weight: 400; color: var(--muted); }
.verdict-over { color: var(--over); }
.verdict-within { color: var(--ok); }
.verdict-unknown, .status-unknown { color: var(--unknown); }
.status-partial { color: #9a6700; }
.muted { color: var(--muted); }
.flag { display: inline-block; font-size: .75rem; border: 1px solid var(--line); border-radius: 4px;
  padding: 0 .3rem; margin: 0 .15rem .15rem 0; white-space: nowrap; }
figure { margin: .5rem 0 1rem; }
figcaption { color: var(--muted); font-size: .85rem; }
svg { width: 100%; height: auto; display: block; font-family: inherit; }
.scroll { overflow-x: auto; max-width: 100%; }
.scroll.tall { max-height: 36rem; overflow-y: auto; border-bottom: 1px solid var(--line); }
table { border-collapse: collapse; width: 100%; font-size: .8rem; }
caption { text-align: left; color: var(--muted); padding: .25rem 0; }
th, td { border-bottom: 1px solid var(--line); padding: .3rem .4rem; text-align: left; vertical-align: top; }
.nowrap { white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.date { white-space: nowrap; font-variant-numeric: tabular-nums; }
thead th { background: var(--bg-alt); position: sticky; top: 0; z-index: 1; }
tbody tr:nth-child(even) { background: #fbfcfd; }
th button { all: inherit; cursor: pointer; padding: 0; }
th button::after { content: "\\00a0\\2195"; color: var(--unknown); }
th[aria-sort="ascending"] button::after { content: "\\00a0\\25B2"; color: var(--ink); }
th[aria-sort="descending"] button::after { content: "\\00a0\\25BC"; color: var(--ink); }
th button:focus-visible { outline: 2px solid var(--complete); }
.mono { font-family: ui-monospace, "SFMono-Regular", Consolas, "Liberation Mono", monospace; font-size: .8rem; }
.clip { display: inline-block; max-width: 7rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
  vertical-align: bottom; }
td details summary { cursor: pointer; }
td.evidence { min-width: 8rem; }
thead th { font-size: .75rem; }
td.hosts { min-width: 7rem; }
td details ul { margin: .25rem 0 0; padding-left: 1rem; }
ul.notes li { margin-bottom: .25rem; }
.error { color: var(--over); }
footer { margin-top: 2rem; color: var(--muted); font-size: .8rem; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  th button::after { content: ""; }
  thead th { position: static; }
  .scroll.tall { max-height: none; overflow: visible; }
  figure, tr, dl.headline div { break-inside: avoid; }
  h2 { break-after: avoid; }
}
"""

SCRIPT = """
(function () {
  "use strict";
  function cellValue(row, index, numeric) {
    var cell = row.cells[index];
    var raw = cell ? (cell.getAttribute("data-sort") || cell.textContent || "") : "";
    if (numeric) { var n = parseFloat(raw); return isNaN(n) ? -Infinity : n; }
    return raw.toLowerCase();
  }
  function sortBy(table, th) {
    var heads = table.tHead.rows[0].cells;
    var index = Array.prototype.indexOf.call(heads, th);
    var numeric = th.getAttribute("data-type") === "number";
    var descending = th.getAttribute("aria-sort") === "ascending";
    for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute("aria-sort"); }
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row, position) {
      return { row: row, key: cellValue(row, index, numeric), position: position };
    });
    rows.sort(function (a, b) {
      if (a.key < b.key) { return descending ? 1 : -1; }
      if (a.key > b.key) { return descending ? -1 : 1; }
      return a.position - b.position;
    });
    rows.forEach(function (item) { body.appendChild(item.row); });
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      var button = th.querySelector("button");
      if (button) { button.addEventListener("click", function () { sortBy(table, th); }); }
    });
  });
  // A link such as report.html#sort=users.sessions.desc opens the page sorted (the same path as clicks).
  var match = /^#sort=([a-z]+)\\.([a-z_]+)(?:\\.(asc|desc))?$/.exec(window.location.hash);
  if (match) {
    var th = document.querySelector("#table-" + match[1] + " th[data-key='" + match[2] + "']");
    var button = th && th.querySelector("button");
    if (button) {
      button.click();
      if (match[3] === "desc") { button.click(); }
    }
  }
  document.documentElement.setAttribute("data-sortable", "ready");
})();
"""


def _hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


CSP = (
    f"default-src 'none'; script-src '{_hash(SCRIPT)}'; style-src '{_hash(STYLE)}'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)
"""The page may run only its own script and style, and load nothing (``img-src data:`` for none-yet images)."""

TALL_TABLE_ROWS = 25
"""A table with more rows than this scrolls inside its own box, so the page stays short at fleet size."""

# -- tables as values, for the template ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    text: str = ""
    cls: str = ""
    sort: str | None = None
    title: str | None = None
    """Shown on hover: the full value of a clipped cell, the hosts behind a summary, the codes behind words."""
    clip: bool = False
    """One line, cut with an ellipsis (the full value is the title)."""
    flags: tuple[tuple[str, str], ...] = ()
    """(word, explanation) badges."""
    items: tuple[tuple[str, str], ...] = ()
    """(words, code) shown as a list; more than one folds into a <details>."""
    details: tuple[str, ...] = ()
    """Lines that ``text`` (the summary) expands to (the proof records of a user)."""


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "text"
    """text, number or date."""


@dataclass(frozen=True)
class Row:
    cells: tuple[Cell, ...]
    cls: str = ""


@dataclass(frozen=True)
class Table:
    id: str
    caption: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    sortable: bool = True

    @property
    def tall(self) -> bool:
        return len(self.rows) > TALL_TABLE_ROWS


def _cell(value: object, *, sort: object | None = None, cls: str = "", title: str | None = None,
          clip: bool = False) -> Cell:
    return Cell("-" if value is None else str(value), cls, None if sort is None else str(sort), title, clip)


def _when(moment: datetime, tz: ZoneInfo, *, day: bool = False) -> Cell:
    """A time cell: local time shown (the day alone for ``day`` or a local midnight), UTC ISO 8601 as the sort key."""
    local = moment.astimezone(tz)
    midnight = (local.hour, local.minute, local.second) == (0, 0, 0)
    shown = local_day(moment, tz) if day or midnight else local_text(moment, tz)
    return Cell(shown, "date", iso(moment.astimezone(timezone.utc)))


def _names(names: Sequence[str], limit: int = 2) -> Cell:
    """A few names in full; more as a count, every name on hover."""
    if len(names) <= limit:
        return Cell(", ".join(names), sort=", ".join(names))
    return Cell(f"{len(names)} hosts", sort=f"{len(names):06d}", title=", ".join(names))


def _flags(local_account: bool, domain_resolved: bool, in_directory: bool | None) -> tuple[tuple[str, str], ...]:
    flags = []
    if local_account:
        flags.append(("local", "Per User CALs cover domain users: check this account"))
    if not domain_resolved:
        flags.append(("domain?", "The domain could not be resolved"))
    if in_directory is False:
        flags.append(("not in directory", "Not found in the directory export (--directory)"))
    return tuple(flags)


def _proof_cell(windows: Sequence[str], proof: Sequence[Proof], tz: ZoneInfo) -> Cell:
    """The windows a user counts in, expanding to the audit trail: the first and last proving record per window
    (find each in its file by EventRecordID)."""
    if not proof:
        return Cell(str(len(windows)), "num", str(len(windows)), ", ".join(windows))
    lines = tuple(
        f"{p.window} {p.which}: {short_channel(p.channel)} {p.event_id} record {p.record_id} on {host_key(p.host)}, "
        f"{local_text(p.time, tz)}" + (f" (counted at {local_text(p.placed, tz)}: misdated)" if p.placed else "")
        + f", rule {p.rule}, account {p.user} — {p.file}"
        for p in proof
    )
    return Cell(f"{len(windows)}: {len(proof)} records", "proof", str(len(windows)), ", ".join(windows),
                details=lines)


def _users_table(report: Report, tz: ZoneInfo) -> Table:
    with_directory = any(u.full_name or u.in_directory is not None for u in report.users)
    columns = [Column("user", "User")]
    if with_directory:
        columns.append(Column("name", "Name (directory)"))
    columns += [
        Column("key", "Key / SID"), Column("first", "First seen", "date"), Column("last", "Last seen", "date"),
        Column("sessions", "Sessions", "number"), Column("hosts", "Hosts"), Column("evidence", "Evidence"),
        Column("expiry", "CAL expiry (est.)", "date"),
        Column("windows", "Windows (proof)", "number"), Column("flags", "Flags"),
    ]
    rows = []
    for u in report.users:
        ident = u.sid if u.sid and u.sid != u.key else None
        key_title = u.key + (f"\nSID {ident}" if ident else "")
        cells = [_cell(u.display_name)]
        if with_directory:
            cells.append(_cell(u.full_name or ""))
        cells += [
            _cell(u.key, cls="mono", title=key_title, clip=True),
            _when(u.first_seen, tz, day=True), _when(u.last_seen, tz, day=True),
            _cell(u.sessions, cls="num", title=f"{u.reconnects} reconnects"), _names(u.hosts),
            Cell(cls="evidence", sort=",".join(u.evidence),
                 items=tuple((evidence_words(code), code) for code in u.evidence)),
            _when(u.cal_expiry, tz, day=True),
            _proof_cell(u.windows, u.proof, tz),
            Cell(sort=f"{int(u.local_account)}{int(not u.domain_resolved)}{int(u.in_directory is False)}",
                 flags=_flags(u.local_account, u.domain_resolved, u.in_directory)),
        ]
        rows.append(Row(tuple(cells)))
    return Table("users", f"{len(report.users)} users with RDP evidence (click a column to sort; hover a cut "
                 "value, a count or a piece of evidence for the details)", tuple(columns), tuple(rows))


def _windows_table(report: Report, tz: ZoneInfo) -> Table:
    columns = (
        Column("window", "Window"), Column("start", "Start", "date"), Column("end", "End", "date"),
        Column("status", "Status"), Column("users", "Users", "number"), Column("new", "New", "number"),
        Column("sessions", "Sessions", "number"), Column("reconnects", "Reconnects", "number"),
        Column("peak", "Peak sessions", "number"), Column("devices", "Devices", "number"),
        Column("verdict", "Verdict"), Column("hosts", "Hosts"), Column("sources", "Users per source"),
    )
    rows = []
    for w in report.windows:
        users = "unknown" if w.users is None else str(w.users)
        summary = host_summary(w.hosts_complete, w.hosts_partial, w.hosts_unknown)
        if w.users is None:  # no logs: not 0 sessions
            counts = [_cell("-", sort=-1, cls="num")] * 4
        else:
            counts = [_cell(w.sessions, cls="num"), _cell(w.reconnects, cls="num"),
                      _cell(w.peak_sessions, cls="num"), _cell(w.devices, cls="num")]
        cells = [
            _cell(w.label), _when(w.start, tz), _when(w.end, tz),
            _cell(w.status, cls=f"status-{w.status}" if w.status != STATUS_COMPLETE else ""),
            _cell(users, sort=-1 if w.users is None else w.users,
                  cls="num status-unknown" if w.users is None else "num"),
            _cell("" if w.new_users is None else w.new_users, sort=-1 if w.new_users is None else w.new_users,
                  cls="num"),
            *counts,
            _cell(w.verdict, cls=verdict_class(w.verdict) + " nowrap"),
            _cell(summary.text, sort=f"{len(w.hosts_complete):06d}", title=summary.detail or None,
                  cls="hosts" if not summary.detail else "hosts status-partial"),
            _cell("; ".join(f"{label} {count}" for label, count in w.sources)
                  + (f" (rests on {', '.join(w.rests_on)}: a lower bound)" if w.rests_on else "")),
        ]
        rows.append(Row(tuple(cells), f"window-{w.status}"))
    return Table("windows", "Per window: unknown means no log covers it (not 0); partial counts are lower bounds; "
                 "hosts: how many hosts' logs cover the whole window, and which do not", columns, tuple(rows))


def _coverage_table(report: Report, tz: ZoneInfo) -> Table:
    columns = (
        Column("host", "Host"), Column("log", "Log"), Column("first", "First event", "date"),
        Column("last", "Last event", "date"), Column("records", "Records", "number"),
        Column("holes", "Holes", "number"), Column("gaps", "Record-id gaps", "number"),
        Column("missing", "Missing records", "number"), Column("cleared", "Log clears"),
    )
    rows = []
    for c in sorted(report.coverage, key=lambda c: (host_key(c.host), c.channel.lower())):
        holes = max(len(c.intervals) - 1, 0)
        cleared = ", ".join(local_text(t, tz) for t in c.cleared)
        rows.append(Row((
            _cell(host_key(c.host), title=c.host), _cell(short_channel(c.channel), title=c.channel),
            _when(c.first, tz), _when(c.last, tz), _cell(c.records, cls="num"), _cell(holes, cls="num"),
            _cell(c.record_id_gaps, cls="num"), _cell(c.missing_record_ids, cls="num"),
            _cell(cleared, cls="error" if cleared else ""),
        )))
    return Table("coverage", "What each host's logs cover", columns, tuple(rows))


def _devices_table(report: Report, tz: ZoneInfo) -> Table:
    columns = (Column("device", "Device"), Column("name", "Client name"), Column("addresses", "Addresses"),
               Column("users", "Users", "number"), Column("first", "First seen", "date"),
               Column("last", "Last seen", "date"))
    rows = tuple(
        Row((_cell(d.key, cls="mono", title=d.key, clip=True), _cell(d.name or ""),
             _cell(", ".join(d.addresses[:3]) + (f" +{len(d.addresses) - 3} more" if len(d.addresses) > 3 else ""),
                   title=", ".join(d.addresses)),
             _cell(len(d.users), cls="num"), _when(d.first_seen, tz), _when(d.last_seen, tz)))
        for d in report.devices
    )
    return Table("devices", f"{len(report.devices)} client devices (approximate behind NAT or DHCP)", columns, rows)


def _excluded_table(report: Report, tz: ZoneInfo) -> Table:
    columns = (Column("account", "Account"), Column("key", "Key"), Column("reason", "Reason"),
               Column("events", "Events", "number"), Column("first", "First seen", "date"),
               Column("last", "Last seen", "date"))
    rows = tuple(
        Row((_cell(e.name), _cell(e.key, cls="mono", title=e.key, clip=True), _cell(e.reason),
             _cell(e.events, cls="num"), _when(e.first_seen, tz), _when(e.last_seen, tz)))
        for e in report.excluded
    )
    return Table("excluded", f"{len(report.excluded)} accounts with RDP evidence that are not counted", columns, rows)


def _inputs_table(report: Report) -> Table:
    columns = (Column("path", "File"), Column("kind", "Kind"), Column("records", "Records", "number"),
               Column("skipped", "Skipped", "number"), Column("problem", "Error / issues"))
    rows = tuple(
        Row((_cell(item.path, cls="mono"), _cell(item.kind), _cell(item.records, cls="num"),
             _cell(item.skipped, cls="num"),
             _cell(item.error or "; ".join(item.issues), cls="error" if item.error else "")))
        for item in report.inputs if item.error or item.skipped or item.issues
    )
    return Table("inputs", "Files with errors or skipped records", columns, rows)


@dataclass(frozen=True)
class Headline:
    label: str
    value: str
    cls: str = ""
    source: str = ""


def _headline(report: Report, tz: ZoneInfo) -> tuple[Headline, ...]:
    installed = "not set" if report.installed is None else str(report.installed)
    estimated = "unknown" if report.estimated is None else str(report.estimated)
    as_of = local_day(report.as_of, tz) if report.as_of else "-"
    peak = f"{report.peak_estimated} on {report.peak_day}" if report.peak_estimated is not None else "-"
    busiest = "unknown" if report.max_window_users is None else str(report.max_window_users)
    utilisation = "-" if report.utilisation is None else f"{report.utilisation:.0%}"
    coverage = "complete" if report.coverage_complete else "incomplete"
    period = "-"
    if report.period_start and report.period_end:  # the end is exclusive: show the last day
        last_day = report.period_end.astimezone(tz).date() - timedelta(days=1)
        period = f"{local_day(report.period_start, tz)} \u2013 {last_day.isoformat()}"
    source = ""
    if report.installed is not None:
        source = f"from {report.installed_source}" if report.installed_source else "source not recorded"
    rests = ""
    if report.lower_bound:
        rests = "counts are lower bounds: the inputs do not cover all the verdict needs (see the notes)"
    if report.verdict_windows and len(report.verdict_windows) < len(report.windows):
        rests = "; ".join(filter(None, [rests, "rests on " + ", ".join(report.verdict_windows)]))
    sliding = ", ".join(f"{p.days} days: {p.users}" + ("" if p.complete else " (lower bound)")
                        for p in report.sliding_peaks) or "-"
    return (
        Headline("Verdict", report.verdict.upper(), verdict_class(report.verdict), source=rests),
        Headline("Most users in any", sliding),
        Headline("Per User CALs installed", installed, source=source),
        Headline(f"Estimated issued as of {as_of}", estimated),
        Headline(f"Peak of that view ({CAL_VALIDITY_DAYS}-day)", peak),
        Headline("Busiest window (distinct users)", busiest),
        Headline("Utilisation", utilisation),
        Headline("Log coverage", coverage, "verdict-within" if report.coverage_complete else "verdict-over"),
        Headline("Scope", report.scope),
        Headline("Period", period),
        Headline("Windows", report.window),
        Headline("Time zone", report.tz),
        Headline("Created", report.created_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
    )


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("evtrack.render", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def report_html(report: Report) -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    tz = zone(report.tz)
    created = report.created_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    charts = {"windows": windows_chart_layout(report), "curve": curve_chart_layout(report),
              "coverage": coverage_chart_layout(report)}
    hosts = {host_key(c.host) for c in report.coverage}
    for w in report.windows:
        hosts.update(w.hosts_complete, w.hosts_partial, w.hosts_unknown)
    return _environment().get_template("report.html.j2").render(
        report=report,
        created=created,
        csp=CSP,
        style=Markup(STYLE),
        script=Markup(SCRIPT),
        cal_days=CAL_VALIDITY_DAYS,
        headline=_headline(report, tz),
        charts={name: Markup(chart.svg) for name, chart in charts.items()},
        notes_of={name: chart.note for name, chart in charts.items()},
        unknown_windows=sum(1 for w in report.windows if w.status == STATUS_UNKNOWN),
        host_count=len(hosts),
        windows_table=_windows_table(report, tz),
        users_table=_users_table(report, tz),
        devices_table=_devices_table(report, tz),
        excluded_table=_excluded_table(report, tz),
        coverage_table=_coverage_table(report, tz),
        inputs_table=_inputs_table(report),
        failed_inputs=sum(1 for i in report.inputs if i.error), input_kinds=input_kinds(report),
    )
