"""The report as one self-contained HTML file: headline, charts as inline SVG, sortable tables.

Nothing is fetched: no fonts, images, CDN or JavaScript library. The one small script (sorting the tables) and the
style sheet are inline and allowed by a Content-Security-Policy ``<meta>`` that names their SHA-256 hashes and
forbids everything else (``default-src 'none'``), so even a name from the logs that slipped through unescaped could
not run. Every value from the logs is escaped with :func:`html.escape`. The output depends only on the report:
the same report gives the same bytes. Without the script (e-mail clients) the tables are still complete, only not
sortable; the charts repeat what the tables say.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

from evtrack.report import (
    CAL_VALIDITY_DAYS,
    STATUS_COMPLETE,
    STATUS_PARTIAL,
    STATUS_UNKNOWN,
    ChannelCoverage,
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
.verdict-over { color: var(--over); }
.verdict-within { color: var(--ok); }
.verdict-unknown, .status-unknown { color: var(--unknown); }
.status-partial { color: #9a6700; }
.flag { display: inline-block; font-size: .75rem; border: 1px solid var(--line); border-radius: 4px;
  padding: 0 .3rem; margin: 0 .15rem .15rem 0; white-space: nowrap; }
figure { margin: .5rem 0 1rem; }
figcaption { color: var(--muted); font-size: .85rem; }
svg { width: 100%; height: auto; display: block; font-family: inherit; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .85rem; }
caption { text-align: left; color: var(--muted); padding: .25rem 0; }
th, td { border-bottom: 1px solid var(--line); padding: .3rem .5rem; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.date { white-space: nowrap; font-variant-numeric: tabular-nums; }
thead th { background: var(--bg-alt); position: sticky; top: 0; }
tbody tr:nth-child(even) { background: #fbfcfd; }
th button { all: inherit; cursor: pointer; padding: 0; }
th button::after { content: " \\2195"; color: var(--unknown); }
th[aria-sort="ascending"] button::after { content: " \\25B2"; color: var(--ink); }
th[aria-sort="descending"] button::after { content: " \\25BC"; color: var(--ink); }
th button:focus-visible { outline: 2px solid var(--complete); }
.mono { font-family: ui-monospace, "SFMono-Regular", Consolas, "Liberation Mono", monospace; font-size: .8rem;
  overflow-wrap: anywhere; }
ul.notes li { margin-bottom: .25rem; }
details.proof ul, details.hashes ul { margin: .25rem 0; padding-left: 1rem; font-size: .85rem; }
details.proof summary, details.hashes summary { cursor: pointer; white-space: nowrap; }
.error { color: var(--over); }
footer { margin-top: 2rem; color: var(--muted); font-size: .8rem; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  th button::after { content: ""; }
  thead th { position: static; }
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

# -- small helpers ------------------------------------------------------------------------------------------------


def esc(value: object) -> str:
    """Text for HTML (element content or a quoted attribute): everything from the logs goes through here."""
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: float) -> str:
    """A coordinate with one decimal, stable across platforms (no "-0.0")."""
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


def _local(moment: datetime | None, tz: ZoneInfo, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return "-" if moment is None else moment.astimezone(tz).strftime(fmt)


def _day(moment: datetime | None, tz: ZoneInfo) -> str:
    return _local(moment, tz, "%Y-%m-%d")


def _ts(moment: datetime) -> float:
    return moment.astimezone(timezone.utc).timestamp()


def _short_channel(channel: str) -> str:
    if "LocalSessionManager" in channel:
        return "LSM"
    if "RemoteConnectionManager" in channel:
        return "RCM"
    return channel.rsplit("/", 1)[0].rsplit("-", 1)[-1]


def _nice_max(value: float) -> int:
    """A round axis maximum at or above ``value`` (1, 2, 5 × 10^n)."""
    if value <= 1:
        return 1
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * exponent:
            return int(step * exponent)
    return int(10 * exponent)  # pragma: no cover - the loop always returns


def _ticks(maximum: int) -> list[int]:
    step = max(1, _nice_max(maximum / 5))
    if maximum / step > 6:
        step *= 2
    return list(range(0, maximum + 1, step))


def _verdict_class(verdict: str) -> str:
    if verdict.startswith("over"):
        return "verdict-over"
    if verdict == "within":
        return "verdict-within"
    return "verdict-unknown"


def _table(table_id: str, caption: str, columns: Sequence[tuple[str, str, str]], rows: Iterable[str],
           *, sortable: bool = True) -> str:
    """A table; ``columns`` are (key, label, type) with type "text", "number" or "date"."""
    heads = []
    for key, label, kind in columns:
        cls = ' class="num"' if kind == "number" else ""
        data_type = ' data-type="number"' if kind == "number" else ""
        inner = f'<button type="button">{esc(label)}</button>' if sortable else esc(label)
        heads.append(f'<th scope="col" data-key="{esc(key)}"{data_type}{cls}>{inner}</th>')
    sortable_class = ' class="sortable"' if sortable else ""
    body = "\n".join(rows)
    return (
        f'<div class="scroll"><table id="table-{esc(table_id)}"{sortable_class}>\n<caption>{esc(caption)}</caption>\n'
        f"<thead><tr>{''.join(heads)}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>"
    )


def _td(value: object, *, sort: object | None = None, cls: str = "") -> str:
    attrs = f' class="{cls}"' if cls else ""
    if sort is not None:
        attrs += f' data-sort="{esc(sort)}"'
    return f"<td{attrs}>{esc('-' if value is None else value)}</td>"


def _when(moment: datetime, tz: ZoneInfo, *, day: bool = False) -> str:
    """A time cell: local time shown, UTC ISO 8601 as the sort key."""
    shown = _day(moment, tz) if day else _local(moment, tz)
    return _td(shown, sort=iso(moment.astimezone(timezone.utc)), cls="date")


# -- charts -------------------------------------------------------------------------------------------------------

_PATTERN = (
    '<defs><pattern id="{id}" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
    '<rect width="6" height="6" fill="#eaeef2"/><line x1="0" y1="0" x2="0" y2="6" stroke="#8c959f" '
    'stroke-width="2"/></pattern></defs>'
)


def _gridlines(y_max: int, y: Callable[[float], float], x0: int, x1: int) -> list[str]:
    """A chart's horizontal grid lines, labelled with their values on the left."""
    parts = []
    for tick in _ticks(y_max):
        parts.append(f'<line x1="{x0}" x2="{x1}" y1="{_num(y(tick))}" y2="{_num(y(tick))}" stroke="#d0d7de" '
                     'stroke-width="1"/>')
        parts.append(f'<text x="{x0 - 6}" y="{_num(y(tick) + 4)}" text-anchor="end" font-size="11" '
                     f'fill="#57606a">{tick}</text>')
    return parts


