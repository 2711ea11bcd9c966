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
import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from evtrack.identity import host_key
from evtrack.render.words import evidence_words, host_summary
from evtrack.report import (
    CAL_VALIDITY_DAYS,
    STATUS_COMPLETE,
    STATUS_PARTIAL,
    STATUS_UNKNOWN,
    ChannelCoverage,
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
COVERAGE_CHART_ROWS = 24
"""Up to this many logs the coverage chart draws them all; beyond, only those with holes, clears or gaps."""

# -- small helpers ------------------------------------------------------------------------------------------------


def esc(value: object) -> str:
    """Text for SVG/HTML (element content or a quoted attribute): every value the charts take from the logs."""
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


# -- chart text as boxes ------------------------------------------------------------------------------------------

CHAR_WIDTH = 0.62
"""Estimated advance of one character, in font sizes (sans-serif digits are about 0.55; a little to spare)."""


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float
    height: float

    def overlaps(self, other: Box) -> bool:
        return (self.x < other.x + other.width and other.x < self.x + self.width
                and self.y < other.y + other.height and other.y < self.y + self.height)


@dataclass(frozen=True)
class Label:
    """A piece of chart text where it is drawn: ``x``/``y`` are the SVG anchor point and baseline."""

    text: str
    x: float
    y: float
    size: int = 11
    anchor: str = "middle"
    fill: str = "#1b1f24"
    vertical: bool = False
    """Turned 90° anticlockwise about (x, y), centred there (the "unknown" in a hatched bar)."""
    halo: bool = False
    """A white outline behind the letters, so a label stays readable over a line or a bar."""
    weight: str = ""

    @property
    def width(self) -> float:
        return len(self.text) * self.size * CHAR_WIDTH

    @property
    def box(self) -> Box:
        """The space the text takes (estimated from its length and font size)."""
        if self.vertical:
            return Box(self.x - self.size / 2, self.y - self.width / 2, self.size, self.width)
        left = {"start": self.x, "middle": self.x - self.width / 2, "end": self.x - self.width}[self.anchor]
        return Box(left, self.y - self.size * 0.8, self.width, self.size)

    def svg(self) -> str:
        attrs = f'x="{_num(self.x)}" y="{_num(self.y)}"'
        if self.anchor != "start":
            attrs += f' text-anchor="{self.anchor}"'
        attrs += f' font-size="{self.size}" fill="{self.fill}"'
        if self.weight:
            attrs += f' font-weight="{self.weight}"'
        if self.vertical:
            attrs += f' dominant-baseline="central" transform="rotate(-90 {_num(self.x)} {_num(self.y)})"'
        if self.halo:
            attrs += ' stroke="#ffffff" stroke-width="3" paint-order="stroke" stroke-linejoin="round"'
        return f"<text {attrs}>{esc(self.text)}</text>"


def overlapping(labels: Sequence[Label]) -> list[tuple[Label, Label]]:
    """Every pair of labels whose boxes overlap (none, in a chart this module drew)."""
    return [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:] if a.box.overlaps(b.box)]


@dataclass(frozen=True)
class Chart:
    svg: str
    labels: tuple[Label, ...]
    """Every text the SVG shows, with its box."""
    note: str = ""
    """What the chart left out, for its caption (e.g. value labels that did not fit)."""


def _every(slot: float, widths: Sequence[float], gap: float = 8.0) -> int:
    """Label every n-th slot so that neighbouring labels keep ``gap`` apart."""
    widest = max(widths, default=0.0)
    return max(1, math.ceil((widest + gap) / slot)) if slot > 0 else 1


_PATTERN = (
    '<defs><pattern id="{id}" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
    '<rect width="6" height="6" fill="#eaeef2"/><line x1="0" y1="0" x2="0" y2="6" stroke="#8c959f" '
    'stroke-width="2"/></pattern></defs>'
)


