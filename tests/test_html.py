"""The HTML report: escaping of hostile names, the CSP, no external resources, unknown windows marked, determinism;
and the real thing in headless Chromium (skipped when no chromium binary is found)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from dataclasses import replace
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from evtrack.catalogue import GATEWAY
from evtrack.coverage import ChannelSpan
from evtrack.events import LSM as LSM_CHANNEL
from evtrack.events import RCM, SECURITY, classify
from evtrack.identity import Exclusions
from evtrack.render.charts import Label, curve_chart_layout, overlapping, windows_chart_layout
from evtrack.render.html import CSP, SCRIPT, STYLE, report_html
from evtrack.render.words import EVIDENCE_WORDS, evidence_words, host_summary
from evtrack.report import InputFile, Report
from evtrack.usage import ReportSettings, build_report
from tests.factories import CREATED, SID_A, SID_B, ev, lsm21, source, span, us, utc
from tests.fleet import fleet_report

SCRIPT_NAME = "<script>alert(1)</script>"
IMG_NAME = '"><img src=x onerror=alert(1)>'
SID_C = "S-1-5-21-10-20-30-1106"
LSM = "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational"


def channel_span(channel: str, *intervals: tuple[datetime, datetime], cleared: tuple[datetime, ...] = (),
                 host: str = "RDSH01.contoso.local") -> ChannelSpan:
    return ChannelSpan(host, channel, us(intervals[0][0]), us(intervals[-1][1]), 100, 1, 100, (),
                       tuple(us(t) for t in cleared), tuple((us(a), us(b)) for a, b in intervals))


def hostile_report(installed: int | None = 1) -> Report:
    """Jan and Mar covered, Feb not covered at all (unknown); hostile names in users, hosts, inputs."""
    rows = [
        ev(utc(2024, 1, 10, 9), SCRIPT_NAME, sid=SID_A),
        ev(utc(2024, 1, 11, 9), IMG_NAME, sid=SID_B, domain="<b>EVIL</b>"),
        lsm21(utc(2024, 1, 11, 9, 0, 2), IMG_NAME, domain="<b>EVIL</b>"),
        ev(utc(2024, 3, 5, 9), "carol", sid=SID_C),
        ev(utc(2024, 3, 6, 9), "carol", sid=SID_C),
        ev(utc(2024, 3, 7, 9), "carol", sid=SID_C),
        ev(utc(2024, 3, 8, 9), "adm-<i>x</i>", sid="S-1-5-21-10-20-30-500"),
    ]
    # Berlin months: coverage ends 1 us before local midnight, which counts as covering the whole day
    first, last = utc(2023, 12, 31, 23), utc(2024, 3, 31, 21, 59, 59) + timedelta(microseconds=999_999)
    hole_start, hole_end = utc(2024, 1, 31, 22, 59, 59) + timedelta(microseconds=999_999), utc(2024, 2, 29, 23)
    coverage = [
        channel_span("Security", (first, hole_start), (hole_end, last), cleared=(utc(2024, 3, 15),)),
        channel_span(LSM, (first, hole_start), (hole_end, last)),
    ]
    src = source(rows, coverage)
    src = replace(src, inputs=(
        InputFile("exports/<svg onload=alert(1)>.evtx", "", "", 0, 0, (), "not an event log: <script>x</script>"),
        InputFile("exports/ok.evtx", "evtx", "evtx", 10, 2, ("bad chunk 3 <i>",), None),
    ))
    settings = ReportSettings(installed=installed, tz="Europe/Berlin", created_at=CREATED,
                              exclusions=Exclusions.build(sids=["S-1-5-21-10-20-30-500"]))
    return build_report(src, settings)


class Collector(HTMLParser):
    """Every element with its attributes, and all text, as the browser's tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.scripts.append(data)
        elif self._in == "style":
            self.styles.append(data)
        else:
            self.text.append(data)


def parse(document: str) -> Collector:
    collector = Collector()
    collector.feed(document)
    collector.close()
    return collector


def csp_hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