def windows_chart(report: Report) -> str:
    """Distinct users per window as bars; the installed count as a line; unknown windows hatched, never 0."""
    windows = report.windows
    if not windows:
        return '<p class="status-unknown">No windows: the inputs cover no time.</p>'
    width, height = 960, 300
    left, right, top, bottom = 48, 16, 16, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [w.users for w in windows if w.users is not None]
    top_value = max([*values, report.installed or 0, report.estimated or 0, 1])
    y_max = _nice_max(top_value * 1.1)
    slot = plot_w / len(windows)
    bar = max(min(slot * 0.7, 80), 1.0)

    def y(value: float) -> float:
        return top + plot_h - value / y_max * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="windows-chart-title windows-chart-desc">',
        '<title id="windows-chart-title">Distinct RDP users per window</title>',
        f'<desc id="windows-chart-desc">{len(windows)} windows; {sum(w.users is None for w in windows)} unknown '
        "(no log covers them, drawn hatched); the red line is the installed Per User CAL count.</desc>",
        _PATTERN.format(id="hatch-unknown"),
    ]
    parts.extend(_gridlines(y_max, y, left, width - right))
    label_every = max(1, math.ceil(len(windows) / 24))
    for index, w in enumerate(windows):
        x = left + slot * index + (slot - bar) / 2
        centre = left + slot * index + slot / 2
        tooltip = (f"{w.label}: " + ("unknown (no logs)" if w.users is None else f"{w.users} users") +
                   f", {w.status}, {w.sessions} sessions")
        if w.users is None:
            parts.append(
                f'<g class="bar bar-unknown" data-window="{esc(w.label)}"><title>{esc(tooltip)}</title>'
                f'<rect x="{_num(x)}" y="{top}" width="{_num(bar)}" height="{plot_h}" fill="url(#hatch-unknown)" '
                'stroke="#8c959f" stroke-dasharray="3 2"/>'
                f'<text x="{_num(centre)}" y="{_num(top + plot_h / 2)}" text-anchor="middle" font-size="11" '
                f'fill="#57606a" transform="rotate(-90 {_num(centre)} {_num(top + plot_h / 2)})">unknown</text></g>'
            )
        else:
            fill = "#2f6fb3" if w.status == STATUS_COMPLETE else "#8fb5dd"
            over = report.installed is not None and w.users > report.installed
            stroke = ' stroke="#b42318" stroke-width="2"' if over else ""
            prefix = "\u2265" if w.status == STATUS_PARTIAL else ""
            parts.append(
                f'<g class="bar bar-{esc(w.status)}" data-window="{esc(w.label)}"><title>{esc(tooltip)}</title>'
                f'<rect x="{_num(x)}" y="{_num(y(w.users))}" width="{_num(bar)}" '
                f'height="{_num(plot_h - (y(w.users) - top))}" fill="{fill}"{stroke}/>'
                f'<text x="{_num(centre)}" y="{_num(y(w.users) - 4)}" text-anchor="middle" font-size="11" '
                f'fill="#1b1f24">{prefix}{w.users}</text></g>'
            )
        if index % label_every == 0:
            parts.append(f'<text x="{_num(centre)}" y="{height - bottom + 16}" text-anchor="middle" font-size="11" '
                         f'fill="#1b1f24">{esc(w.label)}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" '
                 'stroke="#57606a"/>')
    if report.installed is not None:
        yi = _num(y(report.installed))
        parts.append(f'<g class="installed"><line x1="{left}" x2="{width - right}" y1="{yi}" y2="{yi}" '
                     'stroke="#b42318" stroke-width="2" stroke-dasharray="6 4"/>'
                     f'<text x="{width - right}" y="{_num(y(report.installed) - 5)}" text-anchor="end" font-size="12" '
                     f'fill="#b42318">installed {report.installed}</text></g>')
    legend_y = height - 14
    parts.append(
        f'<g font-size="11" fill="#1b1f24"><rect x="{left}" y="{legend_y - 9}" width="10" height="10" '
        f'fill="#2f6fb3"/><text x="{left + 14}" y="{legend_y}">complete</text>'
        f'<rect x="{left + 90}" y="{legend_y - 9}" width="10" height="10" fill="#8fb5dd"/>'
        f'<text x="{left + 104}" y="{legend_y}">partial (lower bound, \u2265)</text>'
        f'<rect x="{left + 270}" y="{legend_y - 9}" width="10" height="10" fill="url(#hatch-unknown)" '
        f'stroke="#8c959f"/><text x="{left + 284}" y="{legend_y}">unknown (no logs)</text>'
        f'<line x1="{left + 410}" x2="{left + 430}" y1="{legend_y - 4}" y2="{legend_y - 4}" stroke="#b42318" '
        f'stroke-width="2" stroke-dasharray="6 4"/><text x="{left + 436}" y="{legend_y}">installed</text></g>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def curve_chart(report: Report) -> str:
    """The licence-server "as of" view per day as a line, with the installed count and the peak marked."""
    curve = report.curve
    if not curve:
        return '<p class="status-unknown">No daily curve: there is no RDP evidence to estimate from.</p>'
    width, height = 960, 240
    left, right, top, bottom = 48, 16, 16, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    y_max = _nice_max(max([p.users for p in curve] + [report.installed or 0, 1]) * 1.1)
    first, last = curve[0].day.toordinal(), curve[-1].day.toordinal()
    span = max(last - first, 1)

    def x(day: date) -> float:
        return left + (day.toordinal() - first) / span * plot_w

    def y(value: float) -> float:
        return top + plot_h - value / y_max * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        'aria-labelledby="curve-chart-title curve-chart-desc">',
        '<title id="curve-chart-title">Estimated Per User CALs issued, per day</title>',
        f'<desc id="curve-chart-desc">Users with RDP evidence in the {CAL_VALIDITY_DAYS} days before each day, '
        f"{esc(curve[0].day)} to {esc(curve[-1].day)}.</desc>",
    ]
    parts.extend(_gridlines(y_max, y, left, width - right))
    month_starts = [p.day for p in curve if p.day.day == 1]
    every = max(1, math.ceil(len(month_starts) / 12))
    for day in month_starts[::every]:
        parts.append(f'<line x1="{_num(x(day))}" x2="{_num(x(day))}" y1="{top}" y2="{top + plot_h}" '
                     'stroke="#eaeef2"/>')
        parts.append(f'<text x="{_num(x(day))}" y="{height - bottom + 16}" text-anchor="middle" font-size="11" '
                     f'fill="#1b1f24">{day.strftime("%Y-%m")}</text>')
    points = " ".join(f"{_num(x(p.day))},{_num(y(p.users))}" for p in curve)
    parts.append(f'<polyline class="curve" points="{points}" fill="none" stroke="#2f6fb3" stroke-width="2" '
                 'stroke-linejoin="round"/>')
    if report.installed is not None:
        yi = _num(y(report.installed))
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{yi}" y2="{yi}" stroke="#b42318" '
                     'stroke-width="2" stroke-dasharray="6 4"/>'
                     f'<text x="{width - right}" y="{_num(y(report.installed) - 5)}" text-anchor="end" '
                     f'font-size="12" fill="#b42318">installed {report.installed}</text>')
    if report.peak_day is not None and report.peak_estimated is not None:
        px, py = _num(x(report.peak_day)), _num(y(report.peak_estimated))
        parts.append(f'<g class="peak"><title>peak {report.peak_estimated} on {esc(report.peak_day)}</title>'
                     f'<circle cx="{px}" cy="{py}" r="4" fill="#1b1f24"/>'
                     f'<text x="{px}" y="{_num(y(report.peak_estimated) - 8)}" text-anchor="middle" font-size="11" '
                     f'fill="#1b1f24">peak {report.peak_estimated}</text></g>')
    parts.append(f'<text x="{left}" y="{height - 4}" font-size="11" fill="#57606a">{esc(curve[0].day)}</text>')
    parts.append(f'<text x="{width - right}" y="{height - 4}" text-anchor="end" font-size="11" '
                 f'fill="#57606a">{esc(curve[-1].day)}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#57606a"/>')
    parts.append("</svg>")
    return "\n".join(parts)


