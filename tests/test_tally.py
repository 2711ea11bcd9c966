"""The tally works on whole batches in numpy; a per-row loop (the way it was first written, kept here as the
specification) must leave exactly the same facts behind, on any evidence rows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evtrack import rows as table_rows
from evtrack.catalogue import GATEWAY, LSM
from evtrack.concurrency import Sessions
from evtrack.events import encode, encoded_schema, logon_schema
from evtrack.hosts import HostNames
from evtrack.identity import Exclusions, Identity, IdentityResolver
from evtrack.report import MisdatedEvidence
from evtrack.rows import EVIDENCE_COLUMNS, device
from evtrack.sources.base import plausible_time, us_to_datetime
from evtrack.tally import Excluded, Person, Tally

DAY = 86_400_000_000
START = 1_700_000_000_000_000  # 2023-11-14
NOW = START + 30 * DAY


class RowByRow(Tally):
    """The tally as first written: every row looked at in Python, one at a time."""

    def add(self, batch: pa.Table, offset: int) -> None:
        host_key, counted, local_day = self._hosts.key, self._counted, self._local_day
        people, proofs, ledger, host_people = self.people, self.proofs, self.ledger, self.host_people
        columns = [batch.column(name).to_pylist() for name in EVIDENCE_COLUMNS]
        for position, (time, name, user, domain, sid, kind, reason, event_id, channel, record_id, address, client,
                       source) in enumerate(zip(*columns, strict=True), offset):
            if not plausible_time(time, self._now_us):
                self.suspicious += 1
                continue
            host = host_key(name)
            if not counted(host):
                self.uncounted_hosts.add(host)
                found = self._resolve(user, domain, sid, host, time)
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
            identity = self._resolve(user, domain, sid, host, moment)
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
                number, name_code, address_code = self.devices.slot(found_device)
                self.devices.extend(number, np.array([moment]), np.array([name_code]), np.array([address_code]),
                                    np.array([self.devices.code(key)]))
            if kind == "logon" or kind == "reconnect":
                host_code = self._host_codes.setdefault(host, len(self._host_codes))
                (person.starts if kind == "logon" else person.reconnects).extend(
                    (host_code, moment, self._log(channel, event_id)))
                person.renewals.append(moment)

    def sessions(self, connected: Sessions) -> np.ndarray:
        counted_sessions = np.zeros(len(connected), dtype=bool)
        for index in range(len(connected)):
            interval = connected.interval(index)
            identity = self._resolver.resolve(interval.user, interval.domain, None, interval.host, interval.start)
            if identity is None:
                counted_sessions[index] = interval.user is None
                continue
            if identity.excluded is not None or not self._in_scope(identity):
                continue
            counted_sessions[index] = True
            if not interval.open_ended and identity.key in self.people:
                person = self.people[identity.key]
                person.carried_start.append(interval.start)
                person.carried_end.append(interval.end)
                person.carried_by.append(interval.opened_by)
        return counted_sessions


def _tallies(rows: list[dict[str, Any]], *, misdated: Mapping[tuple[str, str, int, int], int], tz: str,
             batch_rows: int, out_of_scope: str) -> tuple[Tally, Tally]:
    table = pa.Table.from_pylist(rows, schema=logon_schema())
    table = pa.Table.from_batches([encode(batch) for batch in table.to_batches(max_chunksize=7)],
                                  schema=encoded_schema())  # as a report reads it: dictionary-encoded
    hosts = HostNames([h for h in table["host"].to_pylist() if h])
    resolver = IdentityResolver(table_rows.observations(table),
                                exclusions=Exclusions.build(names=["CONTOSO\\carol"]))
    if resolver.contested_names:
        resolver.add_sightings(table_rows.sightings(table, hosts, resolver.contested_names))

    def make(kind: type[Tally]) -> Tally:
        tally = kind(table_rows.evidence_table(table), resolver=resolver, hosts=hosts,
                     counted=lambda key: key != "rdsh09",
                     in_scope=lambda identity: not identity.key.endswith(out_of_scope), misdated=misdated,
                     tz=ZoneInfo(tz), now_us=NOW, kinds={"a.evtx": "evtx", "poll.csv": "broker"})
        for offset, batch in tally.evidence.batches(batch_rows):
            tally.add(batch, offset)
        tally.settle()
        return tally

    return make(RowByRow), make(Tally)


def _person(person: Person, proofs: Any) -> dict[str, Any]:
    return {"identity": _identity(person.identity), "times": list(person.times), "renewals": list(person.renewals),
            "sessions": list(person.session_starts), "reconnects": list(person.reconnect_starts),
            "hosts": person.hosts, "reasons": person.reasons, "carried": person.carried, "by": list(person.carried_by),
            "proofs": {day: tuple(proofs[slot:slot + 4]) for day, slot in person.proof_days.items()}}


def _identity(identity: Identity) -> tuple[str, str]:
    return identity.key, identity.display


def _facts(tally: Tally) -> dict[str, Any]:
    return {
        "people": [(key, _person(person, tally.proofs)) for key, person in tally.people.items()],
        "excluded": [(key, _identity(e.identity), e.events, e.first, e.last) for key, e in tally.excluded.items()],
        "out_of_scope": tally.out_of_scope, "host_people": dict(tally.host_people),
        "uncounted": tally.uncounted_hosts, "suspicious": tally.suspicious, "misdated": tally.misdated,
        "devices": tally.devices.usage(0, 2**62), "devices_in_day_one": tally.devices.seen_between(START, START + DAY),
        "ledger": {key: {source: list(times) for source, times in sources.items()}
                   for key, sources in tally.ledger.by_person.items()},
        "channels": dict(tally.ledger.channels),
    }


_TIMES = st.one_of(st.integers(START, START + 3 * DAY).map(lambda t: t - t % 60_000_000),  # ties within a minute
                   st.sampled_from([None, 0, 946_684_799_999_999, NOW + 2 * DAY, START + DAY]))
_ACCOUNTS = st.sampled_from([
    ("alice", "CONTOSO", "S-1-5-21-1-1001"), ("Alice", "contoso.local", None), ("alice@contoso.local", None, None),
    ("bob", "CONTOSO", None), ("BOB", "CONTOSO", "S-1-5-21-1-1002"), ("carol", "CONTOSO", None),
    ("dave", "CONTOSO", "S-1-5-21-1-1003"), ("dave", "CONTOSO", "S-1-5-21-1-2003"),  # one name, two SIDs
    ("SYSTEM", "NT AUTHORITY", "S-1-5-18"), ("RDSH01$", "CONTOSO", None), ("eveb", "CONTOSO", None),
    (None, None, None), ("-", "-", None)])
_LOGS = st.sampled_from([("Security", 4624, "logon"), ("Security", 4778, "reconnect"), ("Security", 4634, "logoff"),
                         ("Microsoft-Windows-TerminalServices-LocalSessionManager/Operational", 21, "logon"),
                         ("Microsoft-Windows-TerminalServices-LocalSessionManager/Operational", 25, "reconnect"),
                         ("Microsoft-Windows-TerminalServices-LocalSessionManager/Operational", 24, "disconnect"),
                         ("Microsoft-Windows-TerminalServices-Gateway/Operational", 302, "logon"),
                         ("Microsoft-Windows-TerminalServices-LocalSessionManager/Operational", None, "logon"),
                         ("BrokerPoll", 1, None)])


def _sessions(drawn: list[tuple[Any, ...]]) -> Sessions:
    """Connected sessions (host, (user, domain, _), start offset, length, open-ended) as the report has them."""
    hosts = tuple(sorted({host for host, *_ in drawn}))
    accounts = tuple(dict.fromkeys((user, domain) for _, (user, domain, _), *_ in drawn))
    ordered = sorted(drawn, key=lambda s: (s[0], s[2], s[3]))
    return Sessions(
        hosts=hosts, host=np.array([hosts.index(s[0]) for s in ordered], dtype=np.int32),
        start=np.array([START + s[2] for s in ordered], dtype=np.int64),
        end=np.array([START + s[2] + s[3] for s in ordered], dtype=np.int64),
        account=np.array([accounts.index(s[1][:2]) for s in ordered], dtype=np.int32), accounts=accounts,
        open_ended=np.array([s[4] for s in ordered], dtype=bool),
        opened_by=np.arange(len(ordered), dtype=np.int64) * 3, rows=None, closed_at_coverage_end=0)  # type: ignore[arg-type]


@st.composite
def _row(draw: st.DrawFn) -> dict[str, Any]:
    channel, event_id, kind = draw(_LOGS)
    user, domain, sid = draw(_ACCOUNTS)
    time = draw(_TIMES)
    return {
        "time": None if time is None else datetime.fromtimestamp(time / 1e6, timezone.utc),
        "host": draw(st.sampled_from(["RDSH01", "rdsh01.contoso.local", "RDSH02", "rdsh09", "GW01", None])),
        "channel": channel, "event_id": event_id, "record_id": draw(st.sampled_from([None, 1, 2, 3, 77, 78])),
        "kind": kind, "user": user, "domain": domain, "sid": sid, "rdp": True,
        "address": draw(st.sampled_from([None, "10.0.0.5", "10.0.0.6", "127.0.0.1", "-", "LOCAL"])),
        "client_name": draw(st.sampled_from([None, "LAPTOP-1", "laptop-1", "Unknown", " "])),
        "reason": draw(st.sampled_from(["rdp_logon", "lsm_logon", "gateway", None])),
        "source": draw(st.sampled_from(["a.evtx", "b.evtx", "poll.csv", None])),
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(_row(), max_size=60), batch_rows=st.sampled_from([1, 3, 64, 65_536]),
       tz=st.sampled_from(["UTC", "Europe/Berlin", "Pacific/Chatham"]), misdate=st.booleans(),
       out_of_scope=st.sampled_from(["b", "@@"]),
       sessions=st.lists(st.tuples(st.sampled_from(["rdsh01", "rdsh02", "rdsh09"]), _ACCOUNTS,
                                   st.integers(0, 3 * DAY), st.integers(1, DAY), st.booleans()), max_size=30))
def test_batches_leave_the_facts_a_row_by_row_tally_leaves(rows: list[dict[str, Any]], batch_rows: int, tz: str,
                                                           misdate: bool, out_of_scope: str,
                                                           sessions: list[tuple[Any, ...]]) -> None:
    misdated = {}
    if misdate:  # place every record 77 at another time (a host with a wrong clock), and mark those without an id
        for row in rows:
            if row["record_id"] in (77, None) and row["host"] and row["time"] is not None:
                time = int(row["time"].timestamp() * 1_000_000)  # a record without an id is NO_ID (-1) there
                record_id = -1 if row["record_id"] is None else 77
                misdated[(row["host"], row["channel"].lower(), record_id, time)] = time + 2 * DAY + 1
    reference, tally = _tallies(rows, misdated=misdated, tz=tz, batch_rows=batch_rows, out_of_scope=out_of_scope)
    connected = _sessions(sessions)
    assert tally.sessions(connected).tolist() == reference.sessions(connected).tolist()
    assert _facts(tally) == _facts(reference)


def test_both_see_what_they_should() -> None:
    """Both, on rows worked out by hand: two sign-ins of one person under two names, a machine
    account (nobody), an excluded person, a row from a host not counted, and one with no time."""
    at = [datetime.fromtimestamp((START + minutes * 60_000_000) / 1e6, timezone.utc) for minutes in range(4)]
    base = {"channel": LSM, "event_id": 21, "kind": "logon", "rdp": True, "reason": "lsm_logon", "source": "a.evtx",
            "address": "10.0.0.5", "client_name": None, "sid": None}
    rows = [
        {**base, "time": at[0], "host": "RDSH01", "record_id": 1, "user": "alice", "domain": "CONTOSO"},
        {**base, "time": at[1], "host": "rdsh01.contoso.local", "record_id": 2, "user": "Alice",
         "domain": "contoso.local"},
        {**base, "time": at[2], "host": "RDSH01", "record_id": 3, "user": "RDSH01$", "domain": "CONTOSO"},
        {**base, "time": at[3], "host": "rdsh09", "record_id": 4, "user": "bob", "domain": "CONTOSO"},
        {**base, "time": None, "host": "RDSH01", "record_id": 5, "user": "bob", "domain": "CONTOSO"},
        {**base, "channel": GATEWAY, "event_id": 302, "time": at[3], "host": "RDSH01", "record_id": 6,
         "user": "carol", "domain": "CONTOSO"},
    ]
    for tally in _tallies(rows, misdated={}, tz="UTC", batch_rows=2, out_of_scope="@@"):
        facts = _facts(tally)
        assert [key for key, _ in facts["people"]] == ["contoso\\alice"]
        alice = facts["people"][0][1]
        assert alice["times"] == [START, START + 60_000_000]
        # two sessions: one log's sign-ins merge only within 10 s (the two 4624 of a UAC split token)
        assert alice["sessions"] == [START, START + 60_000_000]
        assert alice["proofs"] == {datetime.fromtimestamp(START / 1e6, timezone.utc).date().toordinal():
                                   (START, 0, START + 60_000_000, 1)}
        # the machine account is nobody; carol is a person the settings leave out
        assert [(key, events) for key, _, events, _, _ in facts["excluded"]] == [("contoso\\carol", 1)]
        assert facts["uncounted"] == {"rdsh09"} and facts["host_people"]["rdsh09"] == {"contoso\\bob"}
        assert facts["suspicious"] == 1


@pytest.mark.parametrize("batch_rows", [1, 65_536])
def test_no_rows(batch_rows: int) -> None:
    reference, tally = _tallies([], misdated={}, tz="UTC", batch_rows=batch_rows, out_of_scope="@@")
    assert _facts(tally) == _facts(reference)
    assert not tally.people and not tally.devices