# -- the document ---------------------------------------------------------------------------------------------


def test_hostile_names_are_text_not_markup() -> None:
    document = report_html(hostile_report())
    page = parse(document)
    tags = [tag for tag, _ in page.elements]
    assert tags.count("script") == 1 and page.scripts == [SCRIPT]
    assert "img" not in tags and "b" not in tags and "i" not in tags
    assert not [attrs for _, attrs in page.elements if any(name.startswith("on") for name in attrs)]
    text = "".join(page.text)
    assert SCRIPT_NAME in text
    assert IMG_NAME in text
    assert "<b>evil</b>" in text.lower()
    assert "<svg onload=alert(1)>" in text and "not an event log: <script>x</script>" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document


def test_csp_allows_only_the_inline_script_and_style() -> None:
    document = report_html(hostile_report())
    page = parse(document)
    metas = [a for t, a in page.elements if t == "meta" and (a.get("http-equiv") or "").lower()
             == "content-security-policy"]
    assert len(metas) == 1
    policy = metas[0]["content"] or ""
    assert policy == CSP
    assert "default-src 'none'" in policy
    assert f"script-src '{csp_hash(SCRIPT)}'" in policy
    assert f"style-src '{csp_hash(STYLE)}'" in policy
    assert "img-src data:" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert page.styles == [STYLE] and page.scripts == [SCRIPT]
    # the CSP meta comes before any style or script
    tags = [t if t != "meta" or a is not metas[0] else "csp" for t, a in page.elements]
    assert tags.index("csp") < tags.index("style") < tags.index("script")


def test_no_external_resources() -> None:
    document = report_html(hostile_report())
    page = parse(document)
    for tag, attrs in page.elements:
        assert "src" not in attrs and "href" not in attrs, tag
        for name, value in attrs.items():
            if name != "xmlns":
                assert "http:" not in (value or "") and "https:" not in (value or ""), (tag, name)
    without_svg_ns = document.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "http://" not in without_svg_ns and "https://" not in without_svg_ns
    assert re.findall(r"url\((?!#)", document) == []
    assert "@import" not in document and "@font-face" not in document


def test_svg_charts_are_well_formed_xml() -> None:
    document = report_html(hostile_report())
    charts = re.findall(r"<svg .*?</svg>", document, flags=re.DOTALL)
    assert len(charts) == 3
    for chart in charts:
        ET.fromstring(chart)


def test_unknown_window_is_marked_never_a_zero_bar() -> None:
    report = hostile_report()
    assert [(w.label, w.status) for w in report.windows] == [
        ("2024-01", "complete"), ("2024-02", "unknown"), ("2024-03", "complete")]
    document = report_html(report)
    svg = ET.fromstring(re.findall(r"<svg .*?</svg>", document, flags=re.DOTALL)[0])
    ns = {"s": "http://www.w3.org/2000/svg"}
    bars = {g.get("data-window"): g for g in svg.iterfind(".//s:g", ns) if g.get("data-window")}
    unknown = bars["2024-02"]
    assert "bar-unknown" in (unknown.get("class") or "")
    rect = unknown.find("s:rect", ns)
    assert rect is not None and float(rect.get("height") or 0) > 100 and rect.get("fill") == "url(#hatch-unknown)"
    assert "unknown" in "".join(unknown.itertext())
    assert "bar-complete" in (bars["2024-01"].get("class") or "")
    # the windows table says "unknown", not 0
    row = re.search(r'<tr class="window-unknown">(.*?)</tr>', document)
    assert row is not None and ">unknown<" in row.group(1) and ">0<" not in row.group(1)


def test_installed_line_holes_and_clears_are_drawn() -> None:
    document = report_html(hostile_report(installed=1))
    installed = re.search(r'<g class="installed">(.*?)</g>', document)
    assert installed is not None
    assert [t.text for t in ET.fromstring(f'<g xmlns="http://www.w3.org/2000/svg">{installed.group(1)}</g>')
            .iter("{http://www.w3.org/2000/svg}text")] == ["installed", "1"]
    assert document.count('class="hole"') == 2  # Security and LSM both have the February hole
    assert document.count('class="clear"') == 1
    assert 'class="installed"' not in report_html(hostile_report(installed=None))