def coverage_chart(report: Report) -> str:
    """Per host and log: covered time as bars on one time axis, holes between exports hatched, log clears marked."""
    rows: Sequence[ChannelCoverage] = sorted(report.coverage, key=lambda c: (c.host.lower(), c.channel.lower()))
    if not rows:
        return '<p class="status-unknown">No log coverage: no event log was read.</p>'
    tz = zone(report.tz)
    starts = [c.first for c in rows] + ([report.period_start] if report.period_start else [])
    ends = [c.last for c in rows] + ([report.period_end] if report.period_end else [])
    t0, t1 = min(_ts(s) for s in starts), max(_ts(e) for e in ends)
    span = max(t1 - t0, 1.0)
    label_w, right, top, row_h = 230, 16, 24, 26
    width = 960
    plot_w = width - label_w - right
    height = top + row_h * len(rows) + 30

    def x(moment: datetime) -> float:
        return label_w + (_ts(moment) - t0) / span * plot_w

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        'aria-labelledby="coverage-chart-title coverage-chart-desc">',
        '<title id="coverage-chart-title">Log coverage per host and log</title>',
        '<desc id="coverage-chart-desc">Bars are the time each log covers; hatched gaps are holes between exports; '
        "red marks are log clears.</desc>",
        _PATTERN.format(id="hatch-hole").replace("#8c959f", "#cf222e").replace("#eaeef2", "#fff1f0"),
    ]
    for window in report.windows:
        if window.start.astimezone(timezone.utc).timestamp() > t0:
            wx = _num(x(window.start))
            parts.append(f'<line x1="{wx}" x2="{wx}" y1="{top - 4}" y2="{top + row_h * len(rows)}" '
                         'stroke="#eaeef2"/>')
    for index, c in enumerate(rows):
        y = top + index * row_h
        label = f"{c.host.split('.', 1)[0]} {_short_channel(c.channel)}"
        parts.append(f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" font-size="11" fill="#1b1f24">'
                     f"<title>{esc(c.host)} {esc(c.channel)}</title>{esc(label[:34])}</text>")
        parts.append(f'<rect x="{label_w}" y="{y + 5}" width="{plot_w}" height="{row_h - 10}" fill="#f6f8fa"/>')
        intervals = c.intervals or ((c.first, c.last),)
        for start, end in intervals:
            parts.append(f'<rect class="covered" x="{_num(x(start))}" y="{y + 5}" '
                         f'width="{_num(max(x(end) - x(start), 1.5))}" height="{row_h - 10}" fill="#2f6fb3">'
                         f"<title>{esc(_local(start, tz))} \u2013 {esc(_local(end, tz))}</title></rect>")
        for (_, hole_start), (hole_end, _) in pairwise(intervals):
            parts.append(f'<rect class="hole" x="{_num(x(hole_start))}" y="{y + 5}" '
                         f'width="{_num(max(x(hole_end) - x(hole_start), 1.5))}" height="{row_h - 10}" '
                         'fill="url(#hatch-hole)">'
                         f"<title>hole: {esc(_local(hole_start, tz))} \u2013 "
                         f"{esc(_local(hole_end, tz))}</title></rect>")
        for cleared in c.cleared:
            cx = _num(x(cleared))
            parts.append(f'<g class="clear"><title>log cleared {esc(_local(cleared, tz))}</title>'
                         f'<line x1="{cx}" x2="{cx}" y1="{y + 1}" y2="{y + row_h - 1}" stroke="#cf222e" '
                         f'stroke-width="3"/><text x="{cx}" y="{y + 4}" text-anchor="middle" font-size="10" '
                         'fill="#cf222e">\u2715</text></g>')
    axis_y = top + row_h * len(rows) + 16
    start_dt = datetime.fromtimestamp(t0, timezone.utc)
    end_dt = datetime.fromtimestamp(t1, timezone.utc)
    parts.append(f'<text x="{label_w}" y="{axis_y}" font-size="11" fill="#57606a">{esc(_local(start_dt, tz))}</text>')
    parts.append(f'<text x="{width - right}" y="{axis_y}" text-anchor="end" font-size="11" fill="#57606a">'
                 f"{esc(_local(end_dt, tz))}</text>")
    parts.append("</svg>")
    return "\n".join(parts)