def _gridlines(y_max: int, y: Callable[[float], float], x0: int, x1: int) -> tuple[list[str], list[Label]]:
    """A chart's horizontal grid lines, and their values as labels on the left."""
    parts, labels = [], []
    for tick in _ticks(y_max):
        parts.append(f'<line x1="{x0}" x2="{x1}" y1="{_num(y(tick))}" y2="{_num(y(tick))}" stroke="#d0d7de" '
                     'stroke-width="1"/>')
        labels.append(Label(str(tick), x0 - 6, y(tick) + 4, anchor="end", fill="#57606a"))
        parts.append(labels[-1].svg())
    return parts, labels


def _installed_labels(installed: int, line_y: float, x: float, top: float, bottom: float) -> list[Label]:
    """"installed" and the count, in the right margin at the line's height (nothing else is drawn there)."""
    y = min(max(line_y - 3, top + 9), bottom - 14)
    return [Label("installed", x, y, anchor="start", fill="#b42318"),
            Label(str(installed), x, y + 13, size=12, anchor="start", fill="#b42318", weight="600")]


def windows_chart_layout(report: Report) -> Chart:
    """Distinct users per window as bars; the installed count as a line; unknown windows hatched, never 0."""
    windows = report.windows
    if not windows:
        return Chart('<p class="status-unknown">No windows: the inputs cover no time.</p>', ())
    width, height = 960, 300
    left, right, top, bottom = 48, 76, 16, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [w.users for w in windows if w.users is not None]
    top_value = max([*values, report.installed or 0, report.estimated or 0, 1])
    y_max = _nice_max(top_value * 1.15)
    slot = plot_w / len(windows)
    bar = max(min(slot * 0.7, 80), 1.0)

    def y(value: float) -> float:
        return top + plot_h - value / y_max * plot_h

    # value labels over the bars, smaller when they do not fit the slot, left out when even that does not fit
    texts = [("\u2265" if w.status == STATUS_PARTIAL else "") + str(w.users) for w in windows if w.users is not None]
    value_size = next((size for size in (11, 9) if max((len(t) for t in texts), default=0) * size * CHAR_WIDTH + 2
                       <= slot), 0)
    note = "" if value_size or not texts else "bars too narrow for their numbers: see the table below"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="windows-chart-title windows-chart-desc">',
        '<title id="windows-chart-title">Distinct RDP users per window</title>',
        f'<desc id="windows-chart-desc">{len(windows)} windows; {sum(w.users is None for w in windows)} unknown '
        "(no log covers them, drawn hatched); the red line is the installed Per User CAL count.</desc>",
        _PATTERN.format(id="hatch-unknown"),
    ]
    grid, labels = _gridlines(y_max, y, left, width - right)
    parts.extend(grid)
    axis_labels = [Label(w.label, 0, 0) for w in windows]
    every = _every(slot, [label.width for label in axis_labels])
    for index, w in enumerate(windows):
        x = left + slot * index + (slot - bar) / 2
        centre = left + slot * index + slot / 2
        tooltip = (f"{w.label}: " + ("unknown (no logs)" if w.users is None else f"{w.users} users") +
                   f", {w.status}, {w.sessions} sessions")
        if w.users is None:
            inside = Label("unknown", centre, top + plot_h / 2, fill="#57606a", vertical=True, halo=True)
            shown = [inside] if inside.box.width <= slot and inside.box.height <= plot_h else []
            parts.append(
                f'<g class="bar bar-unknown" data-window="{esc(w.label)}"><title>{esc(tooltip)}</title>'
                f'<rect x="{_num(x)}" y="{top}" width="{_num(bar)}" height="{plot_h}" fill="url(#hatch-unknown)" '
                f'stroke="#8c959f" stroke-dasharray="3 2"/>{"".join(item.svg() for item in shown)}</g>'
            )
        else:
            fill = "#2f6fb3" if w.status == STATUS_COMPLETE else "#8fb5dd"
            over = report.installed is not None and w.users > report.installed
            stroke = ' stroke="#b42318" stroke-width="2"' if over else ""
            prefix = "\u2265" if w.status == STATUS_PARTIAL else ""
            shown = [Label(f"{prefix}{w.users}", centre, y(w.users) - 4, size=value_size, halo=True)] \
                if value_size else []
            parts.append(
                f'<g class="bar bar-{esc(w.status)}" data-window="{esc(w.label)}"><title>{esc(tooltip)}</title>'
                f'<rect x="{_num(x)}" y="{_num(y(w.users))}" width="{_num(bar)}" '
                f'height="{_num(plot_h - (y(w.users) - top))}" fill="{fill}"{stroke}/>'
                f'{"".join(item.svg() for item in shown)}</g>'
            )
        labels.extend(shown)
        if index % every == 0:
            axis = Label(w.label, centre, top + plot_h + 16)
            labels.append(axis)
            parts.append(axis.svg())
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" '
                 'stroke="#57606a"/>')
    if report.installed is not None:
        yi = _num(y(report.installed))
        installed = _installed_labels(report.installed, y(report.installed), width - right + 6, top, top + plot_h)
        labels.extend(installed)
        parts.append(f'<g class="installed"><line x1="{left}" x2="{width - right}" y1="{yi}" y2="{yi}" '
                     'stroke="#b42318" stroke-width="2" stroke-dasharray="6 4"/>'
                     + "".join(item.svg() for item in installed) + "</g>")
    legend_y = height - 14
    legend = []
    cursor = float(left)
    swatches = []
    for key, text in (("complete", "complete"), ("partial", "partial (lower bound, \u2265)"),
                      ("unknown", "unknown (no logs)"), ("installed", "installed")):
        if key == "installed":
            swatches.append(f'<line x1="{_num(cursor)}" x2="{_num(cursor + 20)}" y1="{legend_y - 4}" '
                            f'y2="{legend_y - 4}" stroke="#b42318" stroke-width="2" stroke-dasharray="6 4"/>')
            item = Label(text, cursor + 26, legend_y, anchor="start")
        else:
            fill = {"complete": 'fill="#2f6fb3"', "partial": 'fill="#8fb5dd"',
                    "unknown": 'fill="url(#hatch-unknown)" stroke="#8c959f"'}[key]
            swatches.append(f'<rect x="{_num(cursor)}" y="{legend_y - 9}" width="10" height="10" {fill}/>')
            item = Label(text, cursor + 14, legend_y, anchor="start")
        legend.append(item)
        cursor = item.box.x + item.box.width + 18
    labels.extend(legend)
    parts.append('<g class="legend">' + "".join(swatches) + "".join(item.svg() for item in legend) + "</g>")
    parts.append("</svg>")
    return Chart("\n".join(parts), tuple(labels), note)


