"""The rows of the event table a report reads: accounts for identity linking, RDP evidence, session events, client
devices, and one session start per logon seen by several logs. Values only; :mod:`evtrack.usage` decides."""

from __future__ import annotations

import bisect
import functools
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from evtrack.catalogue import ACCOUNT_ONLY_EVENT_IDS, GATEWAY, RDP_LOGON_TYPES, SESSION_EVENT_IDS, is_remote_ip
from evtrack.hosts import HostNames
from evtrack.identity import Observation, host_key
from evtrack.sources.base import datetime_to_us

if TYPE_CHECKING:
    import pyarrow as pa

    from evtrack.directory import Directory

#: The two 4624 of a UAC split token land within this of each other.
SESSION_MERGE = timedelta(seconds=10)
#: A 4624 and the LocalSessionManager 21 (or 25, 4778) of the same logon land within this (12 s is seen on real
#: hosts; a slow profile load takes longer).
SESSION_PAIR = timedelta(seconds=120)


def observations(table: pa.Table) -> list[Observation]:
    import pyarrow.compute as pc

    named = table.filter(pc.is_valid(table["user"])).select(["user", "domain", "sid", "host"])
    unique = named.group_by(["user", "domain", "sid", "host"], use_threads=False).aggregate([])
    return [
        Observation(r["user"], r["domain"], r["sid"], host_key(r["host"] or ""))
        for r in unique.sort_by([(c, "ascending") for c in ("user", "domain", "sid", "host")]).to_pylist()
    ]


def sightings(table: pa.Table, hosts: HostNames, names: frozenset[str]
               ) -> list[tuple[str | None, str | None, str | None, str, int]]:
    """Timed sightings with a SID of the names that several SIDs held (``names``: sam names, lower case)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    sam = pc.utf8_lower(pc.replace_substring_regex(table["user"], "@.*$", ""))
    named = table.filter(pc.and_(pc.is_in(sam, pa.array(sorted(names))), pc.is_valid(table["sid"])))
    named = named.filter(pc.is_valid(named["time"])).select(["user", "domain", "sid", "host", "time"])
    return [(r["user"], r["domain"], r["sid"], hosts.key(r["host"]), datetime_to_us(r["time"]))
            for r in named.to_pylist()]


def directory_observations(directory: Directory, aliases: Mapping[str, str]) -> list[Observation]:
    """Directory accounts as sightings, so a name seen without a SID in the logs joins its SID's person."""
    result = []
    for user in directory.users:
        if not user.sid:
            continue
        netbios = directory.netbios or (aliases.get(user.dns_domain or "") if user.dns_domain else None)
        if user.sam and netbios:
            result.append(Observation(user.sam, netbios, user.sid, ""))
        if user.upn:
            result.append(Observation(user.upn, None, user.sid, ""))
    return result


def unique(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same record from overlapping exports counts once; its ``source`` is the first file (by path) that
    holds it, whatever order the files were read in."""
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    unique = []
    for row in rows:
        key = (row["host"], row["channel"], row["record_id"], row["time"])
        kept = seen.get(key)
        if kept is None:
            seen[key] = row
            unique.append(row)
        elif row.get("source") and (not kept.get("source") or row["source"] < kept["source"]):
            kept["source"] = row["source"]
    return unique


def evidence_rows(table: pa.Table) -> list[dict[str, Any]]:
    import pyarrow.compute as pc

    evidence = table.filter(pc.equal(table["rdp"], True)).select(
        ["time", "host", "user", "domain", "sid", "kind", "reason", "event_id", "channel", "record_id", "address",
         "client_name", "source"]
    )
    evidence = evidence.sort_by([("time", "ascending"), ("host", "ascending"), ("channel", "ascending"),
                                 ("record_id", "ascending")])
    return unique(evidence.to_pylist())


def session_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows that open or close a session (for concurrency), each record once; times in µs."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pc.is_in(table["event_id"], pa.array(sorted(SESSION_EVENT_IDS)))
    remote_type = pc.is_in(table["logon_type"], pa.array(sorted(RDP_LOGON_TYPES)))
    logon_like = pc.is_in(table["event_id"], pa.array(sorted({i for _, i in ACCOUNT_ONLY_EVENT_IDS})))
    keep = pc.and_(ids, pc.or_(pc.invert(logon_like), pc.fill_null(remote_type, False)))
    rows = unique(table.filter(keep).select(
        ["time", "host", "channel", "event_id", "record_id", "logon_type", "user", "domain", "sid", "address",
         "session_id", "logon_id", "rdp", "reason", "source"]
    ).to_pylist())
    for row in rows:
        row["time"] = datetime_to_us(row["time"]) if row["time"] is not None else None
    return rows


def device_key(row: Mapping[str, Any]) -> tuple[str, str | None, str | None] | None:
    """A client device: its IP address (not loopback or unspecified: tunnels hide the client), with the client
    name 4778/4779 give; a name alone where there is no usable address."""
    return device(row["client_name"], row["address"])


@functools.lru_cache(maxsize=65_536)
def device(client_name: str | None, address_text: str | None) -> tuple[str, str | None, str | None] | None:
    name = (client_name or "").strip()
    name = name if name and name.lower() not in ("unknown", "-") else ""
    address = (address_text or "").strip()
    if is_remote_ip(address):
        return "ip:" + address.lower(), name or None, address
    if name:
        return "name:" + name.lower(), name, None
    return None


def without_reconnects(starts: list[tuple[str, int, str]], reconnects: list[tuple[str, int, str]]
                       ) -> list[tuple[str, int, str]]:
    """Sign-ins less the RD Gateway connections that carried a reconnect: the gateway logs a 302 for every
    connection, new session or not, so a 302 within SESSION_PAIR of a reconnect on the same host is that
    reconnect, not a session start."""
    gateway = GATEWAY + ":"
    if not any(log.startswith(gateway) for _, _, log in starts):
        return starts
    pair = int(SESSION_PAIR.total_seconds() * 1e6)
    by_host: dict[str, list[int]] = {}
    for host, moment, _log in reconnects:
        by_host.setdefault(host, []).append(moment)
    for times in by_host.values():
        times.sort()

    def near_reconnect(host: str, moment: int) -> bool:
        times = by_host.get(host, [])
        index = bisect.bisect_left(times, moment - pair)
        return index < len(times) and times[index] <= moment + pair

    return [s for s in starts if not (s[2].startswith(gateway) and near_reconnect(s[0], s[1]))]


def cluster(items: list[tuple[str, int, str]]) -> list[tuple[str, int]]:
    """One start per logon (or reconnect) seen by several logs of one host: a start joins the open one when it
    comes from a log that has not seen it yet and lands within SESSION_PAIR of its first sighting (the LSM 21 of
    a 4624 may come seconds later), or from the same log within SESSION_MERGE of that log's last sighting (the
    two 4624 of a UAC split token)."""
    merged: list[tuple[str, int]] = []
    current: dict[str, tuple[int, dict[str, int]]] = {}
    pair, merge = int(SESSION_PAIR.total_seconds() * 1e6), int(SESSION_MERGE.total_seconds() * 1e6)
    for host, moment, source in sorted(items, key=lambda item: (item[1], item[0], item[2])):
        opened = current.get(host)
        if opened is not None:
            first, seen = opened
            last = seen.get(source)
            if (moment - last <= merge) if last is not None else (moment - first <= pair):
                seen[source] = moment
                continue
        current[host] = (moment, {source: moment})
        merged.append((host, moment))
    return merged