# -- the page -----------------------------------------------------------------------------------------------------


def _headline(report: Report, tz: ZoneInfo) -> str:
    installed = "not set" if report.installed is None else str(report.installed)
    estimated = "unknown" if report.estimated is None else str(report.estimated)
    as_of = _day(report.as_of, tz) if report.as_of else "-"
    peak = f"{report.peak_estimated} on {report.peak_day}" if report.peak_estimated is not None else "-"
    busiest = "unknown" if report.max_window_users is None else str(report.max_window_users)
    utilisation = "-" if report.utilisation is None else f"{report.utilisation:.0%}"
    coverage = "complete" if report.coverage_complete else "incomplete"
    period = "-"
    if report.period_start and report.period_end:  # the end is exclusive: show the last day
        last_day = report.period_end.astimezone(tz).date() - timedelta(days=1)
        period = f"{_day(report.period_start, tz)} \u2013 {last_day.isoformat()}"
    items = [
        ("Verdict", report.verdict.upper(), _verdict_class(report.verdict)),
        ("Per User CALs installed", installed, ""),
        (f"Estimated issued as of {as_of}", estimated, ""),
        (f"Peak of that view ({CAL_VALIDITY_DAYS}-day)", peak, ""),
        ("Busiest window (distinct users)", busiest, ""),
        ("Utilisation", utilisation, ""),
        ("Log coverage", coverage, "verdict-within" if report.coverage_complete else "verdict-over"),
        ("Scope", report.scope, ""),
        ("Period", period, ""),
        ("Windows", report.window, ""),
        ("Time zone", report.tz, ""),
        ("Created", report.created_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), ""),
    ]
    cells = "\n".join(
        f'<div><dt>{esc(label)}</dt><dd class="{cls}">{esc(value)}</dd></div>' if cls else
        f"<div><dt>{esc(label)}</dt><dd>{esc(value)}</dd></div>"
        for label, value, cls in items
    )
    return f'<dl class="headline" id="headline">\n{cells}\n</dl>'