def curve_chart_layout(report: Report) -> Chart:
    """The licence-server "as of" view per day as a line, with the installed count and the peak marked."""
    curve = report.curve
    if not curve:
        return Chart('<p class="status-unknown">No daily curve: there is no RDP evidence to estimate from.</p>', ())
    width, height = 960, 240
    left, right, top, bottom = 48, 76, 20, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    y_max = _nice_max(max([p.users for p in curve] + [report.installed or 0, 1]) * 1.15)
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
    grid, labels = _gridlines(y_max, y, left, width - right)
    parts.extend(grid)
    month_starts = [p.day for p in curve if p.day.day == 1]
    month_w = Label("2024-01", 0, 0).width
    every = _every(plot_w / max(span / 30.4, 1), [month_w], gap=10)
    for day in month_starts[::every]:
        tick = Label(day.strftime("%Y-%m"), x(day), top + plot_h + 15)
        if tick.box.x < left - 4 or tick.box.x + tick.box.width > width - right + 4:
            continue
        parts.append(f'<line x1="{_num(x(day))}" x2="{_num(x(day))}" y1="{top}" y2="{top + plot_h}" '
                     'stroke="#eaeef2"/>')
        labels.append(tick)
        parts.append(tick.svg())
    points = " ".join(f"{_num(x(p.day))},{_num(y(p.users))}" for p in curve)
    parts.append(f'<polyline class="curve" points="{points}" fill="none" stroke="#2f6fb3" stroke-width="2" '
                 'stroke-linejoin="round"/>')
    if report.installed is not None:
        yi = _num(y(report.installed))
        installed = _installed_labels(report.installed, y(report.installed), width - right + 6, top, top + plot_h)
        labels.extend(installed)
        parts.append(f'<g class="installed"><line x1="{left}" x2="{width - right}" y1="{yi}" y2="{yi}" '
                     'stroke="#b42318" stroke-width="2" stroke-dasharray="6 4"/>'
                     + "".join(item.svg() for item in installed) + "</g>")
    if report.peak_day is not None and report.peak_estimated is not None:
        px, py = x(report.peak_day), y(report.peak_estimated)
        peak = Label(f"peak {report.peak_estimated}", px, py - 8, halo=True)
        half = peak.width / 2
        peak = Label(peak.text, min(max(px, left + half), width - right - half), max(py - 8, top + 9), halo=True)
        labels.append(peak)
        parts.append(f'<g class="peak"><title>peak {report.peak_estimated} on {esc(report.peak_day)}</title>'
                     f'<circle cx="{_num(px)}" cy="{_num(py)}" r="4" fill="#1b1f24"/>{peak.svg()}</g>')
    ends = [Label(str(curve[0].day), left, height - 4, anchor="start", fill="#57606a"),
            Label(str(curve[-1].day), width - right, height - 4, anchor="end", fill="#57606a")]
    if ends[0].box.overlaps(ends[1].box):  # one day: one date
        ends = ends[:1]
    labels.extend(ends)
    parts.extend(item.svg() for item in ends)
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#57606a"/>')
    parts.append("</svg>")
    return Chart("\n".join(parts), tuple(labels))