def test_headline_and_sections() -> None:
    report = hostile_report(installed=1)
    page = parse(report_html(report))
    text = " ".join(page.text)
    assert report.verdict == "over by 2"  # the licence-server view peaks at 3 users against 1 installed
    for expected in ("OVER BY 2", "Per User CALs installed", "Estimated issued as of 2024-03-31", "incomplete",
                     "All trusted domains", "Europe/Berlin", "2024-06-01 00:00 UTC", "Not counted (1)",
                     "excluded by SID S-1-5-21-10-20-30-500", "Users (3)", "bad chunk 3 <i>"):
        assert expected in text, expected
    html_element = page.elements[0]
    assert html_element == ("html", {"lang": "en"})
    assert [t for t, _ in page.elements].count("title") >= 1
    headers = [a for t, a in page.elements if t == "th"]
    assert headers and all(a.get("scope") == "col" for a in headers)


def test_output_is_deterministic_and_survives_a_json_round_trip() -> None:
    report = hostile_report()
    assert report_html(report) == report_html(hostile_report())
    assert report_html(Report.from_dict(json.loads(json.dumps(report.to_dict())))) == report_html(report)


def test_empty_report_renders() -> None:
    report = build_report(source([], []), ReportSettings(created_at=CREATED))
    document = report_html(report)
    assert "No windows" in document and "No daily curve" in document and "No log coverage" in document
    parse(document)


def test_many_windows_thin_out_labels() -> None:
    rows = [ev(utc(2024, 1, 1, 9) + timedelta(days=7 * i), record_id=i + 1) for i in range(52)]
    report = build_report(source(rows, [span(utc(2024, 1, 1), utc(2024, 12, 29))]),
                          ReportSettings(window="week", installed=1, created_at=CREATED))
    document = report_html(report)
    svg = re.findall(r"<svg .*?</svg>", document, flags=re.DOTALL)[0]
    ET.fromstring(svg)
    assert svg.count('class="bar ') == len(report.windows)


# -- at fleet size ---------------------------------------------------------------------------------------------


def section(document: str, table_id: str) -> str:
    match = re.search(rf'<table id="table-{table_id}".*?</table>', document, flags=re.DOTALL)
    assert match is not None
    return match.group(0)


def test_a_window_summarises_its_hosts_and_names_only_the_incomplete_ones() -> None:
    report = fleet_report(hosts=20, windows=12, users=10)
    document = report_html(report)
    windows = section(document, "windows")
    assert windows.count("20/20 complete") == 10
    assert "19/20 complete; partial: rdsh20<" in windows and "19/20 complete; no logs: rdsh19<" in windows
    assert "rdsh05" not in windows  # complete everywhere: counted, not named
    # the whole page names a host a handful of times (coverage table and chart, a few users), not per window
    text = " ".join(parse(document).text)
    assert 1 <= text.count("rdsh05") <= 6 < len(report.windows)
    assert document.count("rdsh05") <= 8


def test_host_summary_words() -> None:
    assert host_summary(["a", "b"], [], []).text == "2/2 complete"
    many = host_summary(["a"], ["p1", "p2", "p3", "p4", "p5"], ["u1"])
    assert many.text == "1/7 complete; partial: p1, p2, p3 +2 more; no logs: u1"
    assert many.detail == "partial: p1, p2, p3, p4, p5; no logs: u1"
    assert host_summary([], [], ["a", "b"]).text == "no logs from any of 2 hosts"
    assert host_summary([], [], []).text == "no hosts"


CHART_CASES = [
    pytest.param(dict(windows=1), id="1-month"),
    pytest.param(dict(windows=12), id="12-months"),
    pytest.param(dict(windows=36, unknown_window=5), id="36-months"),
    pytest.param(dict(windows=52, kind="week"), id="52-weeks"),
    pytest.param(dict(windows=52, kind="week", users=900, hosts=200), id="52-weeks-900-users"),
]