def _flags(local_account: bool, domain_resolved: bool) -> str:
    flags = []
    if local_account:
        flags.append('<span class="flag" title="Per User CALs cover domain users: check this account">local</span>')
    if not domain_resolved:
        flags.append('<span class="flag" title="The domain could not be resolved">domain?</span>')
    return "".join(flags)


def _proof_cell(proof: Sequence[Proof], tz: ZoneInfo) -> str:
    """The audit trail of one user: expands to the first and last proving record per window (find each in its
    file by EventRecordID)."""
    if not proof:
        return '<td data-sort="0">-</td>'
    items = []
    for p in proof:
        placed = f" (counted at {_local(p.placed, tz)}: misdated)" if p.placed else ""
        items.append(
            f'<li><span class="mono">{esc(p.window)} {esc(p.which)}</span>: {esc(_short_channel(p.channel))} '
            f"{esc(p.event_id)} record <strong>{esc(p.record_id)}</strong> on {esc(p.host)}, {esc(_local(p.time, tz))}"
            f"{esc(placed)}, rule <span class=\"mono\">{esc(p.rule)}</span>, account {esc(p.user)}"
            f'<br><span class="mono">{esc(p.file)}</span></li>'
        )
    return (f'<td data-sort="{len(proof)}"><details class="proof"><summary>{len(proof)} records</summary>'
            f'<ul>{"".join(items)}</ul></details></td>')


