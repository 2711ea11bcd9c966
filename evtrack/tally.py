"""The RDP evidence of one report, tallied as it streams past: per person, device, host and evidence source.

:func:`evtrack.rows.evidence_table` gives the evidence rows sorted and each record once; :meth:`Tally.add` reads
them in bounded batches, in numpy: Python works once per distinct value of a batch (host, account, device,
channel) and once per group (a person and day, a person and source, a device), never once per row. Each row
leaves only compact facts behind: its time in its person's time array and in the source ledger (8 bytes each),
its device's arrays (20 bytes), and, per person and local day, the first and last record as positions in the
evidence rows (made into a :class:`Ref` only for the proofs a report shows). No Python object per event outlives
its batch. ``tests/test_tally.py`` keeps the row-by-row loop this replaced as its specification.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evtrack.crosscheck import SourceLedger, sorted_times, source_label
from evtrack.hosts import HostNames
from evtrack.identity import Identity, IdentityResolver
from evtrack.report import DeviceUsage, MisdatedEvidence
from evtrack.rows import Selection, cluster, device, groups_of, without_reconnects
from evtrack.sources.base import MIN_PLAUSIBLE_US, latest_plausible, us_to_datetime
from evtrack.windows import local_date

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    import numpy as np
    import pyarrow as pa

    from evtrack.concurrency import Sessions

#: Rows per batch the tally reads: its Python work is per group of a batch (a person and day, a person and source,
#: a device), so larger batches do less of it, and hold more at once. Measured on the dense sets (benchmarks/README.md,
#: "Dense logs, third pass"): 8,192 rows 1.06 s, 32,768 0.60 s, 65,536 0.43 s of CPU on the 150 MB set; peak RSS on
#: the 300 MB set 256, 265 and 271 MB.
TALLY_ROWS = 32_768

#: Local midnights fall on whole quarter hours in every zone since 1972 (offsets are multiples of 15 minutes), so
#: one quarter hour never straddles two local days.
_QUARTER_US = 900_000_000


def _times() -> array[int]:
    return array("q")


class LocalDays:
    """The local day (ordinal) of an instant in µs, cached per quarter hour: one zone lookup per quarter hour."""

    def __init__(self, tz: ZoneInfo) -> None:
        self._tz = tz
        self._cache: dict[int, int] = {}

    def __call__(self, moment: int) -> int:
        quarter = moment // _QUARTER_US
        day = self._cache.get(quarter)
        if day is None:
            day = self._cache[quarter] = local_date(us_to_datetime(quarter * _QUARTER_US), self._tz).toordinal()
        return day


@dataclass(frozen=True, slots=True)
class Ref:
    """Where one evidence record is: enough to name it in a :class:`~evtrack.report.Proof`."""

    moment: int
    """When the report counts it (µs; the placed time of a misdated record)."""
    time: int
    """The time the record carries (µs)."""
    file: str
    host: str
    channel: str
    record_id: int | None
    event_id: int
    rule: str
    user: str


def ref_of(values: Mapping[str, Any], moment: int | None = None, recorded: str = "time") -> Ref:
    """The record of one evidence or session row (:meth:`evtrack.rows.Selection.rows_at`); ``moment`` (default:
    its ``time``) is when the report counts it, ``recorded`` the column with the time it carries."""
    name = values["user"] or ""
    if values["domain"]:
        name = f"{values['domain']}\\{name}"
    if values.get("sid"):
        name = f"{name} [{values['sid']}]"
    return Ref(moment=values["time"] if moment is None else moment, time=values[recorded],
               file=values["source"] or "", host=values["host"] or "", channel=values["channel"] or "",
               record_id=values["record_id"], event_id=values["event_id"], rule=values.get("reason") or "",
               user=name)


@dataclass
class Person:
    """One person's evidence: times in compact arrays, the rest per host, reason, day or session."""

    identity: Identity
    times: array[int] = field(default_factory=_times)
    """Every evidence time (µs), sorted once collected."""
    renewals: array[int] = field(default_factory=_times)
    """Sign-ins and reconnects only: what renews the estimated CAL (logoffs and disconnects do not)."""
    starts: array[int] = field(default_factory=_times)
    """Sign-ins as flat (host code, time, log code) triples; :attr:`session_starts` once clustered."""
    reconnects: array[int] = field(default_factory=_times)
    hosts: set[str] = field(default_factory=set)
    reasons: set[str] = field(default_factory=set)
    session_starts: array[int] = field(default_factory=_times)
    """Session starts, one per logon seen by several logs (see :func:`evtrack.rows.cluster`), sorted."""
    reconnect_starts: array[int] = field(default_factory=_times)
    proof_days: dict[int, int] = field(default_factory=dict)
    """Per local day (ordinal in the report's zone): a slot of :attr:`Tally.proofs` holding the first and last
    evidence record (the audit trail keeps two records per person and day, never all of them; windows are whole
    local days)."""
    carried_start: array[int] = field(default_factory=_times)
    """Observed connected intervals ``[start, end)`` of this person's sessions (for sessions carried over)."""
    carried_end: array[int] = field(default_factory=_times)
    carried_by: array[int] = field(default_factory=_times)
    """The session row that connected each of them (see :attr:`evtrack.concurrency.Sessions.rows`)."""

    @property
    def carried(self) -> list[tuple[int, int]]:
        return list(zip(self.carried_start, self.carried_end, strict=True))

    def connected_between(self, start: int, end: int) -> bool:
        return any(lo < end and hi > start for lo, hi in zip(self.carried_start, self.carried_end, strict=True))


