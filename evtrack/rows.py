"""The rows of the event table a report reads: accounts for identity linking, RDP evidence, session events, client
devices, and one session start per logon seen by several logs. Values only; :mod:`evtrack.usage` decides."""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from evtrack.catalogue import ACCOUNT_ONLY_EVENT_IDS, GATEWAY, RDP_LOGON_TYPES, SESSION_EVENT_IDS, is_remote_ip
from evtrack.events import decoded
from evtrack.hosts import HostNames
from evtrack.identity import Observation, host_key
from evtrack.sources.base import datetime_to_us

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from evtrack.directory import Directory

#: The two 4624 of a UAC split token land within this of each other.
SESSION_MERGE = timedelta(seconds=10)
#: A 4624 and the LocalSessionManager 21 (or 25, 4778) of the same logon land within this (12 s is seen on real
#: hosts; a slow profile load takes longer).
SESSION_PAIR = timedelta(seconds=120)


def take(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """The rows of ``table`` with these row numbers, in this order, taken chunk by chunk: Arrow's take over a
    chunked column first concatenates the chunks (a copy of the whole column for a few rows). Dictionary-encoded
    columns come out as plain values (:func:`evtrack.events.decoded`): what callers read, and what they may
    combine or replace in."""
    import numpy as np
    import pyarrow as pa

    batches = table.to_batches()
    if len(batches) <= 1 or not len(rows):
        return decoded(table.take(pa.array(rows, pa.int64())))
    starts = np.cumsum([0, *(batch.num_rows for batch in batches)])
    chunk = np.searchsorted(starts, rows, side="right") - 1
    order = np.argsort(chunk, kind="stable")
    ordered, chunks = rows[order], chunk[order]
    bounds = np.searchsorted(chunks, np.arange(len(batches) + 1))
    parts = [batches[c].take(pa.array(ordered[bounds[c]:bounds[c + 1]] - starts[c]))
             for c in range(len(batches)) if bounds[c + 1] > bounds[c]]
    taken = pa.Table.from_batches(parts, schema=table.schema)
    if not np.array_equal(order, np.arange(len(order))):
        # put back in the order asked while still encoded (moving an index is cheaper than moving a string)
        try:
            taken = taken.unify_dictionaries()
        except pa.ArrowInvalid:  # a dictionary holding a null cannot be unified: moved as plain values
            taken = decoded(taken)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        taken = taken.combine_chunks().take(pa.array(inverse))
    return decoded(taken).combine_chunks()


#: A null integer as a key: after every value.
_NULL = 2**63 - 1


class Keys:
    """Columns of one table as numpy integers that sort and compare as the values do (a string by its rank, a
    null after every value and equal to a null): rows are ordered and matched without copying a string. A
    dictionary-encoded column ranks by its values, exactly as the plain column would. With ``rows`` (row numbers),
    the keys of those rows only, in that order: what is kept per column is as long as ``rows``, not the table."""

    def __init__(self, table: pa.Table, rows: np.ndarray | None = None) -> None:
        self.table = table
        self._rows = rows
        self._cache: dict[str, np.ndarray] = {}
        self._words: dict[str, list[str | None]] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        found = self._cache.get(name)
        if found is None:
            found = self._key(name)
            found = self._cache[name] = found if self._rows is None else found[self._rows]
        return found

    def words(self, name: str) -> list[str | None]:
        """The values of a string column by rank (the last one None, for nulls)."""
        self[name]
        return self._words[name]

    def _key(self, name: str) -> np.ndarray:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        column = self.table[name]
        shared = True  # one dictionary for every chunk
        if pa.types.is_dictionary(column.type):  # a slim read's repeated strings: ranked by their values below
            try:
                encoded = column.unify_dictionaries()
            except pa.ArrowInvalid:  # a dictionary holding a null (evtrack makes none): ranked chunk by chunk
                encoded, shared = column, False
        elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            encoded = pc.dictionary_encode(column).unify_dictionaries()
        else:
            values: np.ndarray = pc.fill_null(column.cast(pa.int64()), _NULL).to_numpy()
            return values
        chunks = encoded.chunks
        if not chunks:
            self._words[name] = [None]
            return np.zeros(0, dtype=np.int32)
        # a dictionary may hold a value twice, or a null: one rank per distinct value, whichever chunk holds it;
        # a null (an entry, or a null index) ranks after every value
        dictionaries = [chunks[0].dictionary.to_pylist()] if shared else [c.dictionary.to_pylist() for c in chunks]
        distinct = sorted({word for words in dictionaries for word in words if word is not None})
        self._words[name] = [*distinct, None]
        place = {word: index for index, word in enumerate(distinct)}
        null = len(distinct)
        ranks_of = [np.array([*(null if word is None else place[word] for word in words), null], dtype=np.int32)
                    for words in dictionaries]  # the last entry: a null index (-1 below)
        ranks: np.ndarray = np.concatenate([ranks_of[0 if shared else index][pc.fill_null(chunk.indices, -1).to_numpy()]
                                            for index, chunk in enumerate(chunks)])
        return ranks


def groups_of(*codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows grouped by their combination of ``codes`` (integers, one array per column): the group of each row,
    groups numbered in the order of their first row, and the first row of each group."""
    import numpy as np

    _, combined = np.unique(np.asarray(codes[0], dtype=np.int64), return_inverse=True)
    for more in codes[1:]:
        if not len(combined):
            break
        _, more = np.unique(np.asarray(more, dtype=np.int64), return_inverse=True)  # any integers: 0, 1, ...
        _, combined = np.unique(combined * (int(more.max()) + 1) + more.ravel(), return_inverse=True)
    _, firsts, inverse = np.unique(combined.ravel(), return_index=True, return_inverse=True)
    order = np.argsort(firsts, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[inverse.ravel()], firsts[order]


def _first_of_runs(keys: Keys, rows: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """True where a row of ``rows`` differs from the row before it on some of ``names``."""
    import numpy as np

    first = np.ones(len(rows), dtype=bool)
    if len(rows) > 1:
        first[1:] = False
        for name in names:
            values = keys[name][rows]
            first[1:] |= values[1:] != values[:-1]
    return first


def _ordered(keys: Keys, rows: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """``rows`` stably sorted by ``names`` (ascending, nulls last)."""
    import numpy as np

    order = np.lexsort(tuple(keys[name][rows] for name in reversed(names))) if len(rows) else rows
    ordered: np.ndarray = rows[order]
    return ordered


def _values(words: list[str | None], ranks: np.ndarray) -> list[Any]:
    """The values of a string column's ranks (:meth:`Keys.words`; None for a null), as ``to_pylist`` gives them."""
    return [words[rank] for rank in ranks.tolist()]


def observations(table: pa.Table) -> list[Observation]:
    """Every account (user, domain, SID, host) the table names, once, in order."""
    import numpy as np
    import pyarrow.compute as pc

    keys = Keys(table)
    rows = np.flatnonzero(pc.is_valid(table["user"]).to_numpy(zero_copy_only=False))
    # an account as two keys, (user, domain) and (SID, host), each one number: a rank is below the table's row
    # count + 1, so a pair of them fits in an int64 for any table that fits in memory
    pairs = [keys[first][rows].astype(np.int64) * len(keys.words(second)) + keys[second][rows]
             for first, second in (("user", "domain"), ("sid", "host"))]
    order = np.lexsort((pairs[1], pairs[0]))
    accounts, places = pairs[0][order], pairs[1][order]
    distinct = np.ones(len(order), dtype=bool)
    distinct[1:] = (accounts[1:] != accounts[:-1]) | (places[1:] != places[:-1])
    user_ranks, domain_ranks = np.divmod(accounts[distinct], len(keys.words("domain")))
    sid_ranks, host_ranks = np.divmod(places[distinct], len(keys.words("host")))
    users, domains, sids, hosts = (_values(keys.words(name), ranks) for name, ranks in
                                   (("user", user_ranks), ("domain", domain_ranks), ("sid", sid_ranks),
                                    ("host", host_ranks)))
    short = {host: host_key(host or "") for host in set(hosts)}  # one string per host, not per account
    return [Observation(user, domain, sid, short[host])
            for user, domain, sid, host in zip(users, domains, sids, hosts, strict=True)]


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


#: The evidence columns a report reads, the session columns concurrency reads, and what makes two rows one record.
EVIDENCE_COLUMNS = ("time", "host", "user", "domain", "sid", "kind", "reason", "event_id", "channel", "record_id",
                    "address", "client_name", "source")
SESSION_COLUMNS = ("time", "host", "channel", "event_id", "record_id", "logon_type", "user", "domain", "sid",
                   "address", "session_id", "logon_id", "rdp", "reason", "source")
RECORD_KEY = ("host", "channel", "record_id", "time")
#: Rows read per batch: bounds the Python objects alive at once (about 1 KB per row of a batch).
BATCH_ROWS = 8_192


@dataclass(frozen=True)
class Selection:
    """Rows of a table in the order a report reads them, read in bounded batches: the table is never copied
    whole, and no row becomes a Python object outside its batch. Times come as µs (int64, cast in Arrow)."""

    table: pa.Table
    rows: np.ndarray
    """Row numbers of ``table``, in reading order (int64); a position is an index into it."""
    columns: tuple[str, ...]
    sources: Mapping[int, str | None] = field(default_factory=dict)
    """Row number -> the ``source`` it takes from another copy of the same record (the first file by path)."""
    placed: np.ndarray | None = None
    """Where the report places each row (µs, by position): its ``time``; ``recorded`` is then the time it
    carries. None: ``time`` is the time it carries."""

    def __len__(self) -> int:
        return len(self.rows)

    @functools.cached_property
    def _moved(self) -> np.ndarray:
        import numpy as np

        return np.fromiter(self.sources, dtype=np.int64, count=len(self.sources))

    def _part(self, positions: slice | np.ndarray, columns: Sequence[str] = ()) -> pa.Table:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        wanted = list(columns or (*self.columns, *(("recorded",) if self.placed is not None else ())))
        stored = [name for name in self.columns if name in wanted or (name == "time" and "recorded" in wanted)]
        rows = self.rows[positions]
        part = take(self.table.select(stored), rows)
        if "time" in stored:
            recorded = part["time"].cast(pa.int64())
            part = part.set_column(part.schema.get_field_index("time"), "time",
                                   recorded if self.placed is None else pa.array(self.placed[positions]))
            if "recorded" in wanted:
                part = part.append_column("recorded", recorded)
        if "source" in stored and self.sources:
            moved = np.flatnonzero(np.isin(rows, self._moved))
            if len(moved):
                mask = np.zeros(len(rows), dtype=bool)
                mask[moved] = True
                values = pa.array([self.sources[int(rows[i])] for i in moved], pa.string())
                index = part.schema.get_field_index("source")
                part = part.set_column(index, "source", pc.replace_with_mask(part["source"].combine_chunks(),
                                                                             pa.array(mask), values))
        return part.select(wanted)

    def batches(self, size: int = BATCH_ROWS, columns: Sequence[str] = ()) -> Iterator[tuple[int, pa.Table]]:
        """(position of the first row, the rows) per batch of at most ``size`` rows; ``columns``: only these
        (default: all, and ``recorded`` where rows are placed)."""
        for start in range(0, len(self.rows), size):
            yield start, self._part(slice(start, start + size), columns)

    def rows_at(self, positions: Sequence[int]) -> list[dict[str, Any]]:
        """The rows at ``positions``, as the batches give them (one take for all of them)."""
        import numpy as np

        if not positions:
            return []
        rows: list[dict[str, Any]] = self._part(np.asarray(positions, dtype=np.int64)).to_pylist()
        return rows

    def row(self, position: int) -> dict[str, Any]:
        return self.rows_at([position])[0]


def drop_repeats(keys: Keys, rows: np.ndarray) -> tuple[np.ndarray, dict[int, str | None]]:
    """The first of each run of ``rows`` (row numbers, ordered so that the copies of one record are adjacent)
    that are one record (:data:`RECORD_KEY`): the same record from overlapping exports counts once. Its
    ``source`` is the first file by path that holds it (the smallest non-empty path of the run), whatever order
    the files were read in: returned as row number -> source where that is another copy's."""
    import numpy as np

    first = _first_of_runs(keys, rows, RECORD_KEY)
    if first.all():
        return rows, {}
    repeat = ~first
    run = np.cumsum(first) - 1
    members = np.flatnonzero(repeat | np.concatenate((repeat[1:], [False])))  # rows of runs of two or more
    sources = keys.table.select(["source"])
    chosen: dict[int, str | None] = {}
    for number, source in zip(run[members].tolist(), take(sources, rows[members])["source"].to_pylist(),
                              strict=True):
        if number not in chosen or (source and (not chosen[number] or source < chosen[number])):
            chosen[number] = source
    kept = rows[first]
    firsts = take(sources, kept[list(chosen)])["source"].to_pylist()
    moved = {int(kept[number]): source for (number, source), was in zip(chosen.items(), firsts, strict=True)
             if source != was}
    return kept, moved


def evidence_table(table: pa.Table, keys: Keys | None = None) -> Selection:
    """The RDP evidence rows, each record once, in the order a report reads them (time, host, channel, record id;
    nulls last)."""
    import numpy as np
    import pyarrow.compute as pc

    keys = keys or Keys(table)
    rows = np.flatnonzero(pc.fill_null(pc.equal(table["rdp"], True), False).to_numpy(zero_copy_only=False))
    rows, sources = drop_repeats(keys, _ordered(keys, rows, ("time", "host", "channel", "record_id")))
    return Selection(table, rows, EVIDENCE_COLUMNS, sources)


def session_table(table: pa.Table, counted: Callable[[str | None], bool],
                  misdated: Mapping[tuple[str, str, int, int], int], keys: Keys | None = None) -> Selection:
    """Rows that open or close a session on a counted host, each record once, with a time, in the order sessions
    are followed: by the time the report places them at (a misdated record: where its neighbours put it), then
    record id, then table order."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    keys = keys or Keys(table)
    ids = pc.is_in(table["event_id"], pa.array(sorted(SESSION_EVENT_IDS)))
    remote_type = pc.is_in(table["logon_type"], pa.array(sorted(RDP_LOGON_TYPES)))
    logon_like = pc.is_in(table["event_id"], pa.array(sorted({i for _, i in ACCOUNT_ONLY_EVENT_IDS})))
    keep = pc.and_(ids, pc.or_(pc.invert(logon_like), pc.fill_null(remote_type, False)))
    rows = np.flatnonzero(pc.fill_null(keep, False).to_numpy(zero_copy_only=False))
    rows, sources = drop_repeats(keys, _ordered(keys, rows, RECORD_KEY))
    rows = np.sort(rows)  # table order
    counted_ranks = np.array([counted(name) for name in keys.words("host")], dtype=bool)
    recorded = keys["time"][rows]
    wanted = counted_ranks[keys["host"][rows]] & (recorded != _NULL)
    rows, recorded = rows[wanted], recorded[wanted]
    placed, record_ids = recorded.copy(), keys["record_id"][rows]
    for index in np.flatnonzero(np.isin(record_ids, [key[2] for key in misdated])).tolist():
        row = table.slice(int(rows[index]), 1).select(["host", "channel", "record_id"]).to_pylist()[0]
        moment = misdated.get((row["host"], (row["channel"] or "").lower(), row["record_id"], int(recorded[index])))
        if moment is not None:
            placed[index] = moment
    order = np.lexsort((rows, np.where(record_ids == _NULL, 0, record_ids), placed))
    return Selection(table, rows[order], SESSION_COLUMNS, sources, placed[order])


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
