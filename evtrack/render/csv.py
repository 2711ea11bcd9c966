"""The report as CSV: one row per user (like the Licensing Manager's "Save As"), or one row per window.

Excel-friendly: ISO dates, UTF-8 (with a BOM on request, which Excel needs to read UTF-8), CRLF line ends, and
cells that a spreadsheet would run as a formula neutralised unless asked otherwise.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from evtrack.output import neutralise_cell
from evtrack.report import Report, iso

CAL_TYPE = "RDS Per User CAL"


def _csv(header: list[str], rows: Iterable[Sequence[object]], *, safe: bool, bom: bool) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        cells = ["" if value is None else str(value) for value in row]
        writer.writerow([neutralise_cell(c) for c in cells] if safe else cells)
    return ("\ufeff" if bom else "") + buffer.getvalue()


def users_csv(report: Report, *, safe: bool = True, bom: bool = False) -> str:
    header = [
        "User", "CAL Type", "Estimated Expiration Date", "Key", "SID", "First Seen", "Last Seen", "Sessions",
        "Reconnects", "Events", "Hosts", "Evidence", "Windows", "Aliases", "Local Account", "Domain Resolved",
        "Full Name", "In Directory",
    ]
    rows = (
        [
            u.display_name, CAL_TYPE, iso(u.cal_expiry), u.key, u.sid, iso(u.first_seen), iso(u.last_seen),
            u.sessions, u.reconnects, u.events, ";".join(u.hosts), ";".join(u.evidence), ";".join(u.windows),
            ";".join(u.aliases), "yes" if u.local_account else "no", "yes" if u.domain_resolved else "no",
            u.full_name, "" if u.in_directory is None else ("yes" if u.in_directory else "no"),
        ]
        for u in report.users
    )
    return _csv(header, rows, safe=safe, bom=bom)


def windows_csv(report: Report, *, safe: bool = True, bom: bool = False) -> str:
    header = ["Window", "Start", "End", "Status", "Users", "New Users", "Sessions", "Reconnects",
              "Peak Concurrent Sessions", "Devices", "Installed", "Verdict", "Hosts Complete", "Hosts Partial",
              "Hosts Unknown"]
    rows = (
        [
            w.label, iso(w.start), iso(w.end), w.status, "unknown" if w.users is None else w.users,
            "" if w.new_users is None else w.new_users, w.sessions, w.reconnects,
            "" if w.peak_sessions is None else w.peak_sessions, "" if w.devices is None else w.devices,
            report.installed, w.verdict,
            ";".join(w.hosts_complete), ";".join(w.hosts_partial), ";".join(w.hosts_unknown),
        ]
        for w in report.windows
    )
    return _csv(header, rows, safe=safe, bom=bom)


def proof_csv(report: Report, *, safe: bool = True, bom: bool = False) -> str:
    """One row per proof record: per user and window counted, the first and last qualifying record (or the logon
    of a session carried over), to be found in the named file by its EventRecordID."""
    header = ["User", "Key", "Window", "Which", "File", "Host", "Channel", "Record ID", "Event ID", "Time (UTC)",
              f"Time ({report.tz})", "Rule", "Account In Record", "Placed At", "Carried Over"]
    rows = (
        [
            u.display_name, u.key, p.window, p.which, p.file, p.host, p.channel, p.record_id, p.event_id,
            iso(p.time), iso(p.local_time), p.rule, p.user, iso(p.placed) if p.placed else "",
            "yes" if p.carried_over else "no",
        ]
        for u in report.users
        for p in u.proof
    )
    return _csv(header, rows, safe=safe, bom=bom)