def svg_texts(svg: str) -> list[str]:
    return ["".join(t.itertext()) for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")]


@pytest.mark.parametrize("shape", CHART_CASES)
@pytest.mark.parametrize("installed", [None, 20, "at-the-top"])
def test_chart_labels_do_not_overlap(shape: dict[str, object], installed: object) -> None:
    plain = fleet_report(**shape, installed=None)  # type: ignore[arg-type]
    top = max(w.users or 0 for w in plain.windows)
    count = None if installed is None else top if installed == "at-the-top" else int(str(installed))
    report = fleet_report(**shape, installed=count)  # type: ignore[arg-type]
    for layout in (windows_chart_layout(report), curve_chart_layout(report)):
        assert overlapping(layout.labels) == []
        # every text the chart draws is one of the measured labels, and each stays inside the chart
        assert sorted(svg_texts(layout.svg)) == sorted(label.text for label in layout.labels)
        for label in layout.labels:
            assert label.box.x >= 0 and label.box.x + label.box.width <= 960, label
    chart = windows_chart_layout(report)
    texts = [label.text for label in chart.labels]
    assert texts.count("installed") == (1 if count is None else 2)  # the legend, and the line's own label
    axis = [w.label for w in report.windows if w.label in texts]
    assert axis and axis[0] == report.windows[0].label  # the first window is always labelled
    if len(report.windows) <= 12:
        assert axis == [w.label for w in report.windows]


def test_label_boxes_measure_text() -> None:
    label = Label("installed", 100, 50, size=10, anchor="end")
    assert label.box.x + label.box.width == 100 and label.box.width == pytest.approx(9 * 10 * 0.62)
    assert Label("x", 0, 50).box.overlaps(Label("y", 3, 52).box)
    assert not Label("x", 0, 50).box.overlaps(Label("y", 0, 70).box)
    vertical = Label("unknown", 100, 100, vertical=True)
    assert vertical.box.width == 11 and vertical.box.height == pytest.approx(7 * 11 * 0.62)


def test_every_evidence_code_has_words() -> None:
    codes = {
        classify(channel, event_id, logon_type, address, session).reason
        for channel in (SECURITY, LSM_CHANNEL, RCM, GATEWAY)
        for event_id in (4624, 4634, 4778, 4779, 21, 24, 25, 1149, 302, 303)
        for logon_type in (None, 2, 7, 10, 12)
        for address in (None, "127.0.0.1", "LOCAL", "10.1.2.3")
        for session in (None, "Console", "RDP-Tcp#3")
        if classify(channel, event_id, logon_type, address, session).rdp
    }
    assert codes == set(EVIDENCE_WORDS)
    assert evidence_words("4624_lt7_remote_ip").startswith("Unlock or reconnect from another computer")
    assert evidence_words("new_code_x") == "new_code_x"


def test_users_table_shows_directory_names_compact_sids_and_evidence_in_words() -> None:
    report = fleet_report(hosts=3, windows=3, users=10)
    document = report_html(report)
    users = section(document, "users")
    assert ">Name (directory)<" in users
    assert ">Jürgen Groß 1<" in users and ">Zoë Müller 6<" in users
    sid = report.users[1].sid
    assert sid is not None
    assert f'<span class="clip" title="{sid}">{sid}</span>' in users  # one line, cut, full value on hover
    user = next(u for u in report.users if len(u.evidence) > 1)
    row = next(r for r in users.split("<tr>") if f">{user.display_name}<" in r)
    words = [evidence_words(code) for code in user.evidence]
    assert f"<summary>{words[0]} +{len(words) - 1}</summary>" in row
    for code, text in zip(user.evidence, words, strict=True):
        assert f'<li title="{code}">{text}</li>' in row
    assert ".clip { display: inline-block; max-width: 7rem; overflow: hidden; text-overflow: ellipsis; " \
        "white-space: nowrap;" in STYLE
    # without a directory export the column is left out
    assert ">Name (directory)<" not in report_html(fleet_report(hosts=3, windows=3, users=10, directory=False))


def words_of(document: str) -> str:
    return " ".join(" ".join(parse(document).text).split())


def test_headline_says_where_the_installed_count_came_from() -> None:
    page = words_of(report_html(fleet_report(installed=25, installed_source="key packs kp.csv (2019)")))
    assert "Per User CALs installed 25 from key packs kp.csv (2019) Estimated" in page
    page = words_of(report_html(fleet_report(installed=25, installed_source=None)))
    assert "Per User CALs installed 25 source not recorded Estimated" in page
    page = words_of(report_html(fleet_report(installed=None)))
    assert "Per User CALs installed not set Estimated" in page


def test_coverage_chart_at_fleet_size_draws_the_logs_worth_a_look() -> None:
    report = fleet_report(hosts=200, windows=12, users=50)
    document = report_html(report)
    chart = re.findall(r"<svg .*?</svg>", document, flags=re.DOTALL)[2]
    drawn = sorted({t.split()[0] for t in re.findall(r"</title>([^<]+)</text>", chart)})
    assert drawn == ["rdsh01", "rdsh199", "rdsh200"]  # a hole and a clear; partial; no logs in a window
    assert "395 logs not drawn (197 hosts with every window complete and no hole or clear)" in document
    assert section(document, "coverage").count("<tr>") == 400 + 1  # the table still lists every log


# -- in a real browser ----------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")
#: Chromium's own background services; the page itself must request nothing.
BROWSER_HOSTS = re.compile(r"^https?://([a-z0-9-]+\.)*(google\.com|googleapis\.com|gstatic\.com|gvt1\.com)(/|:|$)")


def chromium(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp_path / "profile"
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--no-pings", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
        *extra, url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(report_html(hostile_report()), encoding="utf-8")
    return path


class DomRows(HTMLParser):
    """The users table's rows (cell texts) and every element name, from a --dump-dom output."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.root_attrs: dict[str, str | None] = {}
        self.rows: list[list[str]] = []
        self._table = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        attributes = dict(attrs)
        if tag == "html":
            self.root_attrs = attributes
        if tag == "table":
            self._table = attributes.get("id") == "table-users"
        if self._table and tag == "tr":
            self.rows.append([])
        if self._table and tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None
        if tag == "table":
            self._table = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


@needs_chromium
def test_browser_dom_script_runs_under_csp_and_names_stay_text(page_file: Path, tmp_path: Path) -> None:
    net_log = tmp_path / "net.json"
    result = chromium(tmp_path, page_file.as_uri(), "--dump-dom", f"--log-net-log={net_log}")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = DomRows()
    dom.feed(result.stdout)
    assert dom.root_attrs.get("data-sortable") == "ready"  # the script ran: its CSP hash is right
    assert "img" not in dom.tags and dom.tags.count("script") == 1
    users = [row[0] for row in dom.rows if row]
    assert "CONTOSO\\" + SCRIPT_NAME in users and any(name.endswith(IMG_NAME) for name in users)
    assert console_messages(result.stderr) == []  # no CSP violation, no script error
    urls = set(re.findall(r'"url":"([^"]+)"', net_log.read_text(encoding="utf-8"))) if net_log.exists() else set()
    page_requests = [u for u in urls if not u.startswith(("file:", "data:")) and not BROWSER_HOSTS.match(u)]
    assert page_requests == []


@needs_chromium
@pytest.mark.parametrize(("order", "expected"), [("desc", [3, 1, 1]), ("asc", [1, 1, 3])])
def test_browser_sorts_the_users_table(page_file: Path, tmp_path: Path, order: str, expected: list[int]) -> None:
    result = chromium(tmp_path, f"{page_file.as_uri()}#sort=users.sessions.{order}", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = DomRows()
    dom.feed(result.stdout)
    sessions = [int(row[4]) for row in dom.rows if row]
    assert sessions == expected
    assert f'data-key="sessions" data-type="number" class="num" aria-sort="{order}ending"' in result.stdout
    assert console_messages(result.stderr) == []


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and unfiltered rows of an 8-bit RGB/RGBA PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert depth == 8 and colour in (2, 6)
    channels = 4 if colour == 6 else 3
    idat, pos = b"", 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        kind, row = line[0], bytearray(line[1:])
        for i in range(stride):
            a = row[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 1:
                row[i] = (row[i] + a) & 0xFF
            elif kind == 2:
                row[i] = (row[i] + b) & 0xFF
            elif kind == 3:
                row[i] = (row[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(row) if channels == 3 else bytes(v for j, v in enumerate(row) if j % 4 != 3))
        previous = row
    return width, height, rows


@needs_chromium
def test_browser_screenshot_is_not_blank(page_file: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    result = chromium(tmp_path, page_file.as_uri(), f"--screenshot={shot}", "--window-size=1200,1600")
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 10_000
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (1200, 1600)
    pixels = [row[i:i + 3] for row in rows[::4] for i in range(0, len(row), 12)]
    non_white = sum(1 for p in pixels if p != b"\xff\xff\xff")
    assert non_white / len(pixels) > 0.03
    colours = set(pixels)
    assert bytes.fromhex("2f6fb3") in colours  # complete bars
    assert any(r > 150 and g < 80 and b < 80 for r, g, b in colours)  # the red installed line / verdict
    assert console_messages(result.stderr) == []


PROBE = """
(function () {
  var out = {height: document.documentElement.scrollHeight, width: document.documentElement.scrollWidth,
             view: document.documentElement.clientWidth, tables: {}};
  document.querySelectorAll("div.scroll").forEach(function (box) {
    var table = box.querySelector("table");
    out.tables[table.id] = [box.scrollWidth, box.clientWidth];
  });
  document.documentElement.setAttribute("data-measure", JSON.stringify(out));
})();
"""


def measure(tmp_path: Path, report: Report) -> dict[str, object]:
    """Page height and each table's scroll and visible widths, by a probe script added under the same CSP."""
    document = report_html(report)
    assert document.count(csp_hash(SCRIPT)) == 1  # in the CSP <meta>, quoted as &#39;
    document = document.replace(csp_hash(SCRIPT), f"{csp_hash(SCRIPT)}&#39; &#39;{csp_hash(PROBE)}").replace(
        "</body>", f"<script>{PROBE}</script></body>")
    path = tmp_path / "probe.html"
    path.write_text(document, encoding="utf-8")
    result = chromium(tmp_path, path.as_uri(), "--dump-dom", "--window-size=1400,2000")
    assert result.returncode == 0, result.stderr[-2000:]
    match = re.search(r'data-measure="([^"]*)"', result.stdout)
    assert match is not None, console_messages(result.stderr)
    data: dict[str, object] = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    return data


@needs_chromium
@pytest.mark.parametrize(("shape", "max_height"), [
    (dict(hosts=1, windows=12, users=8), 4500),
    (dict(hosts=20, windows=12, users=120), 8000),
    (dict(hosts=200, windows=12, users=900), 8000),
    (dict(hosts=20, windows=36, users=120, unknown_window=5), 8000),
    (dict(hosts=20, windows=52, users=120, kind="week"), 8000),
], ids=["1-host-year", "20-host-year", "200-host-year", "20-hosts-36-months", "20-hosts-52-weeks"])
def test_browser_page_stays_short_and_nothing_is_clipped(tmp_path: Path, shape: dict[str, object],
                                                          max_height: int) -> None:
    data = measure(tmp_path, fleet_report(**shape))  # type: ignore[arg-type]
    assert isinstance(data["height"], int) and data["height"] < max_height
    assert data["width"] == data["view"]  # the page itself never scrolls sideways
    tables = data["tables"]
    assert isinstance(tables, dict) and {"table-windows", "table-users", "table-coverage"} <= set(tables)
    for name, (scroll_width, client_width) in tables.items():
        assert scroll_width <= client_width, name  # every column visible, at 1400 px
