"""Peak concurrency: how many RDP sessions were connected at once, per host and overall.

A session is *connected* from a logon or reconnect until its next disconnect or logoff, as the half-open
interval ``[connect, end)``. Sessions are followed by LocalSessionManager's SessionID where a host has that log
(21/25 with an IP address connect, 24 disconnects, 23 ends), otherwise by the Security logon id (4624 type 10/12
and 4778 connect, 4779 disconnects, 4634/4647 end; the two 4624 of a UAC split token are one session). A session
still connected when the host's logs end is closed there, and counted, so the report can say so.

Each row's transition is asked of the event catalogue once per distinct (channel, event id, logon type, address,
rdp), and the rows that cannot change a session are set aside, with Arrow and numpy over the columns as integers
(a few per row). The rest are followed in order, as Python objects a bounded batch at a time; what is kept is one
entry per open session and, per session, a few integers in parallel arrays (:class:`Sessions`), never a Python
object per event.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evtrack.catalogue import LSM, Transition, lookup
from evtrack.identity import host_key
from evtrack.rows import BATCH_ROWS, Keys, Selection, groups_of, take

if TYPE_CHECKING:
    import numpy as np

CONNECT, DISCONNECT, END = Transition.CONNECT, Transition.DISCONNECT, Transition.END
_MERGE_US = 10_000_000
_CODES: dict[str | None, int] = {None: 0, CONNECT: 1, DISCONNECT: 2, END: 3}
_CONNECTS = _CODES[CONNECT]


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


def _transitions(rows: Selection, keys: Keys) -> np.ndarray:
    """Each row's transition as a code (0: none): :func:`_transition` asked once per distinct (channel, event id,
    logon type, address, rdp) of the rows, on a row that holds it."""
    import numpy as np

    names = ("channel", "event_id", "logon_type", "address", "rdp")
    combination, holders = groups_of(*(keys[name] for name in names))
    held = take(rows.table.select(list(names)), rows.rows[holders]).to_pylist()
    codes: np.ndarray = np.array([_CODES[_transition(row)] for row in held], dtype=np.int8)[combination]
    return codes


def _valid(rows: Selection, name: str) -> np.ndarray:
    """Per position, whether the row has a ``name``."""
    import pyarrow.compute as pc

    valid: np.ndarray = pc.is_valid(rows.table[name]).to_numpy(zero_copy_only=False)[rows.rows]
    return valid


def _distinct(values: Sequence[Any]) -> tuple[np.ndarray, list[Any]]:
    """Each value as the index of its first appearance among the distinct values, and those values."""
    import numpy as np

    found: dict[Any, int] = {}
    return np.array([found.setdefault(value, len(found)) for value in values], dtype=np.int64), list(found)


@dataclass(frozen=True)
class _Followed:
    """The rows that may change a session, with what following them reads, as numpy integers by followed row."""

    positions: np.ndarray
    """In the selection (:attr:`Sessions.rows`), in reading order."""
    times: np.ndarray
    hosts: tuple[str, ...]
    """Host keys, by host code: in the order their first followed row comes."""
    host: np.ndarray
    """The host code."""
    lsm: np.ndarray
    """From LocalSessionManager, followed by session id; else from Security, followed by logon id."""
    session_id: np.ndarray
    transition: np.ndarray
    """:data:`_CODES` (never 0 here)."""
    user: np.ndarray
    """The user name stripped and in lower case, as a number (0: no name)."""
    account: np.ndarray
    """The (user, domain) the row gives, as a number (:meth:`account_of`)."""
    logon_account: np.ndarray
    """For a Security 4624, its account in lower case as a number (the two 4624 of a UAC split token have the
    same); -1 for the other rows."""
    users: list[str | None]
    domains: list[str | None]

    def account_of(self, number: int) -> tuple[str | None, str | None]:
        return _account(number, self.users, self.domains)


def _account(number: int, users: list[str | None], domains: list[str | None]) -> tuple[str | None, str | None]:
    """The (user, domain) of an account number: user rank * number of domains + domain rank."""
    return users[number // len(domains)], domains[number % len(domains)]


def _followed(rows: Selection, host_of: Callable[[str], str]) -> _Followed:
    """The rows with a transition that name their session: a LocalSessionManager row with a session id, or a
    Security row with a logon id of a host with no LocalSessionManager row that has a transition."""
    import numpy as np

    keys = Keys(rows.table, rows.rows)  # by position: kept for the session rows only, not the whole table
    transition = _transitions(rows, keys)
    lsm = np.array([(name or "").lower() == LSM for name in keys.words("channel")])[keys["channel"]]
    # host_of asked once per host name the rows hold
    names, name_of_row = np.unique(keys["host"], return_inverse=True)
    words = keys.words("host")
    key_of_name, key_names = _distinct([host_of(words[name] or "") for name in names.tolist()])
    host_key = key_of_name[name_of_row]
    lsm_hosts = np.unique(host_key[(transition != 0) & lsm])
    named = np.where(lsm, _valid(rows, "session_id"), _valid(rows, "logon_id") & ~np.isin(host_key, lsm_hosts))
    positions = np.flatnonzero((transition != 0) & named)
    seen, first = np.unique(host_key[positions], return_index=True)
    ordered = seen[np.argsort(first)]
    code_of_key = np.zeros(len(key_names), dtype=np.int64)
    code_of_key[ordered] = np.arange(len(ordered))
    users, domains = keys.words("user"), keys.words("domain")
    user, domain = keys["user"][positions].astype(np.int64), keys["domain"][positions]
    account = user * len(domains) + domain
    # users compared by name stripped and in lower case (0: no name); a 4624's account by domain\user in lower case
    lowered_users = _distinct(["", *((name or "").strip().lower() for name in users)])[0][1:]
    logon = ~lsm[positions] & (keys["event_id"][positions] == 4624)
    distinct, account_of_logon = np.unique(account[logon], return_inverse=True)
    lowered = [f"{(where or '').lower()}\\{(who or '').lower()}"
               for who, where in (_account(number, users, domains) for number in distinct.tolist())]
    logon_account = np.full(len(positions), -1, dtype=np.int64)
    logon_account[logon] = _distinct(lowered)[0][account_of_logon]
    return _Followed(
        positions=positions, times=rows.placed[positions] if rows.placed is not None else keys["time"][positions],
        hosts=tuple(key_names[key] for key in ordered.tolist()), host=code_of_key[host_key[positions]],
        lsm=lsm[positions], session_id=keys["session_id"][positions], transition=transition[positions],
        user=lowered_users[user],
        account=account, logon_account=logon_account, users=users, domains=domains)


def connected_intervals(rows: Selection, coverage_end: Mapping[str, int],
                        host_of: Callable[[str], str] = host_key) -> Sessions:
    """Connected intervals from session events (:func:`evtrack.rows.session_table`: each record once, in time
    order, ``time`` where the report places a record); ``host_of`` turns a row's host name into the host key
    ``coverage_end`` uses."""
    import numpy as np

    followed = _followed(rows, host_of)
    hosts = followed.hosts
    #: per session: host code, start, end, account code, open ended, row that connected it
    closed = array("q")
    account_codes: dict[int, int] = {}
    #: per host code: logon id -> the logon id of its session (UAC split token); Security account -> last 4624
    aliases: list[dict[str, str]] = [{} for _ in hosts]
    last_logons: list[dict[int, tuple[int, str]]] = [{} for _ in hosts]
    #: per host code: session key -> (connected at, row, user, account code). A host's sessions are all
    #: LocalSessionManager ones (keyed by session id) or all Security ones (by logon id), never both.
    open_since: list[dict[int | str, tuple[int, int, int, int]]] = [{} for _ in hosts]
    for start in range(0, len(followed.positions), BATCH_ROWS):  # Python objects for a batch at a time
        part = slice(start, start + BATCH_ROWS)
        positions, lsm = followed.positions[part], followed.lsm[part]
        logon_ids = (take(rows.table.select(["logon_id"]), rows.rows[positions])["logon_id"].to_pylist()
                     if not lsm.all() else [None] * len(positions))
        for index, moment, code, from_lsm, session_id, logon_id, user, account, logon_account, transition in zip(
                positions.tolist(), followed.times[part].tolist(), followed.host[part].tolist(), lsm.tolist(),
                followed.session_id[part].tolist(), logon_ids, followed.user[part].tolist(),
                followed.account[part].tolist(), followed.logon_account[part].tolist(),
                followed.transition[part].tolist(), strict=True):
            key: int | str
            if from_lsm:
                key = session_id
            else:
                alias = aliases[code]
                if logon_account >= 0:
                    previous = last_logons[code].get(logon_account)
                    if previous is not None and moment - previous[0] <= _MERGE_US:
                        alias[logon_id] = previous[1]  # UAC split token: the same session
                    else:
                        last_logons[code][logon_account] = (moment, logon_id)
                key = alias.get(logon_id, logon_id)
            sessions = open_since[code]
            opened = sessions.get(key)
            if opened is not None and opened[2] and user and opened[2] != user:
                # the id was reused by another user (after a reboot, or a crash that logged no end): the session
                # open under it ended unseen, no later than now -- never closed by someone else's logoff
                del sessions[key]
                if moment > opened[0]:
                    closed.extend((code, opened[0], moment, opened[3], True, opened[1]))
                opened = None
            if transition == _CONNECTS:
                if key not in sessions:
                    sessions[key] = (moment, index, user, account_codes.setdefault(account, len(account_codes)))
            elif opened is not None:
                del sessions[key]
                if moment > opened[0]:
                    closed.extend((code, opened[0], moment, opened[3], False, opened[1]))
    closed_at_end = 0
    for code, host in enumerate(hosts):
        end = coverage_end.get(host)
        for opened in open_since[code].values():
            stop = max(end or opened[0], opened[0])
            if stop > opened[0]:
                closed.extend((code, opened[0], stop, opened[3], True, opened[1]))
            closed_at_end += 1
    sessions_closed = np.frombuffer(closed, dtype=np.int64).reshape(-1, 6)
    host_index, starts, stops, account_index, open_ended, opened_by = sessions_closed.T
    rank = np.argsort(np.argsort(np.array(hosts, dtype=object), kind="stable"), kind="stable")
    order = np.lexsort((stops, starts, rank[host_index] if hosts else host_index))
    return Sessions(
        hosts=hosts, host=host_index[order].astype(np.int32), start=starts[order], end=stops[order],
        account=account_index[order].astype(np.int32),
        accounts=tuple(followed.account_of(number) for number in account_codes),
        open_ended=open_ended[order].astype(bool), opened_by=opened_by[order], rows=rows,
        closed_at_coverage_end=closed_at_end,
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
