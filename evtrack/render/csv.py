"""The report as CSV: one row per user (like the Licensing Manager's "Save As"), or one row per window.

Excel-friendly by default: times in the report's time zone as ``YYYY-MM-DD HH:MM:SS`` (a form Excel reads as a date
in every locale) with the zone named in the column header, UTF-8 with a byte-order mark (without it Excel reads
"Müller" as "MÃ¼ller"), CRLF line ends, ``,`` or ``;`` between cells (European Excel expects ``;``), and cells that
a spreadsheet would run as a formula neutralised unless asked otherwise. Host names are spelled as in the JSON
report and the other formats (the host key: short name, lower case).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from evtrack.output import neutralise_cell
from evtrack.report import Report, iso
from evtrack.windows import zone

CAL_TYPE = "RDS Per User CAL"
DELIMITERS = (",", ";", "\t", "|")
"""What ``--csv-delimiter`` accepts (``tab`` stands for a tab)."""


def delimiter(text: str) -> str:
    """``,`` ``;`` ``|`` or ``tab``/``\\t`` → the character; anything else is a ValueError that says what works."""
    value = "\t" if text.strip().lower() in ("tab", "\\t") or text == "\t" else text.strip()
    if value not in DELIMITERS:
        raise ValueError(f"CSV delimiter {text!r}: use ',' (the default), ';' (European Excel), '|' or 'tab'")
    return value


def _csv(header: list[str], rows: Iterable[Sequence[object]], *, safe: bool, bom: bool, sep: str) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=sep, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        cells = ["" if value is None else str(value) for value in row]
        writer.writerow([neutralise_cell(c) for c in cells] if safe else cells)
    return ("\ufeff" if bom else "") + buffer.getvalue()


def _local(report: Report) -> Callable[[datetime], str]:
    """A time in the report's zone as ``YYYY-MM-DD HH:MM:SS`` (the header names the zone)."""
    tz = zone(report.tz)

    def local(moment: datetime) -> str:
        return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")

    return local


def users_csv(report: Report, *, safe: bool = True, bom: bool = True, sep: str = ",") -> str:
    local = _local(report)
    zone_name = f"({report.tz})"
    header = [
        "User", "CAL Type", f"Estimated Expiration Date {zone_name}", "Key", "SID", f"First Seen {zone_name}",
        f"Last Seen {zone_name}", "Sessions", "Reconnects", "Events", "Hosts", "Evidence", "Windows", "Aliases",
        "Local Account", "Domain Resolved", "Full Name", "In Directory", "Sources",
    ]
    rows = (
        [
            u.display_name, CAL_TYPE, local(u.cal_expiry), u.key, u.sid, local(u.first_seen), local(u.last_seen),
            u.sessions, u.reconnects, u.events, ";".join(u.hosts), ";".join(u.evidence), ";".join(u.windows),
            ";".join(u.aliases), "yes" if u.local_account else "no", "yes" if u.domain_resolved else "no",
            u.full_name, "" if u.in_directory is None else ("yes" if u.in_directory else "no"), ";".join(u.sources),
        ]
        for u in report.users
    )
    return _csv(header, rows, safe=safe, bom=bom, sep=sep)


def windows_csv(report: Report, *, safe: bool = True, bom: bool = True, sep: str = ",") -> str:
    local = _local(report)
    header = ["Window", f"Start ({report.tz})", f"End ({report.tz})", "Status", "Users", "New Users", "Sessions",
              "Reconnects", "Peak Concurrent Sessions", "Devices", "Installed", "Verdict", "Hosts Complete",
              "Hosts Partial", "Hosts Unknown", "Users Per Source", "Rests On"]
    rows = (
        [
            w.label, local(w.start), local(w.end), w.status, "unknown" if w.users is None else w.users,
            "" if w.new_users is None else w.new_users, w.sessions, w.reconnects,
            "" if w.peak_sessions is None else w.peak_sessions, "" if w.devices is None else w.devices,
            report.installed, w.verdict,
            ";".join(w.hosts_complete), ";".join(w.hosts_partial), ";".join(w.hosts_unknown),
            ";".join(f"{label}={count}" for label, count in w.sources), ";".join(w.rests_on),
        ]
        for w in report.windows
    )
    return _csv(header, rows, safe=safe, bom=bom, sep=sep)


def proof_csv(report: Report, *, safe: bool = True, bom: bool = True, sep: str = ",") -> str:
    """One row per proof record: per user and window counted, the first and last qualifying record (or the logon
    of a session carried over), to be found in the named file by its EventRecordID."""
    local = _local(report)
    header = ["User", "Key", "Window", "Which", "File", "Host", "Channel", "Record ID", "Event ID", "Time (UTC)",
              f"Time ({report.tz})", "Rule", "Account In Record", f"Placed At ({report.tz})", "Carried Over"]
    rows = (
        [
            u.display_name, u.key, p.window, p.which, p.file, p.host, p.channel, p.record_id, p.event_id,
            iso(p.time), local(p.time), p.rule, p.user, local(p.placed) if p.placed else "",
            "yes" if p.carried_over else "no",
        ]
        for u in report.users
        for p in u.proof
    )
    return _csv(header, rows, safe=safe, bom=bom, sep=sep)
