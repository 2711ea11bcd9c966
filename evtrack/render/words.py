"""Plain words for the report's codes, shared by every renderer: evidence reason codes and host summaries.

The reason codes are the ones :func:`evtrack.events.classify` gives (short and stable, kept in JSON and CSV for
machines); a manager reading the HTML report sees what they mean instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evtrack.report import Report

EVIDENCE_WORDS: dict[str, str] = {
    "4624_lt10": "Remote Desktop logon (4624 type 10)",
    "4624_lt12": "Remote Desktop logon with cached credentials (4624 type 12)",
    "4624_lt7_remote_ip": "Unlock or reconnect from another computer (4624 type 7, remote address)",
    "4634_lt10": "Remote Desktop logoff (4634 type 10)",
    "4634_lt12": "Remote Desktop logoff, cached credentials (4634 type 12)",
    "4778_rdp_session": "Reconnected to a Remote Desktop session (4778)",
    "4778_ip": "Reconnected from another computer (4778, client address)",
    "4779_rdp_session": "Disconnected from a Remote Desktop session (4779)",
    "4779_ip": "Disconnected from another computer (4779, client address)",
    "lsm21_ip": "Remote Desktop session logon (Session Manager 21)",
    "lsm24_ip": "Remote Desktop session disconnected (Session Manager 24)",
    "lsm25_ip": "Remote Desktop session reconnected (Session Manager 25)",
    "gateway302": "Connected to the session host through the RD Gateway (gateway 302)",
    "gateway303": "Disconnected from the session host through the RD Gateway (gateway 303)",
}
"""Reason code → what it means. Codes that are never evidence (``4624_lt7_local``, ``1149_auth_only``...) do not
reach a user's evidence list; an unknown code is shown as it is."""


def evidence_words(code: str) -> str:
    """What an evidence reason code means, in words (the code itself when it is not known)."""
    return EVIDENCE_WORDS.get(code, code)


@dataclass(frozen=True)
class HostSummary:
    """A window's hosts in one short line: how many are complete, and which are not (the first few by name)."""

    text: str
    """E.g. "20/20 complete" or "18/20 complete; partial: RDSH03; no logs: RDSH07"."""
    detail: str
    """Every host that is not complete, by name (for a tooltip); empty when all are complete."""


def host_summary(complete: Sequence[str], partial: Sequence[str], unknown: Sequence[str], *,
                 limit: int = 3) -> HostSummary:
    """Count the complete hosts and name the partial and uncovered ones, ``limit`` names per group at most."""
    total = len(complete) + len(partial) + len(unknown)
    if total == 0:
        return HostSummary("no hosts", "")
    if len(unknown) == total:
        return HostSummary(f"no logs from any of {total} hosts", f"no logs: {', '.join(unknown)}")
    parts = [f"{len(complete)}/{total} complete"]
    detail = []
    for label, hosts in (("partial", partial), ("no logs", unknown)):
        if not hosts:
            continue
        shown = ", ".join(hosts[:limit])
        more = f" +{len(hosts) - limit} more" if len(hosts) > limit else ""
        parts.append(f"{label}: {shown}{more}")
        detail.append(f"{label}: {', '.join(hosts)}")
    return HostSummary("; ".join(parts), "; ".join(detail))


def short_channel(channel: str) -> str:
    """A log's short name for tables and charts: LSM, RCM, Security, System..."""
    lower = channel.lower()
    if "localsessionmanager" in lower:
        return "LSM"
    if "remoteconnectionmanager" in lower:
        return "RCM"
    return channel.rsplit("/", 1)[0].rsplit("-", 1)[-1]


def input_kinds(report: Report) -> str:
    """What the inputs read were, per kind: ``7 evtx (engine evtx), 2800 broker-csv, 2 azure``."""
    from collections import Counter

    counts = Counter(i.kind or "?" for i in report.inputs if not i.error)
    parts = [f"{n} {kind}" + (f" (engine {report.engine})" if kind == "evtx" else "")
             for kind, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
    return ", ".join(parts) or "none"