def _whole(report: Report) -> dict[str, bool]:
    """Per host key: complete in every window (no window where its logs are partial or missing)."""
    seen: dict[str, bool] = {}
    for w in report.windows:
        for host in w.hosts_complete:
            seen.setdefault(host, True)
        for host in (*w.hosts_partial, *w.hosts_unknown):
            seen[host] = False
    return seen


def coverage_chart_layout(report: Report) -> Chart:
    """Per host and log: covered time as bars on one time axis, holes between exports hatched, log clears marked.

    With many logs only those worth a look are drawn (a hole, a clear, a record-id gap, or a window their host does
    not cover completely); the caption counts the others, and the table lists every one.
    """
    every_row: Sequence[ChannelCoverage] = sorted(report.coverage, key=lambda c: (host_key(c.host), c.channel.lower()))
    if not every_row:
        return Chart('<p class="status-unknown">No log coverage: no event log was read.</p>', ())
    rows = list(every_row)
    note = ""
    if len(rows) > COVERAGE_CHART_ROWS:
        whole = _whole(report)
        rows = [c for c in every_row if len(c.intervals) > 1 or c.cleared or c.record_id_gaps
                or not whole.get(host_key(c.host), True)]
        hidden = len(every_row) - len(rows)
        shown_hosts = len({host_key(c.host) for c in every_row}) - len({host_key(c.host) for c in rows})
        if len(rows) > COVERAGE_CHART_ROWS:
            hidden += len(rows) - COVERAGE_CHART_ROWS
            rows = rows[:COVERAGE_CHART_ROWS]
        note = (f"{hidden} logs not drawn ({shown_hosts} hosts with every window complete and no hole or clear"
                f"{'; more with problems than fit: see the table' if hidden > len(every_row) - len(rows) else ''})")
        if not rows:
            return Chart(f'<p>Every log covers its host\u2019s windows completely, without holes or clears '
                         f"({len(every_row)} logs on {shown_hosts} hosts).</p>", (), "")
    tz = zone(report.tz)
    starts = [c.first for c in every_row] + ([report.period_start] if report.period_start else [])
    ends = [c.last for c in every_row] + ([report.period_end] if report.period_end else [])
    t0, t1 = min(_ts(s) for s in starts), max(_ts(e) for e in ends)
    span = max(t1 - t0, 1.0)
    label_w, right, top, row_h = 200, 16, 24, 26
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
    labels: list[Label] = []
    for window in report.windows:
        if window.start.astimezone(timezone.utc).timestamp() > t0:
            wx = _num(x(window.start))
            parts.append(f'<line x1="{wx}" x2="{wx}" y1="{top - 4}" y2="{top + row_h * len(rows)}" '
                         'stroke="#eaeef2"/>')
    for index, c in enumerate(rows):
        y = top + index * row_h
        text = f"{host_key(c.host)} {_short_channel(c.channel)}"
        limit = int((label_w - 16) / (11 * CHAR_WIDTH))
        label = Label(text if len(text) <= limit else text[:limit - 1] + "\u2026", label_w - 8, y + 17, anchor="end")
        labels.append(label)
        parts.append(label.svg().replace(">", f"><title>{esc(c.host)} {esc(c.channel)}</title>", 1))
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
    ends_labels = [Label(_local(start_dt, tz), label_w, axis_y, anchor="start", fill="#57606a"),
                   Label(_local(end_dt, tz), width - right, axis_y, anchor="end", fill="#57606a")]
    labels.extend(ends_labels)
    parts.extend(item.svg() for item in ends_labels)
    parts.append("</svg>")
    return Chart("\n".join(parts), tuple(labels), note)


