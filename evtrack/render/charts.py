"""The report's charts as hand-made inline SVG, placed by geometry a test can check.

Every text a chart draws is a :class:`Label` with an estimated box, and the SVG is drawn from those same labels, so
a test can assert that no two overlap (value labels, the installed-count label, axis labels at any number of
windows). Text from the logs is escaped with :func:`esc`. The output depends only on the report.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

from evtrack.identity import host_key
from evtrack.render.words import short_channel
from evtrack.report import CAL_VALIDITY_DAYS, STATUS_COMPLETE, STATUS_PARTIAL, ChannelCoverage, Report
from evtrack.windows import zone

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


def local_text(moment: datetime | None, tz: ZoneInfo, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return "-" if moment is None else moment.astimezone(tz).strftime(fmt)


def local_day(moment: datetime | None, tz: ZoneInfo) -> str:
    return local_text(moment, tz, "%Y-%m-%d")


def timestamp(moment: datetime) -> float:
    return moment.astimezone(timezone.utc).timestamp()


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


def verdict_class(verdict: str) -> str:
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


def _installed_line(installed: int, line_y: float, left: float, right: float, top: float, plot_h: float
                    ) -> tuple[list[Label], str]:
    """The installed count as a dashed line across the plot, labelled in the right margin (both charts)."""
    labels = _installed_labels(installed, line_y, right + 6, top, top + plot_h)
    yi = _num(line_y)
    svg = (f'<g class="installed"><line x1="{left}" x2="{right}" y1="{yi}" y2="{yi}" '
           'stroke="#b42318" stroke-width="2" stroke-dasharray="6 4"/>' + "".join(item.svg() for item in labels)
           + "</g>")
    return labels, svg


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
        installed, svg = _installed_line(report.installed, y(report.installed), left, width - right, top, plot_h)
        labels.extend(installed)
        parts.append(svg)
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
        installed, svg = _installed_line(report.installed, y(report.installed), left, width - right, top, plot_h)
        labels.extend(installed)
        parts.append(svg)
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
    t0, t1 = min(timestamp(s) for s in starts), max(timestamp(e) for e in ends)
    span = max(t1 - t0, 1.0)
    label_w, right, top, row_h = 200, 16, 24, 26
    width = 960
    plot_w = width - label_w - right
    height = top + row_h * len(rows) + 30

    def x(moment: datetime) -> float:
        return label_w + (timestamp(moment) - t0) / span * plot_w

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
        text = f"{host_key(c.host)} {short_channel(c.channel)}"
        limit = int((label_w - 16) / (11 * CHAR_WIDTH))
        label = Label(text if len(text) <= limit else text[:limit - 1] + "\u2026", label_w - 8, y + 17, anchor="end")
        labels.append(label)
        parts.append(label.svg().replace(">", f"><title>{esc(c.host)} {esc(c.channel)}</title>", 1))
        parts.append(f'<rect x="{label_w}" y="{y + 5}" width="{plot_w}" height="{row_h - 10}" fill="#f6f8fa"/>')
        intervals = c.intervals or ((c.first, c.last),)
        for start, end in intervals:
            parts.append(f'<rect class="covered" x="{_num(x(start))}" y="{y + 5}" '
                         f'width="{_num(max(x(end) - x(start), 1.5))}" height="{row_h - 10}" fill="#2f6fb3">'
                         f"<title>{esc(local_text(start, tz))} \u2013 {esc(local_text(end, tz))}</title></rect>")
        for (_, hole_start), (hole_end, _) in pairwise(intervals):
            parts.append(f'<rect class="hole" x="{_num(x(hole_start))}" y="{y + 5}" '
                         f'width="{_num(max(x(hole_end) - x(hole_start), 1.5))}" height="{row_h - 10}" '
                         'fill="url(#hatch-hole)">'
                         f"<title>hole: {esc(local_text(hole_start, tz))} \u2013 "
                         f"{esc(local_text(hole_end, tz))}</title></rect>")
        for cleared in c.cleared:
            cx = _num(x(cleared))
            parts.append(f'<g class="clear"><title>log cleared {esc(local_text(cleared, tz))}</title>'
                         f'<line x1="{cx}" x2="{cx}" y1="{y + 1}" y2="{y + row_h - 1}" stroke="#cf222e" '
                         f'stroke-width="3"/><text x="{cx}" y="{y + 4}" text-anchor="middle" font-size="10" '
                         'fill="#cf222e">\u2715</text></g>')
    axis_y = top + row_h * len(rows) + 16
    start_dt = datetime.fromtimestamp(t0, timezone.utc)
    end_dt = datetime.fromtimestamp(t1, timezone.utc)
    ends_labels = [Label(local_text(start_dt, tz), label_w, axis_y, anchor="start", fill="#57606a"),
                   Label(local_text(end_dt, tz), width - right, axis_y, anchor="end", fill="#57606a")]
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