def _users_table(report: Report, tz: ZoneInfo) -> str:
    columns = [
        ("user", "User", "text"), ("key", "Key", "text"), ("first", "First seen", "date"),
        ("last", "Last seen", "date"), ("sessions", "Sessions", "number"), ("reconnects", "Reconnects", "number"),
        ("hosts", "Hosts", "text"), ("evidence", "Evidence", "text"), ("expiry", "CAL expiry (est.)", "date"),
        ("windows", "Windows", "number"), ("flags", "Flags", "text"), ("proof", "Proof", "number"),
    ]
    rows = []
    for u in report.users:
        flags = _flags(u.local_account, u.domain_resolved)
        rows.append(
            "<tr>" + _td(u.display_name) + _td(u.key, cls="mono") +
            _when(u.first_seen, tz) +
            _when(u.last_seen, tz) +
            _td(u.sessions, cls="num") + _td(u.reconnects, cls="num") + _td(", ".join(u.hosts)) +
            _td(", ".join(u.evidence), cls="mono") +
            _when(u.cal_expiry, tz, day=True) +
            f'<td data-sort="{len(u.windows)}">{esc(", ".join(u.windows))}</td>'
            f'<td data-sort="{int(u.local_account)}{int(not u.domain_resolved)}">{flags}</td>'
            + _proof_cell(u.proof, tz) + "</tr>"
        )
    return _table("users", f"{len(report.users)} users with RDP evidence (click a column to sort)", columns, rows)


def _windows_table(report: Report, tz: ZoneInfo) -> str:
    columns = [
        ("window", "Window", "text"), ("start", "Start", "date"), ("end", "End", "date"), ("status", "Status", "text"),
        ("users", "Users", "number"), ("new", "New", "number"), ("sessions", "Sessions", "number"),
        ("reconnects", "Reconnects", "number"), ("peak", "Peak concurrent", "number"),
        ("devices", "Devices", "number"), ("verdict", "Verdict", "text"),
        ("hosts_complete", "Hosts complete", "text"), ("hosts_partial", "Hosts partial", "text"),
        ("hosts_unknown", "Hosts unknown", "text"),
    ]
    rows = []
    for w in report.windows:
        users = "unknown" if w.users is None else str(w.users)
        rows.append(
            f'<tr class="window-{esc(w.status)}">' + _td(w.label) +
            _when(w.start, tz) +
            _when(w.end, tz) +
            _td(w.status, cls=f"status-{w.status}" if w.status != STATUS_COMPLETE else "") +
            _td(users, sort=-1 if w.users is None else w.users,
                cls="num status-unknown" if w.users is None else "num") +
            _td("" if w.new_users is None else w.new_users, sort=-1 if w.new_users is None else w.new_users,
                cls="num") +
            (_td("-", sort=-1, cls="num") * 4 if w.users is None  # no logs: not 0 sessions
             else _td(w.sessions, cls="num") + _td(w.reconnects, cls="num") + _td(w.peak_sessions, cls="num")
             + _td(w.devices, cls="num")) +
            _td(w.verdict, cls=_verdict_class(w.verdict)) + _td(", ".join(w.hosts_complete)) +
            _td(", ".join(w.hosts_partial)) + _td(", ".join(w.hosts_unknown)) + "</tr>"
        )
    return _table("windows", "Per window: unknown means no log covers it (not 0); partial counts are lower bounds",
                  columns, rows)