@dataclass(slots=True)
class Excluded:
    """Evidence of a person the settings leave out (an exclusion or a built-in account)."""

    identity: Identity
    events: int
    first: int
    last: int


class _Columns:
    """The columns of one batch of evidence rows as numpy codes and their distinct values, each made once."""

    def __init__(self, batch: pa.Table) -> None:
        self._batch = batch
        self.count = batch.num_rows
        self._encoded: dict[str, tuple[np.ndarray, list[Any]]] = {}
        self._numbers: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __getitem__(self, name: str) -> tuple[np.ndarray, list[Any]]:
        """(code per row, distinct values): ``values[codes[row]]`` is the row's value (None for a null)."""
        found = self._encoded.get(name)
        if found is None:
            import numpy as np
            import pyarrow as pa
            import pyarrow.compute as pc

            column = self._batch.column(name).combine_chunks()
            if pa.types.is_dictionary(column.type):
                column = column.cast(column.type.value_type)
            encoded = pc.dictionary_encode(column, null_encoding="encode")
            found = self._encoded[name] = (encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64),
                                           encoded.dictionary.to_pylist())
        return found

    def value(self, name: str, row: int) -> Any:
        codes, values = self[name]
        return values[codes[row]]

    def numbers(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """An integer column as int64 values (0 for a null), and where it has a value."""
        found = self._numbers.get(name)
        if found is None:
            import pyarrow as pa
            import pyarrow.compute as pc

            column = self._batch.column(name).cast(pa.int64())
            found = self._numbers[name] = (pc.fill_null(column, 0).to_numpy(),
                                           pc.is_valid(column).to_numpy(zero_copy_only=False))
        return found


def _runs(groups: np.ndarray) -> list[np.ndarray]:
    """The rows of each group, in row order, by increasing group number (for groups that have rows)."""
    import numpy as np

    order = np.argsort(groups, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(groups[order])) + 1) if len(order) else []


class _Numbered:
    """The distinct people (identity objects, None for nobody) a batch resolves to, numbered as they come."""

    def __init__(self) -> None:
        self.identities: list[Identity | None] = []
        self._numbers: dict[int, int] = {}

    def __call__(self, identity: Identity | None) -> int:
        number = self._numbers.get(id(identity))
        if number is None:
            number = self._numbers[id(identity)] = len(self.identities)
            self.identities.append(identity)
        return number


def _extend(target: array[int], values: np.ndarray) -> None:
    """Append numpy integers to a compact array, without a Python int per value."""
    import numpy as np

    target.frombytes(np.ascontiguousarray(values, dtype=np.dtype(target.typecode)).tobytes())


