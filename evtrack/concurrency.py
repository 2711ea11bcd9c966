"""Peak concurrency: how many RDP sessions were connected at once, per host and overall.

A session is *connected* from a logon or reconnect until its next disconnect or logoff, as the half-open
interval ``[connect, end)``. Sessions are followed by LocalSessionManager's SessionID where a host has that log
(21/25 with an IP address connect, 24 disconnects, 23 ends), otherwise by the Security logon id (4624 type 10/12
and 4778 connect, 4779 disconnects, 4634/4647 end; the two 4624 of a UAC split token are one session). A session
still connected when the host's logs end is closed there, and counted, so the report can say so.

The session rows are read in two passes (transitions, then sessions), in bounded batches; what is kept is one
entry per open session and, per session, a few integers in parallel arrays (:class:`Sessions`), never a Python
object per event.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evtrack.catalogue import LSM, Transition, lookup
from evtrack.identity import host_key

if TYPE_CHECKING:
    import numpy as np

    from evtrack.rows import Selection

CONNECT, DISCONNECT, END = Transition.CONNECT, Transition.DISCONNECT, Transition.END
_MERGE_US = 10_000_000
_CODES: dict[str | None, int] = {None: 0, CONNECT: 1, DISCONNECT: 2, END: 3}


@dataclass(frozen=True, slots=True)
class Interval:
    """One connected session (see :meth:`Sessions.interval`)."""

    host: str
    start: int
    end: int
    user: str | None = None
    """The account of the event that connected the session (``user`` and ``domain`` as the row gives them)."""
    domain: str | None = None
    open_ended: bool = False
    """No disconnect or logoff was seen: closed where the host's logs end."""
    opened_by: int = -1
    """The position in :attr:`Sessions.rows` of the row that connected the session (for the audit trail of a
    session carried over)."""


@dataclass(frozen=True, slots=True)
class Sessions:
    """Connected intervals as parallel arrays, sorted by (host, start, end)."""

    hosts: tuple[str, ...]
    """Host keys, by host code."""
    host: np.ndarray
    start: np.ndarray
    end: np.ndarray
    account: np.ndarray
    """The (user, domain) of the connecting event, by account code (see :attr:`accounts`)."""
    accounts: tuple[tuple[str | None, str | None], ...]
    open_ended: np.ndarray
    opened_by: np.ndarray
    rows: Selection
    """The session rows, in the order they were read (``opened_by`` are positions in it)."""
    closed_at_coverage_end: int

    def __len__(self) -> int:
        return len(self.start)

    def interval(self, index: int) -> Interval:
        user, domain = self.accounts[int(self.account[index])]
        return Interval(self.hosts[int(self.host[index])], int(self.start[index]), int(self.end[index]), user, domain,
                        bool(self.open_ended[index]), int(self.opened_by[index]))


def _transition(row: Mapping[str, Any]) -> str | None:
    """What the row does to its session, as the event catalogue says (None: nothing)."""
    definition = lookup(row["channel"] or "", row["event_id"])
    if definition is None or definition.transition is None:
        return None
    return definition.transition(row["logon_type"], row["address"], bool(row["rdp"]))


def _columns(rows: Selection, names: tuple[str, ...]) -> Iterator[tuple[int, list[list[Any]]]]:
    """(position of the first row, one Python list per column) per bounded batch of ``rows``."""
    for offset, batch in rows.batches(columns=names):
        yield offset, [batch[name].to_pylist() for name in names]


def _transitions(table: Selection, host_of: Callable[[str], str]) -> tuple[array[int], set[str]]:
    """Each row's transition as a code (0: none), and the hosts with a LocalSessionManager log of sessions."""
    memo: dict[tuple[Any, ...], int] = {}
    codes = array("b")
    lsm_hosts: set[str] = set()
    for _, (channels, event_ids, logon_types, addresses, rdps, hosts) in _columns(
            table, ("channel", "event_id", "logon_type", "address", "rdp", "host")):
        for channel, event_id, logon_type, address, rdp, host in zip(
                channels, event_ids, logon_types, addresses, rdps, hosts, strict=True):
            key = (channel, event_id, logon_type, address, rdp)
            code = memo.get(key)
            if code is None:
                code = memo[key] = _CODES[_transition({"channel": channel, "event_id": event_id, "logon_type":
                                                       logon_type, "address": address, "rdp": rdp})]
            codes.append(code)
            if code and (channel or "").lower() == LSM:
                lsm_hosts.add(host_of(host or ""))
    return codes, lsm_hosts