def _coverage_table(report: Report, tz: ZoneInfo) -> str:
    columns = [
        ("host", "Host", "text"), ("log", "Log", "text"), ("first", "First event", "date"),
        ("last", "Last event", "date"), ("records", "Records", "number"), ("holes", "Holes", "number"),
        ("gaps", "Record-id gaps", "number"), ("missing", "Missing records", "number"),
        ("cleared", "Log clears", "text"),
    ]
    rows = []
    for c in sorted(report.coverage, key=lambda c: (c.host.lower(), c.channel.lower())):
        holes = max(len(c.intervals) - 1, 0)
        cleared = ", ".join(_local(t, tz) for t in c.cleared)
        rows.append(
            "<tr>" + _td(c.host) + _td(c.channel) + _when(c.first, tz) +
            _when(c.last, tz) + _td(c.records, cls="num") + _td(holes, cls="num") +
            _td(c.record_id_gaps, cls="num") + _td(c.missing_record_ids, cls="num") +
            _td(cleared or "", cls="error" if cleared else "") + "</tr>"
        )
    return _table("coverage", "What each host's logs cover", columns, rows)


def _devices_table(report: Report, tz: ZoneInfo) -> str:
    if not report.devices:
        return "<p>No client device was identified (no client name or remote address in the evidence).</p>"
    columns = [("device", "Device", "text"), ("name", "Client name", "text"), ("addresses", "Addresses", "text"),
               ("users", "Users", "number"), ("first", "First seen", "date"), ("last", "Last seen", "date")]
    rows = [
        "<tr>" + _td(d.key, cls="mono") + _td(d.name or "") + _td(", ".join(d.addresses)) +
        _td(len(d.users), cls="num") + _when(d.first_seen, tz) + _when(d.last_seen, tz) + "</tr>"
        for d in report.devices
    ]
    return _table("devices", f"{len(report.devices)} client devices (approximate behind NAT or DHCP)", columns,
                  rows)


def _excluded_table(report: Report, tz: ZoneInfo) -> str:
    if not report.excluded:
        return "<p>None.</p>"
    columns = [("account", "Account", "text"), ("key", "Key", "text"), ("reason", "Reason", "text"),
               ("events", "Events", "number"), ("first", "First seen", "date"), ("last", "Last seen", "date")]
    rows = [
        "<tr>" + _td(e.name) + _td(e.key, cls="mono") + _td(e.reason) + _td(e.events, cls="num") +
        _when(e.first_seen, tz) + _when(e.last_seen, tz)
        + "</tr>"
        for e in report.excluded
    ]
    return _table("excluded", f"{len(report.excluded)} accounts with RDP evidence that are not counted", columns, rows)