class Devices:
    """Client devices of counted evidence: per device, parallel arrays of the time, name, address and user."""

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}
        """Device key -> its number: an index into :attr:`_seen`."""
        self._seen: list[tuple[array[int], array[int], array[int], array[int]]] = []
        self._slots: dict[tuple[str, str | None, str | None], tuple[int, int, int]] = {}
        self._codes: dict[str, int] = {}
        self._text: list[str] = []
        self._sorted: dict[str, np.ndarray] = {}

    def __bool__(self) -> bool:
        return bool(self._seen)

    def code(self, text: str | None) -> int:
        """A number for a name, address or user (-1 for None)."""
        if text is None:
            return -1
        code = self._codes.get(text)
        if code is None:
            code = self._codes[text] = len(self._text)
            self._text.append(text)
        return code

    def slot(self, device: tuple[str, str | None, str | None]) -> tuple[int, int, int]:
        """(the device's number, the client name's code, the address's code) of a device as
        :func:`evtrack.rows.device` gives it (key, client name, address)."""
        found = self._slots.get(device)
        if found is None:
            key, name, address = device
            number = self._numbers.get(key)
            if number is None:
                number = self._numbers[key] = len(self._seen)
                self._seen.append((array("q"), array("i"), array("i"), array("i")))
            found = self._slots[device] = (number, self.code(name), self.code(address))
        return found

    def extend(self, number: int, moments: np.ndarray, names: np.ndarray, addresses: np.ndarray,
               users: np.ndarray) -> None:
        """Evidence from device ``number`` (:meth:`slot`): per record its time, and the codes (:meth:`code`) of its
        client name, address and user."""
        for target, values in zip(self._seen[number], (moments, names, addresses, users), strict=True):
            _extend(target, values)

    def settle(self) -> None:
        import numpy as np

        self._sorted = {key: np.sort(np.frombuffer(self._seen[number][0], dtype=np.int64))
                        for key, number in self._numbers.items()}

    def seen_between(self, start: int, end: int) -> int:
        """How many devices have evidence in ``[start, end)``."""
        import numpy as np

        return sum(1 for times in self._sorted.values() if np.searchsorted(times, start) < np.searchsorted(times, end))

    def usage(self, lo: int, hi: int) -> tuple[DeviceUsage, ...]:
        """The devices with evidence in ``[lo, hi)``, by key; names, addresses and users from that evidence only."""
        import numpy as np

        rows = []
        for key in sorted(self._numbers):
            moments, *codes = self._seen[self._numbers[key]]
            times = np.frombuffer(moments, dtype=np.int64)
            names, addresses, users = (np.frombuffer(values, dtype=np.intc) for values in codes)
            inside = (times >= lo) & (times < hi)
            if not inside.any():
                continue
            named = names[inside]
            named = named[named >= 0]
            rows.append(DeviceUsage(
                key=key, name=self._text[named[0]] if len(named) else None,
                addresses=tuple(sorted({self._text[c] for c in addresses[inside].tolist() if c >= 0})),
                users=tuple(sorted({self._text[c] for c in users[inside].tolist()})),
                first_seen=us_to_datetime(int(times[inside].min())), last_seen=us_to_datetime(int(times[inside].max())),
            ))
        return tuple(rows)