def connected_intervals(rows: Selection, coverage_end: Mapping[str, int],
                        host_of: Callable[[str], str] = host_key) -> Sessions:
    """Connected intervals from session events (:func:`evtrack.rows.session_table`: each record once, in time
    order, ``time`` where the report places a record); ``host_of`` turns a row's host name into the host key
    ``coverage_end`` uses."""
    import numpy as np

    codes, lsm_hosts = _transitions(rows, host_of)
    transitions = (None, CONNECT, DISCONNECT, END)
    host_codes: dict[str, int] = {}
    account_codes: dict[tuple[str | None, str | None], int] = {}
    out: dict[str, array[int]] = {name: array("q") for name in ("host", "start", "end", "account", "open", "by")}

    def add(host: int, start: int, end: int, opened: tuple[int, int, str, int], open_ended: bool) -> None:
        for name, value in (("host", host), ("start", start), ("end", end), ("account", opened[3]),
                            ("open", open_ended), ("by", opened[1])):
            out[name].append(value)

    alias: dict[tuple[str, str], str] = {}
    last_logon: dict[tuple[str, str], tuple[int, str]] = {}
    #: per host code: session key -> (connected at, row, user in lower case, account code)
    open_since: dict[int, dict[str, tuple[int, int, str, int]]] = {}
    names = ("time", "host", "channel", "event_id", "session_id", "logon_id", "user", "domain")
    for offset, columns in _columns(rows, names):
        for index, (moment, name, channel_name, event_id, session_id, logon_id, user, domain) in enumerate(
                zip(*columns, strict=True), offset):
            transition = transitions[codes[index]]
            if transition is None:
                continue
            host = host_of(name or "")
            channel = (channel_name or "").lower()
            if channel == LSM:
                if session_id is None:
                    continue
                key = f"lsm:{session_id}"
            else:
                if host in lsm_hosts or logon_id is None:
                    continue
                account = f"{(domain or '').lower()}\\{(user or '').lower()}"
                if event_id == 4624:
                    previous = last_logon.get((host, account))
                    if previous is not None and moment - previous[0] <= _MERGE_US:
                        alias[(host, logon_id)] = previous[1]  # UAC split token: the same session
                    else:
                        last_logon[(host, account)] = (moment, logon_id)
                key = "sec:" + alias.get((host, logon_id), logon_id)
            code = host_codes.setdefault(host, len(host_codes))
            sessions = open_since.setdefault(code, {})
            opened = sessions.get(key)
            lowered = (user or "").strip().lower()
            if opened is not None and opened[2] and lowered and opened[2] != lowered:
                # the id was reused by another user (after a reboot, or a crash that logged no end): the session
                # open under it ended unseen, no later than now -- never closed by someone else's logoff
                del sessions[key]
                if moment > opened[0]:
                    add(code, opened[0], moment, opened, True)
                opened = None
            if transition == CONNECT:
                if key not in sessions:
                    sessions[key] = (moment, index, lowered, account_codes.setdefault((user, domain),
                                                                                     len(account_codes)))
            elif opened is not None:
                del sessions[key]
                if moment > opened[0]:
                    add(code, opened[0], moment, opened, False)
    closed_at_end = 0
    for host, code in host_codes.items():
        end = coverage_end.get(host)
        for opened in open_since.get(code, {}).values():
            stop = max(end or opened[0], opened[0])
            if stop > opened[0]:
                add(code, opened[0], stop, opened, True)
            closed_at_end += 1
    hosts = tuple(host_codes)
    host_index = np.frombuffer(out["host"], dtype=np.int64)
    starts, stops = np.frombuffer(out["start"], dtype=np.int64), np.frombuffer(out["end"], dtype=np.int64)
    rank = np.argsort(np.argsort(np.array(hosts, dtype=object), kind="stable"), kind="stable")
    order = np.lexsort((stops, starts, rank[host_index] if hosts else host_index))
    return Sessions(
        hosts=hosts, host=host_index[order].astype(np.int32), start=starts[order], end=stops[order],
        account=np.frombuffer(out["account"], dtype=np.int64)[order].astype(np.int32),
        accounts=tuple(account_codes), open_ended=np.frombuffer(out["open"], dtype=np.int64)[order].astype(bool),
        opened_by=np.frombuffer(out["by"], dtype=np.int64)[order], rows=rows, closed_at_coverage_end=closed_at_end,
    )


def peak(start: np.ndarray, end: np.ndarray, lo: int, hi: int) -> int:
    """The most intervals ``[start, end)`` overlapping at one instant inside ``[lo, hi)`` (ends before starts at
    ties)."""
    import numpy as np

    first, last = np.maximum(start, lo), np.minimum(end, hi)
    inside = last > first
    if not inside.any():
        return 0
    moments = np.concatenate((first[inside], last[inside]))
    deltas = np.concatenate((np.ones(int(inside.sum()), dtype=np.int64), -np.ones(int(inside.sum()), dtype=np.int64)))
    order = np.lexsort((deltas, moments))
    return int(np.cumsum(deltas[order]).max())
