"""Ground truth per evidence source: the users of each month that each source of a sample can show, from the
workload model alone (never by reading the files back), and the settings that read those sources."""

from __future__ import annotations

from collections.abc import Sequence

from evtrack.synth.sources import ALL, BROKER, BROKER_HOST, LOGS, RULES, SourceOutput, midpoint
from evtrack.synth.workload import Workload, ft_to_datetime

#: The culture that reads every source file whose own dates do not decide their day/month order (the en-US half;
#: the de-DE half is read day first where its dates decide it -- see docs/synth.md for the limit).
READ_CULTURE = "en-US"


def _accounts(wl: Workload, users: set[int]) -> list[str]:
    return sorted(wl.users[i].account(wl.domain) for i in users)


def source_truth(wl: Workload, chosen: Sequence[str], logs: dict[str, set[int]], written: SourceOutput,
                 poll_minutes: int, labels: Sequence[str]) -> tuple[dict[str, object], dict[str, object]]:
    """``sources`` (per source chosen, and ``all``: rule, file count, users per month label as ``domain\\sam``
    in lower case) and ``source_settings`` (how to read them) for ground_truth.json."""
    per_source = {source: (logs if source == LOGS else written.months.get(source, {})) for source in chosen}
    out: dict[str, object] = {}
    union: dict[str, set[int]] = {label: set() for label in labels}
    for source in chosen:
        months = per_source[source]
        for label in labels:
            union[label] |= months.get(label, set())
        out[source] = {
            "rule": RULES[source],
            "files": None if source == LOGS else len(written.files.get(source, [])),
            "months": {label: _accounts(wl, months.get(label, set())) for label in labels},
        }
    out[ALL] = {"rule": RULES[ALL], "files": None,
                "months": {label: _accounts(wl, union[label]) for label in labels}}
    settings: dict[str, object] = {
        "poll_minutes": poll_minutes if BROKER in chosen or "quser" in chosen else None,
        "broker": f"{BROKER_HOST}.{wl.domain.fqdn}" if BROKER in chosen else None,
        "midpoint": ft_to_datetime(midpoint(wl)).isoformat().replace("+00:00", "Z"),
        "input_tz": wl.tz,
        "culture": READ_CULTURE,
        "aliases": {wl.domain.upn_suffix: wl.domain.netbios, wl.domain.fqdn: wl.domain.netbios},
        "default_domain": wl.domain.netbios,
    }
    return out, settings