def windows_chart(report: Report) -> str:
    return windows_chart_layout(report).svg


def curve_chart(report: Report) -> str:
    return curve_chart_layout(report).svg


def coverage_chart(report: Report) -> str:
    return coverage_chart_layout(report).svg


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
    shown = _day(moment, tz) if day or (local.hour, local.minute, local.second) == (0, 0, 0) else _local(moment, tz)
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


def _users_table(report: Report, tz: ZoneInfo) -> Table:
    with_directory = any(u.full_name or u.in_directory is not None for u in report.users)
    columns = [Column("user", "User")]
    if with_directory:
        columns.append(Column("name", "Name (directory)"))
    columns += [
        Column("key", "Key / SID"), Column("first", "First seen", "date"), Column("last", "Last seen", "date"),
        Column("sessions", "Sessions", "number"), Column("hosts", "Hosts"), Column("evidence", "Evidence"),
        Column("expiry", "CAL expiry (est.)", "date"),
        Column("windows", "Windows", "number"), Column("flags", "Flags"),
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
            Cell(str(len(u.windows)), "num", str(len(u.windows)), ", ".join(u.windows)),
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
        Column("verdict", "Verdict"), Column("hosts", "Hosts"),
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
            _cell(w.verdict, cls=_verdict_class(w.verdict) + " nowrap"),
            _cell(summary.text, sort=f"{len(w.hosts_complete):06d}", title=summary.detail or None,
                  cls="hosts" if not summary.detail else "hosts status-partial"),
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
        cleared = ", ".join(_local(t, tz) for t in c.cleared)
        rows.append(Row((
            _cell(host_key(c.host), title=c.host), _cell(_short_channel(c.channel), title=c.channel),
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
    as_of = _day(report.as_of, tz) if report.as_of else "-"
    peak = f"{report.peak_estimated} on {report.peak_day}" if report.peak_estimated is not None else "-"
    busiest = "unknown" if report.max_window_users is None else str(report.max_window_users)
    utilisation = "-" if report.utilisation is None else f"{report.utilisation:.0%}"
    coverage = "complete" if report.coverage_complete else "incomplete"
    period = "-"
    if report.period_start and report.period_end:  # the end is exclusive: show the last day
        last_day = report.period_end.astimezone(tz).date() - timedelta(days=1)
        period = f"{_day(report.period_start, tz)} \u2013 {last_day.isoformat()}"
    source = ""
    if report.installed is not None:
        source = f"from {report.installed_source}" if report.installed_source else "source not recorded"
    return (
        Headline("Verdict", report.verdict.upper(), _verdict_class(report.verdict)),
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
        failed_inputs=sum(1 for i in report.inputs if i.error),
    )