class Tally:
    """Everything a report keeps of its RDP evidence, filled batch by batch (:meth:`add`), then :meth:`settle`."""

    def __init__(self, evidence: Selection, *, resolver: IdentityResolver, hosts: HostNames,
                 counted: Callable[[str], bool], in_scope: Callable[[Identity], bool | None],
                 misdated: Mapping[tuple[str, str, int, int], int], tz: ZoneInfo, now_us: int,
                 kinds: Mapping[str, str]) -> None:
        self.evidence = evidence
        """The evidence rows (:func:`evtrack.rows.evidence_table`): proofs are positions in it."""
        self._resolver, self._hosts, self._counted, self._in_scope = resolver, hosts, counted, in_scope
        self._misdated, self._misdated_ids = misdated, {key[2] for key in misdated}
        self._local_day, self._now_us, self._kinds = LocalDays(tz), now_us, kinds
        self.people: dict[str, Person] = {}
        self.excluded: dict[str, Excluded] = {}
        self.out_of_scope: set[str] = set()
        self.undecided_scope: set[str] = set()
        """People whose records cannot tell whether they are in the scope (``in_scope`` said None)."""
        self.host_people: dict[str, set[str]] = defaultdict(set)
        self.uncounted_hosts: set[str] = set()
        self.suspicious = 0
        """RDP rows with a missing or impossible time (not counted)."""
        self.misdated: list[MisdatedEvidence] = []
        self.devices = Devices()
        self.ledger = SourceLedger()
        self.proofs = array("q")
        """Four values per person and day: the first record's time and row, the last record's time and row."""
        self._host_codes: dict[str, int] = {}
        self._logs: dict[tuple[str, int | None], int] = {}
        self._labels: dict[tuple[str, str | None], str] = {}
        self._scope: dict[int, tuple[Identity, bool | None]] = {}
        self._identities: dict[tuple[str | None, str | None, str | None], Identity | None] = {}
        self._persons: list[Person] = []
        """The people of :attr:`people` in order, numbered by their position (see :meth:`_people_of`)."""
        self._number: dict[str, int] = {}

    def read(self) -> Tally:
        """Add every evidence row, in bounded batches, and settle."""
        import pyarrow as pa

        for offset, batch in self.evidence.batches(TALLY_ROWS):
            self.add(batch, offset)
            del batch
            # Arrow's allocator keeps what a batch freed for reuse, which the numpy work between batches cannot
            # use: handed back, the peak of the dense 300 MB set drops by ~30 MB (benchmarks/README.md)
            pa.default_memory_pool().release_unused()
        self.settle()
        return self

    def _label(self, channel: str, source: str | None) -> str:
        """The evidence source a row counts for."""
        found = self._labels.get((channel, source))
        if found is None:
            found = self._labels[(channel, source)] = source_label(channel, self._kinds.get(source or ""))
        return found

    def _scoped(self, identity: Identity) -> bool | None:
        found = self._scope.get(id(identity))
        if found is None:
            found = self._scope[id(identity)] = (identity, self._in_scope(identity))
        return found[1]

    def _resolve(self, user: str | None, domain: str | None, sid: str | None, host: str,
                 moment: int) -> Identity | None:
        """:meth:`IdentityResolver.resolve`, memoised per account where no name was held by several SIDs (only
        then does the answer depend on the host and time)."""
        if self._resolver.contested_names:
            return self._resolver.resolve(user, domain, sid, host, moment)
        account = (user, domain, sid)
        try:
            return self._identities[account]
        except KeyError:
            found = self._identities[account] = self._resolver.resolve(user, domain, sid, host, moment)
            return found

    def _log(self, channel: str, event_id: int | None) -> int:
        code = self._logs.get((channel, event_id))
        if code is None:
            code = self._logs[(channel, event_id)] = len(self._logs)
        return code

    def add(self, batch: pa.Table, offset: int) -> None:
        """Tally one batch of evidence rows; ``offset`` is the position of its first row.

        The work per row is numpy's: Python runs once per distinct value (host, account, device, channel) and
        per group (person and day, person and source, ...) of the batch, never once per row."""
        import numpy as np
        import pyarrow.compute as pc

        rows = _Columns(batch)
        if not rows.count:
            return
        times = pc.fill_null(batch.column("time"), MIN_PLAUSIBLE_US - 1).to_numpy()
        plausible = (times >= MIN_PLAUSIBLE_US) & (times <= latest_plausible(self._now_us))
        self.suspicious += rows.count - int(plausible.sum())
        host_codes, host_values = rows["host"]
        host_keys = [self._hosts.key(name) for name in host_values]
        host_code = np.array([self._host_codes.setdefault(key, len(self._host_codes)) for key in host_keys],
                             dtype=np.int64)[host_codes]
        counted = np.array([self._counted(key) for key in host_keys], dtype=bool)[host_codes] & plausible
        for code in np.unique(host_codes[plausible & ~counted]).tolist():
            self.uncounted_hosts.add(host_keys[code])
        moments = self._placed(rows, times, counted)
        identity_codes, identities = self._identities_of(rows, moments, plausible, host_keys)
        known = np.array([identity is not None for identity in identities], dtype=bool)[identity_codes] & plausible
        self._tally_uncounted(rows, known & ~counted, identity_codes, identities, host_keys)
        excluded = np.array([identity is not None and identity.excluded is not None for identity in identities],
                            dtype=bool)[identity_codes] & known & counted
        self._tally_excluded(np.flatnonzero(excluded), identity_codes, identities, moments)
        left = np.flatnonzero(known & counted & ~excluded)
        verdicts = [self._scoped(identity) if identity is not None and identity.excluded is None else False
                    for identity in identities]
        scoped = np.array([v is True for v in verdicts], dtype=bool)[identity_codes[left]]
        undecided = np.array([v is None for v in verdicts], dtype=bool)[identity_codes[left]]
        for code in np.unique(identity_codes[left[~scoped & ~undecided]]).tolist():
            self.out_of_scope.add(identities[code].key)
        for code in np.unique(identity_codes[left[undecided]]).tolist():
            self.undecided_scope.add(identities[code].key)
        chosen = left[scoped]
        if len(chosen):
            person_of = self._people_of(identity_codes[chosen], identities)
            self._tally_people(rows, chosen, person_of, moments[chosen], chosen + offset, host_code[chosen])

    def _placed(self, rows: _Columns, times: np.ndarray, counted: np.ndarray) -> np.ndarray:
        """When the report counts each row: its time, or where a misdated record was placed (noted in
        :attr:`misdated`, in row order)."""
        import numpy as np

        moments: np.ndarray = times.copy()
        if not self._misdated_ids:
            return moments
        record_ids, has_id = rows.numbers("record_id")
        candidates = np.flatnonzero(counted & has_id
                                    & np.isin(record_ids, np.fromiter(self._misdated_ids, dtype=np.int64)))
        for row in candidates.tolist():
            name, channel, record_id, time = (rows.value("host", row), rows.value("channel", row) or "",
                                              int(record_ids[row]), int(times[row]))
            placed = self._misdated.get((name, channel.lower(), record_id, time))
            if placed is None:
                continue
            user, domain = rows.value("user", row), rows.value("domain", row)
            self.misdated.append(MisdatedEvidence(
                host=self._hosts.key(name), channel=channel, record_id=record_id,
                event_id=rows.value("event_id", row), user=f"{domain}\\{user}" if domain else (user or ""),
                time=us_to_datetime(time), placed=us_to_datetime(placed)))
            moments[row] = placed
        return moments

    def _identities_of(self, rows: _Columns, moments: np.ndarray, plausible: np.ndarray, host_keys: list[str]
                       ) -> tuple[np.ndarray, list[Identity | None]]:
        """Each row's person, as a code into the list returned (None: no person). Resolved once per account
        (user, domain, SID); per row only where a name was held by several SIDs (then the answer depends on the
        host and the time)."""
        import numpy as np

        users, domains, sids, hosts = (rows[name] for name in ("user", "domain", "sid", "host"))
        codes: list[int] = []
        number = _Numbered()
        number(None)  # code 0: no person (and every row the contested path leaves out)

        if self._resolver.contested_names:
            resolve = self._resolver.resolve
            for row in np.flatnonzero(plausible).tolist():
                codes.append(number(resolve(users[1][users[0][row]], domains[1][domains[0][row]],
                                            sids[1][sids[0][row]], host_keys[hosts[0][row]], int(moments[row]))))
            per_row = np.zeros(rows.count, dtype=np.int64)
            per_row[plausible] = codes
            return per_row, number.identities
        accounts, firsts = groups_of(users[0], domains[0], sids[0])
        for row in firsts.tolist():
            codes.append(number(self._resolve(users[1][users[0][row]], domains[1][domains[0][row]],
                                              sids[1][sids[0][row]], host_keys[hosts[0][row]], int(moments[row]))))
        return np.array(codes, dtype=np.int64)[accounts], number.identities

    def _tally_uncounted(self, rows: _Columns, mask: np.ndarray, identity_codes: np.ndarray,
                         identities: list[Identity | None], host_keys: list[str]) -> None:
        """People with evidence on hosts the settings do not count (the per-host table still shows them)."""
        import numpy as np

        host_codes = rows["host"][0]
        picked = np.flatnonzero(mask)
        _, firsts = groups_of(host_codes[picked], identity_codes[picked])
        for row in picked[firsts].tolist():
            identity = identities[identity_codes[row]]
            if identity is not None and identity.excluded is None:
                self.host_people[host_keys[host_codes[row]]].add(identity.key)

    def _tally_excluded(self, chosen: np.ndarray, identity_codes: np.ndarray, identities: list[Identity | None],
                        moments: np.ndarray) -> None:
        """Evidence of people the settings leave out: per person, how much, when, and the last form seen."""
        import numpy as np

        if not len(chosen):
            return
        numbers: dict[str, int] = {}
        key_of = np.array([numbers.setdefault(identity.key if identity is not None else "", len(numbers))
                           for identity in identities], dtype=np.int64)
        groups, _ = groups_of(key_of[identity_codes[chosen]])
        for rows in _runs(groups):
            picked = chosen[rows]
            identity = identities[identity_codes[picked[-1]]]
            assert identity is not None
            first, last, events = int(moments[picked].min()), int(moments[picked].max()), len(picked)
            left_out = self.excluded.get(identity.key)
            if left_out is None:
                self.excluded[identity.key] = Excluded(identity, events, first, last)
            else:
                left_out.identity = identity
                left_out.events += events
                left_out.first, left_out.last = min(left_out.first, first), max(left_out.last, last)

    def _people_of(self, identity_codes: np.ndarray, identities: list[Identity | None]) -> np.ndarray:
        """The person (an index into :attr:`_persons`) of each row; people new to the tally are added in the order
        of their first row."""
        import numpy as np

        lookup = np.zeros(len(identities), dtype=np.int64)
        _, firsts = groups_of(identity_codes)
        for code in identity_codes[firsts].tolist():
            identity = identities[code]
            assert identity is not None
            person = self.people.get(identity.key)
            if person is None:
                person = self.people[identity.key] = Person(identity)
                self._number[identity.key] = len(self._persons)
                self._persons.append(person)
            lookup[code] = self._number[identity.key]
        found: np.ndarray = lookup[identity_codes]
        return found

    def _tally_people(self, rows: _Columns, chosen: np.ndarray, person_of: np.ndarray, moments: np.ndarray,
                      positions: np.ndarray, host_code: np.ndarray) -> None:
        """The counted evidence ``chosen`` (rows of the batch, at ``positions``) of the people ``person_of``."""
        import numpy as np

        persons, hosts = self._persons, list(self._host_codes)
        for group in _runs(person_of):
            _extend(persons[person_of[group[0]]].times, moments[group])
        self._prove(person_of, moments, positions)
        _, firsts = groups_of(person_of, host_code)
        for row in firsts.tolist():
            person = persons[person_of[row]]
            person.hosts.add(hosts[host_code[row]])
            self.host_people[hosts[host_code[row]]].add(person.identity.key)
        reason_codes, reasons = rows["reason"]
        _, firsts = groups_of(person_of, reason_codes[chosen])
        for row in firsts.tolist():
            persons[person_of[row]].reasons.add(reasons[reason_codes[chosen[row]]])
        channel_codes, channels = rows["channel"]
        source_codes, sources = rows["source"]
        labels, firsts = groups_of(channel_codes[chosen], source_codes[chosen])
        label_names = [self._label(channels[channel_codes[chosen[row]]] or "", sources[source_codes[chosen[row]]])
                       for row in firsts.tolist()]
        by_person = self.ledger.by_person
        groups, firsts = groups_of(person_of, labels)
        for row, group in zip(firsts.tolist(), _runs(groups), strict=True):
            _extend(by_person[persons[person_of[row]].identity.key][label_names[labels[row]]], moments[group])
        _, firsts = groups_of(host_code, channel_codes[chosen])
        for row in firsts.tolist():
            self.ledger.channels[hosts[host_code[row]]].add((channels[channel_codes[chosen[row]]] or "").lower())
        self._tally_devices(rows, chosen, person_of, moments)
        kind_codes, kinds = rows["kind"]
        kind = np.array([{"logon": 1, "reconnect": 2}.get(value or "", 0) for value in kinds],
                        dtype=np.int8)[kind_codes[chosen]]
        starting = np.flatnonzero(kind > 0)
        if not len(starting):
            return
        event_codes, event_ids = rows["event_id"]
        logs, firsts = groups_of(channel_codes[chosen[starting]], event_codes[chosen[starting]])
        log_codes = np.array([self._log(channels[channel_codes[chosen[starting[row]]]] or "",
                                        event_ids[event_codes[chosen[starting[row]]]]) for row in firsts.tolist()],
                             dtype=np.int64)[logs]
        triples = np.column_stack((host_code[starting], moments[starting], log_codes))
        for group in _runs(person_of[starting]):
            person = persons[person_of[starting[group[0]]]]
            for flag, flat in ((1, person.starts), (2, person.reconnects)):
                picked = group[kind[starting[group]] == flag]
                if len(picked):
                    _extend(flat, triples[picked].ravel())
            _extend(person.renewals, moments[starting[group]])

    def _prove(self, person_of: np.ndarray, moments: np.ndarray, positions: np.ndarray) -> None:
        """Per person and local day, the first and last record (the earliest of equal first times, the latest of
        equal last times)."""
        import numpy as np

        quarters, at = np.unique(moments // _QUARTER_US, return_inverse=True)
        days = np.array([self._local_day(int(quarter) * _QUARTER_US) for quarter in quarters.tolist()],
                        dtype=np.int64)[at]
        order = np.lexsort((positions, moments, days, person_of))
        keys = np.column_stack((person_of[order], days[order]))
        starts = np.flatnonzero(np.r_[True, (keys[1:] != keys[:-1]).any(axis=1)])
        ends = np.r_[starts[1:], len(order)] - 1
        proofs, persons = self.proofs, self._persons
        for first, last in zip(order[starts].tolist(), order[ends].tolist(), strict=True):
            person, day = persons[person_of[first]], int(days[first])
            low, low_at, high, high_at = int(moments[first]), int(positions[first]), int(moments[last]), \
                int(positions[last])
            slot = person.proof_days.get(day)
            if slot is None:
                person.proof_days[day] = len(proofs)
                proofs.extend((low, low_at, high, high_at))
                continue
            if low < proofs[slot]:
                proofs[slot], proofs[slot + 1] = low, low_at
            if high >= proofs[slot + 2]:
                proofs[slot + 2], proofs[slot + 3] = high, high_at

    def _tally_devices(self, rows: _Columns, chosen: np.ndarray, person_of: np.ndarray, moments: np.ndarray) -> None:
        """The client devices of the counted evidence (see :func:`evtrack.rows.device`)."""
        import numpy as np

        client_codes, clients = rows["client_name"]
        address_codes, addresses = rows["address"]
        pairs, firsts = groups_of(client_codes[chosen], address_codes[chosen])
        found = [device(clients[client_codes[chosen[row]]], addresses[address_codes[chosen[row]]])
                 for row in firsts.tolist()]
        if not any(found):
            return
        devices = self.devices
        slots = np.array([devices.slot(one) if one is not None else (-1, -1, -1) for one in found],
                         dtype=np.int64).reshape(-1, 3)[pairs]
        users = np.array([devices.code(person.identity.key) for person in self._persons], dtype=np.int64)[person_of]
        seen = np.flatnonzero(slots[:, 0] >= 0)
        for group in _runs(slots[seen, 0]):
            picked = seen[group]
            devices.extend(int(slots[picked[0], 0]), moments[picked], slots[picked, 1], slots[picked, 2],
                           users[picked])

    def sessions(self, connected: Sessions) -> np.ndarray:
        """Which ``connected`` sessions are of counted people (resolved by the account that connected them; not
        left out, in scope; a session whose account no event names still counts). A closed one of a person with
        evidence is also kept as that person's carried interval (:attr:`Person.carried_start`)."""
        import numpy as np

        count = len(connected)
        if not count:
            return np.zeros(0, dtype=bool)
        numbered = _Numbered()

        def number(index: int) -> int:
            user, domain = connected.accounts[int(connected.account[index])]
            return numbered(self._resolver.resolve(user, domain, None, connected.hosts[int(connected.host[index])],
                                                   int(connected.start[index])))

        if self._resolver.contested_names:  # the answer depends on the host and the time: per session
            codes = np.array([number(index) for index in range(count)], dtype=np.int64)
        else:
            accounts, firsts = groups_of(connected.account)
            codes = np.array([number(index) for index in firsts.tolist()], dtype=np.int64)[accounts]
        identities = numbered.identities
        unnamed = np.array([user is None for user, _ in connected.accounts], dtype=bool)[connected.account]
        counts = np.array([identity is not None and identity.excluded is None and self._scoped(identity)
                           for identity in identities], dtype=bool)[codes]
        counted: np.ndarray = np.where(np.array([identity is None for identity in identities])[codes], unnamed,
                                       counts)
        person_of = np.array([self._number.get(identity.key, -1) if identity is not None else -1
                              for identity in identities], dtype=np.int64)[codes]
        carried = np.flatnonzero(counts & ~connected.open_ended & (person_of >= 0))
        for group in _runs(person_of[carried]):
            person, picked = self._persons[person_of[carried[group[0]]]], carried[group]
            _extend(person.carried_start, connected.start[picked])
            _extend(person.carried_end, connected.end[picked])
            _extend(person.carried_by, connected.opened_by[picked])
        return counted

    def _items(self, flat: array[int]) -> list[tuple[str, int, str]]:
        hosts = list(self._host_codes)
        logs = [f"{channel.lower()}:{event_id}" for channel, event_id in self._logs]
        return [(hosts[h], moment, logs[log]) for h, moment, log in zip(flat[0::3], flat[1::3], flat[2::3],
                                                                      strict=True)]

    def _clustered(self, items: list[tuple[str, int, str]]) -> array[int]:
        return array("q", [moment for _, moment in cluster(items)])

    def settle(self) -> None:
        """Sort what was collected; cluster session starts."""
        for person in self.people.values():
            person.times = sorted_times(person.times)
            person.renewals = sorted_times(person.renewals)
            reconnects = self._items(person.reconnects)
            person.session_starts = self._clustered(without_reconnects(self._items(person.starts), reconnects))
            person.reconnect_starts = self._clustered(reconnects)
            person.starts, person.reconnects = array("q"), array("q")
            if not person.renewals or person.times[0] < person.renewals[0]:
                # a session that began before the logs: its sign-in was no later than its first evidence
                person.renewals.insert(0, person.times[0])
        self.ledger.settle()
        self.devices.settle()

    def window_refs(self, people: Sequence[Person], first_day: int, end_day: int) -> list[tuple[Ref, Ref] | None]:
        """For each of ``people``, the first and last evidence record in the local days ``[first_day, end_day)``
        (the same record twice where there is one), None where there is none; the records read in one take."""
        wanted: list[tuple[int, int, int, int] | None] = []
        for person in people:
            days = sorted(day for day in person.proof_days if first_day <= day < end_day)
            if not days:
                wanted.append(None)
                continue
            first, last = person.proof_days[days[0]], person.proof_days[days[-1]] + 2
            wanted.append((self.proofs[first], self.proofs[first + 1], self.proofs[last], self.proofs[last + 1]))
        positions = sorted({p for item in wanted if item is not None for p in (item[1], item[3])})
        rows = dict(zip(positions, self.evidence.rows_at(positions), strict=True))
        refs: list[tuple[Ref, Ref] | None] = []
        for item in wanted:
            if item is None:
                refs.append(None)
                continue
            first_ref = ref_of(rows[item[1]], item[0])
            refs.append((first_ref, first_ref if item[:2] == item[2:] else ref_of(rows[item[3]], item[2])))
        return refs
