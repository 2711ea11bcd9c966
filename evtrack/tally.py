"""The RDP evidence of one report, tallied as it streams past: per person, device, host and evidence source.

:func:`evtrack.rows.evidence_table` gives the evidence rows sorted and each record once; :meth:`Tally.add` reads
them in bounded batches. Each row is looked at once and leaves only compact facts behind: its time in its
person's time array and in the source ledger (8 bytes each), its device's arrays (20 bytes), and, per person and
local day, the first and last record as positions in the evidence rows (made into a :class:`Ref` only for the
proofs a report shows). No Python object per event outlives its batch.
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
from evtrack.rows import EVIDENCE_COLUMNS, Selection, cluster, device, without_reconnects
from evtrack.sources.base import plausible_time, us_to_datetime
from evtrack.windows import local_date

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    import numpy as np
    import pyarrow as pa

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


class Devices:
    """Client devices of counted evidence: per device, parallel arrays of the time, name, address and user."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[array[int], array[int], array[int], array[int]]] = {}
        self._slots: dict[tuple[str, str | None, str | None], tuple[tuple[array[int], ...], int, int]] = {}
        self._codes: dict[str, int] = {}
        self._text: list[str] = []
        self._sorted: dict[str, np.ndarray] = {}

    def __bool__(self) -> bool:
        return bool(self._seen)

    def _code(self, text: str | None) -> int:
        if text is None:
            return -1
        code = self._codes.get(text)
        if code is None:
            code = self._codes[text] = len(self._text)
            self._text.append(text)
        return code

    def add(self, device: tuple[str, str | None, str | None], moment: int, user: str) -> None:
        """Evidence of ``user`` at ``moment`` from ``device`` (key, client name, address: see
        :func:`evtrack.rows.device`)."""
        slot = self._slots.get(device)
        if slot is None:
            key, name, address = device
            seen = self._seen.get(key)
            if seen is None:
                seen = self._seen[key] = (array("q"), array("i"), array("i"), array("i"))
            slot = self._slots[device] = (seen, self._code(name), self._code(address))
        arrays, name_code, address_code = slot
        arrays[0].append(moment)
        arrays[1].append(name_code)
        arrays[2].append(address_code)
        arrays[3].append(self._code(user))

    def settle(self) -> None:
        import numpy as np

        self._sorted = {key: np.sort(np.frombuffer(seen[0], dtype=np.int64)) for key, seen in self._seen.items()}

    def seen_between(self, start: int, end: int) -> int:
        """How many devices have evidence in ``[start, end)``."""
        import numpy as np

        return sum(1 for times in self._sorted.values() if np.searchsorted(times, start) < np.searchsorted(times, end))

    def usage(self, lo: int, hi: int) -> tuple[DeviceUsage, ...]:
        """The devices with evidence in ``[lo, hi)``, by key; names, addresses and users from that evidence only."""
        import numpy as np

        rows = []
        for key in sorted(self._seen):
            moments, *codes = self._seen[key]
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
                 counted: Callable[[str], bool], in_scope: Callable[[Identity], bool],
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
        self._logs: dict[tuple[str, int], int] = {}
        self._labels: dict[tuple[str, str | None], str] = {}
        self._scope: dict[int, tuple[Identity, bool]] = {}
        self._identities: dict[tuple[str | None, str | None, str | None], Identity | None] = {}

    def read(self) -> Tally:
        """Add every evidence row, in bounded batches, and settle."""
        for offset, batch in self.evidence.batches():
            self.add(batch, offset)
        self.settle()
        return self

    def _label(self, channel: str, source: str | None) -> str:
        """The evidence source a row counts for."""
        found = self._labels.get((channel, source))
        if found is None:
            found = self._labels[(channel, source)] = source_label(channel, self._kinds.get(source or ""))
        return found

    def _scoped(self, identity: Identity) -> bool:
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

    def _log(self, channel: str, event_id: int) -> int:
        code = self._logs.get((channel, event_id))
        if code is None:
            code = self._logs[(channel, event_id)] = len(self._logs)
        return code

    def add(self, batch: pa.Table, offset: int) -> None:
        """Tally one batch of evidence rows; ``offset`` is the position of its first row."""
        host_key, counted, local_day = self._hosts.key, self._counted, self._local_day
        people, proofs, ledger, host_people = self.people, self.proofs, self.ledger, self.host_people
        resolve = self._resolve
        columns: list[list[Any]] = [batch.column(name).to_pylist() for name in EVIDENCE_COLUMNS]
        for position, (time, name, user, domain, sid, kind, reason, event_id, channel, record_id, address, client,
                       source) in enumerate(zip(*columns, strict=True), offset):
            if not plausible_time(time, self._now_us):
                self.suspicious += 1
                continue
            host = host_key(name)
            if not counted(host):
                self.uncounted_hosts.add(host)
                found = resolve(user, domain, sid, host, time)
                if found is not None and found.excluded is None:
                    host_people[host].add(found.key)
                continue
            moment = time
            if record_id in self._misdated_ids:
                placed = self._misdated.get((name, channel.lower(), record_id, time))
                if placed is not None:
                    self.misdated.append(MisdatedEvidence(
                        host=host, channel=channel, record_id=record_id, event_id=event_id,
                        user=f"{domain}\\{user}" if domain else (user or ""), time=us_to_datetime(time),
                        placed=us_to_datetime(placed)))
                    moment = placed
            identity = resolve(user, domain, sid, host, moment)
            if identity is None:
                continue
            key = identity.key
            if identity.excluded is not None:
                left_out = self.excluded.get(key)
                if left_out is None:
                    self.excluded[key] = Excluded(identity, 1, moment, moment)
                else:
                    left_out.identity = identity
                    left_out.events += 1
                    left_out.first, left_out.last = min(left_out.first, moment), max(left_out.last, moment)
                continue
            if not self._scoped(identity):
                self.out_of_scope.add(key)
                continue
            person = people.get(key)
            if person is None:
                person = people[key] = Person(identity)
            person.times.append(moment)
            day = local_day(moment)
            slot = person.proof_days.get(day)
            if slot is None:
                person.proof_days[day] = len(proofs)
                proofs.extend((moment, position, moment, position))
            elif moment < proofs[slot]:
                proofs[slot], proofs[slot + 1] = moment, position
            elif moment >= proofs[slot + 2]:
                proofs[slot + 2], proofs[slot + 3] = moment, position
            person.hosts.add(host)
            person.reasons.add(reason)
            ledger.add(key, self._label(channel, source), host, channel, moment)
            host_people[host].add(key)
            found_device = device(client, address)
            if found_device is not None:
                self.devices.add(found_device, moment, key)
            if kind == "logon" or kind == "reconnect":
                host_code = self._host_codes.setdefault(host, len(self._host_codes))
                (person.starts if kind == "logon" else person.reconnects).extend(
                    (host_code, moment, self._log(channel, event_id)))
                person.renewals.append(moment)

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