def _inputs_section(report: Report) -> str:
    failed = [i for i in report.inputs if i.error]
    troubled = [i for i in report.inputs if i.error or i.skipped or i.issues]
    summary = (
        f"<p>{len(report.inputs) - len(failed)} of {len(report.inputs)} files read ({esc(report.engine)}); "
        f"records read {report.records_read:,}, skipped {report.records_skipped:,}.</p>"
    )
    listed = "".join(
        f'<li><span class="mono">{esc(i.path)}</span>: '
        + (f"{i.size:,} bytes, SHA-256 <span class=\"mono\">{esc(i.sha256)}</span>" if i.sha256 else "no hash")
        + (f", ingested {esc(i.ingested_at.strftime('%Y-%m-%d %H:%M UTC'))}" if i.ingested_at else "")
        + "</li>"
        for i in report.inputs
    )
    summary += (f'<details class="hashes"><summary>Every input file with its size and SHA-256</summary>'
                f"<ul>{listed}</ul></details>")
    if not troubled:
        return summary + "<p>No file had errors.</p>"
    columns = [("path", "File", "text"), ("kind", "Kind", "text"), ("records", "Records", "number"),
               ("skipped", "Skipped", "number"), ("problem", "Error / issues", "text")]
    rows = []
    for item in troubled:
        problem = item.error or "; ".join(item.issues)
        rows.append("<tr>" + _td(item.path, cls="mono") + _td(item.kind) + _td(item.records, cls="num") +
                    _td(item.skipped, cls="num") + _td(problem, cls="error" if item.error else "") + "</tr>")
    return summary + _table("inputs", "Files with errors or skipped records", columns, rows)


def report_html(report: Report) -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    tz = zone(report.tz)
    created = report.created_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    notes = "".join(f"<li>{esc(note)}</li>" for note in report.notes) or "<li>None.</li>"
    unknown_windows = sum(1 for w in report.windows if w.status == STATUS_UNKNOWN)
    sections = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="evtrack">',
        f"<title>RDS Per User CAL usage \u2014 {esc(report.scope)} \u2014 {esc(created)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        "<header>",
        "<h1>RDS Per User CAL usage</h1>",
        '<p class="lead">An estimate from the RD Session Hosts\u2019 logon events (evtrack): distinct users with RDP '
        "evidence per window, and the users a licence server would show as holding a Per User CAL (evidence in the "
        f"{CAL_VALIDITY_DAYS} days before a day). A window the logs do not cover is <em>unknown</em>, never 0.</p>",
        _headline(report, tz),
        "</header>",
        "<main>",
        '<section id="per-window" aria-labelledby="h-per-window">',
        '<h2 id="h-per-window">Distinct users per window</h2>',
        f'<figure>{windows_chart(report)}<figcaption>Bars: distinct users per {esc(report.window)} window '
        f"({unknown_windows} unknown). Dashed line: Per User CALs installed.</figcaption></figure>",
        _windows_table(report, tz),
        "</section>",
        '<section id="as-of" aria-labelledby="h-as-of">',
        '<h2 id="h-as-of">Licence-server view, per day</h2>',
        f"<figure>{curve_chart(report)}<figcaption>Users with RDP evidence in the {CAL_VALIDITY_DAYS} days before "
        "each day: what the RD Licensing Manager would show as issued Per User CALs.</figcaption></figure>",
        "</section>",
        '<section id="users" aria-labelledby="h-users">',
        f'<h2 id="h-users">Users ({len(report.users)})</h2>',
        _users_table(report, tz),
        "</section>",
        '<section id="devices" aria-labelledby="h-devices">',
        f'<h2 id="h-devices">Client devices ({len(report.devices)}): for comparing with Per Device CALs</h2>',
        _devices_table(report, tz),
        "</section>",
        '<section id="excluded" aria-labelledby="h-excluded">',
        f'<h2 id="h-excluded">Not counted ({len(report.excluded)})</h2>',
        _excluded_table(report, tz),
        "</section>",
        '<section id="coverage" aria-labelledby="h-coverage">',
        '<h2 id="h-coverage">Log coverage</h2>',
        f"<figure>{coverage_chart(report)}<figcaption>Per host and log (Security, LocalSessionManager...): covered "
        "time in blue, holes between exports hatched red, log clears as red marks.</figcaption></figure>",
        _coverage_table(report, tz),
        "</section>",
        '<section id="inputs" aria-labelledby="h-inputs">',
        '<h2 id="h-inputs">Inputs</h2>',
        _inputs_section(report),
        "</section>",
        '<section id="notes" aria-labelledby="h-notes">',
        '<h2 id="h-notes">Notes</h2>',
        f'<ul class="notes">{notes}</ul>',
        "</section>",
        "</main>",
        f"<footer>evtrack report schema {report.schema_version}; created {esc(created)}; times in "
        f"{esc(report.tz)}.</footer>",
        f"<script>{SCRIPT}</script>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(sections)
